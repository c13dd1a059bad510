"""Meta-gradient estimators for bilevel learners: the contrastive rule and unrolled back-propagation.

A bilevel learner (:class:`BilevelLearner`) learns fast weights phi for one task by minimising an inner
loss and has meta-parameters theta:

    phi*_theta = argmin_phi L_in(phi, theta),    meta-objective  L_out(phi*_theta, theta).

**Contrastive rule** (Zucchet et al., NeurIPS 2022). With the augmented loss
``L(phi, theta, beta) = L_in(phi, theta) + beta L_out(phi, theta)`` and ``g(beta) = d_theta L(phi_beta,
theta, beta)`` evaluated at the minimiser ``phi_beta`` (a partial derivative: no second derivatives, no
backward pass through the inner loop), the meta-gradient is ``dg/dbeta`` at 0, estimated by

* ``one_sided``:    (g(beta) - g(0)) / beta                                    (error O(delta/beta + beta))
* ``symmetric``:    (g(beta) - g(-beta)) / (2 beta)                            (error O(delta/beta + beta^2))
* ``second_order``: (-3/2 g(0) + 2 g(beta) - 1/2 g(2 beta)) / beta             (forward difference, O(beta^2))

The free phase (beta = 0) minimises L_in from the learner's initial fast weights; every nudged phase starts
from the free solution. Estimates are averaged over all tasks of the meta-batch.

**Unrolled** back-propagation (MAML-style) differentiates L_out through a fixed number of inner updates.
The implicit-differentiation reference lives in :mod:`.implicit`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import torch

from ..tasks import EpisodeBatch
from .solvers import InnerSolverError, Params, SolverConfig, minimise, unroll

Tensor = torch.Tensor
Variant = Literal["one_sided", "symmetric", "second_order"]

# Finite-difference stencils: {multiple of beta at which the nudged phase runs: weight}, all divided by beta.
STENCILS: dict[str, dict[int, float]] = {
    "one_sided": {0: -1.0, 1: 1.0},
    "symmetric": {1: 0.5, -1: -0.5},
    "second_order": {0: -1.5, 1: 2.0, 2: -0.5},
}


@dataclass
class Task:
    """One task: a support (training) set for the inner loss and a query set for the outer loss."""

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor


def tasks_from_episodes(batch: EpisodeBatch) -> list[Task]:
    """Split an :class:`~avalanche_plasticity.tasks.EpisodeBatch` into tasks; the support trajectory
    ``(E, T, B, ...)`` becomes one support set of ``T*B`` examples."""
    return [
        Task(
            batch.support_x[i].flatten(0, 1),
            batch.support_y[i].flatten(0, 1),
            batch.query_x[i],
            batch.query_y[i],
        )
        for i in range(batch.episodes)
    ]


@runtime_checkable
class BilevelLearner(Protocol):
    """What the meta-gradient engine needs from a learner (e.g. the complex synapse, gain modulation)."""

    def meta_parameters(self) -> dict[str, torch.nn.Parameter]:
        """theta, by name (the tensors the meta-gradient is for)."""
        ...

    def initial_fast_weights(self, theta: Params) -> Params:
        """phi at the start of a task, possibly a function of theta."""
        ...

    def inner_loss(self, fast: Params, theta: Params, task: Task) -> Tensor:
        """L_in(phi, theta) on the task's support set (a scalar)."""
        ...

    def outer_loss(self, fast: Params, theta: Params, task: Task) -> Tensor:
        """L_out(phi, theta) on the task's query set (a scalar)."""
        ...


REQUIRED = ("meta_parameters", "initial_fast_weights", "inner_loss", "outer_loss")


def check_bilevel_learner(learner: object) -> None:
    """Raise ``TypeError`` if ``learner`` lacks the bilevel interface (e.g. it has no inner loss)."""
    missing = [m for m in REQUIRED if not callable(getattr(learner, m, None))]
    if missing:
        raise TypeError(
            f"learner {type(learner).__name__} has no {', '.join(missing)}: the contrastive rule and the "
            "implicit reference need a learner whose inner problem is a minimisation, with methods "
            f"{', '.join(REQUIRED)} (see avalanche_plasticity.contrastive.BilevelLearner); online-rule "
            "learners such as FLP are meta-trained with avalanche_plasticity.meta_learning instead"
        )


