"""Named configurations: a CPU-size default (minutes on 2 cores) and the papers' sizes (``paper``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .contrastive import (
    BilevelMetaTrainConfig,
    ComplexSynapseConfig,
    ContrastiveConfig,
    SolverConfig,
)
from .flp import FLPConfig
from .meta_learning import MetaTrainConfig
from .oml import OMLConfig
from .plasticity_rules.learner import PAPER_LAYER_SIZES, PlasticityRuleConfig


@dataclass
class Preset:
    """Everything needed to meta-train one learner on one scenario."""

    learner: str  # "FLP" | "OML" | "MetaPlasticityRule" | "ComplexSynapse"
    learner_config: Any
    meta: MetaTrainConfig | BilevelMetaTrainConfig  # the latter: the contrastive rule's learners
    source: dict[str, Any] = field(default_factory=dict)


def sine_presets(scale: str = "cpu") -> dict[str, Preset]:
    """Incremental sine. ``cpu``: width 64, 4 layers; OML: 10 x 40 minibatches of 8 per episode, 1200
    meta-updates; FLP: 4000 meta-updates, episodes of 10 x 10 minibatches of 8 growing to 10 x 40.
    ``paper``: FLP's 9 layers of width 300 (all plastic) and OML's 6 RLN + 3 PLN layers."""
    if scale == "paper":
        w, depth, steps, mb = 300, 8, 20000, 16
    elif scale == "cpu":
        w, depth, steps, mb = 64, 3, 1200, 8
    else:
        raise ValueError(f"scale must be 'cpu' or 'paper', got {scale!r}")
    hidden = (w,) * depth
    rln_depth = depth - 1 if scale == "cpu" else 6
    if scale == "cpu":
        # FLP at CPU size: linear feedback, meta-lr 1e-2 (rates 1e-5), 4,000 meta-updates with an
        # episode-length curriculum: 10 functions x 10 minibatches of 8 for 3,000 updates, then 20, then the
        # protocol's 40 from update 3,500 (a rule meta-trained on 10 only diverges on 40-minibatch blocks).
        flp_feedback, flp_steps, flp_lr, flp_rate_lr = True, 4000, 1e-2, 1e-5
        flp_source = dict(
            functions_per_episode=10,
            batches_per_function=10,
            batch_size=8,
            query_per_function=32,
            length_schedule=((3000, 20), (3500, 40)),
        )
    else:
        flp_feedback, flp_steps, flp_lr, flp_rate_lr, flp_source = False, steps, 1e-3, 1e-6, {}
    return {
        "FLP": Preset(
            "FLP",
            FLPConfig(
                layer_sizes=(11, *hidden, 1),
                task="regression",
                init_plasticity=0.0,
                init_feedback_strength=0.5,
                linear_feedback=flp_feedback,
            ),
            MetaTrainConfig(
                steps=flp_steps,
                meta_batch_size=mb,
                default_lr=flp_lr,
                lr={"plasticity": flp_rate_lr},
                checkpoint_every=50,
            ),
            flp_source,
        ),
        "OML": Preset(
            "OML",
            OMLConfig(
                rln_sizes=(11, *hidden[:rln_depth]),
                pln_sizes=(w, *hidden[rln_depth:], 1),
                task="regression",
                inner_lr=0.003,
            ),
            MetaTrainConfig(steps=steps, meta_batch_size=mb, default_lr=1e-3, checkpoint_every=25),
        ),
    }


def omniglot_presets(scale: str = "cpu") -> dict[str, Preset]:
    """Omniglot. ``cpu``: 28x28, 4 stride-2 conv layers of 32 channels, 10-way 5-shot continual
    episodes, a 200-unit head. ``paper``: 84x84, FLP's 6-layer conv trunk (strides 2,1,2,1,2,2), 128
    channels, a 1000-unit head.

    ``MetaPlasticityRule`` (Shervani-Tabar & Rosenbaum): the ten-term pool on the authors' fully connected
    softplus net (hidden 170-130-100-70) over the stream's raw pixels, meta-trained on 5-way episodes of
    15 images per class learned one at a time. ``cpu``: 150 meta-updates of 4 episodes (the paper's 600),
    Adam 3e-3, L1 0.1, starting from the pseudo-gradient at 0.03 (the settings of
    ``benchmarks/plasticity_rules.py``); ``paper``: one episode per update, 600 updates, Adam 1e-3,
    starting at 1e-3, 47 output units. The rule's coefficients are shared by all layers, so it is deployed
    on a network with the stream's number of classes."""
    if scale == "cpu":
        trunk = dict(channels=32, strides=(2, 2, 2, 2), image_size=28)
        feat, hidden, units, steps, mb, ways = 32 * 2 * 2, 128, 200, 1500, 8, 10
    elif scale == "paper":
        trunk = dict(channels=128, strides=(2, 1, 2, 1, 2, 2), image_size=84)
        feat, hidden, units, steps, mb, ways = 128 * 3 * 3, 128, 1000, 40000, 16, 5
    else:
        raise ValueError(f"scale must be 'cpu' or 'paper', got {scale!r}")
    source = dict(ways=ways, shots=5, query_shots=5, num_units=units, image_size=trunk["image_size"])
    size = trunk["image_size"]
    paper = scale == "paper"
    rule = Preset(
        "MetaPlasticityRule",
        PlasticityRuleConfig(
            layer_sizes=(size * size, *PAPER_LAYER_SIZES[1:-1], 47 if paper else 5),
            init_coefficients={"pseudo_gradient": 1e-3 if paper else 0.03},
            l1=0.1,
            input_shape=(1, size, size),
        ),
        MetaTrainConfig(
            steps=600 if paper else 150,
            meta_batch_size=1 if paper else 4,
            default_lr=1e-3 if paper else 3e-3,
            checkpoint_every=10,
        ),
        dict(ways=5, shots=15, query_shots=5, num_units=47 if paper else 5, image_size=size, order="iid"),
    )
    return {
        "FLP": Preset(
            "FLP",
            FLPConfig(
                layer_sizes=(feat, hidden, units),
                task="classification",
                init_plasticity=0.0,
                init_feedback_strength=1.0,
                hidden_plasticity_multiplier=10.0,
                trunk=trunk,
            ),
            MetaTrainConfig(
                steps=steps,
                meta_batch_size=mb,
                default_lr=1e-3,
                lr={"plasticity": 3e-3, "feedback_strength": 0.0},
                checkpoint_every=25,
            ),
            source,
        ),
        "OML": Preset(
            "OML",
            OMLConfig(
                rln_sizes=(feat, hidden),
                pln_sizes=(hidden, units),
                task="classification",
                inner_lr=0.03,
                trunk=trunk,
            ),
            MetaTrainConfig(steps=steps, meta_batch_size=mb, default_lr=1e-3, checkpoint_every=25),
            source,
        ),
        "MetaPlasticityRule": rule,
    }


def complex_synapse_preset(scenario: str, source: dict[str, Any]) -> Preset:
    """The complex synapse (Zucchet et al.) meta-trained by the contrastive rule, on the episodes
    ``source`` of the scenario's other learners, so that its comparison stream has the same shape: the
    settings of ``benchmarks/contrastive.py`` (its continual sections).

    Sine: the MLP 11-64-64-64-1 (ReLU) of FLP/OML's ``cpu`` size, lambda from 1e-3 (meta-learned), the
    symmetric estimator with beta 0.05, a free phase of 30 and nudged phases of 15 gradient steps (lr 0.02),
    300 meta-updates of 4 tasks, Adam 3e-3; deployed by SGD at 0.05. Omniglot: the four-block conv net
    (32 channels, per-example GroupNorm) with the stream's head, lambda 0.25 fixed and omega meta-learned,
    beta 0.1, free 20 / nudged 10 steps (lr 0.1), 100 meta-updates of 4 tasks, Adam 3e-3; deployed by SGD at
    1e-3 (the best of the benchmark's grid on a validation class order)."""
    if scenario == "sine":
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
            init_lambda=0.25,
            learn_lambda=False,
            inner_lr=1e-3,
        )
        free, nudged = (
            SolverConfig(lr=0.1, max_steps=20, tol=None),
            SolverConfig(lr=0.1, max_steps=10, tol=None),
        )
        beta, steps, lr, clip, every = 0.1, 100, 3e-3, None, 10
    meta = BilevelMetaTrainConfig(
        steps=steps,
        meta_batch_size=4,
        estimator="contrastive",
        lr=lr,
        contrastive=ContrastiveConfig(
            beta=beta, variant="symmetric", free=free, nudged=nudged, on_nonconvergence="skip"
        ),
        unrolled=free,
        grad_clip=clip,
        checkpoint_every=every,
    )
    return Preset("ComplexSynapse", config, meta, dict(source))
