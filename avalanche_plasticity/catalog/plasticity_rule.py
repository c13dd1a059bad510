"""The meta-learned plasticity rule on fixed random feedback (Shervani-Tabar & Rosenbaum 2023):
``MetaPlasticityRule``, and its floor ``FeedbackAlignment`` (the pseudo-gradient alone on the same
network). Both learn from a softmax output error: classification streams only."""

from __future__ import annotations

from typing import Any

from ..meta_learning import MetaTrainConfig, meta_train
from ..plasticity_rules import RELEASED_POOL
from ..plasticity_rules.learner import (
    PAPER_LAYER_SIZES,
    PlasticityRuleConfig,
    PlasticityRuleLearner,
    load_rule,
)
from ..presets import Preset
from ..registry import LearnerSpec, StrategyContext, StrategySpec, register_learner, register_strategy
from . import omniglot

NAME = "MetaPlasticityRule"
CLASSIFICATION = ("classification",)


#: The L2 norm the ``cpu`` rule's network scales every input to: the mean norm of an Omniglot background
#: character at 28x28 (6.52; MNIST digits: 9.21).
OMNIGLOT_INPUT_NORM = 6.5


def preset(scenario: str, scale: str) -> Preset | None:
    """The rule on the authors' fully connected softplus net (hidden 170-130-100-70) over the stream's
    pixels, meta-trained on Omniglot episodes of images learned one at a time.

    ``cpu`` (the rule the MNIST-family streams deploy): the three terms of the authors' released code
    (pseudo-gradient, eHebb, Oja), inputs scaled to the L2 norm of an Omniglot character
    (:data:`OMNIGLOT_INPUT_NORM`), and episodes that are streams of four 5-way tasks of 15 images each
    (300 online steps, the query on the last task), 150 meta-updates of 4 episodes, Adam 1e-3, L1 0.1,
    from the pseudo-gradient at 0.03. Each of the three changes is needed for the rule to stay finite over
    a long stream (``benchmarks/NOTES.md``): the ten-term pool meta-trained on single 75-step episodes
    learned a negative weight decay and cubic terms and diverged within 400 steps of SplitMNIST; on 300-step
    streams the ten-term pool still diverged within 3,100 steps, or, with normalised inputs, shut down;
    the three terms without normalised inputs diverged after 40,000 steps, once MNIST's brighter digits
    (twice Omniglot's squared norm) pushed the Oja term past its stability bound.

    ``paper``: the ten-term pool on raw pixels, one 5-way episode per update, 600 updates, Adam 1e-3,
    starting at 1e-3, 47 output units. The rule's coefficients are shared by all layers, so it is deployed
    on a network with the stream's number of classes."""
    if scenario != omniglot.NAME:
        return None
    size = omniglot.shared(scale)["trunk"]["image_size"]
    if scale == "paper":
        return Preset(
            NAME,
            PlasticityRuleConfig(
                layer_sizes=(size * size, *PAPER_LAYER_SIZES[1:-1], 47),
                init_coefficients={"pseudo_gradient": 1e-3},
                l1=0.1,
                input_shape=(1, size, size),
            ),
            MetaTrainConfig(steps=600, meta_batch_size=1, default_lr=1e-3, checkpoint_every=10),
            dict(ways=5, shots=15, query_shots=5, num_units=47, image_size=size, order="iid"),
        )
    return Preset(
        NAME,
        PlasticityRuleConfig(
            layer_sizes=(size * size, *PAPER_LAYER_SIZES[1:-1], 5),
            terms=RELEASED_POOL,
            init_coefficients={"pseudo_gradient": 0.03},
            l1=0.1,
            input_shape=(1, size, size),
            input_norm=OMNIGLOT_INPUT_NORM * size / 28,  # the same ink per pixel at another image size
        ),
        MetaTrainConfig(steps=150, meta_batch_size=4, default_lr=1e-3, checkpoint_every=10),
        dict(ways=5, shots=15, query_shots=5, num_units=5, image_size=size, order="iid", tasks=4),
    )


def _rule_strategy(ctx: StrategyContext) -> Any:
    from avalanche_plasticity.strategies import MetaPlasticityRule

    return MetaPlasticityRule(learner=ctx.learner, num_classes=ctx.num_classes, seed=ctx.seed, **ctx.common)


def _feedback_alignment(ctx: StrategyContext) -> Any:
    from avalanche_plasticity.strategies import FeedbackAlignment
    from avalanche_plasticity.strategies.plasticity_rules import PAPER_HIDDEN_SIZES

    arch = ctx.architecture
    shape = tuple(getattr(arch, "input_shape", None) or (1, 28, 28))
    hidden = tuple(arch.layer_sizes[1:-1]) if arch is not None else PAPER_HIDDEN_SIZES
    return FeedbackAlignment(
        num_classes=ctx.num_classes,
        lr=ctx.lr if ctx.lr is not None else 0.03,
        hidden_sizes=hidden,
        input_shape=shape,
        input_norm=getattr(arch, "input_norm", None),  # the same network as the rule's
        seed=ctx.seed,
        **ctx.common,
    )


SPEC = register_learner(
    LearnerSpec(
        name=NAME,
        config_class=PlasticityRuleConfig,
        learner_class=PlasticityRuleLearner,
        presets=preset,
        build=lambda p, seed: PlasticityRuleLearner(p.learner_config),  # weights drawn afresh per episode
        meta_train=meta_train,
        load=load_rule,
        make=_rule_strategy,
        tasks=CLASSIFICATION,
        has_lr=False,  # the rule's coefficients are meta-learned
        meta_gradients=("stored", "memory_lean"),  # memory-lean: checkpointed sqrt(T) segments
    )
)
FEEDBACK_ALIGNMENT = register_strategy(
    StrategySpec("FeedbackAlignment", make=_feedback_alignment, tasks=CLASSIFICATION, architecture_from=NAME)
)
