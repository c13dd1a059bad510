"""Class-incremental SplitMNIST and SplitFashionMNIST built from local IDX files.

Avalanche's own ``SplitMNIST`` downloads at construction; these read ``load_mnist`` / ``load_fashion_mnist``
(data root argument, else ``$AVP_DATA_DIR``) and build the same class-incremental stream with
``class_incremental_benchmark``: experience i holds ``10 / n_experiences`` classes, test streams likewise.
"""

from __future__ import annotations

from pathlib import Path

import torch
from avalanche.benchmarks.scenarios import class_incremental_benchmark

from avalanche_plasticity.data import load_fashion_mnist, load_mnist

from .datasets import tensor_dataset


def _split(loader, n_experiences: int, seed: int, root, train_subset: int | None):
    if not isinstance(n_experiences, int) or n_experiences < 1 or 10 % n_experiences:
        raise ValueError(f"n_experiences must divide 10 (1, 2, 5 or 10), got {n_experiences!r}")
    x_train, y_train = loader("train", root=root)
    x_test, y_test = loader("test", root=root)
    if train_subset is not None:
        if not isinstance(train_subset, int) or train_subset < 10:
            raise ValueError(f"train_subset must be an int >= 10 or None, got {train_subset!r}")
        keep = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(seed))[:train_subset]
        x_train, y_train = x_train[keep], y_train[keep]
    return class_incremental_benchmark(
        {"train": tensor_dataset(x_train, y_train), "test": tensor_dataset(x_test, y_test)},
        num_experiences=n_experiences,
        seed=seed,
    )


def SplitMNIST(
    n_experiences: int = 5, *, seed: int = 0, root: str | Path | None = None, train_subset: int | None = None
):
    """Class-incremental MNIST (classes in an order drawn with ``seed``); ``train_subset`` keeps that many
    random training images (all 10,000 test images are kept).

    :raises DataNotFoundError: MNIST is not under ``root`` / ``$AVP_DATA_DIR``.
    """
    return _split(load_mnist, n_experiences, seed, root, train_subset)


def SplitFashionMNIST(
    n_experiences: int = 5, *, seed: int = 0, root: str | Path | None = None, train_subset: int | None = None
):
    """Class-incremental Fashion-MNIST; as :func:`SplitMNIST`."""
    return _split(load_fashion_mnist, n_experiences, seed, root, train_subset)
