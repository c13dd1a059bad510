"""Plain deep conv nets for the alignment benchmarks: depth is the number of conv layers."""

from __future__ import annotations

from torch import nn


def conv_net(
    depth: int = 4, *, width: int = 32, num_classes: int = 10, in_channels: int = 1, image_size: int = 28
) -> nn.Sequential:
    """``depth`` 3x3 conv layers (BatchNorm, ReLU; stride 2 at the second and third, so 28x28 inputs end at
    7x7) and a linear classifier on the flattened features. Every conv and the classifier take feedback
    weights after :func:`~avalanche_plasticity.alignment.convert`; BatchNorm stays backprop.
    """
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an int >= 1, got {depth!r}")
    layers: list[nn.Module] = []
    channels, size = in_channels, image_size
    for i in range(depth):
        stride = 2 if i in (1, 2) else 1
        size = (size + 1) // 2 if stride == 2 else size
        layers += [nn.Conv2d(channels, width, 3, stride=stride, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        channels = width
    layers += [nn.Flatten(), nn.Linear(width * size * size, num_classes)]
    return nn.Sequential(*layers)
