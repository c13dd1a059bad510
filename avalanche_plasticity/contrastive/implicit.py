"""Implicit-differentiation reference meta-gradient (conjugate gradient on Hessian-vector products).

At a minimiser phi* of L_in (so d_phi L_in = 0), the implicit function theorem gives

    dL_out/dtheta = d_theta L_out - d2_{theta phi} L_in  H^-1  d_phi L_out,    H = d2_phi L_in,

where ``H^-1 v`` is solved by conjugate gradient using only Hessian-vector products (double backward).
Exact up to the inner tolerance and the CG residual; used by the tests and benchmarks as the ground truth
for the contrastive estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..tasks import EpisodeBatch
from .estimators import (
    BilevelLearner,
    MetaGradient,
    Task,
    _average,
    check_bilevel_learner,
    check_tasks,
    detached,
)
from .solvers import InnerSolverError, SolverConfig, minimise

Tensor = torch.Tensor


class ConjugateGradientError(InnerSolverError):
    """CG did not reach its tolerance, or met non-positive curvature (the inner Hessian is not positive
    definite at the solution, so the implicit formula does not apply)."""


@dataclass(frozen=True)
class CGConfig:
    """:param max_iters: CG iteration limit. :param tol: stop when ``||r|| <= tol * ||b||``.
    :param damping: solve ``(H + damping I) x = b`` (0: exact)."""

    max_iters: int = 200
    tol: float = 1e-8
    damping: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_iters, int) or self.max_iters < 1:
            raise ValueError(f"max_iters must be a positive int, got {self.max_iters!r}")
        if not self.tol > 0:
            raise ValueError(f"tol must be > 0, got {self.tol!r}")
        if not self.damping >= 0:
            raise ValueError(f"damping must be >= 0, got {self.damping!r}")


def _dot(a: list[Tensor], b: list[Tensor]) -> Tensor:
    return sum(
        ((x.double() * y.double()).sum() for x, y in zip(a, b, strict=True)),
        torch.zeros((), dtype=torch.float64),
    )


def conjugate_gradient(
    matvec: Callable[[list[Tensor]], list[Tensor]], b: list[Tensor], config: CGConfig = CGConfig()
) -> tuple[list[Tensor], int]:
    """Solve ``A x = b`` for symmetric positive-definite ``A`` given as ``matvec``; returns ``(x, iters)``.

    :raises ConjugateGradientError: no convergence in ``max_iters``, or ``p^T A p <= 0``.
    """
    x = [torch.zeros_like(t) for t in b]
    r = [t.clone() for t in b]
    p = [t.clone() for t in r]
    rr = _dot(r, r)
    target = config.tol * math.sqrt(float(rr))
    if float(rr) == 0.0:
        return x, 0
    for it in range(1, config.max_iters + 1):
        Ap = matvec(p)
        if config.damping:
            Ap = [a + config.damping * q for a, q in zip(Ap, p, strict=True)]
        pAp = _dot(p, Ap)
        if not float(pAp) > 0:
            raise ConjugateGradientError(
                f"conjugate gradient met non-positive curvature p^T H p = {float(pAp):.3g} "
                f"at iteration {it}: "
                "the inner Hessian is not positive definite here (not a strict minimum); add damping"
            )
        alpha = (rr / pAp).to(b[0].dtype)
        x = [xi + alpha * pi for xi, pi in zip(x, p, strict=True)]
        r = [ri - alpha * api for ri, api in zip(r, Ap, strict=True)]
        rr_new = _dot(r, r)
        if math.sqrt(float(rr_new)) <= target:
            return x, it
        p = [ri + (rr_new / rr).to(b[0].dtype) * pi for ri, pi in zip(r, p, strict=True)]
        rr = rr_new
    raise ConjugateGradientError(
        f"conjugate gradient did not converge in max_iters={config.max_iters} "
        f"(relative residual {math.sqrt(float(rr)) / (target / config.tol):.3g} > tol {config.tol:g})"
    )


def implicit_task_gradient(
    learner: BilevelLearner, task: Task, solver: SolverConfig, cg: CGConfig, theta=None
) -> tuple[dict[str, Tensor], float, dict[str, float]]:
    """The implicit meta-gradient of one task (see the module docstring)."""
    theta = detached(learner.meta_parameters()) if theta is None else theta
    sol = minimise(
        lambda f: learner.inner_loss(f, theta, task),
        learner.initial_fast_weights(theta),
        solver,
        what="inner problem (implicit reference)",
    )
    names = list(theta)
    with torch.enable_grad():
        th = {k: v.detach().requires_grad_() for k, v in theta.items()}
        phi = {k: v.detach().requires_grad_() for k, v in sol.fast.items()}
        phis = list(phi.values())
        grad_in = torch.autograd.grad(learner.inner_loss(phi, th, task), phis, create_graph=True)
        outer = learner.outer_loss(phi, th, task)
        g_out = torch.autograd.grad(outer, [*phis, *th.values()], allow_unused=True)
        v = [torch.zeros_like(w) if g is None else g for w, g in zip(phis, g_out[: len(phis)], strict=True)]
        direct = [
            torch.zeros_like(th[k]) if g is None else g
            for k, g in zip(names, g_out[len(phis) :], strict=True)
        ]

        def hvp(u: list[Tensor]) -> list[Tensor]:
            hu = torch.autograd.grad(grad_in, phis, grad_outputs=u, retain_graph=True, allow_unused=True)
            return [torch.zeros_like(w) if h is None else h for w, h in zip(phis, hu, strict=True)]

        w, iters = conjugate_gradient(hvp, v, cg)
        mixed = torch.autograd.grad(grad_in, list(th.values()), grad_outputs=w, allow_unused=True)
    grads = {
        k: d - (torch.zeros_like(d) if m is None else m) for k, d, m in zip(names, direct, mixed, strict=True)
    }
    return (
        {k: g.detach() for k, g in grads.items()},
        float(outer.detach()),
        {"inner_steps": float(sol.steps), "inner_grad_norm": sol.grad_norm, "cg_iters": float(iters)},
    )


def implicit_meta_gradient(
    learner: BilevelLearner,
    tasks: Sequence[Task] | Task | EpisodeBatch,
    solver: SolverConfig,
    cg: CGConfig = CGConfig(),
) -> MetaGradient:
    """The implicit-function-theorem meta-gradient, averaged over ``tasks``.

    :param solver: must have a tolerance (the formula holds only at a minimiser).
    :raises InnerSolverError: the inner problem did not converge, or CG failed.
    """
    check_bilevel_learner(learner)
    if not isinstance(solver, SolverConfig):
        raise TypeError(f"solver must be a SolverConfig, got {type(solver).__name__}")
    if solver.tol is None:
        raise ValueError("solver.tol must be set for the implicit reference (it holds only at a minimiser)")
    tasks = check_tasks(tasks)
    theta = detached(learner.meta_parameters())
    return _average([implicit_task_gradient(learner, t, solver, cg, theta) for t in tasks], 0, list(theta))
