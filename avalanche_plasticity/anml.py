"""ANML, A Neuromodulated Meta-Learning algorithm (Beaulieu et al., "Learning to Continually Learn", 2020).

Two networks read the same image ``x``:

- the **neuromodulatory network** (NM): conv blocks, then a linear layer and a sigmoid, giving the **gate**
  ``m(x) in (0, 1)^F``;
- the **prediction network** (PN): conv blocks giving features ``h(x) in R^F``, then a linear **head**.

The prediction is ``y = W (h(x) * m(x)) + b``: the gate multiplies the PN's features element by element,
so it selects which features take part in each prediction *and*, since ``dL/dW = dL/dy (h * m)^T``, which
head weights a sample can change (the gate gates plasticity; ``m = 0`` freezes them for that sample).

Choices, following the paper and the authors' code (``uvm-neurobotics-lab/ANML``: ``mrcl_classification.py
--rln 7``, ``model/meta_learner.py``, ``evaluate_classification.py --rln 13``; and their reimplementation
``higherANML``: ``anml.py``, ``models/anml.py``):

- **Conv blocks** are ``conv 3x3 (no padding) -> instance norm (affine) -> ReLU -> max-pool 2``, with no
  pooling after the last block by default: 28x28 gives 3x3 maps, so 256 PN channels give the paper's
  2304 features and 112 NM channels 1008 NM features. (The original code uses batch norm over one image at a
  time, i.e. instance norm; higherANML uses ``InstanceNorm2d(affine=True)``.) For larger images higherANML
  adds blocks and pools after the last one (84x84: 4 blocks, ``pool_last=True``, 3x3 maps).
- **Inner loop (meta-training)**: plain SGD, one image per step, at ``inner_lr`` on the *whole PN* (conv
  weights and biases, the norms' affine parameters and the head), the NM fixed: ``--rln 7`` freezes the
  7 NM layers only, and higherANML's inner optimizer holds ``rln`` (the PN's convs) and ``fc``. This is
  ``plastic="pn"``. ``plastic="head"`` makes only the head plastic (the PN convs then change in the outer
  loop only, like OML's RLN): cheaper, and the same rule as at deployment.
- **Outer loop**: everything (NM, gate layer, PN and head initial weights) is meta-learned by Adam on the
  query loss after the trajectory, back-propagated through every inner SGD step *with second-order
  terms* (the inner step is OML's, :meth:`avalanche_plasticity.oml.OMLLearner.step`; ANML issue #3
  reports that the original code's meta-gradient missed them; higherANML keeps them).
- **Head start**: ``head_init="zero"`` (default) starts the head at zero in every episode and at
  deployment, outside the meta-gradient; ``"meta"`` meta-learns its initial weights (ANML's ``fc`` is
  meta-learned, but the trained class's row is re-initialised before each inner loop and the whole head
  before meta-test). See :class:`ANMLConfig`.
- **Meta-test (deployment)**: only the head learns; the NM and the PN's convs stay at their meta-learned
  weights (``evaluate_classification.py --rln 13`` freezes all but the final ``fc``; higherANML's
  ``test_train`` freezes ``nm`` and ``rln``). The paper's evaluation also re-initialises the head
  (Kaiming-normal weights, zero bias) and trains it by Adam at a searched rate; see
  :class:`avalanche_plasticity.strategies.ANML` (``reset_head``, ``optimizer``).

Differences from the paper's meta-training, imposed by the shared engine
(:func:`avalanche_plasticity.meta_learning.meta_train`): an episode is a multi-class trajectory of the task
source (e.g. 10 classes x 5 images, class by class) and the query holds held-out images of *all* its
classes, which plays the remember set's part (ANML: 20 images of one class, then those plus 64 random
images); classes land on random head units each episode, which stops the head from memorising classes
(the role of ANML's re-initialisation, "lobotomy", of the trained class's head row).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from .networks import kaiming_linear
from .oml import OMLLearner

Tensor = torch.Tensor

TRUNK_KEYS = {"channels", "layers", "image_size", "in_channels", "pool_last"}
PLASTIC = ("pn", "head")
HEAD_INIT = ("zero", "meta")


def is_number(value: object, types: type | tuple[type, ...]) -> bool:
    """``value`` is an instance of ``types`` and not a bool."""
    return isinstance(value, types) and not isinstance(value, bool)


def trunk_output(spec: dict, name: str) -> tuple[int, int]:
    """``(channels, side)`` of the maps a conv-block trunk ``spec`` gives; ``ValueError`` naming ``name``
    and the key for a bad spec."""
    if not isinstance(spec, dict):
        raise ValueError(f"{name} must be a dict with keys {sorted(TRUNK_KEYS)}, got {spec!r}")
    unknown = set(spec) - TRUNK_KEYS
    if unknown:
        raise ValueError(f"{name} has unknown key(s) {sorted(unknown)}; accepted: {sorted(TRUNK_KEYS)}")
    for key in ("channels", "layers", "image_size"):
        if key not in spec:
            raise ValueError(f"{name} needs {key!r} (keys: channels, layers, image_size[, in_channels])")
    for key, low in (("channels", 1), ("layers", 1), ("image_size", 3), ("in_channels", 1)):
        v = spec.get(key, 1)
        if not is_number(v, int) or v < low:
            raise ValueError(f"{name}['{key}'] must be an int >= {low}, got {v!r}")
    if not isinstance(spec.get("pool_last", False), bool):
        raise ValueError(f"{name}['pool_last'] must be a bool, got {spec['pool_last']!r}")
    side = spec["image_size"]
    for layer in range(spec["layers"]):
        side -= 2  # 3x3 conv, no padding
        if layer < spec["layers"] - 1 or spec.get("pool_last", False):
            side //= 2
        if side < 2:  # instance norm needs more than one position per map
            raise ValueError(
                f"{name}: image_size {spec['image_size']} is too small for {spec['layers']} conv blocks "
                "(3x3 conv without padding, then 2x2 max-pool; every map must stay at least 2x2); use "
                "fewer layers or larger images"
            )
    return spec["channels"], side


@dataclass
class ANMLConfig:
    """Architecture and inner loop of an ANML learner.

    :param nm_trunk: the neuromodulatory network's conv blocks: ``channels``, ``layers``, ``image_size``,
        optional ``in_channels`` (default 1) and ``pool_last`` (default False). Paper: 112 channels,
        3 layers, 28x28.
    :param pn_trunk: the prediction network's conv blocks, same keys; same ``image_size`` and
        ``in_channels`` as ``nm_trunk``. Paper: 256 channels, 3 layers (2304 features).
    :param num_outputs: units of the PN's linear head (paper: 1000).
    :param task: ``"classification"`` (cross-entropy); the only task ANML is defined for here.
    :param inner_lr: SGD learning rate of the inner loop (ANML's ``--update_lr 0.1``).
    :param plastic: what the inner loop updates: ``"pn"`` the whole prediction network (convs, norms and
        head; ANML's code) or ``"head"`` its linear head only. The NM is never plastic.
    :param head_init: where the head starts each episode (and at deployment): ``"zero"`` from zeros, not
        meta-learned, or ``"meta"`` from meta-learned initial weights (as OML's PLN and ANML's ``fc``).
        ANML re-initialises the trained class's head row before every inner loop (so that the learner
        cannot memorise classes) and the whole head before meta-test; a zero head is the closest fit to
        our episodes. With ``"meta"`` a few units were meta-learned into units that win for every image
        (cpu size, 600 meta-updates: 0 % at 10 classes, 57 % at 50, at the rate picked at 50; zero head:
        89 % and 76 %).
    :param first_order: drop the second-order terms of the meta-gradient (for ablations only).
    """

    nm_trunk: dict = field(default_factory=lambda: dict(channels=16, layers=3, image_size=28))
    pn_trunk: dict = field(default_factory=lambda: dict(channels=32, layers=3, image_size=28))
    num_outputs: int = 200
    task: Literal["classification"] = "classification"
    inner_lr: float = 0.1
    plastic: Literal["pn", "head"] = "pn"
    head_init: Literal["zero", "meta"] = "zero"
    first_order: bool = False

    def __post_init__(self) -> None:
        for name in ("nm_trunk", "pn_trunk"):
            trunk_output(getattr(self, name), name)
            setattr(self, name, dict(getattr(self, name)))  # a copy: the caller's dict stays its own
        for key, default in (("image_size", None), ("in_channels", 1)):
            a, b = self.nm_trunk.get(key, default), self.pn_trunk.get(key, default)
            if a != b:
                raise ValueError(f"nm_trunk and pn_trunk must read the same {key}, got {a} and {b}")
        if not is_number(self.num_outputs, int) or self.num_outputs < 1:
            raise ValueError(f"num_outputs must be a positive int, got {self.num_outputs!r}")
        if self.task != "classification":
            raise ValueError(f"task must be 'classification' (ANML classifies images), got {self.task!r}")
        if not is_number(self.inner_lr, (int, float)) or not 0 < self.inner_lr < math.inf:
            raise ValueError(f"inner_lr must be a finite number > 0, got {self.inner_lr!r}")
        if self.plastic not in PLASTIC:
            raise ValueError(f"plastic must be one of {PLASTIC}, got {self.plastic!r}")
        if self.head_init not in HEAD_INIT:
            raise ValueError(f"head_init must be one of {HEAD_INIT}, got {self.head_init!r}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        size = self.pn_trunk["image_size"]
        return (self.pn_trunk.get("in_channels", 1), size, size)

    @property
    def feature_size(self) -> int:
        """Width of the PN's features (and of the gate)."""
        channels, side = trunk_output(self.pn_trunk, "pn_trunk")
        return channels * side * side


# ---------------------------------------------------------------------------------------------------
# Functional core: conv blocks over explicit parameter lists ``[w, b, gamma, beta] * layers``
# ---------------------------------------------------------------------------------------------------
def conv_block_params(spec: dict, generator: torch.Generator | None) -> list[Tensor]:
    """Initial ``[w, b, gamma, beta]`` per block: Kaiming-normal (fan-in, ReLU) weights, zero biases,
    unit norm gains (as ANML's code)."""
    params, c_in = [], spec.get("in_channels", 1)
    for _ in range(spec["layers"]):
        c = spec["channels"]
        w = torch.randn(c, c_in, 3, 3, generator=generator) * (2.0 / (c_in * 9)) ** 0.5
        params += [w, torch.zeros(c), torch.ones(c), torch.zeros(c)]
        c_in = c
    return params


def conv_blocks(params: Sequence[Tensor], x: Tensor, pool_last: bool = False, eps: float = 1e-5) -> Tensor:
    """``(N, C, H, W) -> (N, F)``: per block conv 3x3 (no padding), instance norm with gain/shift, ReLU,
    2x2 max-pool (not after the last block unless ``pool_last``). Pure, so ``torch.func.vmap`` runs it
    with a leading episode dimension on the parameters."""
    n = len(params) // 4
    for layer in range(n):
        w, b, gain, shift = params[4 * layer : 4 * layer + 4]
        x = F.instance_norm(F.conv2d(x, w, b), weight=gain, bias=shift, eps=eps)
        if layer < n - 1 or pool_last:
            x = F.max_pool2d(x, 2)  # before the ReLU: the same result (both are monotone), on 1/4 the data
        x = F.relu(x)
    return x.flatten(1)


def gated_head(head_weight: Tensor, head_bias: Tensor, features: Tensor, gate: Tensor | None) -> Tensor:
    """``W (h * m) + b`` batched over episodes: weights ``(E, K, F)``, features/gate ``(E, B, F)``."""
    h = features if gate is None else features * gate
    return torch.baddbmm(head_bias.unsqueeze(-2), h, head_weight.transpose(-1, -2))


class ANMLLearner(nn.Module):
    """NM (gate) and PN (conv features + linear head), with OML's meta-training interface.

    Fast weights (leading episode dimension ``E``): ``plastic="pn"``: the PN's conv parameters
    ``[w, b, gamma, beta] * layers`` then ``[head_weight, head_bias]``; ``plastic="head"``: the head only.

    ``features(x)`` is what does not change in the inner loop: the gated PN features ``h(x) * m(x)``
    (``plastic="head"``), or the gate and the flattened image ``[m(x), x]`` (``plastic="pn"``, where the
    PN's convs run inside :meth:`predict` with the fast weights).
    """

    step = OMLLearner.step  # one online SGD step on the fast weights (second order when tracked)
    adapt = OMLLearner.adapt

    def __init__(self, config: ANMLConfig, *, seed: int | None = None) -> None:
        super().__init__()
        self.config = config
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        nm_channels, nm_side = trunk_output(config.nm_trunk, "nm_trunk")
        self.neuromodulation = nn.ParameterList(map(nn.Parameter, conv_block_params(config.nm_trunk, g)))
        size = config.feature_size
        self.gate_weight = nn.Parameter(kaiming_linear(size, nm_channels * nm_side * nm_side, g))
        self.gate_bias = nn.Parameter(torch.zeros(size))
        self.pn = nn.ParameterList(map(nn.Parameter, conv_block_params(config.pn_trunk, g)))
        head = kaiming_linear(config.num_outputs, size, g)
        self.head_weight = nn.Parameter(head if config.head_init == "meta" else torch.zeros_like(head))
        self.head_bias = nn.Parameter(torch.zeros(config.num_outputs))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """``nm`` (NM convs and gate layer), ``pn`` (PN convs' initial weights) and ``head`` (the head's
        initial weights; empty with ``head_init="zero"``); one Adam over all in the paper, separate groups
        allow separate rates."""
        return {
            "nm": [*self.neuromodulation, self.gate_weight, self.gate_bias],
            "pn": list(self.pn),
            "head": [self.head_weight, self.head_bias] if self.config.head_init == "meta" else [],
        }

    @property
    def num_outputs(self) -> int:
        return self.config.num_outputs

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.config.input_shape

    def _images(self, x: Tensor) -> tuple[tuple[int, ...], Tensor]:
        shape = self.input_shape
        if x.dim() < 3 or tuple(x.shape[-3:]) != shape:
            dims = ", ".join(map(str, shape))
            raise ValueError(f"input must have shape (..., {dims}), got {tuple(x.shape)}")
        return x.shape[:-3], x.reshape(-1, *shape)

    def gate(self, x: Tensor) -> Tensor:
        """The neuromodulatory gate ``m(x) = sigmoid(V nm(x) + c)`` in ``(0, 1)^F`` (any leading dims)."""
        lead, flat = self._images(x)
        nm = conv_blocks(self.neuromodulation, flat, self.config.nm_trunk.get("pool_last", False))
        return torch.sigmoid(F.linear(nm, self.gate_weight, self.gate_bias)).reshape(*lead, -1)

    def pn_features(self, x: Tensor, params: Sequence[Tensor] | None = None) -> Tensor:
        """The PN's (ungated) features of ``x`` (any leading dims), at ``params`` (default: its weights)."""
        lead, flat = self._images(x)
        params = list(self.pn) if params is None else params
        return conv_blocks(params, flat, self.config.pn_trunk.get("pool_last", False)).reshape(*lead, -1)

    def gated_features(self, x: Tensor) -> Tensor:
        """``h(x) * m(x)``: the head's input at the PN's meta-learned weights (what deployment uses)."""
        return self.pn_features(x) * self.gate(x)

    def features(self, x: Tensor) -> Tensor:
        """What the inner loop reads from ``x`` (see the class docstring), shape ``(*lead, d)``."""
        if self.config.plastic == "head":
            return self.gated_features(x)
        lead, flat = self._images(x)
        return torch.cat([self.gate(flat), flat.flatten(1)], -1).reshape(*lead, -1)

    def initial_fast_weights(self, episodes: int = 1) -> list[Tensor]:
        params = [self.head_weight, self.head_bias]
        if self.config.head_init == "zero":  # zeros, outside the meta-gradient
            params = [p.detach() for p in params]
        if self.config.plastic == "pn":
            params = [*self.pn, *params]
        return [p.unsqueeze(0).expand(episodes, *p.shape) for p in params]

    def predict(self, fast_weights: Sequence[Tensor], features: Tensor) -> Tensor:
        """Logits ``(E, B, K)`` from fast weights and ``features (E, B, d)``."""
        head_weight, head_bias = fast_weights[-2:]
        if self.config.plastic == "head":
            return gated_head(head_weight, head_bias, features, None)
        size = self.config.feature_size
        gate, images = features.split([size, features.shape[-1] - size], -1)
        images = images.unflatten(-1, self.input_shape)
        pool_last = self.config.pn_trunk.get("pool_last", False)
        h = torch.func.vmap(lambda p, x: conv_blocks(p, x, pool_last))(list(fast_weights[:-2]), images)
        return gated_head(head_weight, head_bias, h, gate)


__all__ = ["ANMLConfig", "ANMLLearner", "conv_blocks", "gated_head", "trunk_output"]
