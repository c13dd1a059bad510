"""The meta-trained learners shipped with the package: loaded by name with their hash checked, their
recorded figures reproduced, and deployed by ``compare`` only for the preset they were meta-trained from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from avalanche_plasticity import pretrained, registry
from avalanche_plasticity.cli import main
from avalanche_plasticity.configs import configure, default_scale, default_strategies, presets
from avalanche_plasticity.experiments import build_learner
from avalanche_plasticity.meta_learning import save_learner

QUIET = ["--wandb-mode", "disabled", "--quiet", "--threads", "1"]
TINY = [
    "--set", "FLP.functions_per_episode=3", "--set", "FLP.batches_per_function=5",
    "--set", "FLP.batch_size=4", "--set", "FLP.query_per_function=8",
    "--set", "FLP.layer_sizes=4,16,16,1", "--set", "FLP.meta_batch_size=2", "--set", "FLP.steps=2",
]  # fmt: skip
SHIPPED = pretrained.available()


def test_the_default_compare_learners_are_shipped():
    scenario = registry.default_scenario()
    scale = default_scale(scenario)
    learners = [n for n in default_strategies(scenario, scale) if n in presets(scenario, scale)]
    assert learners == ["FLP", "OML"] and scale == "cpu"
    missing = [n for n in learners if pretrained.key(n, scenario, scale) not in SHIPPED]
    assert not missing, f"not shipped: {missing} (make them with scripts/make_pretrained.py)"


@pytest.mark.parametrize("key", SHIPPED)
def test_a_shipped_learner_loads_matches_its_preset_and_reproduces_its_figure(key, request):
    name, scenario, scale = key.split("/")
    root = request.getfixturevalue("omniglot_root") if registry.scenario_spec(scenario).data_backed else None
    entry = pretrained.manifest()[key]
    assert set(entry) >= {"file", "sha256", "config_digest", "command", "figure"}
    path = pretrained.FOLDER / entry["file"]
    assert path.stat().st_size <= 2 * 1024 * 1024
    assert pretrained.file_sha256(path) == entry["sha256"]
    preset = presets(scenario, scale)[name]
    assert pretrained.config_digest(preset) == entry["config_digest"], "the preset changed since it was made"
    learner = pretrained.load_pretrained(name, scenario, scale)
    assert type(learner).__name__ == registry.learner_spec(name).learner_class.__name__
    found = pretrained.shipped_learner(scenario, scale, preset)
    assert found is not None and found[1].startswith(f"shipped {name} ({scenario}/{scale}, sha256 ")
    assert pretrained.shipped_learner(scenario, scale, preset, meta_seed=1) is None
    changed, _ = configure(scenario, scale, {f"{name}.meta.steps": "7"})  # as --set would
    assert pretrained.shipped_learner(scenario, scale, changed[name]) is None
    check = entry["figure"]["check"]  # the recorded figure on a short stream, seed 0
    figure = pretrained.measure_figure(
        name, scenario, scale, learner, stream=check["stream_settings"], root=root
    )
    assert figure["stream"] == check["stream"]
    assert figure["value"] == pytest.approx(check["value"], rel=1e-4, abs=1e-6)


def _ship_tiny(folder: Path, preset, scenario="sine", scale="quick") -> dict:
    """A shipped folder holding an untrained learner of ``preset`` (a stand-in for a meta-trained one)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_learner(build_learner(preset, 0), folder / "tiny.pt")
    entry = {
        "file": "tiny.pt",
        "sha256": pretrained.file_sha256(folder / "tiny.pt"),
        "config_digest": pretrained.config_digest(preset),
        "command": "test",
        "figure": {},
    }
    manifest = {pretrained.key(preset.learner, scenario, scale): entry}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return entry


