"""The contrastive meta-gradient engine: closed-form checks, the implicit reference, the authors' bugs,
bad input."""

import math

import pytest
import torch

from avalanche_plasticity.contrastive import (
    CGConfig,
    ComplexSynapseConfig,
    ComplexSynapseLearner,
    ContrastiveConfig,
    GainModulationConfig,
    GainModulationLearner,
    InnerSolverError,
    SolverConfig,
    Task,
    conjugate_gradient,
    contrastive_meta_gradient,
    implicit_meta_gradient,
    minimise,
    unrolled_meta_gradient,
)
from avalanche_plasticity.contrastive.estimators import contrastive_task_gradient, phase_gradient

TIGHT = SolverConfig(lr=0.1, max_steps=5000, tol=1e-11, momentum=0.9)


def flat(grads: dict) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads.values()])


def cosine(a, b) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def rel_err(a, b) -> float:
    return float((a - b).norm() / b.norm())


def linear_learner(d=4, lam=0.7, seed=0) -> ComplexSynapseLearner:
    """A complex synapse on a linear model: L_in is exactly quadratic in phi = (W, b)."""
    learner = ComplexSynapseLearner(
        ComplexSynapseConfig(network={"kind": "mlp", "sizes": [d, 1]}, init_lambda=lam, seed=seed)
    ).double()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # heterogeneous strengths and anchors, so that every term matters
        for p in learner.log_lambda.values():
            p.add_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return learner


def regression_task(d=4, n=6, q=5, seed=0) -> Task:
    g = torch.Generator().manual_seed(100 + seed)
    x, xq = (
        torch.randn(n, d, generator=g, dtype=torch.float64),
        torch.randn(q, d, generator=g, dtype=torch.float64),
    )
    w = torch.randn(d, 1, generator=g, dtype=torch.float64)
    return Task(x, x @ w + 0.1 * torch.randn(n, 1, generator=g, dtype=torch.float64), xq, xq @ w)


def closed_form(learner: ComplexSynapseLearner, task: Task):
    """phi* and the exact meta-gradient of L_in = (1/N)||Z phi - y||^2 + sum_i lambda_i (phi_i - omega_i)^2,
    L_out = (1/Q)||Z_q phi - y_q||^2 with phi = [W, b] (derived by hand, independent of the engine)."""
    Z = torch.cat([task.support_x, torch.ones(len(task.support_x), 1, dtype=torch.float64)], 1)
    Zq = torch.cat([task.query_x, torch.ones(len(task.query_x), 1, dtype=torch.float64)], 1)
    omega = torch.cat([learner.omega["0__weight"].detach().reshape(-1), learner.omega["0__bias"].detach()])
    lam = torch.cat(
        [learner.log_lambda["0__weight"].detach().reshape(-1), learner.log_lambda["0__bias"].detach()]
    ).exp()
    N, Q = len(Z), len(Zq)
    M = Z.T @ Z / N + torch.diag(lam)  # stationarity: 2/N Z^T(Z phi - y) + 2 lam (phi - omega) = 0
    phi = torch.linalg.solve(M, Z.T @ task.support_y.reshape(-1) / N + lam * omega)
    v = 2 / Q * Zq.T @ (Zq @ phi - task.query_y.reshape(-1))  # dL_out/dphi
    u = torch.linalg.solve(M, v)
    d = task.support_x.shape[1]
    g_omega, g_loglam = lam * u, lam * (omega - phi) * u
    grads = {
        "omega/0.weight": g_omega[:d].reshape(1, d),
        "omega/0.bias": g_omega[d:],
        "log_lambda/0.weight": g_loglam[:d].reshape(1, d),
        "log_lambda/0.bias": g_loglam[d:],
    }
    return phi, grads


