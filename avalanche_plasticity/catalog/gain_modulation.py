"""Top-down gain modulation (Zucchet et al. 2022): a meta-learned body whose per-neuron gains and shifts
and readout are the fast weights, on the episodes of the scenario's OML preset, so that its comparison
stream has the same shape: on sine meta-trained by the contrastive rule, on Omniglot (and the MNIST-family
streams) for retention through the online pass (:func:`preset`); deployed by SGD on its inner loss (the
task loss plus the pull of the fast weights toward their meta-learned initial values, none on Omniglot).
Opt-in in ``compare`` (minutes of meta-training on sine; the Omniglot ``cpu`` learner ships with the package,
meta-training it again takes 15 to 30 minutes on one CPU thread); no paper-scale continual setting exists."""

from __future__ import annotations

from typing import Any

from ..contrastive import (
    BilevelMetaTrainConfig,
    ContrastiveConfig,
    GainModulationConfig,
    GainModulationLearner,
    SolverConfig,
)
from ..presets import Preset
from ..registry import StrategyContext, register_learner
from . import oml, sine

# The network spec follows the episodes and the head resizes exactly as the complex synapse's (the same
# ``network`` dict: an MLP's sizes, or a conv net's image size and outputs).
from .complex_synapse import bilevel_learner_spec

NAME = "GainModulation"

# The tuned settings per scenario (benchmarks/gain_modulation.py; see :func:`preset`). ``solver_lr``,
# ``free`` and ``nudged`` are the contrastive phases' step size and gradient steps, ``meta_lr`` Adam's
# rate on the body and the initial fast weights, ``deploy_lr`` the SGD rate of the deployed fast weights.
SETTINGS: dict[str, dict[str, Any]] = {
    sine.NAME: dict(
        reg_strength=0.1,
        beta=0.05,
        solver_lr=0.02,
        free=30,
        nudged=15,
        meta_lr=1e-3,
        steps=100,
        grad_clip=10.0,
        deploy_lr=0.01,
    ),
    # Omniglot: meta-trained for retention through the online pass (``estimator="online"``) on
    # class-incremental streams of two 10-way tasks with the query on all 20 classes (``tasks``, ``query``:
    # the episode source's settings); ``beta``, ``solver_lr``, ``free`` and ``nudged`` are the contrastive
    # phases of ``--set meta.estimator=contrastive``.
    "omniglot": dict(
        reg_strength=0.0,
        estimator="online",
        tasks=2,
        query="seen",
        beta=0.1,
        solver_lr=0.1,
        free=20,
        nudged=10,
        meta_lr=1e-3,
        steps=400,
        grad_clip=10.0,
        deploy_lr=0.01,
    ),
}


