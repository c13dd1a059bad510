"""Time the main job: ``avalanche-plasticity compare`` with no arguments, from scratch.

Runs the console script in a fresh temporary working folder (so FLP and OML are meta-trained from scratch:
no checkpoint and no finished run to reuse), with W&B in its default mode (offline without credentials).
The wall time includes start-up, meta-training, the five strategies, the files, the plots and W&B.

    python benchmarks/compare_default.py      # -> benchmarks/results/compare_default.json

With ``--strategies`` (and ``--seeds``) it times that comparison instead, e.g. every learner of the
package side by side on the default stream:

    python benchmarks/compare_default.py --strategies FLP OML Naive EWC Replay ComplexSynapse \
        Naive+fa Naive+sa EWC+sa Replay+sa --seeds 0 1 2 --out benchmarks/results/compare_all.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from avalanche_plasticity.reporting import cpu_name

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(HERE / "results" / "compare_default.json"))
    p.add_argument("--keep", default=None, help="copy the command's output folder here")
    p.add_argument("--strategies", nargs="+", default=None, help="compare these (default: no arguments)")
    p.add_argument("--seeds", nargs="+", default=None, help="stream seeds (with --strategies)")
    args = p.parse_args()
    extra = ["--strategies", *args.strategies] if args.strategies else []
    extra += ["--seeds", *args.seeds] if args.seeds else []
    exe = shutil.which("avalanche-plasticity", path=str(Path(sys.executable).parent))
    exe = exe or "avalanche-plasticity"
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [exe, *(["compare", *extra] if extra else [])], cwd=tmp, capture_output=True, text=True
        )
        seconds = time.perf_counter() - t0
        sys.stderr.write(proc.stderr[-2000:])
        print(proc.stdout)
        if proc.returncode:
            sys.exit(f"avalanche-plasticity compare failed with exit status {proc.returncode}")
        folder = Path(tmp) / "results" / "compare" / "sine"
        results = json.loads((folder / "results.json").read_text())
        if args.keep:
            shutil.copytree(folder, args.keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("wandb"))
    out = {
        "command": " ".join(["avalanche-plasticity compare", *extra]),
        "seconds": seconds,
        "comparison_seconds": results["seconds"],
        "machine": f"{cpu_name()}, {os.cpu_count()} CPU cores; {results['machine']}",
        "config": results["config"],
        "results": {
            name: {
                "final_mse": r["final_mse"],
                "final_mse_std": r.get("final_mse_std", 0.0),
                "mse_after_each_function": list(r["curve"].values()),
            }
            for name, r in results["results"].items()
        },
        "table": proc.stdout[: proc.stdout.index("\n\n", proc.stdout.index("|"))],
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{seconds:.0f} s wall; wrote {path}")


if __name__ == "__main__":
    main()