# ---------------------------------------------------------------------------------------------------
# Quadratic inner problem with a closed-form meta-gradient
# ---------------------------------------------------------------------------------------------------
def test_free_phase_reaches_the_closed_form_minimiser_of_the_same_energy():
    """Factor-of-2 bug: the solver must minimise exactly the L_in whose theta-gradient the estimate uses
    (pull 2 lambda (phi - omega), no 1/2 on one side only)."""
    learner, task = linear_learner(), regression_task()
    theta = learner.theta()
    sol = minimise(lambda f: learner.inner_loss(f, theta, task), learner.initial_fast_weights(theta), TIGHT)
    phi_star, _ = closed_form(learner, task)
    got = torch.cat([sol.fast["0.weight"].reshape(-1), sol.fast["0.bias"]])
    assert sol.converged and torch.allclose(got, phi_star, atol=1e-9)
    # The minimiser a solver pulling with lambda (phi - omega) (the mismatch) would reach is far from it.
    half_pull_minimiser = closed_form(_with_log_lambda_shift(learner, -math.log(2)), task)[0]
    assert (got - half_pull_minimiser).abs().max() > 1e-2


def _with_log_lambda_shift(learner, shift):
    other = linear_learner()
    with torch.no_grad():
        for k in other.log_lambda:
            other.log_lambda[k].copy_(learner.log_lambda[k] + shift)
    return other


def test_implicit_reference_equals_closed_form():
    learner, task = linear_learner(), regression_task()
    _, exact = closed_form(learner, task)
    got = implicit_meta_gradient(learner, [task], TIGHT, CGConfig(tol=1e-12))
    assert rel_err(flat(got.grads), flat(exact)) < 1e-7


@pytest.mark.parametrize("variant,order", [("one_sided", 1), ("symmetric", 2), ("second_order", 2)])
def test_contrastive_estimate_error_shrinks_with_beta_at_its_order(variant, order):
    learner, task = linear_learner(), regression_task()
    exact = flat(closed_form(learner, task)[1])
    errs = []
    for beta in (0.05, 0.025, 0.0125):
        est = contrastive_meta_gradient(
            learner, [task], ContrastiveConfig(beta=beta, variant=variant, free=TIGHT)
        )
        errs.append(rel_err(flat(est.grads), exact))
    assert errs[0] < (0.1 if order == 1 else 0.01)  # within O(beta) / O(beta^2) of the analytic value
    for a, b in zip(errs[:-1], errs[1:], strict=True):
        assert a / b == pytest.approx(2**order, rel=0.25)  # halving beta divides the error by 2^order


def test_symmetric_is_closer_than_one_sided():
    learner, task = linear_learner(), regression_task()
    exact = flat(closed_form(learner, task)[1])
    for beta in (0.03, 0.01, 0.003):
        one = contrastive_meta_gradient(
            learner, [task], ContrastiveConfig(beta=beta, variant="one_sided", free=TIGHT)
        )
        sym = contrastive_meta_gradient(
            learner, [task], ContrastiveConfig(beta=beta, variant="symmetric", free=TIGHT)
        )
        assert rel_err(flat(sym.grads), exact) < 0.5 * rel_err(flat(one.grads), exact)
    assert rel_err(flat(sym.grads), exact) < 1e-3 and cosine(flat(sym.grads), exact) > 0.9999


def test_minus_beta_phase_is_really_nudged_negatively():
    """Bug 1: the -beta phase ignored (it then just continues the free phase) halves the estimate."""
    learner, task = linear_learner(), regression_task()
    exact = flat(closed_form(learner, task)[1])
    beta = 0.01
    sym = flat(contrastive_meta_gradient(learner, [task], ContrastiveConfig(beta=beta, free=TIGHT)).grads)
    theta = learner.theta()
    free = minimise(
        lambda f: learner.inner_loss(f, theta, task), learner.initial_fast_weights(theta), TIGHT
    ).fast
    plus = minimise(
        lambda f: learner.inner_loss(f, theta, task) + beta * learner.outer_loss(f, theta, task), free, TIGHT
    )
    buggy = flat(phase_gradient(learner, plus.fast, theta, task, beta)) - flat(
        phase_gradient(learner, free, theta, task, 0)
    )
    buggy = buggy / (2 * beta)
    assert rel_err(buggy, exact) > 0.4  # what the bug would give
    assert rel_err(sym, exact) < 1e-3
    assert sym.norm() / exact.norm() == pytest.approx(1.0, abs=1e-3)


