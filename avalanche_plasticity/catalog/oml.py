"""OML (Javed & White 2019): a meta-learned representation (RLN) frozen at deployment, and a prediction
network (PLN) learned online by SGD. Its presets per scenario and scale, and its strategy."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..meta_learning import MetaTrainConfig, load_learner, meta_train
from ..oml import OMLConfig, OMLLearner
from ..presets import Preset
from ..registry import LearnerSpec, StrategyContext, register_learner
from . import omniglot, sine

NAME = "OML"


def preset(scenario: str, scale: str) -> Preset | None:
    """OML's preset. Sine ``cpu``: RLN 11-64-64, PLN 64-64-1, online SGD 0.003, 1,200 meta-updates of 8
    episodes of 10 x 40 minibatches of 8; ``quick``: online SGD 0.01, 200 meta-updates (meta-lr 1e-2) on
    10 x 10 episodes; ``paper``: 6 RLN + 3 PLN layers of 300. Omniglot: the scenario's conv trunk and
    128-unit layer as RLN, the head as PLN, online SGD 0.03."""
    if scenario == sine.NAME:
        w, depth, steps, mb = sine.network(scale)
        hidden = (w,) * depth
        rln_depth = 6 if scale == "paper" else depth - 1
        config = OMLConfig(
            rln_sizes=(11, *hidden[:rln_depth]),
            pln_sizes=(w, *hidden[rln_depth:], 1),
            task="regression",
            inner_lr=0.01 if scale == "quick" else 0.003,
        )
        if scale == "quick":
            meta = MetaTrainConfig(steps=200, meta_batch_size=mb, default_lr=1e-2, checkpoint_every=25)
            return Preset(NAME, config, meta, dict(sine.QUICK_SOURCE))
        meta = MetaTrainConfig(steps=steps, meta_batch_size=mb, default_lr=1e-3, checkpoint_every=25)
        return Preset(NAME, config, meta, {})
    if scenario == omniglot.NAME:
        s = omniglot.shared(scale)
        config = OMLConfig(
            rln_sizes=(s["feat"], s["hidden"]),
            pln_sizes=(s["hidden"], s["units"]),
            task="classification",
            inner_lr=0.03,
            trunk=s["trunk"],
        )
        meta = MetaTrainConfig(
            steps=s["steps"], meta_batch_size=s["mb"], default_lr=1e-3, checkpoint_every=25
        )
        return Preset(NAME, config, meta, dict(s["source"]))
    return None


def _strategy(ctx: StrategyContext) -> Any:
    from avalanche_plasticity.strategies import OML

    return OML(learner=ctx.learner, lr=ctx.lr, seed=ctx.seed, **ctx.common)


SPEC = register_learner(
    LearnerSpec(
        name=NAME,
        config_class=OMLConfig,
        learner_class=OMLLearner,
        presets=preset,
        build=lambda p, seed: OMLLearner(p.learner_config, seed=seed),
        meta_train=meta_train,
        load=load_learner,
        make=_strategy,
        deploy_lr=lambda learner: learner.config.inner_lr,  # the SGD rate it was meta-trained for
        resize_config=lambda c, k: dataclasses.replace(c, pln_sizes=(*c.pln_sizes[:-1], k)),
    )
)
