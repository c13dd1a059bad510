"""Plasticity-rule pool (Shervani-Tabar & Rosenbaum 2023): every term against a hand computation, the
fused rule against the dense sum, the pseudo-gradient with symmetric feedback against autograd, the
meta-gradient against finite differences, bad input, user terms, L1, reading the rule."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from avalanche_plasticity.checkpoint import CheckpointError
from avalanche_plasticity.meta_learning import MetaTrainConfig, meta_train
from avalanche_plasticity.plasticity_rules import (
    PAPER_POOL,
    LayerSignals,
    PlasticityRuleConfig,
    PlasticityRuleLearner,
    alignment_with_backprop,
    feedback_errors,
    forward_activities,
    get_term,
    plasticity_update,
    register_term,
    rule_formula,
    rule_learner,
    save_rule_report,
    surviving_terms,
    term_updates,
    unregister_term,
)
from avalanche_plasticity.plasticity_rules.learner import deeper_sizes, load_rule, save_rule
from avalanche_plasticity.plasticity_rules.rule import combined_update
from avalanche_plasticity.plasticity_rules.terms import TERMS
from avalanche_plasticity.tasks import EpisodeBatch

# ---------------------------------------------------------------------------------------------------
# Each term against a hand computation, element by element, on a tiny layer (out=2, in=3, two samples)
# ---------------------------------------------------------------------------------------------------


def _tiny_signals() -> LayerSignals:
    g = torch.Generator().manual_seed(3)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return LayerSignals(
        pre=r(1, 2, 3), post=r(1, 2, 2), error_post=r(1, 2, 2), error_pre=r(1, 2, 3), weight=r(1, 2, 3)
    )


def _hand(name: str, s: LayerSignals) -> torch.Tensor:
    """The term's formula written out with explicit sums over samples and indices."""
    W = s.weight[0]
    out = torch.zeros(2, 3, dtype=torch.float64)
    for b in range(2):
        x, y, e, ep = s.pre[0, b], s.post[0, b], s.error_post[0, b], s.error_pre[0, b]
        g6 = sum(y[a] * W[a, c] * ep[c] for a in range(2) for c in range(3))  # y W ep^T
        g8 = sum(e[a] * W[a, c] * x[c] for a in range(2) for c in range(3))  # e W x^T
        for i in range(2):
            for j in range(3):
                v = {
                    "pseudo_gradient": -e[i] * x[j],
                    "post_error_hebbian": -y[i] * ep[j],
                    "error_hebbian": -e[i] * ep[j],
                    "weight_decay": -W[i, j] / 2,  # counted once per sample below: -W in total
                    "presynaptic_error": -ep[j],
                    "activity_scaled_pseudo_gradient": -(y.sum()) * e[i] * x[j],
                    "post_hebbian_pre_error": -y[i] * g6 * ep[j],
                    "error_activity_sandwich": -e[i] * g6 * x[j],
                    "activity_error_sandwich": -y[i] * g8 * ep[j],
                    "oja": y[i] * x[j] - y[i] * sum(y[k] * W[k, j] for k in range(2)),
                }[name]
                out[i, j] += v
    return out


@pytest.mark.parametrize("name", PAPER_POOL)
def test_each_term_matches_hand_computation(name):
    s = _tiny_signals()
    got = get_term(name).fn(s)
    assert got.shape == (1, 2, 3)
    torch.testing.assert_close(got[0], _hand(name, s))
    if get_term(name).factors is not None:  # the fused (factorised) form is the same matrix
        fused = sum(a.transpose(-1, -2) @ b for a, b in get_term(name).factors(s))
        torch.testing.assert_close(fused, got)


def test_pool_is_the_papers_ten_terms_in_order():
    assert len(PAPER_POOL) == 10
    assert PAPER_POOL[0] == "pseudo_gradient" and PAPER_POOL[2] == "error_hebbian" and PAPER_POOL[9] == "oja"
    for t in PAPER_POOL:
        assert get_term(t).formula and get_term(t).source != "user"