def test_meta_batch_averages_every_task():
    """Bug 2: only the last task's gradient applied. The estimate must be the mean over all tasks."""
    learner = linear_learner()
    tasks = [regression_task(seed=s) for s in range(3)]
    exact = [flat(closed_form(learner, t)[1]) for t in tasks]
    mean = sum(exact) / 3
    est = contrastive_meta_gradient(learner, tasks, ContrastiveConfig(beta=0.005, free=TIGHT))
    assert est.tasks_used == 3 and est.tasks_skipped == 0
    assert rel_err(flat(est.grads), mean) < 2e-3
    assert rel_err(flat(est.grads), exact[-1]) > 0.1
    unrolled = unrolled_meta_gradient(learner, tasks, SolverConfig(lr=0.1, max_steps=300, tol=None))
    assert rel_err(flat(unrolled.grads), mean) < 1e-4


# ---------------------------------------------------------------------------------------------------
# Nonlinear learners: implicit reference vs unrolled backprop, contrastive vs implicit
# ---------------------------------------------------------------------------------------------------
def tanh_learner(lam=1.0):
    return ComplexSynapseLearner(
        ComplexSynapseConfig(
            network={"kind": "mlp", "sizes": [1, 8, 1], "activation": "tanh"}, init_lambda=lam
        )
    ).double()


def sine_task(seed=0, n=10):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(2 * n, 1, generator=g, dtype=torch.float64) - 0.5) * 6
    y = 2 * torch.sin(x + 1.0)
    return Task(x[:n], y[:n], x[n:], y[n:])


def test_implicit_reference_matches_unrolled_backprop_when_converged():
    learner, task = tanh_learner(), sine_task()
    imp = implicit_meta_gradient(
        learner, [task], SolverConfig(lr=0.1, max_steps=5000, tol=1e-10), CGConfig(tol=1e-12)
    )
    unr = unrolled_meta_gradient(learner, [task], SolverConfig(lr=0.1, max_steps=400, tol=None))
    assert cosine(flat(imp.grads), flat(unr.grads)) > 0.9999
    assert rel_err(flat(unr.grads), flat(imp.grads)) < 1e-3
    short = unrolled_meta_gradient(learner, [task], SolverConfig(lr=0.1, max_steps=3, tol=None))
    assert rel_err(flat(short.grads), flat(imp.grads)) > 0.05  # not vacuous: unconverged differs


def test_symmetric_contrastive_matches_implicit_on_nonlinear_complex_synapse():
    learner, task = tanh_learner(), sine_task(1)
    solver = SolverConfig(lr=0.1, max_steps=5000, tol=1e-10)
    imp = flat(implicit_meta_gradient(learner, [task], solver).grads)
    est = flat(contrastive_meta_gradient(learner, [task], ContrastiveConfig(beta=1e-2, free=solver)).grads)
    assert cosine(est, imp) > 0.999 and rel_err(est, imp) < 1e-2


def test_error_grows_as_the_inner_tolerance_loosens():
    learner, task = tanh_learner(), sine_task(2)
    imp = flat(implicit_meta_gradient(learner, [task], SolverConfig(lr=0.1, max_steps=5000, tol=1e-10)).grads)
    errs = [
        rel_err(
            flat(
                contrastive_meta_gradient(
                    learner,
                    [task],
                    ContrastiveConfig(beta=1e-2, free=SolverConfig(lr=0.1, max_steps=5000, tol=tol)),
                ).grads
            ),
            imp,
        )
        for tol in (1e-3, 1e-5, 1e-8)
    ]
    assert errs[0] > errs[1] > errs[2]


def test_gain_modulation_contrastive_matches_implicit():
    learner = GainModulationLearner(
        GainModulationConfig(network={"kind": "mlp", "sizes": [1, 8, 8, 1]}, reg_strength=0.5)
    ).double()
    task = sine_task(3)
    solver = SolverConfig(lr=0.05, max_steps=8000, tol=1e-10)
    imp = implicit_meta_gradient(learner, [task], solver)
    est = contrastive_meta_gradient(learner, [task], ContrastiveConfig(beta=1e-2, free=solver))
    assert cosine(flat(est.grads), flat(imp.grads)) > 0.999
    assert flat(imp.grads).abs().max() > 0 and all(k in est.grads for k in ("body/weight0", "init/gain0"))


