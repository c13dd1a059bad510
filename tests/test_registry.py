"""The registries of learners, strategies and scenarios: a learner and a scenario added from this file alone
run in ``compare``; the CLI and the runner name no learner or scenario; bad entries are clear errors."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from avalanche_plasticity import registry
from avalanche_plasticity.cli import main
from avalanche_plasticity.flp import FLPConfig, FLPLearner
from avalanche_plasticity.meta_learning import MetaTrainConfig, load_learner, meta_train
from avalanche_plasticity.presets import Preset
from avalanche_plasticity.tasks import SineTaskSource

PACKAGE = Path(__file__).resolve().parents[1] / "avalanche_plasticity"
QUIET = ["--wandb-mode", "disabled", "--quiet", "--threads", "1"]


def _short_sine_scenario() -> registry.ScenarioSpec:
    """Three sine functions of 4 minibatches: a regression scenario declared here only."""

    def stream_settings(stream, learner_config, source):
        return {
            "num_functions": learner_config.layer_sizes[0] - 1,
            "batches_per_function": 4,
            "batch_size": 4,
        }

    def make_stream(settings, seed, root):
        from avalanche_plasticity.scenarios import IncrementalSine

        return IncrementalSine(**settings, seed=seed, test_points_per_function=16)

    return registry.ScenarioSpec(
        name="short_sine",
        task="regression",
        metric="mse",
        metric_key="MSE_Stream",
        title="MSE on the short sine stream",
        unit="functions",
        lower_is_better=True,
        scales=("cpu",),
        default_scale="cpu",
        meta_source=lambda: SineTaskSource,
        stream_settings=stream_settings,
        make_stream=make_stream,
        default_lr={"Naive": 0.02},
        ewc_lambda=1.0,
        train_mb_size=lambda stream, source: 4,
        data_backed=False,
    )


def _tiny_flp_learner() -> registry.LearnerSpec:
    """FLP's classes under a new name, with a preset on the short sine scenario only."""

    def preset(scenario: str, scale: str) -> Preset | None:
        if scenario != "short_sine":
            return None
        source = dict(functions_per_episode=3, batches_per_function=4, batch_size=4, query_per_function=8)
        config = FLPConfig(layer_sizes=(4, 16, 1), task="regression", linear_feedback=True)
        return Preset("TinyFLP", config, MetaTrainConfig(steps=2, meta_batch_size=2), source)

    def strategy(ctx: registry.StrategyContext):
        from avalanche_plasticity.strategies import FLP

        return FLP(learner=ctx.learner, **ctx.common)

    return registry.LearnerSpec(
        name="TinyFLP",
        config_class=FLPConfig,
        learner_class=FLPLearner,
        presets=preset,
        build=lambda p, seed: FLPLearner(p.learner_config, seed=seed),
        meta_train=meta_train,
        load=load_learner,
        make=strategy,
        has_lr=False,
    )


@pytest.fixture
def extra_entries():
    registry.register_scenario(_short_sine_scenario())
    registry.register_learner(_tiny_flp_learner())
    try:
        yield
    finally:
        registry.unregister("TinyFLP")
        registry.unregister("short_sine")


def test_a_learner_and_a_scenario_added_from_outside_run_in_compare(extra_entries, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["compare", "--scenario", "short_sine", "--strategies", "TinyFLP", "Naive", "EWC"]
    assert main([*argv, "--checkpoint-dir", str(tmp_path), "--out", str(out), *QUIET]) == 0
    text = capsys.readouterr().out
    assert "MSE on the short sine stream" in text and "| TinyFLP |" in text and "| Naive |" in text
    results = json.loads((out / "results.json").read_text())
    assert results["scenario"] == "short_sine" and set(results["results"]) == {"TinyFLP", "Naive", "EWC"}
    assert results["results"]["Naive"]["lr"] == 0.02  # the scenario's default rate
    assert all(len(r["curve"]) == 3 for r in results["runs"])  # three functions, evaluated after each
    assert (tmp_path / "short_sine_TinyFLP_cpu_seed0.pt").is_file()
    # --show-config and --set read the same registries
    assert main(["compare", "--scenario", "short_sine", "--show-config", "--set", "TinyFLP.steps=5"]) == 0
    shown = capsys.readouterr().out
    assert "TinyFLP.meta: MetaTrainConfig(steps=5" in shown
    # the default strategies of a scenario are the registered ones that run on its task
    from avalanche_plasticity.configs import default_strategies

    assert default_strategies("short_sine") == ("Naive", "EWC", "Replay", "TinyFLP")
    with pytest.raises(SystemExit):
        main(["compare", "--scenario", "short_sine", "--strategies", "FLP", *QUIET])  # no preset there
    assert "['FLP'] have no preset at scale 'cpu' on 'short_sine'" in capsys.readouterr().err


def test_bad_registry_entries_are_clear_errors(extra_entries):
    with pytest.raises(ValueError, match="a strategy named 'TinyFLP' is already registered"):
        registry.register_learner(_tiny_flp_learner())
    with pytest.raises(ValueError, match=r"strategy name must be a non-empty string without '\+'"):
        registry.register_learner(dataclasses.replace(_tiny_flp_learner(), name="Tiny+FLP"))
    with pytest.raises(ValueError, match="tasks must be a non-empty subset of"):
        registry.register_learner(dataclasses.replace(_tiny_flp_learner(), name="X", tasks=("vision",)))
    with pytest.raises(ValueError, match="task must be one of"):
        dataclasses.replace(_short_sine_scenario(), task="ranking")
    with pytest.raises(ValueError, match=r"default_scale 'paper' is not one of its scales \('cpu',\)"):
        dataclasses.replace(_short_sine_scenario(), default_scale="paper")
    with pytest.raises(ValueError, match="unknown scenario 'nope'; choose from sine, omniglot"):
        registry.scenario_spec("nope")
    with pytest.raises(ValueError, match="unknown learner 'Naive'"):
        registry.learner_spec("Naive")  # a strategy, but not a meta-learned learner


def _names_in_string_literals(path: Path, names: set[str]) -> list[tuple[int, str]]:
    """String constants (docstrings left out) of ``path`` that contain one of ``names`` as a word."""
    import re

    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, names))) + r")\b")
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and pattern.search(node.value)
    ]