# ---------------------------------------------------------------------------------------------------
# The rule
# ---------------------------------------------------------------------------------------------------


def _net(sizes=(6, 5, 4, 3), E=2, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    W = [
        torch.randn(E, sizes[l + 1], sizes[l], generator=g, dtype=dtype) * 0.5 for l in range(len(sizes) - 1)
    ]
    B = [
        torch.randn(E, sizes[l + 1], sizes[l], generator=g, dtype=dtype) * 0.5 for l in range(len(sizes) - 1)
    ]
    x = torch.rand(E, 2, sizes[0], generator=g, dtype=dtype)
    y = torch.randint(0, sizes[-1], (E, 2), generator=g)
    return W, B, x, y


def test_fused_rule_equals_dense_weighted_sum_of_terms():
    W, B, x, y = _net()
    theta = torch.linspace(-0.3, 0.4, 10, dtype=torch.float64)
    new = plasticity_update(W, B, theta, PAPER_POOL, x, y)
    parts = term_updates(W, B, PAPER_POOL, x, y)
    for l in range(len(W)):
        dense = W[l] + sum(theta[r] * parts[t][l] for r, t in enumerate(PAPER_POOL))
        torch.testing.assert_close(new[l], dense)


def test_in_place_deployment_step_equals_the_functional_step():
    """Deployment writes the update into the weights (grouped factors, weight decay as a scaling, a user
    term without factors added densely); it must give the functional step's weights, zero terms skipped."""
    W, B, x, y = _net()
    name = "test_square_pre"
    register_term(name, lambda s: -s.weight * s.pre.pow(2).sum((-1, -2)).view(-1, 1, 1), formula="-|y|^2 W")
    try:
        terms = (*PAPER_POOL, name)
        theta = torch.linspace(-0.3, 0.4, len(terms), dtype=torch.float64)
        theta[4] = 0.0
        ref = plasticity_update(W, B, theta, terms, x, y)
        live = [w.clone() for w in W]
        with torch.no_grad():
            out = plasticity_update(live, B, theta, terms, x, y, inplace=True)
        for l in range(len(W)):
            assert out[l] is live[l]
            torch.testing.assert_close(live[l], ref[l])
    finally:
        unregister_term(name)


@pytest.mark.parametrize("feedback_kind", ["fixed", "symmetric"])
@pytest.mark.parametrize("active", ["all", "released", "pseudo_gradient", "no_input_error", "gate_only"])
def test_fused_single_sample_step_equals_the_generic_step(feedback_kind, active):
    """The deployed one-sample step (terms collapsed into two outer products per layer) gives the
    generic functional step's weights, with every term of the pool or only some of them on."""
    from avalanche_plasticity.plasticity_rules.fused import fusable, fused_online_step_

    W, B, x, y = _net(sizes=(7, 6, 5, 4), E=1)
    x, y = x[:, :1], y[:, :1]
    B = None if feedback_kind == "symmetric" else B
    theta = torch.linspace(-0.3, 0.4, len(PAPER_POOL), dtype=torch.float64)
    keep = {
        "all": PAPER_POOL,
        "released": ("pseudo_gradient", "error_hebbian", "oja"),
        "pseudo_gradient": ("pseudo_gradient",),
        "no_input_error": ("pseudo_gradient", "weight_decay", "activity_scaled_pseudo_gradient", "oja"),
        "gate_only": ("error_activity_sandwich",),  # reads e_{l-1} only through its gate
    }[active]
    theta = torch.where(torch.tensor([t in keep for t in PAPER_POOL]), theta, torch.zeros_like(theta))
    ref = plasticity_update(W, B, theta, PAPER_POOL, x, y)
    live = [w.clone() for w in W]
    assert fusable(PAPER_POOL, live, x) and not fusable(PAPER_POOL, W, torch.zeros(1, 2, 7))
    fused_online_step_(live, B, dict(zip(PAPER_POOL, theta.tolist(), strict=True)), x, y, 10.0)
    for l in range(len(W)):
        torch.testing.assert_close(live[l], ref[l])


def test_learner_deploys_the_fused_step_only_where_it_applies():
    """``PlasticityRuleLearner.step`` in place at batch size 1 takes the fused path (same weights as the
    generic path); at batch size 2 and with a user term it falls back to the generic step."""
    coefficients = {t: 0.01 * (i + 1) for i, t in enumerate(PAPER_POOL)}
    learner = rule_learner(PAPER_POOL, coefficients=coefficients, layer_sizes=(8, 6, 3), input_shape=(8,))
    learner.freeze()
    learner.inplace = True
    fast = learner.initial_fast_weights(1)
    x, y = torch.rand(1, 1, 8), torch.tensor([[2]])
    results = {}
    for fused in (True, False):
        learner.fused = fused
        state = [w.clone() for w in fast]
        with torch.no_grad():
            out = learner.step(state, x, y)
        assert all(o is s for o, s in zip(out, state, strict=True))
        results[fused] = out
    for a, b in zip(results[True], results[False], strict=True):
        torch.testing.assert_close(a, b)
    # new coefficients (a state dict loaded into the deployed learner) reach the fused step
    learner.fused = True
    state = learner.state_dict()
    state["raw_coefficients"] = state["raw_coefficients"] * 2
    learner.load_state_dict(state)
    assert learner._rule_numbers()["oja"] == pytest.approx(2 * coefficients["oja"])


@pytest.mark.parametrize("explicit_feedback", [False, True])
def test_pseudo_gradient_with_symmetric_feedback_is_backprop_sgd(explicit_feedback):
    """B = W (the transpose sends errors back exactly as backprop): the update is -lr * dCE/dW."""
    W, _, x, y = _net()
    lr = 0.1
    feedback = [w.clone() for w in W] if explicit_feedback else None
    new = plasticity_update(W, feedback, torch.tensor([lr], dtype=torch.float64), ("pseudo_gradient",), x, y)
    leaves = [w.clone().requires_grad_(True) for w in W]
    _, logits = forward_activities(leaves, x)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
    grads = torch.autograd.grad(loss, leaves)
    for w, n, gr in zip(W, new, grads, strict=True):
        torch.testing.assert_close(n, w - lr * gr)


def test_fixed_random_feedback_differs_from_backprop_but_output_layer_agrees():
    W, B, x, y = _net()
    fa = plasticity_update(W, B, torch.tensor([0.1], dtype=torch.float64), ("pseudo_gradient",), x, y)
    bp = plasticity_update(W, None, torch.tensor([0.1], dtype=torch.float64), ("pseudo_gradient",), x, y)
    torch.testing.assert_close(fa[-1], bp[-1])  # the output error needs no feedback
    assert not torch.allclose(fa[0], bp[0])


def test_errors_use_softplus_derivative_from_activity():
    W, B, x, y = _net()
    acts, logits = forward_activities(W, x)
    e = feedback_errors(B, acts, logits, y, 10.0)
    z = acts[-2] @ W[-2].transpose(-1, -2)  # pre-activation of the last hidden layer
    torch.testing.assert_close(e[-2], (e[-1] @ B[-1]) * torch.sigmoid(10.0 * z))


def test_meta_gradient_matches_finite_differences():
    W, B, x, y = _net(E=1)
    xs, ys = torch.rand(1, 4, 1, 6, dtype=torch.float64), torch.randint(0, 3, (1, 4, 1))
    qx, qy = torch.rand(1, 5, 6, dtype=torch.float64), torch.randint(0, 3, (1, 5))

    def loss(theta):
        w = list(W)
        for t in range(4):
            w = plasticity_update(w, B, theta, PAPER_POOL, xs[:, t], ys[:, t])
        _, logits = forward_activities(w, qx)
        return F.cross_entropy(logits[0], qy[0])

    theta = (torch.rand(10, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) - 0.5) * 0.2
    grad = torch.autograd.grad(loss(theta.requires_grad_(True)), theta)[0]
    eps = 1e-6
    fd = torch.stack(
        [
            (
                loss(theta.detach() + eps * torch.eye(10)[r].double())
                - loss(theta.detach() - eps * torch.eye(10)[r].double())
            )
            / (2 * eps)
            for r in range(10)
        ]
    )
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------


def test_unknown_term_names_raise():
    with pytest.raises(ValueError, match="unknown plasticity term 'hebb_typo'.*known terms"):
        rule_learner(("pseudo_gradient", "hebb_typo"))
    with pytest.raises(ValueError, match="unknown plasticity term"):
        PlasticityRuleConfig(terms=("nope",))
    W, B, x, y = _net()
    with pytest.raises(ValueError, match="unknown plasticity term"):
        plasticity_update(W, B, torch.zeros(1, dtype=torch.float64), ("nope",), x, y)
    with pytest.raises(ValueError, match="init_coefficients names terms the rule does not use"):
        rule_learner(("pseudo_gradient",), coefficients={"oja": 0.1})


def test_coefficient_shapes_that_do_not_match_raise():
    with pytest.raises(ValueError, match=r"coefficients must have shape \(10,\)"):
        rule_learner(PAPER_POOL, coefficients=[0.1, 0.2])
    W, B, x, y = _net()
    with pytest.raises(ValueError, match=r"coefficients must have shape \(3,\)"):
        plasticity_update(
            W, B, torch.zeros(2, dtype=torch.float64), ("pseudo_gradient", "oja", "weight_decay"), x, y
        )
    with pytest.raises(TypeError, match="coefficients must be a tensor"):
        plasticity_update(W, B, [0.1], ("pseudo_gradient",), x, y)


def test_feedback_matrices_of_wrong_shape_raise():
    W, B, x, y = _net()
    bad = [B[0].transpose(-1, -2), *B[1:]]
    with pytest.raises(ValueError, match=r"feedback matrix 0 must have the forward weight's shape \(5, 6\)"):
        plasticity_update(W, bad, torch.ones(1, dtype=torch.float64), ("pseudo_gradient",), x, y)
    with pytest.raises(ValueError, match="one feedback matrix per layer"):
        plasticity_update(W, B[:2], torch.ones(1, dtype=torch.float64), ("pseudo_gradient",), x, y)
    learner = rule_learner(layer_sizes=(6, 5, 3))
    fast = learner.initial_fast_weights(1)
    with pytest.raises(ValueError, match="feedback matrix 1"):
        learner.check_fast_state([*fast[:3], fast[3].transpose(-1, -2)])
    with pytest.raises(ValueError, match="fast state must hold 4 tensors"):
        learner.step(fast[:3], torch.rand(1, 1, 6), torch.zeros(1, 1, dtype=torch.long))


def test_other_bad_config_raises():
    with pytest.raises(ValueError, match="feedback must be 'fixed' or 'symmetric'"):
        PlasticityRuleConfig(feedback="random")
    with pytest.raises(ValueError, match="l1 must be >= 0"):
        PlasticityRuleConfig(l1=-1.0)
    with pytest.raises(ValueError, match="input_shape"):
        PlasticityRuleConfig(layer_sizes=(10, 3), input_shape=(1, 28, 28))
    with pytest.raises(ValueError, match="terms must be a non-empty sequence"):
        PlasticityRuleConfig(terms="oja")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="init_gain must be a finite number > 0"):
            PlasticityRuleConfig(init_gain=bad)


