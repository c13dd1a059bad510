"""The five layer-wise primitives of Kunin et al. (2020) from which learned-feedback rules are built.

Each primitive is a scalar function of one layer's feedback weight F (shape of W; backward matrix B = Fᵀ),
its forward weight W (treated as a constant), its input x and its linear output y = Wx (no bias), with batch
expectations as means over the batch. Derivatives, in the paper's B notation with Σ = E[xxᵀ] (tested against
autograd in ``tests/test_alignment.py``):

======== ===================== ================
name     R(B)                  ∂R/∂B
======== ===================== ================
decay    ‖B‖²                  2B
amp      −E[xᵀBWx]             −ΣWᵀ
null     E‖BWx‖²               2BWΣWᵀ
sparse   E‖Bᵀx‖²               2ΣB
self     −tr(BW)               −Wᵀ
======== ===================== ================

For convolutions the projection Bᵀx is a convolution with F and the reconstruction B·y a transposed
convolution with F, as in the authors' code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class LayerGeometry:
    """How a layer maps inputs to outputs: ``"linear"`` or ``"conv2d"`` with its convolution arguments."""

    kind: str
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def project(self, x: Tensor, matrix: Tensor) -> Tensor:
        """``matrix · x`` for a weight-shaped matrix: the forward map with ``matrix`` in place of W."""
        if self.kind == "linear":
            return F.linear(x, matrix)
        return F.conv2d(x, matrix, None, self.stride, self.padding, self.dilation, self.groups)

    def reconstruct(self, y: Tensor, matrix: Tensor, input_shape: torch.Size) -> Tensor:
        """``matrixᵀ · y``: the backward map (transposed convolution) back to the input's shape."""
        if self.kind == "linear":
            return y @ matrix
        return torch.nn.grad.conv2d_input(
            input_shape, matrix, y, self.stride, self.padding, self.dilation, self.groups
        )

    def weight_grad(self, u: Tensor, v: Tensor, weight_shape: torch.Size) -> Tensor:
        """``Σ_batch v uᵀ``: the gradient a weight-shaped matrix gets from input ``u`` and error ``v``."""
        if self.kind == "linear":
            return v.reshape(-1, v.shape[-1]).T @ u.reshape(-1, u.shape[-1])
        return torch.nn.grad.conv2d_weight(
            u, weight_shape, v, self.stride, self.padding, self.dilation, self.groups
        )


Primitive = Callable[[Tensor, Tensor, Tensor, Tensor, LayerGeometry], Tensor]


def decay(feedback: Tensor, weight: Tensor, x: Tensor, y: Tensor, geometry: LayerGeometry) -> Tensor:
    """R = ‖B‖²_F (the ‖W‖² part of the authors' code is a constant for B and dropped)."""
    return feedback.pow(2).sum()


def amp(feedback: Tensor, weight: Tensor, x: Tensor, y: Tensor, geometry: LayerGeometry) -> Tensor:
    """R = −E[xᵀ B W x] = −E[(Bᵀx) · (Wx)]."""
    return -(geometry.project(x, feedback) * y).sum() / x.shape[0]


def null(feedback: Tensor, weight: Tensor, x: Tensor, y: Tensor, geometry: LayerGeometry) -> Tensor:
    """R = E‖B W x‖²."""
    return geometry.reconstruct(y, feedback, x.shape).pow(2).sum() / x.shape[0]


def sparse(feedback: Tensor, weight: Tensor, x: Tensor, y: Tensor, geometry: LayerGeometry) -> Tensor:
    """R = E‖Bᵀ x‖² (the code's constant E‖Wx‖² is dropped)."""
    return geometry.project(x, feedback).pow(2).sum() / x.shape[0]


def self_(feedback: Tensor, weight: Tensor, x: Tensor, y: Tensor, geometry: LayerGeometry) -> Tensor:
    """R = −tr(B W) = −Σ F ⊙ W."""
    return -(feedback * weight).sum()


PRIMITIVES: dict[str, Primitive] = {
    "decay": decay,
    "amp": amp,
    "null": null,
    "sparse": sparse,
    "self": self_,
}
# Primitives that read the layer's input (the others need only the weights).
DATA_PRIMITIVES = frozenset({"amp", "null", "sparse"})


def regularizer(
    coefficients: dict[str, float],
    feedback: Tensor,
    weight: Tensor,
    x: Tensor,
    y: Tensor,
    geometry: LayerGeometry,
) -> Tensor:
    """``R = Σ_k c_k P_k(B)``: the layer-wise regularizer a learned-feedback rule descends."""
    total = feedback.new_zeros(())
    for name, c in coefficients.items():
        if c:
            total = total + c * PRIMITIVES[name](feedback, weight, x, y, geometry)
    return total


def regularizer_gradient(
    coefficients: dict[str, float],
    feedback: Tensor,
    weight: Tensor,
    x: Tensor,
    y: Tensor,
    geometry: LayerGeometry,
) -> Tensor:
    """Closed-form ``∂R/∂F`` of :func:`regularizer`, without autograd.

    With ``G(u, v) = Σ_batch v uᵀ`` (a weight gradient), p = Fx and r = Fᵀy:
    ∂amp = −G(x, y)/N, ∂null = 2 G(r, y)/N, ∂sparse = 2 G(x, p)/N, ∂decay = 2F, ∂self = −W.
    G is linear in each argument, so the data terms cost at most two weight-gradient convolutions.
    """
    c = {k: float(v) for k, v in coefficients.items() if v}
    grad = torch.zeros_like(feedback)
    if "decay" in c:
        grad.add_(feedback, alpha=2 * c["decay"])
    if "self" in c:
        grad.add_(weight, alpha=-c["self"])
    if not c.keys() & DATA_PRIMITIVES:
        return grad
    n = x.shape[0]
    paired_with_x = None  # v in G(x, v)
    paired_with_y = None  # u in G(u, y)
    if "sparse" in c:
        paired_with_x = geometry.project(x, feedback) * (2 * c["sparse"])
    if "null" in c:
        paired_with_y = geometry.reconstruct(y, feedback, x.shape) * (2 * c["null"])
    if "amp" in c:
        if paired_with_y is not None:
            paired_with_y = paired_with_y - c["amp"] * x
        elif paired_with_x is not None:
            paired_with_x = paired_with_x - c["amp"] * y
        else:
            paired_with_y = -c["amp"] * x
    if paired_with_x is not None:
        grad.add_(geometry.weight_grad(x, paired_with_x, feedback.shape), alpha=1 / n)
    if paired_with_y is not None:
        grad.add_(geometry.weight_grad(paired_with_y, y, feedback.shape), alpha=1 / n)
    return grad
