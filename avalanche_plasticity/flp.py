"""Feedback and Local Plasticity (FLP): Lindsey & Litwin-Kumar, NeurIPS 2020.

A feedback signal ``s`` (the prediction error ``y - y_hat`` for regression, ``onehot(y)`` for
classification) reaches every plastic layer directly through meta-learned feedback weights, sets a
post-synaptic target, and a local Oja (or Hebbian) rule moves the forward weights toward it:

    a~_l = beta_l * ReLU(B_l s + c_l) + (1 - beta_l) * a_l              (target activity)
    W_l <- W_l + eta_l (.) (a~_l^T a_{l-1} - diag(sum_b a~_l^2) W_l)    (Oja; Hebbian drops the decay)

For classification the output target is the label itself, ``a~_L = onehot(y)``. Only weights change;
biases are fixed. Meta-learned: initial forward weights and biases (and the frozen trunk), feedback
weights ``B, c``, plasticity rates ``eta`` and feedback strengths ``beta``.

The online step :func:`flp_step` is a pure function of explicit tensors, batched over episodes and
differentiable with respect to every meta-parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from .memory_lean import LeanSpec, lean_trajectory
from .networks import ConvTrunk, kaiming_linear, plastic_forward

Tensor = torch.Tensor
Granularity = Literal["synapse", "neuron", "layer"]


@dataclass
class FLPConfig:
    """Architecture and rule of an FLP learner.

    :param layer_sizes: sizes of the plastic MLP, input features first, outputs last, e.g. (11, 100, 1).
    :param task: ``"regression"`` (feedback = prediction error) or ``"classification"`` (feedback =
        one-hot target, output target = the label).
    :param rule: ``"oja"`` or ``"hebb"`` (no decay term).
    :param plasticity_granularity: one rate per ``"synapse"``, per post-synaptic ``"neuron"`` or per
        ``"layer"``.
    :param init_plasticity: initial plasticity rate.
    :param init_feedback_strength: initial beta (1 = the target fully replaces the activity).
    :param linear_feedback: drop the ReLU on the feedback pathway.
    :param hidden_plasticity_multiplier: scales hidden-layer updates (FLP's Omniglot code uses 100).
    :param trunk: conv trunk spec ``{"channels", "strides", "image_size", "in_channels"}``, or None for
        an MLP on raw inputs. The trunk is meta-learned and never plastic.
    """

    layer_sizes: tuple[int, ...] = (11, 100, 100, 100, 1)
    task: Literal["regression", "classification"] = "regression"
    rule: Literal["oja", "hebb"] = "oja"
    plasticity_granularity: Granularity = "synapse"
    init_plasticity: float = 0.0
    init_feedback_strength: float = 0.5
    linear_feedback: bool = False
    hidden_plasticity_multiplier: float = 1.0
    trunk: dict | None = field(default=None)

    def __post_init__(self) -> None:
        self.layer_sizes = tuple(int(n) for n in self.layer_sizes)
        if len(self.layer_sizes) < 2 or min(self.layer_sizes) < 1:
            raise ValueError(f"layer_sizes needs >= 2 positive sizes, got {self.layer_sizes}")
        for name, value, allowed in (
            ("task", self.task, ("regression", "classification")),
            ("rule", self.rule, ("oja", "hebb")),
            ("plasticity_granularity", self.plasticity_granularity, ("synapse", "neuron", "layer")),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        for name, value, low in (
            ("init_plasticity", self.init_plasticity, None),
            ("init_feedback_strength", self.init_feedback_strength, None),
            ("hidden_plasticity_multiplier", self.hidden_plasticity_multiplier, 0.0),
        ):
            finite = (
                not isinstance(value, bool) and isinstance(value, int | float) and abs(value) < float("inf")
            )
            if not finite or (low is not None and value < low):
                accepted = "a finite number" + (f" >= {low:g}" if low is not None else "")
                raise ValueError(f"{name} must be {accepted}, got {value!r}")


@dataclass
class FLPMeta:
    """The meta-parameters the online rule reads (views of an :class:`FLPLearner`'s parameters)."""

    biases: Sequence[Tensor]
    feedback_weights: Sequence[Tensor]
    feedback_biases: Sequence[Tensor]
    plasticity_rates: Sequence[Tensor]
    feedback_strengths: Sequence[Tensor]
    task: str
    rule: str
    hidden_plasticity_multiplier: float
    linear_feedback: bool = False


def feedback_signal(output: Tensor, target: Tensor, task: str) -> Tensor:
    """``s = y - y_hat`` (regression) or ``onehot(y)`` (classification)."""
    if task == "regression":
        return target - output
    return F.one_hot(target, output.shape[-1]).to(output.dtype)


def oja_update(weight: Tensor, rate: Tensor, post: Tensor, pre: Tensor, hebbian: bool = False) -> Tensor:
    """Oja's rule summed over the minibatch: ``W + eta (.) (post^T pre - diag(sum post^2) W)``.

    ``weight (E, n, m)``, ``post (E, B, n)``, ``pre (E, B, m)``, ``rate`` broadcastable to ``weight``.
    """
    hebb = torch.bmm(post.transpose(-1, -2), pre)  # sum_b post_bi pre_bj
    if hebbian:
        return weight + rate * hebb
    return weight + rate * (hebb - post.square().sum(-2).unsqueeze(-1) * weight)


def onehot_oja_update(
    weight: Tensor, rate: Tensor, labels: Tensor, pre: Tensor, hebbian: bool = False
) -> Tensor:
    """:func:`oja_update` with ``post = onehot(labels)``, touching only the labelled rows.

    Row ``y`` moves toward each presynaptic pattern: ``W_y += eta_y (.) (a - W_y)`` (Oja) or
    ``W_y += eta_y (.) a`` (Hebb); equal to the dense update, without materialising it.
    ``labels (E, B)``, ``pre (E, B, m)``.
    """
    E, B = labels.shape
    n, m = weight.shape[-2:]
    ep = torch.arange(E, device=labels.device).unsqueeze(1).expand(E, B)
    hebb_rows = pre  # (E, B, m)
    # Same-label samples in one minibatch add up (the dense rule sums over the batch).
    counts = torch.zeros(E, n, dtype=pre.dtype, device=pre.device).index_put(
        (ep, labels), torch.ones_like(labels, dtype=pre.dtype), accumulate=True
    )
    delta = torch.zeros(E, n, m, dtype=pre.dtype, device=pre.device).index_put(
        (ep, labels), hebb_rows, accumulate=True
    )
    if not hebbian:
        delta = delta - counts.unsqueeze(-1) * weight
    touched = counts > 0
    return torch.where(touched.unsqueeze(-1), weight + rate * delta, weight)


def flp_step(fast_weights: Sequence[Tensor], meta: FLPMeta, x: Tensor, y: Tensor) -> list[Tensor]:
    """One online FLP update: ``(fast_weights, meta_params, batch) -> fast_weights``.

    :param fast_weights: plastic weights ``W_l`` of shape ``(E, n_l, n_{l-1})``.
    :param x: ``(E, B, n_0)`` features (trunk output); ``y``: ``(E, B, n_L)`` float targets for
        regression, ``(E, B)`` int labels for classification.
    """
    L = len(fast_weights)
    hebbian = meta.rule == "hebb"
    classification = meta.task == "classification"
    # Classification needs no output for the signal (s = onehot(y)); skip the output layer then.
    acts = plastic_forward(fast_weights, meta.biases, x, upto=L - 1 if classification else None)
    if classification:
        s = F.one_hot(y, fast_weights[-1].shape[-2]).to(x.dtype)
    else:
        s = y - acts[-1]
    new = []
    for l in range(L):
        W = fast_weights[l]
        rate = meta.plasticity_rates[l]
        if l < L - 1 and meta.hidden_plasticity_multiplier != 1.0:  # no full-size copy scaled by 1
            rate = rate * meta.hidden_plasticity_multiplier
        if l == L - 1 and classification:
            new.append(onehot_oja_update(W, rate, y, acts[l], hebbian))
            continue
        fb = torch.matmul(s, meta.feedback_weights[l].transpose(-1, -2)) + meta.feedback_biases[l]
        if not meta.linear_feedback:
            fb = F.relu(fb)
        beta = meta.feedback_strengths[l]
        target = beta * fb + (1 - beta) * acts[l + 1]  # a~_l
        new.append(oja_update(W, rate, target, acts[l], hebbian))
    return new


class FLPLearner(nn.Module):
    """Meta-parameters of an FLP learner plus its pure online rule.

    ``trunk`` (optional conv net) maps inputs to the plastic MLP's input features; it is meta-learned
    and fixed during online learning.
    """

    def __init__(self, config: FLPConfig, *, seed: int | None = None) -> None:
        super().__init__()
        self.config = config
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        if config.trunk is not None:
            if seed is not None:
                torch.manual_seed(seed)
            self.trunk: nn.Module = ConvTrunk(**config.trunk)
            if self.trunk.out_features != config.layer_sizes[0]:
                raise ValueError(
                    f"trunk gives {self.trunk.out_features} features but layer_sizes[0] is "
                    f"{config.layer_sizes[0]}"
                )
        else:
            self.trunk = nn.Identity()
        sizes = config.layer_sizes
        n_fb = sizes[-1]
        L = len(sizes) - 1
        self.initial_weights = nn.ParameterList(
            [nn.Parameter(kaiming_linear(sizes[l + 1], sizes[l], g)) for l in range(L)]
        )
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(sizes[l + 1])) for l in range(L)])
        # A classifier's output target is the label: its output layer has no feedback weights (an empty
        # (n_L, 0) tensor; drawn last, so the other layers' draws are the same either way).
        classification = config.task == "classification"
        self.feedback_weights = nn.ParameterList(
            [
                nn.Parameter(
                    torch.zeros(sizes[l + 1], 0)
                    if classification and l == L - 1
                    else kaiming_linear(sizes[l + 1], n_fb, g)
                )
                for l in range(L)
            ]
        )
        self.feedback_biases = nn.ParameterList([nn.Parameter(torch.zeros(sizes[l + 1])) for l in range(L)])
        shapes = {
            "synapse": lambda l: (sizes[l + 1], sizes[l]),
            "neuron": lambda l: (sizes[l + 1], 1),
            "layer": lambda l: (1, 1),
        }[config.plasticity_granularity]
        self.plasticity_rates = nn.ParameterList(
            [nn.Parameter(torch.full(shapes(l), float(config.init_plasticity))) for l in range(L)]
        )
        self.feedback_strengths = nn.ParameterList(
            [nn.Parameter(torch.tensor(float(config.init_feedback_strength))) for _ in range(L)]
        )
        if config.task == "classification":  # output target is the label: no feedback there
            self.feedback_weights[-1].requires_grad_(False)
            self.feedback_biases[-1].requires_grad_(False)
            self.feedback_strengths[-1].requires_grad_(False)

    # -- meta-parameter groups (each gets its own Adam, as in the reference code) -------------------
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Meta-parameters by group: ``forward`` (initial weights, biases, trunk), ``feedback``,
        ``plasticity``, ``feedback_strength``."""
        return {
            "forward": [*self.trunk.parameters(), *self.initial_weights, *self.biases],
            "feedback": [p for p in [*self.feedback_weights, *self.feedback_biases] if p.requires_grad],
            "plasticity": list(self.plasticity_rates),
            "feedback_strength": [p for p in self.feedback_strengths if p.requires_grad],
        }

    def meta(self) -> FLPMeta:
        c = self.config
        return FLPMeta(
            list(self.biases),
            list(self.feedback_weights),
            list(self.feedback_biases),
            list(self.plasticity_rates),
            list(self.feedback_strengths),
            c.task,
            c.rule,
            c.hidden_plasticity_multiplier,
            c.linear_feedback,
        )

    @property
    def num_outputs(self) -> int:
        return self.config.layer_sizes[-1]

    @property
    def input_shape(self) -> tuple[int, ...]:
        if isinstance(self.trunk, ConvTrunk):
            return self.trunk.in_shape
        return (self.config.layer_sizes[0],)

    def initial_fast_weights(self, episodes: int = 1) -> list[Tensor]:
        """The meta-learned initial weights, expanded to ``episodes`` independent copies."""
        return [w.unsqueeze(0).expand(episodes, *w.shape) for w in self.initial_weights]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # Checkpoints written before the classifier's output layer lost its feedback weights (bef57e6)
        # carry an (n_L, k) matrix there that no step ever read (the output's target is the label): drop it.
        key = f"{prefix}feedback_weights.{len(self.feedback_weights) - 1}"
        saved, own = state_dict.get(key), self.feedback_weights[-1]
        if self.config.task == "classification" and saved is not None and own.shape[-1] == 0:
            if saved.dim() == 2 and saved.shape[0] == own.shape[0] and saved.shape[1] > 0:
                state_dict[key] = saved.new_zeros(own.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def features(self, x: Tensor) -> Tensor:
        """Trunk features of ``x`` (any leading dims)."""
        return self.trunk(x)

    def predict(self, fast_weights: Sequence[Tensor], features: Tensor) -> Tensor:
        """Output ``(E, B, n_L)`` of the plastic MLP with the given weights."""
        return plastic_forward(fast_weights, list(self.biases), features)[-1]

    def step(self, fast_weights: Sequence[Tensor], features: Tensor, target: Tensor) -> list[Tensor]:
        """One online FLP update (see :func:`flp_step`)."""
        return flp_step(fast_weights, self.meta(), features, target)

    def adapt_memory_lean(
        self,
        fast_weights: Sequence[Tensor],
        features: Tensor,
        targets: Tensor,
        anchor_every: int | None = None,
    ) -> list[Tensor]:
        """:meth:`adapt` with the memory-lean backward pass (:mod:`avalanche_plasticity.memory_lean`): the
        same result and, up to rounding, the same gradients, keeping only each step's activities and a
        weight set every ``anchor_every`` steps (None: ``ceil(sqrt(T))``)."""
        c = self.config
        spec = LeanSpec(c.task, c.rule, c.hidden_plasticity_multiplier, c.linear_feedback, anchor_every)
        return lean_trajectory(
            fast_weights,
            list(self.biases),
            list(self.feedback_weights),
            list(self.feedback_biases),
            list(self.plasticity_rates),
            list(self.feedback_strengths),
            features,
            targets,
            spec,
        )

    def adapt(self, fast_weights: Sequence[Tensor], features: Tensor, targets: Tensor) -> list[Tensor]:
        """Run the rule over a trajectory: ``features (E, T, B, n_0)``, ``targets (E, T, B[, n_L])``."""
        meta = self.meta()
        for t in range(features.shape[1]):
            fast_weights = flp_step(fast_weights, meta, features[:, t], targets[:, t])
        return fast_weights
