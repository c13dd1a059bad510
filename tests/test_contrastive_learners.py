"""Complex-synapse and gain-modulation learners: meta-training (contrastive and unrolled), resume,
few-shot scenarios, and the Avalanche strategies through train/eval with EvaluationPlugin."""

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin

from avalanche_plasticity.configs import configure
from avalanche_plasticity.contrastive import (
    BilevelMetaTrainConfig,
    ComplexSynapseConfig,
    ComplexSynapseLearner,
    ContrastiveConfig,
    GainModulationConfig,
    GainModulationLearner,
    SolverConfig,
    few_shot_accuracy,
    load_bilevel_learner,
    meta_train_bilevel,
    save_bilevel_learner,
    tasks_from_episodes,
)
from avalanche_plasticity.metrics import mse_metrics
from avalanche_plasticity.scenarios import ContinualOmniglot, IncrementalSine
from avalanche_plasticity.scenarios.few_shot import FewShotOmniglot, FewShotSine
from avalanche_plasticity.strategies.contrastive import ComplexSynapse, GainModulation

FIXED = SolverConfig(lr=0.05, max_steps=15, tol=None)


def sine_cs(seed=0):
    return ComplexSynapseLearner(
        ComplexSynapseConfig(network={"kind": "mlp", "sizes": [1, 16, 16, 1]}, init_lambda=0.05, seed=seed)
    )


class SharedLinearTasks:
    """Linear-regression tasks y = x . w_t with w_t = w_shared + 0.1 noise: a learner that meta-learns its
    anchor omega toward w_shared answers a 3-shot task far better than one anchored at random."""

    def __init__(self, d=6):
        self.w = torch.linspace(-2.0, 2.0, d).unsqueeze(1)

    def sample(self, episodes, generator):
        from avalanche_plasticity.tasks import EpisodeBatch

        d = len(self.w)
        w = self.w + 0.1 * torch.randn(episodes, d, 1, generator=generator)
        x = torch.randn(episodes, 3 + 20, d, generator=generator)
        y = x @ w
        return EpisodeBatch(x[:, None, :3], y[:, None, :3], x[:, 3:], y[:, 3:])


LINEAR_SOLVER = SolverConfig(lr=0.03, max_steps=3000, tol=1e-4)


def linear_cs():
    return ComplexSynapseLearner(
        ComplexSynapseConfig(network={"kind": "mlp", "sizes": [6, 1]}, init_lambda=1.0)
    )


@pytest.mark.parametrize("estimator", ["contrastive", "unrolled"])
def test_meta_training_learns_the_shared_task_structure(estimator):
    learner = linear_cs()
    src = SharedLinearTasks()
    before = sum(few_shot_accuracy(learner, src, 20, LINEAR_SOLVER, seed=7)) / 20
    cfg = BilevelMetaTrainConfig(
        steps=20,
        meta_batch_size=2,
        estimator=estimator,
        contrastive=ContrastiveConfig(beta=0.01, free=LINEAR_SOLVER),
        unrolled=SolverConfig(lr=0.03, max_steps=60, tol=None),
        lr=0.2,
    )
    res = meta_train_bilevel(learner, src, cfg)
    after = sum(few_shot_accuracy(learner, src, 20, LINEAR_SOLVER, seed=7)) / 20
    assert res.steps_done == 20 and len(res.history) == 20
    assert after < 0.3 * before, (before, after)
    gap = (learner.omega["0__weight"].detach().reshape(-1, 1) - src.w).norm() / src.w.norm()
    assert gap < 0.5  # the anchor moved toward the shared weights


def test_meta_training_resumes_to_the_same_result(tmp_path):
    cfg = BilevelMetaTrainConfig(
        steps=4,
        meta_batch_size=2,
        contrastive=ContrastiveConfig(beta=0.3, free=FIXED),
        lr=1e-2,
        checkpoint_every=1,
    )
    full = meta_train_bilevel(sine_cs(), FewShotSine(), cfg).learner
    ck = tmp_path / "cs.pt"
    meta_train_bilevel(sine_cs(), FewShotSine(), cfg, checkpoint=ck, stop_after=2)
    resumed = meta_train_bilevel(sine_cs(), FewShotSine(), cfg, checkpoint=ck).learner
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    loaded = load_bilevel_learner(ck)
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.state_dict().values(), resumed.state_dict().values(), strict=True)
    )
    from avalanche_plasticity.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="different meta-training config"):
        meta_train_bilevel(
            sine_cs(), FewShotSine(), BilevelMetaTrainConfig(**{**cfg.__dict__, "lr": 0.5}), checkpoint=ck
        )


