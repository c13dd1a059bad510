"""Regression metrics for Avalanche's ``EvaluationPlugin`` (Avalanche 0.6 has none: issue #1684)."""

from __future__ import annotations

import math
import warnings

import torch
from avalanche.evaluation import GenericPluginMetric, Metric


class MeanSquaredError(Metric[float]):
    """Running mean of squared errors over all elements seen since the last reset.

    Over no element at all (an empty experience or stream) the mean is undefined: :meth:`result` is NaN,
    with a ``RuntimeWarning``, never a perfect 0.0.
    """

    def __init__(self) -> None:
        self._sum = 0.0
        self._count = 0

    @torch.no_grad()
    def update(self, predicted: torch.Tensor, target: torch.Tensor) -> None:
        predicted = predicted.reshape(target.shape) if predicted.numel() == target.numel() else predicted
        if predicted.shape != target.shape:
            raise ValueError(
                f"prediction shape {tuple(predicted.shape)} does not match target shape {tuple(target.shape)}"
            )
        self._sum += (predicted.float() - target.float()).square().sum().item()
        self._count += target.numel()

    def result(self) -> float:
        if not self._count:
            warnings.warn(
                "MSE of no samples (an empty experience or stream) is undefined: reported as NaN",
                RuntimeWarning,
                stacklevel=2,
            )
            return math.nan
        return self._sum / self._count

    def reset(self) -> None:
        self._sum, self._count = 0.0, 0


class _MSEPluginMetric(GenericPluginMetric[float, MeanSquaredError]):
    def __init__(self, reset_at: str, emit_at: str, mode: str, name: str) -> None:
        super().__init__(MeanSquaredError(), reset_at=reset_at, emit_at=emit_at, mode=mode)
        self._name = name

    def reset(self) -> None:
        self._metric.reset()

    def result(self) -> float:
        return self._metric.result()

    def update(self, strategy) -> None:
        self._metric.update(strategy.mb_output, strategy.mb_y)

    def __str__(self) -> str:
        return self._name


def mse_metrics(
    *, minibatch: bool = False, epoch: bool = False, experience: bool = False, stream: bool = False
) -> list[_MSEPluginMetric]:
    """MSE plugin metrics named like Avalanche's accuracy ones: ``MSE_MB``, ``MSE_Epoch`` (train),
    ``MSE_Exp``, ``MSE_Stream`` (eval), e.g. key ``MSE_Stream/eval_phase/test_stream``."""
    out = []
    if minibatch:
        out.append(_MSEPluginMetric("iteration", "iteration", "train", "MSE_MB"))
    if epoch:
        out.append(_MSEPluginMetric("epoch", "epoch", "train", "MSE_Epoch"))
    if experience:
        out.append(_MSEPluginMetric("experience", "experience", "eval", "MSE_Exp"))
    if stream:
        out.append(_MSEPluginMetric("stream", "stream", "eval", "MSE_Stream"))
    return out
