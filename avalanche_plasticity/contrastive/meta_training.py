"""Meta-training a bilevel learner by the contrastive rule, unrolled back-propagation or implicit
differentiation, with atomic, resumable checkpoints; and few-shot evaluation.

One meta-step: sample a meta-batch of tasks, estimate the meta-gradient (mean over tasks), clip it and take
an Adam step on the meta-parameters. The checkpoint holds the meta-parameters, Adam's state, the history and
every random state task sampling uses, so a killed run resumes with the same result.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from ..checkpoint import CheckpointError, load_checkpoint, save_atomic
from ..tasks import rng_state, set_rng_state
from .estimators import (
    ContrastiveConfig,
    MetaGradient,
    check_bilevel_learner,
    contrastive_meta_gradient,
    online_meta_gradient,
    tasks_from_episodes,
    unrolled_meta_gradient,
)
from .implicit import CGConfig, implicit_meta_gradient
from .solvers import InnerSolverError, SolverConfig, minimise

Estimator = Literal["contrastive", "unrolled", "implicit", "online"]


@dataclass
class BilevelMetaTrainConfig:
    """Outer-loop settings.

    :param estimator: ``"contrastive"``, ``"unrolled"`` (back-propagation through ``unrolled.max_steps``
        inner updates), ``"implicit"`` (CG on Hessian-vector products at the ``contrastive.free`` solution)
        or ``"online"`` (back-propagation through one online SGD pass over the support stream at the
        learner's ``inner_lr``, ``online_batch_size`` examples per step, as deployed).
    :param contrastive: the contrastive estimator's settings (its ``free`` solver is also the implicit one).
    :param unrolled: the inner loop differentiated by the unrolled estimator.
    :param lr: Adam learning rate on the meta-parameters; ``grad_clip``: global norm clip (None: off).
    """

    steps: int = 100
    meta_batch_size: int = 8
    estimator: Estimator = "contrastive"
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    unrolled: SolverConfig = field(default_factory=lambda: SolverConfig(max_steps=20, tol=None))
    cg: CGConfig = field(default_factory=CGConfig)
    online_batch_size: int = 1
    lr: float = 1e-3
    grad_clip: float | None = 10.0
    checkpoint_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "meta_batch_size", "checkpoint_every", "online_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.estimator not in ("contrastive", "unrolled", "implicit", "online"):
            raise ValueError(
                f"estimator must be 'contrastive', 'unrolled', 'implicit' or 'online', got {self.estimator!r}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")


def estimate_meta_gradient(learner: Any, tasks: Any, config: BilevelMetaTrainConfig) -> MetaGradient:
    """The meta-gradient of ``tasks`` with the estimator named in ``config``."""
    if config.estimator == "contrastive":
        return contrastive_meta_gradient(learner, tasks, config.contrastive)
    if config.estimator == "unrolled":
        return unrolled_meta_gradient(learner, tasks, config.unrolled)
    if config.estimator == "online":
        return online_meta_gradient(learner, tasks, learner.config.inner_lr, config.online_batch_size)
    return implicit_meta_gradient(learner, tasks, config.contrastive.free, config.cg)


@dataclass
class BilevelMetaTrainResult:
    learner: Any
    history: list[dict[str, float]]
    steps_done: int
    seconds: float


def _config_dict(config: BilevelMetaTrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def bilevel_config_from_dict(d: dict[str, Any]) -> BilevelMetaTrainConfig:
    """Rebuild a :class:`BilevelMetaTrainConfig` from its ``dataclasses.asdict`` form (a checkpoint's
    ``meta_config``), nested solver settings included."""
    d = dict(d)
    c = dict(d.get("contrastive") or {})
    for k in ("free", "nudged"):
        if isinstance(c.get(k), dict):
            c[k] = SolverConfig(**c[k])
    if "contrastive" in d:
        d["contrastive"] = ContrastiveConfig(**c)
    if isinstance(d.get("unrolled"), dict):
        d["unrolled"] = SolverConfig(**d["unrolled"])
    if isinstance(d.get("cg"), dict):
        d["cg"] = CGConfig(**d["cg"])
    return BilevelMetaTrainConfig(**d)


def saved_bilevel_config(ckpt: dict[str, Any], *, steps: int | None = None) -> dict[str, Any] | None:
    """A checkpoint's ``meta_config`` rebuilt through :class:`BilevelMetaTrainConfig`, fields added since it
    was written at their defaults (so older checkpoints still resume), ``steps`` replaced when given; None
    when it does not fit the class (written by another learner or a newer version)."""
    saved = dict(ckpt.get("meta_config") or {})
    if steps is not None:
        saved["steps"] = steps
    try:
        return _config_dict(bilevel_config_from_dict(saved))
    except (TypeError, ValueError):
        return None


def meta_train_bilevel(
    learner: Any,
    source: Any,
    config: BilevelMetaTrainConfig,
    *,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    stop_after: int | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
    desc: str = "meta-train",
    position: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> BilevelMetaTrainResult:
    """Meta-train ``learner`` on episodes from ``source`` (anything with ``sample(n, generator)`` returning
    an :class:`~avalanche_plasticity.tasks.EpisodeBatch`).

    :param checkpoint: written every ``config.checkpoint_every`` steps and at the end; with ``resume`` an
        existing one is loaded first (and must match the learner config and this config, ``steps`` aside).
    :param stop_after: stop once this many steps are done in total (time-boxed pieces of one run).
    :param progress: show a progress bar (meta-updates, the recent meta-loss) titled ``desc``.
    :param metadata: stored in the checkpoint under ``"metadata"`` (e.g. the scenario and task source).
    :raises CheckpointError: the checkpoint belongs to another learner or configuration.
    :raises InnerSolverError: an inner solve failed and the estimator was told to raise.
    """
    check_bilevel_learner(learner)
    params = learner.meta_parameters()
    trainable = [p for p in params.values() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed % 2**32)
    step, history = 0, []
    if checkpoint is not None and resume and Path(checkpoint).exists():
        ckpt = load_checkpoint(checkpoint, kind=type(learner).__name__)
        # Rebuilt through the config class, so defaults added since the checkpoint was written fill in.
        saved_config = dataclasses.asdict(type(learner.config)(**ckpt["learner_config"]))
        if saved_config != dataclasses.asdict(learner.config):
            raise CheckpointError(f"checkpoint {checkpoint} was made with a different learner config")
        # The same for the meta-training config (e.g. ``online_batch_size``, added later at its old value).
        if saved_bilevel_config(ckpt, steps=config.steps) != _config_dict(config):
            raise CheckpointError(
                f"checkpoint {checkpoint} was made with a different meta-training config: "
                f"{ckpt['meta_config']} != {_config_dict(config)}"
            )
        learner.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        set_rng_state(generator, ckpt["rng"])
        np.random.set_state(ckpt["rng"]["numpy"])
        step, history = ckpt["step"], ckpt["history"]

    def save() -> None:
        if checkpoint is not None:
            save_atomic(
                {
                    "kind": type(learner).__name__,
                    "learner_config": dataclasses.asdict(learner.config),
                    "state_dict": learner.state_dict(),
                    "meta_config": _config_dict(config),
                    "optimizer": opt.state_dict(),
                    "rng": {**rng_state(generator), "numpy": np.random.get_state()},
                    "step": step,
                    "history": history,
                    "metadata": dict(metadata or {}),
                },
                checkpoint,
            )

    end = config.steps if stop_after is None else min(config.steps, stop_after)
    t0 = time.perf_counter()
    bar = tqdm(
        total=config.steps,
        initial=step,
        disable=not progress,
        desc=desc,
        dynamic_ncols=True,
        position=position,
    )
    while step < end:
        tasks = tasks_from_episodes(source.sample(config.meta_batch_size, generator))
        start = time.perf_counter()
        mg = estimate_meta_gradient(learner, tasks, config)
        mg.apply_to(learner)
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        record = {
            "step": step,
            "meta_loss": mg.outer_loss,
            "tasks_skipped": mg.tasks_skipped,
            "seconds": time.perf_counter() - start,
            **mg.stats,
        }
        history.append(record)
        bar.update(1)
        bar.set_postfix(meta_loss=f"{mg.outer_loss:.4f}")
        if on_step is not None:
            on_step(step, record)
        if step % config.checkpoint_every == 0:
            save()
    if step == end:
        save()
    bar.close()
    return BilevelMetaTrainResult(learner, history, step, time.perf_counter() - t0)


def few_shot_accuracy(
    learner: Any, source: Any, episodes: int, solver: SolverConfig, *, seed: int = 0
) -> list[float]:
    """Query accuracy of each of ``episodes`` fresh tasks after learning its support set with ``solver``
    (no meta-update). For regression learners the query MSE is returned instead.

    :raises InnerSolverError: ``solver`` has a tolerance that a task did not reach.
    """
    generator = torch.Generator().manual_seed(seed)
    random.seed(seed)
    theta = learner.theta()
    out = []
    for task in tasks_from_episodes(source.sample(episodes, generator)):
        fast = minimise(
            lambda f, task=task: learner.inner_loss(f, theta, task),
            learner.initial_fast_weights(theta),
            solver,
            what="evaluation inner loop",
        ).fast
        with torch.no_grad():
            pred = learner.predict(fast, theta, task.query_x)
            if learner.task == "classification":
                out.append(float((pred.argmax(-1) == task.query_y.reshape(-1)).float().mean()))
            else:
                out.append(float((pred - task.query_y.reshape(pred.shape)).square().mean()))
    return out


__all__ = [
    "BilevelMetaTrainConfig",
    "BilevelMetaTrainResult",
    "InnerSolverError",
    "estimate_meta_gradient",
    "few_shot_accuracy",
    "meta_train_bilevel",
]
