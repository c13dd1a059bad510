"""Continual Omniglot (OML protocol): FLP, OML, Naive, EWC and Replay on the same class order.

FLP and OML are meta-trained on the 964 background classes (checkpointed), then every strategy learns
``--num-classes`` unseen evaluation-split classes, 15 images each, one image at a time in a single pass,
and test accuracy on all classes seen so far is printed at several class counts. The default (28x28,
small conv trunk, 400 meta-updates, 50 classes) finishes in minutes on 2 CPU cores; ``--paper`` uses
84x84 images, the 6-layer 128-channel trunk and 40,000 meta-training episodes.

    AVP_DATA_DIR=/path/to/data python examples/continual_omniglot.py [--paper] [--num-classes 100]
"""

import argparse

from avalanche_plasticity.experiments import compare
from avalanche_plasticity.reporting import format_table


def main(args: argparse.Namespace) -> None:
    results = compare(
        "omniglot",
        strategies=("FLP", "OML", "Naive", "EWC", "Replay"),  # the rules: examples/plasticity_rules.py
        scale="paper" if args.paper else "cpu",
        meta_steps=None if args.paper and args.meta_steps is None else (args.meta_steps or 400),
        seed=args.seed,
        num_classes=args.num_classes,
        checkpoint_dir=args.checkpoint_dir,
        root=args.data_root,
    )
    print(format_table(results, "Accuracy on all classes seen"))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paper", action="store_true", help="the papers' sizes (hours on a GPU)")
    p.add_argument("--meta-steps", type=int, default=None)
    p.add_argument("--num-classes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None)
    p.add_argument("--checkpoint-dir", default="checkpoints")
    main(p.parse_args())
