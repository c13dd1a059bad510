"""ANML (Beaulieu et al. 2020): a neuromodulatory network gates the prediction network's features, and so
its plasticity; meta-trained the OML way on Omniglot background classes, deployed by online SGD on the
head alone (the authors' meta-test protocol). See :mod:`avalanche_plasticity.anml` for each choice."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..anml import ANMLConfig, ANMLLearner
from ..checkpoint import load_registered
from ..meta_learning import MetaTrainConfig, meta_train
from ..presets import Preset
from ..registry import LearnerSpec, StrategyContext, register_learner
from . import omniglot

NAME = "ANML"
CLASSIFICATION = ("classification",)
# The deployment rate of the zero-started head: the best of continual_omniglot.py's grid on the validation
# class order (seed 10000) at 50 classes (0.0003 and 0.0001 scored the same; 0.1, the inner rate of
# meta-training, fell to 36 % there).
DEPLOY_LR = 1e-3


def preset(scenario: str, scale: str) -> Preset | None:
    """ANML's preset on Omniglot. ``cpu``: 28x28, NM 3 conv blocks of 16 channels, PN 3 of 32 (288
    features), the scenario's 1,000-unit head learned in the inner loop at 0.1 from zero, 1,500
    meta-updates of 4 episodes of the scenario's 10-way continual episodes, Adam 1e-3. ``paper``: 84x84,
    4 blocks (pool after the last: 3x3 maps), NM 112 and PN 256 channels (2,304 features), 1,000 units, the
    whole PN plastic as in the authors' code, 20,000 meta-updates of one 5-way episode."""
    if scenario != omniglot.NAME:
        return None
    source = dict(omniglot.shared(scale)["source"])
    if scale == "cpu":
        config = ANMLConfig(
            nm_trunk=dict(channels=16, layers=3, image_size=28),
            pn_trunk=dict(channels=32, layers=3, image_size=28),
            num_outputs=source["num_units"],
            inner_lr=0.1,
            plastic="head",
            head_init="zero",
        )
        meta = MetaTrainConfig(steps=1500, meta_batch_size=4, default_lr=1e-3, checkpoint_every=25)
        return Preset(NAME, config, meta, source)
    config = ANMLConfig(
        nm_trunk=dict(channels=112, layers=4, image_size=84, pool_last=True),
        pn_trunk=dict(channels=256, layers=4, image_size=84, pool_last=True),
        num_outputs=source["num_units"],
        inner_lr=0.1,
        plastic="pn",
        head_init="zero",
    )
    meta = MetaTrainConfig(steps=20000, meta_batch_size=1, default_lr=1e-3, checkpoint_every=100)
    return Preset(NAME, config, meta, source)


def load(path: str | Path) -> ANMLLearner:
    """An ANML learner from its checkpoint."""
    return load_registered(path, {"ANMLLearner": (ANMLLearner, ANMLConfig)}, kind="ANMLLearner")


def _strategy(ctx: StrategyContext) -> Any:
    from avalanche_plasticity.strategies import ANML

    return ANML(learner=ctx.learner, lr=ctx.lr, seed=ctx.seed, **ctx.common)


SPEC = register_learner(
    LearnerSpec(
        name=NAME,
        config_class=ANMLConfig,
        learner_class=ANMLLearner,
        presets=preset,
        build=lambda p, seed: ANMLLearner(p.learner_config, seed=seed),
        meta_train=meta_train,
        load=load,
        make=_strategy,
        tasks=CLASSIFICATION,
        deploy_lr=lambda learner: DEPLOY_LR,
        resize_config=lambda c, k: dataclasses.replace(c, num_outputs=k),
    )
)
