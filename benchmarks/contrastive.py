"""The contrastive meta-learning rule (Zucchet et al. 2022): gradient quality, memory/time, few-shot Omniglot.

Sections (each resumable: finished runs are kept in the JSON and not redone unless --fresh; meta-training
runs checkpoint to --work-dir and resume):

  gradient_quality  cosine / relative error of the one-sided and symmetric contrastive estimates against
                    the implicit reference (CG on Hessian-vector products at a 1e-10 free phase), as a
                    function of beta and of the inner tolerance: complex synapse (lambda 0.5), tanh MLP
                    1-40-40-1, float64, few-shot sine (10 support, 10 query points), mean over
                    --quality-tasks tasks.
  memory_time       peak memory and seconds per meta-step, contrastive (free phase K steps, nudged phases
                    K/2 each, symmetric) vs unrolled backprop through K steps, K = 20, 50, 100, 200; conv
                    complex synapse on 5-way 1-shot Omniglot tasks. Each point runs in a fresh subprocess;
                    memory (memory_bytes) is the peak of the bytes autograd holds for backward at once:
                    every storage saved through torch.autograd.graph.saved_tensors_hooks is counted once
                    until the graph that holds it is freed. The rise of the resident set's high-water
                    mark (Linux VmHWM) is kept too, but the allocator reuses freed pages, so it mostly
                    shows noise. tracemalloc does not see torch's tensor allocations.
  fewshot_omniglot  5-way 1-shot Omniglot: the same conv complex synapse meta-trained on the background
                    classes by the contrastive rule and by unrolled backprop (same steps, meta-batch, inner
                    steps), tested on --eval-episodes evaluation-class tasks.
  continual         continual sine: a complex synapse meta-trained by the contrastive rule on sine tasks,
                    deployed with the ComplexSynapse strategy on the five problems of
                    benchmarks/continual_sine.py, beside FLP/OML/Naive/EWC/Replay from continual_sine.json.

    OMP_NUM_THREADS=1 python benchmarks/contrastive.py --data-root ../shared/data [--skip memory_time]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from avalanche_plasticity.contrastive import (
    BilevelMetaTrainConfig,
    CGConfig,
    ComplexSynapseConfig,
    ComplexSynapseLearner,
    ContrastiveConfig,
    InnerSolverError,
    SolverConfig,
    contrastive_meta_gradient,
    few_shot_accuracy,
    implicit_meta_gradient,
    meta_train_bilevel,
    tasks_from_episodes,
    unrolled_meta_gradient,
)
from avalanche_plasticity.reporting import machine, run_recorder, write_results

HERE = Path(__file__).resolve().parent
SECTIONS = ("gradient_quality", "memory_time", "fewshot_omniglot", "continual")
BETAS = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
TOLS = (1e-2, 1e-3, 1e-4, 1e-6, 1e-8)
INNER_STEPS = (20, 50, 100, 200)


def flat(grads: dict) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads.values()])


# ---------------------------------------------------------------------------------------------------
# (a) gradient quality
# ---------------------------------------------------------------------------------------------------
def gradient_quality(tasks: int, seed: int) -> dict:
    from avalanche_plasticity.scenarios.few_shot import FewShotSine

    learner = ComplexSynapseLearner(
        ComplexSynapseConfig(network={"kind": "mlp", "sizes": [1, 40, 40, 1]}, init_lambda=0.5, seed=seed)
    ).double()
    batch = FewShotSine(shots=10, query=10).sample(tasks, torch.Generator().manual_seed(seed))
    tasks_ = [t.__class__(*(v.double() for v in t.__dict__.values())) for t in tasks_from_episodes(batch)]
    # The reference gets 100k steps; each point of the sweep 20k (a large beta can leave a nudged phase
    # without a minimum: it is then reported as not converged).
    solver = lambda tol, steps=20_000: SolverConfig(lr=0.005, max_steps=steps, tol=tol, momentum=0.9)  # noqa: E731
    t0 = time.perf_counter()
    ref = flat(
        implicit_meta_gradient(
            learner, tasks_, solver(1e-10, 100_000), CGConfig(tol=1e-12, max_iters=2000)
        ).grads
    )
    out = {"reference": {"inner_tol": 1e-10, "cg_tol": 1e-12, "seconds": time.perf_counter() - t0}}
    for variant in ("one_sided", "symmetric"):
        by_beta = {}
        for beta in BETAS:
            by_beta[str(beta)] = {}
            for tol in TOLS:
                cfg = ContrastiveConfig(beta=beta, variant=variant, free=solver(tol))
                try:
                    est = flat(contrastive_meta_gradient(learner, tasks_, cfg).grads)
                except InnerSolverError as e:  # reported, not used: a large beta can make a phase diverge
                    by_beta[str(beta)][str(tol)] = {"not_converged": str(e)}
                    print(f"  {variant} beta={beta:g} tol={tol:g}: not converged", flush=True)
                    continue
                cos = float(torch.nn.functional.cosine_similarity(est, ref, dim=0))
                err = float((est - ref).norm() / ref.norm())
                by_beta[str(beta)][str(tol)] = {"cosine": cos, "relative_error": err}
                print(
                    f"  {variant} beta={beta:g} tol={tol:g}: cosine {cos:.6f}, rel. error {err:.3g}",
                    flush=True,
                )
        best = max((v["cosine"], b, t) for b, d in by_beta.items() for t, v in d.items() if "cosine" in v)
        out[variant] = {
            "best_cosine": best[0],
            "best_at": {"beta": float(best[1]), "tol": float(best[2])},
            "by_beta": by_beta,
        }
    return out


# ---------------------------------------------------------------------------------------------------
# (b) memory and time: one point per fresh process
# ---------------------------------------------------------------------------------------------------
def omniglot_learner(channels: int, seed: int = 0) -> ComplexSynapseLearner:
    return ComplexSynapseLearner(
        ComplexSynapseConfig(
            network={"kind": "conv", "channels": channels, "num_outputs": 5},
            task="classification",
            init_lambda=0.25,  # = the paper's lambda 0.5 with its 1/2 (our L_in has no 1/2)
            learn_lambda=False,
            seed=seed,
        )
    )


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_point(
    method: str, steps: int, data_root: str | None, channels: int, meta_batch: int, repeats: int
) -> dict:
    """Peak memory and seconds of one meta-step (run in a fresh process by :func:`memory_time`)."""
    torch.set_num_threads(1)
    from avalanche_plasticity.scenarios.few_shot import FewShotOmniglot

    src = FewShotOmniglot(ways=5, shots=1, query_shots=15, split="background", root=data_root)
    tasks = tasks_from_episodes(src.sample(meta_batch, torch.Generator().manual_seed(0)))
    learner = omniglot_learner(channels)
    solver = SolverConfig(lr=0.1, max_steps=steps, tol=None)

    def step():
        if method == "contrastive":
            nudged = SolverConfig(lr=0.1, max_steps=max(steps // 2, 1), tol=None)
            return contrastive_meta_gradient(
                learner, tasks, ContrastiveConfig(beta=0.1, free=solver, nudged=nudged)
            )
        return unrolled_meta_gradient(learner, tasks, solver)

    step()  # warm-up: allocator pools, lazy init
    saved = [0, 0]  # cumulative bytes saved for backward in one meta-step, and the largest such total
    live: dict[tuple[int, int], int] = {}  # storages saved for backward and still alive -> references
    held = [0, 0]  # bytes of those storages now, and at the peak

    class Saved:
        """What autograd keeps for backward; counted until the graph that holds it is freed."""

        __slots__ = ("t", "key")

        def __init__(self, t: torch.Tensor) -> None:
            self.t = t
            self.key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            if live.get(self.key, 0) == 0:
                held[0] += self.key[1]
                held[1] = max(held[1], held[0])
            live[self.key] = live.get(self.key, 0) + 1

        def __del__(self) -> None:
            live[self.key] -= 1
            if live[self.key] == 0:
                del live[self.key]
                held[0] -= self.key[1]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        saved[1] = max(saved[1], saved[0])
        return Saved(t)

    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set
    base = _rss_kib("VmRSS")
    times = []
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda h: h.t):
        for _ in range(repeats):
            saved[0] = 0
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    peak = _rss_kib("VmHWM")
    return {
        "peak_autograd_bytes": held[1],
        "peak_rss_increase_bytes": (peak - base) * 1024,
        "autograd_saved_bytes": saved[1],
        "seconds": statistics.median(times),
        "seconds_all": times,
    }


def memory_time(data_root, channels: int, meta_batch: int, repeats: int, record) -> dict:
    out = {
        "memory_bytes": {"contrastive": {}, "unrolled": {}},
        "autograd_saved_bytes": {"contrastive": {}, "unrolled": {}},
        "peak_rss_increase_bytes": {"contrastive": {}, "unrolled": {}},
        "seconds_per_meta_step": {"contrastive": {}, "unrolled": {}},
    }
    for steps in INNER_STEPS:
        for method in ("contrastive", "unrolled"):

            def run(method=method, steps=steps):
                cmd = [
                    sys.executable,
                    __file__,
                    "--_measure",
                    f"{method},{steps}",
                    "--channels",
                    str(channels),
                    "--mem-meta-batch",
                    str(meta_batch),
                    "--repeats",
                    str(repeats),
                ]
                if data_root:
                    cmd += ["--data-root", str(data_root)]
                env = {**os.environ, "OMP_NUM_THREADS": "1"}
                res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
                return json.loads(res.stdout.strip().splitlines()[-1])

            r = record("memory_time", f"{method}/{steps}", run)
            out["memory_bytes"][method][str(steps)] = r["peak_autograd_bytes"]
            out["peak_rss_increase_bytes"][method][str(steps)] = r["peak_rss_increase_bytes"]
            out["autograd_saved_bytes"][method][str(steps)] = r["autograd_saved_bytes"]
            out["seconds_per_meta_step"][method][str(steps)] = r["seconds"]
    return out


# ---------------------------------------------------------------------------------------------------
# (c) few-shot Omniglot: contrastive vs unrolled on the same network and budget
# ---------------------------------------------------------------------------------------------------
# Few-shot variants: name -> (estimator, inner solver). The contrastive rule needs an approximate
# equilibrium, so its inner loop is Nesterov momentum GD; the unrolled (MAML-style) baseline learns with
# plain SGD, as MAML does: back-propagating through 20 Nesterov steps gives a meta-gradient of norm ~1e3
# at initialisation, uncorrelated with the plain-SGD one (cosine -0.03), and that run did not meta-learn.
# It is kept as "unrolled_nesterov" for the record. Each variant is evaluated with its own inner loop.
FEWSHOT_VARIANTS = {
    "contrastive": ("contrastive", "nesterov"),
    "unrolled": ("unrolled", "sgd"),
    "unrolled_nesterov": ("unrolled", "nesterov"),
    # the contrastive rule with the baseline's plain-SGD inner loop: the same-inner-loop comparison
    "contrastive_sgd": ("contrastive", "sgd"),
    # a contrastive meta-step costs about twice an unrolled one here (free + two nudged phases): the
    # baseline again with twice the meta-updates, the same wall-clock time
    "unrolled_2x_updates": ("unrolled", "sgd"),
}
FEWSHOT_STEPS_FACTOR = {"unrolled_2x_updates": 2}


def fewshot_solver(args, inner: str, steps: int) -> SolverConfig:
    if inner == "sgd":
        return SolverConfig(lr=args.inner_lr, max_steps=steps, tol=None, momentum=0.0, nesterov=False)
    return SolverConfig(lr=args.inner_lr, max_steps=steps, tol=None)


def fewshot_config(variant: str, args) -> BilevelMetaTrainConfig:
    estimator, kind = FEWSHOT_VARIANTS[variant]
    inner = fewshot_solver(args, kind, args.inner_steps)
    nudged = fewshot_solver(args, kind, args.nudged_steps)
    return BilevelMetaTrainConfig(
        steps=args.meta_steps * FEWSHOT_STEPS_FACTOR.get(variant, 1),
        meta_batch_size=args.meta_batch,
        estimator=estimator,
        contrastive=ContrastiveConfig(beta=args.beta, variant="symmetric", free=inner, nudged=nudged),
        unrolled=inner,
        lr=args.outer_lr,
        grad_clip=None,
        checkpoint_every=10,
        seed=args.seed,
    )


def fewshot_run(variant: str, args, work: Path) -> dict:
    from avalanche_plasticity.scenarios.few_shot import FewShotOmniglot

    train_src = FewShotOmniglot(
        ways=5, shots=1, query_shots=args.query_shots, split="background", root=args.data_root
    )
    test_src = FewShotOmniglot(ways=5, shots=1, query_shots=15, split="evaluation", root=args.data_root)
    learner = omniglot_learner(args.channels, args.seed)
    cfg = fewshot_config(variant, args)
    ck = work / f"fewshot5w1s_{variant}_c{args.channels}_s{args.seed}.pt"
    t0 = time.perf_counter()
    res = meta_train_bilevel(
        learner,
        train_src,
        cfg,
        checkpoint=ck,
        on_step=lambda s, r: (
            print(
                f"  [{variant}] step {s}: query loss {r['meta_loss']:.3f} ({r['seconds']:.1f} s)",
                flush=True,
            )
            if s % 10 == 0
            else None
        ),
    )
    train_seconds = time.perf_counter() - t0
    solver = fewshot_solver(args, FEWSHOT_VARIANTS[variant][1], args.inner_steps)
    acc = few_shot_accuracy(learner, test_src, args.eval_episodes, solver, seed=10_000 + args.seed)
    before = few_shot_accuracy(
        omniglot_learner(args.channels, args.seed),
        test_src,
        args.eval_episodes,
        solver,
        seed=10_000 + args.seed,
    )
    hist = res.history
    return {
        "mean": statistics.mean(acc),
        "std": statistics.stdev(acc),
        "ci95": 1.96 * statistics.stdev(acc) / math.sqrt(len(acc)),
        "episodes": len(acc),
        "before_meta_training": statistics.mean(before),
        "meta_train_seconds_this_session": train_seconds,
        "seconds_per_meta_step": statistics.median(h["seconds"] for h in hist),
        "meta_loss_first_10": statistics.mean(h["meta_loss"] for h in hist[:10]),
        "meta_loss_last_10": statistics.mean(h["meta_loss"] for h in hist[-10:]),
    }


# ---------------------------------------------------------------------------------------------------
# (d) continual sine: the complex-synapse strategy beside FLP and OML
# ---------------------------------------------------------------------------------------------------
CONTINUAL_SINE = {
    "network": "MLP 11-64-64-64-1, ReLU (the FLP/OML cpu sine size)",
    "meta_training": "contrastive, symmetric, beta 0.05; free phase 30 GD steps, nudged 15 (lr 0.02); 300 "
    "meta-updates of 4 tasks; a task = 10 sine functions x 4 minibatches of 8 (support), 16 query"
    " points each",
    "deployment": "ComplexSynapse strategy: one SGD step (lr 0.05) of the inner loss per minibatch of 8",
    "problems": 5,
}


def continual_sine(args, work: Path) -> dict:
    """Meta-train a complex synapse with the contrastive rule on sine tasks, then run it on the continual
    sine benchmark's problems (seeds 0-4, the ones ``benchmarks/continual_sine.py`` uses) and read FLP's
    and OML's figures from ``continual_sine.json``."""
    from avalanche.training.plugins import EvaluationPlugin

    from avalanche_plasticity.experiments import run_stream
    from avalanche_plasticity.metrics import mse_metrics
    from avalanche_plasticity.scenarios import IncrementalSine
    from avalanche_plasticity.strategies.contrastive import ComplexSynapse
    from avalanche_plasticity.tasks import SineTaskSource

    source = SineTaskSource(
        functions_per_episode=10, batches_per_function=4, batch_size=8, query_per_function=16
    )
    inner = SolverConfig(lr=0.02, max_steps=30, tol=None)
    learner = ComplexSynapseLearner(
        ComplexSynapseConfig(
            network={"kind": "mlp", "sizes": [11, 64, 64, 64, 1], "activation": "relu"},
            init_lambda=1e-3,
            inner_lr=0.05,
            seed=args.seed,
        )
    )
    cfg = BilevelMetaTrainConfig(
        steps=300,
        meta_batch_size=4,
        estimator="contrastive",
        lr=3e-3,
        contrastive=ContrastiveConfig(
            beta=0.05,
            variant="symmetric",
            free=inner,
            nudged=SolverConfig(lr=0.02, max_steps=15, tol=None),
            on_nonconvergence="skip",  # a diverged nudged phase drops its task (counted), not the run
        ),
        unrolled=inner,
        checkpoint_every=25,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    meta_train_bilevel(
        learner, source, cfg, checkpoint=work / f"continual_sine_complex_synapse_s{args.seed}.pt"
    )
    meta_seconds = time.perf_counter() - t0
    curves = []
    for r in range(CONTINUAL_SINE["problems"]):
        torch.manual_seed(r)
        strategy = ComplexSynapse(
            learner=learner,
            train_mb_size=8,
            eval_mb_size=256,
            evaluator=EvaluationPlugin(*mse_metrics(stream=True, experience=True), loggers=[]),
        )
        curve = run_stream(strategy, IncrementalSine(seed=r), metric="MSE_Stream")
        curves.append([curve[k] for k in sorted(curve)])
    finals = [c[-1] for c in curves]
    out = {
        "settings": CONTINUAL_SINE,
        "ComplexSynapse": {
            "final_mse": {
                "mean": statistics.mean(finals),
                "std": statistics.pstdev(finals),
                "runs": len(finals),
            },
            "mse_after_each_function": [statistics.mean(c[i] for c in curves) for i in range(len(curves[0]))],
            "meta_train_seconds": meta_seconds,
        },
    }
    ref = HERE / "results" / "continual_sine.json"
    if ref.exists():  # the same five problems, from the continual-sine benchmark
        for name, r in json.loads(ref.read_text())["results"].items():
            out[name] = {"final_mse": r["final_mse"], "from": "benchmarks/results/continual_sine.json"}
    return out


CONTINUAL_OMNIGLOT = {
    "network": "the few-shot conv complex synapse (32 channels, lambda 0.25 fixed, omega meta-learned) "
    "with a 200-unit head",
    "meta_training": "contrastive, symmetric, beta 0.1; free phase 20 steps (SGD Nesterov 0.1), nudged 10; "
    "100 meta-updates of 4 tasks; a task = 10 background classes x 5 images mapped to random units of the "
    "head (as FLP/OML meta-train), 5 query images per class",
    "deployment": "ComplexSynapse strategy on ContinualOmniglot: 50 evaluation classes, one class per "
    "experience, one pass at batch size 1, SGD on the inner loss; the lr picked from lr_grid on class "
    "order 10000 as for the baselines; also with Avalanche's ReplayPlugin (replay_mem_size)",
    "lr_grid": [0.001, 0.003, 0.01, 0.03, 0.1],
    "replay_mem_size": 200,
    "norm": "layer (per-example GroupNorm(1, C)): batch-statistics BN at batch size 1 normalises each "
    "image alone, unlike batched evaluation",
    "runs": 5,
    "classes": 50,
}


def continual_omniglot(args, work: Path) -> dict:
    """The complex synapse on the continual Omniglot stream (50 classes, the OML protocol) beside FLP and
    OML from ``continual_omniglot.json``."""
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin

    from avalanche_plasticity.experiments import run_stream
    from avalanche_plasticity.scenarios import ContinualOmniglot, omniglot_meta_train_source
    from avalanche_plasticity.strategies.contrastive import ComplexSynapse

    source = omniglot_meta_train_source(ways=10, shots=5, query_shots=5, num_units=200, root=args.data_root)
    learner = ComplexSynapseLearner(
        ComplexSynapseConfig(
            network={"kind": "conv", "channels": args.channels, "num_outputs": 200, "norm": "layer"},
            task="classification",
            init_lambda=0.25,
            learn_lambda=False,
            inner_lr=0.01,
            seed=args.seed,
        )
    )
    inner = SolverConfig(lr=args.inner_lr, max_steps=args.inner_steps, tol=None)
    cfg = BilevelMetaTrainConfig(
        steps=100,
        meta_batch_size=4,
        estimator="contrastive",
        lr=args.outer_lr,
        contrastive=ContrastiveConfig(
            beta=args.beta,
            variant="symmetric",
            free=inner,
            nudged=SolverConfig(lr=args.inner_lr, max_steps=args.nudged_steps, tol=None),
            on_nonconvergence="skip",
        ),
        unrolled=inner,
        grad_clip=None,
        checkpoint_every=10,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    meta_train_bilevel(
        learner,
        source,
        cfg,
        checkpoint=work / f"continual_omniglot_complex_synapse_layernorm_c{args.channels}_s{args.seed}.pt",
        on_step=lambda s, r: (
            print(f"  [continual omniglot] step {s}: {r['meta_loss']:.3f}", flush=True)
            if s % 10 == 0
            else None
        ),
    )
    meta_seconds = time.perf_counter() - t0
    n = CONTINUAL_OMNIGLOT["classes"]

    def run(order_seed: int, lr: float, replay: bool) -> float:
        torch.manual_seed(order_seed)
        strategy = ComplexSynapse(
            learner=learner,
            lr=lr,
            train_mb_size=1,
            eval_mb_size=256,
            plugins=[ReplayPlugin(mem_size=CONTINUAL_OMNIGLOT["replay_mem_size"])] if replay else None,
            evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]),
        )
        bm = ContinualOmniglot(num_classes=n, classes_per_experience=1, seed=order_seed, root=args.data_root)
        return run_stream(strategy, bm, eval_after=[n])[n]

    out: dict[str, Any] = {"settings": CONTINUAL_OMNIGLOT}
    for name, replay in (("ComplexSynapse", False), ("ComplexSynapse+Replay", True)):
        # the lr is picked as for the baselines of continual_omniglot.py: on class order 10000
        scores = {lr: run(10_000, lr, replay) for lr in CONTINUAL_OMNIGLOT["lr_grid"]}
        lr = max(scores, key=scores.get)
        finals = [run(r, lr, replay) for r in range(CONTINUAL_OMNIGLOT["runs"])]
        print(f"  [continual omniglot] {name}: lr {lr} (validation {scores}): {finals}", flush=True)
        out[name] = {
            str(n): {"mean": statistics.mean(finals), "std": statistics.pstdev(finals), "runs": len(finals)},
            "lr": lr,
            "validation_accuracy_by_lr": {str(k): v for k, v in scores.items()},
            "meta_train_seconds": meta_seconds,
        }
    ref = HERE / "results" / "continual_omniglot.json"
    if ref.exists():
        for name, r in json.loads(ref.read_text())["results"].items():
            if str(n) in r:
                out[name] = {str(n): r[str(n)], "from": "benchmarks/results/continual_omniglot.json"}
    return out