@pytest.mark.parametrize("feedback", ["fixed", "symmetric"])
def test_init_gain_scales_the_papers_xavier_forward_draws(feedback, tmp_path):
    sizes = (12, 10, 8, 3)

    def draws(gain):
        learner = rule_learner(layer_sizes=sizes, feedback=feedback, init_gain=gain)
        learner.generator = torch.Generator().manual_seed(5)
        return learner, learner.initial_fast_weights(2)

    _, paper = draws(1.0)
    he, scaled = draws(2**0.5)
    assert len(scaled) == (3 if feedback == "symmetric" else 6)
    for a, b in zip(paper[:3], scaled[:3], strict=True):
        torch.testing.assert_close(b, a * 2**0.5)  # forward weights
    for a, b in zip(paper[3:], scaled[3:], strict=True):
        torch.testing.assert_close(b, a)  # feedback matrices keep the paper's scale
    bound = (6 / (12 + 10)) ** 0.5  # Xavier-uniform bound of the first layer
    assert paper[0].abs().max() <= bound < scaled[0].abs().max()
    save_rule(he, tmp_path / "he.pt")
    assert load_rule(tmp_path / "he.pt").config.init_gain == pytest.approx(2**0.5)


def test_he_gain_keeps_the_input_signal_of_a_deep_softplus_net():
    """Softplus(beta=10) units are nearly ReLUs: under the paper's Xavier init the input-dependent part
    of the activity shrinks layer by layer; with He's gain it does not (much)."""
    x = torch.rand(1, 64, 100, generator=torch.Generator().manual_seed(1))
    sizes = (100,) + (100,) * 10 + (5,)

    def last_hidden_signal(gain):
        learner = rule_learner(layer_sizes=sizes, feedback="symmetric", init_gain=gain)
        learner.generator = torch.Generator().manual_seed(2)
        acts, _ = forward_activities(learner.initial_fast_weights(1), x)
        y = acts[-2]  # last hidden layer
        return float(y.std(dim=1).mean() / y.abs().mean())

    assert last_hidden_signal(2**0.5) > 5 * last_hidden_signal(1.0)


