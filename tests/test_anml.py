"""ANML: the meta-gradient through the inner SGD steps, the gate, meta-training on Omniglot, the strategy."""

import pytest
import torch
import torch.nn.functional as F
from avalanche.benchmarks.scenarios import benchmark_from_datasets
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from avalanche_plasticity.anml import ANMLConfig, ANMLLearner
from avalanche_plasticity.meta_learning import MetaTrainConfig, meta_loss, meta_train, save_learner
from avalanche_plasticity.scenarios import ContinualOmniglot
from avalanche_plasticity.scenarios.datasets import tensor_dataset
from avalanche_plasticity.strategies import ANML
from avalanche_plasticity.tasks import EpisodeBatch


def tiny(plastic="pn", image_size=10, layers=2, units=5, channels=(2, 3), **kw) -> ANMLLearner:
    cfg = ANMLConfig(
        nm_trunk=dict(channels=channels[0], layers=layers, image_size=image_size),
        pn_trunk=dict(channels=channels[1], layers=layers, image_size=image_size),
        num_outputs=units,
        inner_lr=0.5,
        plastic=plastic,
        **kw,
    )
    return ANMLLearner(cfg, seed=0)


def tiny_episode(E=2, T=3, Q=4, size=10, units=5, seed=0) -> EpisodeBatch:
    g = torch.Generator().manual_seed(seed)
    return EpisodeBatch(
        torch.rand(E, T, 1, 1, size, size, generator=g, dtype=torch.float64),
        torch.randint(0, units, (E, T, 1), generator=g),
        torch.rand(E, Q, 1, size, size, generator=g, dtype=torch.float64),
        torch.randint(0, units, (E, Q), generator=g),
    )


# An explicit reference, written independently of the learner's batched code: one episode at a time,
# plain (un-vmapped) convs, instance norm by its formula, SGD steps by autograd with create_graph.
def ref_convs(params, x, pool_last=False):
    n = len(params) // 4
    for i in range(n):
        w, b, gain, shift = params[4 * i : 4 * i + 4]
        x = F.conv2d(x, w, b)
        mu, var = x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True)
        x = torch.relu((x - mu) / torch.sqrt(var + 1e-5) * gain.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1))
        if i < n - 1 or pool_last:
            x = F.max_pool2d(x, 2)
    return x.flatten(1)


def ref_meta_loss(learner: ANMLLearner, batch: EpisodeBatch) -> torch.Tensor:
    nm = list(learner.neuromodulation)

    def logits(pn, head_w, head_b, x):
        gate = torch.sigmoid(ref_convs(nm, x) @ learner.gate_weight.T + learner.gate_bias)
        return (ref_convs(pn, x) * gate) @ head_w.T + head_b

    losses = []
    for e in range(batch.episodes):
        pn, head = list(learner.pn), [learner.head_weight, learner.head_bias]
        if learner.config.head_init == "zero":
            head = [torch.zeros_like(p).requires_grad_() for p in head]
        for t in range(batch.support_x.shape[1]):
            plastic = pn + head if learner.config.plastic == "pn" else head
            loss = F.cross_entropy(logits(pn, *head, batch.support_x[e, t]), batch.support_y[e, t])
            grads = torch.autograd.grad(loss, plastic, create_graph=True)
            new = [p - learner.config.inner_lr * g for p, g in zip(plastic, grads, strict=True)]
            pn, head = (new[:-2], new[-2:]) if learner.config.plastic == "pn" else (pn, new)
        losses.append(F.cross_entropy(logits(pn, *head, batch.query_x[e]), batch.query_y[e]))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("plastic, head_init", [("pn", "meta"), ("head", "meta"), ("pn", "zero")])