def check_tasks(tasks: object) -> list[Task]:
    if isinstance(tasks, EpisodeBatch):
        return tasks_from_episodes(tasks)
    if isinstance(tasks, Task):
        return [tasks]
    if not isinstance(tasks, Sequence) or not tasks or not all(isinstance(t, Task) for t in tasks):
        raise TypeError(
            "tasks must be a non-empty sequence of Task, a Task or an EpisodeBatch, "
            f"got {type(tasks).__name__}"
        )
    return list(tasks)


@dataclass(frozen=True)
class ContrastiveConfig:
    """Settings of the contrastive estimator.

    :param beta: nudging strength, > 0.
    :param variant: ``"one_sided"``, ``"symmetric"`` or ``"second_order"``.
    :param free: solver of the free phase (from the initial fast weights).
    :param nudged: solver of the nudged phases (from the free solution); default: ``free``.
    :param on_nonconvergence: ``"raise"`` (default) an :class:`InnerSolverError`, or ``"skip"``: leave the
        task out of the meta-batch average and count it in ``MetaGradient.tasks_skipped``.
    """

    beta: float = 0.1
    variant: Variant = "symmetric"
    free: SolverConfig = field(default_factory=SolverConfig)
    nudged: SolverConfig | None = None
    on_nonconvergence: Literal["raise", "skip"] = "raise"

    def __post_init__(self) -> None:
        if (
            isinstance(self.beta, bool)
            or not isinstance(self.beta, (int, float))
            or not math.isfinite(self.beta)
        ):
            raise ValueError(f"beta must be a finite number > 0, got {self.beta!r}")
        if self.beta <= 0:
            raise ValueError(
                f"beta must be > 0, got {self.beta}; the sign of the nudge is set by variant "
                "('symmetric' runs both +beta and -beta)"
            )
        if self.variant not in STENCILS:
            raise ValueError(f"variant must be one of {sorted(STENCILS)}, got {self.variant!r}")
        for name in ("free", "nudged"):
            v = getattr(self, name)
            if not (isinstance(v, SolverConfig) or (name == "nudged" and v is None)):
                raise TypeError(f"{name} must be a SolverConfig, got {type(v).__name__}")
        if self.on_nonconvergence not in ("raise", "skip"):
            raise ValueError(f"on_nonconvergence must be 'raise' or 'skip', got {self.on_nonconvergence!r}")

    @property
    def nudged_solver(self) -> SolverConfig:
        return self.free if self.nudged is None else self.nudged


@dataclass
class MetaGradient:
    """A meta-batch's meta-gradient (mean over the tasks used) and what it cost.

    :ivar grads: d L_out / d theta by meta-parameter name.
    :ivar outer_loss: mean L_out at the free-phase (or unrolled) solution of the tasks used.
    :ivar stats: mean solver steps per phase, the largest final gradient norm, ...
    """

    grads: dict[str, Tensor]
    outer_loss: float
    tasks_used: int
    tasks_skipped: int = 0
    stats: dict[str, float] = field(default_factory=dict)

    def apply_to(self, learner: BilevelLearner) -> None:
        """Write the meta-gradient into ``p.grad`` of the learner's meta-parameters (for an optimizer)."""
        for name, p in learner.meta_parameters().items():
            p.grad = self.grads[name].detach().clone().to(p.dtype)


def detached(theta: dict[str, Tensor]) -> Params:
    return {k: v.detach() for k, v in theta.items()}


def phase_gradient(
    learner: BilevelLearner, fast: Params, theta: Params, task: Task, beta: float
) -> dict[str, Tensor]:
    """Partial derivative d_theta [L_in(phi, theta) + beta L_out(phi, theta)] at fixed ``fast``."""
    leaves = {k: v.detach().requires_grad_() for k, v in theta.items()}
    fixed = {k: v.detach() for k, v in fast.items()}
    with torch.enable_grad():
        loss = learner.inner_loss(fixed, leaves, task)
        if beta != 0:
            loss = loss + beta * learner.outer_loss(fixed, leaves, task)
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    return {
        k: torch.zeros_like(v) if g is None else g for (k, v), g in zip(leaves.items(), grads, strict=True)
    }