# ---------------------------------------------------------------------------------------------------
# Extending the pool, L1, save/load, reading
# ---------------------------------------------------------------------------------------------------


def test_user_term_is_one_function_and_joins_the_rule():
    def anti_hebbian(s: LayerSignals) -> torch.Tensor:
        return -(s.post.transpose(-1, -2) @ s.pre)

    register_term("anti_hebbian_test", anti_hebbian, formula="-y_l^T y_{l-1}")
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_term("anti_hebbian_test", anti_hebbian, formula="x")
        W, B, x, y = _net()
        new = plasticity_update(W, B, torch.tensor([0.5], dtype=torch.float64), ("anti_hebbian_test",), x, y)
        acts, _ = forward_activities(W, x)
        torch.testing.assert_close(new[0], W[0] - 0.5 * acts[1].transpose(-1, -2) @ acts[0])
        learner = rule_learner(("pseudo_gradient", "anti_hebbian_test"), layer_sizes=(6, 4, 3))
        assert learner.coefficients.shape == (2,)
    finally:
        unregister_term("anti_hebbian_test")
    assert "anti_hebbian_test" not in TERMS
    with pytest.raises(ValueError, match="part of the paper's pool"):
        unregister_term("oja")


def test_dense_only_term_is_combined_with_fused_ones():
    s = _tiny_signals()
    pool = [get_term("weight_decay"), get_term("oja")]
    theta = torch.tensor([0.2, 0.3], dtype=torch.float64)
    torch.testing.assert_close(combined_update(s, theta, pool), 0.2 * -s.weight + 0.3 * get_term("oja").fn(s))


