"""The complex-synapse and gain-modulation learners as Avalanche strategies that learn online.

At deployment the meta-parameters theta are frozen and the fast weights phi learn online, one SGD step per
training minibatch on the learner's own inner loss: the minibatch's task loss plus the learner's
regulariser (complex synapse: ``sum_i lambda_i (phi_i - omega_i)^2``, a per-synapse meta-learned
consolidation toward the anchors omega; gain modulation: the pull of gains/shifts/readout toward their
meta-learned initial values). These are ordinary SGD strategies on phi, so SGD plugins (Replay, EWC, ...)
compose with them and ``EvaluationPlugin`` metrics work as usual.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from avalanche.training.plugins.evaluation import default_evaluator

from avalanche_plasticity.contrastive.learners import (
    ComplexSynapseLearner,
    GainModulationLearner,
    load_bilevel_learner,
    pull_regulariser,
)

from .online import OnlineLearnerTemplate, check_inputs, check_number, resolve_learner


def _key(name: str) -> str:
    return name.replace(".", "__")


class FastWeightModel(nn.Module):
    """A frozen bilevel learner plus its fast weights as trainable ``nn.Parameter`` s (``self.fast``)."""

    def __init__(self, learner: Any) -> None:
        super().__init__()
        self.learner = learner
        theta = learner.theta()
        init = learner.initial_fast_weights(theta)
        self._names = list(init)
        self.fast = nn.ParameterDict({_key(n): nn.Parameter(w.detach().clone()) for n, w in init.items()})
        # the regulariser's pulls (c, anchor) of the frozen theta, computed once; as buffers they follow
        # the model's device and dtype
        pulls = learner.regulariser_pulls(theta)
        self._pulled = list(pulls)
        for i, (c, anchor) in enumerate(pulls.values()):
            self.register_buffer(f"_pull_strength{i}", torch.as_tensor(c).detach().clone(), persistent=False)
            self.register_buffer(f"_pull_anchor{i}", anchor.detach().clone(), persistent=False)

    def fast_weights(self) -> dict[str, torch.Tensor]:
        return {n: self.fast[_key(n)] for n in self._names}

    @torch.no_grad()
    def reset(self) -> None:
        """Back to the meta-learned initial fast weights (in place, so optimizers keep their references)."""
        init = self.learner.initial_fast_weights(self.learner.theta())
        for n in self._names:
            self.fast[_key(n)].copy_(init[n])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_inputs(x, self.learner.input_shape)
        return self.learner.predict(self.fast_weights(), self.learner.theta(), x)

    def pulls(self) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """``(fast weight, c, anchor)`` of the regulariser ``R = sum c/2 (phi - anchor)^2``."""
        return [
            (n, getattr(self, f"_pull_strength{i}"), getattr(self, f"_pull_anchor{i}"))
            for i, n in enumerate(self._pulled)
        ]

    def regulariser(self) -> torch.Tensor:
        """The learner's regulariser at the current fast weights (differentiable)."""
        return pull_regulariser(self.fast_weights(), {n: (c, anchor) for n, c, anchor in self.pulls()})

    @torch.no_grad()
    def add_regulariser_gradient(self) -> None:
        """``grad phi += dR/dphi = c (phi - anchor)``: the regulariser's part of the inner-loss gradient in
        closed form (an online step about 1.8 times faster than back-propagating through ``R``;
        ``benchmarks/bilevel_speed.py``). Fast weights a user froze (``requires_grad=False``) stay alone."""
        fast = self.fast_weights()
        for n, c, anchor in self.pulls():
            if not fast[n].requires_grad:
                continue
            pull = c * (fast[n] - anchor)
            if fast[n].grad is None:
                fast[n].grad = pull
            else:
                fast[n].grad.add_(pull)


class UnstableLearningRateError(ValueError):
    """An SGD rate at which the learner's pull toward its anchors makes SGD diverge."""


