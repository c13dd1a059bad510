"""Inner-loop solvers: minimise a loss over the fast weights phi to a gradient-norm tolerance.

Fast weights are a ``dict[str, Tensor]``. :func:`minimise` runs (Nesterov-)momentum gradient descent from a
starting point until ``||grad_phi L|| <= tol`` or ``max_steps`` updates, and raises
:class:`InnerSolverError` when the tolerance is not met: an equilibrium that was not reached is never used
silently. ``tol=None`` asks explicitly for a fixed budget of ``max_steps`` updates (the final gradient norm
is still returned). :func:`unroll` runs the same updates keeping the autograd graph, for
back-propagation through learning (the MAML-style baseline).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Tensor = torch.Tensor
Params = dict[str, Tensor]


class InnerSolverError(RuntimeError):
    """The inner problem did not reach its tolerance within the step limit, or diverged."""


@dataclass(frozen=True)
class SolverConfig:
    """Gradient descent with momentum on the fast weights.

    :param lr: step size.
    :param max_steps: step limit (updates).
    :param tol: stop when the global gradient norm ``||grad_phi L||_2 <= tol``; ``None``: run exactly
        ``max_steps`` updates with no convergence check (an explicit fixed budget).
    :param momentum: heavy-ball coefficient in [0, 1) (PyTorch's SGD convention).
    :param nesterov: Nesterov momentum (needs ``momentum > 0``).
    """

    lr: float = 0.1
    max_steps: int = 1000
    tol: float | None = 1e-4
    momentum: float = 0.9
    nesterov: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool) or self.max_steps < 0:
            raise ValueError(f"max_steps must be an int >= 0, got {self.max_steps!r}")
        if self.tol is not None and not (isinstance(self.tol, (int, float)) and self.tol > 0):
            raise ValueError(f"tol must be None (fixed budget) or a number > 0, got {self.tol!r}")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")


@dataclass
class SolveResult:
    """The end state of an inner solve: fast weights (detached), updates taken, final gradient norm and
    whether the tolerance was met (``False`` for a fixed budget)."""

    fast: Params
    steps: int
    grad_norm: float
    converged: bool


def global_norm(tensors: list[Tensor]) -> Tensor:
    return torch.sqrt(
        sum((t.detach().double().square().sum() for t in tensors), torch.zeros((), dtype=torch.float64))
    )


def _momentum_update(
    fast: Params, grads: list[Tensor], velocity: list[Tensor] | None, config: SolverConfig
) -> tuple[Params, list[Tensor] | None]:
    """phi <- phi - lr d, with v <- mu v + g and d = v (heavy ball) or g + mu v (Nesterov)."""
    if config.momentum == 0:
        return {k: w - config.lr * g for (k, w), g in zip(fast.items(), grads, strict=True)}, None
    mu = config.momentum
    velocity = grads if velocity is None else [mu * v + g for v, g in zip(velocity, grads, strict=True)]
    direction = [g + mu * v for g, v in zip(grads, velocity, strict=True)] if config.nesterov else velocity
    new = {k: w - config.lr * d for (k, w), d in zip(fast.items(), direction, strict=True)}
    return new, velocity


def minimise(
    loss_fn: Callable[[Params], Tensor], start: Params, config: SolverConfig, *, what: str = "inner problem"
) -> SolveResult:
    """Minimise ``loss_fn(phi)`` over ``phi`` from ``start`` (no graph to ``start`` is kept).

    :param what: names the problem in error messages (e.g. ``"free phase"``).
    :raises InnerSolverError: the loss or gradient became non-finite, or ``config.tol`` was not reached
        within ``config.max_steps`` updates.
    """
    fast = {k: v.detach().clone() for k, v in start.items()}
    velocity = None
    grad_norm = float("nan")
    for step in range(config.max_steps + 1):
        with torch.enable_grad():
            leaves = {k: v.requires_grad_() for k, v in fast.items()}
            loss = loss_fn(leaves)
            grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
        grads = [torch.zeros_like(w) if g is None else g for w, g in zip(leaves.values(), grads, strict=True)]
        grad_norm = float(global_norm(grads))
        loss = float(loss.detach())
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            raise InnerSolverError(
                f"{what} diverged after {step} steps (loss {loss}, gradient norm {grad_norm}); "
                f"lower the solver lr ({config.lr})"
            )
        if config.tol is not None and grad_norm <= config.tol:
            return SolveResult({k: w.detach() for k, w in fast.items()}, step, grad_norm, True)
        if step == config.max_steps:
            break
        with torch.no_grad():
            fast, velocity = _momentum_update(
                {k: w.detach() for k, w in fast.items()}, grads, velocity, config
            )
    if config.tol is not None:
        raise InnerSolverError(
            f"{what} did not converge: gradient norm {grad_norm:.3g} > tol {config.tol:g} after "
            f"max_steps={config.max_steps} steps (lr {config.lr}); raise max_steps, tune lr, loosen tol, "
            "or use on_nonconvergence='skip' to drop (and count) such tasks"
        )
    return SolveResult({k: w.detach() for k, w in fast.items()}, config.max_steps, grad_norm, False)


def unroll(loss_fn: Callable[[Params], Tensor], start: Params, config: SolverConfig) -> Params:
    """``config.max_steps`` momentum-descent updates from ``start``, keeping the autograd graph through
    every step (second-order terms included) so that a loss on the result back-propagates to whatever
    ``start`` and ``loss_fn`` depend on. Memory grows linearly with the number of steps."""
    fast = dict(start)
    velocity = None
    for _ in range(config.max_steps):
        with torch.enable_grad():
            leaves = {k: w if w.requires_grad else w.detach().requires_grad_() for k, w in fast.items()}
            grads = torch.autograd.grad(
                loss_fn(leaves), list(leaves.values()), create_graph=True, allow_unused=True
            )
        grads = [torch.zeros_like(w) if g is None else g for w, g in zip(leaves.values(), grads, strict=True)]
        fast, velocity = _momentum_update(leaves, grads, velocity, config)
    return fast
