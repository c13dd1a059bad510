"""Atomic writes leave nothing behind: orphaned temporary files of killed writers are removed on the next
write or load of the same target, live writers' are kept, and files get the user's umask."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from avalanche_plasticity.checkpoint import (
    _host_tag,
    load_checkpoint,
    remove_stale_temporaries,
    save_atomic,
    write_bytes_atomic,
)

# A writer killed between creating its temporary file and renaming it (as SIGKILL during a checkpoint write)
KILLED_WRITER = """
import os, sys, time
import avalanche_plasticity.checkpoint as ck
real_replace = os.replace
def stall(src, dst):
    print("written", flush=True)
    time.sleep(60)
os.replace = stall
ck.write_bytes_atomic(b"x" * 1000, sys.argv[1])
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_the_orphan_of_a_killed_write_is_removed_by_the_next_write_and_load(tmp_path):
    target = tmp_path / "learner.pt"
    save_atomic({"step": 1}, target)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "written"
    orphans = list(tmp_path.glob(".learner.pt.*.tmp"))
    assert len(orphans) == 1 and f"{_host_tag()}-{proc.pid}." in orphans[0].name
    assert remove_stale_temporaries(target) == []  # its writer is alive: kept
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert load_checkpoint(target)["step"] == 1  # the load cleans up
    assert list(tmp_path.glob(".*.tmp")) == []

    (tmp_path / f".learner.pt.{_host_tag()}-{proc.pid}.abcd1234.tmp").write_bytes(b"x")
    save_atomic({"step": 2}, target)  # and so does the next write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["learner.pt"]


def test_only_old_orphans_of_unknown_writers_and_only_of_this_target_go(tmp_path):
    target = tmp_path / "a.pt"
    old = tmp_path / ".a.pt.k3j4h5g6.tmp"  # the old naming: no writer tag
    new = tmp_path / ".a.pt.x9y8z7w6.tmp"
    other_host = tmp_path / ".a.pt.elsewhere-1.q1w2e3r4.tmp"
    other_target = tmp_path / ".a.pt.bak.othrhost-1.q1w2e3r4.tmp"
    for p in (old, new, other_host, other_target):
        p.write_bytes(b"x")
    long_ago = time.time() - 2 * 3600
    for p in (old, other_host, other_target):
        os.utime(p, (long_ago, long_ago))
    removed = remove_stale_temporaries(target)
    assert sorted(p.name for p in removed) == sorted([old.name, other_host.name])
    assert new.exists() and other_target.exists()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_bytes_atomic(b"{}", tmp_path / "results.json")
        with open(tmp_path / "plot.png", "wb"):
            pass
    finally:
        os.umask(previous)
    mode = (tmp_path / "results.json").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask == (tmp_path / "plot.png").stat().st_mode & 0o777


def test_check_writable_names_the_folder_and_why_before_any_work(tmp_path):
    from avalanche_plasticity.checkpoint import UnwritableOutputError, check_writable

    assert check_writable(tmp_path / "new" / "out") == tmp_path / "new" / "out"
    assert list((tmp_path / "new" / "out").iterdir()) == []  # the probe is gone
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(
        UnwritableOutputError, match=r"the --out folder '.*a_file/out' is not writable \("
    ) as e:
        check_writable(tmp_path / "a_file" / "out", what="--out folder")
    assert isinstance(e.value, OSError)
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o500)
        with pytest.raises(UnwritableOutputError, match="Permission denied"):
            check_writable(tmp_path / "ro")
