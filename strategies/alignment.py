"""Avalanche adapters for credit assignment without weight symmetry: a plugin and per-layer metrics.

``AlignmentPlugin`` composes with any SGD strategy (Naive, EWC, Replay, LwF, ...): it converts the strategy's
model before training and trains the feedback weights with the rule's regularizer every iteration, with their
own optimizer. ``alignment_metrics`` reports, per converted layer, how close the feedback is to backprop.
"""

from __future__ import annotations

from avalanche.core import SupervisedPlugin
from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue

from avalanche_plasticity.alignment import (
    AlignmentRule,
    FeedbackTrainer,
    convert,
    feedback_layers,
    gradient_angles,
    make_rule,
    norm_ratios,
    weight_angles,
)
from avalanche_plasticity.alignment.learning import add_update_noise


class AlignmentPlugin(SupervisedPlugin):
    """Train a strategy's model with a credit-assignment rule instead of exact backprop.

    :param rule: a registered rule name (``backprop, fa, usf, frsf, brsf, dfa, wm, ia, sa, aa, kp``) or an
        :class:`~avalanche_plasticity.alignment.AlignmentRule`.
    :param coefficients: override primitive coefficients of a learned-feedback rule, e.g. ``{"amp": 1e-3}``.
    :param feedback_optimizer: ``"adam"`` or ``"sgd"`` for the feedback weights.
    :param feedback_lr: their learning rate.
    :param update_noise: variance σ² of noise ``lr·ξ`` added after every update of the forward weights
        (with the strategy optimizer's lr) and of the learned feedback weights (with ``feedback_lr``);
        0 disables it.
    :param output_dim: model output size for ``"dfa"`` (default: the last ``nn.Linear``'s ``out_features``).
    :param seed: seed of the random feedback weights.
    """

    def __init__(
        self,
        rule: str | AlignmentRule = "sa",
        *,
        coefficients: dict[str, float] | None = None,
        feedback_optimizer: str = "adam",
        feedback_lr: float = 1e-2,
        update_noise: float = 0.0,
        output_dim: int | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.rule = make_rule(rule, coefficients)
        self.feedback_optimizer = feedback_optimizer
        self.feedback_lr = feedback_lr
        self.update_noise = update_noise
        self.output_dim = output_dim
        self.seed = seed
        self.trainer: FeedbackTrainer | None = None
        self._model = None
        self._layers: list[int] = []
        # Validate the optimizer settings now, not at the first experience.
        FeedbackTrainer.validate(feedback_optimizer, feedback_lr, update_noise)

    def _ensure_converted(self, strategy) -> None:
        """Convert the strategy's model (idempotent: only new layers are converted) and keep a feedback
        trainer over exactly its converted layers."""
        model = strategy.model
        convert(model, self.rule, output_dim=self.output_dim, seed=self.seed)
        layers = [id(m) for _, m in feedback_layers(model)]
        if self.trainer is None or model is not self._model or layers != self._layers:
            self.trainer = FeedbackTrainer(
                model, optimizer=self.feedback_optimizer, lr=self.feedback_lr, update_noise=self.update_noise
            )
            self._model, self._layers = model, layers

    def before_training(self, strategy, *args, **kwargs):
        self._ensure_converted(strategy)

    def before_training_exp(self, strategy, *args, **kwargs):
        # Strategies may replace the model (model adaptation); convert the new one.
        self._ensure_converted(strategy)

    def after_backward(self, strategy, *args, **kwargs):
        self.trainer.step()

    def after_update(self, strategy, *args, **kwargs):
        self.trainer.mirror()
        if self.update_noise:
            for group in strategy.optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        add_update_noise(p, group["lr"], self.update_noise)


class _LayerMetric(PluginMetric[dict]):
    """Base of the per-layer alignment metrics, computed at the end of each training epoch (the gradient angle
    on its last mini-batch) and named ``<Metric>_Epoch/train_phase/train_stream/<layer name>``."""

    metric_name = ""

    def __init__(self):
        super().__init__()
        self._values: dict[str, float] = {}

    def reset(self) -> None:
        self._values = {}

    def result(self) -> dict[str, float]:
        return dict(self._values)

    def compute(self, strategy) -> dict[str, float]:
        raise NotImplementedError

    def after_training_epoch(self, strategy) -> list[MetricValue]:
        self._values = self.compute(strategy)
        step = strategy.clock.train_iterations
        return [
            MetricValue(self, f"{self.metric_name}_Epoch/train_phase/train_stream/{layer}", value, step)
            for layer, value in self._values.items()
        ]

    def __str__(self) -> str:
        return self.metric_name


class WeightAngle(_LayerMetric):
    """Angle in degrees between each layer's feedback B and Wᵀ."""

    metric_name = "WeightAngle"

    def compute(self, strategy) -> dict[str, float]:
        return weight_angles(strategy.model)


class NormRatio(_LayerMetric):
    """``‖B‖ / ‖W‖`` per layer."""

    metric_name = "NormRatio"

    def compute(self, strategy) -> dict[str, float]:
        return norm_ratios(strategy.model)


class GradientAngle(_LayerMetric):
    """Angle in degrees between the gradient each layer's input receives and the exact backprop gradient."""

    metric_name = "GradientAngle"

    def compute(self, strategy) -> dict[str, float]:
        if strategy.mb_x is None:
            return {}
        return gradient_angles(strategy.model, strategy._criterion, strategy.mb_x, strategy.mb_y)


def alignment_metrics(
    *, weight_angle: bool = True, gradient_angle: bool = True, norm_ratio: bool = True
) -> list[PluginMetric]:
    """Per-layer alignment metrics for an ``EvaluationPlugin``, as ``accuracy_metrics`` is for accuracy."""
    metrics: list[PluginMetric] = []
    if weight_angle:
        metrics.append(WeightAngle())
    if gradient_angle:
        metrics.append(GradientAngle())
    if norm_ratio:
        metrics.append(NormRatio())
    return metrics
