"""Meta-train a preset learner to a checkpoint (resumes if the checkpoint exists).

Kept for existing scripts: this is ``avalanche-plasticity meta-train`` with the CPU preset as default
scale (``--scale cpu``), so it writes and resumes the same checkpoints as the benchmarks. Every option of
the command works (``--set key=value``, ``--stop-after``, ``--device``, W&B, torchrun), see
``avalanche-plasticity meta-train --help``.

    python scripts/meta_train.py --scenario sine --learner FLP [--scale cpu] [--checkpoint-dir checkpoints]
"""

import sys

from avalanche_plasticity.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a == "--scale" or a.startswith("--scale=") for a in argv):
        argv += ["--scale", "cpu"]
    sys.exit(main(["meta-train", *argv]))
