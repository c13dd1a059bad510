"""FLP (Lindsey & Litwin-Kumar 2020): meta-learned feedback weights driving local Oja/Hebbian plasticity.
Its presets per scenario and scale, and the strategy that deploys it."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..flp import FLPConfig, FLPLearner
from ..meta_learning import MetaTrainConfig, load_learner, meta_train
from ..presets import Preset
from ..registry import LearnerSpec, StrategyContext, register_learner
from . import omniglot, sine

NAME = "FLP"


def preset(scenario: str, scale: str) -> Preset | None:
    """FLP's preset. Sine ``cpu``: 11-64-64-64-1, linear feedback, meta-lr 1e-2 (rates 1e-5), 4,000
    meta-updates with an episode-length curriculum (10 functions x 10 minibatches of 8 for 3,000 updates,
    then 20, then the protocol's 40 from update 3,500: a rule meta-trained on 10 only diverges on 40).
    Sine ``quick``: the same network, 350 meta-updates on 10 x 10 episodes. Sine ``paper``: 9 layers of 300,
    all plastic, with the memory-lean meta-gradient (about 240 MB per 400-step episode instead of 5 GB).
    Omniglot: the scenario's conv trunk, a 128-unit hidden layer and the head."""
    if scenario == sine.NAME:
        w, depth, steps, mb = sine.network(scale)
        meta = MetaTrainConfig(
            steps=steps, meta_batch_size=mb, default_lr=1e-3, lr={"plasticity": 1e-6}, checkpoint_every=50
        )
        config = FLPConfig(
            layer_sizes=(11, *(w,) * depth, 1),
            task="regression",
            init_plasticity=0.0,
            init_feedback_strength=0.5,
            linear_feedback=scale != "paper",
        )
        source: dict[str, Any] = {}
        if scale == "paper":  # the fast weights are rebuilt backwards instead of stored (memory_lean.py)
            meta = dataclasses.replace(meta, meta_gradient="memory_lean")
        elif scale == "cpu":
            meta = dataclasses.replace(meta, steps=4000, default_lr=1e-2, lr={"plasticity": 1e-5})
            source = dict(sine.QUICK_SOURCE, length_schedule=((3000, 20), (3500, 40)))
        elif scale == "quick":
            meta = dataclasses.replace(
                meta, steps=350, default_lr=1e-2, lr={"plasticity": 1e-5}, checkpoint_every=25
            )
            source = dict(sine.QUICK_SOURCE)
        return Preset(NAME, config, meta, source)
    if scenario == omniglot.NAME:
        s = omniglot.shared(scale)
        config = FLPConfig(
            layer_sizes=(s["feat"], s["hidden"], s["units"]),
            task="classification",
            init_plasticity=0.0,
            init_feedback_strength=1.0,
            hidden_plasticity_multiplier=10.0,
            trunk=s["trunk"],
        )
        meta = MetaTrainConfig(
            steps=s["steps"],
            meta_batch_size=s["mb"],
            default_lr=1e-3,
            lr={"plasticity": 3e-3, "feedback_strength": 0.0},
            checkpoint_every=25,
        )
        return Preset(NAME, config, meta, dict(s["source"]))
    return None


def _strategy(ctx: StrategyContext) -> Any:
    from avalanche_plasticity.strategies import FLP
    from avalanche_plasticity.strategies.flp import PROTOTYPE_READOUTS

    readout = ctx.settings.get("readout", "rule")
    classes = {}
    if readout in PROTOTYPE_READOUTS:
        classes = {"num_classes": ctx.num_classes, "prototype_layer": ctx.settings.get("prototype_layer", 0)}
    return FLP(learner=ctx.learner, seed=ctx.seed, readout=readout, **classes, **ctx.common)


SPEC = register_learner(
    LearnerSpec(
        name=NAME,
        config_class=FLPConfig,
        learner_class=FLPLearner,
        presets=preset,
        build=lambda p, seed: FLPLearner(p.learner_config, seed=seed),
        meta_train=meta_train,
        load=load_learner,
        make=_strategy,
        has_lr=False,  # the plasticity rates are meta-learned
        resize_config=lambda c, k: dataclasses.replace(c, layer_sizes=(*c.layer_sizes[:-1], k)),
        meta_gradients=("stored", "memory_lean"),
        settings=("readout", "prototype_layer"),
    )
)
