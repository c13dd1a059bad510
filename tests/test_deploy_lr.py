"""``benchmarks/deploy_lr.py``: a rate's validation accuracy over several validation streams, and the sweep
resuming from its per-rate cache."""

import json

import pytest


@pytest.fixture
def deploy_lr(benchmark_script, monkeypatch):
    module = benchmark_script("deploy_lr")
    # a short stream: 40 training images per experience (the sweep's own sizes are 1,000)
    monkeypatch.setattr(module, "TRAIN_PER_EXPERIENCE", {**module.TRAIN_PER_EXPERIENCE, "split_mnist": 40})
    return module


def test_rate_accuracy_is_the_mean_over_validation_streams_and_a_rerun_uses_the_cache(
    deploy_lr, mnist_root, tmp_path
):
    out, work = tmp_path / "dlr.json", tmp_path / "work"
    argv = ["--scenarios", "split_mnist", "--strategies", "Naive", "--grid", "0.001", "0.1"]
    argv += ["--validation-seeds", "10000", "10001", "--data-root", str(mnist_root)]
    argv += ["--work", str(work), "--out", str(out)]
    assert deploy_lr.main(argv) == 0
    row = json.loads(out.read_text())["results"]["split_mnist"]["Naive"]
    assert row["validation_seeds"] == [10000, 10001]
    assert set(row["runs"]) == set(row["accuracy"]) >= {"0.001", "0.1"}
    for lr, finals in row["runs"].items():
        assert len(finals) == 2
        assert row["accuracy"][lr] == pytest.approx(sum(finals) / 2)
    assert row["best"] == max(row["accuracy"].values())
    assert len({tuple(f) for f in row["runs"].values()}) == len(row["runs"])  # each rate ran its own streams
    assert {p.name for p in (work / "split_mnist").iterdir()} == {f"lr{lr}" for lr in row["accuracy"]}

    cached = {p: p.stat().st_mtime_ns for p in work.rglob("*") if p.is_file()}
    assert cached
    assert deploy_lr.main(argv) == 0  # every run comes from the cache: nothing re-written, the same figures
    assert {p: p.stat().st_mtime_ns for p in work.rglob("*") if p.is_file()} == cached
    assert json.loads(out.read_text())["results"]["split_mnist"]["Naive"] == row

    # each validation run is evaluated once, after its last experience; its final accuracy is that of the
    # same run evaluated after every experience
    from avalanche_plasticity.configs import StreamConfig
    from avalanche_plasticity.experiments import run_comparison

    stream = StreamConfig(setting="class", regime="online", train_per_experience=40, lr={"Naive": 0.1})
    full = run_comparison("split_mnist", strategies=["Naive"], seeds=[10001], stream=stream, root=mnist_root)
    (run,) = full.by_strategy()["Naive"]
    assert sorted(run.curve) == [1, 2, 3, 4, 5]
    swept = json.loads(next((work / "split_mnist" / "lr0.1").glob("Naive_seed10001.json")).read_text())["run"]
    assert [int(k) for k in swept["curve"]] == [5]
    assert run.final == row["runs"]["0.1"][1]


def test_validation_seeds_must_not_be_the_reported_ones(deploy_lr, capsys):
    with pytest.raises(SystemExit):
        deploy_lr.main(["--validation-seeds", "0", "10000"])
    assert "--validation-seeds: use seeds >= 10000" in capsys.readouterr().err


def test_the_sweep_looks_one_step_past_each_end_and_walks_on_while_the_end_is_best(
    deploy_lr, monkeypatch, tmp_path
):
    # a peak at 1e-4 just below a grid whose low end (3e-4) does not hold the best: the old rule (extend only
    # past an end holding the best) picked 0.003; and a rising high end walks on to the top of the ladder
    accuracy = {1e-5: 0.1, 3e-5: 0.38, 1e-4: 0.40, 3e-4: 0.36, 1e-3: 0.35, 3e-3: 0.37, 0.01: 0.2}
    accuracy.update({0.03: 0.25, 0.1: 0.3, 0.3: 0.3, 1.0: 0.1})
    measured: list[float] = []

    def fake_measure(args, scenario, strategy, lr, row, rejected, runs=None):
        measured.append(lr)
        row[f"{lr:g}"] = accuracy[lr]
        return accuracy[lr]

    monkeypatch.setattr(deploy_lr, "measure", fake_measure)
    out = tmp_path / "dlr.json"
    argv = ["--scenarios", "split_mnist", "--strategies", "Naive", "--grid", "3e-4", "1e-3", "3e-3", "0.01"]
    assert deploy_lr.main([*argv, "--out", str(out), "--work", str(tmp_path / "w")]) == 0
    row = json.loads(out.read_text())["results"]["split_mnist"]["Naive"]
    assert row["best_lr"] == 1e-4 and row["best"] == 0.40
    # below: 1e-4 (one step, the best so far), 3e-5 (not the best: stop); above: 0.03 (one step, not best)
    assert measured == [3e-4, 1e-3, 3e-3, 0.01, 1e-4, 3e-5, 0.03]
    assert list(deploy_lr.rates_past_the_end(1.0, +1, {"1": 0.5})) == []  # nothing past the ladder's top


def test_set_changes_the_learner_every_run_uses_and_is_recorded_in_the_row(deploy_lr, monkeypatch, tmp_path):
    # a learner meta-trained under other settings (e.g. more meta-updates) is swept as the shipped one is
    seen = []

    class Comparison:
        def by_strategy(self):
            return {"ComplexSynapse": [type("Run", (), {"final": 0.25})()]}

    def fake_run_comparison(scenario, **kwargs):
        seen.append(kwargs["overrides"])
        return Comparison()

    monkeypatch.setattr(deploy_lr, "run_comparison", fake_run_comparison)
    out = tmp_path / "dlr.json"
    argv = ["--scenarios", "split_mnist", "--strategies", "ComplexSynapse", "--grid", "0.001"]
    argv += ["--set", "ComplexSynapse.meta.steps=1600", "--out", str(out), "--work", str(tmp_path / "w")]
    assert deploy_lr.main(argv) == 0
    assert seen and all(s == {"ComplexSynapse.meta.steps": "1600"} for s in seen)
    row = json.loads(out.read_text())["results"]["split_mnist"]["ComplexSynapse"]
    assert row["settings"] == {"ComplexSynapse.meta.steps": "1600"}
