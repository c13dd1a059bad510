"""AlignmentPlugin inside real Avalanche pipelines (EWC, Replay) on SplitMNIST, with the alignment metrics."""

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import EWC, Naive
from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin

from avalanche_plasticity.alignment import feedback_layers
from avalanche_plasticity.alignment.models import conv_net
from avalanche_plasticity.scenarios import SplitMNIST
from avalanche_plasticity.strategies import AlignmentPlugin, alignment_metrics


def _run(strategy_cls, rule, root, **kwargs):
    torch.manual_seed(0)
    bench = SplitMNIST(5, seed=0, root=root, train_subset=1500)
    model = conv_net(2, width=8)
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True), *alignment_metrics())
    plugin = AlignmentPlugin(rule)
    strategy = strategy_cls(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=32,
        train_epochs=1,
        eval_mb_size=512,
        evaluator=evaluator,
        plugins=[plugin, *kwargs.pop("plugins", [])],
        **kwargs,
    )
    for exp in bench.train_stream[:2]:
        strategy.train(exp)
    results = strategy.eval(bench.test_stream[:1])
    return strategy, evaluator, results


def test_plugin_with_ewc_trains_evaluates_and_reports_alignment(mnist_root):
    strategy, evaluator, results = _run(EWC, "sa", mnist_root, ewc_lambda=10.0)
    layers = [name for name, _ in feedback_layers(strategy.model)]
    assert layers == ["0", "3", "7"]
    metrics = evaluator.get_all_metrics()
    for layer in layers:
        angle = metrics[f"WeightAngle_Epoch/train_phase/train_stream/{layer}"][1]
        assert len(angle) == 2 and angle[-1] < min(angle[0], 60)  # SA pulls B towards Wᵀ (random: ~90°)
        assert f"GradientAngle_Epoch/train_phase/train_stream/{layer}" in metrics
        assert f"NormRatio_Epoch/train_phase/train_stream/{layer}" in metrics
    acc = results["Top1_Acc_Exp/eval_phase/test_stream/Exp000"]
    assert acc > 0.5  # two classes, well above chance even after the second experience


def test_plugin_with_replay_learns_through_fixed_random_feedback(mnist_root):
    strategy, evaluator, results = _run(Naive, "fa", mnist_root, plugins=[ReplayPlugin(mem_size=200)])
    metrics = evaluator.get_all_metrics()
    angle = metrics["WeightAngle_Epoch/train_phase/train_stream/3"][1][-1]
    assert angle > 60  # fixed random feedback stays far from Wᵀ
    assert results["Top1_Acc_Exp/eval_phase/test_stream/Exp000"] > 0.5


def test_plugin_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown rule 'bp'"):
        AlignmentPlugin("bp")
    with pytest.raises(ValueError, match="feedback_lr must be a finite number > 0"):
        AlignmentPlugin("sa", feedback_lr=0.0)
    with pytest.raises(ValueError, match="feedback_optimizer must be one of"):
        AlignmentPlugin("sa", feedback_optimizer="rmsprop")
    with pytest.raises(ValueError, match="update_noise must be a finite number >= 0"):
        AlignmentPlugin("sa", update_noise=-1.0)
