"""The FLP rule against a hand computation, and its meta-gradients against finite differences."""

import pytest
import torch

from avalanche_plasticity.flp import FLPConfig, FLPLearner, flp_step, oja_update, onehot_oja_update
from avalanche_plasticity.meta_learning import meta_loss
from avalanche_plasticity.tasks import EpisodeBatch


def hand_oja(W, eta, post, pre, hebbian=False):
    """dW_ij = eta_ij (sum_b post_bi pre_bj - sum_b post_bi^2 w_ij), written as loops."""
    out = W.clone()
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            h = sum(post[b, i] * pre[b, j] for b in range(post.shape[0]))
            d = 0.0 if hebbian else sum(post[b, i] ** 2 for b in range(post.shape[0])) * W[i, j]
            out[i, j] = W[i, j] + eta[i, j] * (h - d)
    return out


@pytest.mark.parametrize("hebbian", [False, True])
def test_oja_update_matches_hand_formula(hebbian):
    g = torch.Generator().manual_seed(0)
    W, eta = torch.randn(3, 4, generator=g), torch.rand(3, 4, generator=g)
    post, pre = torch.randn(5, 3, generator=g), torch.randn(5, 4, generator=g)
    got = oja_update(W[None], eta, post[None], pre[None], hebbian)[0]
    torch.testing.assert_close(got, hand_oja(W, eta, post, pre, hebbian))


def test_onehot_fast_path_equals_dense_rule():
    g = torch.Generator().manual_seed(1)
    W, eta = torch.randn(2, 6, 4, generator=g), torch.rand(6, 4, generator=g)
    y, pre = torch.tensor([[1, 1, 3], [5, 0, 5]]), torch.randn(2, 3, 4, generator=g)
    dense = oja_update(W, eta, torch.nn.functional.one_hot(y, 6).float(), pre)
    torch.testing.assert_close(onehot_oja_update(W, eta, y, pre), dense)


def test_flp_step_regression_by_hand():
    """Whole FLP step on a 2-layer net: forward, error feedback, targets, Oja on each layer."""
    L = FLPLearner(FLPConfig(layer_sizes=(3, 4, 2), init_plasticity=0.05, init_feedback_strength=0.3), seed=0)
    with torch.no_grad():
        for p in L.biases:
            p.normal_()
        for p in L.feedback_biases:
            p.normal_()
    x, y = torch.randn(5, 3), torch.randn(5, 2)
    W1, W2 = (w.detach() for w in L.initial_weights)
    b1, b2 = (b.detach() for b in L.biases)
    B1, B2 = (b.detach() for b in L.feedback_weights)
    c1, c2 = (c.detach() for c in L.feedback_biases)
    a1 = torch.relu(x @ W1.T + b1)
    out = a1 @ W2.T + b2
    s = y - out
    t1 = 0.3 * torch.relu(s @ B1.T + c1) + 0.7 * a1
    t2 = 0.3 * torch.relu(s @ B2.T + c2) + 0.7 * out
    eta1, eta2 = (r.detach() for r in L.plasticity_rates)
    expect = [hand_oja(W1, eta1, t1, x), hand_oja(W2, eta2, t2, a1)]
    with torch.no_grad():
        got = flp_step(L.initial_fast_weights(1), L.meta(), x[None], y[None])
    for g_, e in zip(got, expect, strict=True):
        torch.testing.assert_close(g_[0], e)


def test_only_plastic_weights_change_and_rates_zero_freeze():
    L = FLPLearner(FLPConfig(layer_sizes=(3, 4, 2), init_plasticity=0.0), seed=0)
    fast = L.initial_fast_weights(2)
    new = L.step(fast, torch.randn(2, 5, 3), torch.randn(2, 5, 2))
    for a, b in zip(fast, new, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("task", ["regression", "classification"])
@pytest.mark.parametrize("granularity", ["synapse", "neuron", "layer"])
def test_meta_gradients_match_finite_differences(task, granularity):
    torch.manual_seed(0)
    n_out = 1 if task == "regression" else 3
    L = FLPLearner(
        FLPConfig(
            layer_sizes=(3, 4, 4, n_out), task=task, plasticity_granularity=granularity, init_plasticity=0.05
        ),
        seed=0,
    ).double()
    with torch.no_grad():
        for p in L.feedback_biases:
            p.add_(0.3)  # keep ReLUs away from their kink
    E, T, B, Q = 2, 3, 2, 4
    sx, qx = torch.randn(E, T, B, 3).double(), torch.randn(E, Q, 3).double()
    if task == "regression":
        sy, qy = torch.randn(E, T, B, 1).double(), torch.randn(E, Q, 1).double()
    else:
        sy, qy = torch.randint(0, n_out, (E, T, B)), torch.randint(0, n_out, (E, Q))
    batch = EpisodeBatch(sx, sy, qx, qy)
    groups = L.param_groups()
    assert set(groups) == {"forward", "feedback", "plasticity", "feedback_strength"}
    loss = meta_loss(L, batch)
    params = [p for g in groups.values() for p in g]
    grads = torch.autograd.grad(loss, params)
    eps = 1e-6
    for name, group in groups.items():
        assert group, f"empty group {name}"
        for p in group:
            g = grads[next(i for i, q in enumerate(params) if q is p)]
            for idx in list(torch.randint(0, p.numel(), (3,))):
                flat = p.data.view(-1)
                orig = flat[idx].item()
                with torch.no_grad():
                    flat[idx] = orig + eps
                    up = meta_loss(L, batch).item()
                    flat[idx] = orig - eps
                    down = meta_loss(L, batch).item()
                    flat[idx] = orig
                fd = (up - down) / (2 * eps)
                assert abs(fd - g.view(-1)[idx].item()) <= 1e-5 + 1e-4 * abs(fd), (name, fd, g.view(-1)[idx])


def test_batched_episodes_equal_one_at_a_time():
    L = FLPLearner(FLPConfig(layer_sizes=(5, 8, 3), task="classification", init_plasticity=0.02), seed=0)
    x, y = torch.randn(4, 6, 1, 5), torch.randint(0, 3, (4, 6, 1))
    batched = L.adapt(L.initial_fast_weights(4), x, y)
    for e in range(4):
        single = L.adapt(L.initial_fast_weights(1), x[e : e + 1], y[e : e + 1])
        for a, b in zip(batched, single, strict=True):
            torch.testing.assert_close(a[e : e + 1], b)


def test_a_classifier_checkpoint_with_the_old_unused_output_feedback_still_loads():
    """Checkpoints from before the classifier's output layer lost its feedback weights carry an (n_L, k)
    matrix there that no step read: it is dropped on load; any other mismatch is still an error."""
    import pytest

    from avalanche_plasticity.flp import FLPConfig, FLPLearner

    config = FLPConfig(layer_sizes=(6, 8, 4), task="classification")
    learner = FLPLearner(config, seed=0)
    old = learner.state_dict()
    last = f"feedback_weights.{len(learner.feedback_weights) - 1}"
    assert old[last].shape == (4, 0)
    old[last] = torch.randn(4, 4)  # the old layout: feedback from the 4-way signal to the output
    fresh = FLPLearner(config, seed=1)
    fresh.load_state_dict(old)
    for a, b in zip(fresh.state_dict().values(), learner.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    old[last] = torch.randn(5, 4)  # not the old layout: still refused
    with pytest.raises(RuntimeError, match="size mismatch"):
        FLPLearner(config, seed=1).load_state_dict(old)