def test_l1_penalty_adds_sign_gradient():
    plain = rule_learner(("pseudo_gradient", "oja"), coefficients=[0.1, -0.2], layer_sizes=(4, 3))
    reg = PlasticityRuleLearner(
        PlasticityRuleConfig(
            layer_sizes=(4, 3), terms=("pseudo_gradient", "oja"), init_coefficients={}, l1=0.5
        ),
        coefficients=torch.tensor([0.1, -0.2]),
    )
    for learner in (plain, reg):
        (learner.coefficients * torch.tensor([2.0, 3.0])).sum().backward()
    torch.testing.assert_close(plain.raw_coefficients.grad, torch.tensor([2.0, 3.0]))
    torch.testing.assert_close(reg.raw_coefficients.grad, torch.tensor([2.5, 2.5]))


def test_term_lr_scale_reparametrises_without_changing_the_rule():
    cfg = PlasticityRuleConfig(
        layer_sizes=(4, 3),
        terms=("pseudo_gradient", "oja"),
        init_coefficients={"pseudo_gradient": 0.2, "oja": 0.1},
        term_lr_scale={"oja": 0.1},
        l1=1.0,
    )
    learner = PlasticityRuleLearner(cfg)
    assert learner.rule() == pytest.approx({"pseudo_gradient": 0.2, "oja": 0.1})
    torch.testing.assert_close(learner.raw_coefficients.detach(), torch.tensor([0.2, 1.0]))
    learner.coefficients.sum().backward()  # d theta / d phi = s, plus the L1 term lambda * s * sign
    torch.testing.assert_close(learner.raw_coefficients.grad, torch.tensor([2.0, 0.2]))
    opt = torch.optim.Adam(learner.param_groups()["coefficients"], lr=0.01)
    opt.step()  # Adam moves phi by ~lr on both, so theta moves by lr * s
    assert learner.rule()["pseudo_gradient"] == pytest.approx(0.19, abs=1e-4)
    assert learner.rule()["oja"] == pytest.approx(0.099, abs=1e-5)
    with pytest.raises(ValueError, match="term_lr_scale"):
        PlasticityRuleConfig(terms=("pseudo_gradient",), term_lr_scale={"oja": 0.1})