def test_cli_and_runner_name_no_learner_or_scenario():
    """Everything they know about learners and scenarios comes from the registries."""
    names = set(registry.strategies()) | set(registry.scenarios())
    for module in ("cli.py", "experiments.py"):
        assert _names_in_string_literals(PACKAGE / module, names) == [], module


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--scenario", "omniglot", "--set", "FLP.source.num_units=10"],
            "FLP: its head has 1000 output units but its episodes' source.num_units is 10; they must agree",
        ),
        (["--set", "source.batch_size=-1"], "FLP.source.batch_size must be a count >= 1, got -1"),
        (["--set", "OML.source.functions_per_episode=0"], "OML.source.functions_per_episode must be a count"),
        (["--set", "source.pool_seed=-2"], "source.pool_seed must be a seed >= 0, got -2"),
    ],
)
def test_settings_that_must_agree_are_errors_in_show_config(argv, message, capsys):
    """``--show-config`` rejects what the run would (before any work)."""
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--show-config", *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert (
        main(
            [
                "compare",
                "--show-config",
                "--set",
                "FLP.learner.layer_sizes=128,128,10",
                "--scenario",
                "omniglot",
                "--set",
                "FLP.source.num_units=10",
            ]
        )
        == 0
    )  # both set: they agree


def test_meta_gradient_method_is_checked_per_learner(capsys):
    """Only FLP's meta-trainer has the memory-lean meta-gradient: unprefixed, the setting reaches OML too and
    is refused when resolved; FLP's paper preset uses it."""
    with pytest.raises(SystemExit):
        main(["compare", "--show-config", "--set", "meta.meta_gradient=memory_lean"])
    assert (
        "OML: meta_gradient 'memory_lean' is not supported; it supports ('stored',)"
        in capsys.readouterr().err
    )
    assert main(["compare", "--show-config", "--set", "FLP.meta.meta_gradient=memory_lean"]) == 0
    from avalanche_plasticity.configs import presets

    assert presets("sine", "paper")["FLP"].meta.meta_gradient == "memory_lean"


def test_rates_picked_on_validation_come_before_meta_trained_and_default_ones(tmp_path):
    """``ScenarioSpec.validated_lr`` (per kind of stream) wins over a learner's meta-trained rate and the
    scenario's default; a rate the user names in ``stream.lr`` wins over it."""
    from avalanche_plasticity.configs import StreamConfig
    from avalanche_plasticity.experiments import run_comparison

    picked = {"Naive": 0.05, "TinyFLP": 0.3}
    scenario = dataclasses.replace(
        _short_sine_scenario(), validated_lr=lambda stream: picked if stream.setting == "class" else {}
    )
    learner = dataclasses.replace(_tiny_flp_learner(), has_lr=True, deploy_lr=lambda learner: 0.5)
    registry.register_scenario(scenario)
    registry.register_learner(learner)
    try:

        def rates(**stream) -> dict[str, float]:
            result = run_comparison(
                "short_sine",
                strategies=("TinyFLP", "Naive"),
                stream=StreamConfig(**stream),
                progress=False,
                checkpoint_dir=tmp_path,
            )
            return {r.strategy: r.config["lr"] for r in result.runs}

        assert rates(setting="class") == picked
        assert rates(setting="domain") == {"TinyFLP": 0.5, "Naive": 0.02}  # meta-trained and default rates
        assert rates(setting="class", lr={"Naive": 0.07}) == {"TinyFLP": 0.3, "Naive": 0.07}
    finally:
        registry.unregister("TinyFLP")
        registry.unregister("short_sine")


def test_a_revised_strategy_runs_again_instead_of_reading_its_old_cached_runs(extra_entries, tmp_path):
    from avalanche_plasticity.experiments import run_comparison

    made = []

    def make(ctx):
        made.append(ctx.seed)
        return registry.strategy_spec("Naive").make(ctx)

    def compare():
        return run_comparison("short_sine", strategies=["Probe"], seeds=[0], run_cache=tmp_path)

    try:
        for revision, runs in ((0, 1), (0, 1), (1, 2), (1, 2)):
            registry.register_strategy(
                registry.StrategySpec("Probe", make=make, revision=revision), replace=True
            )
            compare()
            assert len(made) == runs  # the same revision reads its cached run; a new one runs again
    finally:
        registry.unregister("Probe")
