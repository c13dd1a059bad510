"""MNIST, Fashion-MNIST and EMNIST in torchvision's layout (``<root>/MNIST/raw``,
``<root>/FashionMNIST/raw``, ``<root>/EMNIST/raw``), gzip or plain IDX files, without torchvision's download
step. Read-only roots (a shared data folder) work: nothing is written next to the data."""

from __future__ import annotations

import gzip
import os
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

    Reads ``<root>/MNIST/raw`` (torchvision's layout) or ``<root>/mnist/MNIST/raw`` (one data root that also
    holds ``omniglot/``, as ``../shared/data``).

    :raises DataNotFoundError: if neither holds the IDX files. On a machine with internet,
        ``torchvision.datasets.MNIST(root, download=True)`` fetches them into that layout.
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    base = resolve_data_root(root)
    candidates = [base / "MNIST" / "raw", base / "mnist" / "MNIST" / "raw"]
    for raw in candidates:
        try:
            images = _read_idx(raw / _FILES[split][0])
            labels = _read_idx(raw / _FILES[split][1])
            break
        except DataNotFoundError:
            continue
    else:
        raise DataNotFoundError(
            f"MNIST '{split}' not found: looked for {_FILES[split][0]}(.gz) under "
            f"{' and '.join(str(c) for c in candidates)}. Get it with "
            f"torchvision.datasets.MNIST('{base}', download=True) or set AVP_DATA_DIR."
        )
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


# Where Debian's ``dataset-fashion-mnist`` package puts the IDX files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def load_fashion_mnist(
    split: str = "train", *, root: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST as ``(images float32 (N, 1, 28, 28) in [0, 1], labels int64 (N,))``.

    Looks in ``<root>/FashionMNIST/raw`` (torchvision's layout; root as for :func:`load_mnist`), then in
    ``$AVP_FASHION_MNIST_DIR``, then in ``/usr/share/datasets/fashion-mnist`` (Debian package
    ``dataset-fashion-mnist``).

    :raises DataNotFoundError: naming every place looked at and how to get the files.
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    candidates = []
    try:
        candidates.append(resolve_data_root(root) / "FashionMNIST" / "raw")
    except DataNotFoundError:
        pass
    if os.environ.get("AVP_FASHION_MNIST_DIR"):
        candidates.append(Path(os.environ["AVP_FASHION_MNIST_DIR"]))
    candidates.append(DEBIAN_FASHION_MNIST)
    for raw in candidates:
        try:
            images = _read_idx(raw / _FILES[split][0])
            labels = _read_idx(raw / _FILES[split][1])
        except DataNotFoundError:
            continue
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        return x, torch.from_numpy(labels.astype(np.int64))
    looked = ", ".join(str(c) for c in candidates)
    raise DataNotFoundError(
        f"Fashion-MNIST '{split}' not found (looked in {looked}). Get it with "
        "torchvision.datasets.FashionMNIST(root, download=True) or `apt-get install dataset-fashion-mnist`."
    )


# EMNIST subsets (Cohen et al. 2017) and their classes; "balanced" is Shervani-Tabar & Rosenbaum's dataset.
EMNIST_CLASSES = {"balanced": 47, "byclass": 62, "bymerge": 47, "digits": 10, "letters": 26, "mnist": 10}


def load_emnist(
    split: str = "train", *, subset: str = "balanced", root: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """EMNIST ``subset`` as ``(images float32 (N, 1, 28, 28) in [0, 1], labels int64 (N,))``, the images
    upright (the IDX files store them transposed).

    Reads ``emnist-<subset>-<split>-images-idx3-ubyte(.gz)`` and the labels from ``<root>/EMNIST/raw``
    (torchvision's layout) or ``<root>/emnist/EMNIST/raw``, or their ``gzip/`` folder (NIST's ``gzip.zip``
    unpacked there). Labels are as stored (``letters``: 1 to 26).

    :raises ValueError: an unknown ``split`` or ``subset``.
    :raises DataNotFoundError: the files are in neither place. On a machine with internet,
        ``torchvision.datasets.EMNIST(root, split="balanced", download=True)`` fetches them there.
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if subset not in EMNIST_CLASSES:
        raise ValueError(f"subset must be one of {sorted(EMNIST_CLASSES)}, got {subset!r}")
    base = resolve_data_root(root)
    stem = f"emnist-{subset}-{split}"
    # torchvision's layout, under the root or its emnist/ folder; raw/gzip/ is NIST's zip unpacked by hand
    candidates = [b / "EMNIST" / "raw" / sub for b in (base, base / "emnist") for sub in ("", "gzip")]
    for raw in candidates:
        try:
            images = _read_idx(raw / f"{stem}-images-idx3-ubyte")
            labels = _read_idx(raw / f"{stem}-labels-idx1-ubyte")
            break
        except DataNotFoundError:
            continue
    else:
        raise DataNotFoundError(
            f"EMNIST '{subset}' '{split}' not found: looked for {stem}-images-idx3-ubyte(.gz) under "
            f"{' and '.join(str(c) for c in candidates)}. Get it with "
            f"torchvision.datasets.EMNIST('{base}', split='{subset}', download=True) or set AVP_DATA_DIR."
        )
    upright = np.ascontiguousarray(images.transpose(0, 2, 1))
    x = torch.from_numpy(upright.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))
