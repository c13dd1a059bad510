"""Reliability: bad inputs are clear errors, one seed gives one set of curves, a killed run resumes exactly.

    AVP_DATA_DIR=/work/shared/data python benchmarks/reliability.py     # about 2 minutes on 2 cores

Writes ``benchmarks/results/reliability.json``::

    {"bad_inputs": {"cases": N, "clear_errors": N, "failing": [...]},
     "reproducible_strategies": [...], "non_reproducible": [...], "resume_bit_identical": true}

* ``bad_inputs``: every row of ``tests/test_bad_inputs.py`` (strategies, learner configs, labels, NaN/inf,
  empty experiences, checkpoints, scenarios, data roots, W&B modes, unwritable paths, the CLI); a clear error
  is the expected type, a message naming the bad value and what is accepted, and nothing written.
* reproducibility: ``tests/reproducibility_runs.py`` in two fresh processes with the same run seed and
  different global torch seeds; a strategy is reproducible when every curve point is bit-identical.
* ``resume_bit_identical``: a meta-training run SIGKILLed after a checkpoint and resumed ends with the
  meta-parameters, history and optimizer state of an uninterrupted run (as ``tests/test_resume.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avalanche_plasticity.checkpoint import load_checkpoint, write_bytes_atomic  # noqa: E402
from tests.test_bad_inputs import CASES, run_case  # noqa: E402
from tests.test_resume import SLOW_DRIVER, TINY, _env, _step  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "reliability.json"


def bad_inputs() -> dict:
    failing = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(CASES):
            problem = run_case(case, Path(tmp) / f"case{i}")
            if problem is not None:
                failing.append({"case": case.id, "problem": problem})
    return {"cases": len(CASES), "clear_errors": len(CASES) - len(failing), "failing": failing}


def reproducibility() -> tuple[list[str], list[str]]:
    script = ROOT / "tests" / "reproducibility_runs.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), "0", str(global_seed)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for global_seed in (1, 2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"{script.name} failed:\n{err[-3000:]}")
        results.append(json.loads(out))
    a, b = results
    same = [name for name in a if a[name] == b.get(name)]
    return same, [name for name in a if name not in same]


def resume_bit_identical() -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        killed, reference = Path(tmp) / "killed.pt", Path(tmp) / "reference.pt"
        cli = [sys.executable, "-m", "avalanche_plasticity.cli"]
        ref = subprocess.Popen(
            [*cli, *TINY, "--checkpoint", str(reference)], env=_env(), stdout=subprocess.DEVNULL
        )
        victim = subprocess.Popen(
            [sys.executable, "-c", SLOW_DRIVER, *TINY, "--checkpoint", str(killed)],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while _step(killed) < 8:
            if victim.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the run to kill ended or stalled before its step-8 checkpoint")
            time.sleep(0.01)
        time.sleep(0.1)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        resumed = subprocess.run(
            [*cli, *TINY, "--checkpoint", str(killed)], env=_env(), capture_output=True, timeout=300
        )
        if resumed.returncode != 0 or ref.wait(timeout=300) != 0:
            return False
        a, b = load_checkpoint(killed), load_checkpoint(reference)
        return (
            a["step"] == b["step"]
            and a["state_dict"].keys() == b["state_dict"].keys()
            and all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
            and [h["meta_loss"] for h in a["history"]] == [h["meta_loss"] for h in b["history"]]
            and all(
                torch.equal(sa[s], sb[s])
                for name in a["optimizers"]
                for sa, sb in zip(
                    a["optimizers"][name]["state"].values(),
                    b["optimizers"][name]["state"].values(),
                    strict=True,
                )
                for s in sa
                if isinstance(sa[s], torch.Tensor)
            )
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args()
    start = time.monotonic()
    reproducible, non_reproducible = reproducibility()
    payload = {
        "bad_inputs": bad_inputs(),
        "reproducible_strategies": reproducible,
        "non_reproducible": non_reproducible,
        "resume_bit_identical": resume_bit_identical(),
        "seconds": round(time.monotonic() - start, 1),
    }
    write_bytes_atomic((json.dumps(payload, indent=2) + "\n").encode(), args.out)
    print(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