def test_save_load_roundtrip_and_network_swap(tmp_path):
    learner = rule_learner(coefficients={"pseudo_gradient": 0.03, "oja": 0.01}, layer_sizes=(6, 5, 3))
    save_rule(learner, tmp_path / "r.pt")
    back = load_rule(tmp_path / "r.pt")
    assert back.rule() == pytest.approx(learner.rule())
    deeper = back.with_network(deeper_sizes((6, 5, 3)))
    assert deeper.num_layers == 4 and deeper.rule() == pytest.approx(learner.rule())


def test_reading_the_rule(tmp_path):
    coefs = {t: 0.0 for t in PAPER_POOL} | {"pseudo_gradient": 0.05, "oja": 0.02, "error_hebbian": -0.0001}
    assert surviving_terms(coefs) == ["pseudo_gradient", "oja"]
    formula = rule_formula(coefs)
    assert (
        "-e_l^T y_{l-1}" in formula and "y_l^T y_{l-1} - (y_l^T y_l) W" in formula and "8 term(s)" in formula
    )

    class Recorder:
        def __init__(self):
            self.calls = []

        def log_table(self, name, columns, rows):
            self.calls.append(("table", name, list(rows)))

        def log_figure(self, name, fig):
            self.calls.append(("figure", name))

        def log_summary(self, values):
            self.calls.append(("summary", dict(values)))

    rec = Recorder()
    traj = {"step": [1.0, 2.0], **{t: [0.0, v] for t, v in coefs.items()}}
    paths = save_rule_report(tmp_path, coefs, traj, name="learned", logger=rec)
    for key in ("table_csv", "table_md", "formula", "json", "figure"):
        assert (tmp_path / paths[key].split("/")[-1]).exists()
    kinds = [c[0] for c in rec.calls]
    assert kinds == ["table", "figure", "summary"]
    assert len(rec.calls[0][2]) == 10
    assert rec.calls[2][1]["learned/theta/oja"] == pytest.approx(0.02)


def test_reading_logs_to_a_real_wandb_logger(tmp_path, monkeypatch):
    for k in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(k, raising=False)
    from avalanche_plasticity.wandb_logger import WandBLogger

    logger = WandBLogger(mode="disabled", dir=tmp_path)
    try:
        save_rule_report(
            tmp_path,
            {"pseudo_gradient": 0.05, "oja": 0.01},
            {"step": [1.0], "pseudo_gradient": [0.05], "oja": [0.01]},
            logger=logger,
        )
    finally:
        logger.finish()


def test_deeper_sizes_doubles_layers():
    sizes = deeper_sizes((784, 170, 130, 100, 70, 47))
    assert len(sizes) - 1 == 10 and sizes[0] == 784 and sizes[1] == 170 and sizes[-1] == 47
    assert min(sizes[1:-1]) == 70 and list(sizes[1:-1]) == sorted(sizes[1:-1], reverse=True)
    with pytest.raises(ValueError, match="at least one hidden layer"):
        deeper_sizes((784, 47))