def test_gain_modulation_without_pull_meta_learns_only_the_body():
    learner = GainModulationLearner(
        GainModulationConfig(network={"kind": "mlp", "sizes": [1, 8, 1]}, reg_strength=0.0)
    ).double()
    est = contrastive_meta_gradient(
        learner,
        [sine_task(4)],
        ContrastiveConfig(beta=0.1, free=SolverConfig(lr=0.05, max_steps=3, tol=None)),
    )
    assert all(float(v.abs().max()) == 0 for k, v in est.grads.items() if k.startswith("init/"))
    assert float(est.grads["body/weight0"].abs().max()) > 0


# ---------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("beta", [0, -0.1, float("nan"), float("inf")])
def test_beta_must_be_positive(beta):
    with pytest.raises(ValueError, match="beta"):
        ContrastiveConfig(beta=beta)


def test_unknown_variant_and_bad_solver_settings():
    with pytest.raises(ValueError, match="variant"):
        ContrastiveConfig(variant="central")
    with pytest.raises(ValueError, match="tol"):
        SolverConfig(tol=0)
    with pytest.raises(ValueError, match="lr"):
        SolverConfig(lr=-1)
    with pytest.raises(ValueError, match="max_steps"):
        SolverConfig(max_steps=1.5)
    with pytest.raises(TypeError, match="free"):
        ContrastiveConfig(free={"lr": 0.1})


def test_nonconvergent_inner_solver_is_reported_not_used():
    learner, task = tanh_learner(), sine_task()
    bad = ContrastiveConfig(beta=0.1, free=SolverConfig(lr=0.01, max_steps=5, tol=1e-8))
    with pytest.raises(InnerSolverError, match="free phase did not converge"):
        contrastive_meta_gradient(learner, [task], bad)
    good_free = SolverConfig(lr=0.1, max_steps=3000, tol=1e-6)
    with pytest.raises(InnerSolverError, match="nudged phase"):
        contrastive_meta_gradient(
            learner,
            [task],
            ContrastiveConfig(beta=0.1, free=good_free, nudged=SolverConfig(lr=1e-4, max_steps=2, tol=1e-12)),
        )
    diverging = ContrastiveConfig(beta=0.1, free=SolverConfig(lr=50.0, max_steps=200, tol=1e-6))
    with pytest.raises(InnerSolverError, match="diverged"):
        contrastive_meta_gradient(learner, [task], diverging)
    with pytest.raises(ValueError, match="tol"):
        implicit_meta_gradient(learner, [task], SolverConfig(tol=None))


def test_skip_mode_counts_and_excludes_nonconverged_tasks():
    learner = tanh_learner()
    easy, hard = sine_task(0), sine_task(1)
    hard = Task(hard.support_x * 40, hard.support_y * 40, hard.query_x, hard.query_y)  # ill-conditioned
    solver = SolverConfig(lr=0.1, max_steps=300, tol=1e-6)
    cfg = ContrastiveConfig(beta=0.05, free=solver, on_nonconvergence="skip")
    with pytest.raises(InnerSolverError):
        contrastive_task_gradient(learner, hard, cfg)
    both = contrastive_meta_gradient(learner, [easy, hard], cfg)
    alone = contrastive_meta_gradient(learner, [easy], cfg)
    assert both.tasks_used == 1 and both.tasks_skipped == 1
    assert torch.allclose(flat(both.grads), flat(alone.grads))
    with pytest.raises(InnerSolverError, match="all 1 tasks"):
        contrastive_meta_gradient(learner, [hard], cfg)


def test_learner_without_inner_loss_is_refused():
    from avalanche_plasticity.oml import OMLConfig, OMLLearner

    oml = OMLLearner(OMLConfig(rln_sizes=(2, 4), pln_sizes=(4, 1)), seed=0)
    for learner in (oml, object()):
        with pytest.raises(TypeError, match="inner_loss"):
            contrastive_meta_gradient(learner, [sine_task()], ContrastiveConfig())
        with pytest.raises(TypeError, match="inner_loss"):
            implicit_meta_gradient(learner, [sine_task()], SolverConfig())
    with pytest.raises(TypeError, match="tasks"):
        contrastive_meta_gradient(tanh_learner(), [], ContrastiveConfig())


