"""The memory-lean meta-gradient (issue #16) equals the stored-graph one on every meta-parameter group."""

import dataclasses

import pytest
import torch

from avalanche_plasticity.flp import FLPConfig, FLPLearner
from avalanche_plasticity.memory_lean import LeanSpec, lean_trajectory
from avalanche_plasticity.meta_learning import MetaTrainConfig, meta_loss, meta_train
from avalanche_plasticity.oml import OMLConfig, OMLLearner
from avalanche_plasticity.tasks import EpisodeBatch, SineTaskSource

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: one thread is fastest, and keeps these tests quick on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_learner(dtype=torch.float64, rate=1e-5, **config) -> FLPLearner:
    config = {"layer_sizes": (11, 12, 12, 1), **config}
    learner = FLPLearner(FLPConfig(**config), seed=0).to(dtype)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # every term of the rule in play: non-zero rates and biases
        for r in learner.plasticity_rates:
            r.copy_(torch.rand(r.shape, generator=g, dtype=dtype) * 2 * rate)
        for b in [*learner.biases, *learner.feedback_biases]:
            b.copy_(torch.randn(b.shape, generator=g, dtype=dtype) * 0.1)
    return learner


def sine_batch(dtype, steps=400, episodes=2, batch_size=4) -> EpisodeBatch:
    source = SineTaskSource(
        functions_per_episode=10,
        batches_per_function=steps // 10,
        batch_size=batch_size,
        query_per_function=4,
    )
    batch = source.sample(episodes, torch.Generator().manual_seed(2))
    return EpisodeBatch(*(t.to(dtype) for t in dataclasses.astuple(batch)))


def class_batch(dtype, steps=30, episodes=2, ways=5, shape=(12,)) -> EpisodeBatch:
    g = torch.Generator().manual_seed(3)
    return EpisodeBatch(
        torch.randn(episodes, steps, 2, *shape, generator=g, dtype=dtype),
        torch.randint(ways, (episodes, steps, 2), generator=g),
        torch.randn(episodes, 6, *shape, generator=g, dtype=dtype),
        torch.randint(ways, (episodes, 6), generator=g),
    )


def group_grads(learner, batch, **kw) -> tuple[float, dict[str, torch.Tensor]]:
    learner.zero_grad(set_to_none=True)
    loss = meta_loss(learner, batch, **kw)
    loss.backward()
    flat = {
        name: torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in ps])
        for name, ps in learner.param_groups().items()
        if ps
    }
    return loss.item(), flat


