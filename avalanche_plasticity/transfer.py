"""Deploying a meta-trained learner on a stream with fewer classes than its head: keep the first ``k``
output units.

Meta-training maps each episode's classes to random distinct units of the head, so every unit is
meta-trained as a class slot and any ``k`` of them serve a ``k``-class stream. Keeping the first ``k``
slices every meta-parameter along the output-unit dimensions (the head's rows, the feedback weights'
columns that read the one-hot target, per-unit rates) and nothing else: the new learner computes on the
kept units exactly what the old one did."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch


def keep_first_outputs(
    learner: Any, k: int, resize_config: Callable[[Any, int], Any], build: Callable[[Any], Any]
) -> Any:
    """A copy of ``learner`` whose head has its first ``k`` units.

    :param resize_config: ``(config, k) -> config`` with ``k`` outputs (the learner's registry entry).
    :param build: ``config -> learner`` of the same kind (randomly initialised; every parameter is then
        overwritten by the sliced one).
    :raises ValueError: ``k`` is not an int in ``[1, number of outputs]``, or a parameter would have to grow.
    """
    outputs = int(learner.num_outputs)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= outputs:
        raise ValueError(f"k must be an int in [1, {outputs}] (the learner's output units), got {k!r}")
    if k == outputs:
        return learner
    small = build(resize_config(copy.deepcopy(learner.config), k))
    old = learner.state_dict()
    new = {}
    for name, target in small.state_dict().items():
        source = old[name]
        if source.shape == target.shape:
            new[name] = source.clone()
            continue
        if source.dim() != target.dim() or any(
            t > s for s, t in zip(source.shape, target.shape, strict=True)
        ):
            raise ValueError(f"{name}: cannot slice {tuple(source.shape)} to {tuple(target.shape)}")
        new[name] = source[tuple(slice(0, n) for n in target.shape)].clone()
    small.load_state_dict(new)
    small.to(next(iter(learner.parameters()), torch.empty(0)).device)
    return small