def test_meta_gradient_matches_an_explicit_unroll_and_finite_differences(plastic, head_init):
    learner = tiny(plastic, head_init=head_init).double()
    batch = tiny_episode()
    params = [p for group in learner.param_groups().values() for p in group]  # what meta_train updates
    loss = meta_loss(learner, batch)
    grads = torch.autograd.grad(loss, params)
    ref = ref_meta_loss(learner, batch)
    ref_grads = torch.autograd.grad(ref, params)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-10)
    for i, (g, r) in enumerate(zip(grads, ref_grads, strict=True)):
        torch.testing.assert_close(g, r, rtol=1e-7, atol=1e-10, msg=f"meta-parameter {i}")
    # Central finite differences on one NM conv weight, the gate layer and one PN conv weight.
    grad_of = {id(p): g for p, g in zip(params, grads, strict=True)}
    for p in (learner.neuromodulation[0], learner.gate_weight, learner.pn[4]):
        g = grad_of[id(p)]
        idx = tuple(int(i) for i in torch.nonzero(g.abs() > 1e-6)[0])
        with torch.no_grad():
            old, h = p[idx].item(), 1e-5
            p[idx] = old + h
            up = meta_loss(learner, batch).item()
            p[idx] = old - h
            down = meta_loss(learner, batch).item()
            p[idx] = old
        assert (up - down) / (2 * h) == pytest.approx(g[idx].item(), rel=1e-4, abs=1e-9)
    # second order: dropping the terms through the inner steps changes the NM's meta-gradient
    learner.config.first_order = True
    first = torch.autograd.grad(meta_loss(learner, batch), learner.gate_weight)[0]
    assert not torch.allclose(first, grad_of[id(learner.gate_weight)])


def test_a_zero_head_starts_every_episode_at_zero_outside_the_meta_gradient():
    learner = tiny("pn").double()  # head_init="zero" by default
    assert learner.param_groups()["head"] == [] and torch.all(learner.head_weight == 0)
    loss = meta_loss(learner, tiny_episode())
    loss.backward()
    assert learner.head_weight.grad is None and learner.gate_weight.grad.abs().sum() > 0
    s = ANML(learner=learner, evaluator=EvaluationPlugin(loggers=[]))
    assert torch.all(s.model.head.weight == 0)  # deployed from where meta-training started


@pytest.mark.parametrize("plastic", ["pn", "head"])
def test_a_closed_gate_silences_features_and_freezes_what_it_gates(plastic):
    learner = tiny(plastic).double()
    batch = tiny_episode(E=1)
    half = learner.config.feature_size // 2
    with torch.no_grad():
        learner.gate_weight.zero_()
        learner.gate_bias[:half] = -1e4  # gate 0 on the first half of the features, 0.5 on the rest
    gated = learner.gated_features(batch.query_x)
    assert torch.all(gated[..., :half] == 0) and torch.all(gated[..., half:].abs().sum() > 0)
    fast0 = learner.initial_fast_weights(1)
    with torch.no_grad():
        fast = learner.step(fast0, learner.features(batch.support_x[:, 0]), batch.support_y[:, 0])
    moved = fast[-2] - fast0[-2]  # the head's weights: (1, K, F)
    assert torch.all(moved[..., :half] == 0)  # no plasticity where the gate is closed
    assert moved[..., half:].abs().sum() > 0
    with torch.no_grad():
        learner.gate_bias.fill_(-1e4)  # all closed: the PN's features and convs no longer learn either
        fast = learner.step(fast0, learner.features(batch.support_x[:, 0]), batch.support_y[:, 0])
    assert all(torch.equal(a, b) for a, b in zip(fast[:-1], fast0[:-1], strict=True))  # only the bias moves
    assert learner.gated_features(batch.query_x).abs().max() == 0


