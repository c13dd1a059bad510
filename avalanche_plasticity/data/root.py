"""Where datasets live: an explicit argument, else ``$AVP_DATA_DIR``, else a user cache directory."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "AVP_DATA_DIR"


class DataNotFoundError(FileNotFoundError):
    """Raised when a dataset is not under the data root; the message says where we looked and what to do."""


def default_data_root() -> Path:
    """``$AVP_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/avalanche_plasticity`` (``~/.cache/...``)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "avalanche_plasticity"


def resolve_data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve ``root`` (argument > ``$AVP_DATA_DIR`` > user cache dir) to a path."""
    return Path(root).expanduser() if root is not None else default_data_root()


def cache_dir() -> Path:
    """Writable directory for derived files (resized arrays): ``$AVP_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/avalanche_plasticity/derived``. Never the data root, which may be shared."""
    path = Path(os.environ.get("AVP_CACHE_DIR") or default_cache() / "derived").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_cache() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "avalanche_plasticity"
