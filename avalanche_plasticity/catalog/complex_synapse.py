"""The complex synapse (Zucchet et al. 2022) on the episodes of the scenario's OML preset, so that its
comparison stream has the same shape: on sine meta-trained by the contrastive rule, on Omniglot (and the
MNIST-family streams) for retention through the online pass (:func:`preset`); deployed by SGD on its inner
loss. Opt-in in ``compare`` (minutes of meta-training on sine; the Omniglot ``cpu`` learner ships with the
package, meta-training it again takes 45 to 70 minutes on one CPU thread); no paper-scale continual setting
exists."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..contrastive import (
    BilevelMetaTrainConfig,
    ComplexSynapseConfig,
    ComplexSynapseLearner,
    ContrastiveConfig,
    SolverConfig,
    load_bilevel_learner,
    meta_train_bilevel,
)
from ..contrastive.meta_training import bilevel_config_from_dict
from ..presets import Preset
from ..registry import LearnerSpec, StrategyContext, register_learner
from . import oml, sine

NAME = "ComplexSynapse"
#: Omniglot: the online SGD rate of meta-training and the number of meta-updates.
OMNIGLOT_SGD = 0.01
OMNIGLOT_STEPS = 800


def preset(scenario: str, scale: str) -> Preset | None:
    """The settings of ``benchmarks/contrastive.py`` (its continual sections), on OML's episodes.

    Sine: the MLP 11-64-64-64-1 (ReLU) of FLP/OML's ``cpu`` size, lambda from 1e-3 (meta-learned), the
    symmetric estimator with beta 0.05, a free phase of 30 and nudged phases of 15 gradient steps (lr 0.02),
    300 meta-updates of 4 tasks, Adam 3e-3; deployed by SGD at 0.05.

    Omniglot (also what the MNIST-family streams deploy): the four-block conv net (32 channels,
    per-example GroupNorm) with a 1000-unit head, meta-trained for retention: consolidated hidden synapses
    (lambda 50 = 1 / (2 x SGD 0.01): each online step's change of a hidden weight is pulled back to its
    anchor by the next) under a free readout (``head_lambda`` 1e-4), omega meta-learned by
    ``estimator="online"`` (back-propagation through one online SGD pass at batch size 1, SGD 0.01) over
    class-incremental streams of two 10-way 5-shot tasks, the query on all 20 classes
    (``source.query=seen``, as OML and FLP meta-train), :data:`OMNIGLOT_STEPS` meta-updates of 4 streams,
    Adam 3e-3 (clip 10). The contrastive preset it replaces (lambda 0.25 on every synapse, 100
    meta-updates) learned few-shot anchors that forget like SGD in class order (17.1 % on SplitMNIST
    class-incremental online, Naive 19.8), and meta-learning the strengths from 0.25 moved them by less
    than 15 % (``benchmarks/NOTES.md``, "The complex synapse meta-trained for retention")."""
    base = oml.preset(scenario, scale)
    if base is None or scale == "paper":
        return None
    source = base.source
    if scenario == sine.NAME:
        k = source.get("functions_per_episode", 10)
        config = ComplexSynapseConfig(
            network={"kind": "mlp", "sizes": [k + 1, 64, 64, 64, 1], "activation": "relu"},
            init_lambda=1e-3,
            inner_lr=0.05,
        )
        free, nudged = (
            SolverConfig(lr=0.02, max_steps=30, tol=None),
            SolverConfig(lr=0.02, max_steps=15, tol=None),
        )
        beta, steps, lr, clip, every = 0.05, 300, 3e-3, 10.0, 25
        estimator = "contrastive"
    else:
        config = ComplexSynapseConfig(
            network={
                "kind": "conv",
                "channels": 32,
                "image_size": source.get("image_size", 28),
                "num_outputs": source["num_units"],
                "norm": "layer",
            },
            task="classification",
            init_lambda=0.5 / OMNIGLOT_SGD,  # 2 lambda lr = 1: the pull undoes each step's change
            head_lambda=1e-4,
            learn_lambda=False,
            inner_lr=OMNIGLOT_SGD,
        )
        free, nudged = (
            SolverConfig(lr=0.1, max_steps=20, tol=None),
            SolverConfig(lr=0.1, max_steps=10, tol=None),
        )
        beta, steps, lr, clip, every = 0.1, OMNIGLOT_STEPS, 3e-3, 10.0, 10
        source = {**source, "tasks": 2, "query": "seen"}
        estimator = "online"
    meta = BilevelMetaTrainConfig(
        steps=steps,
        meta_batch_size=4,
        estimator=estimator,
        lr=lr,
        contrastive=ContrastiveConfig(
            beta=beta, variant="symmetric", free=free, nudged=nudged, on_nonconvergence="skip"
        ),
        unrolled=free,
        grad_clip=clip,
        checkpoint_every=every,
    )
    return Preset(NAME, config, meta, dict(source))


def follow_source(scenario: str, p: Preset) -> Preset:
    """Its network spec is not a ``--set`` field: the input and output sizes follow its episodes (sine:
    ``functions_per_episode + 1`` inputs; images: ``image_size`` and ``num_units``)."""
    net = dict(p.learner_config.network)
    if net["kind"] == "mlp":
        net["sizes"] = [p.source.get("functions_per_episode", 10) + 1, *net["sizes"][1:]]
    else:
        net["image_size"] = p.source.get("image_size", 28)
        net["num_outputs"] = p.source.get("num_units", net["num_outputs"])
    p.learner_config = dataclasses.replace(p.learner_config, network=net)
    return p


def resize_config(config: ComplexSynapseConfig, k: int) -> ComplexSynapseConfig:
    """The config with a head of ``k`` units (an MLP's last size, or a conv net's ``num_outputs``)."""
    net = dict(config.network)
    if net["kind"] == "mlp":
        net["sizes"] = [*net["sizes"][:-1], k]
    else:
        net["num_outputs"] = k
    return dataclasses.replace(config, network=net)


def _strategy(ctx: StrategyContext) -> Any:
    from avalanche_plasticity.strategies import ComplexSynapse

    return ComplexSynapse(
        learner=ctx.learner, lr=ctx.lr, seed=ctx.seed, **ctx.common
    )  # SGD on the inner loss


def bilevel_learner_spec(
    name: str, config_class: type, learner_class: type, presets: Any, make: Any
) -> LearnerSpec:
    """The registry entry of a learner of the contrastive rule (:mod:`avalanche_plasticity.contrastive`):
    meta-trained in one CPU process by :func:`meta_train_bilevel` (contrastive or unrolled estimate),
    opt-in in ``compare``, deployed by SGD at its ``inner_lr``, its network's input and head sizes
    following its episodes. ``build`` draws the initial meta-parameters from the seed."""
    return LearnerSpec(
        name=name,
        config_class=config_class,
        learner_class=learner_class,
        presets=presets,
        build=lambda p, seed: learner_class(dataclasses.replace(p.learner_config, seed=seed)),
        meta_train=lambda learner, source, meta, world=None, **common: meta_train_bilevel(
            learner, source, meta, **common
        ),
        load=load_bilevel_learner,
        make=make,
        deploy_lr=lambda learner: learner.config.inner_lr,
        distributed=False,
        cpu_only=True,
        opt_in=True,
        follow_source=follow_source,
        meta_config_from_dict=bilevel_config_from_dict,
        resize_config=resize_config,
    )


SPEC = register_learner(
    bilevel_learner_spec(NAME, ComplexSynapseConfig, ComplexSynapseLearner, preset, _strategy)
)