class _BilevelOnlineStrategy(OnlineLearnerTemplate):
    learner_class: type = nn.Module

    def __init__(
        self,
        *,
        learner: Any,
        optimizer: torch.optim.Optimizer | None = None,
        lr: float | None = None,
        momentum: float = 0.0,
        criterion: nn.Module | None = None,
        train_mb_size: int = 1,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        device: str | torch.device = "cpu",
        plugins=None,
        evaluator=default_evaluator,
        eval_every: int = -1,
        reset_on_train: bool = False,
        seed: int = 0,
        **base_kwargs,
    ) -> None:
        if lr is not None:
            check_number("lr", lr)
        check_number("momentum", momentum, low_inclusive=True, high=1.0)
        learner = resolve_learner(learner, self.learner_class.__name__, load=load_bilevel_learner)
        model = FastWeightModel(learner)
        if optimizer is None:
            lr = learner.config.inner_lr if lr is None else lr
            check_number("lr", lr)
            # the pull sum_i lambda_i (phi_i - omega_i)^2 is a quadratic of curvature 2 lambda: SGD (heavy
            # ball) on it is stable only while lr * 2 lambda < 2 (1 + momentum)
            pull = learner.strongest_pull()
            if lr * pull >= 1 + momentum:
                raise UnstableLearningRateError(
                    f"lr {lr:g} makes SGD on this learner's pull toward its anchors diverge: its strongest "
                    f"pull is {pull:g}, and SGD overshoots it when lr * pull >= 1 + momentum; use "
                    f"lr < {(1 + momentum) / pull:g}"
                )
            optimizer = torch.optim.SGD(model.fast.parameters(), lr=lr, momentum=momentum)
        elif not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}"
            )
        super().__init__(
            model=model,
            optimizer=optimizer,
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

    def train(self, experiences, eval_streams=None, **kwargs):
        if self.reset_on_train:
            self.model.reset()
            self.optimizer.state.clear()
        return super().train(experiences, eval_streams, **kwargs)

    def criterion(self):
        """Task loss; while training, plus the learner's regulariser (its inner loss L_in). The regulariser
        enters the value only: :meth:`backward` adds its gradient in closed form."""
        loss = super().criterion()
        if self.is_training:
            with torch.no_grad():
                value = self.model.regulariser()
            loss = loss + value
        return loss

    def backward(self):
        """Back-propagate the loss, then add the regulariser's gradient ``c (phi - anchor)``."""
        super().backward()
        self.model.add_regulariser_gradient()


class ComplexSynapse(_BilevelOnlineStrategy):
    """Deploy a meta-trained :class:`~avalanche_plasticity.contrastive.ComplexSynapseLearner`: all weights
    learn online by SGD on ``task loss + sum_i lambda_i (phi_i - omega_i)^2`` from ``phi = omega``.

    :param learner: the learner, the path of its checkpoint or ``"pretrained:<scenario>[/<scale>]"`` (shipped
        with the package, e.g. ``"pretrained:omniglot"``); its meta-parameters stay frozen.
    :param optimizer: optimizer over ``model.fast`` (default SGD at ``lr``, default the learner's
        ``inner_lr``, with ``momentum``).
    :param reset_on_train: restart from omega at each ``train()`` call (default False: keep learning).
    :param lr: learning rate of the default optimizer (a finite number > 0).
    :param momentum: its momentum, in [0, 1).
    :param seed: seed of the strategy's random state (training data order and any other draw while it
        trains or evaluates).
    """

    learner_class = ComplexSynapseLearner


class GainModulation(_BilevelOnlineStrategy):
    """Deploy a meta-trained :class:`~avalanche_plasticity.contrastive.GainModulationLearner`: the body is
    frozen and the per-neuron gains, shifts and readout learn online by SGD on the task loss plus their
    pull toward the meta-learned initial values. Arguments as :class:`ComplexSynapse`."""

    learner_class = GainModulationLearner


__all__ = ["ComplexSynapse", "FastWeightModel", "GainModulation", "UnstableLearningRateError"]
