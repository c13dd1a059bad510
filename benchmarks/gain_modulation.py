"""Gain modulation (Zucchet et al. 2022) in ``compare``: tuning of its contrastive meta-training and
deployment, and its figures beside Naive (and the complex synapse) on the comparison streams (issue #15).

Sections (resumable: finished entries are kept in the JSON and not redone unless --fresh; meta-training
checkpoints to --work-dir and resumes):

  tune_sine      the grid GRIDS["sine"] on the quick scale's episodes (OML's, 10 functions x 10 minibatches
                 of 8): each candidate meta-trained for --tune-steps meta-updates (seed 0), its meta-loss
                 by fifths of the run, then deployed on the quick comparison stream at the validation seed
                 10000 with every deployment lr of LR_GRID["sine"] (final MSE, diverged or not).
  tune_omniglot  the same on Omniglot's cpu episodes (10-way 5-shot, a 200-unit head), --tune-steps-omniglot
                 meta-updates, deployed on the 50-class comparison stream at class order 10000.
  final          the shipped preset (avalanche_plasticity/catalog/gain_modulation.py) through
                 ``run_comparison`` on stream seeds 0, 1, 2 beside Naive (and ComplexSynapse on sine): sine
                 quick, then Omniglot cpu; mean and std of the final metric, divergences counted.

    OMP_NUM_THREADS=1 python benchmarks/gain_modulation.py [--skip tune_omniglot] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import avalanche_plasticity.catalog.gain_modulation as gm
from avalanche_plasticity.configs import StreamConfig, configure
from avalanche_plasticity.contrastive import GainModulationLearner, load_bilevel_learner, meta_train_bilevel
from avalanche_plasticity.experiments import run_comparison, task_source
from avalanche_plasticity.reporting import machine, write_results

HERE = Path(__file__).resolve().parent
SECTIONS = ("tune_sine", "tune_omniglot", "final")
VALIDATION_SEED = 10_000
SEEDS = (0, 1, 2)
SCALE = {"sine": "quick", "omniglot": "cpu"}
# Candidates: overrides of gm.SETTINGS[scenario] (the first is the complex synapse's settings there).
GRIDS: dict[str, dict[str, dict[str, Any]]] = {
    "sine": {
        "cs_settings": dict(reg_strength=0.1, beta=0.05, solver_lr=0.02, free=30, nudged=15, meta_lr=3e-3),
        "meta_lr_1e-3": dict(reg_strength=0.1, beta=0.05, solver_lr=0.02, free=30, nudged=15, meta_lr=1e-3),
        "reg_0.01": dict(reg_strength=0.01, beta=0.05, solver_lr=0.02, free=30, nudged=15, meta_lr=1e-3),
        "reg_1": dict(reg_strength=1.0, beta=0.05, solver_lr=0.02, free=30, nudged=15, meta_lr=1e-3),
        "beta_0.1_solver_0.05": dict(
            reg_strength=0.1, beta=0.1, solver_lr=0.05, free=30, nudged=15, meta_lr=1e-3
        ),
        "free_60_nudged_30": dict(
            reg_strength=0.1, beta=0.05, solver_lr=0.02, free=60, nudged=30, meta_lr=1e-3
        ),
        "steps_200": dict(
            reg_strength=0.1, beta=0.05, solver_lr=0.02, free=30, nudged=15, meta_lr=1e-3, steps=200
        ),
        "preset": {},
    },
    "omniglot": {"preset": {}},
}
LR_GRID = {"sine": (0.003, 0.01, 0.03, 0.1), "omniglot": (1e-4, 3e-4, 0.001, 0.01, 0.1)}
DIVERGED_MSE = 100.0  # a sine MSE above this (or not finite) counts as diverged


def fifths(values: list[float]) -> list[float]:
    """Means of ``values`` over five consecutive equal parts (the meta-loss's trend)."""
    n = len(values)
    return [statistics.mean(values[i * n // 5 : max((i + 1) * n // 5, i * n // 5 + 1)]) for i in range(5)]


def steady(parts: list[float]) -> bool:
    """The meta-loss goes down steadily: every fifth's mean below the one before."""
    return all(parts[i + 1] < parts[i] for i in range(len(parts) - 1))


def diverged(scenario: str, curve: dict) -> bool:
    vals = list(curve.values())
    if not all(math.isfinite(v) for v in vals):
        return True
    return scenario == "sine" and max(vals) > DIVERGED_MSE


def deploy(scenario: str, learner: Any, lr: float, seeds, root, work: Path, presets=None) -> dict[int, dict]:
    """The learner deployed with SGD at ``lr`` on the scenario's comparison stream at ``seeds``."""
    if presets is None:
        presets, _ = configure(scenario, SCALE[scenario])
    comp = run_comparison(
        scenario,
        strategies=(gm.NAME,),
        seeds=tuple(seeds),
        scale=SCALE[scenario],
        learners={gm.NAME: learner},
        learner_presets=presets,
        stream=StreamConfig(lr={gm.NAME: lr}),
        checkpoint_dir=work,
        root=root,
        progress=False,
        shipped=False,
    )
    return {r.seed: {str(k): v for k, v in r.curve.items()} for r in comp.runs}


def tune_checkpoint(work: Path, scenario: str, name: str, steps: int) -> Path:
    return work / f"tune_{scenario}_{name}_steps{steps}.pt"


def tune(scenario: str, name: str, over: dict, steps: int | None, args, work: Path) -> dict:
    """Meta-train one candidate (``steps`` None: the preset's) and deploy it at the validation seed."""
    p = gm.preset(scenario, SCALE[scenario], over)
    p.meta.steps = steps = over.get("steps", steps) or p.meta.steps
    p.meta.checkpoint_every = 5
    learner = GainModulationLearner(p.learner_config)
    source = task_source(scenario, p, args.data_root)
    t0 = time.perf_counter()
    res = meta_train_bilevel(
        learner,
        source,
        p.meta,
        checkpoint=tune_checkpoint(work, scenario, name, steps),
        on_step=lambda s, r: (
            print(f"  [{scenario} {name}] step {s}: meta-loss {r['meta_loss']:.4f}", flush=True)
            if s % 10 == 0
            else None
        ),
    )
    losses = [h["meta_loss"] for h in res.history]
    parts = fifths(losses)
    out: dict[str, Any] = {
        "settings": {**gm.SETTINGS[scenario], **over, "steps": steps},
        "meta_train_seconds": time.perf_counter() - t0,
        "meta_loss_by_fifth": parts,
        "meta_loss_steady": steady(parts),
        "tasks_skipped": sum(h["tasks_skipped"] for h in res.history),
        "validation": {},
    }
    presets, _ = configure(scenario, SCALE[scenario])
    for lr in LR_GRID[scenario]:
        curve = deploy(scenario, learner, lr, (VALIDATION_SEED,), args.data_root, work, presets)[
            VALIDATION_SEED
        ]
        final = curve[max(curve, key=int)]
        out["validation"][str(lr)] = {"final": final, "diverged": diverged(scenario, curve)}
        print(f"  [{scenario} {name}] lr {lr}: final {final:.4f}", flush=True)
    return out


def final(scenario: str, strategies: tuple[str, ...], args, work: Path, scale: str | None = None) -> dict:
    """The shipped preset (and ``strategies``' own presets) through ``run_comparison`` on SEEDS."""
    t0 = time.perf_counter()
    # The preset's learner as meta-trained by the "preset" candidate (same settings and steps, seed 0) is
    # deployed instead of meta-training it again, at the preset's deployment lr.
    scale = scale or SCALE[scenario]
    p = gm.preset(scenario, scale)
    learners = {}
    path = tune_checkpoint(work, scenario, "preset", p.meta.steps)
    if scale != SCALE[scenario]:  # the tuning ran at SCALE's episodes only
        path = work / "none"
    if path.exists() and torch.load(path, weights_only=False)["step"] == p.meta.steps:  # finished
        learner = load_bilevel_learner(path)
        learner.config = dataclasses.replace(learner.config, inner_lr=p.learner_config.inner_lr)
        if learner.config != p.learner_config:
            raise ValueError(f"{path} was not made with the preset's learner config")
        learners[gm.NAME] = learner
    comp = run_comparison(
        scenario,
        strategies=strategies,
        learners=learners,
        seeds=SEEDS,
        scale=scale,
        checkpoint_dir=work,
        root=args.data_root,
        run_cache=work / f"runs_{scenario}",
        progress=False,
        shipped=False,
    )
    out: dict[str, Any] = {"scale": scale, "seeds": list(SEEDS), "preset": gm.SETTINGS[scenario]}
    for name in strategies:
        runs = [r for r in comp.runs if r.strategy == name]
        finals = [r.final for r in runs]
        out[name] = {
            "final": {"mean": statistics.mean(finals), "std": statistics.pstdev(finals), "runs": finals},
            "diverged_runs": sum(diverged(scenario, r.curve) for r in runs),
            "lr": runs[0].config.get("lr"),
            "curve_mean": {str(k): statistics.mean(r.curve[k] for r in runs) for k in sorted(runs[0].curve)},
        }
        print(f"  [final {scenario}] {name}: {out[name]['final']}", flush=True)
    if gm.NAME in strategies:
        ckpt = path if path.exists() else next(work.glob(f"{scenario}_{gm.NAME}_{scale}_*.pt"), None)
        if ckpt is not None:
            hist = [h["meta_loss"] for h in torch.load(ckpt, weights_only=False)["history"]]
            out[gm.NAME]["meta_loss_by_fifth"] = fifths(hist)
            out[gm.NAME]["meta_loss_steady"] = steady(fifths(hist))
    ref = HERE / "results" / "compare_all.json"  # the complex synapse on the same stream and seeds
    if scenario == "sine" and "ComplexSynapse" not in strategies and ref.exists():
        saved = json.loads(ref.read_text())
        if saved["config"]["scale"] == scale and saved["config"]["seeds"] == list(SEEDS):
            r = saved["results"]["ComplexSynapse"]
            out["ComplexSynapse"] = {
                "final": {"mean": r["final_mse"], "std": r["final_mse_std"]},
                "from": "benchmarks/results/compare_all.json",
            }
    out["seconds"] = time.perf_counter() - t0
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None, help="holds Omniglot (default: $AVP_DATA_DIR)")
    p.add_argument("--tune-steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--complex-synapse", action="store_true", help="run ComplexSynapse in the sine final")
    p.add_argument("--skip", default="", help=f"comma-separated sections to skip: {','.join(SECTIONS)}")
    p.add_argument("--only", default="", help="comma-separated keys to run (e.g. a grid candidate)")
    p.add_argument("--fresh", action="store_true", help="ignore finished runs in the output file")
    p.add_argument(
        "--work-dir", default=str(Path.home() / ".cache" / "avalanche_plasticity" / "gain_modulation_bench")
    )
    p.add_argument("--out", default=str(HERE / "results" / "gain_modulation.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    skip = {s for s in args.skip.split(",") if s}
    only = {s for s in args.only.split(",") if s}
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    payload = json.loads(out.read_text()) if out.exists() and not args.fresh else {}
    payload.update(
        machine=machine(),
        machine_note="2-core CPU, shared with other jobs, one thread (torch.set_num_threads(1))",
        config={
            "tune_steps": args.tune_steps,
            "grids": GRIDS,
            "lr_grid": LR_GRID,
            "validation_seed": VALIDATION_SEED,
            "seeds": list(SEEDS),
            "scales": SCALE,
        },
    )

    def record(section: str, key: str, fn) -> Any:
        """As ``reporting.run_recorder``, but merged into the file as it is on disk when written, so that
        two processes (e.g. ``--only`` the sine and the Omniglot candidates) can fill one results file."""
        done = payload.setdefault("runs", {}).setdefault(section, {})
        if key in done:
            return done[key]
        start = time.perf_counter()
        result = fn()
        result.setdefault("wall_seconds", time.perf_counter() - start)
        print(f"[{section}] {key}: done in {result['wall_seconds']:.0f} s", flush=True)
        latest = json.loads(out.read_text()) if out.exists() else {}
        for sec, entries in latest.get("runs", {}).items():
            for k, v in entries.items():
                payload["runs"].setdefault(sec, {}).setdefault(k, v)
        done[key] = result
        write_results(payload, out)
        return result

    wanted = lambda key: not only or key in only  # noqa: E731
    for scenario, steps in (("sine", args.tune_steps), ("omniglot", None)):
        if f"tune_{scenario}" in skip:
            continue
        for name, over in GRIDS[scenario].items():
            old = payload.get("runs", {}).get(f"tune_{scenario}", {}).get(name)
            if old is not None and set(old["validation"]) != {str(lr) for lr in LR_GRID[scenario]}:
                del payload["runs"][f"tune_{scenario}"][name]  # the lr grid grew: redeploy (meta-training
                # resumes from its finished checkpoint)
            if wanted(name):
                record(
                    f"tune_{scenario}",
                    name,
                    lambda n=name, o=over, s=None if name == "preset" else steps, sc=scenario: tune(
                        sc, n, o, s, args, work
                    ),
                )
    if "final" not in skip:
        sine_strategies = (gm.NAME, "Naive", *(("ComplexSynapse",) if args.complex_synapse else ()))
        for scenario, strategies in (("sine", sine_strategies), ("omniglot", (gm.NAME, "Naive"))):
            if wanted(f"final_{scenario}"):
                record("final", scenario, lambda sc=scenario, st=strategies: final(sc, st, args, work))
        if wanted("final_sine_cpu"):  # the cpu scale's preset (same settings, 10 x 40 minibatches), untuned
            record("final", "sine_cpu", lambda: final("sine", (gm.NAME, "Naive"), args, work, "cpu"))
    write_results(payload, out)


if __name__ == "__main__":
    main()
