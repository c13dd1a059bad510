"""Shared pieces of the online strategies: input validation and the plastic-model wrapper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from avalanche.training.templates import SupervisedTemplate

from avalanche_plasticity.meta_learning import load_learner

Tensor = torch.Tensor


def resolve_learner(learner: Any, kind: str) -> Any:
    """Accept a learner object or a checkpoint path; return the learner (frozen, eval mode)."""
    if isinstance(learner, (str, Path)):
        learner = load_learner(learner, kind=kind)
    if type(learner).__name__ != kind:
        raise TypeError(f"learner must be a {kind} or a path to its checkpoint, got {type(learner).__name__}")
    for p in learner.parameters():
        p.requires_grad_(False)
    return learner


def check_inputs(
    x: Tensor,
    input_shape: tuple[int, ...],
    y: Tensor | None = None,
    num_outputs: int | None = None,
    task: str = "classification",
) -> None:
    """Raise ``ValueError`` for a wrong input shape, non-finite values or labels beyond the head."""
    if x.dim() != len(input_shape) + 1 or tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"input batch must have shape (batch, {', '.join(map(str, input_shape))}), got {tuple(x.shape)}"
        )
    if not torch.isfinite(x).all():
        raise ValueError("input batch contains NaN or infinite values")
    if y is None:
        return
    if task == "classification":
        if y.dtype.is_floating_point or y.dim() != 1:
            raise ValueError(f"labels must be a 1-d integer tensor, got {y.dtype} of shape {tuple(y.shape)}")
        if len(y) and (y.min() < 0 or y.max() >= num_outputs):
            raise ValueError(
                f"labels must be in [0, {num_outputs}) (the head has {num_outputs} units), "
                f"got labels in [{int(y.min())}, {int(y.max())}]"
            )
    else:
        if not torch.isfinite(y).all():
            raise ValueError("regression targets contain NaN or infinite values")


class PlasticModel(nn.Module):
    """A meta-trained learner plus its current plastic (fast) weights, as a plain ``nn.Module``.

    ``forward(x)`` predicts with the current weights; ``learn(x, y)`` applies one online update of the
    learner's own rule. ``reset()`` returns to the meta-learned initial weights.
    """

    def __init__(self, learner: Any) -> None:
        super().__init__()
        self.learner = learner
        self.task = learner.config.task
        self._names: list[str] = []
        self.reset()

    def reset(self) -> None:
        for i, w in enumerate(self.learner.initial_fast_weights(1)):
            name = f"fast_{i}"
            self.register_buffer(name, w.detach().clone())
            if name not in self._names:
                self._names.append(name)

    @property
    def fast_weights(self) -> list[Tensor]:
        return [getattr(self, n) for n in self._names]

    def forward(self, x: Tensor) -> Tensor:
        check_inputs(x, self.learner.input_shape)
        return self.learner.predict(self.fast_weights, self.learner.features(x).unsqueeze(0))[0]

    def learn(self, x: Tensor, y: Tensor) -> None:
        if torch.is_grad_enabled():  # the strategy's training epoch already runs under no_grad
            with torch.no_grad():
                return self.learn(x, y)
        check_inputs(x, self.learner.input_shape, y, self.learner.num_outputs, self.task)
        if len(x) == 0:
            return
        y = y.reshape(len(x), -1) if self.task == "regression" else y
        new = self.learner.step(self.fast_weights, self.learner.features(x).unsqueeze(0), y.unsqueeze(0))
        for name, w in zip(self._names, new, strict=True):
            if w is not getattr(self, name):  # an in-place rule keeps its tensors (and their cached views)
                setattr(self, name, w.detach())


def check_experience(strategy: Any) -> None:
    """Raise ``ValueError`` for an empty training experience."""
    ds = strategy.experience.dataset
    if len(ds) == 0:
        raise ValueError(f"training experience {strategy.experience.current_experience} is empty")


class OnlineLearnerTemplate(SupervisedTemplate):
    """Shared base of the strategies that deploy a meta-trained learner: the default criterion follows
    the learner's task, ``eval_mb_size`` defaults to ``train_mb_size``, empty experiences are refused,
    and the optimizer given at construction is kept as is."""

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        task: str,
        criterion: nn.Module | None = None,
        train_mb_size: int = 1,
        eval_mb_size: int | None = None,
        **base_kwargs,
    ) -> None:
        if criterion is None:
            criterion = nn.MSELoss() if task == "regression" else nn.CrossEntropyLoss()
        super().__init__(
            model=model,
            optimizer=optimizer,
            criterion=criterion,
            train_mb_size=train_mb_size,
            eval_mb_size=eval_mb_size if eval_mb_size is not None else train_mb_size,
            **base_kwargs,
        )

    def make_optimizer(self, **kwargs) -> None:
        """Keep the optimizer given at construction (Avalanche's default would reset it to all model
        parameters, frozen meta-parameters included)."""

    def _before_training_exp(self, **kwargs):
        check_experience(self)
        super()._before_training_exp(**kwargs)


class LocalRuleTemplate(OnlineLearnerTemplate):
    """Base of the strategies whose learning is a local rule applied by the model (``PlasticModel``):
    each training minibatch is one ``model.learn(x, y)`` step, with no autograd, no backward pass and no
    optimizer step. Subclasses set ``reset_on_train`` (restart from the initial weights at each
    ``train()`` call)."""

    reset_on_train: bool = False

    def train(self, experiences, eval_streams=None, **kwargs):
        if self.reset_on_train:
            self.model.reset()
        return super().train(experiences, eval_streams, **kwargs)

    def training_epoch(self, **kwargs):
        with torch.no_grad():
            super().training_epoch(**kwargs)
        # a diverged rule would otherwise go on predicting one class in silence (checked once per epoch:
        # per step would cost a tenth of the step)
        bad = [i for i, w in enumerate(self.model.fast_weights) if not bool(torch.isfinite(w).all())]
        if bad:
            raise FloatingPointError(
                f"{type(self).__name__}: plastic weight tensors {bad} became non-finite (NaN/inf) while "
                f"training experience {self.experience.current_experience}: the rule diverges on this "
                "stream. Lower its rates, drop unstable terms (e.g. a negative weight decay), or "
                "meta-train it on episodes as long as the stream."
            )

    def backward(self) -> None:
        """No backward pass: the rule is local."""

    def optimizer_step(self) -> None:
        """One online update of the rule on the current minibatch."""
        self.model.learn(self.mb_x, self.mb_y)