def augmented_loss(learner: BilevelLearner, theta: Params, task: Task, beta: float):
    """phi -> L_in(phi, theta) + beta L_out(phi, theta) at fixed theta (the nudged energy)."""
    if beta == 0:
        return lambda fast: learner.inner_loss(fast, theta, task)
    return lambda fast: learner.inner_loss(fast, theta, task) + beta * learner.outer_loss(fast, theta, task)


def contrastive_task_gradient(
    learner: BilevelLearner, task: Task, config: ContrastiveConfig, theta: Params | None = None
) -> tuple[dict[str, Tensor], float, dict[str, float]]:
    """The contrastive estimate for one task, the outer loss at the free solution and solver stats.

    :raises InnerSolverError: a phase did not converge (its solver has a tolerance) or diverged.
    """
    theta = detached(learner.meta_parameters()) if theta is None else theta
    free = minimise(
        augmented_loss(learner, theta, task, 0.0),
        learner.initial_fast_weights(theta),
        config.free,
        what="free phase",
    )
    stats = {"free_steps": float(free.steps), "free_grad_norm": free.grad_norm}
    stencil = STENCILS[config.variant]
    estimate = {k: torch.zeros_like(v) for k, v in theta.items()}
    nudged_steps = []
    for multiple, weight in stencil.items():
        if multiple == 0:
            end = free.fast
        else:
            b = multiple * config.beta
            res = minimise(
                augmented_loss(learner, theta, task, b),
                free.fast,
                config.nudged_solver,
                what=f"nudged phase (beta={b:g})",
            )
            end, _ = res.fast, nudged_steps.append(res.steps)
            stats["nudged_grad_norm"] = max(stats.get("nudged_grad_norm", 0.0), res.grad_norm)
        g = phase_gradient(learner, end, theta, task, multiple * config.beta)
        for k in estimate:
            estimate[k] += (weight / config.beta) * g[k]
    stats["nudged_steps"] = float(sum(nudged_steps) / max(len(nudged_steps), 1))
    with torch.no_grad():
        outer = float(learner.outer_loss(free.fast, theta, task))
    return estimate, outer, stats


def _average(
    per_task: list[tuple[dict[str, Tensor], float, dict[str, float]]], skipped: int, names: list[str]
) -> MetaGradient:
    n = len(per_task)
    grads = {k: sum(g[k] for g, _, _ in per_task) / n for k in names}  # mean over every task used
    stats: dict[str, float] = {}
    for _, _, s in per_task:
        for k, v in s.items():
            if k.endswith("grad_norm"):
                stats[k] = max(stats.get(k, 0.0), v)
            else:
                stats[k] = stats.get(k, 0.0) + v / n
    return MetaGradient(grads, sum(o for _, o, _ in per_task) / n, n, skipped, stats)


def contrastive_meta_gradient(
    learner: BilevelLearner, tasks: Sequence[Task] | Task | EpisodeBatch, config: ContrastiveConfig
) -> MetaGradient:
    """The contrastive meta-gradient, averaged over the meta-batch ``tasks``.

    :raises TypeError: ``learner`` lacks the bilevel interface, or ``tasks`` is not tasks.
    :raises InnerSolverError: a phase did not converge (with ``on_nonconvergence="raise"``), or every task
        of the meta-batch was skipped.
    """
    check_bilevel_learner(learner)
    if not isinstance(config, ContrastiveConfig):
        raise TypeError(f"config must be a ContrastiveConfig, got {type(config).__name__}")
    tasks = check_tasks(tasks)
    theta = detached(learner.meta_parameters())
    per_task, skipped, errors = [], 0, []
    for task in tasks:
        try:
            per_task.append(contrastive_task_gradient(learner, task, config, theta))
        except InnerSolverError as e:
            if config.on_nonconvergence == "raise":
                raise
            skipped += 1
            errors.append(str(e))
    if not per_task:
        raise InnerSolverError(
            f"all {len(tasks)} tasks of the meta-batch failed to converge; first: {errors[0]}"
        )
    return _average(per_task, skipped, list(theta))


