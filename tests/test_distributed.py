"""Distributed meta-training: 2 torchrun CPU processes (gloo) give the meta-parameters of 1 process on the
same total meta-batch (with one sampling stream, and with per-episode seeds), and their checkpoint resumes
in 1 process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from avalanche_plasticity.cli import main
from avalanche_plasticity.distributed import SINGLE, World, shard, world_from_env
from avalanche_plasticity.meta_learning import MetaTrainConfig, sample_share
from avalanche_plasticity.tasks import SineTaskSource

# A tiny FLP on 3-function sine episodes; 4 episodes per meta-update (2 per process).
TINY = [
    "--scenario", "sine", "--learner", "FLP",
    "--set", "functions_per_episode=3", "--set", "batches_per_function=5", "--set", "batch_size=4",
    "--set", "query_per_function=8", "--set", "layer_sizes=4,16,16,1", "--set", "meta_batch_size=4",
    "--set", "default_lr=3e-3", "--set", "lr.plasticity=1e-4", "--set", "checkpoint_every=2",
    "--wandb-mode", "disabled", "--quiet", "--threads", "1",
]  # fmt: skip


def test_shares_cover_the_meta_batch_once():
    for n, size in [(8, 2), (7, 2), (5, 3), (3, 3)]:
        shares = [World(rank=r, size=size).share(n) for r in range(size)]
        assert [i for s in shares for i in range(s.start, s.stop)] == list(range(n))
        assert max(s.stop - s.start for s in shares) - min(s.stop - s.start for s in shares) <= 1
    with pytest.raises(ValueError, match="meta_batch_size .* >= the number of processes"):
        World(rank=0, size=4).share(3)
    with pytest.raises(ValueError, match="rank < size"):
        World(rank=2, size=2)


def test_shard_weights_sum_to_one_and_single_process_is_untouched():
    batch = SineTaskSource(functions_per_episode=2, batches_per_function=2).sample(5, torch.Generator())
    parts = [shard(batch, World(rank=r, size=2)) for r in range(2)]
    assert sum(w for _, w in parts) == pytest.approx(1.0)
    assert torch.equal(torch.cat([p.support_x for p, _ in parts]), batch.support_x)
    same, w = shard(batch, SINGLE)
    assert same is batch and w == 1.0


def test_world_from_env():
    assert world_from_env({}) == (0, 1, 0)
    assert world_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == (1, 2, 1)
    with pytest.raises(ValueError, match="inconsistent"):
        world_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="integers"):
        world_from_env({"WORLD_SIZE": "two"})


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _assert_close(a: Path, b: Path) -> None:
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-6, msg=k)


def test_episode_seeds_give_each_process_its_own_episodes():
    """With ``episode_seeds`` a process draws only its share, and the shares make up the meta-batch of
    one process."""
    source = SineTaskSource(functions_per_episode=3, batches_per_function=2)
    cfg = MetaTrainConfig(meta_batch_size=5, episode_seeds=True, seed=3)
    full, w = sample_share(source, cfg, 7, torch.Generator(), SINGLE)
    parts = [sample_share(source, cfg, 7, torch.Generator(), World(rank=r, size=2)) for r in range(2)]
    assert w == 1.0 and [p.episodes for p, _ in parts] == [3, 2]
    assert sum(wr for _, wr in parts) == pytest.approx(1.0)
    for field in ("support_x", "support_y", "query_x", "query_y"):
        assert torch.equal(torch.cat([getattr(p, field) for p, _ in parts]), getattr(full, field))
    other, _ = sample_share(source, cfg, 8, torch.Generator(), SINGLE)
    assert not torch.equal(other.support_x, full.support_x)  # a new meta-update, new episodes


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
@pytest.mark.parametrize("episode_seeds", [False, True], ids=["one-stream", "episode-seeds"])
def test_two_torchrun_processes_match_one_process(tmp_path, monkeypatch, episode_seeds):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    two, one = tmp_path / "two.pt", tmp_path / "one.pt"
    tiny = [*TINY, "--set", f"episode_seeds={episode_seeds}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "avalanche_plasticity.cli", "meta-train", *tiny, "--set", "steps=6"]
    proc = subprocess.run(
        [*cmd, "--checkpoint", str(two)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "(2 processes)" in proc.stdout
    assert proc.stdout.count("finished at step 6/6") == 1  # only rank 0 reports

    # The same total meta-batch in one process (this one), from scratch.
    assert main(["meta-train", *tiny, "--set", "steps=6", "--checkpoint", str(one)]) == 0
    ckpt_one = torch.load(one, weights_only=False)
    ckpt_two = torch.load(two, weights_only=False)
    assert ckpt_two["step"] == 6
    assert [h["meta_loss"] for h in ckpt_two["history"]] == pytest.approx(
        [h["meta_loss"] for h in ckpt_one["history"]], rel=1e-5
    )
    _assert_close(one, two)

    # A checkpoint of 2 processes resumes in 1 process (the random state is the same on every rank).
    resumed = tmp_path / "resumed.pt"
    shutil.copy(two, resumed)
    assert main(["meta-train", *tiny, "--set", "steps=8", "--checkpoint", str(resumed)]) == 0
    assert main(["meta-train", *tiny, "--set", "steps=8", "--checkpoint", str(one)]) == 0
    _assert_close(one, resumed)
