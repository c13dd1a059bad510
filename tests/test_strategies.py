"""FLP and OML as Avalanche strategies: train/eval with EvaluationPlugin and ReplayPlugin."""

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics, bwt_metrics, forgetting_metrics, loss_metrics
from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin

from avalanche_plasticity.flp import FLPConfig, FLPLearner
from avalanche_plasticity.meta_learning import save_learner
from avalanche_plasticity.metrics import mse_metrics
from avalanche_plasticity.oml import OMLConfig, OMLLearner
from avalanche_plasticity.scenarios import ContinualOmniglot, IncrementalSine
from avalanche_plasticity.strategies import FLP, OML

TRUNK = dict(channels=8, strides=(2, 2, 2, 2), image_size=28)


def sine_learners():
    return {
        "FLP": FLPLearner(FLPConfig(layer_sizes=(4, 16, 1), init_plasticity=1e-4), seed=0),
        "OML": OMLLearner(OMLConfig(rln_sizes=(4, 16), pln_sizes=(16, 1)), seed=0),
    }


@pytest.mark.parametrize("name", ["FLP", "OML"])
def test_sine_stream_with_replay_and_mse_metrics(name):
    bm = IncrementalSine(num_functions=3, batches_per_function=5)
    ev = EvaluationPlugin(*mse_metrics(experience=True, stream=True), loss_metrics(stream=True), loggers=[])
    cls = {"FLP": FLP, "OML": OML}[name]
    replay = ReplayPlugin(mem_size=16)
    s = cls(learner=sine_learners()[name], train_mb_size=8, evaluator=ev, plugins=[replay])
    for exp in bm.train_stream:
        s.train(exp)
    res = s.eval(bm.test_stream)
    assert "MSE_Stream/eval_phase/test_stream" in res
    assert "MSE_Exp/eval_phase/test_stream/Exp002" in res
    assert res["MSE_Stream/eval_phase/test_stream"] == pytest.approx(
        res["Loss_Stream/eval_phase/test_stream"], rel=1e-4
    )
    assert len(replay.storage_policy.buffer) == 16


def test_flp_strategy_changes_only_fast_weights():
    learner = sine_learners()["FLP"]
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    s = FLP(learner=learner, train_mb_size=8, evaluator=EvaluationPlugin(loggers=[]))
    fast0 = [w.clone() for w in s.model.fast_weights]
    s.train(IncrementalSine(num_functions=3, batches_per_function=3).train_stream[0])
    assert all(torch.equal(before[k], v) for k, v in learner.state_dict().items())  # meta-params fixed
    assert any(not torch.equal(a, b) for a, b in zip(fast0, s.model.fast_weights, strict=True))


def test_flp_online_learning_reduces_error_on_the_trained_function():
    """With a hand-set rule (pure output-layer Oja), training on a function lowers its MSE."""
    learner = FLPLearner(
        FLPConfig(layer_sizes=(2, 1), init_plasticity=0.0, init_feedback_strength=1.0, linear_feedback=True),
        seed=0,
    )
    with torch.no_grad():
        learner.feedback_weights[0].fill_(1.0)
        learner.plasticity_rates[0].fill_(0.05)
    x = torch.randn(256, 2)
    y = (x @ torch.tensor([[0.7], [-0.4]])).reshape(-1, 1)
    from avalanche_plasticity.strategies import PlasticModel

    m = PlasticModel(learner)
    mse0 = (m(x) - y).square().mean()
    for i in range(0, 256, 8):
        m.learn(x[i : i + 8], y[i : i + 8])
    assert (m(x) - y).square().mean() < 0.5 * mse0


@pytest.mark.parametrize("name", ["FLP", "OML"])
def test_omniglot_stream_with_accuracy_forgetting_bwt(name, omniglot_root, tmp_path):
    bm = ContinualOmniglot(num_classes=4, classes_per_experience=2, root=omniglot_root)
    learner = (
        FLPLearner(
            FLPConfig(layer_sizes=(32, 16, 10), task="classification", trunk=TRUNK, init_plasticity=0.2),
            seed=0,
        )
        if name == "FLP"
        else OMLLearner(
            OMLConfig(
                rln_sizes=(32, 16), pln_sizes=(16, 10), task="classification", trunk=TRUNK, inner_lr=0.05
            ),
            seed=0,
        )
    )
    path = tmp_path / "learner.pt"
    save_learner(learner, path)
    ev = EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        bwt_metrics(stream=True),
        loggers=[],
    )
    cls = {"FLP": FLP, "OML": OML}[name]
    s = cls(learner=str(path), train_mb_size=1, evaluator=ev, plugins=[ReplayPlugin(mem_size=10)])
    for exp in bm.train_stream:
        s.train(exp)
        res = s.eval(bm.test_stream)
    for key in (
        "Top1_Acc_Stream/eval_phase/test_stream",
        "StreamForgetting/eval_phase/test_stream",
        "StreamBWT/eval_phase/test_stream",
        "ExperienceForgetting/eval_phase/test_stream/Exp000",
    ):
        assert key in res, key


