"""Every long command resumes: a meta-training process killed with SIGKILL resumes to bit-identical
meta-parameters, and a comparison re-run reuses its finished runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import avalanche_plasticity.experiments as experiments
from avalanche_plasticity.checkpoint import load_checkpoint
from avalanche_plasticity.cli import main

TINY = [
    "meta-train", "--scenario", "sine", "--learner", "FLP",
    "--set", "functions_per_episode=3", "--set", "batches_per_function=5", "--set", "batch_size=4",
    "--set", "query_per_function=8", "--set", "layer_sizes=4,16,16,1", "--set", "meta_batch_size=4",
    "--set", "default_lr=3e-3", "--set", "lr.plasticity=1e-4", "--set", "steps=30",
    "--set", "checkpoint_every=4", "--wandb-mode", "disabled", "--quiet", "--threads", "1",
]  # fmt: skip

# Runs the real command with every task sample delayed by 50 ms (the numbers are unchanged), so that the
# test can reliably kill it between two checkpoints.
SLOW_DRIVER = """
import sys, time
from avalanche_plasticity.tasks import SineTaskSource
sample = SineTaskSource.sample
def slow(self, *args, **kwargs):
    time.sleep(0.05)
    return sample(self, *args, **kwargs)
SineTaskSource.sample = slow
from avalanche_plasticity.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(var, None)
    return env


def _step(path: Path) -> int:
    try:
        return load_checkpoint(path)["step"]
    except (FileNotFoundError, ValueError):  # not written yet (writes are atomic: never half-written)
        return 0


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkilled_meta_training_resumes_bit_identically(tmp_path):
    killed, reference = tmp_path / "killed.pt", tmp_path / "reference.pt"
    cli = [sys.executable, "-m", "avalanche_plasticity.cli"]
    ref_proc = subprocess.Popen(  # the uninterrupted run, alongside
        [*cli, *TINY, "--checkpoint", str(reference)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    victim = subprocess.Popen(
        [sys.executable, "-c", SLOW_DRIVER, *TINY, "--checkpoint", str(killed)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while _step(killed) < 8:
        assert victim.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint at step 8 after 60 s"
        time.sleep(0.01)
    time.sleep(0.1)  # a few steps past the checkpoint: their work is lost and must be redone
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    at_kill = _step(killed)
    assert 8 <= at_kill < 30, at_kill

    resumed = subprocess.run(
        [*cli, *TINY, "--checkpoint", str(killed)], env=_env(), capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    out, _ = ref_proc.communicate(timeout=120)
    assert ref_proc.returncode == 0, out[-3000:]

    a, b = load_checkpoint(killed), load_checkpoint(reference)
    assert a["step"] == b["step"] == 30
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert [h["meta_loss"] for h in a["history"]] == [h["meta_loss"] for h in b["history"]]
    for name in a["optimizers"]:
        for pa, pb in zip(
            a["optimizers"][name]["state"].values(), b["optimizers"][name]["state"].values(), strict=True
        ):
            assert all(torch.equal(pa[s], pb[s]) for s in ("exp_avg", "exp_avg_sq"))


def test_compare_resumes_from_finished_runs(tmp_path, monkeypatch, capsys):
    args = [
        "compare", "--strategies", "Naive", "EWC", "--seeds", "0", "1", "--out", str(tmp_path / "out"),
        "--set", "stream.batches_per_function=2", "--wandb-mode", "disabled", "--quiet", "--threads", "1",
    ]  # fmt: skip
    assert main(args) == 0
    first = capsys.readouterr().out
    runs = sorted(p.name for p in (tmp_path / "out" / "runs").iterdir())
    assert runs == ["EWC_seed0.json", "EWC_seed1.json", "Naive_seed0.json", "Naive_seed1.json"]

    calls = []
    real = experiments.run_stream_matrix

    def counting(*a, **k):
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(experiments, "run_stream_matrix", counting)
    (tmp_path / "out" / "runs" / "EWC_seed1.json").unlink()  # as if killed before this run finished
    assert main(args) == 0
    second = capsys.readouterr().out
    assert len(calls) == 1  # only the missing run ran again
    table = lambda text: text[: text.index("\n\n", text.index("|"))]  # noqa: E731
    assert table(first) == table(second)

    assert main([*args, "--set", "stream.lr.Naive=0.02"]) == 0  # changed settings: those runs again
    assert len(calls) == 1 + 2
    assert main([*args, "--no-resume"]) == 0
    assert len(calls) == 1 + 2 + 4


def test_benchmark_run_recorder_resumes_finished_runs(tmp_path):
    """A finished benchmark run is written at once (atomically) and not run again on resume."""
    import json

    from avalanche_plasticity.reporting import run_recorder

    out = tmp_path / "results.json"
    calls = []
    record = run_recorder({}, out)
    assert record("s", "k", lambda: calls.append(1) or {"acc": 0.5})["acc"] == 0.5
    saved = json.loads(out.read_text())
    assert saved["runs"]["s"]["k"]["acc"] == 0.5 and "wall_seconds" in saved["runs"]["s"]["k"]
    assert not list(tmp_path.glob(".*.tmp"))
    again = run_recorder(saved, out)
    assert again("s", "k", lambda: calls.append(2) or {"acc": 0.0})["acc"] == 0.5
    assert calls == [1]


def test_concurrent_atomic_writes_of_one_path_all_succeed(tmp_path):
    """Several processes building the same cache file at once (two benchmark jobs on a fresh machine) must
    not trip over each other's temporary files: every write lands whole, and no temporary file is left."""
    import threading

    from avalanche_plasticity.checkpoint import write_bytes_atomic

    target = tmp_path / "cache" / "omniglot_evaluation.npy"
    payloads = [bytes([i]) * 50_000 for i in range(8)]
    barrier, errors = threading.Barrier(len(payloads)), []

    def writer(data: bytes) -> None:
        barrier.wait()
        try:
            for _ in range(25):
                write_bytes_atomic(data, target)
        except Exception as e:  # collected, so the test names the failure
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_bytes() in payloads
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]