def test_checkpoint_from_before_online_batch_size_still_loads(tmp_path):
    """A meta-training config field added later (``online_batch_size``) takes its default when an older
    checkpoint is resumed or loaded as finished; a checkpoint of another value is refused."""
    from avalanche_plasticity.checkpoint import CheckpointError
    from avalanche_plasticity.experiments import meta_trained

    cfg = BilevelMetaTrainConfig(
        steps=2, meta_batch_size=2, contrastive=ContrastiveConfig(beta=0.3, free=FIXED), lr=1e-2
    )
    ck = tmp_path / "cs.pt"
    meta_train_bilevel(sine_cs(), FewShotSine(), cfg, checkpoint=ck)
    old = torch.load(ck, weights_only=False)
    del old["meta_config"]["online_batch_size"]  # as written before the field existed
    torch.save(old, ck)
    resumed = meta_train_bilevel(
        sine_cs(), FewShotSine(), BilevelMetaTrainConfig(**{**cfg.__dict__, "steps": 3}), checkpoint=ck
    )
    assert resumed.steps_done == 3
    with pytest.raises(CheckpointError, match="different meta-training config"):
        meta_train_bilevel(
            sine_cs(),
            FewShotSine(),
            BilevelMetaTrainConfig(**{**cfg.__dict__, "online_batch_size": 2}),
            checkpoint=ck,
        )
    # the cache of ``compare``: a finished older checkpoint is loaded, not trained again
    first = meta_trained("sine", "ComplexSynapse", steps=1, checkpoint_dir=tmp_path, progress=False)
    (path,) = tmp_path.glob("sine_ComplexSynapse_*steps1*.pt")
    old = torch.load(path, weights_only=False)
    del old["meta_config"]["online_batch_size"]
    torch.save(old, path)
    steps = []
    again = meta_trained(
        "sine",
        "ComplexSynapse",
        steps=1,
        checkpoint_dir=tmp_path,
        progress=False,
        on_step=lambda i, m: steps.append(i),
    )
    assert steps == []
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_head_lambda_frees_the_readout_under_consolidated_hidden_synapses():
    """``head_lambda`` sets the readout's strengths only; online SGD then moves the readout and leaves the
    hidden weights at their anchors when 2 lambda lr = 1 (each step's change pulled back by the next)."""
    spec = {"kind": "mlp", "sizes": [3, 8, 2]}
    lr = 0.05
    learner = ComplexSynapseLearner(
        ComplexSynapseConfig(network=spec, init_lambda=0.5 / lr, head_lambda=1e-4, inner_lr=lr)
    )
    strengths = {k: v.exp() for k, v in learner.log_lambda.items()}
    torch.testing.assert_close(strengths["0__weight"], torch.full((8, 3), 10.0))
    torch.testing.assert_close(strengths["2__weight"], torch.full((2, 8), 1e-4))
    theta = learner.theta()
    fast = {k: w.detach().clone().requires_grad_() for k, w in learner.initial_fast_weights(theta).items()}
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        x, y = torch.randn(1, 3, generator=g), torch.randn(1, 2, generator=g)
        loss = ((learner.predict(fast, theta, x) - y) ** 2).mean() + learner.regulariser(fast, theta)
        grads = torch.autograd.grad(loss, list(fast.values()))
        fast = {
            k: (w - lr * d).detach().requires_grad_() for (k, w), d in zip(fast.items(), grads, strict=True)
        }
    hidden = (fast["0.weight"] - learner.omega["0__weight"]).norm() / learner.omega["0__weight"].norm()
    readout = (fast["2.weight"] - learner.omega["2__weight"]).norm() / learner.omega["2__weight"].norm()
    assert readout > 10 * hidden  # the readout learned, the hidden layer stayed at its anchor
    plain = ComplexSynapseLearner(ComplexSynapseConfig(network=spec, init_lambda=0.3))
    assert all(torch.allclose(v.exp(), torch.tensor(0.3)) for v in plain.log_lambda.values())


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_features_are_the_readouts_input(kind):
    """``features`` is what the head reads: predict == head(features), for both learners and both nets."""
    import torch.nn.functional as F

    net = (
        {"kind": "mlp", "sizes": [3, 5, 4, 2]}
        if kind == "mlp"
        else {"kind": "conv", "channels": 4, "image_size": 28, "num_outputs": 3, "norm": "layer"}
    )
    x = torch.randn(2, 3) if kind == "mlp" else torch.randn(2, 1, 28, 28)
    for learner, head in (
        (ComplexSynapseLearner(ComplexSynapseConfig(network=net)), None),
        (GainModulationLearner(GainModulationConfig(network=net)), ("head_weight", "head_bias")),
    ):
        theta = learner.theta()
        fast = learner.initial_fast_weights(theta)
        if head is None:
            last = learner._names[-1].split(".")[0]
            head = (f"{last}.weight", f"{last}.bias")
        h = learner.features(fast, theta, x)
        assert h.shape == (2, fast[head[0]].shape[1])
        torch.testing.assert_close(learner.predict(fast, theta, x), F.linear(h, fast[head[0]], fast[head[1]]))


