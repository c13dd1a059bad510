"""The MNIST-family scenarios of ``compare``: classes, sizes and label mappings read from the local files,
every random choice from the seed, and the whole pipeline (registry, stream settings, strategies,
Avalanche's EvaluationPlugin) on a short class-incremental stream."""

from __future__ import annotations

import ast
import json

import pytest
import torch

from avalanche_plasticity import registry
from avalanche_plasticity.cli import main
from avalanche_plasticity.configs import StreamConfig, configure, presets

QUIET = ["--wandb-mode", "disabled", "--quiet", "--threads", "1"]


def _labels(exp) -> list[int]:
    return sorted({int(y) for y in exp.dataset.targets})


def test_split_mnist_class_and_domain_settings(mnist_root):
    from avalanche_plasticity.scenarios.mnist import mnist_family_benchmark

    torch.manual_seed(123)
    state = torch.get_rng_state()
    ci = mnist_family_benchmark("mnist", "split", setting="class", seed=3, root=mnist_root)
    assert torch.equal(state, torch.get_rng_state())  # the global generator is left alone
    di = mnist_family_benchmark("mnist", "split", setting="domain", seed=3, root=mnist_root)
    assert len(ci.train_stream) == len(ci.test_stream) == 5
    pairs = [_labels(e) for e in ci.train_stream]
    assert sorted(c for p in pairs for c in p) == list(range(10)) and all(len(p) == 2 for p in pairs)
    assert [_labels(e) for e in ci.test_stream] == pairs
    assert sum(len(e.dataset) for e in ci.train_stream) == 60000
    assert sum(len(e.dataset) for e in ci.test_stream) == 10000
    assert all(_labels(e) == [0, 1] for e in di.train_stream)  # each pair relabelled 0/1 by rank
    first = ci.train_stream[0].dataset
    x0, y0 = first[0][0], int(first[0][1])
    assert x0.shape == (1, 28, 28) and 0.0 <= float(x0.min()) and float(x0.max()) <= 1.0
    assert y0 in pairs[0]
    again = mnist_family_benchmark("mnist", "split", setting="class", seed=3, root=mnist_root)
    assert [_labels(e) for e in again.train_stream] == pairs  # same seed, same class order
    other = mnist_family_benchmark("mnist", "split", setting="class", seed=4, root=mnist_root)
    assert [_labels(e) for e in other.train_stream] != pairs


def test_permuted_mnist_labels_and_permutations(mnist_root):
    from avalanche_plasticity.scenarios.mnist import mnist_family_benchmark

    ci = mnist_family_benchmark(
        "mnist",
        "permuted",
        setting="class",
        n_experiences=3,
        seed=0,
        root=mnist_root,
        train_per_experience=40,
    )
    di = mnist_family_benchmark(
        "mnist",
        "permuted",
        setting="domain",
        n_experiences=3,
        seed=0,
        root=mnist_root,
        train_per_experience=40,
    )
    assert [len(e.dataset) for e in ci.train_stream] == [40, 40, 40]
    assert [len(e.dataset) for e in ci.test_stream] == [10000] * 3
    assert [_labels(e) for e in ci.test_stream] == [list(range(10 * p, 10 * p + 10)) for p in range(3)]
    assert all(_labels(e) == list(range(10)) for e in di.test_stream)
    a, b = ci.test_stream[0].dataset[0][0], ci.test_stream[1].dataset[0][0]
    assert not torch.equal(a, b) and torch.equal(a.flatten().sort().values, b.flatten().sort().values)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dataset="emnist"), "dataset must be one of ('mnist', 'fashion_mnist'), got 'emnist'"),
        (dict(kind="rotated"), "kind must be one of ('split', 'permuted'), got 'rotated'"),
        (dict(setting="task"), "setting must be one of ('class', 'domain')"),
        (dict(n_experiences=3), "n_experiences must be 1, 2, 5 or 10 (it must divide the 10 classes), got 3"),
        (dict(train_per_experience=0), "train_per_experience must be a positive int or None, got 0"),
    ],
)
def test_bad_stream_arguments(kwargs, message):
    from avalanche_plasticity.scenarios.mnist import mnist_family_benchmark

    with pytest.raises(ValueError) as err:
        mnist_family_benchmark(**kwargs)
    assert message in str(err.value)


def test_registered_scenarios_and_their_heads():
    for name in ("split_mnist", "permuted_mnist", "split_fashion_mnist"):
        spec = registry.scenario_spec(name)
        assert spec.task == "classification" and spec.presets_from == "omniglot"
    split, permuted = registry.scenario_spec("split_mnist"), registry.scenario_spec("permuted_mnist")
    assert split.num_classes(StreamConfig()) == 10 and split.num_classes(StreamConfig(setting="domain")) == 2
    assert (
        permuted.num_classes(StreamConfig()) == 100
        and permuted.num_classes(StreamConfig(setting="domain")) == 10
    )
    assert split.train_mb_size(StreamConfig(), {}) == 1  # online: the meta-continual setting
    standard = StreamConfig(regime="standard", batch_size=16, epochs=3)
    assert split.train_mb_size(standard, {}) == 16 and split.train_epochs(standard) == 3
    with pytest.raises(ValueError, match="regime must be 'online' or 'standard', got 'batch'"):
        StreamConfig(regime="batch")
    # the learners are meta-trained on Omniglot's presets; an 84x84 learner does not fit 28x28 digits
    presets, _ = configure("split_mnist", "cpu")
    assert {"FLP", "OML"} <= set(presets)
    with pytest.raises(
        ValueError, match=r"reads images of shape \(1, 84, 84\) but this stream's are \(1, 28, 28\)"
    ):
        configure("split_mnist", "paper")


