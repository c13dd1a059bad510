"""``benchmarks/ewc_lambda.py --strategy SI``: SI's c picked on the validation streams as EWC's lambda is."""

import json
from pathlib import Path

import pytest


@pytest.fixture
def penalty_sweep(benchmark_script, monkeypatch):
    module = benchmark_script("ewc_lambda")
    # a short stream: 40 training images per experience (the sweep's own sizes are 1,000)
    monkeypatch.setattr(module, "TRAIN_PER_EXPERIENCE", {**module.TRAIN_PER_EXPERIENCE, "split_mnist": 40})
    return module


def test_si_penalty_is_swept_and_changes_the_runs(penalty_sweep, mnist_root, tmp_path):
    out = tmp_path / "si_lambda.json"
    argv = ["--strategy", "SI", "--scenarios", "split_mnist", "--grid", "1", "100000"]
    argv += ["--data-root", str(mnist_root), "--work", str(tmp_path / "work"), "--out", str(out)]
    assert penalty_sweep.main(argv) == 0
    payload = json.loads(out.read_text())
    table = payload["results"]["split_mnist"]
    assert payload["config"]["strategy"] == "SI" and set(table) == {"1", "100000"}
    best = max(table, key=lambda k: table[k]["mean"])
    assert payload["picked"]["split_mnist"] == float(best)
    assert table["1"] != table["100000"]  # the penalty acts (Avalanche's own SI plugin is a no-op on CPU)
    runs = list((tmp_path / "work" / "split_mnist_class").glob("SI_seed10000.json"))
    assert runs and json.loads(runs[0].read_text())["run"]["config"]["si_lambda"] == 100000.0


def test_si_runs_at_the_scenarios_picked_penalty_unless_the_stream_names_one(mnist_root):
    from avalanche_plasticity import registry
    from avalanche_plasticity.configs import StreamConfig
    from avalanche_plasticity.experiments import run_comparison

    picked = registry.scenario_spec("split_mnist").si_lambda
    for si_lambda, expected in ((None, picked), (3.0, 3.0)):
        stream = StreamConfig(train_per_experience=20, si_lambda=si_lambda)
        comparison = run_comparison("split_mnist", strategies=["SI"], stream=stream, root=mnist_root)
        assert comparison.by_strategy()["SI"][0].config["si_lambda"] == expected


def test_the_scenarios_penalties_are_the_ones_the_sweeps_picked():
    from avalanche_plasticity import registry

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    for penalty in ("ewc_lambda", "si_lambda"):
        picked = json.loads((results / f"{penalty}.json").read_text())["picked"]
        assert picked, penalty
        for scenario, value in picked.items():
            assert getattr(registry.scenario_spec(scenario), penalty) == value, (penalty, scenario)
