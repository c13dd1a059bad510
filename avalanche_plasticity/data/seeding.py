"""Seeds derived from a run's seed: independent, reproducible random streams that never read or advance
torch's global RNG.

``derive_seed(seed, "feedback", 3)`` hashes the run's seed with labels naming what the stream is for, so
two streams with different labels never coincide (unlike ``torch.Generator().manual_seed(seed)`` next to
``torch.manual_seed(seed)``, which replay the very same numbers).
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["derive_seed", "seeded_generator"]


def derive_seed(seed: int, *labels: object) -> int:
    """A 63-bit seed from ``seed`` and ``labels`` (strings or ints naming the stream), stable across
    processes, machines and Python versions (SHA-256, not Python's salted ``hash``).

    :raises TypeError: ``seed`` is not an int (bools are refused too).
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    text = repr((int(seed), *labels)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def seeded_generator(seed: int, *labels: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed` ``(seed, *labels)``."""
    return torch.Generator().manual_seed(derive_seed(seed, *labels))