def relative_errors(learner, batch, **kw) -> dict[str, float]:
    ref_loss, ref = group_grads(learner, batch)
    loss, lean = group_grads(learner, batch, meta_gradient="memory_lean", **kw)
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    for name, g in ref.items():
        assert g.norm() > 0, f"group {name} has a zero reference gradient: the test would prove nothing"
    return {name: ((lean[name] - g).norm() / g.norm()).item() for name, g in ref.items()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rule", ["oja", "hebb"])
def test_memory_lean_equals_stored_graph_over_400_steps(dtype, rule):
    errors = relative_errors(make_learner(dtype, rule=rule), sine_batch(dtype))
    assert max(errors.values()) <= TOL[dtype], errors


@pytest.mark.parametrize(
    "config",
    [
        {"plasticity_granularity": "neuron", "linear_feedback": True, "hidden_plasticity_multiplier": 3.0},
        {"plasticity_granularity": "layer"},
        {"rule": "hebb", "plasticity_granularity": "neuron"},
    ],
)
def test_memory_lean_covers_the_rule_variants(config):
    errors = relative_errors(make_learner(**config), sine_batch(torch.float64, steps=60))
    assert max(errors.values()) <= 1e-10, errors


@pytest.mark.parametrize("rule", ["oja", "hebb"])
def test_memory_lean_classification_with_a_trunk(rule):
    """One-hot output target, and gradients through the features into a conv trunk."""
    trunk = {"channels": 4, "strides": (2, 2), "image_size": 8}
    learner = make_learner(
        rate=1e-3,
        layer_sizes=(16, 16, 5),
        task="classification",
        trunk=trunk,
        rule=rule,
        hidden_plasticity_multiplier=10.0,
    )
    errors = relative_errors(learner, class_batch(torch.float64, shape=(1, 8, 8)))
    assert max(errors.values()) <= 1e-10, errors


@pytest.mark.parametrize("anchor_every", [1, 7, 60])
def test_anchor_interval_does_not_change_the_gradient(anchor_every):
    errors = relative_errors(make_learner(), sine_batch(torch.float64, steps=60), anchor_every=anchor_every)
    assert max(errors.values()) <= 1e-10, errors


def test_replayed_segments_and_episode_chunks_give_the_same_gradient():
    """With ``max_amplification=1`` every Oja segment is replayed from its anchor instead of inverted; with
    ``episode_chunk`` the episodes run a chunk at a time."""
    learner = make_learner(rate=1e-4)
    batch = sine_batch(torch.float64, steps=50)
    E = batch.episodes
    feats = learner.features(batch.support_x)

    def final(spec):
        c = learner.config
        return lean_trajectory(
            learner.initial_fast_weights(E),
            list(learner.biases),
            list(learner.feedback_weights),
            list(learner.feedback_biases),
            list(learner.plasticity_rates),
            list(learner.feedback_strengths),
            feats,
            batch.support_y,
            spec if spec else LeanSpec(c.task, c.rule),
        )

    params = [p for ps in learner.param_groups().values() for p in ps]
    probe = [
        torch.randn(w.shape, dtype=w.dtype, generator=torch.Generator().manual_seed(4)) for w in final(None)
    ]

    def grads(spec):
        out = final(spec)
        return torch.autograd.grad(sum((o * p).sum() for o, p in zip(out, probe, strict=True)), params)

    inverted = grads(LeanSpec("regression", "oja"))
    replayed = grads(LeanSpec("regression", "oja", max_amplification=1.0))
    for a, b in zip(inverted, replayed, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
    # a meta-batch run a chunk of episodes at a time: the same final weights and gradients
    assert E == 2
    whole = LeanSpec("regression", "oja", episode_chunk=E)
    for a, b in zip(final(whole), final(LeanSpec("regression", "oja", episode_chunk=1)), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    for a, b in zip(grads(whole), inverted, strict=True):  # (one thread: chunks of one episode)
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)


def test_memory_lean_with_truncation():
    learner, batch = make_learner(), sine_batch(torch.float64, steps=60)
    _, ref = group_grads(learner, batch, truncate=25)
    _, lean = group_grads(learner, batch, truncate=25, meta_gradient="memory_lean")
    for name, g in ref.items():
        torch.testing.assert_close(lean[name], g, rtol=1e-10, atol=1e-14)


def test_meta_train_with_memory_lean_follows_the_stored_graph():
    source = SineTaskSource(
        functions_per_episode=10, batches_per_function=2, batch_size=4, query_per_function=4
    )
    results = {}
    for method in ("stored", "memory_lean"):
        learner = make_learner(dtype=torch.float32)
        config = MetaTrainConfig(steps=3, meta_batch_size=4, default_lr=1e-3, meta_gradient=method)
        meta_train(learner, source, config, progress=False)
        results[method] = torch.cat([p.detach().flatten() for p in learner.parameters()])
    torch.testing.assert_close(results["memory_lean"], results["stored"], rtol=1e-4, atol=1e-6)


def test_bad_meta_gradient_settings_are_clear_errors():
    with pytest.raises(ValueError, match="meta_gradient"):
        MetaTrainConfig(meta_gradient="reversible-ish")
    with pytest.raises(ValueError, match="lean_anchor_every"):
        MetaTrainConfig(lean_anchor_every=0)
    with pytest.raises(ValueError, match="anchor_every"):
        LeanSpec("regression", "oja", anchor_every=-1)
    with pytest.raises(ValueError, match="episode_chunk must be None or a positive int, got 0"):
        LeanSpec("regression", "oja", episode_chunk=0)
    oml = OMLLearner(OMLConfig(rln_sizes=(11, 8), pln_sizes=(8, 1)), seed=0)
    with pytest.raises(ValueError, match="memory_lean"):
        meta_train(
            oml, SineTaskSource(), MetaTrainConfig(steps=1, meta_gradient="memory_lean"), progress=False
        )


def test_a_checkpoint_resumes_with_the_other_meta_gradient(tmp_path):
    """The method changes how the gradient is computed, not what it is: resuming may switch it."""
    source = SineTaskSource(
        functions_per_episode=10, batches_per_function=2, batch_size=4, query_per_function=4
    )
    ckpt = tmp_path / "flp.pt"
    learner = make_learner(dtype=torch.float32)
    meta_train(learner, source, MetaTrainConfig(steps=2, meta_batch_size=2), checkpoint=ckpt, progress=False)
    lean = MetaTrainConfig(steps=4, meta_batch_size=2, meta_gradient="memory_lean", lean_anchor_every=3)
    result = meta_train(make_learner(dtype=torch.float32), source, lean, checkpoint=ckpt, progress=False)
    assert result.steps_done == 4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_plasticity_rule_pool_memory_lean_equals_the_stored_graph(dtype):
    """The ten-term pool (every coefficient non-zero) over 400 online steps: the checkpointed path gives the
    stored graph's meta-loss and meta-gradient."""
    from avalanche_plasticity.plasticity_rules.learner import PlasticityRuleConfig, PlasticityRuleLearner
    from avalanche_plasticity.plasticity_rules.terms import PAPER_POOL

    # every term in play, alternating signs, small enough to stay finite over 400 steps of [0, 1) inputs
    size = {t: 1e-2 if t == "pseudo_gradient" else 1e-4 for t in PAPER_POOL}
    coefficients = {t: size[t] * (-1) ** i for i, t in enumerate(PAPER_POOL)}
    config = PlasticityRuleConfig(layer_sizes=(12, 10, 8, 5), init_coefficients=coefficients)
    g = torch.Generator().manual_seed(3)
    batch = EpisodeBatch(
        torch.rand(2, 400, 1, 12, generator=g, dtype=dtype),
        torch.randint(5, (2, 400, 1), generator=g),
        torch.rand(2, 6, 12, generator=g, dtype=dtype),
        torch.randint(5, (2, 6), generator=g),
    )
    grads, losses = {}, {}
    for method in ("stored", "memory_lean"):
        learner = PlasticityRuleLearner(config).to(dtype)
        learner.generator = torch.Generator().manual_seed(5)  # the same per-episode draws for both
        losses[method], grads[method] = group_grads(learner, batch, meta_gradient=method)
    assert losses["memory_lean"] == pytest.approx(losses["stored"], rel=1e-12)
    for name, g in grads["stored"].items():
        assert g.norm() > 0, name
        error = ((grads["memory_lean"][name] - g).norm() / g.norm()).item()
        assert error <= TOL[dtype], (name, error)


def test_checkpointed_trajectory_is_exact_and_keeps_no_per_step_graph():
    """Segments of 10 steps: the same final state bit for bit, the same gradient, and no tensor saved
    for backward per step outside the checkpoints: a few per segment (the stored trajectory saves some
    at every step)."""
    from avalanche_plasticity.memory_lean import checkpointed_trajectory

    w0 = torch.randn(1, 6, 6, dtype=torch.float64, requires_grad=True)
    xs = torch.randn(1, 100, 6, dtype=torch.float64)

    def step(w, x, y):
        return [w[0] + 0.01 * torch.tanh(x.unsqueeze(-1) * w[0])]

    def saved(run):
        count = [0]

        def pack(t):
            count[0] += 1
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = run()
        return out, count[0]

    def stored():
        w = [w0]
        for t in range(100):
            w = step(w, xs[:, t], None)
        return w[0]

    reference, stored_count = saved(stored)
    lean, lean_count = saved(lambda: checkpointed_trajectory(step, [w0], xs, torch.zeros(1, 100), 10)[0])
    assert torch.equal(lean, reference)
    grad = torch.autograd.grad(reference.sum(), w0)[0]
    torch.testing.assert_close(torch.autograd.grad(lean.sum(), w0)[0], grad, rtol=1e-12, atol=0)
    assert stored_count >= 200 and lean_count <= 3 * 10, (stored_count, lean_count)  # per segment, not step
