"""Time the main job: ``avalanche-plasticity compare`` with no arguments, on a fresh clone.

Clones the repository that holds this script at its last commit, installs the clone (``pip install
--no-deps --no-build-isolation --target``, so the package and its shipped learners come from the clone's
files, as a user's install would), and runs its console script in an empty working folder: no
checkpoint and no finished run to reuse; the learners shipped for the default presets are loaded. W&B runs
in its default mode (offline without credentials). ``seconds`` is the wall time of that command alone
(start-up, loading or meta-training the learners, the five strategies, the files, the plots and W&B);
cloning and installing are not counted.

    python benchmarks/compare_default.py      # -> benchmarks/results/compare_default.json
    python benchmarks/compare_default.py --no-clone       # this checkout's installed package instead

With ``--strategies`` (and ``--seeds``) it times that comparison instead, e.g. every learner of the
package side by side on the default stream:

    python benchmarks/compare_default.py --strategies FLP OML Naive EWC Replay ComplexSynapse \\
        GainModulation Naive+fa Naive+sa EWC+sa Replay+sa --seeds 0 1 2 \\
        --out benchmarks/results/compare_all.json

``--tune-lr`` picks the baselines' SGD rates as ``benchmarks/continual_sine.py`` does, on validation
problems: every rate of ``LR_GRID`` on the default job's stream at the validation stream seeds 10000-10002
(disjoint from the evaluation seeds 0-4; continual_sine.py uses 10000 alone), the lowest mean final MSE
wins, a rate that diverges on any of them is out; it prints them for ``catalog/sine.py``'s ``default_lr``
and records the scores under ``lr_validation`` in the ``--out`` file (kept when the job is timed again).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from avalanche_plasticity.reporting import cpu_name

HERE = Path(__file__).resolve().parent
LR_GRID = (0.001, 0.003, 0.01, 0.03)  # benchmarks/continual_sine.py's grid
VALIDATION_SEEDS = (10_000, 10_001, 10_002)  # continual_sine.py's validation problem, and two more
TUNED = ("Naive", "EWC", "Replay")


def tune_lr(out: Path) -> dict[str, float]:
    """The baselines' rates picked on the validation stream of the default job (see the module doc)."""
    from avalanche_plasticity.configs import StreamConfig
    from avalanche_plasticity.experiments import run_comparison

    finals: dict[str, dict[float, list[float]]] = {name: {lr: [] for lr in LR_GRID} for name in TUNED}
    for lr in LR_GRID:
        comparison = run_comparison(
            strategies=TUNED,
            seeds=VALIDATION_SEEDS,
            stream=StreamConfig(lr={name: lr for name in TUNED}),
            progress=False,
        )
        for run in comparison.runs:
            finals[run.strategy][lr].append(run.final)
    scores = {n: {lr: sum(v) / len(v) for lr, v in by_lr.items()} for n, by_lr in finals.items()}
    chosen = {}
    for name, by_lr in scores.items():
        finite = {lr: v for lr, v in by_lr.items() if math.isfinite(v)}
        chosen[name] = min(finite, key=finite.get) if finite else LR_GRID[0]
        print(f"[lr] {name}: validation final MSE {by_lr} -> lr {chosen[name]}")
    record = {
        "procedure": f"compare's default stream at the validation stream seeds {list(VALIDATION_SEEDS)}, "
        f"every rate of {list(LR_GRID)}, lowest mean final MSE (a rate diverging on any seed is out)",
        "mean_final_mse": {n: {str(lr): v for lr, v in s.items()} for n, s in scores.items()},
        "final_mse": {n: {str(lr): v for lr, v in s.items()} for n, s in finals.items()},
        "chosen": chosen,
    }
    data = json.loads(out.read_text()) if out.is_file() else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**data, "lr_validation": record}, indent=2) + "\n")
    print(f"wrote lr_validation to {out}")
    return chosen


