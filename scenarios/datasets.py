"""Avalanche datasets over plain tensors."""

from __future__ import annotations

import torch
from avalanche.benchmarks.utils.classification_dataset import ClassificationDataset
from avalanche.benchmarks.utils.data_attribute import DataAttribute


def tensor_dataset(x: torch.Tensor, y: torch.Tensor) -> ClassificationDataset:
    """An Avalanche classification dataset over tensors, with ``targets`` for class splitting."""
    return ClassificationDataset(
        [torch.utils.data.TensorDataset(x, y)], data_attributes=[DataAttribute(y.tolist(), "targets")]
    )
