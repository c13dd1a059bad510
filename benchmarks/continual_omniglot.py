"""Continual Omniglot (OML protocol): FLP, OML, Naive, EWC, Replay on the same class orders.

Meta-trains FLP and OML on the background classes (or loads their checkpoints), then for ``--runs``
class orders of evaluation-split classes learns 15 images per class in one online pass at batch size 1
and reports test accuracy on the 5 held-out images of every class seen, at each class count.
The SGD learning rate of OML and of the baselines is picked on a validation order (seed 10000).

    AVP_DATA_DIR=../shared/data python benchmarks/continual_omniglot.py [--runs 5] [--counts 10 50 100 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from avalanche_plasticity.configs import presets
from avalanche_plasticity.experiments import make_strategy, meta_trained, run_stream
from avalanche_plasticity.registry import scenario_spec
from avalanche_plasticity.reporting import machine, write_results
from avalanche_plasticity.scenarios import ContinualOmniglot

HERE = Path(__file__).resolve().parent
LR_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)

# The plasticity rules' continual figures are in plasticity_rules.py (they meta-train on other episodes).
COMPARED = ("FLP", "OML", "Naive", "EWC", "Replay")  # the recorded figures (ComplexSynapse: contrastive.py)


def run(name, learners, cfg, order_seed, lr, counts, root, image_size):
    bm = ContinualOmniglot(
        num_classes=max(counts), classes_per_experience=1, seed=order_seed, root=root, image_size=image_size
    )
    s = make_strategy(
        name,
        learner=learners.get(name),
        learner_config=cfg,
        task="classification",
        lr=lr,
        ewc_lambda=scenario_spec("omniglot").ewc_lambda,
        train_mb_size=1,
        seed=order_seed,
    )
    return run_stream(s, bm, eval_after=list(counts))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--counts", type=int, nargs="+", default=[10, 50, 100, 200])
    p.add_argument("--scale", choices=["cpu", "paper"], default="cpu")
    p.add_argument("--data-root", default=None)
    p.add_argument("--checkpoint-dir", default=str(HERE / "checkpoints"))
    p.add_argument("--out", default=str(HERE / "results" / "continual_omniglot.json"))
    args = p.parse_args()
    t0 = time.time()
    learners = {
        n: meta_trained(
            "omniglot", n, scale=args.scale, checkpoint_dir=args.checkpoint_dir, root=args.data_root
        )
        for n in ("FLP", "OML")
    }
    cfg = presets("omniglot", args.scale)["FLP"].learner_config
    size = cfg.trunk["image_size"]
    val_counts = [min(50, max(args.counts))]
    chosen_lr = {}
    for name in ("OML", "Naive", "EWC", "Replay"):
        scores = {
            lr: run(name, learners, cfg, 10_000, lr, val_counts, args.data_root, size)[val_counts[0]]
            for lr in LR_GRID
        }
        chosen_lr[name] = max(scores, key=scores.get)
        print(f"[lr] {name}: validation accuracy {scores} -> lr {chosen_lr[name]}", file=sys.stderr)
    results = {}
    for name in COMPARED:
        per_run = [
            run(name, learners, cfg, r, chosen_lr.get(name), args.counts, args.data_root, size)
            for r in range(args.runs)
        ]
        results[name] = {
            str(c): {
                "mean": statistics.mean(r[c] for r in per_run),
                "std": statistics.pstdev(r[c] for r in per_run),
                "runs": len(per_run),
            }
            for c in args.counts
        }
        results[name]["lr"] = chosen_lr.get(name)
        print(name, {c: round(results[name][str(c)]["mean"], 4) for c in args.counts}, flush=True)
    out = {
        "config": {
            "scale": args.scale,
            "runs": args.runs,
            "counts": args.counts,
            "classes_per_experience": 1,
            "train_per_class": 15,
            "test_per_class": 5,
            "image_size": size,
            "lr_grid": LR_GRID,
            "ewc_lambda": scenario_spec("omniglot").ewc_lambda,
            "replay_mem_size": 200,
            "learners": {n: repr(presets("omniglot", args.scale)[n]) for n in ("FLP", "OML")},
        },
        "machine": machine(),
        "seconds": time.time() - t0,
        "results": results,
    }
    write_results(out, args.out)


if __name__ == "__main__":
    torch.set_num_threads(int(__import__("os").environ.get("AVP_THREADS", "2")))
    main()
