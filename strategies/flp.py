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

READOUTS = ("rule", "prototype", "experience_prototype")
PROTOTYPE_READOUTS = ("prototype", "experience_prototype")


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
    :param per_experience: keep one prototype per label *and training experience* (set :attr:`experience`
        before learning one) and read out the label of the nearest one. For domain-incremental streams,
        where one label gathers a different input distribution in each experience (SplitMNIST's label 0 is
        digit 0, then 2, 4, ...): their mean is a poor prototype of any of them. Experiences are known while
        training (as every Avalanche strategy knows them); the readout needs none at test time.
    """

    def __init__(
        self, learner: FLPLearner, num_classes: int, prototype_layer: int = 0, per_experience: bool = False
    ) -> None:
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
        self.per_experience = bool(per_experience)
        self.experience = 0  # the training experience whose prototypes learn() adds to (per_experience)
        width = learner.config.layer_sizes[prototype_layer]
        # (experiences x classes, width): slot e * num_classes + y; one group of slots unless per_experience
        self.register_buffer("prototype_means", torch.zeros(num_classes, width))
        self.register_buffer("prototype_counts", torch.zeros(num_classes))

    def reset(self) -> None:
        """Forget every prototype."""
        C = self.num_outputs
        self.prototype_means = self.prototype_means[:C].zero_()
        self.prototype_counts = self.prototype_counts[:C].zero_()
        self.experience = 0

    def _slots(self, y: torch.Tensor) -> torch.Tensor:
        """The prototype slots of labels ``y`` in the current experience (growing the table if needed)."""
        if not self.per_experience:
            return y
        if isinstance(self.experience, bool) or not isinstance(self.experience, int) or self.experience < 0:
            raise ValueError(f"experience must be an int >= 0, got {self.experience!r}")
        C = self.num_outputs
        needed = (self.experience + 1) * C
        if len(self.prototype_counts) < needed:
            extra = needed - len(self.prototype_counts)
            means, counts = self.prototype_means, self.prototype_counts
            self.prototype_means = torch.cat([means, means.new_zeros(extra, means.shape[1])])
            self.prototype_counts = torch.cat([counts, counts.new_zeros(extra)])
        return y + self.experience * C

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # a per-experience table has as many slots as experiences learned: take the saved size
        for name in ("prototype_means", "prototype_counts"):
            saved = state_dict.get(prefix + name)
            if saved is not None and saved.shape != getattr(self, name).shape:
                setattr(self, name, torch.zeros_like(saved))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

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
        logits = prototype_logits(self.prototype_means, self.prototype_counts, self.patterns(x))
        # per experience: a label's logit is its nearest prototype's, over the experiences
        return logits.view(len(x), -1, self.num_outputs).amax(1) if self.per_experience else logits

    def learn(self, x: torch.Tensor, y: torch.Tensor, *, checked: bool = False) -> None:
        """Add the minibatch ``(x, y)`` to the class means (``checked``: inputs already validated)."""
        if torch.is_grad_enabled():
            with torch.no_grad():
                return self.learn(x, y, checked=checked)
        if not checked:
            check_inputs(x, self.learner.input_shape, y, self.num_outputs, self.task)
        if len(x) == 0:
            return
        slots = self._slots(y)
        means, counts = prototype_update(self.prototype_means, self.prototype_counts, self.patterns(x), slots)
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
        ``"experience_prototype"``: the same with one prototype per label and training experience, for
        domain-incremental streams (a label's logit is its nearest prototype's).
    :param prototype_layer: with a prototype readout, the layer whose activity the prototypes store
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
        if readout in PROTOTYPE_READOUTS and learner.config.task != "classification":
            raise ValueError(f"readout={readout!r} needs a classification learner, got a regression one")
        if readout == "rule" and num_classes is not None:
            raise ValueError("num_classes is the prototype readout's; with readout='rule' the head sets it")
        self.rate_scale = float(rate_scale)
        self.clamp_negative_rates = clamp_negative_rates
        self.readout = readout
        if readout in PROTOTYPE_READOUTS:
            classes = learner.num_outputs if num_classes is None else num_classes
            per_experience = readout == "experience_prototype"
            model: nn.Module = PrototypeReadoutModel(learner, classes, prototype_layer, per_experience)
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

    def _before_training_exp(self, **kwargs):
        if isinstance(self.model, PrototypeReadoutModel):
            self.model.experience = int(self.experience.current_experience)
        super()._before_training_exp(**kwargs)


__all__ = ["FLP", "PrototypeReadoutModel", "deployed_rates"]