def test_conjugate_gradient_solves_spd_and_rejects_indefinite():
    A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    b = [torch.tensor([1.0, 2.0], dtype=torch.float64)]
    x, _ = conjugate_gradient(lambda v: [A @ v[0]], b)
    assert torch.allclose(A @ x[0], b[0])
    from avalanche_plasticity.contrastive import ConjugateGradientError

    with pytest.raises(ConjugateGradientError, match="positive"):
        conjugate_gradient(lambda v: [-v[0]], b)


def _online_outer_loss(learner, task: Task, lr: float, batch_size: int) -> float:
    """The query loss after one online SGD pass over the support set, by hand (no meta-gradient code)."""
    with torch.enable_grad():
        fast = {
            k: v.detach().clone().requires_grad_(True) for k, v in learner.initial_fast_weights({}).items()
        }
        xs, ys = task.support_x.split(batch_size), task.support_y.split(batch_size)
        for x, y in zip(xs, ys, strict=True):
            loss = learner.inner_loss(fast, {}, Task(x, y, task.query_x, task.query_y))
            grads = torch.autograd.grad(loss, list(fast.values()))
            stepped = zip(fast.items(), grads, strict=True)
            fast = {k: (v - lr * g).detach().requires_grad_(True) for (k, v), g in stepped}
    return float(learner.outer_loss(fast, {}, task).detach())


@pytest.mark.parametrize("batch_size", [1, 2])
def test_online_meta_gradient_matches_finite_differences(batch_size):
    """Back-propagation through the online pass (omega and the per-synapse strengths) against central
    differences of the query loss after that pass."""
    from avalanche_plasticity.contrastive import online_meta_gradient

    learner = ComplexSynapseLearner(
        ComplexSynapseConfig(
            network={"kind": "mlp", "sizes": [3, 4, 3]}, task="classification", learn_lambda=True, seed=0
        )
    ).double()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    task = Task(x, torch.tensor([0, 0, 1, 1, 2, 2]), x + 0.1, torch.tensor([0, 0, 1, 1, 2, 2]))
    lr = 0.5
    mg = online_meta_gradient(learner, [task], lr, batch_size)
    params = learner.meta_parameters()
    eps = 1e-6
    for name, p in params.items():
        numeric = torch.zeros_like(p)
        for i in range(p.numel()):
            with torch.no_grad():
                p.view(-1)[i] += eps
            up = _online_outer_loss(learner, task, lr, batch_size)
            with torch.no_grad():
                p.view(-1)[i] -= 2 * eps
            down = _online_outer_loss(learner, task, lr, batch_size)
            with torch.no_grad():
                p.view(-1)[i] += eps
            numeric.view(-1)[i] = (up - down) / (2 * eps)
        assert torch.allclose(mg.grads[name], numeric, rtol=1e-5, atol=1e-8), name
    assert mg.stats["online_steps"] == len(task.support_y) / batch_size


def test_online_meta_gradient_depends_on_the_order_of_the_stream():
    """Unlike the equilibrium estimators, the online pass sees the support stream in order: learning
    the classes the other way round gives another meta-gradient."""
    from avalanche_plasticity.contrastive import online_meta_gradient

    learner = ComplexSynapseLearner(
        ComplexSynapseConfig(network={"kind": "mlp", "sizes": [3, 4, 3]}, task="classification", seed=0)
    ).double()
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.tensor([0, 0, 1, 1, 2, 2])
    forward = online_meta_gradient(learner, [Task(x, y, x, y)], 0.5)
    backward = online_meta_gradient(learner, [Task(x.flip(0), y.flip(0), x, y)], 0.5)
    assert rel_err(flat(forward.grads), flat(backward.grads)) > 1e-3


@pytest.mark.parametrize(
    "kwargs, match",
    [({"lr": 0.0}, "lr must be a finite number > 0"), ({"lr": 0.1, "batch_size": 0}, "batch_size must be")],
)
def test_online_meta_gradient_bad_settings_raise(kwargs, match):
    from avalanche_plasticity.contrastive import online_meta_gradient

    with pytest.raises(ValueError, match=match):
        online_meta_gradient(linear_learner(), [regression_task()], **kwargs)