def preset(scenario: str, scale: str, settings: dict[str, Any] | None = None) -> Preset | None:
    """Settings picked by ``benchmarks/gain_modulation.py`` (results in
    ``benchmarks/results/gain_modulation.json``, notes in ``benchmarks/NOTES.md``), on OML's episodes.

    Both: the symmetric contrastive estimator, meta-batches of 4 tasks, Adam on the body and the initial
    gains/shifts/readout, fixed-budget phases (Nesterov GD), a nudged phase that fails drops its task.

    Sine (``quick`` and ``cpu``): the MLP 11-64-64-64-1 (ReLU) of FLP/OML's ``cpu`` size, whose 3 x 64
    gains and shifts and readout are fast; ``reg_strength`` 0.1, beta 0.05, free 30 / nudged 15 steps at
    0.02, 100 meta-updates at Adam 1e-3 (clip 10); deployed by SGD at 0.01. Picked on the quick episodes
    (100 meta-updates per candidate): the complex synapse's meta-lr 3e-3 lowered the meta-loss faster but
    not steadily (it rose again in the last two fifths of the run); at 1e-3 it fell in every fifth (3.76 to
    2.64); ``reg_strength`` 0.01 did not learn (flat meta-loss); ``reg_strength`` 1, beta 0.1 with solver lr
    0.05, and free 60 / nudged 30 also fell steadily, the last two to a lower meta-loss, but deployed worse
    (validation MSE 2.83, 3.14, 3.19 against 2.78: the meta-loss fits all functions at once, the stream
    comes one function after another); 200 meta-updates rose again in the last fifth. The deployment lr
    is the lowest final MSE of (0.003, 0.01, 0.03, 0.1) on the quick comparison stream at the validation
    seed 10000. The ``cpu`` scale (10 x 40 minibatches) uses the same settings, not tuned there.

    Omniglot (``cpu``, also what the MNIST-family streams deploy): the four-block conv net (32 channels,
    per-example GroupNorm) whose 4 x 32 channel gains and shifts and 1000-unit readout are fast, meta-trained
    for retention: ``estimator="online"`` back-propagates through one online SGD pass (batch size 1, SGD
    0.01) over class-incremental streams of two 10-way 5-shot tasks (20 distinct classes, one after
    another), the query on all 20 (``source.query=seen``, as OML and FLP meta-train); no pull toward the
    initial fast weights (``reg_strength`` 0: it would erase what the stream taught), 400 meta-updates of 4
    streams at Adam 1e-3 (clip 10), 15 to 30 minutes on one CPU thread; meta-loss 3.3 to 0.73. The
    contrastive preset it replaces (25 meta-updates, ``reg_strength`` 0.1) learned a few-shot body that
    forgets like SGD in class order: 3.6 % on the 50-class Omniglot stream (Naive 1.9), 19.5 % on
    SplitMNIST class-incremental online (Naive 19.8); ``benchmarks/NOTES.md``, "Gain modulation meta-trained
    for retention", has the figures of this one.

    ``settings`` overrides entries of :data:`SETTINGS` (the benchmark's grid)."""
    base = oml.preset(scenario, scale)
    if base is None or scale == "paper" or scenario not in SETTINGS:
        return None
    s = {**SETTINGS[scenario], **(settings or {})}
    source = {**base.source, **{k: s[k] for k in ("tasks", "query") if k in s}}
    if scenario == sine.NAME:
        k = source.get("functions_per_episode", 10)
        network: dict[str, Any] = {"kind": "mlp", "sizes": [k + 1, 64, 64, 64, 1], "activation": "relu"}
        task = "regression"
    else:
        network = {
            "kind": "conv",
            "channels": 32,
            "image_size": source.get("image_size", 28),
            "num_outputs": source["num_units"],
            "norm": "layer",  # per-example GroupNorm: the same at batch size 1 (deployment) and batched
        }
        task = "classification"
    config = GainModulationConfig(
        network=network, task=task, reg_strength=s["reg_strength"], inner_lr=s["deploy_lr"]
    )
    free = SolverConfig(lr=s["solver_lr"], max_steps=s["free"], tol=None)
    nudged = SolverConfig(lr=s["solver_lr"], max_steps=s["nudged"], tol=None)
    meta = BilevelMetaTrainConfig(
        steps=s["steps"],
        meta_batch_size=4,
        estimator=s.get("estimator", "contrastive"),
        lr=s["meta_lr"],
        contrastive=ContrastiveConfig(
            beta=s["beta"], variant="symmetric", free=free, nudged=nudged, on_nonconvergence="skip"
        ),
        unrolled=free,
        grad_clip=s["grad_clip"],
        checkpoint_every=25 if scenario == sine.NAME else 10,
    )
    return Preset(NAME, config, meta, dict(source))


def _strategy(ctx: StrategyContext) -> Any:
    from avalanche_plasticity.strategies import GainModulation

    return GainModulation(
        learner=ctx.learner, lr=ctx.lr, seed=ctx.seed, **ctx.common
    )  # SGD of the gains, shifts and readout on the inner loss


# the seed draws the initial body and readout, as the complex synapse's omega
SPEC = register_learner(
    bilevel_learner_spec(NAME, GainModulationConfig, GainModulationLearner, preset, _strategy)
)
