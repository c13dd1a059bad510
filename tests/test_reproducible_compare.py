"""Same seed, same result: the same ``compare`` in two fresh processes (different global torch seeds set
before it) gives bit-identical curves for every strategy, learners and baselines alike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys, torch
torch.manual_seed(int(sys.argv[3]))  # global state the run must not depend on
from avalanche_plasticity.cli import main
strategies = ["FLP", "OML", "Naive", "EWC", "Replay", "Naive+fa"]
sys.exit(main(["compare", "--scale", "quick", "--strategies", *strategies, "--meta-steps", "2",
               "--seeds", "0", "1", "--checkpoint-dir", sys.argv[1], "--out", sys.argv[2],
               "--wandb-mode", "disabled", "--quiet", "--threads", "1", "--meta-jobs", "1",
               "--set", "stream.batches_per_function=3"]))
"""


def _curves(out: Path) -> dict[str, list[float]]:
    runs = json.loads((out / "results.json").read_text())["runs"]
    return {f"{r['strategy']}/{r['seed']}": list(r["curve"].values()) for r in runs}


def test_compare_is_bit_identical_across_processes(tmp_path):
    ckpt = tmp_path / "ckpt"
    outs = []
    for i, global_seed in enumerate((1, 987)):
        out = tmp_path / f"out{i}"
        subprocess.run([sys.executable, "-c", SCRIPT, str(ckpt), str(out), str(global_seed)], check=True)
        outs.append(_curves(out))
    assert set(outs[0]) == {
        f"{s}/{seed}" for s in ("FLP", "OML", "Naive", "EWC", "Replay", "Naive+fa") for seed in (0, 1)
    }
    assert outs[0] == outs[1]  # exact equality of floats
    assert outs[0]["Naive/0"] != outs[0]["Naive/1"]  # the stream seed does change the run
