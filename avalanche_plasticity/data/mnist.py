"""MNIST in torchvision's layout (``<root>/MNIST/raw``), gzip or plain IDX files, without torchvision's
download step. Read-only roots (a shared data folder) work: nothing is written next to the data."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from .root import DataNotFoundError, resolve_data_root

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_idx(path: Path) -> np.ndarray:
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.is_file():
            opener = gzip.open if candidate.suffix == ".gz" else open
            with opener(candidate, "rb") as f:
                data = f.read()
            ndim = data[3]
            shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
            return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    raise DataNotFoundError(path)


def load_mnist(split: str = "train", *, root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(images float32 (N, 1, 28, 28) in [0, 1], labels int64 (N,))``.

    :raises DataNotFoundError: if ``<root>/MNIST/raw`` lacks the IDX files. On a machine with internet,
        ``torchvision.datasets.MNIST(root, download=True)`` fetches them into that layout.
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    raw = resolve_data_root(root) / "MNIST" / "raw"
    try:
        images = _read_idx(raw / _FILES[split][0])
        labels = _read_idx(raw / _FILES[split][1])
    except DataNotFoundError as e:
        raise DataNotFoundError(
            f"MNIST '{split}' not found: looked for {e.args[0]}(.gz) under {raw}. Get it with "
            f"torchvision.datasets.MNIST('{raw.parent.parent}', download=True) or set AVP_DATA_DIR."
        ) from None
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))
