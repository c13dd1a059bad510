"""Command line: ``avalanche-plasticity compare`` (FLP, OML, Naive, EWC, Replay on one stream)."""

from __future__ import annotations

import argparse
import sys

import torch

from .experiments import STRATEGIES, compare, format_table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="avalanche-plasticity")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="meta-train FLP/OML and compare them with Naive, EWC, Replay")
    c.add_argument("--scenario", choices=["sine", "omniglot"], default="sine")
    c.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    c.add_argument("--scale", choices=["cpu", "paper"], default="cpu")
    c.add_argument(
        "--meta-steps",
        type=int,
        default=None,
        help="meta-updates for FLP/OML (default: 150 for sine, 400 for omniglot; --scale paper: the paper's)",
    )
    c.add_argument("--num-classes", type=int, default=50, help="omniglot: classes in the stream")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--data-root", default=None, help="data root (default: $AVP_DATA_DIR or the user cache)")
    c.add_argument("--checkpoint-dir", default="checkpoints")
    c.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.meta_steps
    if steps is None and args.scale == "cpu":
        steps = 150 if args.scenario == "sine" else 400
    if steps is not None and steps < 1:
        p.error(f"--meta-steps must be >= 1, got {steps}")
    results = compare(
        args.scenario,
        strategies=tuple(args.strategies),
        scale=args.scale,
        meta_steps=steps,
        seed=args.seed,
        num_classes=args.num_classes,
        checkpoint_dir=args.checkpoint_dir,
        root=args.data_root,
    )
    print(
        format_table(
            results,
            "MSE on all functions seen" if args.scenario == "sine" else "Accuracy on all classes seen",
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
