"""Autograd functions that send the error back through separate feedback weights.

Convention (as BioTorch, and the transpose of Kunin et al.'s notation): a layer's ``feedback_weight`` F
has the shape of its forward weight W, and the backward matrix is B = Fᵀ, so backprop is F = W. Forward
always uses W; the input gradient uses F; W's own gradient is the usual one (``δ_out xᵀ``). Nothing here
touches F's gradient: feedback weights change only through :mod:`.learning` (and the plugin that runs it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class GlobalError:
    """Shared slot for direct feedback alignment: the output error ``e = ∂L/∂y`` of the whole model,
    written by :class:`CaptureError` during the backward pass before any hidden layer needs it."""

    error: Tensor | None = field(default=None, repr=False)


class LinearFeedback(torch.autograd.Function):
    """``y = x Wᵀ + b``; backward ``δ_x = δ_y F`` (F in place of W)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, feedback: Tensor) -> Tensor:
        ctx.save_for_backward(x, feedback)
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, feedback = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_out @ feedback  # δ_in = B δ_out with B = Fᵀ
        if ctx.needs_input_grad[1]:
            grad_w = grad_out.reshape(-1, grad_out.shape[-1]).T @ x.reshape(-1, x.shape[-1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.reshape(-1, grad_out.shape[-1]).sum(0)
        return grad_x, grad_w, grad_b, None


class Conv2dFeedback(torch.autograd.Function):
    """2-D convolution with W; backward sends ``δ_y`` through the transposed convolution with F."""

    @staticmethod
    def forward(ctx, x, weight, bias, feedback, stride, padding, dilation, groups):
        ctx.save_for_backward(x, weight, feedback)
        ctx.conv = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weight, feedback = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.nn.grad.conv2d_input(
                x.shape, feedback, grad_out, stride, padding, dilation, groups
            )
        if ctx.needs_input_grad[1]:
            grad_w = torch.nn.grad.conv2d_weight(x, weight.shape, grad_out, stride, padding, dilation, groups)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None, None, None


class LinearDirectFeedback(torch.autograd.Function):
    """Direct feedback alignment (Nøkland 2016) for a linear layer: ``δ_x = e D`` with the global output error
    e and a fixed ``D`` of shape (output_dim, in_features); the error arriving from above is ignored."""

    @staticmethod
    def forward(ctx, x, weight, bias, direct_feedback, slot: GlobalError):
        ctx.save_for_backward(x, direct_feedback)
        ctx.slot = slot
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        x, direct_feedback = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _global_error(ctx.slot, x.shape[0]) @ direct_feedback
            grad_x = grad_x.reshape(x.shape)
        if ctx.needs_input_grad[1]:
            grad_w = grad_out.reshape(-1, grad_out.shape[-1]).T @ x.reshape(-1, x.shape[-1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.reshape(-1, grad_out.shape[-1]).sum(0)
        return grad_x, grad_w, grad_b, None, None


class Conv2dDirectFeedback(torch.autograd.Function):
    """Direct feedback alignment for a convolution (as BioTorch): the global error is broadcast over the
    output positions and sent through a transposed convolution with a fixed ``D`` of shape
    (output_dim, C_in, kh, kw)."""

    @staticmethod
    def forward(ctx, x, weight, bias, direct_feedback, slot, stride, padding, dilation, groups):
        ctx.save_for_backward(x, weight, direct_feedback)
        ctx.slot = slot
        ctx.conv = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, direct_feedback = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            error = _global_error(ctx.slot, x.shape[0])
            spread = error[:, :, None, None].expand(-1, -1, *grad_out.shape[2:])
            grad_x = torch.nn.grad.conv2d_input(
                x.shape, direct_feedback, spread, stride, padding, dilation, 1
            )
        if ctx.needs_input_grad[1]:
            grad_w = torch.nn.grad.conv2d_weight(x, weight.shape, grad_out, stride, padding, dilation, groups)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None, None, None, None


class CaptureError(torch.autograd.Function):
    """Identity on the model output that records ``∂L/∂output`` in a :class:`GlobalError` slot."""

    @staticmethod
    def forward(ctx, output: Tensor, slot: GlobalError) -> Tensor:
        ctx.slot = slot
        return output.view_as(output)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        ctx.slot.error = grad_out.reshape(grad_out.shape[0], -1)
        return grad_out, None


def _global_error(slot: GlobalError, batch: int) -> Tensor:
    if slot.error is None or slot.error.shape[0] != batch:
        raise RuntimeError(
            "direct feedback alignment found no output error for this batch: the model's output must be the "
            "tensor the loss is computed from (convert(model, 'dfa') wraps the root module's output)"
        )
    return slot.error
