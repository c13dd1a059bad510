"""Meta-train a preset learner to a checkpoint (resumes if the checkpoint exists).

python scripts/meta_train.py --scenario sine --learner FLP [--scale cpu] [--checkpoint-dir checkpoints]
"""

import argparse

import torch

from avalanche_plasticity.experiments import meta_trained


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", choices=["sine", "omniglot"], required=True)
    p.add_argument("--learner", choices=["FLP", "OML"], required=True)
    p.add_argument("--scale", choices=["cpu", "paper"], default="cpu")
    p.add_argument("--checkpoint-dir", default="checkpoints")
    p.add_argument("--data-root", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    meta_trained(
        args.scenario,
        args.learner,
        scale=args.scale,
        checkpoint_dir=args.checkpoint_dir,
        root=args.data_root,
        seed=args.seed,
    )


if __name__ == "__main__":
    main()
