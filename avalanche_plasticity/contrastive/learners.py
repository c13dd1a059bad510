"""The two learners of Zucchet et al. (2022) as bilevel learners (functional core).

* :class:`ComplexSynapseLearner`: every weight of a network is fast; each synapse also holds a slow anchor
  omega_i and a strength lambda_i (stored as log lambda). The inner loss is

    L_in(phi, theta) = L_task(phi; support) + sum_i lambda_i (phi_i - omega_i)^2, theta = {omega, log lambda}

  and phi starts at omega. (No factor 1/2: the solver and the meta-gradient differentiate this same
  function, so the pull is 2 lambda (phi - omega) in both.)
* :class:`GainModulationLearner`: a body whose hidden units are modulated top-down by fast per-neuron gains
  and shifts, ``h_l = act(g_l * (W_l h_{l-1} + c_l) + s_l)``, with a fast readout ``y = V h_L + v``. The body
  (W, c) is meta-learned; so are the initial gains, shifts and readout, which the fast weights start from
  and are pulled toward with ``reg_strength`` (with ``reg_strength = 0`` their contrastive meta-gradient is
  zero and only the body is meta-learned, as in the paper's bandit code).

Networks are given by a spec: ``{"kind": "mlp", "sizes": [in, hidden..., out], "activation": "tanh"}`` or
``{"kind": "conv", "in_channels": 1, "channels": 32, "blocks": 4, "image_size": 28, "num_outputs": 5,
"norm": "batch"}`` (3x3 conv, normalisation (``"batch"``: batch statistics; ``"layer"``: per example), ReLU,
2x2 max-pool on the first three blocks, linear head).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from ..checkpoint import load_registered, save_atomic
from .estimators import Task
from .solvers import Params

Tensor = torch.Tensor
ACTIVATIONS = {"tanh": torch.tanh, "relu": F.relu}
# Conv normalisation: "batch" normalises over the batch's statistics (the few-shot convention; with one
# image per step it normalises each channel over that image's map alone, so online learning at batch size 1
# sees other features than batched evaluation); "layer" normalises each example over its own channels and
# map (GroupNorm with one group), identical at any batch size: the choice for online, continual deployment.
NORMS = ("batch", "layer")
#: A regulariser as pulls: ``{fast weight: (c, anchor)}``, ``R = sum c/2 (phi - anchor)^2`` (c a tensor
#: of the weight's shape or a number).
Pulls = dict[str, tuple[Tensor | float, Tensor]]


def pull_regulariser(fast: Params, pulls: Pulls) -> Tensor:
    """``R = sum_i c_i / 2 (phi_i - anchor_i)^2`` of ``pulls`` at the fast weights (0, on their device and
    in their dtype, without pulls)."""
    if not pulls:
        like = next(iter(fast.values()), None)
        return torch.zeros(()) if like is None else like.new_zeros(())
    return sum((0.5 * c * (fast[n] - anchor).square()).sum() for n, (c, anchor) in pulls.items())


def check_network_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Validate a network spec and fill its defaults."""
    if not isinstance(spec, dict) or spec.get("kind") not in ("mlp", "conv"):
        raise ValueError(f"network must be a dict with kind 'mlp' or 'conv', got {spec!r}")
    if spec["kind"] == "mlp":
        sizes = [int(s) for s in spec.get("sizes", ())]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(
                f"mlp network needs sizes [in, hidden..., out] of positive ints, got {spec.get('sizes')!r}"
            )
        act = spec.get("activation", "tanh")
        if act not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {act!r}")
        return {"kind": "mlp", "sizes": sizes, "activation": act}
    out = {
        "kind": "conv",
        "in_channels": 1,
        "channels": 32,
        "blocks": 4,
        "image_size": 28,
        "num_outputs": 5,
        "norm": "batch",
    }
    unknown = set(spec) - set(out)
    if unknown:
        raise ValueError(f"unknown conv network keys {sorted(unknown)}; accepted: {sorted(out)}")
    out.update(spec)
    for k in ("in_channels", "channels", "blocks", "image_size", "num_outputs"):
        if not isinstance(out[k], int) or out[k] < 1:
            raise ValueError(f"conv network {k} must be a positive int, got {out[k]!r}")
    if out["norm"] not in NORMS:
        raise ValueError(f"conv network norm must be one of {sorted(NORMS)}, got {out['norm']!r}")
    return out