# ---------------------------------------------------------------------------------------------------
# Alignment with backprop during the online pass (the paper's Fig. 4c reading)
# ---------------------------------------------------------------------------------------------------


def _random_episodes(episodes: int = 3, steps: int = 12, n_in: int = 8, classes: int = 3) -> EpisodeBatch:
    g = torch.Generator().manual_seed(0)
    return EpisodeBatch(
        support_x=torch.rand(episodes, steps, 1, n_in, generator=g),
        support_y=torch.randint(0, classes, (episodes, steps, 1), generator=g),
        query_x=torch.rand(episodes, 2, n_in, generator=g),
        query_y=torch.randint(0, classes, (episodes, 2), generator=g),
    )


def test_alignment_is_one_for_backprop_and_fa_is_exact_only_at_the_output():
    batch, sizes = _random_episodes(), (8, 16, 12, 3)
    bp = rule_learner(
        "pseudo_gradient", layer_sizes=sizes, coefficients={"pseudo_gradient": 0.1}, feedback="symmetric"
    )
    for v in alignment_with_backprop(bp, batch).values():
        torch.testing.assert_close(v, torch.ones(3))
    fa = rule_learner("pseudo_gradient", layer_sizes=sizes, coefficients={"pseudo_gradient": 0.1})
    out = alignment_with_backprop(fa, batch)
    torch.testing.assert_close(out["teaching_signal"][-1], torch.tensor(1.0))
    assert (out["teaching_signal"][:-1] < 0.9).all()
    # the pseudo-gradient alone: dW = -e y^T, so the update is exactly as aligned as its teaching signal
    torch.testing.assert_close(out["update"], out["teaching_signal"])


def test_alignment_of_the_update_counts_every_term():
    """Adding a weight-decay term leaves the teaching signal alone but turns the update away from SGD's:
    the update's cosine is computed from the rule's whole update, by hand here for one step."""
    batch, sizes = _random_episodes(episodes=1, steps=1), (8, 5, 3)
    rule = {"pseudo_gradient": 0.1, "weight_decay": 0.5}
    learner = rule_learner(tuple(rule), layer_sizes=sizes, coefficients=rule, feedback="symmetric")
    out = alignment_with_backprop(learner, batch, seed=4)
    torch.testing.assert_close(out["teaching_signal"], torch.ones(2))
    learner.generator = torch.Generator().manual_seed(4)
    W, _ = learner.split(learner.initial_fast_weights(1))
    x, y = batch.support_x[:, 0], batch.support_y[:, 0]
    sgd = plasticity_update(W, None, torch.ones(1), ("pseudo_gradient",), x, y)
    for l in range(2):
        step_sgd = (sgd[l] - W[l]).flatten()
        step_rule = 0.1 * step_sgd - 0.5 * W[l].flatten()  # weight decay: -W (one sample)
        expected = F.cosine_similarity(step_rule, step_sgd, dim=0)
        torch.testing.assert_close(out["update"][l], expected)
        assert out["update"][l] < 0.99


def test_checkpoint_from_before_init_gain_still_resumes(tmp_path):
    """A config field added later (``init_gain``) takes its default when an older checkpoint is resumed;
    a checkpoint of another gain is refused."""

    class Source:
        def sample(self, episodes, generator):
            return _random_episodes(episodes)

    def fresh(gain=1.0):
        torch.manual_seed(0)
        return rule_learner(layer_sizes=(8, 6, 3), coefficients={"pseudo_gradient": 0.1}, init_gain=gain)

    path = tmp_path / "r.pt"
    cfg = MetaTrainConfig(steps=2, meta_batch_size=2, default_lr=1e-2)
    meta_train(fresh(), Source(), cfg, checkpoint=path, progress=False)
    ckpt = torch.load(path, weights_only=False)
    del ckpt["learner_config"]["init_gain"]  # as written before the field existed
    torch.save(ckpt, path)
    res = meta_train(
        fresh(), Source(), MetaTrainConfig(**{**cfg.__dict__, "steps": 3}), checkpoint=path, progress=False
    )
    assert res.steps_done == 3
    assert load_rule(path).config.init_gain == 1.0
    with pytest.raises(CheckpointError, match="different learner config"):
        meta_train(fresh(2**0.5), Source(), cfg, checkpoint=path, progress=False)


