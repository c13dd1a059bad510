"""Training feedback weights: a regularizer step per iteration, Kolen-Pollack mirroring, update noise."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import FeedbackLayer, feedback_layers
from .primitives import regularizer_gradient

FEEDBACK_OPTIMIZERS = ("adam", "sgd")


def _randn(like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise shaped like ``like``; from ``generator`` (a CPU generator) when given."""
    if generator is None:
        return torch.randn_like(like)
    return torch.randn(like.shape, generator=generator, dtype=like.dtype).to(like.device)


def feedback_gradients(
    model: nn.Module, generator: torch.Generator | None = None
) -> list[tuple[FeedbackLayer, Tensor]]:
    """Closed-form ∂R/∂F for every learned-feedback layer, from its last training input (W constant).

    :param generator: draws the white-noise inputs of rules with ``inputs="noise"`` (default: torch's
        global RNG).
    """
    grads = []
    for _, layer in feedback_layers(model):
        rule = layer.alignment_rule
        if not rule.learns_feedback or not any(rule.primitives.values()):
            continue
        x, y = layer.last_input, layer.last_output
        if layer._keep_data and x is None:
            continue  # no training forward yet
        if rule.inputs == "noise" and x is not None:
            x = _randn(x, generator) * rule.input_std
            y = layer.geometry().project(x, layer.weight.detach())
        grad = regularizer_gradient(
            dict(rule.primitives),
            layer.feedback_weight.detach(),
            layer.weight.detach(),
            x,
            y,
            layer.geometry(),
        )
        grads.append((layer, grad))
    return grads


class FeedbackTrainer:
    """Owns the optimizer of the learned feedback weights of one converted model.

    :param optimizer: ``"adam"`` or ``"sgd"``; the feedback weights get their own optimizer and learning
        rate, as in the authors' separate ``alignment_optimizer``.
    :param lr: learning rate of that optimizer.
    :param update_noise: variance σ² of the noise added after every update, ``lr · ξ`` with ξ ~ N(0, σ²)
        (the authors' noisy optimizer), to the feedback weights here and to the forward weights by the caller.
    :param generator: draws that noise and the noise inputs (default: torch's global RNG).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        optimizer: str = "adam",
        lr: float = 1e-2,
        update_noise: float = 0.0,
        generator: torch.Generator | None = None,
    ):
        self.validate(optimizer, lr, update_noise)
        self.model = model
        self.generator = generator
        self.lr = lr
        self.update_noise = update_noise
        layers = [m for _, m in feedback_layers(model)]
        self.learned = [
            m
            for m in layers
            if m.alignment_rule.learns_feedback and any(m.alignment_rule.primitives.values())
        ]
        self.tied = [m for m in layers if m.alignment_rule.tie_gradient]
        params = [m.feedback_weight for m in self.learned if not m.alignment_rule.tie_gradient]
        cls = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
        self.optimizer = cls(params, lr=lr) if params else None
        self._weights_before: list[Tensor] = []

    @staticmethod
    def validate(optimizer: str, lr: float, update_noise: float) -> None:
        """Raise ``ValueError`` naming the argument for a bad optimizer name, learning rate or noise."""
        if optimizer not in FEEDBACK_OPTIMIZERS:
            raise ValueError(f"feedback_optimizer must be one of {FEEDBACK_OPTIMIZERS}, got {optimizer!r}")
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < float("inf"):
            raise ValueError(f"feedback_lr must be a finite number > 0, got {lr!r}")
        if (
            isinstance(update_noise, bool)
            or not isinstance(update_noise, int | float)
            or not 0 <= update_noise < float("inf")
        ):
            raise ValueError(f"update_noise must be a finite number >= 0, got {update_noise!r}")

    def step(self) -> None:
        """Descend each layer's regularizer once (call after the task backward pass, before W's update)."""
        grads = [
            (m, g)
            for m, g in feedback_gradients(self.model, self.generator)
            if not m.alignment_rule.tie_gradient
        ]
        if self.optimizer is not None and grads:
            for layer, g in grads:
                layer.feedback_weight.grad = g
            self.optimizer.step()
            for layer, _ in grads:
                layer.feedback_weight.grad = None
                if self.update_noise:
                    add_update_noise(layer.feedback_weight, self.lr, self.update_noise, self.generator)
        self._weights_before = [m.weight.detach().clone() for m in self.tied]

    @torch.no_grad()
    def mirror(self) -> None:
        """Kolen-Pollack, after W's update: F ← F + ΔW; F and W both decay by ``decay`` (so F − W → 0)."""
        for layer, before in zip(self.tied, self._weights_before, strict=False):
            decay = layer.alignment_rule.primitives.get("decay", 0.0)
            layer.feedback_weight.add_(layer.weight - before)
            if decay:
                layer.feedback_weight.mul_(1 - decay)
                layer.weight.mul_(1 - decay)
            if self.update_noise:
                add_update_noise(layer.feedback_weight, self.lr, self.update_noise, self.generator)
        self._weights_before = []


@torch.no_grad()
def add_update_noise(
    param: Tensor, lr: float, variance: float, generator: torch.Generator | None = None
) -> None:
    """``p ← p + lr · ξ``, ξ ~ N(0, variance): the noisy-update perturbation of Kunin et al.

    :param generator: draws ξ (a CPU generator; default: torch's global RNG).
    """
    param.add_(_randn(param, generator), alpha=lr * variance**0.5)
