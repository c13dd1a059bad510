"""Transfer to a stream with fewer classes: a learner keeps the first k units of its meta-trained head, and
on those units computes exactly what the full learner computes, before and after online updates."""

from __future__ import annotations

import pytest
import torch

from avalanche_plasticity import registry
from avalanche_plasticity.contrastive import ComplexSynapseConfig, ComplexSynapseLearner
from avalanche_plasticity.flp import FLPConfig, FLPLearner
from avalanche_plasticity.oml import OMLConfig, OMLLearner


def _perturb(learner: torch.nn.Module) -> None:
    """Give every meta-parameter non-trivial values (zero biases and rates would hide slicing mistakes)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in learner.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("rule", ["oja", "hebb"])
def test_flp_kept_units_learn_as_in_the_full_head(rule):
    big = FLPLearner(FLPConfig(layer_sizes=(6, 12, 20), task="classification", rule=rule), seed=0)
    _perturb(big)
    small = registry.learner_spec("FLP").with_outputs(big, 5)
    assert small.num_outputs == 5 and small.config.layer_sizes == (6, 12, 5) and big.num_outputs == 20
    x = torch.randn(1, 7, 6, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([[0, 4, 2, 2, 1, 3, 0]])
    fb, fs = big.initial_fast_weights(), small.initial_fast_weights()
    for t in range(7):  # one image at a time, as online
        torch.testing.assert_close(
            small.predict(fs, x[:, t : t + 1]), big.predict(fb, x[:, t : t + 1])[..., :5]
        )
        fb, fs = (
            big.step(fb, x[:, t : t + 1], y[:, t : t + 1]),
            small.step(fs, x[:, t : t + 1], y[:, t : t + 1]),
        )
    torch.testing.assert_close(small.predict(fs, x), big.predict(fb, x)[..., :5])


def test_oml_and_complex_synapse_heads_are_sliced():
    oml = OMLLearner(OMLConfig(rln_sizes=(6, 12), pln_sizes=(12, 16), task="classification"), seed=0)
    _perturb(oml)
    small = registry.learner_spec("OML").with_outputs(oml, 3)
    x = torch.randn(1, 4, 6)
    feats = oml.features(x)
    torch.testing.assert_close(
        small.predict(small.initial_fast_weights(), feats),
        oml.predict(oml.initial_fast_weights(), feats)[..., :3],
    )
    net = {"kind": "mlp", "sizes": [6, 10, 9], "activation": "relu"}
    cs = ComplexSynapseLearner(ComplexSynapseConfig(network=net, task="classification"))
    small_cs = registry.learner_spec("ComplexSynapse").with_outputs(cs, 4)
    assert small_cs.num_outputs == 4 and small_cs.config.network["sizes"] == [6, 10, 4]
    with pytest.raises(
        ValueError, match=r"k must be an int in \[1, 16\] \(the learner's output units\), got 17"
    ):
        registry.learner_spec("OML").with_outputs(oml, 17)
    assert registry.learner_spec("OML").with_outputs(oml, 16) is oml


def test_anml_joins_compare_through_the_registry(omniglot_root, tmp_path, capsys):
    """ANML is meta-trained on Omniglot beside OML (checkpointed), deployed at its validated head rate,
    and its head is sliced for a smaller stream like the others'."""
    from avalanche_plasticity.anml import ANMLConfig, ANMLLearner
    from avalanche_plasticity.cli import main

    out = tmp_path / "out"
    argv = ["compare", "--scenario", "omniglot", "--strategies", "ANML", "OML", "--meta-steps", "2"]
    argv += ["--num-classes", "3", "--data-root", str(omniglot_root), "--checkpoint-dir", str(tmp_path)]
    assert main([*argv, "--out", str(out), "--wandb-mode", "disabled", "--quiet", "--threads", "1"]) == 0
    assert "| ANML |" in capsys.readouterr().out
    assert (tmp_path / "omniglot_ANML_cpu_steps2_seed0.pt").is_file()
    import json

    runs = {r["strategy"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    assert runs["ANML"]["config"]["lr"] == 1e-3 and runs["ANML"]["config"]["learner"]["kind"] == "ANMLLearner"
    small = registry.learner_spec("ANML").with_outputs(
        ANMLLearner(
            ANMLConfig(
                nm_trunk=dict(channels=4, layers=2, image_size=12),
                pn_trunk=dict(channels=4, layers=2, image_size=12),
                num_outputs=9,
            )
        ),
        2,
    )
    assert small.num_outputs == 2