def test_a_minibatch_is_learned_one_sample_at_a_time_by_default():
    """``minibatch="sequential"``: a training minibatch of 8 gives the weights of 8 online steps on the same
    samples in the same order; ``"sum"`` takes one summed step (a different result)."""
    from avalanche.benchmarks import benchmark_from_datasets

    from avalanche_plasticity.scenarios.datasets import tensor_dataset
    from avalanche_plasticity.strategies import MetaPlasticityRule

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(48, 1, 6, 6, generator=g), torch.randint(0, 3, (48,), generator=g)
    bm = benchmark_from_datasets(train=[tensor_dataset(x, y)], test=[tensor_dataset(x, y)])
    rule = {"pseudo_gradient": 0.05, "oja": 0.01}
    weights = {}
    for name, mb, mode in (("online", 1, "sequential"), ("sequential", 8, "sequential"), ("sum", 8, "sum")):
        strategy = MetaPlasticityRule(
            learner=rule, num_classes=3, hidden_sizes=(10,), input_shape=(1, 6, 6), seed=0,
            train_mb_size=mb, minibatch=mode, evaluator=None,
        )  # fmt: skip
        strategy.train(bm.train_stream[0])
        weights[name] = [w.clone() for w in strategy.model.fast_weights]
    for a, b in zip(weights["online"], weights["sequential"], strict=True):
        torch.testing.assert_close(a, b)
    assert not all(torch.allclose(a, b) for a, b in zip(weights["online"], weights["sum"], strict=True))


def test_input_norm_scales_every_input_and_makes_learning_scale_free():
    """``input_norm`` (divisive normalisation): every input reaches the first layer at that L2 norm, so a
    stream of brighter images (MNIST carries about twice Omniglot's squared norm) is learned exactly as the
    same images at the meta-training brightness."""
    from avalanche_plasticity.strategies.online import PlasticModel

    def model(norm):
        learner = rule_learner(
            ("pseudo_gradient", "oja"),
            layer_sizes=(12, 8, 3),
            coefficients={"pseudo_gradient": 0.05, "oja": 0.01},
            input_norm=norm,
        )
        learner.generator = torch.Generator().manual_seed(0)
        learner.freeze()
        return PlasticModel(learner)

    x = torch.rand(40, 12, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(2))
    features = model(6.5).learner.features(x)
    assert torch.allclose(features.norm(dim=-1), torch.full((40,), 6.5))
    dim, bright = model(6.5), model(6.5)
    raw_dim, raw_bright = model(None), model(None)
    for t in range(40):
        dim.learn(x[t : t + 1], y[t : t + 1])
        bright.learn(3.0 * x[t : t + 1], y[t : t + 1])
        raw_dim.learn(x[t : t + 1], y[t : t + 1])
        raw_bright.learn(3.0 * x[t : t + 1], y[t : t + 1])
    for a, b in zip(dim.fast_weights, bright.fast_weights, strict=True):
        torch.testing.assert_close(a, b)  # brightness does not change what is learned ...
    assert not torch.allclose(raw_dim.fast_weights[0], raw_bright.fast_weights[0])  # ... without it, it does
    # deployment on another network keeps the normalisation
    assert dim.learner.with_network((12, 5, 4)).config.input_norm == 6.5


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), True, "6.5"])
def test_bad_input_norm_raises(bad):
    with pytest.raises(ValueError, match="input_norm must be None or a finite number > 0"):
        PlasticityRuleConfig(layer_sizes=(4, 3), input_norm=bad)
