"""Continual sine regression: FLP, OML, Naive, EWC and Replay on the same stream and seed.

FLP and OML are meta-trained first (checkpointed; a second run reuses them), then every strategy learns
10 unseen sine functions one after the other in one online pass, and the MSE on all functions seen so
far is printed after each function. The default finishes in a few minutes on 2 CPU cores; ``--paper``
uses the papers' network (9 layers of width 300) and 20,000 meta-training episodes.

    python examples/continual_sine.py [--paper] [--meta-steps N] [--seed S]
"""

import argparse

from avalanche_plasticity.experiments import compare
from avalanche_plasticity.reporting import format_table


def main(args: argparse.Namespace) -> None:
    results = compare(
        "sine",
        scale="paper" if args.paper else "cpu",
        meta_steps=None if args.paper and args.meta_steps is None else (args.meta_steps or 150),
        seed=args.seed,
        checkpoint_dir=args.checkpoint_dir,
    )
    print(format_table(results, "MSE on all functions seen"))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paper", action="store_true", help="the papers' sizes (hours on a GPU)")
    p.add_argument("--meta-steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-dir", default="checkpoints")
    main(p.parse_args())
