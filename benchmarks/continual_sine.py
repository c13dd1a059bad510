"""Continual sine regression: FLP, OML, Naive, EWC, Replay on the same problems.

Meta-trains FLP and OML on the meta-training function pool (or resumes/loads their checkpoints), then
runs every strategy on ``--runs`` evaluation problems (10 unseen functions each, one block of 40
minibatches of 8 per function) and records the MSE on all functions seen so far after each function.
The SGD learning rate of OML and of the baselines is picked on a separate validation problem.

    python benchmarks/continual_sine.py [--runs 5] [--scale cpu]   # -> benchmarks/results/continual_sine.json
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from avalanche_plasticity.configs import presets
from avalanche_plasticity.experiments import make_strategy, meta_trained, run_stream
from avalanche_plasticity.registry import scenario_spec
from avalanche_plasticity.reporting import machine, write_results
from avalanche_plasticity.scenarios import IncrementalSine

HERE = Path(__file__).resolve().parent
LR_GRID = (0.001, 0.003, 0.01, 0.03)

# The plasticity rules' continual figures are in plasticity_rules.py (they meta-train on other episodes).
COMPARED = ("FLP", "OML", "Naive", "EWC", "Replay")  # the recorded figures (ComplexSynapse: contrastive.py)


def mean_std(values: list[float]) -> dict:
    """Mean/std over runs; a run that diverged (non-finite) is counted and reported, not averaged."""
    finite = [v for v in values if math.isfinite(v)]
    return {
        "mean": statistics.mean(finite) if finite else None,
        "std": statistics.pstdev(finite) if finite else None,
        "runs": len(values),
        "diverged_runs": len(values) - len(finite),
    }


def run(name, learners, cfg, seed, lr, problem_seed):
    bm = IncrementalSine(seed=problem_seed)
    s = make_strategy(
        name,
        learner=learners.get(name),
        learner_config=cfg,
        task="regression",
        lr=lr,
        ewc_lambda=scenario_spec("sine").ewc_lambda,
        train_mb_size=8,
        seed=seed,
    )
    return run_stream(s, bm, metric="MSE_Stream")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--scale", choices=["cpu", "paper"], default="cpu")
    p.add_argument("--checkpoint-dir", default=str(HERE / "checkpoints"))
    p.add_argument("--out", default=str(HERE / "results" / "continual_sine.json"))
    args = p.parse_args()
    t0 = time.time()
    learners = {
        n: meta_trained("sine", n, scale=args.scale, checkpoint_dir=args.checkpoint_dir)
        for n in ("FLP", "OML")
    }
    cfg = presets("sine", args.scale)["FLP"].learner_config
    chosen_lr = {}
    for name in ("OML", "Naive", "EWC", "Replay"):
        scores = {lr: run(name, learners, cfg, 0, lr, problem_seed=10_000)[10] for lr in LR_GRID}
        finite = {lr: v for lr, v in scores.items() if math.isfinite(v)}
        chosen_lr[name] = min(finite, key=finite.get) if finite else LR_GRID[0]
        print(f"[lr] {name}: validation final MSE {scores} -> lr {chosen_lr[name]}", file=sys.stderr)
    results = {}
    for name in COMPARED:
        curves = [run(name, learners, cfg, r, chosen_lr.get(name), problem_seed=r) for r in range(args.runs)]
        results[name] = {
            "final_mse": mean_std([c[10] for c in curves]),
            "mse_after_each_function": [mean_std([c[k] for c in curves])["mean"] for k in range(1, 11)],
            "lr": chosen_lr.get(name),
        }
        print(f"{name:7s} final MSE {results[name]['final_mse']}", flush=True)
    out = {
        "config": {
            "scale": args.scale,
            "runs": args.runs,
            "functions": 10,
            "batches_per_function": 40,
            "batch_size": 8,
            "lr_grid": LR_GRID,
            "ewc_lambda": scenario_spec("sine").ewc_lambda,
            "replay_mem_size": 200,
            "learners": {n: repr(presets("sine", args.scale)[n]) for n in ("FLP", "OML")},
        },
        "machine": machine(),
        "seconds": time.time() - t0,
        "results": results,
    }
    write_results(out, args.out)


if __name__ == "__main__":
    torch.set_num_threads(int(__import__("os").environ.get("AVP_THREADS", "2")))
    main()
