"""Gain modulation (the contrastive rule's second learner) is a ``compare`` strategy beside the others:
meta-trained from its preset, deployed on the same stream, and its checkpoint evaluates to the same curve."""

from __future__ import annotations

import json
import math

import avalanche_plasticity.catalog.gain_modulation  # noqa: F401  (registers it; opt-in)
from avalanche_plasticity.cli import main
from avalanche_plasticity.configs import configure, default_strategies

QUIET = ["--wandb-mode", "disabled", "--quiet", "--threads", "1"]


def test_gain_modulation_in_compare_meta_train_and_evaluate(tmp_path, capsys):
    ckpts, out = tmp_path / "ckpt", tmp_path / "out"
    args = ["compare", "--scale", "quick", "--strategies", "GainModulation", "Naive", "--meta-steps", "2"]
    assert main([*args, "--checkpoint-dir", str(ckpts), "--out", str(out), *QUIET]) == 0
    assert "| GainModulation |" in capsys.readouterr().out
    (path,) = ckpts.glob("sine_GainModulation_quick_steps2_seed0.pt")
    results = json.loads((out / "results.json").read_text())["results"]
    curve = results["GainModulation"]["curve"]
    assert all(math.isfinite(v) for v in curve.values())
    assert curve != results["Naive"]["curve"]
    assert main(["evaluate", str(path), "--out", str(tmp_path / "ev"), *QUIET]) == 0
    evaluated = json.loads((tmp_path / "ev" / "results.json").read_text())["results"]
    assert evaluated["GainModulation"]["curve"] == curve


def test_gain_modulation_is_opt_in_and_follows_its_episodes():
    assert "GainModulation" not in default_strategies("sine", "quick")
    presets_, _ = configure("sine", "quick", {"functions_per_episode": "3", "OML.rln_sizes": "4,64,64",
                                              "FLP.layer_sizes": "4,64,64,64,1"})  # fmt: skip
    assert presets_["GainModulation"].learner_config.network["sizes"][0] == 4
    omni, _ = configure("omniglot", "cpu", {"num_units": "50"}, learners=["GainModulation"])
    assert omni["GainModulation"].learner_config.network["num_outputs"] == 50