def install_fresh_clone(tmp: Path) -> tuple[list[str], dict[str, str], str]:
    """Clone this repository at HEAD into ``tmp`` and install it there; returns the console script's
    command, its environment and a description."""
    top = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
    ).stdout.strip()
    commit = subprocess.run(
        ["git", "-C", top, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    clone, site = tmp / "clone", tmp / "site"
    subprocess.run(["git", "clone", "--quiet", top, str(clone)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--target", str(site), str(clone)],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    check = subprocess.run(
        [sys.executable, "-c", "import avalanche_plasticity.pretrained as p; print(p.FOLDER)"],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not check.startswith(str(site)):
        sys.exit(f"the fresh install is shadowed: avalanche_plasticity.pretrained comes from {check}")
    how = (
        f"fresh clone of {commit[:12]} installed with pip --no-deps --target (dependencies from "
        f"{Path(sys.executable).parent.parent.name}), run in an empty folder"
    )
    return [sys.executable, "-m", "avalanche_plasticity.cli"], env, how


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(HERE / "results" / "compare_default.json"))
    p.add_argument("--keep", default=None, help="copy the command's output folder here")
    p.add_argument("--strategies", nargs="+", default=None, help="compare these (default: no arguments)")
    p.add_argument("--seeds", nargs="+", default=None, help="stream seeds (with --strategies)")
    p.add_argument("--no-clone", action="store_true", help="run this checkout's installed console script")
    p.add_argument(
        "--tune-lr", action="store_true", help="pick the baselines' rates on the validation stream"
    )
    args = p.parse_args()
    if args.tune_lr:
        tune_lr(Path(args.out))
        return
    extra = ["--strategies", *args.strategies] if args.strategies else []
    extra += ["--seeds", *args.seeds] if args.seeds else []
    with tempfile.TemporaryDirectory() as tmp:
        if args.no_clone:
            exe = shutil.which("avalanche-plasticity", path=str(Path(sys.executable).parent))
            cmd, env, how = (
                [exe or "avalanche-plasticity"],
                None,
                "this checkout's install, in an empty folder",
            )
        else:
            cmd, env, how = install_fresh_clone(Path(tmp))
        work = Path(tmp) / "work"
        work.mkdir()
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*cmd, *(["compare", *extra] if extra else [])], cwd=work, env=env, capture_output=True, text=True
        )
        seconds = time.perf_counter() - t0
        sys.stderr.write(proc.stderr[-2000:])
        print(proc.stdout)
        if proc.returncode:
            sys.exit(f"avalanche-plasticity compare failed with exit status {proc.returncode}")
        folder = work / "results" / "compare" / "sine"
        results = json.loads((folder / "results.json").read_text())
        if args.keep:
            shutil.copytree(folder, args.keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("wandb"))
    out = {
        "command": " ".join(["avalanche-plasticity compare", *extra]),
        "how": how,
        "seconds": seconds,
        "comparison_seconds": results["seconds"],
        "machine": f"{cpu_name()}, {os.cpu_count()} CPU cores; {results['machine']}",
        "load_average": os.getloadavg(),
        "shipped": [line for line in proc.stdout.splitlines() if line.startswith("using shipped")],
        "config": results["config"],
        "results": {
            name: {
                "final_mse": r["final_mse"],
                "final_mse_std": r.get("final_mse_std", 0.0),
                "mse_after_each_function": list(r["curve"].values()),
            }
            for name, r in results["results"].items()
        },
        "table": proc.stdout[proc.stdout.index("MSE on") : proc.stdout.index("\n\n", proc.stdout.index("|"))],
    }
    path = Path(args.out)
    if path.is_file() and "lr_validation" in json.loads(path.read_text()):
        out["lr_validation"] = json.loads(path.read_text())["lr_validation"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{seconds:.0f} s wall ({how}); wrote {path}")


if __name__ == "__main__":
    main()