def test_short_meta_training_on_omniglot_lowers_the_meta_loss(omniglot_root):
    from avalanche_plasticity.data import load_omniglot
    from avalanche_plasticity.tasks import OmniglotTaskSource

    images = load_omniglot("background", root=omniglot_root, image_size=28).images
    learner = ANMLLearner(
        ANMLConfig(
            nm_trunk=dict(channels=2, layers=3, image_size=28),
            pn_trunk=dict(channels=8, layers=3, image_size=28),
            num_outputs=20,
            inner_lr=0.1,
            plastic="head",
        ),
        seed=0,
    )
    kw = dict(ways=5, shots=2, query_shots=2, num_units=20)
    held = OmniglotTaskSource(images[800:], **kw).sample(16, torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = meta_loss(learner, held).item()
    meta_train(
        learner,
        OmniglotTaskSource(images[:800], **kw),
        MetaTrainConfig(steps=30, meta_batch_size=4, default_lr=3e-3),
        progress=False,
    )
    with torch.no_grad():
        after = meta_loss(learner, held).item()
    assert after < before - 0.2, (before, after)


def test_strategy_learns_a_continual_omniglot_stream_from_a_checkpoint(omniglot_root, tmp_path):
    bm = ContinualOmniglot(num_classes=6, classes_per_experience=3, root=omniglot_root)
    learner = tiny("pn", image_size=28, layers=3, units=10, channels=(4, 8))
    path = tmp_path / "anml.pt"
    save_learner(learner, path)
    frozen = {k: v.clone() for k, v in learner.state_dict().items()}
    ev = EvaluationPlugin(accuracy_metrics(stream=True), loggers=[])
    s = ANML(learner=str(path), lr=0.05, train_mb_size=1, eval_mb_size=25, evaluator=ev, seed=0)
    head0 = s.model.head.weight.clone()
    for exp in bm.train_stream:
        s.train(exp)
    acc = s.eval(bm.test_stream)["Top1_Acc_Stream/eval_phase/test_stream"]
    assert acc > 0.33, acc  # chance: 1/6
    assert not torch.equal(head0, s.model.head.weight)
    assert all(torch.equal(frozen[k], v) for k, v in s.model.learner.state_dict().items())  # NM, PN fixed


def test_strategy_refuses_labels_beyond_the_head_and_bad_lr():
    learner = tiny("head", units=2)
    x = torch.rand(4, 1, 10, 10)
    bm = benchmark_from_datasets(train=[tensor_dataset(x, torch.tensor([0, 1, 2, 1]))], test=[])
    s = ANML(learner=learner, evaluator=EvaluationPlugin(loggers=[]))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        s.train(bm.train_stream[0])
    with pytest.raises(ValueError, match="lr"):
        ANML(learner=tiny(), lr=0.0)
    with pytest.raises(TypeError, match="ANMLLearner"):
        ANML(learner=torch.nn.Linear(2, 2))
    # reset_head: the paper's fresh Kaiming-normal head
    reset = ANML(learner=tiny(), reset_head=True, seed=1, evaluator=EvaluationPlugin(loggers=[]))
    assert not torch.equal(reset.model.head.weight, reset.model.learner.head_weight)
    assert torch.all(reset.model.head.bias == 0)


TRUNK = dict(channels=2, layers=2, image_size=10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(nm_trunk=dict(layers=2, image_size=10)), "nm_trunk needs 'channels'"),
        (dict(pn_trunk={**TRUNK, "stride": 2}), r"pn_trunk has unknown key\(s\) \['stride'\]"),
        (dict(pn_trunk={**TRUNK, "channels": 0}), r"pn_trunk\['channels'\] must be an int >= 1"),
        (dict(nm_trunk={**TRUNK, "pool_last": 1}), r"nm_trunk\['pool_last'\] must be a bool"),
        (dict(pn_trunk={**TRUNK, "layers": 4}), "pn_trunk: image_size 10 is too small for 4 conv blocks"),
        (dict(pn_trunk={**TRUNK, "image_size": 12}), "same image_size, got 10 and 12"),
        (dict(nm_trunk=[2, 2]), "nm_trunk must be a dict"),
        (dict(num_outputs=0), "num_outputs must be a positive int"),
        (dict(task="regression"), "task must be 'classification'"),
        (dict(inner_lr=0.0), "inner_lr must be a finite number > 0"),
        (dict(inner_lr=float("inf")), "inner_lr must be a finite number > 0"),
        (dict(plastic="nm"), r"plastic must be one of \('pn', 'head'\)"),
        (dict(head_init="kaiming"), r"head_init must be one of \('zero', 'meta'\)"),
    ],
)
def test_bad_config_values_raise_naming_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ANMLConfig(**{"nm_trunk": TRUNK, "pn_trunk": TRUNK, **kwargs})
