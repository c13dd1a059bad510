"""Atomic checkpoints: write to a temporary file in the same folder, fsync, then rename over the target,
so a crash never leaves a half-written checkpoint behind."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is unreadable, or belongs to a different learner/configuration."""


def write_bytes_atomic(data: bytes, path: str | os.PathLike[str]) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file with a unique name in the same folder,
    fsync, then ``os.replace``. Readers see the old file or the new one, never a partial one, and
    processes writing the same path at once do not trip over each other's temporary files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
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