@pytest.mark.parametrize("name", ["ComplexSynapse", "GainModulation"])
def test_omniglot_presets_meta_train_for_retention(omniglot_root, tmp_path, name):
    """On Omniglot (and so on the MNIST-family streams) both learners meta-train through the online pass on
    class-incremental streams (two 10-way tasks, the query on all 20 classes); one meta-update on real
    Omniglot moves the meta-parameters and resumes from its checkpoint."""
    import dataclasses

    from avalanche_plasticity.experiments import build_learner, meta_trained

    preset, _ = configure("split_mnist", "cpu", {"num_units": "20", "meta_batch_size": "1"}, learners=[name])
    p = preset[name]
    assert p.meta.estimator == "online" and p.source["tasks"] == 2 and p.source["query"] == "seen"
    if name == "ComplexSynapse":  # consolidated hidden synapses: each step's change pulled back by the next
        assert 2 * p.learner_config.init_lambda * p.learner_config.inner_lr == 1.0
        assert p.learner_config.head_lambda < 1e-2
    else:
        assert p.learner_config.reg_strength == 0
    start = {k: v.detach().clone() for k, v in build_learner(p, 0).meta_parameters().items()}
    learner = meta_trained(
        "split_mnist", name, preset=p, steps=1, checkpoint_dir=tmp_path, root=omniglot_root, progress=False
    )
    moved = [k for k, v in learner.meta_parameters().items() if not torch.equal(v.detach(), start[k])]
    assert moved and all(torch.isfinite(v).all() for v in learner.meta_parameters().values())
    again = meta_trained(
        "split_mnist",
        name,
        preset=dataclasses.replace(p),
        steps=1,
        checkpoint_dir=tmp_path,
        root=omniglot_root,
    )
    for a, b in zip(learner.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the finished checkpoint is loaded, not trained again


def test_few_shot_sine_shapes_and_bad_input():
    b = FewShotSine(shots=5, query=7).sample(3, torch.Generator().manual_seed(0))
    assert b.support_x.shape == (3, 1, 5, 1) and b.query_y.shape == (3, 7, 1)
    t = tasks_from_episodes(b)[0]
    assert t.support_x.shape == (5, 1)
    with pytest.raises(ValueError, match="shots"):
        FewShotSine(shots=0)


@pytest.mark.parametrize("ways,shots", [(5, 1), (20, 5)])
def test_few_shot_omniglot_episodes(omniglot_root, ways, shots):
    src = FewShotOmniglot(ways=ways, shots=shots, query_shots=3, root=omniglot_root)
    b = src.sample(2, torch.Generator().manual_seed(0))
    assert b.support_x.shape == (2, 1, ways * shots, 1, 28, 28) and b.query_x.shape == (
        2,
        ways * 3,
        1,
        28,
        28,
    )
    for e in range(2):
        assert torch.equal(torch.bincount(b.support_y[e, 0], minlength=ways), torch.full((ways,), shots))
        assert torch.equal(torch.bincount(b.query_y[e], minlength=ways), torch.full((ways,), 3))
        # support and query images of one label come from the same class (same Omniglot character)
    assert src.split == "evaluation" and len(src.taskset.dataset.labels) == 659
    with pytest.raises(ValueError, match="shots"):
        FewShotOmniglot(shots=10, query_shots=15, root=omniglot_root)


def test_conv_complex_synapse_few_shot_omniglot_step(omniglot_root):
    src = FewShotOmniglot(ways=5, shots=1, query_shots=2, split="background", root=omniglot_root)
    learner = ComplexSynapseLearner(
        ComplexSynapseConfig(network={"kind": "conv", "channels": 4, "num_outputs": 5}, task="classification")
    )
    cfg = BilevelMetaTrainConfig(
        steps=1,
        meta_batch_size=2,
        contrastive=ContrastiveConfig(beta=0.1, free=SolverConfig(lr=0.1, max_steps=5, tol=None)),
    )
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    res = meta_train_bilevel(learner, src, cfg)
    assert res.history[0]["meta_loss"] > 0
    assert any(not torch.equal(before[k], v) for k, v in learner.state_dict().items())


@pytest.mark.parametrize(
    "learner_cls, config_cls",
    [(ComplexSynapseLearner, ComplexSynapseConfig), (GainModulationLearner, GainModulationConfig)],
)
def test_conv_layer_norm_is_per_example_and_bad_norm_raises(learner_cls, config_cls):
    """``norm="layer"`` gives each image the same output alone or in a batch (what online deployment at
    batch size 1 needs); batch-statistics BN does not. Both learners honour the spec's norm."""
    x = torch.rand(6, 1, 28, 28)
    outs = {}
    for norm in ("batch", "layer"):
        learner = learner_cls(
            config_cls(
                network={"kind": "conv", "channels": 4, "num_outputs": 3, "norm": norm}, task="classification"
            )
        )
        theta = learner.theta()
        fast = learner.initial_fast_weights(theta)
        batched = learner.predict(fast, theta, x)
        alone = torch.cat([learner.predict(fast, theta, x[i : i + 1]) for i in range(6)])
        outs[norm] = (batched - alone).abs().max().item()
    assert outs["layer"] < 1e-5 < outs["batch"]
    with pytest.raises(ValueError, match="norm"):
        ComplexSynapseConfig(network={"kind": "conv", "norm": "instance"}, task="classification")


# ---------------------------------------------------------------------------------------------------
# Avalanche strategies
# ---------------------------------------------------------------------------------------------------
def sine_learners(n_in):
    net = {"kind": "mlp", "sizes": [n_in, 16, 1]}
    return {
        "ComplexSynapse": ComplexSynapseLearner(
            ComplexSynapseConfig(network=net, init_lambda=1e-3, inner_lr=0.05)
        ),
        "GainModulation": GainModulationLearner(
            GainModulationConfig(network=net, reg_strength=1e-3, inner_lr=0.05)
        ),
    }


@pytest.mark.parametrize("name", ["ComplexSynapse", "GainModulation"])
def test_strategy_learns_continual_sine_with_evaluation_plugin(name, tmp_path):
    bm = IncrementalSine(num_functions=3, batches_per_function=30)
    learner = sine_learners(bm.input_size)[name]
    path = tmp_path / "l.pt"
    save_bilevel_learner(learner, path)
    cls = {"ComplexSynapse": ComplexSynapse, "GainModulation": GainModulation}[name]
    ev = EvaluationPlugin(*mse_metrics(experience=True, stream=True), loss_metrics(stream=True), loggers=[])
    s = cls(
        learner=str(path),
        train_mb_size=8,
        eval_mb_size=64,
        train_epochs=2,
        evaluator=ev,
        plugins=[ReplayPlugin(mem_size=16)],
    )
    meta_before = {k: v.clone() for k, v in s.model.learner.state_dict().items()}
    key = "MSE_Exp/eval_phase/test_stream/Exp{:03d}"
    gains = []
    for i, exp in enumerate(bm.train_stream):
        before = s.eval(bm.test_stream[i : i + 1])[key.format(i)]
        s.train(exp)
        gains.append(s.eval(bm.test_stream[i : i + 1])[key.format(i)] / before)
    res = s.eval(bm.test_stream)
    assert "MSE_Stream/eval_phase/test_stream" in res
    assert max(gains) < 0.8, gains  # every function is learned online: its MSE falls by 20% or more
    assert all(
        torch.equal(meta_before[k], v) for k, v in s.model.learner.state_dict().items()
    )  # theta frozen


class _AutogradOnly:
    """A bilevel learner seen without its regulariser's pulls: the online estimator then differentiates
    ``inner_loss`` by autograd at every step (the general path)."""

    def __init__(self, learner):
        self._learner = learner

    def __getattr__(self, name):
        if name in ("regulariser_pulls", "support_loss"):
            raise AttributeError(name)
        return getattr(self._learner, name)


@pytest.mark.parametrize("name", ["ComplexSynapse", "GainModulation"])
def test_regulariser_gradient_in_closed_form_matches_autograd(name):
    """The regulariser is the paper's (complex synapse: sum lambda (phi - omega)^2; gain modulation:
    reg ||phi - phi_init||^2), its closed-form gradient equals autograd's, and the online meta-gradient
    through the closed-form steps equals the one through autograd of L_in at every step (float64)."""
    from avalanche_plasticity.contrastive import Task
    from avalanche_plasticity.contrastive.estimators import online_meta_gradient

    spec = {"kind": "mlp", "sizes": [4, 6, 3], "activation": "tanh"}
    if name == "ComplexSynapse":
        learner = ComplexSynapseLearner(
            ComplexSynapseConfig(network=spec, task="classification", init_lambda=0.7, inner_lr=0.1)
        )
        with torch.no_grad():  # distinct strengths per synapse, so a mix-up of lambda shows
            for v in learner.log_lambda.values():
                v.add_(0.5 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1)))
    else:
        learner = GainModulationLearner(
            GainModulationConfig(network=spec, task="classification", reg_strength=0.3, inner_lr=0.1)
        )
    learner = learner.double()
    theta = dict(learner.meta_parameters())
    g = torch.Generator().manual_seed(0)
    fast = {
        k: (w.detach() + 0.3 * torch.randn(w.shape, generator=g, dtype=w.dtype)).requires_grad_()
        for k, w in learner.initial_fast_weights(theta).items()
    }
    init = learner.initial_fast_weights(theta)
    if name == "ComplexSynapse":
        paper = sum(
            (learner.log_lambda[k.replace(".", "__")].exp() * (fast[k] - init[k]) ** 2).sum() for k in fast
        )
    else:
        paper = 0.3 * sum(((fast[k] - init[k]) ** 2).sum() for k in fast)
    torch.testing.assert_close(learner.regulariser(fast, theta), paper)
    x = torch.randn(12, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (12,), generator=g)
    pulls = learner.regulariser_pulls(theta)
    auto = torch.autograd.grad(learner.regulariser(fast, theta), list(fast.values()))
    for k, a in zip(fast, auto, strict=True):
        c, anchor = pulls[k]
        torch.testing.assert_close(c * (fast[k] - anchor), a, msg=k)  # dR/dphi = c (phi - anchor)
    tasks = [Task(x, y, x.flip(0), y.flip(0)), Task(x.flip(0), y.flip(0), x, y)]
    fast_path = online_meta_gradient(learner, tasks, lr=0.1)
    general = online_meta_gradient(_AutogradOnly(learner), tasks, lr=0.1)
    assert fast_path.outer_loss == pytest.approx(general.outer_loss, rel=1e-12)
    assert set(fast_path.grads) == set(general.grads)
    for k, v in general.grads.items():
        assert v.abs().max() > 0, k  # the meta-gradient reaches every meta-parameter
        torch.testing.assert_close(fast_path.grads[k], v, rtol=1e-9, atol=1e-12, msg=k)


