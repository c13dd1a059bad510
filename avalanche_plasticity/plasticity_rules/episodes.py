"""Episodes for meta-learning plasticity rules: Omniglot and MNIST, built with learn2learn's Taskset.

The paper's episode (``main.py``): ``M`` classes, ``K`` training images per class seen online one at a
time in shuffled order (``DataProcess(iid=True)``), then ``Q`` query images per class for the meta-loss.
Both sources here reuse :class:`~avalanche_plasticity.tasks.OmniglotTaskSource` (``NWays``, ``KShots``,
``LoadData``, ``RemapLabels`` over a ``(classes, images per class, C, H, W)`` tensor) with ``order="iid"``;
labels land on ``ways`` random units of a ``num_units``-way output, as the paper's 5 classes land on its
47 outputs.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from ..data import load_emnist, load_mnist, load_omniglot
from ..tasks import EpisodeBatch, OmniglotTaskSource

Tensor = torch.Tensor


def omniglot_episodes(
    split: str = "background",
    *,
    ways: int = 5,
    shots: int = 15,
    query_shots: int = 5,
    num_units: int = 47,
    image_size: int = 28,
    root: str | Path | None = None,
) -> OmniglotTaskSource:
    """Omniglot episodes (``split="background"`` to meta-train, ``"evaluation"`` for held-out tests).
    Omniglot has 20 images per class, so ``shots + query_shots <= 20`` (paper, EMNIST: 50 + 10).

    :raises DataNotFoundError: Omniglot is not under ``root`` / ``$AVP_DATA_DIR``.
    """
    data = load_omniglot(split, root=root, image_size=image_size)
    return OmniglotTaskSource(
        data.images, ways=ways, shots=shots, query_shots=query_shots, num_units=num_units, order="iid"
    )


def images_by_class(x: Tensor, y: Tensor, per_class: int | None = None) -> Tensor:
    """``(classes, per_class, *image)`` from a labelled set (the first ``per_class`` images of each class;
    default: as many as the smallest class has)."""
    classes = torch.unique(y)
    counts = torch.stack([(y == c).sum() for c in classes])
    n = int(counts.min()) if per_class is None else int(per_class)
    if n < 1 or n > int(counts.min()):
        raise ValueError(f"per_class must be in [1, {int(counts.min())}], got {per_class}")
    return torch.stack([x[y == c][:n] for c in classes])


def labelled_episodes(
    x: Tensor, y: Tensor, ways: int, shots: int, query_shots: int, num_units: int, per_class: int | None
) -> OmniglotTaskSource:
    """Episodes of ``ways`` classes of a labelled image set, i.i.d. order, from the first ``per_class``
    images of each class (:func:`images_by_class`)."""
    return OmniglotTaskSource(
        images_by_class(x, y, per_class),
        ways=ways,
        shots=shots,
        query_shots=query_shots,
        num_units=num_units,
        order="iid",
    )


def mnist_episodes(
    split: str = "train",
    *,
    ways: int = 5,
    shots: int = 50,
    query_shots: int = 10,
    num_units: int = 10,
    per_class: int | None = 1000,
    root: str | Path | None = None,
) -> OmniglotTaskSource:
    """MNIST episodes (the paper's K = 50, Q = 10 fit): ``ways`` of the 10 digits per episode, from the
    first ``per_class`` images of each digit.

    :raises DataNotFoundError: MNIST is not under ``root`` / ``$AVP_DATA_DIR``.
    """
    x, y = load_mnist(split, root=root)
    return labelled_episodes(x, y, ways, shots, query_shots, num_units, per_class)


def emnist_episodes(
    split: str = "train",
    *,
    ways: int = 5,
    shots: int = 50,
    query_shots: int = 10,
    num_units: int = 47,
    per_class: int | None = None,
    root: str | Path | None = None,
) -> OmniglotTaskSource:
    """EMNIST "balanced" episodes, the paper's own data: ``ways`` of the 47 characters per episode, ``shots``
    images of each learned online (K = 50) and ``query_shots`` queried (Q = 10), from the first
    ``per_class`` images of each character of ``split``.

    :raises DataNotFoundError: EMNIST is not under ``root`` / ``$AVP_DATA_DIR`` (see
        :func:`~avalanche_plasticity.data.load_emnist`).
    """
    x, y = load_emnist(split, subset="balanced", root=root)
    return labelled_episodes(x, y, ways, shots, query_shots, num_units, per_class)


def fixed_episodes(source: OmniglotTaskSource, episodes: int, seed: int) -> EpisodeBatch:
    """``episodes`` episodes that depend only on ``seed`` (learn2learn samples with Python's ``random``,
    which is seeded here and restored afterwards)."""
    state = random.getstate()
    try:
        random.seed(seed)
        return source.sample(episodes, torch.Generator().manual_seed(seed))
    finally:
        random.setstate(state)
