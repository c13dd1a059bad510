"""Avalanche adapters for credit assignment without weight symmetry: a plugin and per-layer metrics.

``AlignmentPlugin`` composes with any SGD strategy (Naive, EWC, Replay, LwF, ...): it converts the strategy's
model before training and trains the feedback weights with the rule's regularizer every iteration, with their
own optimizer. ``alignment_metrics`` reports, per converted layer, how close the feedback is to backprop.
"""

from __future__ import annotations

import warnings

import torch
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
from avalanche_plasticity.data.seeding import seeded_generator


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
    :param seed: seed of every random draw of the plugin: the random feedback weights (one stream per layer,
        never the model's own initialisation, see :func:`~avalanche_plasticity.alignment.convert`), the
        update noise and the noise inputs of the learned-feedback rules. Torch's global RNG is not used.

    Training stops with ``FloatingPointError`` naming the layer when an input batch or a converted layer's
    weight gradient holds NaN/inf, before any weight is updated with it.
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
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        if output_dim is not None and (
            isinstance(output_dim, bool) or not isinstance(output_dim, int) or output_dim < 1
        ):
            raise ValueError(f"output_dim must be a positive int or None (automatic), got {output_dim!r}")
        self.rule = make_rule(rule, coefficients)
        self.feedback_optimizer = feedback_optimizer
        self.feedback_lr = feedback_lr
        self.update_noise = update_noise
        self.output_dim = output_dim
        self.seed = seed
        self.generator = seeded_generator(seed, "alignment_noise")
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
                model,
                optimizer=self.feedback_optimizer,
                lr=self.feedback_lr,
                update_noise=self.update_noise,
                generator=self.generator,
            )
            self._model, self._layers = model, layers

    def before_training(self, strategy, *args, **kwargs):
        self._ensure_converted(strategy)

    def before_training_exp(self, strategy, *args, **kwargs):
        # Strategies may replace the model (model adaptation); convert the new one.
        self._ensure_converted(strategy)

    def before_forward(self, strategy, *args, **kwargs):
        x = strategy.mb_x
        if isinstance(x, torch.Tensor) and x.is_floating_point() and not bool(torch.isfinite(x).all()):
            first = next(iter(feedback_layers(strategy.model)), ("<model input>", None))[0]
            exp = strategy.experience.current_experience
            raise FloatingPointError(
                f"AlignmentPlugin({self.rule.name!r}): the input batch of training iteration "
                f"{strategy.clock.train_exp_iterations} (experience {exp}) holds NaN/inf values; the first "
                f"converted layer {first!r} would turn the weights non-finite. Inputs must be finite."
            )

    def after_backward(self, strategy, *args, **kwargs):
        self._check_gradients(strategy)
        self.trainer.step()

    def _check_gradients(self, strategy) -> None:
        """Raise ``FloatingPointError`` naming the converted layers whose weight gradient is non-finite."""
        layers = [(n, m) for n, m in feedback_layers(strategy.model) if m.weight.grad is not None]
        if not layers:
            return
        finite = torch.stack([torch.isfinite(m.weight.grad).all() for _, m in layers])
        if bool(finite.all()):
            return
        bad = [n or "<root>" for (n, _), ok in zip(layers, finite.tolist(), strict=True) if not ok]
        raise FloatingPointError(
            f"AlignmentPlugin({self.rule.name!r}): the weight gradient of layer(s) {bad} became non-finite "
            f"(NaN/inf) at training iteration {strategy.clock.train_exp_iterations} (experience "
            f"{strategy.experience.current_experience}); stopped before the update. Check the loss and "
            "targets for NaN/inf, or lower the learning rate."
        )

    def after_update(self, strategy, *args, **kwargs):
        self.trainer.mirror()
        if self.update_noise:
            for group in strategy.optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        add_update_noise(p, group["lr"], self.update_noise, self.generator)


class _LayerMetric(PluginMetric[dict]):
    """Base of the per-layer alignment metrics, computed at the end of each training epoch (the gradient angle
    on its last mini-batch) and named ``<Metric>_Epoch/train_phase/train_stream/<layer name>``."""

    metric_name = ""

    def __init__(self):
        super().__init__()
        self._values: dict[str, float] = {}
        self._warned = False

    def reset(self) -> None:
        self._values = {}

    def result(self) -> dict[str, float]:
        return dict(self._values)

    def compute(self, strategy) -> dict[str, float]:
        raise NotImplementedError

    def after_training_epoch(self, strategy) -> list[MetricValue]:
        if next(feedback_layers(strategy.model), None) is None:
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"{self.metric_name}: the model has no layer with feedback weights (no AlignmentPlugin "
                    "among the strategy's plugins?): nothing to report",
                    RuntimeWarning,
                    stacklevel=2,
                )
            self._values = {}
            return []
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
    """Angle in degrees between the gradient each layer's input receives and the exact backprop gradient.

    :param seed: seeds the random state of its two measuring passes (dropout, brSF magnitudes) from a
        generator of its own: measuring draws nothing from, and restores, the run's random state.
    """

    metric_name = "GradientAngle"

    def __init__(self, *, seed: int = 0):
        super().__init__()
        self.generator = seeded_generator(seed, "gradient_angle")

    def compute(self, strategy) -> dict[str, float]:
        if strategy.mb_x is None:
            return {}
        return gradient_angles(
            strategy.model, strategy._criterion, strategy.mb_x, strategy.mb_y, generator=self.generator
        )


def alignment_metrics(
    *, weight_angle: bool = True, gradient_angle: bool = True, norm_ratio: bool = True
) -> list[PluginMetric]:
    """Per-layer alignment metrics for an ``EvaluationPlugin``, as ``accuracy_metrics`` is for accuracy.

    In a strategy whose model has no feedback weights (no :class:`AlignmentPlugin`) they report nothing,
    with one warning each."""
    metrics: list[PluginMetric] = []
    if weight_angle:
        metrics.append(WeightAngle())
    if gradient_angle:
        metrics.append(GradientAngle())
    if norm_ratio:
        metrics.append(NormRatio())
    return metrics
