"""How well feedback matches backprop: weight angles, norm ratios and delivered-gradient angles, per layer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .layers import backprop_mode, feedback_layers


def angle_degrees(a: Tensor, b: Tensor) -> float:
    """Angle between two tensors seen as flat vectors, in degrees (90 for a zero vector)."""
    a, b = a.detach().flatten().double(), b.detach().flatten().double()
    denom = a.norm() * b.norm()
    if denom == 0:
        return 90.0
    return float(torch.rad2deg(torch.arccos(torch.clamp(a @ b / denom, -1.0, 1.0))))


@contextmanager
def _sign_streams_kept(model: nn.Module) -> Iterator[None]:
    """Measure without moving the layers' own random streams (brSF draws magnitudes at every use)."""
    layers = [layer for _, layer in feedback_layers(model)]
    states = [layer._sign_generator.get_state() for layer in layers]
    try:
        yield
    finally:
        for layer, state in zip(layers, states, strict=True):
            layer._sign_generator.set_state(state)


def weight_angles(model: nn.Module) -> dict[str, float]:
    """Angle between each layer's B and Wᵀ (between F and W); direct-feedback layers have none."""
    with _sign_streams_kept(model):
        return {
            name: angle_degrees(layer.current_feedback(), layer.weight)
            for name, layer in feedback_layers(model)
            if layer.alignment_rule.feedback != "direct"
        }


def norm_ratios(model: nn.Module) -> dict[str, float]:
    """``‖B‖ / ‖W‖`` per layer."""
    with _sign_streams_kept(model):
        return {
            name: float(
                layer.current_feedback().detach().norm() / layer.weight.detach().norm().clamp_min(1e-12)
            )
            for name, layer in feedback_layers(model)
        }


def gradient_angles(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor,
    *,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Angle between the gradient each layer's input receives under the rule and the true (backprop) one.

    Both passes use the same batch, random state and module mode; buffers (BatchNorm statistics) and every
    random state they touch (torch's global RNG, the layers' own sign-magnitude streams) are restored
    afterwards, so measuring changes neither the model nor the run's random numbers.

    :param generator: seeds the random state of the passes (dropout, brSF magnitudes) when given; by
        default the passes see the current global RNG state, which is not advanced.
    """
    layers = list(feedback_layers(model))
    if not layers:  # nothing converted: no rule gradient to compare
        return {}
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    sign_states = [layer._sign_generator.get_state() for _, layer in layers]  # both passes start here
    seed = None if generator is None else int(torch.randint(0, 2**62, (), generator=generator).item())
    global_state = torch.get_rng_state()
    cuda = [inputs.device] if inputs.is_cuda else []
    cuda_states = [torch.cuda.get_rng_state(d) for d in cuda]

    def delivered() -> list[Tensor]:
        captured: list[Tensor] = []
        hooks = [
            layer.register_forward_pre_hook(lambda m, args: captured.append(args[0])) for _, layer in layers
        ]
        try:
            with torch.random.fork_rng(devices=cuda), torch.enable_grad():
                if seed is None:
                    torch.set_rng_state(global_state)
                    for d, state in zip(cuda, cuda_states, strict=True):
                        torch.cuda.set_rng_state(state, d)
                else:
                    torch.manual_seed(seed)
                for (_, layer), state in zip(layers, sign_states, strict=True):
                    layer._sign_generator.set_state(state)
                x = inputs.detach().clone().requires_grad_(True)
                loss = loss_fn(model(x), targets)
                wanted = [t for t in captured if t.requires_grad]
                grads = torch.autograd.grad(loss, wanted, allow_unused=True)
        finally:
            for h in hooks:
                h.remove()
        grads_iter = iter(grads)
        return [next(grads_iter) if t.requires_grad else None for t in captured]

    with _sign_streams_kept(model):
        rule_grads = delivered()
        with backprop_mode(model):
            true_grads = delivered()
    with torch.no_grad():
        for k, v in model.named_buffers():
            v.copy_(buffers[k])
    out = {}
    for (name, _), g, t in zip(layers, rule_grads, true_grads, strict=False):
        if g is not None and t is not None:
            out[name] = angle_degrees(g, t)
    return out
