"""Synaptic Intelligence (Zenke, Poole & Ganguli 2017) that works on CPU: Avalanche's plugin with its
parameter snapshots copied.

Avalanche 0.6's ``SynapticIntelligencePlugin`` stores each snapshot as ``param.detach().cpu().flatten()``.
On a CUDA device ``.cpu()`` copies; on CPU it returns the live parameter, so every snapshot is a view of
the weights as they are now. The step taken in an iteration (new minus old weights) is then always zero,
so the path integral and every importance stay zero, and the anchor of the penalty moves with the weights:
the penalty is zero and SI trains exactly as Naive does, at any ``si_lambda``. This subclass takes the
snapshots as copies and is otherwise Avalanche's plugin: the same importance (path integral over the
squared distance travelled plus ``eps``, capped at 0.001) and the same penalty
``si_lambda / 2 * sum(importance * (theta - theta_anchor) ** 2)``.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.training.plugins import SupervisedPlugin
from avalanche.training.plugins import SynapticIntelligencePlugin as _AvalancheSI


def _snapshot(params: list[tuple[str, torch.Tensor]], target: dict[str, Any]) -> None:
    """Copy each ``(name, parameter)`` into ``target[name]`` (flat, on the CPU, not a view)."""
    for name, param in params:
        target[name].data = param.detach().flatten().to("cpu", copy=True)


class SynapticIntelligencePlugin(_AvalancheSI):
    """Avalanche's :class:`~avalanche.training.plugins.SynapticIntelligencePlugin` with copied snapshots
    (see the module docstring: on CPU Avalanche's own is a no-op). Same arguments: ``si_lambda`` (Zenke et
    al.'s c; one per experience or one for all), ``eps`` (the damping), ``excluded_parameters``."""

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        SupervisedPlugin.before_training_exp(self, strategy, **kwargs)
        self.create_syn_data(strategy.model, self.ewc_data, self.syn_data, self.excluded_parameters)
        # the tracked parameters, found once per experience (after Avalanche's model adaptation), not on
        # every step: the lookup walks the module tree (0.17 ms against a 1.1 ms online step of FLP's net)
        self._tracked = self.allowed_parameters(strategy.model, self.excluded_parameters)
        _snapshot(self._tracked, self.ewc_data[0])  # theta at the task's start
        for trajectory in self.syn_data["trajectory"].values():
            trajectory.data.fill_(0.0)

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        SupervisedPlugin.before_training_iteration(self, strategy, **kwargs)
        _snapshot(self._tracked, self.syn_data["old_theta"])

    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        SupervisedPlugin.after_training_iteration(self, strategy, **kwargs)
        syn = self.syn_data
        _snapshot(self._tracked, syn["new_theta"])
        for name, param in self._tracked:
            if param.grad is None:  # not used by this minibatch's loss: no step, nothing to integrate
                continue
            grad = param.grad.detach().flatten().to("cpu", copy=True)
            # omega_k -= g_k * delta theta_k (Zenke et al., eq. 3; Avalanche flips the sign later)
            syn["trajectory"][name].data += grad * (syn["new_theta"][name].data - syn["old_theta"][name].data)