def test_complex_synapse_online_step_is_sgd_on_the_inner_loss():
    """The strategy's update uses the same L_in (with the 2 lambda pull) as meta-training."""
    bm = IncrementalSine(num_functions=1, batches_per_function=1, batch_size=8)
    learner = ComplexSynapseLearner(
        ComplexSynapseConfig(network={"kind": "mlp", "sizes": [2, 4, 1]}, init_lambda=3.0)
    )
    lr = 0.1
    s = ComplexSynapse(
        learner=learner, lr=lr, train_mb_size=8, train_epochs=2, evaluator=EvaluationPlugin(loggers=[])
    )
    x, y, *_ = next(
        iter(torch.utils.data.DataLoader(bm.train_stream[0].dataset, batch_size=8, shuffle=False))
    )
    from avalanche_plasticity.contrastive import Task

    theta = learner.theta()
    fast = learner.initial_fast_weights(theta)
    for _ in range(2):
        f = {k: v.detach().requires_grad_() for k, v in fast.items()}
        g = torch.autograd.grad(learner.inner_loss(f, theta, Task(x, y, x, y)), list(f.values()))
        fast = {k: v.detach() - lr * gi for (k, v), gi in zip(f.items(), g, strict=True)}
    s.train(bm.train_stream[0], shuffle=False)
    for k, v in s.model.fast_weights().items():
        assert torch.allclose(v, fast[k], atol=1e-6), k


