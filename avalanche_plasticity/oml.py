"""OML: Online-aware Meta-Learning (Javed & White, NeurIPS 2019).

The model is ``f(x) = g_W(phi_theta(x))``: a representation-learning network (RLN) ``phi_theta`` that is
meta-learned and then frozen, and a prediction-learning network (PLN) ``g_W`` learned online by plain
SGD. Meta-training unrolls the online SGD of the PLN over a trajectory,

    W_j = W_{j-1} - alpha * grad_W l(g_{W_{j-1}}(phi(x_j)), y_j)

and back-propagates the query loss through every step *with second-order terms* (``create_graph=True``),
the fix that OML's authors applied in 2020 and that the FLP reference baseline lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from .networks import ConvTrunk, kaiming_linear, plastic_forward

Tensor = torch.Tensor


@dataclass
class OMLConfig:
    """Architecture of an OML learner.

    :param rln_sizes: MLP of the RLN after the (optional) trunk, input features first; its last size is
        the representation width. ``(11,)`` means no MLP layers.
    :param pln_sizes: sizes of the PLN, representation width first, outputs last.
    :param task: ``"regression"`` (MSE) or ``"classification"`` (cross-entropy).
    :param inner_lr: online SGD learning rate of the PLN (0.003 sine, 0.03 Omniglot in the paper).
    :param first_order: drop the second-order terms (the buggy variant; for ablations only).
    :param trunk: conv trunk spec as in :class:`avalanche_plasticity.flp.FLPConfig`.
    """

    rln_sizes: tuple[int, ...] = (11, 100, 100)
    pln_sizes: tuple[int, ...] = (100, 100, 1)
    task: Literal["regression", "classification"] = "regression"
    inner_lr: float = 0.003
    first_order: bool = False
    trunk: dict | None = field(default=None)

    def __post_init__(self) -> None:
        self.rln_sizes = tuple(int(n) for n in self.rln_sizes)
        self.pln_sizes = tuple(int(n) for n in self.pln_sizes)
        if len(self.pln_sizes) < 2:
            raise ValueError(f"pln_sizes needs >= 2 sizes, got {self.pln_sizes}")
        if self.rln_sizes[-1] != self.pln_sizes[0]:
            raise ValueError(
                f"rln_sizes[-1] ({self.rln_sizes[-1]}) must equal pln_sizes[0] ({self.pln_sizes[0]})"
            )
        if self.task not in ("regression", "classification"):
            raise ValueError(f"task must be 'regression' or 'classification', got {self.task!r}")
        if min(self.rln_sizes + self.pln_sizes) < 1:
            raise ValueError(
                f"rln_sizes and pln_sizes must be positive, got {self.rln_sizes}, {self.pln_sizes}"
            )
        lr = self.inner_lr
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < float("inf"):
            raise ValueError(f"inner_lr must be a finite number > 0, got {lr!r}")


def task_loss(output: Tensor, target: Tensor, task: str) -> Tensor:
    """Per-episode mean loss, shape ``(E,)``: MSE for regression, cross-entropy for classification."""
    if task == "regression":
        return (output - target).square().flatten(1).mean(1)
    E = output.shape[0]
    return (
        F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1), reduction="none")
        .reshape(E, -1)
        .mean(1)
    )


class OMLLearner(nn.Module):
    """RLN (trunk + MLP, meta-learned, frozen online) and PLN (initial weights meta-learned, SGD online).

    PLN fast weights are the list ``[W_1, b_1, W_2, b_2, ...]`` with a leading episode dimension.
    """

    def __init__(self, config: OMLConfig, *, seed: int | None = None) -> None:
        super().__init__()
        self.config = config
        if seed is not None:
            torch.manual_seed(seed)
        layers: list[nn.Module] = []
        if config.trunk is not None:
            trunk = ConvTrunk(**config.trunk)
            if trunk.out_features != config.rln_sizes[0]:
                raise ValueError(
                    f"trunk gives {trunk.out_features} features but rln_sizes[0] is {config.rln_sizes[0]}"
                )
            layers.append(trunk)
        for a, b in zip(config.rln_sizes[:-1], config.rln_sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.rln = nn.Sequential(*layers)
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        s = config.pln_sizes
        self.pln_weights = nn.ParameterList(
            [nn.Parameter(kaiming_linear(s[l + 1], s[l], g)) for l in range(len(s) - 1)]
        )
        self.pln_biases = nn.ParameterList([nn.Parameter(torch.zeros(s[l + 1])) for l in range(len(s) - 1)])

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """``rln`` and ``pln_init`` (one Adam over both in the paper; separate groups allow separate lrs)."""
        return {"rln": list(self.rln.parameters()), "pln_init": [*self.pln_weights, *self.pln_biases]}

    @property
    def num_outputs(self) -> int:
        return self.config.pln_sizes[-1]

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.config.trunk is not None:
            return self.rln[0].in_shape
        return (self.config.rln_sizes[0],)

    def features(self, x: Tensor) -> Tensor:
        """RLN representation of ``x`` (any leading dims)."""
        lead = x.shape[: x.dim() - len(self.input_shape)]
        return self.rln(x.reshape(-1, *self.input_shape)).reshape(*lead, -1)

    def initial_fast_weights(self, episodes: int = 1) -> list[Tensor]:
        out = []
        for w, b in zip(self.pln_weights, self.pln_biases, strict=True):
            out += [w.unsqueeze(0).expand(episodes, *w.shape), b.unsqueeze(0).expand(episodes, *b.shape)]
        return out

    def predict(self, fast_weights: Sequence[Tensor], features: Tensor) -> Tensor:
        return plastic_forward(fast_weights[0::2], fast_weights[1::2], features)[-1]

    def step(
        self,
        fast_weights: Sequence[Tensor],
        features: Tensor,
        target: Tensor,
        create_graph: bool | None = None,
    ) -> list[Tensor]:
        """One online SGD step on the PLN, independently per episode (losses summed over episodes)."""
        track = torch.is_grad_enabled()  # building a meta-gradient graph?
        if create_graph is None:
            create_graph = track and not self.config.first_order
        with torch.enable_grad():
            # Outside a tracked graph, differentiate w.r.t. fresh leaves (views of parameters made under
            # no_grad still claim requires_grad, but are not part of any graph).
            fast = [w if track and w.requires_grad else w.detach().requires_grad_() for w in fast_weights]
            loss = task_loss(self.predict(fast, features), target, self.config.task).sum()
            grads = torch.autograd.grad(loss, fast, create_graph=create_graph)
            lr = self.config.inner_lr
            new = [w - lr * g for w, g in zip(fast, grads, strict=True)]  # W_j = W_{j-1} - alpha grad
        return new if track else [w.detach() for w in new]

    def adapt(self, fast_weights: Sequence[Tensor], features: Tensor, targets: Tensor) -> list[Tensor]:
        """Online SGD over a trajectory ``features (E, T, B, d)``, ``targets (E, T, B[, 1])``."""
        fast = list(fast_weights)
        for t in range(features.shape[1]):
            fast = self.step(fast, features[:, t], targets[:, t])
        return fast
