"""Atomic checkpoints: write to a temporary file in the same folder, fsync, then rename over the target,
so a crash never leaves a half-written checkpoint behind.

A process killed mid-write leaves its temporary file (``.<name>.<host>-<pid>.<random>.tmp``) behind; the next
write or load of the same target removes it once its writer is gone (same host, no such process) or, for a
temporary file whose writer cannot be checked, once it is older than this process and an hour old.
"""

from __future__ import annotations

import glob
import io
import os
import re
import socket
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1

_STARTED = time.time()  # about when this process started: older orphans of unknown writers may go
_UNKNOWN_WRITER_GRACE_S = 3600.0


class CheckpointError(ValueError):
    """A checkpoint is unreadable, or belongs to a different learner/configuration."""


def _host_tag() -> str:
    """This machine's name as it appears in temporary file names (no dots or path separators)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())[:32] or "host"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def _current_umask() -> int:
    """The process umask, read without changing it where ``/proc`` allows (``os.umask`` sets it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the orphaned temporary files of earlier atomic writes of ``path``.

    A temporary file tagged with this host and a process id is removed when that process no longer
    exists; one written elsewhere or in the old format (no writer tag) only when it predates this
    process and is over an hour old. Temporary files of live writers are never touched.

    :returns: the files removed.
    """
    path = Path(path)
    removed: list[Path] = []
    try:
        candidates = list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    except OSError:
        return removed
    # mkstemp's random part is 8 characters of [a-z0-9_]; the writer tag is absent in the old format
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:([\w-]+)-(\d+)\.)?[a-z0-9_]{{8}}\.tmp")
    host = _host_tag()
    for tmp in candidates:
        match = pattern.fullmatch(tmp.name)
        if match is None:  # another target's temporary file (e.g. of "<name>.bak")
            continue
        if match[1] == host:
            stale = not _process_alive(int(match[2]))
        else:
            try:
                mtime = tmp.stat().st_mtime
            except OSError:
                continue
            stale = mtime < _STARTED and time.time() - mtime > _UNKNOWN_WRITER_GRACE_S
        if stale:
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:  # already gone, or not ours to remove (permissions): leave it
                pass
    return removed


class UnwritableOutputError(OSError):
    """An output location cannot be written (raised before any work by :func:`check_writable`)."""


def check_writable(folder: str | os.PathLike[str], *, what: str = "output folder") -> Path:
    """Make sure files can be written in ``folder`` before any work is done: create it (and its parents)
    if missing, then create and remove a temporary file in it.

    :param what: how the error names the folder (e.g. ``"--out folder"``, ``"checkpoint folder"``).
    :returns: ``folder`` as a ``Path``.
    :raises UnwritableOutputError: naming the folder and why (a file in the way, no permission, a
        read-only file system, ...).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(prefix=".write-check.", dir=folder):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise UnwritableOutputError(
            e.errno, f"the {what} {str(folder)!r} is not writable ({reason}); name a writable folder"
        ) from e
    return folder


def write_bytes_atomic(data: bytes, path: str | os.PathLike[str]) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file with a unique name in the same folder,
    fsync, then ``os.replace``. Readers see the old file or the new one, never a partial one, and
    processes writing the same path at once do not trip over each other's temporary files.

    The file gets mode ``0o666 & ~umask`` (as ``open()`` would give it), not ``mkstemp``'s 0600, and the
    orphaned temporary files of earlier writers of ``path`` that were killed are removed
    (:func:`remove_stale_temporaries`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{_host_tag()}-{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o666 & ~_current_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_atomic(obj: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Save ``obj`` to ``path`` atomically (:func:`write_bytes_atomic`)."""
    buf = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **obj}, buf)
    write_bytes_atomic(buf.getvalue(), path)


def load_checkpoint(path: str | os.PathLike[str], *, kind: str | None = None) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_atomic`.

    :param kind: if given, the learner kind the checkpoint must hold (e.g. ``"FLPLearner"``).
    :raises FileNotFoundError: no file at ``path``.
    :raises CheckpointError: corrupt file, unknown format, or a different learner kind.
    """
    path = Path(path)
    remove_stale_temporaries(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises several types for truncated/garbled files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file: {e}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has an unknown format (expected format_version {FORMAT_VERSION})"
        )
    if kind is not None and ckpt.get("kind") != kind:
        raise CheckpointError(f"checkpoint {path} holds a {ckpt.get('kind')!r}, expected {kind!r}")
    return ckpt


def load_registered(
    path: str | os.PathLike[str], registry: Mapping[str, tuple[type, type]], *, kind: str | None = None
) -> Any:
    """Rebuild a learner saved as ``{"kind", "learner_config", "state_dict", ...}``: ``registry[kind]`` is
    ``(learner class, config class)``.

    :raises CheckpointError: corrupt file, unknown learner kind, or weights that do not fit the config.
    """
    ckpt = load_checkpoint(path, kind=kind)
    if ckpt.get("kind") not in registry:
        raise CheckpointError(
            f"checkpoint {path} holds unknown learner kind {ckpt.get('kind')!r}; known: {sorted(registry)}"
        )
    cls, cfg_cls = registry[ckpt["kind"]]
    learner = cls(cfg_cls(**ckpt["learner_config"]))
    try:
        learner.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not match its learner config: {e}") from e
    return learner