def _backprop_meta_gradient(
    learner: BilevelLearner,
    tasks: Sequence[Task] | Task | EpisodeBatch,
    adapt: Callable[[Params, Params, Task], tuple[Params, dict[str, float]]],
    diverged: str,
) -> MetaGradient:
    """Mean over the tasks of d L_out(adapt(phi_0(theta), theta, task)) / d theta, by back-propagation
    through ``adapt`` (the inner learning, differentiable); ``diverged`` opens the error if it blows up."""
    tasks = check_tasks(tasks)
    params = learner.meta_parameters()
    names = list(params)
    per_task = []
    for task in tasks:
        with torch.enable_grad():
            theta = dict(params)
            fast, stats = adapt(learner.initial_fast_weights(theta), theta, task)
            loss = learner.outer_loss(fast, theta, task)
            grads = torch.autograd.grad(loss, [params[k] for k in names], allow_unused=True)
        g = {k: torch.zeros_like(params[k]) if gi is None else gi for k, gi in zip(names, grads, strict=True)}
        if not (math.isfinite(float(loss.detach())) and all(torch.isfinite(v).all() for v in g.values())):
            raise InnerSolverError(f"{diverged} (outer loss {float(loss.detach())})")
        per_task.append(({k: v.detach() for k, v in g.items()}, float(loss.detach()), stats))
    return _average(per_task, 0, names)


def unrolled_meta_gradient(
    learner: BilevelLearner, tasks: Sequence[Task] | Task | EpisodeBatch, solver: SolverConfig
) -> MetaGradient:
    """Back-propagation through ``solver.max_steps`` inner updates (MAML-style, second order), averaged
    over the meta-batch. The gradient includes the path through the initial fast weights."""
    check_bilevel_learner(learner)
    if not isinstance(solver, SolverConfig):
        raise TypeError(f"solver must be a SolverConfig, got {type(solver).__name__}")

    def adapt(fast: Params, theta: Params, task: Task) -> tuple[Params, dict[str, float]]:
        solved = unroll(lambda f: learner.inner_loss(f, theta, task), fast, solver)
        return solved, {"unrolled_steps": float(solver.max_steps)}

    return _backprop_meta_gradient(learner, tasks, adapt, "unrolled inner loop diverged; lower the solver lr")


def online_meta_gradient(
    learner: BilevelLearner,
    tasks: Sequence[Task] | Task | EpisodeBatch,
    lr: float,
    batch_size: int = 1,
) -> MetaGradient:
    """Back-propagation through one online pass over each task's support set, in its order: ``batch_size``
    examples per SGD step at ``lr`` on ``L_in`` of those examples, as the strategies learn at deployment;
    the query loss after the pass, second order, averaged over the meta-batch. With a class-incremental
    support stream and a query on every class (``OmniglotTaskSource(query="seen")``), what the learner
    keeps of the earlier classes is in the objective, which the equilibrium estimators cannot see."""
    check_bilevel_learner(learner)
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and 0 < lr < math.inf):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")

    # learners that give their regulariser as pulls (``R = sum c/2 (phi - a)^2``) take its part of the step
    # in closed form, phi - lr c (phi - a) = (1 - lr c) phi + lr c a, with the two factors computed once per
    # task: the same function, without an autograd pass through R at every step
    closed_form = callable(getattr(learner, "regulariser_pulls", None)) and callable(
        getattr(learner, "support_loss", None)
    )

    def adapt(fast: Params, theta: Params, task: Task) -> tuple[Params, dict[str, float]]:
        keys, steps = list(fast), 0
        pulls = learner.regulariser_pulls(theta) if closed_form else {}
        keep = {k: 1.0 - lr * c for k, (c, _) in pulls.items()}
        toward = {k: lr * c * a for k, (c, a) in pulls.items()}
        for start in range(0, len(task.support_y), batch_size):
            part = Task(
                task.support_x[start : start + batch_size],
                task.support_y[start : start + batch_size],
                task.query_x,
                task.query_y,
            )
            loss = (
                learner.support_loss(fast, theta, part)
                if closed_form
                else learner.inner_loss(fast, theta, part)
            )
            grads = torch.autograd.grad(loss, [fast[k] for k in keys], create_graph=True, allow_unused=True)
            new = {}
            for k, g in zip(keys, grads, strict=True):
                w = fast[k] if k not in pulls else keep[k] * fast[k] + toward[k]
                # phi <- phi - lr dL_in/dphi on this minibatch
                new[k] = w if g is None else w - lr * g
            fast = new
            steps += 1
        return fast, {"online_steps": float(steps)}

    return _backprop_meta_gradient(learner, tasks, adapt, "online inner pass diverged; lower inner_lr")
