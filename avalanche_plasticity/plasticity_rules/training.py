"""Meta-training a rule on the shared engine, and measuring online accuracy on held-out episodes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..meta_learning import MetaTrainConfig, MetaTrainResult, meta_train, run_trajectory
from ..tasks import EpisodeBatch
from .learner import PlasticityRuleLearner
from .rule import feedback_errors, forward_activities, plasticity_update

Tensor = torch.Tensor


def meta_train_rule(
    learner: PlasticityRuleLearner,
    source: Any,
    config: MetaTrainConfig,
    *,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    desc: str = "meta-train rule",
) -> MetaTrainResult:
    """Meta-train the coefficients with :func:`~avalanche_plasticity.meta_learning.meta_train` (Adam on
    ``theta``, online inner loop, query cross-entropy, plus the learner's L1 penalty).

    Every history entry also records the coefficients after that meta-update (``"theta/<term>"``), so the
    trajectory survives checkpoints and resumes; ``on_step`` is called after that with ``(step, entry)``.
    """
    terms = learner.config.terms

    def record(step: int, entry: dict[str, float]) -> None:
        for t, v in zip(terms, learner.coefficients.detach().tolist(), strict=True):
            entry[f"theta/{t}"] = v
        if on_step is not None:
            on_step(step, entry)

    return meta_train(
        learner,
        source,
        config,
        checkpoint=checkpoint,
        progress=progress,
        stop_after=stop_after,
        on_step=record,
        metadata={"terms": list(terms)},
        desc=desc,
    )


def coefficient_history(history: list[dict[str, float]], terms: tuple[str, ...]) -> dict[str, list[float]]:
    """``{"step": [...], term: [...]}`` from a meta-training history (entries without coefficients are
    skipped)."""
    rows = [h for h in history if all(f"theta/{t}" in h for t in terms)]
    out: dict[str, list[float]] = {"step": [float(h["step"]) for h in rows]}
    for t in terms:
        out[t] = [h[f"theta/{t}"] for h in rows]
    return out


@torch.no_grad()
def online_evaluation(
    learner: PlasticityRuleLearner, batch: EpisodeBatch, *, seed: int = 0, chunk: int = 16
) -> dict[str, Tensor]:
    """Query accuracy and query cross-entropy (the meta-objective) of each episode after one online pass
    over its support samples: ``{"accuracy": (E,), "loss": (E,)}``.

    The initial and feedback weights of every episode are drawn from a generator seeded with ``seed``.
    """
    saved, saved_inplace = learner.generator, learner.inplace
    learner.generator = torch.Generator().manual_seed(seed)
    learner.inplace = True  # the weights below are ours
    try:
        accs, losses = [], []
        for i in range(0, batch.episodes, chunk):
            sx, sy = batch.support_x[i : i + chunk], batch.support_y[i : i + chunk]
            qx, qy = batch.query_x[i : i + chunk], batch.query_y[i : i + chunk]
            fast = run_trajectory(learner, learner.initial_fast_weights(len(sx)), learner.features(sx), sy)
            out = learner.predict(fast, learner.features(qx))
            accs.append((out.argmax(-1) == qy).float().mean(-1))
            ce = torch.nn.functional.cross_entropy(out.transpose(1, -1), qy, reduction="none")
            losses.append(ce.mean(-1))
        return {"accuracy": torch.cat(accs), "loss": torch.cat(losses)}
    finally:
        learner.generator, learner.inplace = saved, saved_inplace


def online_accuracy(
    learner: PlasticityRuleLearner, batch: EpisodeBatch, *, seed: int = 0, chunk: int = 16
) -> Tensor:
    """Query accuracy of each episode after one online pass over its support samples, ``(E,)`` (see
    :func:`online_evaluation`)."""
    return online_evaluation(learner, batch, seed=seed, chunk=chunk)["accuracy"]


@torch.no_grad()
def alignment_with_backprop(
    learner: PlasticityRuleLearner, batch: EpisodeBatch, *, seed: int = 0, chunk: int = 16
) -> dict[str, Tensor]:
    """How closely the rule follows backprop, layer by layer, during one online pass of each episode.

    At every online step, at the weights the rule has reached so far and for that step's sample:

    - ``"teaching_signal"``: the cosine between the error the feedback pathway delivers to each layer's
      output, ``e_l``, and backprop's ``delta_l`` (the same error sent back through the forward weights).
      The paper plots its angle, ``alpha_l = arccos(cos)`` (Fig. 4c): 0 at the output layer, and for FA
      growing with distance from it.
    - ``"update"``: the cosine between the rule's whole update ``dW_l`` (every term) and the backprop SGD
      step ``-dL/dW_l``.

    Both are averaged over steps and episodes; backprop gives 1 everywhere. Episodes draw their initial
    and feedback weights from a generator seeded with ``seed``, as in :func:`online_evaluation`.

    :returns: ``{"teaching_signal": (layers,), "update": (layers,)}``, first layer first.
    """
    cos = torch.nn.functional.cosine_similarity
    saved = learner.generator
    learner.generator = torch.Generator().manual_seed(seed)
    terms, coefs, beta = learner.config.terms, learner.coefficients.detach(), learner.config.beta
    try:
        signal, update, count = torch.zeros(learner.num_layers), torch.zeros(learner.num_layers), 0
        for i in range(0, batch.episodes, chunk):
            sx, sy = batch.support_x[i : i + chunk], batch.support_y[i : i + chunk]
            weights, feedback = learner.split(learner.initial_fast_weights(len(sx)))
            feats = learner.features(sx)
            for t in range(feats.shape[1]):
                x, y = feats[:, t], sy[:, t]
                acts, logits = forward_activities(weights, x, beta)
                delivered = feedback_errors(feedback or weights, acts, logits, y, beta)
                exact = feedback_errors(weights, acts, logits, y, beta)
                new = plasticity_update(weights, feedback, coefs, terms, x, y, beta=beta)
                for l, W in enumerate(weights):
                    signal[l] += cos(delivered[l + 1].flatten(1), exact[l + 1].flatten(1), dim=1).sum()
                    sgd_step = -exact[l + 1].transpose(-1, -2) @ acts[l]  # -dL/dW_l = -delta_l^T y_{l-1}
                    update[l] += cos((new[l] - W).flatten(1), sgd_step.flatten(1), dim=1).sum()
                weights = new
                count += len(sx)
        n = max(count, 1)
        return {"teaching_signal": signal / n, "update": update / n}
    finally:
        learner.generator = saved
