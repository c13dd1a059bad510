"""SI that works on CPU: Avalanche 0.6's plugin aliases the live weights there (SI trains as Naive); ours
integrates the path and penalises the move away from the previous task's weights."""

import pytest
import torch
from avalanche.benchmarks.scenarios import benchmark_from_datasets
from avalanche.training import Naive
from avalanche.training.plugins import SynapticIntelligencePlugin as AvalancheSI

from avalanche_plasticity.scenarios.datasets import tensor_dataset
from avalanche_plasticity.strategies import SynapticIntelligencePlugin


def _benchmark():
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(24, 3, generator=g) + 2 * k for k in range(2)]
    ys = [torch.tensor([2 * k, 2 * k + 1] * 12) for k in range(2)]
    return benchmark_from_datasets(train=[tensor_dataset(x, y) for x, y in zip(xs, ys, strict=True)], test=[])


def _train(plugins, lr=0.1):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 4)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    strategy = Naive(
        model=model,
        optimizer=opt,
        criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=4,
        plugins=plugins,
        evaluator=None,
    )
    weights = []
    for exp in _benchmark().train_stream:
        strategy.train(exp)
        weights.append(model.weight.detach().clone())
    return weights


def test_avalanche_si_is_a_no_op_on_cpu_and_ours_is_not():
    # if this first assertion fails, Avalanche fixed its snapshots and our subclass can go
    avalanche = AvalancheSI(si_lambda=1e6)
    naive = _train([])
    assert torch.equal(_train([avalanche])[1], naive[1])
    assert all(float(v.data.abs().max()) == 0 for v in avalanche.ewc_data[1].values())

    ours = SynapticIntelligencePlugin(si_lambda=1e3)  # lambda x the 0.001 cap x lr < 1: stable SGD
    si = _train([ours])
    assert torch.equal(si[0], naive[0])  # no penalty while the first task is learned
    assert any(float(v.data.abs().max()) > 0 for v in ours.ewc_data[1].values())
    # the second task moves the weights less from where the first one left them (0.37 against 0.48: the
    # importance is capped at 0.001, so lambda 1e3 weighs each squared move at most 1)
    assert (si[1] - si[0]).norm() < 0.85 * (naive[1] - naive[0]).norm()


def test_importance_is_the_path_integral_over_the_squared_distance():
    # one experience by hand: omega = sum_t -g_t * (theta_{t+1} - theta_t), importance
    # min(omega / ((theta_end - theta_start)^2 + eps), 0.001), Avalanche's cap
    plugin = SynapticIntelligencePlugin(si_lambda=1.0)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    exp = _benchmark().train_stream[0]
    steps = []

    from avalanche.core import SupervisedPlugin

    class Recorder(SupervisedPlugin):
        def before_training_iteration(self, strategy, **kwargs):
            self.before = model.weight.detach().clone()

        def after_training_iteration(self, strategy, **kwargs):
            steps.append((model.weight.grad.detach().clone(), model.weight.detach() - self.before))

    start = model.weight.detach().clone()
    strategy = Naive(
        model=model,
        optimizer=opt,
        criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=4,
        plugins=[Recorder(), plugin],
        evaluator=None,
    )
    strategy.train(exp)
    omega = -sum(g * d for g, d in steps)
    expected = torch.clamp(omega / ((model.weight.detach() - start) ** 2 + plugin.eps), max=0.001)
    assert len(steps) == 6
    assert plugin.ewc_data[1]["weight"].data == pytest.approx(expected.flatten(), rel=1e-4, abs=1e-9)
    assert torch.equal(plugin.ewc_data[0]["weight"].data, model.weight.detach().flatten())
