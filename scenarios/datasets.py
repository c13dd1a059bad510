"""Avalanche datasets over plain tensors."""

from __future__ import annotations

import torch
from avalanche.benchmarks.utils.classification_dataset import TaskAwareSupervisedClassificationDataset
from avalanche.benchmarks.utils.data_attribute import DataAttribute


def tensor_dataset(
    x: torch.Tensor, y: torch.Tensor, task_label: int = 0
) -> TaskAwareSupervisedClassificationDataset:
    """An Avalanche classification dataset over tensors, with ``targets`` for class splitting and
    ``targets_task_labels`` (all ``task_label``), which task-aware strategies such as LwF read."""
    targets = y.tolist()
    return TaskAwareSupervisedClassificationDataset(
        [torch.utils.data.TensorDataset(x, y)],
        data_attributes=[
            DataAttribute(targets, "targets"),
            DataAttribute([task_label] * len(targets), "targets_task_labels", use_in_getitem=True),
        ],
    )
