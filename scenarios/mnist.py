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


SETTINGS = ("class", "domain")
KINDS = ("split", "permuted")
LOADERS = {"mnist": load_mnist, "fashion_mnist": load_fashion_mnist}


def _subset(x: torch.Tensor, y: torch.Tensor, n: int | None, generator: torch.Generator):
    if n is None or n >= len(y):
        return x, y
    keep = torch.randperm(len(y), generator=generator)[:n]
    return x[keep], y[keep]


def mnist_family_benchmark(
    dataset: str = "mnist",
    kind: str = "split",
    *,
    setting: str = "class",
    n_experiences: int | None = None,
    seed: int = 0,
    root: str | Path | None = None,
    train_per_experience: int | None = None,
):
    """A continual stream over MNIST or Fashion-MNIST, read from the local IDX files, with every random
    choice drawn from ``seed`` (never from torch's global generator).

    ``kind="split"``: ``n_experiences`` (default 5) experiences of ``10 / n_experiences`` classes, in a class
    order drawn from ``seed``. ``setting="class"`` keeps the digit labels (one head over all classes seen:
    class-incremental); ``"domain"`` relabels each experience's classes 0, 1, ... by their rank in the
    experience (domain-incremental: one small head shared by all experiences).

    ``kind="permuted"``: ``n_experiences`` (default 10) experiences, each all ten classes under its own pixel
    permutation drawn from ``seed``. ``"class"``: experience p's digit d has label ``10 p + d`` (class-
    incremental over ``10 n`` classes); ``"domain"``: label d (domain-incremental).

    :param train_per_experience: keep that many random training images per experience (None: all); the
        test streams keep every test image.
    :returns: an Avalanche benchmark (``train_stream``, ``test_stream``, classes timeline); images are
        float tensors (1, 28, 28) in [0, 1].
    :raises ValueError: an unknown dataset, kind or setting, or a bad number of experiences.
    :raises DataNotFoundError: the data are not under ``root`` / ``$AVP_DATA_DIR``.
    """
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.benchmarks.scenarios.supervised import with_classes_timeline

    if dataset not in LOADERS:
        raise ValueError(f"dataset must be one of {tuple(LOADERS)}, got {dataset!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS} (class- or domain-incremental), got {setting!r}")
    n = n_experiences if n_experiences is not None else (5 if kind == "split" else 10)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1 or (kind == "split" and 10 % n):
        accepted = "1, 2, 5 or 10 (it must divide the 10 classes)" if kind == "split" else "a positive int"
        raise ValueError(f"n_experiences must be {accepted}, got {n_experiences!r}")
    if train_per_experience is not None and (
        not isinstance(train_per_experience, int)
        or isinstance(train_per_experience, bool)
        or train_per_experience < 1
    ):
        raise ValueError(f"train_per_experience must be a positive int or None, got {train_per_experience!r}")
    gen = torch.Generator().manual_seed(int(seed))
    loader = LOADERS[dataset]
    data = {split: loader(split, root=root) for split in ("train", "test")}
    streams: dict[str, list] = {"train": [], "test": []}
    if kind == "split":
        order = torch.randperm(10, generator=gen).tolist()
        per = 10 // n
        for e in range(n):
            classes = order[e * per : (e + 1) * per]
            for split, (x, y) in data.items():
                mask = torch.isin(y, torch.tensor(classes))
                xe, ye = x[mask], y[mask]
                if setting == "domain":
                    ye = torch.tensor([classes.index(int(c)) for c in ye.tolist()], dtype=ye.dtype)
                if split == "train":
                    xe, ye = _subset(xe, ye, train_per_experience, gen)
                streams[split].append(tensor_dataset(xe, ye))
    else:
        pixels = data["train"][0][0].numel()
        for e in range(n):
            perm = torch.randperm(pixels, generator=gen)
            for split, (x, y) in data.items():
                xe, ye = x, y
                if split == "train":
                    xe, ye = _subset(xe, ye, train_per_experience, gen)
                xe = xe.flatten(1)[:, perm].view_as(xe)
                streams[split].append(tensor_dataset(xe, ye + 10 * e if setting == "class" else ye))
    return with_classes_timeline(benchmark_from_datasets(train=streams["train"], test=streams["test"]))
