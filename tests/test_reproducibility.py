"""Same seed, same result: every strategy's curves depend on its own seed only, in a fresh process, whatever
torch's global RNG holds; metrics and runs never change each other's random numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from avalanche_plasticity.alignment import convert, weight_angles
from avalanche_plasticity.alignment.models import conv_net
from avalanche_plasticity.flp import FLPConfig, FLPLearner
from avalanche_plasticity.scenarios import IncrementalSine
from avalanche_plasticity.strategies import (
    FLP,
    AlignmentPlugin,
    GradientAngle,
    SeedPlugin,
    alignment_metrics,
)

RUNS = Path(__file__).with_name("reproducibility_runs.py")


def _run(seed: int, global_seed: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, str(RUNS), str(seed), str(global_seed)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _curves(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out)


def test_every_strategy_gives_identical_curves_in_fresh_processes_whatever_the_global_seed():
    first, second = _run(0, 1), _run(0, 2)
    a, b = _curves(first), _curves(second)
    from tests.reproducibility_runs import STRATEGIES

    assert sorted(a) == sorted(STRATEGIES)
    for name in STRATEGIES:
        assert a[name] == b[name], name
        assert all(v == v for point in a[name] for v in point.values()), name  # no NaN curve


def test_the_run_seed_decides_the_data_order():
    from tests.reproducibility_runs import curves

    for name in ("FLP", "OML", "MetaPlasticityRule", "Naive+SeedPlugin+Replay"):
        assert curves(name, 0, 5) == curves(name, 0, 6), name
        assert curves(name, 0, 5) != curves(name, 1, 5), name


def _sine_flp(**kwargs) -> FLP:
    learner = FLPLearner(FLPConfig(layer_sizes=(4, 16, 1), init_plasticity=1e-4), seed=0)
    return FLP(learner=learner, train_mb_size=4, evaluator=EvaluationPlugin(loggers=[]), **kwargs)


def test_a_run_neither_reads_nor_advances_the_global_rng():
    bm = IncrementalSine(num_functions=3, batches_per_function=3)
    s = _sine_flp(seed=3)
    torch.manual_seed(11)
    before = torch.get_rng_state()
    s.train(bm.train_stream[0])
    s.eval(bm.test_stream)
    assert torch.equal(torch.get_rng_state(), before)

    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))
    before = torch.get_rng_state()
    naive = Naive(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        criterion=nn.MSELoss(),
        train_mb_size=4,
        plugins=[SeedPlugin(3)],
        evaluator=EvaluationPlugin(loggers=[]),
    )
    naive.train(bm.train_stream[0])
    assert torch.equal(torch.get_rng_state(), before)


def test_seeds_must_be_ints():
    for bad in (1.5, "0", None, True):
        with pytest.raises(ValueError, match=rf"seed must be an int, got .*{bad!r}"):
            _sine_flp(seed=bad)
        with pytest.raises(ValueError, match="seed must be an int"):
            SeedPlugin(bad)


def test_fa_feedback_is_not_a_copy_of_the_forward_weights_under_the_same_seed():
    """torch.manual_seed(s) before building the model and seed=s for the feedback: the feedback draws come
    from streams of their own, so FA starts near 90 degrees from W on every layer (it came out at 0)."""
    for s in (0, 1, 7):
        torch.manual_seed(s)
        model = nn.Sequential(
            nn.Linear(64, 64, bias=False), nn.ReLU(), nn.Linear(64, 64, bias=False), nn.Linear(64, 10)
        )
        angles = weight_angles(convert(model, "fa", seed=s))
        assert len(angles) == 3
        assert all(80 < a < 100 for a in angles.values()), angles
        torch.manual_seed(s)
        angles = weight_angles(convert(conv_net(3), "fa", seed=s))
        assert all(80 < a < 100 for a in angles.values()), angles


def test_feedback_depends_on_the_seed_and_layer_only():
    def feedback(seed: int, global_seed: int) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
        torch.manual_seed(global_seed)
        convert(model, "fa", seed=seed)
        return [m.feedback_weight.detach().clone() for m in model]

    a, b, c = feedback(0, 1), feedback(0, 2), feedback(1, 1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    assert not torch.allclose(a[0], a[1])  # two layers of one shape: two streams


def _alignment_naive(metrics: list, seed: int = 0):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.3), nn.ReLU(), nn.Linear(16, 1))
    plugins = [SeedPlugin(seed)]
    return Naive(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        criterion=nn.MSELoss(),
        train_mb_size=4,
        plugins=plugins + [AlignmentPlugin("brsf", seed=seed)] if metrics is not None else plugins,
        evaluator=EvaluationPlugin(*(metrics or []), loggers=[]),
    )


def test_gradient_angle_metric_does_not_change_the_run():
    bm = IncrementalSine(num_functions=3, batches_per_function=3)
    runs = []
    for metrics in ([], alignment_metrics()):
        s = _alignment_naive(metrics)
        for exp in bm.train_stream:
            s.train(exp)
        runs.append([p.detach().clone() for p in s.model.parameters()])
    assert all(torch.equal(x, y) for x, y in zip(*runs, strict=True))


def test_gradient_angle_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    model = convert(nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2)), "brsf")
    from avalanche_plasticity.alignment import gradient_angles

    x, y = torch.randn(5, 4), torch.tensor([0, 1, 0, 1, 1])
    before = torch.get_rng_state()
    first = gradient_angles(model, nn.functional.cross_entropy, x, y)
    assert torch.equal(torch.get_rng_state(), before)
    assert gradient_angles(model, nn.functional.cross_entropy, x, y) == first
    assert set(first) == {"0", "2"}
    GradientAngle()  # has a generator of its own
    assert isinstance(GradientAngle(seed=3).generator, torch.Generator)


def test_alignment_metrics_without_alignment_plugin_report_nothing_with_one_warning():
    bm = IncrementalSine(num_functions=3, batches_per_function=3)
    s = _alignment_naive(alignment_metrics(), seed=0)
    s.plugins = [p for p in s.plugins if not isinstance(p, AlignmentPlugin)]
    with pytest.warns(RuntimeWarning, match="no layer with feedback weights") as record:
        for exp in bm.train_stream:
            s.train(exp)
    assert len([w for w in record if "feedback weights" in str(w.message)]) == 3  # once per metric
    assert not any("Angle" in k or "NormRatio" in k for k in s.evaluator.get_all_metrics())
