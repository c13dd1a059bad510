"""Throughput of FLP meta-training: all episodes of a meta-batch in one batched computation, versus a
per-episode Python loop of the same math (how the reference code runs: one episode at a time, meta-
gradients accumulated). Same process, same learner, same episodes; one full meta-update each
(forward through the online trajectory, backward, Adam step).

    python benchmarks/meta_training_speed.py [--meta-batch 16] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from avalanche_plasticity.configs import presets
from avalanche_plasticity.experiments import build_learner
from avalanche_plasticity.meta_learning import make_optimizers, meta_loss
from avalanche_plasticity.reporting import machine, write_results
from avalanche_plasticity.tasks import SineTaskSource

HERE = Path(__file__).resolve().parent


def meta_update(learner, optimizers, batch, batched: bool) -> None:
    for opt in optimizers.values():
        opt.zero_grad(set_to_none=True)
    if batched:
        meta_loss(learner, batch).backward()
    else:
        for i in range(batch.episodes):
            (meta_loss(learner, batch.episode(i)) / batch.episodes).backward()
    for opt in optimizers.values():
        opt.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--meta-batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--out", default=str(HERE / "results" / "meta_training_speed.json"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = presets("sine", "cpu")["FLP"]
    preset.meta.meta_batch_size = args.meta_batch
    learner = build_learner(preset)
    with torch.no_grad():  # non-zero rates so every term of the rule is exercised
        for r in learner.plasticity_rates:
            r.fill_(1e-5)
    optimizers = make_optimizers(learner, preset.meta)
    source = SineTaskSource()
    batch = source.sample(args.meta_batch, torch.Generator().manual_seed(0))
    rates = {}
    for mode in ("batched", "loop"):
        meta_update(learner, optimizers, batch, mode == "batched")  # warm-up
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            meta_update(learner, optimizers, batch, mode == "batched")
            times.append(time.perf_counter() - t)
        rates[mode] = args.meta_batch / min(times)
        print(f"{mode:8s} {rates[mode]:8.2f} episodes/s (best of {args.repeats})", flush=True)
    out = {
        "config": {
            "learner": repr(preset.learner_config),
            "meta_batch_size": args.meta_batch,
            "trajectory": "10 functions x 40 minibatches of 8 (400 online steps)",
            "repeats": args.repeats,
            "threads": torch.get_num_threads(),
        },
        "machine": machine(),
        "batched_episodes_per_s": rates["batched"],
        "loop_episodes_per_s": rates["loop"],
        "ratio": rates["batched"] / rates["loop"],
    }
    print(f"ratio {out['ratio']:.2f}x")
    write_results(out, args.out)


if __name__ == "__main__":
    main()
