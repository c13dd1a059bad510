"""Continual Omniglot (OML protocol) as an Avalanche benchmark, and its meta-training task source.

Meta-test: classes from the *evaluation* split (never seen in meta-training); each class has
``train_per_class`` images (default 15) learned in one online pass at batch size 1 and ``test_per_class``
held-out images (default 5). Experience ``i`` holds ``classes_per_experience`` classes; labels are
0..K-1 in order of appearance. Accuracy "at K classes" is test accuracy on all K classes seen so far.
"""

from __future__ import annotations

from pathlib import Path

import torch
from avalanche.benchmarks.scenarios import benchmark_from_datasets

from avalanche_plasticity.data import import_learn2learn, load_omniglot
from avalanche_plasticity.tasks import OmniglotTaskSource

from .datasets import tensor_dataset


def ContinualOmniglot(
    *,
    num_classes: int = 100,
    classes_per_experience: int = 1,
    train_per_class: int = 15,
    test_per_class: int = 5,
    image_size: int = 28,
    seed: int = 0,
    root: str | Path | None = None,
):
    """Build the benchmark on ``num_classes`` random evaluation-split classes (order set by ``seed``).

    :raises DataNotFoundError: Omniglot is not under ``root`` / ``$AVP_DATA_DIR``.
    """
    if not isinstance(num_classes, int) or not 1 <= num_classes <= 659:
        raise ValueError(f"num_classes must be an int in [1, 659], got {num_classes!r}")
    if (
        not isinstance(classes_per_experience, int)
        or classes_per_experience < 1
        or num_classes % classes_per_experience
    ):
        raise ValueError(
            f"classes_per_experience must be a positive divisor of num_classes "
            f"({num_classes}), got {classes_per_experience!r}"
        )
    if train_per_class < 1 or test_per_class < 1 or train_per_class + test_per_class > 20:
        raise ValueError(
            "need train_per_class, test_per_class >= 1 with a sum <= 20, got "
            f"{train_per_class}, {test_per_class}"
        )
    data = load_omniglot("evaluation", root=root, image_size=image_size)
    g = torch.Generator().manual_seed(seed)
    classes = torch.randperm(data.num_classes, generator=g)[:num_classes]
    drawers = torch.randperm(20, generator=g)
    train_idx, test_idx = (
        drawers[:train_per_class],
        drawers[train_per_class : train_per_class + test_per_class],
    )
    train, test = [], []
    for e in range(num_classes // classes_per_experience):
        chosen = classes[e * classes_per_experience : (e + 1) * classes_per_experience]
        labels = torch.arange(e * classes_per_experience, (e + 1) * classes_per_experience)
        for split, idx in ((train, train_idx), (test, test_idx)):
            x = data.images[chosen][:, idx].reshape(-1, *data.images.shape[2:])
            split.append(tensor_dataset(x, labels.repeat_interleave(len(idx))))
    bm = benchmark_from_datasets(train=train, test=test)
    bm.class_ids = classes  # type: ignore[attr-defined]  (evaluation-split rows, in label order)
    bm.num_classes = num_classes  # type: ignore[attr-defined]
    return bm


def omniglot_meta_train_source(
    *,
    ways: int = 5,
    shots: int = 5,
    query_shots: int = 5,
    num_units: int = 1000,
    image_size: int = 28,
    order: str = "continual",
    tasks: int = 1,
    query: str = "last",
    root: str | Path | None = None,
) -> OmniglotTaskSource:
    """Meta-training episodes on the 964 *background* classes (disjoint from :func:`ContinualOmniglot`);
    ``tasks`` N-way tasks learned one after another per episode, the query on the last (``query="last"``)
    or on all of them (``"seen"``; see :class:`OmniglotTaskSource`)."""
    data = load_omniglot("background", root=root, image_size=image_size)
    import_learn2learn()  # the source imports learn2learn: without Gym's "unmaintained" notice on stderr
    return OmniglotTaskSource(
        data.images,
        ways=ways,
        shots=shots,
        query_shots=query_shots,
        num_units=num_units,
        order=order,
        tasks=tasks,
        query=query,  # type: ignore[arg-type]
    )
