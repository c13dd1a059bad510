"""Linear and Conv2d layers with separate feedback weights, and ``convert`` for any torch model.

``convert`` changes the class of every ``nn.Linear`` / ``nn.Conv2d`` of a model in place to
:class:`FeedbackLinear` / :class:`FeedbackConv2d` (subclasses, so ``isinstance`` checks, hooks, optimizers and
state-dict keys of the forward weights keep working) and adds a ``feedback_weight`` parameter. All other
modules (BatchNorm, pooling, residual additions, ...) keep ordinary autograd. Subclasses of Linear/Conv2d
that do not call their own ``forward`` (``MultiheadAttention.out_proj``) are left alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.seeding import seeded_generator
from .functional import (
    CaptureError,
    Conv2dDirectFeedback,
    Conv2dFeedback,
    GlobalError,
    LinearDirectFeedback,
    LinearFeedback,
)
from .primitives import DATA_PRIMITIVES, LayerGeometry
from .rules import AlignmentRule, make_rule


class _FeedbackMixin:
    """State shared by the feedback layers: the rule, the feedback weights and the last training input."""

    alignment_rule: AlignmentRule
    feedback_weight: nn.Parameter
    _use_backprop: bool
    _slot: GlobalError | None
    _keep_data: bool
    last_input: Tensor | None
    last_output: Tensor | None
    layer_name: str
    _sign_generator: torch.Generator

    def _setup_feedback(
        self,
        rule: AlignmentRule,
        output_dim: int | None,
        slot: GlobalError | None,
        seed: int,
        index: int,
        name: str,
    ) -> None:
        weight = self.weight
        self.layer_name = name or "<root>"
        self.alignment_rule = rule
        self._use_backprop = False
        self._slot = slot
        self._keep_data = rule.learns_feedback and needs_layer_data(rule)
        self.last_input = None
        self.last_output = None
        # Random feedback starts with W's own scale (the authors initialise B like W).
        bound = math.sqrt(3.0) * float(weight.detach().std()) if weight.numel() > 1 else 1.0
        if rule.feedback == "direct":
            if output_dim is None:
                raise ValueError("rule 'dfa' needs output_dim (the size of the model's output)")
            shape = (output_dim, weight.shape[1]) + tuple(weight.shape[2:])
            if isinstance(self, nn.Conv2d):
                shape = (output_dim, self.in_channels) + tuple(weight.shape[2:])
        else:
            shape = tuple(weight.shape)
        # The feedback draws have a stream of their own per layer, derived from (seed, layer index): never
        # the numbers torch.manual_seed(seed) gave the model's own initialisation.
        init = (torch.rand(shape, generator=seeded_generator(seed, "feedback", index)) * 2 - 1) * bound
        self.feedback_weight = nn.Parameter(init.to(weight.device, weight.dtype), requires_grad=False)
        # Fixed random magnitudes of frSF; brSF redraws them at every forward pass, from its own stream.
        self.sign_scale = bound / math.sqrt(3.0)
        self._sign_generator = seeded_generator(seed, "sign_magnitude", index)

    def _check_input(self, x: Tensor) -> None:
        """Raise ``ValueError`` naming the layer when ``x`` cannot be its input (before torch fails inside
        the feedback function with a bare shape message)."""
        if isinstance(self, nn.Conv2d):
            ok = x.dim() in (3, 4) and x.shape[-3] == self.in_channels
            wanted = f"(batch, {self.in_channels}, H, W)"
            kind = f"Conv2d({self.in_channels}, {self.out_channels})"
        else:
            ok = x.dim() >= 1 and x.shape[-1] == self.in_features
            wanted = f"(..., {self.in_features})"
            kind = f"Linear({self.in_features}, {self.out_features})"
        if not ok:
            raise ValueError(
                f"layer {self.layer_name!r} ({kind}, rule {self.alignment_rule.name!r}) takes inputs of "
                f"shape {wanted}, got {tuple(x.shape)}"
            )

    def current_feedback(self) -> Tensor:
        """F as the backward pass will use it now (W for backprop, sign(W)·magnitude for sign symmetry)."""
        rule = self.alignment_rule
        if self._use_backprop or rule.feedback == "backprop":
            return self.weight
        if rule.feedback == "sign":
            sign = torch.sign(self.weight.detach())
            if rule.sign_magnitude == "constant":
                return sign * self.sign_scale
            if rule.sign_magnitude == "fixed_random":
                return sign * self.feedback_weight.abs()
            draw = torch.rand(self.weight.shape, generator=self._sign_generator, dtype=self.weight.dtype)
            magnitude = (draw.to(self.weight.device) * 2 - 1) * math.sqrt(3.0) * self.sign_scale
            return sign * magnitude.abs()
        return self.feedback_weight

    def _remember(self, x: Tensor, out: Tensor) -> None:
        if self.training and self._keep_data:
            self.last_input = x.detach()
            bias = self.bias
            y = out.detach()
            if bias is not None:
                y = y - (bias.detach().view(-1, 1, 1) if y.dim() == 4 else bias.detach())
            self.last_output = y


class FeedbackLinear(_FeedbackMixin, nn.Linear):
    """``nn.Linear`` whose input gradient uses ``feedback_weight`` (see :mod:`.functional`)."""

    def geometry(self) -> LayerGeometry:
        return LayerGeometry("linear")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        rule = self.alignment_rule
        if self._use_backprop or rule.feedback == "backprop" or not torch.is_grad_enabled():
            out = F.linear(x, self.weight, self.bias)
        elif rule.feedback == "direct":
            out = LinearDirectFeedback.apply(x, self.weight, self.bias, self.feedback_weight, self._slot)
        else:
            out = LinearFeedback.apply(x, self.weight, self.bias, self.current_feedback())
        self._remember(x, out)
        return out


class FeedbackConv2d(_FeedbackMixin, nn.Conv2d):
    """``nn.Conv2d`` whose input gradient is the transposed convolution with ``feedback_weight``."""

    def geometry(self) -> LayerGeometry:
        return LayerGeometry("conv2d", self.stride, self.padding, self.dilation, self.groups)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        rule = self.alignment_rule
        if self._use_backprop or rule.feedback == "backprop" or not torch.is_grad_enabled():
            out = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        elif rule.feedback == "direct":
            out = Conv2dDirectFeedback.apply(
                x, self.weight, self.bias, self.feedback_weight, self._slot, *self._conv_args()
            )
        else:
            out = Conv2dFeedback.apply(x, self.weight, self.bias, self.current_feedback(), *self._conv_args())
        self._remember(x, out)
        return out

    def _conv_args(self):
        return self.stride, self.padding, self.dilation, self.groups


FeedbackLayer = FeedbackLinear | FeedbackConv2d


def _numeric_padding(conv: nn.Conv2d, name: str) -> tuple[int, int]:
    if conv.padding_mode != "zeros":
        raise ValueError(
            f"convert: layer {name!r} uses padding_mode={conv.padding_mode!r}; only 'zeros' is supported"
        )
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return (0, 0)
        total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size, strict=True)]
        if any(t % 2 for t in total):
            raise ValueError(f"convert: layer {name!r} has asymmetric padding='same'; use explicit padding")
        return (total[0] // 2, total[1] // 2)
    return tuple(conv.padding)


def convert(
    model: nn.Module,
    rule: str | AlignmentRule = "fa",
    *,
    coefficients: dict[str, float] | None = None,
    output_dim: int | None = None,
    seed: int = 0,
) -> nn.Module:
    """Give every ``nn.Linear`` and ``nn.Conv2d`` of ``model`` feedback weights for ``rule``, in place.

    :param rule: a registered name (see :func:`~.rules.available_rules`) or an :class:`AlignmentRule`.
    :param coefficients: override primitive coefficients of a learned-feedback rule.
    :param output_dim: size of the model's output, for ``"dfa"`` (default: ``out_features`` of the last
        ``nn.Linear``).
    :param seed: seed of the random feedback weights: layer ``i`` (in module order) draws them from its
        own stream, derived from ``(seed, "feedback", i)``, so they never replay the model's initialisation
        even when the model was built right after ``torch.manual_seed(seed)``.
    :returns: the same model object (converted layers keep their weight and bias parameters). Converting
        again with the same rule is a no-op for layers already converted (their feedback weights are kept)
        and converts only layers added since, e.g. a grown classifier head.
    :raises ValueError: unknown rule, bad coefficients, no layer to convert, or an unsupported conv padding.
    """
    rule = make_rule(rule, coefficients)
    targets = [
        (name, m)
        for name, m in model.named_modules()
        if type(m) in (nn.Linear, nn.Conv2d, FeedbackLinear, FeedbackConv2d)
    ]
    if not targets:
        raise ValueError("convert: the model has no nn.Linear or nn.Conv2d layer")
    slot = None
    if rule.feedback == "direct":
        if output_dim is None:
            linears = [m for _, m in targets if isinstance(m, nn.Linear)]
            if not linears:
                raise ValueError("convert: rule 'dfa' needs output_dim when the model has no nn.Linear")
            output_dim = linears[-1].out_features
        slot = _install_error_capture(model)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"convert: seed must be an int, got {type(seed).__name__} {seed!r}")
    for index, (name, module) in enumerate(targets):
        if isinstance(module, FeedbackLinear | FeedbackConv2d) and module.alignment_rule == rule:
            continue  # already converted for this rule: keep its (possibly learned) feedback weights
        if isinstance(module, nn.Conv2d):
            module.padding = _numeric_padding(module, name)
            module.__class__ = FeedbackConv2d
        else:
            module.__class__ = FeedbackLinear
        if "feedback_weight" in module._parameters:
            del module._parameters["feedback_weight"]
        module._setup_feedback(rule, output_dim, slot, seed, index, name)
    return model


def _install_error_capture(model: nn.Module) -> GlobalError:
    existing = getattr(model, "_alignment_error_slot", None)
    if existing is not None:
        return existing
    slot = GlobalError()

    def capture(module, args, output):
        if not isinstance(output, Tensor):
            raise TypeError("direct feedback alignment needs a model whose forward returns one tensor")
        return (
            CaptureError.apply(output, slot) if torch.is_grad_enabled() and output.requires_grad else output
        )

    model.register_forward_hook(capture)
    model._alignment_error_slot = slot
    return slot


def feedback_layers(model: nn.Module) -> Iterator[tuple[str, FeedbackLayer]]:
    """``(name, layer)`` for every converted layer, in module order."""
    for name, m in model.named_modules():
        if isinstance(m, FeedbackLinear | FeedbackConv2d):
            yield name, m


@contextmanager
def backprop_mode(model: nn.Module):
    """Temporarily send exact backprop gradients through every converted layer (for true-gradient metrics)."""
    layers = [m for _, m in feedback_layers(model)]
    saved = [m._use_backprop for m in layers]
    for m in layers:
        m._use_backprop = True
    try:
        yield model
    finally:
        for m, s in zip(layers, saved, strict=True):
            m._use_backprop = s


def needs_layer_data(rule: AlignmentRule) -> bool:
    """Whether the rule's regularizer reads layer inputs (so layers must remember their last input)."""
    return any(rule.primitives.get(k) for k in DATA_PRIMITIVES)