def test_compare_runs_learners_and_baselines_on_split_mnist(mnist_root, tmp_path, capsys):
    """Every learner through train/eval on a short class-incremental stream (accuracy, forgetting), the
    baselines learning the first pair; the learners are meta-trained on Omniglot (two steps here)."""
    pytest.importorskip("learn2learn")
    out = tmp_path / "out"
    argv = ["compare", "--scenario", "split_mnist", "--strategies", "FLP", "OML", "Naive", "Replay"]
    argv += ["--meta-steps", "2", "--set", "stream.train_per_experience=300", "--data-root", str(mnist_root)]
    assert main([*argv, "--checkpoint-dir", str(tmp_path), "--out", str(out), *QUIET]) == 0
    assert "Accuracy on all digit pairs seen" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    for name in ("FLP", "OML", "Naive", "Replay"):
        curve = results["results"][name]["curve"]
        assert list(curve) == ["1", "2", "3", "4", "5"] and all(0.0 <= v <= 1.0 for v in curve.values())
    assert results["results"]["Naive"]["curve"]["1"] > 0.9  # 300 images of one digit pair teach it
    assert (tmp_path / "omniglot_FLP_cpu_steps2_seed0.pt").is_file()  # meta-trained on Omniglot


def test_si_lwf_and_joint_baselines(mnist_root):
    """The opt-in baselines run through Avalanche on the MNIST streams (LwF reads the task labels) and the
    joint upper bound keeps the first pair that Naive forgets."""
    from avalanche_plasticity.configs import presets
    from avalanche_plasticity.experiments import make_strategy, run_stream
    from avalanche_plasticity.scenarios.mnist import mnist_family_benchmark

    bm = mnist_family_benchmark(
        "mnist", "split", n_experiences=5, seed=0, root=mnist_root, train_per_experience=200
    )
    bm.train_stream, bm.test_stream = bm.train_stream[:2], bm.test_stream[:2]
    arch = presets("split_mnist", "cpu")["FLP"].learner_config
    settings = dict(si_lambda=1.0, lwf_alpha=1.0, lwf_temperature=2.0)
    finals = {}
    for name in ("Naive", "SI", "LwF", "Joint"):
        strategy = make_strategy(name, learner_config=arch, task="classification", seed=0, settings=settings)
        finals[name] = run_stream(strategy, bm)[2]
    assert finals["Joint"] > finals["Naive"] + 0.2, finals
    assert all(0.0 <= v <= 1.0 for v in finals.values())


def _user_benchmark(mnist_root, size: int = 28):
    """A class-incremental benchmark built the way a user builds one (Avalanche's ``nc_benchmark``)."""
    from avalanche.benchmarks import nc_benchmark

    from avalanche_plasticity.data import load_mnist
    from avalanche_plasticity.scenarios.datasets import tensor_dataset

    x, y = load_mnist("train", root=mnist_root)
    xt, yt = load_mnist("test", root=mnist_root)
    keep, keep_t = y < 4, yt < 4
    x, y, xt, yt = x[keep][:400], y[keep][:400], xt[keep_t][:200], yt[keep_t][:200]
    if size != 28:
        x = torch.nn.functional.interpolate(x, size=size)
        xt = torch.nn.functional.interpolate(xt, size=size)
    return nc_benchmark(
        tensor_dataset(x, y), tensor_dataset(xt, yt), n_experiences=2, task_labels=False, seed=0
    )


def test_compare_runs_on_a_users_avalanche_benchmark(mnist_root):
    """``run_comparison(benchmark=...)``: the learners (meta-trained on Omniglot) and the baselines on a
    benchmark built with ``nc_benchmark``, heads sized to its 4 classes."""
    from avalanche_plasticity.configs import presets
    from avalanche_plasticity.experiments import build_learner, run_comparison

    bm = _user_benchmark(mnist_root)
    flp = build_learner(presets("split_mnist", "cpu")["FLP"], 0)
    result = run_comparison(
        strategies=["FLP", "Naive"], benchmark=bm, learners={"FLP": flp}, progress=False, seeds=(0, 1)
    )
    assert len(result.runs) == 4
    for run in result.runs:
        assert list(run.curve) == [1, 2] and 0.0 <= run.final <= 1.0
        assert run.config["stream"] == {"benchmark": "NCScenario", "classes": 4, "experiences": 2}
    naive = [r for r in result.runs if r.strategy == "Naive"]
    assert all(r.curve[1] > 0.6 for r in naive)  # the first pair of digits is learned