def test_a_corrupt_or_replaced_file_is_a_clear_error(tmp_path):
    preset = presets("sine", "quick")["OML"]
    entry = _ship_tiny(tmp_path, preset)
    assert type(pretrained.load_pretrained("OML", "sine", "quick", folder=tmp_path)).__name__ == "OMLLearner"
    data = bytearray((tmp_path / "tiny.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "tiny.pt").write_bytes(bytes(data))
    actual = pretrained.file_sha256(tmp_path / "tiny.pt")
    message = f"tiny.pt does not match its manifest: expected sha256 {entry['sha256']}, got {actual}"
    with pytest.raises(pretrained.PretrainedError, match=message):
        pretrained.load_pretrained("OML", "sine", "quick", folder=tmp_path)
    with pytest.raises(pretrained.PretrainedError, match=message):  # compare would deploy it: it stops
        pretrained.shipped_learner("sine", "quick", preset, folder=tmp_path)
    (tmp_path / "tiny.pt").write_bytes(b"not a checkpoint")  # a file whose recorded hash matches, unreadable
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["OML/sine/quick"]["sha256"] = pretrained.file_sha256(tmp_path / "tiny.pt")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(pretrained.PretrainedError, match="OML/sine/quick: checkpoint .* is corrupt"):
        pretrained.load_pretrained("OML", "sine", "quick", folder=tmp_path)
    (tmp_path / "tiny.pt").unlink()
    with pytest.raises(pretrained.PretrainedError, match="tiny.pt is missing"):
        pretrained.load_pretrained("OML", "sine", "quick", folder=tmp_path)
    with pytest.raises(pretrained.PretrainedError, match="no shipped learner 'FLP/sine/quick'; shipped: OML"):
        pretrained.load_pretrained("FLP", "sine", "quick", folder=tmp_path)


def test_compare_deploys_a_shipped_learner_only_for_its_preset(tmp_path, monkeypatch, capsys):
    """Same preset and meta seed: loaded and announced, nothing meta-trained; a preset changed by --set,
    or --meta-train: meta-trained (a checkpoint appears)."""
    folder, ckpts = tmp_path / "shipped", tmp_path / "ckpt"
    flp, _ = configure("sine", "quick", dict(a.split("=", 1) for a in TINY[1::2]))
    entry = _ship_tiny(folder, flp["FLP"])
    monkeypatch.setattr(pretrained, "FOLDER", folder)
    base = [
        "compare",
        "--scale",
        "quick",
        "--strategies",
        "FLP",
        *TINY,
        "--checkpoint-dir",
        str(ckpts),
        *QUIET,
    ]

    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    text = capsys.readouterr().out
    assert f"using shipped FLP (sine/quick, sha256 {entry['sha256'][:12]})" in text and "| FLP |" in text
    assert not ckpts.exists() or not list(ckpts.iterdir())
    config = json.loads((tmp_path / "a" / "results.json").read_text())["config"]
    assert config["shipped"] == {"FLP": f"shipped FLP (sine/quick, sha256 {entry['sha256'][:12]})"}

    assert main([*base, "--set", "FLP.meta.lr.plasticity=2e-5", "--out", str(tmp_path / "b")]) == 0
    assert "using shipped" not in capsys.readouterr().out
    assert len(list(ckpts.glob("sine_FLP_quick_steps2_*_seed0.pt"))) == 1

    assert main([*base, "--meta-train", "--out", str(tmp_path / "c")]) == 0
    assert "using shipped" not in capsys.readouterr().out
    assert len(list(ckpts.glob("sine_FLP_quick_steps2_*_seed0.pt"))) == 2


@pytest.mark.parametrize(
    "strategy, spec",
    [("FLP", "pretrained:sine"), ("OML", "pretrained:sine/cpu"), ("ANML", "pretrained:omniglot")]
    + [("MetaPlasticityRule", "pretrained:omniglot"), ("ComplexSynapse", "pretrained:omniglot")]
    + [("GainModulation", "pretrained:omniglot")],
)
def test_a_strategy_takes_a_shipped_learner_by_name(strategy, spec):
    import avalanche_plasticity.strategies as strategies

    scenario, _, scale = spec.removeprefix("pretrained:").partition("/")
    if pretrained.key(strategy, scenario, scale or "cpu") not in SHIPPED:
        pytest.skip(f"{strategy} is not shipped for {scenario}")
    extra = {"num_classes": 5} if strategy == "MetaPlasticityRule" else {}
    deployed = getattr(strategies, strategy)(learner=spec, evaluator=None, **extra)
    expected = pretrained.load_pretrained(strategy, scenario, scale or "cpu")
    learner = deployed.learner if strategy == "MetaPlasticityRule" else deployed.model.learner
    if strategy != "MetaPlasticityRule":  # the rule is redeployed on the stream's network
        for a, b in zip(learner.state_dict().values(), expected.state_dict().values(), strict=True):
            assert torch.equal(a, b)
    else:
        assert learner.rule() == pytest.approx(expected.rule())


def test_a_bad_shipped_name_is_a_clear_error():
    from avalanche_plasticity.strategies import FLP

    with pytest.raises(pretrained.PretrainedError, match="FLP/nowhere/cpu"):
        FLP(learner="pretrained:nowhere")
    with pytest.raises(ValueError, match="learner must be 'pretrained:<scenario>'"):
        FLP(learner="pretrained:sine/cpu/x")
    from avalanche_plasticity.strategies import ComplexSynapse

    with pytest.raises(pretrained.PretrainedError, match="ComplexSynapse/sine/cpu"):
        ComplexSynapse(learner="pretrained:sine")  # the contrastive sine learners are not shipped
    with pytest.raises(ValueError, match="learner must be 'pretrained:<scenario>'"):
        ComplexSynapse(learner="pretrained:")
