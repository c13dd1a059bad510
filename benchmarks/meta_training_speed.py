"""Throughput of FLP meta-training.

**Small configuration** (the original figure): all episodes of a meta-batch in one batched computation,
versus a per-episode Python loop of the same math (how the reference code runs: one episode at a time,
meta-gradients accumulated). Same process, same learner, same episodes; one full meta-update each
(forward through the online trajectory, backward, Adam step).

**The FLP authors' sine configuration** (issue #16, ``paper_config`` in the results): MLP
11-300-300-300-300-300-900-300-300-1, every layer plastic, Oja, 10 functions x 40 minibatches of 32 = 400
online steps, one episode per meta-update. Three ways to compute the meta-gradient, each setting (way,
meta-batch, threads) in a fresh subprocess so that its peak memory (``ru_maxrss``) is its own:

- ``loop``: one episode at a time written the way the authors' code runs (2-D tensors, ``torch.mm``
  per layer, autograd through everything);
- ``batched``: the engine's stored-graph path (``meta_gradient="stored"``, episodes batched);
- ``memory_lean``: ``meta_gradient="memory_lean"`` (reversible backward pass).

Plus the memory-lean peak memory at 100, 400 and 1600 online steps, and this machine's fp32 matmul rate
at 32x300x300 (the floor: the episode's matmul FLOPs at that rate).

    python benchmarks/meta_training_speed.py [--meta-batch 16] [--repeats 3] [--threads 1]
    python benchmarks/meta_training_speed.py --paper-only      # keep the small figure, redo paper_config
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from avalanche_plasticity.flp import FLPConfig, FLPLearner
from avalanche_plasticity.meta_learning import MetaTrainConfig, make_optimizers, meta_loss
from avalanche_plasticity.reporting import machine, write_results
from avalanche_plasticity.tasks import EpisodeBatch, SineTaskSource

HERE = Path(__file__).resolve().parent
PAPER_SIZES = (11, 300, 300, 300, 300, 300, 900, 300, 300, 1)
PAPER = {
    "layer_sizes": PAPER_SIZES,
    "rule": "oja",
    "plastic_layers": "all",
    "functions_per_episode": 10,
    "batches_per_function": 40,
    "batch_size": 32,
    "query_per_function": 32,
    "online_steps": 400,
    "episodes_per_meta_update": "meta-batch (the authors: 1)",
    "init_plasticity": 1e-8,  # larger rates diverge on this network within 400 steps (1e-7: NaN)
}


NOTES = (
    "s_per_episode: wall-clock median over the timed meta-updates (meta-batch 1: {repeats} meta-updates of "
    "one episode each; meta-batch 16: one meta-update, seconds / 16), after a 10-step warm-up episode, each "
    "setting in a fresh process; cpu_s_per_episode is the process's CPU time, less sensitive to other jobs "
    "(load_average_1min records them). peak_mb: the process's ru_maxrss, including ~0.7 GB that importing "
    "torch alone takes here; episode_mb (and memory_lean_peak_mb_by_steps): peak_mb minus the resident size "
    "just before the timed meta-updates (rss_before_mb), i.e. the episode's own peak memory. "
    "loop: the authors' "
    "code's per-step work (query loss on a growing prefix after every step, a second unused outer product, "
    "cloned activities, per-sample output selection); loop_minimal: the same math without it. "
    "floor_fraction: (gflop / the measured 32x300x300 forward-form matmul rate) / memory-lean seconds per "
    "episode; gflop counts the stored graph's matmul work (memory_lean_executed_gflop adds the outer "
    "product rebuilt backwards). speedup_vs_loop: loop seconds per episode over memory-lean's at its best "
    "meta-batch, same thread count. batched at meta-batch 16 is not run (autograd state beyond 24 GB); "
    "memory-lean runs a meta-batch a chunk of as many episodes as threads at a time (episode_chunk). "
    "Workers run with OMP_WAIT_POLICY=PASSIVE: with other jobs on the 2 cores, spinning OpenMP threads "
    "collapsed 2-thread matmul to ~1.5-6 GFLOP/s (30 GFLOP/s passive)."
)


# -- the small configuration (unchanged) ----------------------------------------------------------------
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


def small_config(args: argparse.Namespace) -> dict[str, Any]:
    from avalanche_plasticity.configs import presets
    from avalanche_plasticity.experiments import build_learner

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
    return out


# -- the authors' configuration ---------------------------------------------------------------------------
def paper_learner() -> FLPLearner:
    learner = FLPLearner(FLPConfig(layer_sizes=PAPER_SIZES, rule="oja"), seed=0)
    with torch.no_grad():  # non-zero rates so every term of the rule is exercised
        for r in learner.plasticity_rates:
            r.fill_(PAPER["init_plasticity"])
    return learner


def paper_batch(episodes: int, steps: int) -> EpisodeBatch:
    source = SineTaskSource(
        functions_per_episode=10,
        batches_per_function=steps // 10,
        batch_size=PAPER["batch_size"],
        query_per_function=PAPER["query_per_function"],
    )
    return source.sample(episodes, torch.Generator().manual_seed(0))


def _mlp(W, b, x: torch.Tensor, keep: list | None = None) -> list[torch.Tensor]:
    """``[a_0, ..., a_L]`` of the plastic MLP with 2-D weights, ``torch.mm`` per layer (``keep``: the
    authors' code stores a clone of every hidden activity, for the update)."""
    acts = [x]
    for l in range(len(W)):
        z = torch.mm(acts[-1], W[l].t()) + b[l]
        acts.append(F.relu(z) if l < len(W) - 1 else z)
        if keep is not None and l < len(W) - 1:
            keep.append(acts[-1].clone())
    return acts


def _select(out: torch.Tensor) -> torch.Tensor:
    """The authors' per-sample output selection (``logits[no, val]`` in a Python loop; one output here)."""
    return torch.stack([out[i, 0] for i in range(out.shape[0])]).unsqueeze(1)


def authors_loop_loss(learner: FLPLearner, support_x, support_y, query_x, query_y, faithful: bool = True):
    """One episode the way the authors' code runs it (``model/oja_meta_learner.py::MetaLearnerRegression``,
    ``model/oja_learner_regression.py::getOjaUpdate``): 2-D tensors, ``torch.mm`` per layer, Oja's rule,
    autograd through everything. ``support_x (T, B, 11)``, ``query_x (Q, 11)``.

    ``faithful`` also does the per-step work of their code that the meta-gradient does not need: the
    query loss on a growing prefix of the query set after every step (with its graph, kept in a list),
    a second, unused outer product per layer, the activities cloned, and the per-sample output selection.
    ``faithful=False`` is the same math with none of it (a lean per-episode loop).
    """
    W = list(learner.initial_weights)
    b, fbw, fbb = learner.biases, learner.feedback_weights, learner.feedback_biases
    rates, betas = learner.plasticity_rates, learner.feedback_strengths
    L, T, Q = len(W), support_x.shape[0], query_x.shape[0]
    losses_q = []
    for t in range(T):
        keep: list[torch.Tensor] = []
        acts = _mlp(W, b, support_x[t], keep if faithful else None)
        out = _select(acts[-1]) if faithful else acts[-1]
        s = support_y[t] - out
        new = []
        for l in range(L):
            post = betas[l] * F.relu(torch.mm(s, fbw[l].t()) + fbb[l]) + (1 - betas[l]) * acts[l + 1]
            if faithful:
                torch.mm(post.t(), acts[l])  # computed and unused in their getOjaUpdate
            hebb = torch.mm(post.t(), acts[l])
            new.append(W[l] + rates[l] * (hebb - (post**2).sum(0).unsqueeze(1) * W[l]))
        W = new
        if faithful and t < T - 1:  # their per-step query loss on a growing prefix, graph kept
            n = int((t + 1) * Q / T)
            if n:
                losses_q.append(F.mse_loss(_select(_mlp(W, b, query_x[:n])[-1]), query_y[:n]))
    out = _mlp(W, b, query_x)[-1]
    return F.mse_loss(_select(out) if faithful else out, query_y)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def matmul_rate(repeats: int = 400) -> dict[str, float]:
    """fp32 GFLOP/s at 32x300x300: the forward form ``(32, 300) @ (300, 300)`` and the outer product
    ``(300, 32) @ (32, 300)`` (median of 5 timings of ``repeats`` products each)."""
    a, w, p = torch.randn(32, 300), torch.randn(300, 300), torch.randn(300, 32)
    flop = 2 * 32 * 300 * 300
    out = {}
    for name, f in (("forward", lambda: torch.mm(a, w)), ("outer", lambda: torch.mm(p, a))):
        for _ in range(50):
            f()
        times = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(repeats):
                f()
            times.append((time.perf_counter() - t) / repeats)
        out[name] = flop / statistics.median(times) / 1e9
    return out


def episode_flops(steps: int, batch: int = 32, sizes: tuple[int, ...] = PAPER_SIZES) -> dict[str, float]:
    """Matmul FLOPs of one meta-gradient episode. Per layer (``n x m``) and step: forward ``a W^T`` and
    the outer product ``post^T pre`` (2 x 2Bnm), their backward (4 x 2Bnm): the stored graph's 6 units
    (the issue's ~155 GFLOP). The memory-lean path runs a 7th (the outer product, rebuilt backwards)."""
    nm = sum(sizes[i] * sizes[i + 1] for i in range(len(sizes) - 1))
    unit = 2 * batch * nm * steps
    return {"gflop": 6 * unit / 1e9, "memory_lean_executed_gflop": 7 * unit / 1e9}


def pool_learner_and_batch(steps: int):
    """The plasticity-rule pool (all ten terms) on the paper's network 784-170-130-100-70-47, one image per
    online step (the paper's protocol), on image-like inputs in [0, 1): memory does not depend on data."""
    from avalanche_plasticity.plasticity_rules.learner import PlasticityRuleConfig, PlasticityRuleLearner
    from avalanche_plasticity.plasticity_rules.terms import PAPER_POOL

    coefficients = {t: (1e-3 if t == "pseudo_gradient" else 1e-6) for t in PAPER_POOL}
    learner = PlasticityRuleLearner(PlasticityRuleConfig(init_coefficients=coefficients))
    learner.generator = torch.Generator().manual_seed(0)
    g = torch.Generator().manual_seed(1)
    batch = EpisodeBatch(
        torch.rand(1, steps, 1, 784, generator=g),
        torch.randint(47, (1, steps, 1), generator=g),
        torch.rand(1, 25, 784, generator=g),
        torch.randint(47, (1, 25), generator=g),
    )
    return learner, batch


def pool_worker(setting: dict[str, Any]) -> dict[str, Any]:
    """One meta-gradient of the pool's meta-loss over ``steps`` online steps: seconds and memory."""
    learner, batch = pool_learner_and_batch(setting["steps"])
    warm = pool_learner_and_batch(10)[1]
    meta_loss(learner, warm, meta_gradient=setting["path"]).backward()
    before = rss_mb()
    t, c = time.perf_counter(), time.process_time()
    meta_loss(learner, batch, meta_gradient=setting["path"]).backward()
    return {
        "s_per_episode": time.perf_counter() - t,
        "cpu_s_per_episode": time.process_time() - c,
        "peak_mb": peak_mb(),
        "rss_before_mb": before,
        "episode_mb": peak_mb() - before,
        "load_average_1min": os.getloadavg()[0],
    }


def rule_pool(args: argparse.Namespace) -> dict[str, Any]:
    """The pool's memory-lean (checkpointed) meta-gradient against its stored graph, by online steps."""
    out: dict[str, Any] = {
        "config": {
            "layer_sizes": [784, 170, 130, 100, 70, 47],
            "terms": "the ten-term pool (PAPER_POOL), every coefficient non-zero",
            "batch_per_step": 1,
            "meta_batch": 1,
            "threads": 1,
            "memory_lean": "checkpointed segments of ceil(sqrt(T)) steps, re-run forward when going back",
            "machine": machine(),
        }
    }
    for path in ("stored", "memory_lean"):
        out[path] = {
            str(steps): run_setting({"pool": True, "path": path, "threads": 1, "steps": steps})
            for steps in args.pool_steps
        }
    stored, lean = out["stored"], out["memory_lean"]
    out["memory_ratio_by_steps"] = {k: stored[k]["episode_mb"] / max(lean[k]["episode_mb"], 1) for k in lean}
    out["time_ratio_by_steps"] = {k: lean[k]["s_per_episode"] / stored[k]["s_per_episode"] for k in lean}
    return out


def worker(setting: dict[str, Any]) -> dict[str, Any]:
    """Run one setting in this (fresh) process and return its timings and memory."""
    torch.set_num_threads(setting["threads"])
    if setting["path"] == "matmul":
        return {"gflops": matmul_rate()}
    if setting.get("pool"):
        return pool_worker(setting)
    E, steps, repeats = setting["meta_batch"], setting["steps"], setting["repeats"]
    learner = paper_learner()
    # the authors' regression learning rates (meta_plasticity_lr 1e-8: larger steps make the rates diverge)
    lrs = {"forward": 1e-4, "feedback": 1e-4, "plasticity": 1e-8, "feedback_strength": 1e-4}
    optimizers = make_optimizers(learner, MetaTrainConfig(lr=lrs))
    warm, batch = paper_batch(E, 10), paper_batch(E, steps)

    def update(b: EpisodeBatch) -> float:
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        if setting["path"] in ("loop", "loop_minimal"):
            total = 0.0
            faithful = setting["path"] == "loop"
            for i in range(b.episodes):
                ep = (b.support_x[i], b.support_y[i], b.query_x[i], b.query_y[i])
                loss = authors_loop_loss(learner, *ep, faithful=faithful)
                (loss / b.episodes).backward()
                total += loss.item() / b.episodes
        else:
            method = "memory_lean" if setting["path"] == "memory_lean" else "stored"
            loss = meta_loss(learner, b, meta_gradient=method)
            loss.backward()
            total = loss.item()
        for opt in optimizers.values():
            opt.step()
        return total

    update(warm)  # warm-up: a 10-step episode (allocator, kernels)
    before, load = rss_mb(), os.getloadavg()[0]
    times, cpu, losses = [], [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        losses.append(update(batch))
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    s_per_episode = statistics.median(times) / E
    return {
        "s_per_episode": s_per_episode,
        "episodes_per_s": 1 / s_per_episode,
        "peak_mb": peak_mb(),
        "rss_before_mb": before,
        "episode_mb": peak_mb() - before,  # what the timed meta-updates added to the process's high-water
        "cpu_s_per_episode": statistics.median(cpu) / E,  # process CPU time (all threads)
        "meta_updates_timed": repeats,
        "times_s": times,
        "meta_loss": losses[-1],
        "load_average_1min": [load, os.getloadavg()[0]],  # before and after: other jobs on the machine
    }


def run_setting(setting: dict[str, Any], timeout: float = 1200) -> dict[str, Any]:
    """One setting in a fresh subprocess (its own ``ru_maxrss``)."""
    print(f"  {json.dumps(setting)}", flush=True)
    # The pool's network frees ~0.5 MB weight tensors every step; glibc's dynamic mmap threshold then keeps
    # them on the heap, and the high-water mark measured fragmentation (the same ~3.2 GB at 1,600 steps for
    # both paths) rather than live memory. A fixed threshold returns them to the system when freed.
    malloc = {"MALLOC_MMAP_THRESHOLD_": "131072"} if setting.get("pool") else {}
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(setting)],
            env={**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), **malloc},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        print(f"    timed out after {timeout} s", flush=True)
        return {"skipped": f"timed out after {timeout} s (other jobs were loading this 2-core machine)"}
    if proc.returncode:
        raise RuntimeError(f"setting {setting} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"    {json.dumps({k: v for k, v in result.items() if k != 'times_s'})}", flush=True)
    return result


def paper_config(args: argparse.Namespace) -> dict[str, Any]:
    flops = episode_flops(PAPER["online_steps"])
    stored_mb_per_step = 12.5  # measured in issue #16: autograd state per online step and episode
    by_threads = {}
    for threads in args.paper_threads:
        print(f"paper config, {threads} thread(s)", flush=True)
        rate = run_setting({"path": "matmul", "threads": threads})["gflops"]
        block: dict[str, Any] = {"threads": threads, "matmul_gflops_32x300x300": rate}
        for path in ("loop", "loop_minimal", "batched", "memory_lean"):
            by_mb = {}
            for mb in args.paper_meta_batches:
                if path.startswith("loop") and mb > 1:
                    by_mb[str(mb)] = {
                        "skipped": "the loop runs one episode at a time: seconds per episode "
                        "do not depend on the meta-batch (see meta-batch 1)"
                    }
                    continue
                if path == "batched" and mb > 1:
                    need = stored_mb_per_step * PAPER["online_steps"] * mb / 1024
                    by_mb[str(mb)] = {
                        "skipped": f"needs ~{need:.0f} GB of autograd state "
                        f"({stored_mb_per_step} MB x 400 steps x {mb} episodes); this machine has 24 GB"
                    }
                    continue
                repeats = args.paper_repeats if mb == 1 else 1
                by_mb[str(mb)] = run_setting(
                    {"path": path, "threads": threads, "meta_batch": mb, "steps": 400, "repeats": repeats}
                )
            timed = {k: v for k, v in by_mb.items() if "s_per_episode" in v}
            best = min(timed, key=lambda k: timed[k]["s_per_episode"])
            block[path] = {
                **{k: timed[best][k] for k in ("s_per_episode", "episodes_per_s", "peak_mb", "episode_mb")},
                "meta_batch": int(best),
                "by_meta_batch": by_mb,
            }
        lean, loop = block["memory_lean"], block["loop"]
        floor_s = flops["gflop"] / rate["forward"]
        block["speedup_vs_loop"] = loop["s_per_episode"] / lean["s_per_episode"]
        block["speedup_vs_loop_minimal"] = block["loop_minimal"]["s_per_episode"] / lean["s_per_episode"]
        block["floor_s_per_episode"] = floor_s
        block["floor_fraction"] = floor_s / lean["s_per_episode"]
        by_threads[str(threads)] = block
    best_threads = min(by_threads, key=lambda k: by_threads[k]["memory_lean"]["s_per_episode"])
    print("memory-lean peak memory by online steps", flush=True)
    runs = {
        str(steps): run_setting(
            {
                "path": "memory_lean",
                "threads": int(best_threads),
                "meta_batch": 1,
                "steps": steps,
                "repeats": 1,
            }
        )
        for steps in (100, 400, 1600)
    }
    top = by_threads[best_threads]
    return {
        "config": {**PAPER, "episode_gflop": flops["gflop"], **flops, "machine": machine()},
        "threads": int(best_threads),
        **{k: top[k] for k in ("loop", "loop_minimal", "batched", "memory_lean")},
        "memory_lean_peak_mb_by_steps": {k: v["episode_mb"] for k, v in runs.items()},
        "memory_lean_process_peak_mb_by_steps": {k: v["peak_mb"] for k, v in runs.items()},
        "memory_lean_s_per_episode_by_steps": {k: v["s_per_episode"] for k, v in runs.items()},
        "speedup_vs_loop": top["speedup_vs_loop"],
        "speedup_vs_loop_minimal": top["speedup_vs_loop_minimal"],
        "floor_fraction": top["floor_fraction"],
        "by_threads": by_threads,
        "notes": NOTES.format(repeats=args.paper_repeats),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--meta-batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--out", default=str(HERE / "results" / "meta_training_speed.json"))
    p.add_argument("--paper-only", action="store_true", help="keep the small-config figure in --out")
    p.add_argument("--small-only", action="store_true", help="keep paper_config in --out")
    p.add_argument("--paper-threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--paper-meta-batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--paper-repeats", type=int, default=3)
    p.add_argument("--rule-pool", action="store_true", help="only the plasticity-rule pool's section")
    p.add_argument("--pool-steps", type=int, nargs="+", default=[100, 400, 1600])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.rule_pool:
        out = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
        out["rule_pool"] = rule_pool(args)
        print(json.dumps(out["rule_pool"]["memory_ratio_by_steps"]))
        write_results(out, args.out)
        return
    previous = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    if args.paper_only:
        out = {k: v for k, v in previous.items() if k != "paper_config"}
    else:
        if args.threads:
            torch.set_num_threads(args.threads)
        out = small_config(args)
    if args.small_only:
        if "paper_config" in previous:
            out["paper_config"] = previous["paper_config"]
    else:
        out["paper_config"] = paper_config(args)
        pc = out["paper_config"]
        print(
            f"paper config: loop {pc['loop']['s_per_episode']:.2f} s/episode, memory-lean "
            f"{pc['memory_lean']['s_per_episode']:.2f} s/episode ({pc['speedup_vs_loop']:.2f}x), peak "
            f"{pc['memory_lean_peak_mb_by_steps']} MB, floor fraction {pc['floor_fraction']:.2f}"
        )
    write_results(out, args.out)


if __name__ == "__main__":
    main()