def conv_output_size(spec: dict[str, Any]) -> int:
    size = spec["image_size"]
    for b in range(spec["blocks"]):
        if b < 3:
            size //= 2
    if size < 1:
        raise ValueError(f"image_size {spec['image_size']} is too small for {spec['blocks']} blocks")
    return size


def build_network(spec: dict[str, Any], seed: int) -> nn.Module:
    """An ``nn.Module`` from a spec (Kaiming-uniform PyTorch defaults, seeded)."""
    torch.manual_seed(seed)
    if spec["kind"] == "mlp":
        s = spec["sizes"]
        act = nn.Tanh if spec["activation"] == "tanh" else nn.ReLU
        layers: list[nn.Module] = []
        for i in range(len(s) - 1):
            layers.append(nn.Linear(s[i], s[i + 1]))
            if i < len(s) - 2:
                layers.append(act())
        return nn.Sequential(*layers)
    c_in, layers = spec["in_channels"], []
    for b in range(spec["blocks"]):
        layers += [
            nn.Conv2d(c_in, spec["channels"], 3, padding=1),
            nn.BatchNorm2d(spec["channels"], track_running_stats=False)
            if spec.get("norm", "batch") == "batch"
            else nn.GroupNorm(1, spec["channels"]),
            nn.ReLU(),
        ]
        if b < 3:
            layers.append(nn.MaxPool2d(2))
        c_in = spec["channels"]
    size = conv_output_size(spec)
    layers += [nn.Flatten(), nn.Linear(spec["channels"] * size * size, spec["num_outputs"])]
    return nn.Sequential(*layers)


def input_shape(spec: dict[str, Any]) -> tuple[int, ...]:
    if spec["kind"] == "mlp":
        return (spec["sizes"][0],)
    return (spec["in_channels"], spec["image_size"], spec["image_size"])


def num_outputs(spec: dict[str, Any]) -> int:
    return spec["sizes"][-1] if spec["kind"] == "mlp" else spec["num_outputs"]


def task_loss(output: Tensor, target: Tensor, task: str) -> Tensor:
    """Mean MSE (regression) or cross-entropy (classification) over a batch."""
    if task == "regression":
        return (output - target.reshape(output.shape)).square().mean()
    return F.cross_entropy(output, target.reshape(-1).long())


def _check_common(task: str, inner_lr: float) -> None:
    if task not in ("regression", "classification"):
        raise ValueError(f"task must be 'regression' or 'classification', got {task!r}")
    if isinstance(inner_lr, bool) or not (isinstance(inner_lr, (int, float)) and 0 < inner_lr < math.inf):
        raise ValueError(f"inner_lr must be a finite number > 0, got {inner_lr!r}")


