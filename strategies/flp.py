"""The FLP learner as an Avalanche strategy: online learning by meta-learned feedback + Oja plasticity."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn as nn
from avalanche.training.plugins.evaluation import default_evaluator

from avalanche_plasticity.flp import FLPLearner
from avalanche_plasticity.networks import plastic_forward
from avalanche_plasticity.prototypes import normalized, prototype_logits, prototype_update

from .online import LocalRuleTemplate, PlasticModel, check_inputs, check_number, resolve_learner

READOUTS = ("rule", "prototype")


def deployed_rates(
    learner: FLPLearner, rate_scale: float = 1.0, clamp_negative_rates: bool = False
) -> FLPLearner:
    """``learner`` with its plasticity rates scaled by ``rate_scale`` and, with ``clamp_negative_rates``,
    negative rates set to 0 (anti-Hebbian synapses frozen); a copy whenever anything changes, so the
    learner given (and its checkpoint) keeps its meta-learned rates.

    :raises ValueError: ``rate_scale`` is not a finite number > 0, or ``clamp_negative_rates`` not a bool.
    """
    check_number("rate_scale", rate_scale)
    if not isinstance(clamp_negative_rates, bool):
        raise ValueError(f"clamp_negative_rates must be True or False, got {clamp_negative_rates!r}")
    if rate_scale == 1.0 and not clamp_negative_rates:
        return learner
    learner = copy.deepcopy(learner)
    with torch.no_grad():
        for rate in learner.plasticity_rates:
            if clamp_negative_rates:
                rate.clamp_(min=0.0)
            rate.mul_(float(rate_scale))
    return learner


class PrototypeReadoutModel(nn.Module):
    """A meta-trained FLP network read out by class prototypes (:mod:`avalanche_plasticity.prototypes`).

    The patterns are the L2-normalised activities of layer ``prototype_layer`` of the meta-trained network
    (0: the plastic MLP's input, i.e. the trunk's features; ``l``: hidden layer ``l`` with its meta-learned
    initial weights). Nothing below that layer changes; ``learn`` adds the minibatch to the class means
    (the count-normalised Oja step) and ``forward`` returns ``-1/2 ||a - W_y||^2`` per class.

    :param num_classes: prototype slots (labels in ``[0, num_classes)``); independent of the learner's head.
    """

    def __init__(self, learner: FLPLearner, num_classes: int, prototype_layer: int = 0) -> None:
        super().__init__()
        hidden = len(learner.config.layer_sizes) - 2
        check_number("num_classes", num_classes, low=1, low_inclusive=True, integer=True)
        if isinstance(prototype_layer, bool) or not isinstance(prototype_layer, int):
            raise ValueError(f"prototype_layer must be an int in [0, {hidden}], got {prototype_layer!r}")
        if not 0 <= prototype_layer <= hidden:
            raise ValueError(
                f"prototype_layer must be in [0, {hidden}] (0: the trunk's features, 1..{hidden}: the "
                f"hidden layers of this learner), got {prototype_layer}"
            )
        self.learner = learner
        self.task = "classification"
        self.num_outputs = int(num_classes)
        self.prototype_layer = prototype_layer
        width = learner.config.layer_sizes[prototype_layer]
        self.register_buffer("prototype_means", torch.zeros(num_classes, width))
        self.register_buffer("prototype_counts", torch.zeros(num_classes))

    def reset(self) -> None:
        """Forget every prototype."""
        self.prototype_means.zero_()
        self.prototype_counts.zero_()

    @property
    def fast_weights(self) -> list[torch.Tensor]:
        """The readout's plastic state (the class means), as the strategies check it for finiteness."""
        return [self.prototype_means]

    def patterns(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised activities of the prototype layer for inputs ``x`` ``(B, ...)``: ``(B, d)``."""
        learner = self.learner
        features = learner.features(x).unsqueeze(0)
        if self.prototype_layer > 0:
            weights = learner.initial_fast_weights(1)
            features = plastic_forward(weights, list(learner.biases), features, upto=self.prototype_layer)[-1]
        return normalized(features[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_inputs(x, self.learner.input_shape)
        return prototype_logits(self.prototype_means, self.prototype_counts, self.patterns(x))

    def learn(self, x: torch.Tensor, y: torch.Tensor, *, checked: bool = False) -> None:
        """Add the minibatch ``(x, y)`` to the class means (``checked``: inputs already validated)."""
        if torch.is_grad_enabled():
            with torch.no_grad():
                return self.learn(x, y, checked=checked)
        if not checked:
            check_inputs(x, self.learner.input_shape, y, self.num_outputs, self.task)
        if len(x) == 0:
            return
        means, counts = prototype_update(self.prototype_means, self.prototype_counts, self.patterns(x), y)
        self.prototype_means.copy_(means)
        self.prototype_counts.copy_(counts)


class FLP(LocalRuleTemplate):
    """Deploy a meta-trained FLP learner in an Avalanche stream.

    Each training minibatch drives one online update of the learned rule (feedback weights set the
    layer targets, Oja/Hebbian plasticity moves the weights). Meta-parameters never change here: there
    is no optimizer and no backward pass. Works with ``EvaluationPlugin`` and ``ReplayPlugin`` (replayed
    samples join the online update).

    :param learner: an :class:`~avalanche_plasticity.flp.FLPLearner`, the path of its checkpoint, or
        ``"pretrained:<scenario>[/<scale>]"`` (shipped with the package, e.g. ``"pretrained:omniglot"``).
    :param criterion: loss reported in metrics (default: cross-entropy, or MSE for regression).
    :param reset_on_train: restart from the meta-learned initial weights at each ``train()`` call
        (default False: the learner keeps learning across calls, as in a continual stream).
    :param rate_scale: multiplies every plasticity rate at deployment (a finite number > 0; default 1,
        the meta-learned rates). A rule meta-trained on short episodes may diverge on a long stream
        (its weights turn non-finite, a ``FloatingPointError``); a smaller scale slows it down. The
        learner given is not changed (the strategy deploys a copy).
    :param clamp_negative_rates: set negative plasticity rates to 0 before scaling (default False).
    :param readout: ``"rule"`` (default: the meta-learned rule at every layer, the paper's protocol) or
        ``"prototype"`` (classification: the output rule with a count-normalised rate, so each class keeps
        the mean of its patterns, read out by nearest mean; see :class:`PrototypeReadoutModel`). The
        prototype readout keeps every class seen on an arbitrarily long class-incremental stream and treats
        a minibatch exactly as the same images one at a time; the layers below it are not plastic.
    :param prototype_layer: with ``readout="prototype"``, the layer whose activity the prototypes store
        (0, the default: the trunk's features; ``l``: hidden layer ``l``).
    :param num_classes: with ``readout="prototype"``, the number of classes (default: the head's units); it
        may exceed the head, as the prototypes do not use the meta-trained head.
    :param seed: seed of the strategy's random state (training data order and any other draw while it
        trains or evaluates; see :class:`~strategies.online.RunSeeding`).
    """

    def __init__(
        self,
        *,
        learner: FLPLearner | str | Path,
        criterion: nn.Module | None = None,
        train_mb_size: int = 1,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        device: str | torch.device = "cpu",
        plugins=None,
        evaluator=default_evaluator,
        eval_every: int = -1,
        reset_on_train: bool = False,
        rate_scale: float = 1.0,
        clamp_negative_rates: bool = False,
        readout: str = "rule",
        prototype_layer: int = 0,
        num_classes: int | None = None,
        seed: int = 0,
        **base_kwargs,
    ) -> None:
        learner = deployed_rates(resolve_learner(learner, "FLPLearner"), rate_scale, clamp_negative_rates)
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        if readout == "prototype" and learner.config.task != "classification":
            raise ValueError("readout='prototype' needs a classification learner, got a regression one")
        if readout == "rule" and num_classes is not None:
            raise ValueError("num_classes is the prototype readout's; with readout='rule' the head sets it")
        self.rate_scale = float(rate_scale)
        self.clamp_negative_rates = clamp_negative_rates
        self.readout = readout
        if readout == "prototype":
            classes = learner.num_outputs if num_classes is None else num_classes
            model: nn.Module = PrototypeReadoutModel(learner, classes, prototype_layer)
        else:
            model = PlasticModel(learner)
        # Avalanche's template wants an optimizer; FLP has none at deployment.
        placeholder = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.0)
        super().__init__(
            model=model,
            optimizer=placeholder,
            task=learner.config.task,
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


__all__ = ["FLP", "PrototypeReadoutModel", "deployed_rates"]