def test_oml_composes_with_ewc():
    from avalanche.training.plugins import EWCPlugin

    bm = IncrementalSine(num_functions=3, batches_per_function=4)
    ewc = EWCPlugin(ewc_lambda=10.0)
    s = OML(
        learner=sine_learners()["OML"],
        train_mb_size=8,
        plugins=[ewc],
        evaluator=EvaluationPlugin(*mse_metrics(stream=True), loggers=[]),
    )
    rln_before = {k: v.clone() for k, v in s.model.learner.state_dict().items()}
    for exp in bm.train_stream:
        s.train(exp)
    assert ewc.saved_params  # importances computed over the PLN
    assert all(torch.equal(rln_before[k], v) for k, v in s.model.learner.state_dict().items())


def test_an_empty_test_experience_is_nan_with_a_warning_never_a_perfect_score():
    import math

    from avalanche.benchmarks.scenarios import benchmark_from_datasets
    from avalanche.benchmarks.utils import AvalancheDataset

    def ds(n):
        return AvalancheDataset([torch.utils.data.TensorDataset(torch.randn(n, 4), torch.randn(n, 1))])

    bm = benchmark_from_datasets(train=[ds(8)], test=[ds(0)])
    ev = EvaluationPlugin(*mse_metrics(experience=True, stream=True), loggers=[])
    s = FLP(learner=sine_learners()["FLP"], train_mb_size=4, evaluator=ev)
    s.train(bm.train_stream[0])
    with pytest.warns(RuntimeWarning, match="empty") as record:
        res = s.eval(bm.test_stream)
    assert math.isnan(res["MSE_Exp/eval_phase/test_stream/Exp000"])
    assert math.isnan(res["MSE_Stream/eval_phase/test_stream"])
    assert any("MSE of no samples" in str(w.message) for w in record)
    assert any("test experience 0 is empty" in str(w.message) for w in record)


def test_flp_rate_scale_scales_a_copy_of_the_rates():
    learner = sine_learners()["FLP"]
    with torch.no_grad():
        learner.plasticity_rates[0][0, 0] = -0.5
    rates = [r.clone() for r in learner.plasticity_rates]
    s = FLP(
        learner=learner, rate_scale=0.1, clamp_negative_rates=True, evaluator=EvaluationPlugin(loggers=[])
    )
    deployed = s.model.learner.plasticity_rates
    assert all(torch.equal(a, b) for a, b in zip(rates, learner.plasticity_rates, strict=True))  # untouched
    assert torch.allclose(deployed[1], rates[1].clamp(min=0) * 0.1)
    assert deployed[0][0, 0] == 0 and (deployed[0] >= 0).all()
    assert FLP(learner=learner, evaluator=EvaluationPlugin(loggers=[])).model.learner is learner
    # a diverging stream is tamed by a smaller scale
    bm = IncrementalSine(num_functions=3, batches_per_function=5)
    fast = FLPLearner(FLPConfig(layer_sizes=(4, 16, 1), init_plasticity=5e-2), seed=0)
    with pytest.raises(FloatingPointError, match="non-finite"):
        FLP(learner=fast, train_mb_size=8, evaluator=EvaluationPlugin(loggers=[])).train(bm.train_stream)
    tamed = FLP(learner=fast, train_mb_size=8, rate_scale=1e-3, evaluator=EvaluationPlugin(loggers=[]))
    tamed.train(bm.train_stream)
    assert all(torch.isfinite(w).all() for w in tamed.model.fast_weights)
    for bad in (0, -1.0, float("inf"), float("nan"), "2", True):
        with pytest.raises(
            ValueError, match=rf"rate_scale must be a number > 0 \(not NaN or inf\), got {bad!r}"
        ):
            FLP(learner=learner, rate_scale=bad)
    with pytest.raises(ValueError, match="clamp_negative_rates must be True or False, got 1"):
        FLP(learner=learner, clamp_negative_rates=1)