class _BilevelModule(nn.Module):
    """Shared parts: the task loss, inner/outer losses from ``predict`` and ``regulariser``."""

    config: Any

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def input_shape(self) -> tuple[int, ...]:
        return input_shape(self.config.network)

    @property
    def num_outputs(self) -> int:
        return num_outputs(self.config.network)

    def theta(self) -> Params:
        """The meta-parameters as plain (detached) tensors."""
        return {k: v.detach() for k, v in self.meta_parameters().items()}

    def predict(self, fast: Params, theta: Params, x: Tensor) -> Tensor:
        raise NotImplementedError

    def features(self, fast: Params, theta: Params, x: Tensor) -> Tensor:
        """The readout's input for ``x``, shape ``(B, d)`` (what the network represents below its head)."""
        raise NotImplementedError

    def strongest_pull(self) -> float:
        """The largest coefficient ``c`` of the regulariser's ``c (phi - anchor)^2`` terms (SGD at rate
        ``lr`` on it overshoots when ``lr * c >= 1``)."""
        raise NotImplementedError

    def regulariser_pulls(self, theta: Params) -> Pulls:
        """The regulariser as pulls: ``{fast weight: (c, anchor)}`` with ``R = sum c/2 (phi - anchor)^2``,
        so ``dR/dphi = c (phi - anchor)`` (fast weights it leaves free are not named). Differentiable in
        ``theta``; computed once per task, it spares the inner loop an autograd pass through ``R``."""
        raise NotImplementedError

    def regulariser(self, fast: Params, theta: Params) -> Tensor:
        """``R(phi, theta) = sum_i c_i / 2 (phi_i - anchor_i)^2`` over :meth:`regulariser_pulls`."""
        return pull_regulariser(fast, self.regulariser_pulls(theta))

    def support_loss(self, fast: Params, theta: Params, task: Task) -> Tensor:
        """The task loss on the support set (L_in without the regulariser)."""
        return task_loss(self.predict(fast, theta, task.support_x), task.support_y, self.task)

    def inner_loss(self, fast: Params, theta: Params, task: Task) -> Tensor:
        """L_in = task loss on the support set + the learner's regulariser."""
        return self.support_loss(fast, theta, task) + self.regulariser(fast, theta)

    def outer_loss(self, fast: Params, theta: Params, task: Task) -> Tensor:
        """L_out = task loss on the query set."""
        return task_loss(self.predict(fast, theta, task.query_x), task.query_y, self.task)

    def adapt(self, task: Task, solver, theta: Params | None = None) -> Params:
        """Learn a task: minimise L_in from the initial fast weights (raises if ``solver`` misses its tol)."""
        from .solvers import minimise

        theta = self.theta() if theta is None else theta
        return minimise(
            lambda f: self.inner_loss(f, theta, task), self.initial_fast_weights(theta), solver
        ).fast

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        groups: dict[str, list[nn.Parameter]] = {}
        for name, p in self.meta_parameters().items():
            if p.requires_grad:
                groups.setdefault(name.split("/")[0], []).append(p)
        return groups


