"""Meta-learned plasticity rules on fixed random feedback (Shervani-Tabar & Rosenbaum 2023) as Avalanche
strategies: :class:`MetaPlasticityRule` deploys a learned rule online; :class:`FeedbackAlignment` is the
pseudo-gradient term alone (online feedback alignment), the paper's baseline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn as nn
from avalanche.training.plugins.evaluation import default_evaluator

from avalanche_plasticity.plasticity_rules.learner import (
    PlasticityRuleLearner,
    load_rule,
    rule_learner,
)
from avalanche_plasticity.plasticity_rules.terms import PAPER_POOL

from .online import (
    PRETRAINED_PREFIX,
    LocalRuleTemplate,
    PlasticModel,
    check_number,
    check_seed,
    shipped_by_name,
)

#: Hidden widths of the authors' network (784-170-130-100-70-47).
PAPER_HIDDEN_SIZES: tuple[int, ...] = (170, 130, 100, 70)


def deploy_learner(
    learner: PlasticityRuleLearner | str | Path | Mapping[str, float],
    *,
    num_classes: int | None,
    hidden_sizes: Sequence[int] | None,
    input_shape: Sequence[int] | None,
    seed: int,
    init_gain: float | None = None,
) -> PlasticityRuleLearner:
    """The rule on the stream's network: a learner, a checkpoint path or ``{term: theta}``; the
    coefficients are frozen and ``hidden_sizes``/``num_classes``/``input_shape`` (when given) replace the
    learner's network.

    :raises TypeError: ``learner`` is none of those.
    :raises ValueError: unknown terms, sizes that are not positive ints, or an ``init_gain`` that is not a
        finite number > 0.
    """
    check_seed(seed)
    if isinstance(learner, str) and learner.startswith(PRETRAINED_PREFIX):
        learner = shipped_by_name(learner, "PlasticityRuleLearner")
    elif isinstance(learner, (str, Path)):
        learner = load_rule(learner)
    elif isinstance(learner, Mapping):
        learner = rule_learner(tuple(learner), coefficients=dict(learner))
    if not isinstance(learner, PlasticityRuleLearner):
        raise TypeError(
            "learner must be a PlasticityRuleLearner, the path of its checkpoint or a {term: coefficient} "
            f"mapping, got {type(learner).__name__}"
        )
    sizes = list(learner.config.layer_sizes)
    shape = tuple(learner.input_shape)
    if input_shape is not None:
        shape = tuple(int(n) for n in input_shape)
        sizes[0] = int(torch.Size(shape).numel())
    if hidden_sizes is not None:
        hidden = tuple(hidden_sizes)
        if not all(isinstance(n, int) and n >= 1 for n in hidden):
            raise ValueError(f"hidden_sizes must be positive ints, got {hidden_sizes!r}")
        sizes = [sizes[0], *hidden, sizes[-1]]
    if num_classes is not None:
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        sizes[-1] = num_classes
    deployed = learner.with_network(sizes, shape, init_gain)
    deployed.freeze()
    deployed.generator = torch.Generator().manual_seed(int(seed))
    deployed.inplace = True  # the strategy owns its plastic weights
    return deployed


MINIBATCH_MODES = ("sequential", "sum")


class SequentialPlasticModel(PlasticModel):
    """A :class:`PlasticModel` that learns a minibatch one sample at a time, in order: ``B`` online
    updates, as a rule meta-learned at batch size 1 learns."""

    def learn(self, x: torch.Tensor, y: torch.Tensor, *, checked: bool = False) -> None:
        if len(x) <= 1:
            return super().learn(x, y, checked=checked)
        for i in range(len(x)):
            super().learn(x[i : i + 1], y[i : i + 1], checked=checked)


class MetaPlasticityRule(LocalRuleTemplate):
    """Deploy a (meta-learned) plasticity rule online in any Avalanche classification stream.

    A fully connected softplus network (no biases) learns online with ``W <- W + sum_r theta_r F_r``
    through its fixed random feedback matrices; there is no optimizer and no autograd. Forward weights
    (times ``init_gain``) and feedback weights are drawn Xavier-uniform from ``seed``; the rule's
    coefficients never change here. Works with ``EvaluationPlugin`` and ``ReplayPlugin`` (replayed samples
    join the online update). The paper learns one sample at a time, and so does a larger training minibatch
    by default (``minibatch``); a one-sample step of the paper's terms runs fused, as two outer products per
    layer (:mod:`avalanche_plasticity.plasticity_rules.fused`).

    :param learner: a :class:`~avalanche_plasticity.plasticity_rules.PlasticityRuleLearner`, the path of
        its checkpoint, or a ``{term: coefficient}`` mapping.
    :param num_classes: output units (default: the learner's).
    :param hidden_sizes: hidden widths (default: the learner's network).
    :param input_shape: shape of one input (default: the learner's, e.g. ``(1, 28, 28)``).
    :param seed: draws the initial forward and the fixed feedback weights, and seeds the strategy's random
        state (training data order, from a stream of its own).
    :param init_gain: gain on the forward weights' Xavier init (default: the learner's; 1 is the paper's,
        ``math.sqrt(2)`` keeps the input signal in deep nets). Deploy a rule with the gain it was
        meta-trained under.
    :param reset_on_train: restart from fresh weights at each ``train()`` call (default False).
    :param minibatch: what a training minibatch of ``B > 1`` samples does: ``"sequential"`` (default: ``B``
        online updates, one per sample in order, as the rule was meta-learned at batch size 1; the same
        weights as ``train_mb_size=1`` on the same sample order) or ``"sum"`` (one update with every term
        summed over the minibatch: ``B`` times the step of one sample, which a rule meta-learned for one
        sample may not survive).
    """

    def __init__(
        self,
        *,
        learner: PlasticityRuleLearner | str | Path | Mapping[str, float],
        num_classes: int | None = None,
        hidden_sizes: Sequence[int] | None = None,
        input_shape: Sequence[int] | None = None,
        seed: int = 0,
        init_gain: float | None = None,
        criterion: nn.Module | None = None,
        train_mb_size: int = 1,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        device: str | torch.device = "cpu",
        plugins=None,
        evaluator=default_evaluator,
        eval_every: int = -1,
        reset_on_train: bool = False,
        minibatch: str = "sequential",
        **base_kwargs,
    ) -> None:
        if minibatch not in MINIBATCH_MODES:
            raise ValueError(f"minibatch must be one of {MINIBATCH_MODES}, got {minibatch!r}")
        self.minibatch = minibatch
        deployed = deploy_learner(
            learner,
            num_classes=num_classes,
            hidden_sizes=hidden_sizes,
            input_shape=input_shape,
            seed=seed,
            init_gain=init_gain,
        )
        self.learner = deployed
        placeholder = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.0)
        super().__init__(
            model=SequentialPlasticModel(deployed) if minibatch == "sequential" else PlasticModel(deployed),
            optimizer=placeholder,
            task="classification",
            criterion=criterion,
            train_mb_size=train_mb_size,
            train_epochs=train_epochs,
            eval_mb_size=eval_mb_size,
            device=device,
            plugins=plugins,
            evaluator=evaluator,
            eval_every=eval_every,
            seed=seed,
            **base_kwargs,
        )
        self.reset_on_train = reset_on_train

    def rule(self) -> dict[str, float]:
        """The deployed coefficients by term."""
        return self.learner.rule()


class FeedbackAlignment(MetaPlasticityRule):
    """Online feedback alignment: the pseudo-gradient term alone, ``W <- W - lr e_l^T y_{l-1}``, with
    errors sent back through fixed random feedback matrices (the paper's baseline). ``symmetric=True``
    ties the feedback to the forward weights, which is online backprop SGD on the same network.

    :param lr: the pseudo-gradient coefficient ``theta_0``.
    :param input_norm: scale every input to this L2 norm first (None: raw inputs); see
        :class:`~avalanche_plasticity.plasticity_rules.PlasticityRuleConfig`.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        lr: float = 0.03,
        hidden_sizes: Sequence[int] = PAPER_HIDDEN_SIZES,
        input_shape: Sequence[int] = (1, 28, 28),
        symmetric: bool = False,
        input_norm: float | None = None,
        **kwargs,
    ) -> None:
        check_number("lr", lr)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        shape = tuple(input_shape)
        learner = rule_learner(
            "pseudo_gradient",
            layer_sizes=(int(torch.Size(shape).numel()), *hidden_sizes, num_classes),
            coefficients={"pseudo_gradient": float(lr)},
            feedback="symmetric" if symmetric else "fixed",
            input_shape=shape,
            input_norm=input_norm,
        )
        super().__init__(learner=learner, **kwargs)


__all__ = ["PAPER_POOL", "FeedbackAlignment", "MetaPlasticityRule", "SequentialPlasticModel"]
