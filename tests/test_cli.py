"""The command line: compare (tables, files, plots, W&B runs), meta-train, evaluate, overrides, and clear
errors for bad arguments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from avalanche_plasticity.cli import main
from avalanche_plasticity.configs import (
    OverrideError,
    StreamConfig,
    configure,
    convert_value,
    default_strategies,
)
from avalanche_plasticity.plasticity_rules import load_rule, rule_learner
from avalanche_plasticity.reporting import plasticity_summary
from avalanche_plasticity.wandb_logger import read_run_records, record_items

QUIET = ["--wandb-mode", "disabled", "--quiet", "--threads", "1"]
TINY_FLP = [
    "--set", "functions_per_episode=3", "--set", "batches_per_function=5", "--set", "batch_size=4",
    "--set", "query_per_function=8", "--set", "FLP.layer_sizes=4,16,16,1", "--set", "meta_batch_size=4",
    "--set", "steps=3",
]  # fmt: skip


def test_compare_runs_and_prints_table(tmp_path, capsys):
    """FLP and OML meta-trained side by side (2 worker processes), then 4 strategies on one stream."""
    out = tmp_path / "out"
    args = ["compare", "--scale", "quick", "--meta-steps", "2", "--strategies", "FLP", "OML", "Naive", "EWC"]
    args += ["--meta-jobs", "2"]
    rc = main([*args, "--checkpoint-dir", str(tmp_path), "--out", str(out), *QUIET])
    text = capsys.readouterr().out
    assert rc == 0
    assert all(f"| {name} |" in text for name in ("FLP", "OML", "Naive", "EWC"))
    assert "MSE on all functions seen" in text
    assert "nan" not in text  # EWC uses the sine lambda that does not diverge
    for name in ("FLP", "OML"):  # meta-training checkpoints written
        assert (tmp_path / f"sine_{name}_quick_steps2_seed0.pt").is_file()
    assert (out / "table.md").read_text().startswith("MSE on all functions seen")
    csv_lines = (out / "table.csv").read_text().splitlines()
    assert csv_lines[0].startswith("strategy,functions_seen,mse_mean,mse_std")
    assert len(csv_lines) == 1 + 4 * 10  # 4 strategies x 10 evaluation points
    results = json.loads((out / "results.json").read_text())
    assert set(results["results"]) == {"FLP", "OML", "Naive", "EWC"}
    flp = results["results"]["FLP"]
    assert flp["final_mse"] > 0 and flp["curve"]["10"] == flp["final_mse"]
    matrix = flp["forgetting_matrix"]  # after k functions: MSE on each function seen
    assert len(matrix) == 10 and len(matrix[0]) == 10
    assert matrix[-1][0] == matrix[-1][0] and matrix[0][1] != matrix[0][1]  # seen: a number; unseen: NaN
    pytest.importorskip("matplotlib")
    for png in ("curve.png", "forgetting_matrix.png", "plasticity_FLP.png"):
        assert (out / png).stat().st_size > 1000


def _isolate_wandb(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DISABLED", "WANDB_BASE_URL", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(root / "no-such-netrc"))
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(root / "wandb-home" / var.lower()))


def _records(run_file: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"history": [], "summary": {}}
    for rec in read_run_records(run_file):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["run"] = rec.run
            out["config"] = record_items(rec.run.config.update)
        elif kind == "history":
            out["history"].append(record_items(rec.history.item))
        elif kind == "summary":
            out["summary"].update(record_items(rec.summary.update))
    return out


def test_compare_logs_every_run_to_wandb(tmp_path, monkeypatch, capsys):
    """One offline W&B run per strategy x seed with its config, tables and final metric, plus a summary run
    with the comparison table, all in one group."""
    _isolate_wandb(monkeypatch, tmp_path)
    out = tmp_path / "out"
    args = ["compare", "--strategies", "FLP", "Naive", "--meta-steps", "2", "--checkpoint-dir", str(tmp_path)]
    args += ["--scale", "quick", "--out", str(out), "--wandb-group", "cmp-test", "--quiet", "--threads", "1"]
    assert main(args) == 0  # no --wandb-mode: offline, as there are no credentials
    printed = capsys.readouterr().out
    assert "W&B: 3 offline runs in project 'avalanche-plasticity', group 'cmp-test'" in printed
    runs = {}
    for f in out.glob("wandb/offline-run-*/run-*.wandb"):
        rec = _records(f)
        runs[rec["run"].display_name] = rec
    assert set(runs) == {"FLP-seed0", "Naive-seed0", "cmp-test-summary"}
    assert {r["run"].run_group for r in runs.values()} == {"cmp-test"}
    flp = runs["FLP-seed0"]
    assert flp["config"]["strategy"] == "FLP" and flp["config"]["learner"]["kind"] == "FLPLearner"
    assert flp["summary"]["final_mse"] > 0 and "plasticity/layer1_mean" in flp["summary"]
    logged = {k for row in flp["history"] for k in row}
    assert {"forgetting_matrix", "mse_curve", "plasticity"} <= logged
    (matrix,) = [row["forgetting_matrix"] for row in flp["history"] if "forgetting_matrix" in row]
    assert matrix["_type"] == "table-file" and (matrix["nrows"], matrix["ncols"]) == (10, 11)
    assert any(k.startswith("MSE_Exp/eval_phase/test_stream") for k in logged)  # live Avalanche metrics
    summary_keys = {k for row in runs["cmp-test-summary"]["history"] for k in row}
    assert {"comparison", "curve", "forgetting_matrix"} <= summary_keys


def test_meta_train_then_evaluate(tmp_path, capsys):
    ckpt = tmp_path / "flp.pt"
    assert main(["meta-train", "--learner", "FLP", *TINY_FLP, "--checkpoint", str(ckpt), *QUIET]) == 0
    assert "FLP on sine: finished at step 3/3" in capsys.readouterr().out
    # A finished checkpoint is reported, not trained again; more steps extend it.
    assert main(["meta-train", "--learner", "FLP", *TINY_FLP, "--checkpoint", str(ckpt), *QUIET]) == 0
    assert "finished at step 3/3" in capsys.readouterr().out
    out = tmp_path / "eval"
    assert main(["evaluate", str(ckpt), "--seeds", "0", "1", "--out", str(out), *QUIET]) == 0
    text = capsys.readouterr().out
    assert "| FLP |" in text and "mean ± std over seeds [0, 1]" in text
    results = json.loads((out / "results.json").read_text())
    assert results["evaluation_points"] == [1, 2, 3]  # 3 functions, as in meta-training
    assert results["config"]["checkpoint"] == str(ckpt)
    assert set(results["results"]["FLP"]["final_mse_per_seed"]) == {"0", "1"}


def test_default_command_is_compare(tmp_path, capsys):
    assert main(["--strategies", "Naive", "--out", str(tmp_path), *QUIET]) == 0
    assert "| Naive |" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "--strategies", "SGD"], "unknown strategy 'SGD'; choose from FLP, OML"),
        (["compare", "--strategies", "Naive+zz"], "unknown alignment rule 'zz'; rules: backprop, fa"),
        (["compare", "--strategies", "FLP+sa"], "<base>+<rule> with base one of Naive, EWC, Replay"),
        (["compare", "--meta-steps", "0"], "--meta-steps must be a positive integer"),
        (["compare", "--seeds", "-1"], "a seed must be an integer >= 0"),
        (["compare", "--set", "foo=1"], "unknown setting 'foo'; valid keys are FLP.learner: "),
        (["compare", "--set", "steps=ten"], "--set steps=ten: expected an integer, got 'ten'"),
        (["compare", "--set", "task=vision"], "expected one of ['regression', 'classification']"),
        (["compare", "--set", "lr.Naive=0.1"], "'lr' is in several sections (meta, stream)"),
        (["compare", "--set", "stream.lr.SGD=0.1"], "lr: unknown strategy 'SGD'"),
        (["compare", "--set", "noequals"], "expected key=value, got 'noequals'"),
        (["compare", "--set", "seed=3"], "the seed is set with --seed"),
        (
            ["compare", "--num-classes", "20"],
            "--num-classes applies to the scenarios omniglot only, not sine",
        ),
        (
            ["compare", "--scenario", "omniglot", "--scale", "quick"],
            "scale must be one of ('cpu', 'paper') on 'omniglot', got 'quick'",
        ),
        (["meta-train", "--learner", "FLP", "--set", "stream.mem_size=3"], "apply to 'compare' and"),
        (["meta-train", "--learner", "FLP", "--set", "inner_lr=0.1"], "unknown setting 'inner_lr'"),
        (["meta-train", "--learner", "SGD"], "invalid choice: 'SGD'"),
        (["evaluate", "/no/such/checkpoint.pt"], "no checkpoint at /no/such/checkpoint.pt"),
        (["evaluat"], "invalid choice: 'evaluat'"),
        (
            ["compare", "--strategies", "MetaPlasticityRule"],
            "['MetaPlasticityRule'] do not run on regression streams",
        ),
        (
            ["meta-train", "--learner", "MetaPlasticityRule"],
            "learner must be one of ['FLP', 'OML', 'ComplexSynapse', 'GainModulation'] on sine",
        ),
        (["compare", "--scale", "paper", "--strategies", "ComplexSynapse"], "no preset at scale 'paper'"),
        (
            ["compare", "--strategies", "FLP", "OML", "--set", "OML.source.batches_per_function=5"],
            "the strategies would run on different sine streams",
        ),
        (
            ["compare", "--scenario", "omniglot", "--set", "OML.source.image_size=32"],
            "OML: the conv trunk reads 28x28 images but its episodes have image_size 32",
        ),
        (
            ["compare", "--scenario", "omniglot", "--strategies", "Naive", "ComplexSynapse"]
            + ["--set", "ComplexSynapse.source.image_size=32"],
            "the strategies would run on different omniglot streams",
        ),
        (
            ["compare", "--scenario", "omniglot", "--set", "MetaPlasticityRule.source.image_size=32"],
            "input_shape (1, 28, 28) must be (1, image_size, image_size) = (1, 32, 32)",
        ),
        (["compare", "--set", "stream.lr.MetaPlasticityRule=1"], "'MetaPlasticityRule' has no SGD learning"),
    ],
)
def test_bad_arguments_are_reported(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--quiet"] if argv != ["evaluat"] else argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_convert_value_follows_the_field_type():
    assert convert_value("3", int) == 3
    assert convert_value("1e-5", float) == 1e-5
    assert convert_value("off", bool) is False
    assert convert_value("none", int | None) is None and convert_value("4", int | None) == 4
    assert convert_value("11,64,1", tuple[int, ...]) == (11, 64, 1)
    assert convert_value("(2, 2)", tuple[int, ...]) == (2, 2)
    assert convert_value('["oja", "pseudo_gradient"]', tuple[str, ...]) == ("oja", "pseudo_gradient")
    assert convert_value("['oja',hebb]", tuple[str, ...]) == ("oja", "hebb")
    assert convert_value("plasticity:1e-5,forward:1e-3", dict[str, float]) == {
        "plasticity": 1e-5,
        "forward": 1e-3,
    }
    assert convert_value("{'channels': 8}", dict | None) == {"channels": 8}
    with pytest.raises(ValueError, match="expected an integer"):
        convert_value("1.5", int)


def test_overrides_reach_the_right_dataclass():
    learners, stream = configure(
        "sine",
        "quick",
        {"FLP.lr.plasticity": "1e-4", "steps": "7", "OML.inner_lr": "0.01", "stream.ewc_lambda": "2"},
        stream=StreamConfig(),
    )
    assert learners["FLP"].meta.lr == {"plasticity": 1e-4} and learners["FLP"].meta.steps == 7
    assert learners["OML"].meta.steps == 7 and learners["OML"].learner_config.inner_lr == 0.01
    assert stream.ewc_lambda == 2.0
    with pytest.raises(OverrideError, match="input size .* must be functions_per_episode \\+ 1"):
        configure("sine", "quick", {"functions_per_episode": "4"})


def test_rule_overrides_and_default_strategies():
    learners, _ = configure("omniglot", "cpu", {"MetaPlasticityRule.l1": "0", "steps": "5"})
    assert learners["MetaPlasticityRule"].learner_config.l1 == 0.0
    assert learners["FLP"].meta.steps == learners["MetaPlasticityRule"].meta.steps == 5
    assert "MetaPlasticityRule" not in configure("sine", "quick")[0]
    assert default_strategies("sine") == ("FLP", "OML", "Naive", "EWC", "Replay")
    assert {"MetaPlasticityRule", "FeedbackAlignment"} <= set(default_strategies("omniglot"))
    rule = rule_learner(("pseudo_gradient", "oja"), layer_sizes=(4, 3, 2), coefficients={"oja": 0.5})
    assert plasticity_summary(rule) == {"rule/pseudo_gradient": 0.0, "rule/oja": 0.5}  # its W&B summary


def test_compare_meta_trains_and_deploys_the_plasticity_rule_on_omniglot(omniglot_root, tmp_path, capsys):
    """The rule is meta-trained beside the stream (checkpointed) and deployed with the stream's classes;
    FeedbackAlignment runs on the rule's network; evaluate reads the rule's checkpoint back."""
    out = tmp_path / "out"
    rc = main(
        [
            "compare", "--scenario", "omniglot", "--strategies", "MetaPlasticityRule", "FeedbackAlignment",
            "--set", "MetaPlasticityRule.meta.steps=2", "--num-classes", "3",
            "--data-root", str(omniglot_root), "--checkpoint-dir", str(tmp_path), "--out", str(out), *QUIET,
        ]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0
    assert "| MetaPlasticityRule |" in text and "| FeedbackAlignment |" in text
    ckpt = tmp_path / "omniglot_MetaPlasticityRule_cpu_steps2_seed0.pt"
    rule = load_rule(ckpt).rule()
    assert rule["pseudo_gradient"] != 0.03 and rule["oja"] != 0.0  # meta-trained: every coefficient moved
    results = json.loads((out / "results.json").read_text())["results"]
    for name in ("MetaPlasticityRule", "FeedbackAlignment"):
        assert 0.0 <= results[name]["final_accuracy"] <= 1.0
    ev = ["evaluate", str(ckpt), "--data-root", str(omniglot_root), "--out", str(tmp_path / "ev")]
    rc = main([*ev, *QUIET])
    assert rc == 0 and "| MetaPlasticityRule |" in capsys.readouterr().out


def test_meta_train_logs_its_meta_loss_to_wandb(tmp_path, monkeypatch):
    _isolate_wandb(monkeypatch, tmp_path)
    ckpt = tmp_path / "ckpt" / "flp.pt"
    args = ["meta-train", "--learner", "FLP", *TINY_FLP, "--checkpoint", str(ckpt), "--quiet"]
    args += ["--threads", "1"]
    assert main([*args, "--wandb-mode", "offline", "--wandb-group", "mt"]) == 0
    (run_file,) = (tmp_path / "ckpt").glob("wandb/offline-run-*/run-*.wandb")
    rec = _records(run_file)
    assert rec["run"].run_group == "mt" and rec["config"]["learner"] == "FLP"
    assert [(r["meta_loss"] > 0, r["x_plot"]) for r in rec["history"] if "meta_loss" in r] == [
        (True, 1),
        (True, 2),
        (True, 3),
    ]
    assert rec["summary"]["step"] == 3 and "plasticity/layer1_mean" in rec["summary"]


def test_config_file_and_show_config(tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"steps": 40, "FLP.layer_sizes": [11, 32, 1], "truncate": None}))
    args = ["meta-train", "--learner", "FLP", "--config", str(cfg), "--set", "steps=5", "--show-config"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "layer_sizes=(11, 32, 1)" in text and "steps=5," in text  # --set wins over --config
    cfg.write_text("[1, 2]")
    with pytest.raises(SystemExit):
        main(["compare", "--config", str(cfg)])
    assert "expected a JSON object of settings" in capsys.readouterr().err


def test_table_names_diverged_runs():
    """A local rule whose weights diverged ends its curve in NaN: the table says so instead of 'nan', and
    a mean over seeds says how many of its runs it left out."""
    from avalanche_plasticity.experiments import Comparison, RunResult

    nan = float("nan")
    runs = [
        RunResult("MetaPlasticityRule", 0, {10: 0.5, 50: nan}, {}, 1.0),
        RunResult("MetaPlasticityRule", 1, {10: 0.3, 50: nan}, {}, 1.0),
        RunResult("FeedbackAlignment", 0, {10: 0.2, 50: 0.1}, {}, 1.0),
        RunResult("FeedbackAlignment", 1, {10: 0.4, 50: nan}, {}, 1.0),
    ]
    table = Comparison("omniglot", runs, {}).markdown()
    assert "| MetaPlasticityRule | 0.400 ± 0.100 | diverged |" in table
    assert "| FeedbackAlignment | 0.300 ± 0.100 | 0.100 ± 0.000 (1 diverged) |" in table


def test_alignment_rules_run_inside_the_sgd_strategies_of_compare(tmp_path):
    """``<base>+<rule>`` runs the SGD strategy with AlignmentPlugin(rule): with exact backprop as the rule
    it reproduces the plain strategy to float precision, with fixed random feedback it does not; the rule
    and the learning rate (the base's unless given) are in the run's config."""
    from avalanche_plasticity.experiments import make_strategy, run_comparison
    from avalanche_plasticity.registry import scenario_spec

    result = run_comparison(
        "sine",
        strategies=("Naive", "Naive+backprop", "Naive+fa", "EWC+sa"),
        stream=StreamConfig(lr={"EWC+sa": 0.02}),
        progress=False,
        checkpoint_dir=tmp_path,
    )
    runs = {r.strategy: r for r in result.runs}
    plain, tied, fa = (list(runs[n].curve.values()) for n in ("Naive", "Naive+backprop", "Naive+fa"))
    assert plain == pytest.approx(tied, rel=1e-5)
    assert max(abs(a - b) for a, b in zip(plain, fa, strict=True)) > 1e-3
    assert runs["Naive+fa"].config["alignment_rule"] == "fa" and "alignment_rule" not in runs["Naive"].config
    naive_lr = scenario_spec("sine").default_lr["Naive"]
    assert runs["Naive+fa"].config["lr"] == runs["Naive"].config["lr"] == naive_lr
    assert runs["EWC+sa"].config["lr"] == 0.02 and runs["EWC+sa"].config["ewc_lambda"] == 1.0

    from avalanche_plasticity.alignment import feedback_layers
    from avalanche_plasticity.configs import presets
    from avalanche_plasticity.strategies import AlignmentPlugin

    arch = presets("sine", "quick")["FLP"].learner_config
    strategy = make_strategy("Replay+wm", learner_config=arch, task="regression", seed=3)
    plugin = next(p for p in strategy.plugins if isinstance(p, AlignmentPlugin))
    assert plugin.rule.name == "wm" and plugin.seed == 3
    plugin.before_training(strategy)
    assert len(list(feedback_layers(strategy.model))) == 4
    with pytest.raises(ValueError, match="unknown alignment rule 'zz'"):
        run_comparison("sine", strategies=("Naive+zz",), progress=False, checkpoint_dir=tmp_path)


def test_complex_synapse_in_compare_meta_train_and_evaluate(tmp_path, capsys):
    """The contrastive rule's complex synapse is a compare strategy: meta-trained (resumably, by the
    contrastive estimator) beside the others, deployed on the same stream; its checkpoint evaluates to
    the same curve, and meta-train resumes it."""
    ckpts, out = tmp_path / "ckpt", tmp_path / "out"
    args = ["compare", "--scale", "quick", "--strategies", "ComplexSynapse", "Naive", "--meta-steps", "2"]
    assert main([*args, "--checkpoint-dir", str(ckpts), "--out", str(out), *QUIET]) == 0
    assert "| ComplexSynapse |" in capsys.readouterr().out
    (path,) = ckpts.glob("sine_ComplexSynapse_quick_steps2_seed0.pt")
    results = json.loads((out / "results.json").read_text())["results"]
    assert main(["evaluate", str(path), "--out", str(tmp_path / "ev"), *QUIET]) == 0
    evaluated = json.loads((tmp_path / "ev" / "results.json").read_text())["results"]
    assert evaluated["ComplexSynapse"]["curve"] == results["ComplexSynapse"]["curve"]
    assert results["ComplexSynapse"]["curve"] != results["Naive"]["curve"]
    meta = ["meta-train", "--learner", "ComplexSynapse", "--set", "steps=3", "--checkpoint-dir", str(ckpts)]
    assert main([*meta, "--stop-after", "1", *QUIET]) == 0
    assert "stopped at step 1/3" in capsys.readouterr().out
    assert main([*meta, *QUIET]) == 0
    assert "finished at step 3/3" in capsys.readouterr().out


def test_complex_synapse_network_follows_its_episodes():
    presets_, _ = configure(
        "sine",
        "quick",
        {"functions_per_episode": "3", "OML.rln_sizes": "4,64,64", "FLP.layer_sizes": "4,64,64,64,1"},
    )
    assert presets_["ComplexSynapse"].learner_config.network["sizes"][0] == 4
    omni, _ = configure("omniglot", "cpu", {"num_units": "50"}, learners=["ComplexSynapse"])
    assert omni["ComplexSynapse"].learner_config.network["num_outputs"] == 50
    # a dict entry goes to the learners whose field is a dict (the complex synapse's meta lr is a float)
    flp, _ = configure("sine", "quick", {"meta.lr.plasticity": "1e-4"})
    assert flp["FLP"].meta.lr["plasticity"] == 1e-4 and flp["ComplexSynapse"].meta.lr == 3e-3


def test_every_strategy_of_a_sine_comparison_runs_on_one_stream():
    """At the cpu scale FLP meta-trains on a curriculum ending at 40 minibatches per function, OML on 40:
    the comparison stream is the protocol's 40 for both (and for the baselines, which follow FLP)."""
    from avalanche_plasticity.experiments import _stream_settings

    for scale, length in (("quick", 10), ("cpu", 40), ("paper", 40)):
        presets_, stream = configure("sine", scale, stream=StreamConfig())
        shapes = {_stream_settings("sine", stream, p.learner_config, p.source)["batches_per_function"]
                  for p in presets_.values()}  # fmt: skip
        assert shapes == {length}, scale