@dataclass
class ComplexSynapseConfig:
    """:param network: network spec (module docstring). :param task: ``"regression"`` or
    ``"classification"``. :param init_lambda: initial per-synapse strength lambda (> 0).
    :param learn_lambda: meta-learn log lambda (else only omega, the iMAML-style variant).
    :param inner_lr: learning rate of online SGD in the Avalanche strategy. :param seed: weight init.
    :param head_lambda: initial strength of the readout layer's synapses (> 0; default ``init_lambda``):
        consolidated hidden synapses (a large ``init_lambda``) under a free readout."""

    network: dict = field(default_factory=lambda: {"kind": "mlp", "sizes": [1, 40, 40, 1]})
    task: Literal["regression", "classification"] = "regression"
    init_lambda: float = 0.5
    learn_lambda: bool = True
    inner_lr: float = 0.05
    seed: int = 0
    head_lambda: float | None = None

    def __post_init__(self) -> None:
        self.network = check_network_spec(self.network)
        _check_common(self.task, self.inner_lr)
        for name in ("init_lambda", "head_lambda"):
            value = getattr(self, name)
            if name == "head_lambda" and value is None:
                continue
            if not (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and value > 0
                and math.isfinite(value)
            ):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _drop_fixed_strengths(module: nn.Module, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    """State-dict hook: strengths that are not meta-learned are the config's, so a saved file need not
    carry them (half a complex synapse's bytes)."""
    for k in [k for k in state_dict if k.startswith(f"{prefix}log_lambda.")]:
        del state_dict[k]


def _fill_fixed_strengths(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """Load pre-hook: the fixed strengths a file left out are the config's (older files carry them)."""
    for k, v in module.log_lambda.items():
        state_dict.setdefault(f"{prefix}log_lambda.{k}", v.detach().clone())


class ComplexSynapseLearner(_BilevelModule):
    """Complex synapses: fast weights phi anchored to meta-learned omega with meta-learned strengths."""

    def __init__(self, config: ComplexSynapseConfig) -> None:
        super().__init__()
        self.config = config
        net = build_network(config.network, config.seed)
        object.__setattr__(self, "_net", net)  # a template for functional_call; its weights are not used
        self._names = [n for n, _ in net.named_parameters()]
        key = lambda n: n.replace(".", "__")  # noqa: E731
        self.omega = nn.ParameterDict(
            {key(n): nn.Parameter(p.detach().clone()) for n, p in net.named_parameters()}
        )
        head = self._names[-1].split(".")[0]  # the last layer's module: the readout
        strength = lambda n: (  # noqa: E731
            config.head_lambda
            if config.head_lambda is not None and n.split(".")[0] == head
            else config.init_lambda
        )
        self.log_lambda = nn.ParameterDict(
            {
                key(n): nn.Parameter(
                    torch.full_like(p, math.log(strength(n))), requires_grad=config.learn_lambda
                )
                for n, p in net.named_parameters()
            }
        )
        if not config.learn_lambda:  # fixed by the config: left out of saved files, rebuilt on load
            self.register_state_dict_post_hook(_drop_fixed_strengths)
            self.register_load_state_dict_pre_hook(_fill_fixed_strengths)

    def meta_parameters(self) -> dict[str, nn.Parameter]:
        """``omega/<weight>`` and ``log_lambda/<weight>`` (the latter only with ``learn_lambda``)."""
        out = {f"omega/{n}": self.omega[n.replace(".", "__")] for n in self._names}
        if self.config.learn_lambda:
            out.update({f"log_lambda/{n}": self.log_lambda[n.replace(".", "__")] for n in self._names})
        return out

    def _get(self, theta: Params, group: str, name: str) -> Tensor:
        k = f"{group}/{name}"
        if k in theta:
            return theta[k]
        return getattr(self, group)[name.replace(".", "__")].detach()

    def initial_fast_weights(self, theta: Params) -> Params:
        """phi starts at omega."""
        return {n: self._get(theta, "omega", n) for n in self._names}

    def predict(self, fast: Params, theta: Params, x: Tensor) -> Tensor:
        return functional_call(self._net, fast, (x,))

    def features(self, fast: Params, theta: Params, x: Tensor) -> Tensor:
        body = self._net[:-1]  # every layer below the readout (the same module names)
        own = {n for n, _ in body.named_parameters()}
        return functional_call(body, {n: w for n, w in fast.items() if n in own}, (x,)).flatten(1)

    def strongest_pull(self) -> float:
        return max(float(v.detach().max().exp()) for v in self.log_lambda.values())

    def regulariser_pulls(self, theta: Params) -> Pulls:
        """``R = sum_i lambda_i (phi_i - omega_i)^2``: synapse i pulled by ``2 lambda_i`` toward omega_i."""
        return {
            n: (2.0 * torch.exp(self._get(theta, "log_lambda", n)), self._get(theta, "omega", n))
            for n in self._names
        }


@dataclass
class GainModulationConfig:
    """:param network: body + head spec (module docstring). :param reg_strength: pull
    ``reg_strength * ||phi - phi_init||^2`` of the fast gains/shifts/readout toward their meta-learned
    initial values (>= 0). :param activation: hidden nonlinearity of an MLP body."""

    network: dict = field(default_factory=lambda: {"kind": "mlp", "sizes": [1, 40, 40, 1]})
    task: Literal["regression", "classification"] = "regression"
    reg_strength: float = 0.1
    inner_lr: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        self.network = check_network_spec(self.network)
        _check_common(self.task, self.inner_lr)
        if not (isinstance(self.reg_strength, (int, float)) and 0 <= self.reg_strength < math.inf):
            raise ValueError(f"reg_strength must be a finite number >= 0, got {self.reg_strength!r}")


class GainModulationLearner(_BilevelModule):
    """Top-down gain modulation: fast per-neuron gains, shifts and readout on a meta-learned body."""

    def __init__(self, config: GainModulationConfig) -> None:
        super().__init__()
        self.config = config
        spec = config.network
        net = build_network(spec, config.seed)
        body = [m for m in net if isinstance(m, (nn.Linear, nn.Conv2d))]
        head = body.pop()
        self.body = nn.ParameterDict()
        widths = []
        for l, m in enumerate(body):
            self.body[f"weight{l}"] = nn.Parameter(m.weight.detach().clone())
            self.body[f"bias{l}"] = nn.Parameter(m.bias.detach().clone())
            widths.append(m.weight.shape[0])
        self.init = nn.ParameterDict()
        for l, w in enumerate(widths):
            self.init[f"gain{l}"] = nn.Parameter(torch.ones(w))
            self.init[f"shift{l}"] = nn.Parameter(torch.zeros(w))
        self.init["head_weight"] = nn.Parameter(head.weight.detach().clone())
        self.init["head_bias"] = nn.Parameter(head.bias.detach().clone())
        self.layers = len(widths)

    def meta_parameters(self) -> dict[str, nn.Parameter]:
        """``body/weight<l>``, ``body/bias<l>`` and ``init/<fast weight>``."""
        return {
            **{f"body/{k}": v for k, v in self.body.items()},
            **{f"init/{k}": v for k, v in self.init.items()},
        }

    def initial_fast_weights(self, theta: Params) -> Params:
        return {k: theta[f"init/{k}"] if f"init/{k}" in theta else v.detach() for k, v in self.init.items()}

    def predict(self, fast: Params, theta: Params, x: Tensor) -> Tensor:
        return F.linear(self.features(fast, theta, x), fast["head_weight"], fast["head_bias"])

    def features(self, fast: Params, theta: Params, x: Tensor) -> Tensor:
        spec = self.config.network
        body = lambda k: theta.get(f"body/{k}", self.body[k].detach())  # noqa: E731
        h = x
        for l in range(self.layers):
            g, s = fast[f"gain{l}"], fast[f"shift{l}"]
            if spec["kind"] == "mlp":
                z = F.linear(h, body(f"weight{l}"), body(f"bias{l}"))
                h = ACTIVATIONS[spec["activation"]](g * z + s)  # h_l = act(g_l (W_l h + c_l) + s_l)
            else:
                conv = F.conv2d(h, body(f"weight{l}"), body(f"bias{l}"), padding=1)
                if spec["norm"] == "batch":
                    z = F.batch_norm(conv, None, None, training=True)
                else:  # "layer": each example over its own channels and map, as at any batch size
                    z = F.group_norm(conv, 1)
                h = F.relu(g[:, None, None] * z + s[:, None, None])
                if l < 3:
                    h = F.max_pool2d(h, 2)
        return h.flatten(1)

    def strongest_pull(self) -> float:
        return float(self.config.reg_strength)

    def regulariser_pulls(self, theta: Params) -> Pulls:
        """``R = reg_strength ||phi - phi_init||^2``: every fast weight pulled by ``2 reg_strength`` toward
        its initial value (none when ``reg_strength`` is 0)."""
        if self.config.reg_strength == 0:
            return {}
        c = 2.0 * self.config.reg_strength
        return {k: (c, w) for k, w in self.initial_fast_weights(theta).items()}


LEARNERS: dict[str, tuple[type, type]] = {
    "ComplexSynapseLearner": (ComplexSynapseLearner, ComplexSynapseConfig),
    "GainModulationLearner": (GainModulationLearner, GainModulationConfig),
}


def save_bilevel_learner(learner: _BilevelModule, path: str | Path, **extra: Any) -> None:
    """Save a complex-synapse or gain-modulation learner (kind, config, weights) atomically."""
    save_atomic(
        {
            "kind": type(learner).__name__,
            "learner_config": dataclasses.asdict(learner.config),
            "state_dict": learner.state_dict(),
            **extra,
        },
        path,
    )


def load_bilevel_learner(path: str | Path, *, kind: str | None = None) -> _BilevelModule:
    """Rebuild a learner saved by :func:`save_bilevel_learner` or the bilevel meta-training loop.

    :raises CheckpointError: corrupt file, unknown kind, or weights that do not fit the config.
    """
    return load_registered(path, LEARNERS, kind=kind)