# The config keys each section's results depend on (a change reruns only those sections).
_GQ_KEYS = {"seed", "quality_tasks", "betas", "tols"}
_MT_KEYS = {"channels", "mem_meta_batch", "repeats", "inner_steps_sweep"}


_SHARED = {"seed", "channels", "threads", "inner_lr", "inner_steps", "nudged_steps", "outer_lr", "beta"}
_FS_KEYS = _SHARED | {
    "meta_steps",
    "meta_batch",
    "query_shots",
    "eval_episodes",
    "fewshot_network",
    "fewshot_steps_factor",
}
_CONT_KEYS = _SHARED | {"continual_sine", "continual_omniglot"}


def section_keys(section: str, config: dict) -> set[str]:
    keys = {
        "gradient_quality": _GQ_KEYS,
        "memory_time": _MT_KEYS,
        "fewshot_omniglot": _FS_KEYS | {"fewshot_inner"},
        "continual": _CONT_KEYS,
    }[section]
    unassigned = set(config) - _GQ_KEYS - _MT_KEYS - _FS_KEYS - _CONT_KEYS - {"fewshot_inner"}
    return keys | unassigned  # a key no section claims reruns every section that reads the config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None, help="holds Omniglot (default: $AVP_DATA_DIR)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quality-tasks", type=int, default=2)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--mem-meta-batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--meta-steps", type=int, default=300)
    p.add_argument("--meta-batch", type=int, default=8)
    p.add_argument("--inner-steps", type=int, default=20)
    p.add_argument("--nudged-steps", type=int, default=10)
    p.add_argument("--inner-lr", type=float, default=0.1)
    p.add_argument("--outer-lr", type=float, default=3e-3)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--query-shots", type=int, default=5)
    p.add_argument("--eval-episodes", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip", default="", help=f"comma-separated sections to skip: {','.join(SECTIONS)}")
    p.add_argument("--fresh", action="store_true", help="ignore finished runs in the output file")
    p.add_argument(
        "--work-dir", default=str(Path.home() / ".cache" / "avalanche_plasticity" / "contrastive_bench")
    )
    p.add_argument("--out", default=str(HERE / "results" / "contrastive.json"))
    p.add_argument("--_measure", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args._measure:
        method, steps = args._measure.split(",")
        print(
            json.dumps(
                measure_point(
                    method, int(steps), args.data_root, args.channels, args.mem_meta_batch, args.repeats
                )
            )
        )
        return
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(SECTIONS):
        p.error(f"--skip: unknown {sorted(skip - set(SECTIONS))}; sections: {', '.join(SECTIONS)}")
    config = {
        k: v
        for k, v in vars(args).items()
        if k not in ("out", "fresh", "skip", "work_dir", "_measure", "data_root")
    }
    config.update(
        betas=list(BETAS),
        tols=list(TOLS),
        inner_steps_sweep=list(INNER_STEPS),
        fewshot_network="conv 4 blocks (3x3, BN batch stats, ReLU, max-pool x3), complex synapse, "
        "lambda 0.25 fixed, omega meta-learned",
        fewshot_inner={k: v[1] for k, v in FEWSHOT_VARIANTS.items()},
        fewshot_steps_factor=FEWSHOT_STEPS_FACTOR,
        continual_sine=CONTINUAL_SINE,
        continual_omniglot=CONTINUAL_OMNIGLOT,
    )
    out = Path(args.out)
    payload = json.loads(out.read_text()) if out.exists() and not args.fresh else {}
    if payload and payload.get("config") != config:
        old = payload.get("config", {})
        changed = {k for k in set(old) | set(config) if old.get(k) != config.get(k)}
        for section in SECTIONS:
            if changed & section_keys(section, config) and section in payload.get("runs", {}):
                print(f"{section}: config changed ({', '.join(sorted(changed))}): rerunning it", flush=True)
                del payload["runs"][section]
    payload.update(config=config, machine=machine())
    payload.setdefault("runs", {})
    payload.setdefault("fewshot_omniglot", {})

    record = run_recorder(payload, out)

    if "gradient_quality" not in skip:
        q = record("gradient_quality", "sine_mlp", lambda: gradient_quality(args.quality_tasks, args.seed))
        payload["gradient_quality"] = {k: q[k] for k in ("one_sided", "symmetric", "reference")}
    if "memory_time" not in skip:
        payload.update(memory_time(args.data_root, args.channels, args.mem_meta_batch, args.repeats, record))
    if "fewshot_omniglot" not in skip:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        fs = payload["fewshot_omniglot"].setdefault("5w1s", {})
        for variant in FEWSHOT_VARIANTS:
            fs[variant] = record(
                "fewshot_omniglot", f"5w1s/{variant}", lambda v=variant: fewshot_run(v, args, work)
            )
        fs["gap_points"] = 100 * (fs["unrolled"]["mean"] - fs["contrastive"]["mean"])
        fs["gap_points_same_inner_loop"] = 100 * (fs["unrolled"]["mean"] - fs["contrastive_sgd"]["mean"])
    if "continual" not in skip:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        payload["continual"] = {
            "sine": record("continual", "sine", lambda: continual_sine(args, work)),
            "omniglot": record("continual", "omniglot", lambda: continual_omniglot(args, work)),
        }
    write_results(payload, out)
    print(
        json.dumps(
            {k: payload.get(k) for k in ("memory_bytes", "seconds_per_meta_step", "fewshot_omniglot")},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