def test_strategy_on_continual_omniglot_and_bad_input(omniglot_root):
    bm = ContinualOmniglot(
        num_classes=3, classes_per_experience=1, train_per_class=5, test_per_class=2, root=omniglot_root
    )
    learner = GainModulationLearner(
        GainModulationConfig(
            network={"kind": "conv", "channels": 4, "num_outputs": 3}, task="classification", inner_lr=0.1
        )
    )
    ev = EvaluationPlugin(accuracy_metrics(stream=True), loggers=[])
    s = GainModulation(learner=learner, train_mb_size=1, eval_mb_size=4, evaluator=ev)
    for exp in bm.train_stream:
        s.train(exp)
    acc = s.eval(bm.test_stream)["Top1_Acc_Stream/eval_phase/test_stream"]
    assert 0.0 <= acc <= 1.0
    with pytest.raises(TypeError, match="GainModulationLearner"):
        GainModulation(learner=sine_learners(2)["ComplexSynapse"])
    with pytest.raises(ValueError, match="lr"):
        ComplexSynapse(learner=sine_learners(2)["ComplexSynapse"], lr=0)


def test_fixed_strengths_are_left_out_of_saved_files_and_rebuilt_on_load(tmp_path):
    spec = {"kind": "mlp", "sizes": [3, 8, 2]}
    fixed = ComplexSynapseLearner(
        ComplexSynapseConfig(network=spec, init_lambda=50.0, head_lambda=1e-4, learn_lambda=False)
    )
    assert not any(k.startswith("log_lambda.") for k in fixed.state_dict())  # the config's, not learned
    learned = ComplexSynapseLearner(ComplexSynapseConfig(network=spec, learn_lambda=True))
    assert any(k.startswith("log_lambda.") for k in learned.state_dict())
    save_bilevel_learner(fixed, tmp_path / "cs.pt")
    back = load_bilevel_learner(tmp_path / "cs.pt")
    assert back.strongest_pull() == pytest.approx(50.0)
    for k, v in fixed.log_lambda.items():
        torch.testing.assert_close(back.log_lambda[k], v)
    with_strengths = {**fixed.state_dict(), **{f"log_lambda.{k}": v for k, v in fixed.log_lambda.items()}}
    other = ComplexSynapseLearner(
        ComplexSynapseConfig(network=spec, init_lambda=50.0, head_lambda=1e-4, learn_lambda=False, seed=1)
    )
    other.load_state_dict(with_strengths)  # a file written before they were left out still loads
    for k, v in fixed.omega.items():
        torch.testing.assert_close(other.omega[k], v)


def test_frozen_fast_weight_gets_no_pull():
    """A fast weight the user froze stays where it is: the closed-form pull goes to trainable ones only."""
    bm = IncrementalSine(num_functions=1, batches_per_function=2, batch_size=4)
    learner = ComplexSynapseLearner(
        ComplexSynapseConfig(network={"kind": "mlp", "sizes": [2, 4, 1]}, init_lambda=3.0)
    )
    s = ComplexSynapse(learner=learner, lr=0.05, train_mb_size=4, evaluator=EvaluationPlugin(loggers=[]))
    frozen, free = s.model.fast["0__weight"], s.model.fast["2__weight"]
    with torch.no_grad():  # move both off their anchors, so a pull would move them back
        frozen.add_(0.5)
        free.add_(0.5)
    frozen.requires_grad_(False)
    before_frozen, before_free = frozen.detach().clone(), free.detach().clone()
    s.train(bm.train_stream[0], shuffle=False)
    assert torch.equal(frozen, before_frozen)
    assert not torch.allclose(free, before_free)