def test_a_users_benchmark_that_does_not_fit_is_an_error_naming_both_shapes(mnist_root, tmp_path):
    from avalanche_plasticity.experiments import run_comparison

    bm = _user_benchmark(mnist_root, size=32)
    with pytest.raises(
        ValueError, match=r"shape \(1, 32, 32\) but the learners read inputs of shape \(1, 28, 28\)"
    ):
        run_comparison(strategies=["FLP", "Naive"], benchmark=bm, checkpoint_dir=tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()  # before any meta-training


def test_online_ewc_is_a_stream_setting(mnist_root):
    """``stream.ewc_mode="online"`` deploys Avalanche's online EWC (one running Fisher); a bad mode is an
    error naming it."""
    from avalanche_plasticity.configs import presets
    from avalanche_plasticity.experiments import make_strategy

    arch = presets("split_mnist", "cpu")["FLP"].learner_config
    online = make_strategy("EWC", learner_config=arch, task="classification", settings={"ewc_mode": "online"})
    separate = make_strategy("EWC", learner_config=arch, task="classification")
    modes = [next(p for p in s.plugins if type(p).__name__ == "EWCPlugin").mode for s in (online, separate)]
    assert modes == ["online", "separate"]
    with pytest.raises(ValueError, match="ewc_mode must be 'separate' or 'online', got 'both'"):
        StreamConfig(ewc_mode="both")


def test_class_incremental_rates_are_the_ones_picked_on_validation():
    """The SGD rates a class-incremental MNIST-family stream deploys are the best validation rates recorded
    by ``benchmarks/deploy_lr.py`` for its regime; domain-incremental streams keep the meta-trained rates."""
    from pathlib import Path

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    for regime, file in (("online", "deploy_lr.json"), ("standard", "deploy_lr_standard.json")):
        picked = json.loads((results / file).read_text())["results"]
        for name in ("split_mnist", "permuted_mnist", "split_fashion_mnist"):
            rates = registry.scenario_spec(name).validated_lr(StreamConfig(setting="class", regime=regime))
            assert rates == {s: r["best_lr"] for s, r in picked.get(name, {}).items()}, (name, regime)
    for name in ("split_mnist", "permuted_mnist", "split_fashion_mnist"):
        for regime in ("online", "standard"):
            stream = StreamConfig(setting="domain", regime=regime)
            assert registry.scenario_spec(name).validated_lr(stream) == {}


def test_show_config_prints_the_rates_each_strategy_is_deployed_at(capsys):
    """``compare --show-config`` names the SGD rates the run would use: on a class-incremental online
    stream the validated ones, elsewhere the meta-trained ones, and a rate set in ``stream.lr`` first."""
    from avalanche_plasticity.catalog.mnist_family import CLASS_ONLINE_LR

    def rates(*args: str) -> dict[str, float]:
        assert main(["compare", "--scenario", "split_mnist", *args, "--show-config"]) == 0
        line = capsys.readouterr().out.strip().splitlines()[-1]
        assert line.startswith("SGD rates")
        return ast.literal_eval(line[line.index("{") :])

    validated = CLASS_ONLINE_LR["split_mnist"]
    class_online = rates()
    assert {n: class_online[n] for n in validated} == validated
    domain = rates("--set", "stream.setting=domain")
    meta_trained = presets("split_mnist", "cpu")["OML"].learner_config.inner_lr
    assert domain["OML"] == meta_trained != validated["OML"]
    assert rates("--set", "stream.lr.OML=0.2")["OML"] == 0.2


def test_replay_keeps_the_scenarios_buffer_unless_the_stream_names_one(mnist_root):
    """The MNIST family's Replay keeps 500 images (the standard benchmarks' Replay (500)), so ``compare``
    runs what ``standard_benchmarks.py`` records; sine and Omniglot keep their 200."""
    from avalanche_plasticity import registry
    from avalanche_plasticity.configs import StreamConfig
    from avalanche_plasticity.experiments import run_comparison

    assert registry.scenario_spec("split_mnist").mem_size == 500
    assert registry.scenario_spec("sine").mem_size == registry.scenario_spec("omniglot").mem_size == 200
    for mem_size, expected in ((None, 500), (7, 7)):
        stream = StreamConfig(train_per_experience=20, mem_size=mem_size)
        comparison = run_comparison("split_mnist", strategies=["Replay"], stream=stream, root=mnist_root)
        run = comparison.by_strategy()["Replay"][0]
        assert run.config["mem_size"] == expected


@pytest.mark.parametrize("mem_size", [0, -3, True, 2.5, "500"])
def test_a_bad_replay_buffer_is_an_error_naming_it(mem_size):
    from avalanche_plasticity.configs import StreamConfig

    with pytest.raises(ValueError, match="mem_size must be None \\(the scenario's\\) or a positive int"):
        StreamConfig(mem_size=mem_size)
