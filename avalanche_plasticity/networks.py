"""Networks: a conv trunk (the fixed, meta-learned representation) and functional plastic MLP layers.

Plastic layers are held as explicit tensors with a leading episode dimension ``E`` so that many
episodes run in one batched computation: weights ``(E, n_out, n_in)``, activities ``(E, B, n)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

Tensor = torch.Tensor


class ConvTrunk(nn.Module):
    """3x3 conv layers with ReLU and no batch norm (as FLP/OML), flattened to a feature vector.

    The FLP/OML trunk is 6 layers with strides (2, 1, 2, 1, 2, 2) on 84x84 input; the CPU-size default
    is 4 stride-2 layers on 28x28.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        channels: int = 64,
        strides: Sequence[int] = (2, 2, 2, 2),
        image_size: int = 28,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, size = in_channels, image_size
        for s in strides:
            layers += [nn.Conv2d(c_in, channels, 3, stride=s, padding=1), nn.ReLU()]
            c_in, size = channels, (size - 1) // s + 1
        self.body = nn.Sequential(*layers)
        for m in self.body:
            if isinstance(m, nn.Conv2d):  # Kaiming-normal (fan-in, ReLU), zero bias: keeps feature scale
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        self.in_shape = (in_channels, image_size, image_size)
        self.out_features = channels * size * size

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-3:] != self.in_shape:
            raise ValueError(
                f"input must have shape (..., {', '.join(map(str, self.in_shape))}), got {tuple(x.shape)}"
            )
        lead = x.shape[:-3]
        return self.body(x.reshape(-1, *self.in_shape)).reshape(*lead, self.out_features)


def kaiming_linear(n_out: int, n_in: int, generator: torch.Generator | None = None) -> Tensor:
    """Kaiming-normal (fan-in, ReLU gain) weight of shape (n_out, n_in)."""
    return torch.randn(n_out, n_in, generator=generator) * (2.0 / n_in) ** 0.5


def plastic_forward(
    weights: Sequence[Tensor], biases: Sequence[Tensor], x: Tensor, upto: int | None = None
) -> list[Tensor]:
    """Activities ``[a_0 = x, a_1, ..., a_L]`` of a ReLU MLP with a linear last layer.

    ``a_l = ReLU(W_l a_{l-1} + b_l)``; ``a_L = W_L a_{L-1} + b_L``. Weights are ``(E, n_l, n_{l-1})``,
    ``x`` is ``(E, B, n_0)``. ``upto`` stops after that many layers (the output is then not computed).
    """
    acts = [x]
    n = len(weights) if upto is None else upto
    for l in range(n):
        z = torch.baddbmm(biases[l].unsqueeze(-2), acts[-1], weights[l].transpose(-1, -2))
        acts.append(z if l == len(weights) - 1 else F.relu(z))
    return acts


def baseline_model(learner_config: object) -> nn.Module:
    """A standard network with the same architecture as a learner, randomly initialised by torch's default
    init (for Naive, EWC, Replay): the optional conv trunk (``trunk``), then a ReLU MLP over ``layer_sizes``
    (FLP, rules) or ``rln_sizes + pln_sizes[1:]`` (OML), linear output."""
    if hasattr(learner_config, "layer_sizes"):
        sizes = list(learner_config.layer_sizes)
    else:
        sizes = [*learner_config.rln_sizes, *learner_config.pln_sizes[1:]]
    layers: list[nn.Module] = []
    if getattr(learner_config, "trunk", None) is not None:
        layers.append(ConvTrunk(**learner_config.trunk))
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
