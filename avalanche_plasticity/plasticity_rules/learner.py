"""A meta-learnable plasticity rule as a learner of the shared meta-training engine.

The learner holds only the rule's coefficients ``theta`` (as in the authors' code: forward and feedback
weights are re-drawn, Xavier-uniform, at the start of every episode and are never meta-learned). Its fast
state is ``[W_1 .. W_L, B_1 .. B_L]``: the plastic forward weights and the episode's fixed random feedback
matrices, so :func:`~avalanche_plasticity.meta_learning.meta_train` can run it batched over episodes.

Optional L1 penalty ``lambda * sum_r |theta_r|`` on the meta-loss (paper Eq. 6): the engine's meta-loss
is the query cross-entropy, so the penalty's gradient is added to the meta-parameter's gradient by a
tensor hook; the optimised objective is the paper's.

Per-term meta-learning rates: ``theta_r = s_r * phi_r`` with ``phi`` the meta-parameter that Adam updates
and ``s_r`` a fixed per-term scale (``term_lr_scale``, default 1), so Adam's steps on ``theta_r`` are
``s_r`` times the meta learning rate. Adam's steps do not depend on the gradient's size, so without this
every coefficient moves by about the learning rate per update whatever its effect; terms whose unit
effect is large (weight decay, the activity-scaled terms) then dominate the early noise.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn

from ..checkpoint import CheckpointError, load_checkpoint, save_atomic
from .fused import fused_step_no_grad_, one_sample, paper_terms_only
from .rule import SOFTPLUS_BETA, check_feedback, forward_activities, plasticity_update, xavier_uniform
from .terms import PAPER_POOL, get_term

Tensor = torch.Tensor

#: Meta-learning-rate scales used unless a config names its own. The activity-scaled pseudo-gradient is the
#: pseudo-gradient times the summed activity of the layer (about its width): at the meta-lr that suits the
#: other terms its coefficient reaches unstable rules within a few updates (every episode then diverges and
#: meta-learning stalls on skipped batches), so its steps are 100x smaller.
DEFAULT_TERM_LR_SCALE: dict[str, float] = {"activity_scaled_pseudo_gradient": 0.01}

#: The authors' network for EMNIST-balanced (47 classes): 784-170-130-100-70-47, five plastic layers.
PAPER_LAYER_SIZES: tuple[int, ...] = (784, 170, 130, 100, 70, 47)


def deeper_sizes(sizes: Sequence[int], factor: int = 2) -> tuple[int, ...]:
    """The same input/output with ``factor`` times as many plastic layers, hidden widths interpolated
    geometrically between the first and the last hidden width (e.g. 2x depth of the paper's net:
    784-170-152-136-122-109-98-87-78-70-47). The widths never shrink toward the output, which would leave
    a deep net with a few-unit bottleneck."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    if len(sizes) < 3:
        raise ValueError(f"sizes needs at least one hidden layer, got {tuple(sizes)}")
    n_hidden = (len(sizes) - 1) * factor - 1
    first, last = sizes[1], sizes[-2]
    hidden = [round(first * (last / first) ** (i / max(n_hidden - 1, 1))) for i in range(n_hidden)]
    return (sizes[0], *hidden, sizes[-1])


def _positive_finite(value: object) -> bool:
    """Whether ``value`` is a real number (not a bool) that is finite and > 0."""
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


@dataclass
class PlasticityRuleConfig:
    """The network and the rule.

    :param layer_sizes: input features first, classes last (paper: :data:`PAPER_LAYER_SIZES`).
    :param terms: names of the pool's terms the rule uses (see :mod:`.terms`); ``theta_r`` per term.
    :param init_coefficients: initial ``theta`` by term name; terms not named start at 0 (paper:
        ``pseudo_gradient`` = 1e-3, the others 0).
    :param feedback: ``"fixed"`` (random feedback, drawn per episode: feedback alignment) or
        ``"symmetric"`` (``B = W``: backprop).
    :param l1: L1 penalty ``lambda`` on the coefficients in the meta-loss.
    :param beta: softplus sharpness (10 in the paper).
    :param input_shape: shape of one input before flattening (default ``(layer_sizes[0],)``).
    :param term_lr_scale: per-term meta-learning-rate scale ``s_r`` by term name (others 1), see above;
        ``None``: :data:`DEFAULT_TERM_LR_SCALE` for the terms of the rule.
    :param init_gain: gain on the per-episode Xavier-uniform forward weights (the feedback matrices keep
        the paper's Xavier scale). 1 is the paper's init. Softplus units with beta = 10 are nearly ReLUs,
        so under gain 1 the input-dependent part of the activity roughly halves per layer;
        ``math.sqrt(2)`` (He's gain) keeps it in deep nets. The gain is not put on the feedback matrices:
        errors sent back through them at full size but in random directions made FA and learned rules
        diverge in online passes (``benchmarks/NOTES.md``).
    :param input_norm: scale every input to this L2 norm before the first layer (divisive normalisation;
        None: raw inputs, the paper's). The rule then sees the same input energy in meta-training and on a
        stream of other images: MNIST digits carry about twice the squared norm of Omniglot characters,
        which pushed rules meta-trained on Omniglot past the stability bound of their Oja term
        (``theta ||y||^2 < 2``) and made them diverge on MNIST.
    """

    layer_sizes: tuple[int, ...] = PAPER_LAYER_SIZES
    terms: tuple[str, ...] = PAPER_POOL
    init_coefficients: dict[str, float] = field(default_factory=lambda: {"pseudo_gradient": 1e-3})
    feedback: Literal["fixed", "symmetric"] = "fixed"
    l1: float = 0.0
    beta: float = SOFTPLUS_BETA
    input_shape: tuple[int, ...] | None = None
    task: str = "classification"
    term_lr_scale: dict[str, float] | None = None
    init_gain: float = 1.0
    input_norm: float | None = None

    def __post_init__(self) -> None:
        self.layer_sizes = tuple(int(n) for n in self.layer_sizes)
        if len(self.layer_sizes) < 2 or min(self.layer_sizes) < 1:
            raise ValueError(f"layer_sizes needs >= 2 positive sizes, got {self.layer_sizes}")
        if isinstance(self.terms, str) or not len(self.terms):
            raise ValueError(f"terms must be a non-empty sequence of term names, got {self.terms!r}")
        self.terms = tuple(self.terms)
        for t in self.terms:
            get_term(t)  # raises ValueError naming the known terms
        if len(set(self.terms)) != len(self.terms):
            raise ValueError(f"terms must not repeat, got {self.terms}")
        unknown = set(self.init_coefficients) - set(self.terms)
        if unknown:
            raise ValueError(
                f"init_coefficients names terms the rule does not use: {sorted(unknown)}; terms: {self.terms}"
            )
        self.init_coefficients = {k: float(v) for k, v in self.init_coefficients.items()}
        bad = {k: v for k, v in self.init_coefficients.items() if not math.isfinite(v)}
        if bad:
            raise ValueError(f"init_coefficients must be finite numbers, got {bad}")
        if self.feedback not in ("fixed", "symmetric"):
            raise ValueError(f"feedback must be 'fixed' or 'symmetric', got {self.feedback!r}")
        if not 0 <= self.l1 < math.inf:
            raise ValueError(f"l1 must be >= 0 and finite, got {self.l1}")
        if not 0 < self.beta < math.inf:
            raise ValueError(f"beta must be > 0 and finite, got {self.beta}")
        if self.input_shape is None:
            self.input_shape = (self.layer_sizes[0],)
        self.input_shape = tuple(int(n) for n in self.input_shape)
        if int(torch.Size(self.input_shape).numel()) != self.layer_sizes[0]:
            raise ValueError(
                f"input_shape {self.input_shape} has {torch.Size(self.input_shape).numel()} values but "
                f"layer_sizes[0] is {self.layer_sizes[0]}"
            )
        if self.term_lr_scale is None:
            self.term_lr_scale = {t: v for t, v in DEFAULT_TERM_LR_SCALE.items() if t in self.terms}
        bad = {
            k: v for k, v in self.term_lr_scale.items() if k not in self.terms or not 0 < float(v) < math.inf
        }
        if bad:
            raise ValueError(f"term_lr_scale needs terms of the rule with finite scales > 0, got {bad}")
        self.term_lr_scale = {k: float(v) for k, v in self.term_lr_scale.items()}
        if not _positive_finite(self.init_gain):
            raise ValueError(f"init_gain must be a finite number > 0, got {self.init_gain}")
        self.init_gain = float(self.init_gain)
        if self.input_norm is not None:
            if not _positive_finite(self.input_norm):
                raise ValueError(f"input_norm must be None or a finite number > 0, got {self.input_norm!r}")
            self.input_norm = float(self.input_norm)
        if self.task != "classification":
            raise ValueError(
                f"task must be 'classification' (the rule's error is softmax - onehot), got {self.task!r}"
            )


class PlasticityRuleLearner(nn.Module):
    """Meta-parameters (the coefficients ``theta``) plus the pure online rule.

    Engine interface: ``features``, ``initial_fast_weights``, ``step``, ``predict``, ``param_groups``,
    ``config.task``. ``generator`` (optional) draws the per-episode initial and feedback weights; default:
    torch's global generator (saved in meta-training checkpoints, so resumes are exact).
    """

    def __init__(self, config: PlasticityRuleConfig, *, coefficients: Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        init = torch.tensor([config.init_coefficients.get(t, 0.0) for t in config.terms])
        if coefficients is not None:
            coefficients = torch.as_tensor(coefficients, dtype=torch.float32)
            if coefficients.shape != init.shape:
                raise ValueError(
                    f"coefficients must have shape ({len(config.terms)},), one per term {config.terms}, "
                    f"got {tuple(coefficients.shape)}"
                )
            init = coefficients.clone()
        scale = torch.tensor([config.term_lr_scale.get(t, 1.0) for t in config.terms])
        self.register_buffer("term_scale", scale, persistent=False)
        #: The meta-parameter Adam updates: ``phi = theta / s`` (see the module docstring).
        self.raw_coefficients = nn.Parameter(init.float() / scale)
        self.generator: torch.Generator | None = None
        #: Under ``torch.no_grad`` with frozen coefficients, update the given weights in place (saves a
        #: copy of every weight matrix per step). Off by default (``step`` stays a pure function); the
        #: strategies and :func:`~.training.online_accuracy` turn it on for tensors they own.
        self.inplace = False
        #: With ``inplace`` at batch size 1, use :func:`~.fused.fused_online_step_` (same update).
        self.fused = True
        # the fused step's preconditions that never change: paper terms only (then: the layer count)
        layers = len(config.layer_sizes) - 1
        self._fast_path = layers if paper_terms_only(config.terms) else 0
        self._state_size = layers if config.feedback == "symmetric" else 2 * layers
        self._beta = float(config.beta)
        if config.l1 > 0:
            l1 = config.l1
            self.raw_coefficients.register_hook(
                lambda g: g + l1 * self.term_scale * torch.sign(self.raw_coefficients.detach())
            )

    @property
    def coefficients(self) -> Tensor:
        """``theta`` (one per term), differentiable with respect to :attr:`raw_coefficients`."""
        return self.raw_coefficients * self.term_scale

    def freeze(self) -> PlasticityRuleLearner:
        """Stop meta-learning (deployment): the coefficients no longer require gradients."""
        self.raw_coefficients.requires_grad_(False)
        return self

    # -- engine interface ------------------------------------------------------------------------------
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """One group, ``coefficients`` (Adam, as in the paper)."""
        return {"coefficients": [self.raw_coefficients]}

    @property
    def num_outputs(self) -> int:
        return self.config.layer_sizes[-1]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.config.input_shape)

    @property
    def num_layers(self) -> int:
        return len(self.config.layer_sizes) - 1

    def features(self, x: Tensor) -> Tensor:
        """Flatten each input (the network works on vectors), scaled to ``config.input_norm`` if set."""
        k = len(self.config.input_shape)
        x = x.flatten(-k) if k > 1 else x
        if self.config.input_norm is not None:  # divisive normalisation: x <- c x / ||x||
            x = x * (self.config.input_norm / x.norm(dim=-1, keepdim=True).clamp(min=1e-12))
        return x

    def initial_fast_weights(self, episodes: int = 1) -> list[Tensor]:
        """Fresh Xavier-uniform forward weights (times ``config.init_gain``) and, for fixed feedback,
        Xavier-uniform feedback matrices per episode."""
        s = self.config.layer_sizes
        # on the coefficients' device and in their dtype (a float64 learner learns in float64)
        like = dict(device=self.raw_coefficients.device, dtype=self.raw_coefficients.dtype)
        gain = self.config.init_gain
        shapes = [(episodes, s[l + 1], s[l]) for l in range(self.num_layers)]
        weights = [(xavier_uniform(sh, self.generator) * gain).to(**like) for sh in shapes]
        if self.config.feedback == "symmetric":
            return weights
        return weights + [xavier_uniform(sh, self.generator).to(**like) for sh in shapes]

    def split(self, fast: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor] | None]:
        """``(forward weights, feedback matrices or None)`` of a fast state."""
        L = self.num_layers
        expected = L if self.config.feedback == "symmetric" else 2 * L
        if len(fast) != expected:
            raise ValueError(f"fast state must hold {expected} tensors, got {len(fast)}")
        if self.config.feedback == "symmetric":
            return list(fast), None
        return list(fast[:L]), list(fast[L:])

    def step(self, fast: Sequence[Tensor], features: Tensor, targets: Tensor) -> list[Tensor]:
        """One online update of every layer with the rule (see :func:`.rule.plasticity_update`)."""
        if self._fast_path and self.inplace and self.fused and not torch.is_grad_enabled():
            L = self._fast_path
            if len(fast) == self._state_size and one_sample(fast, features):
                # one sample, paper terms: the algebraically fused step (same result, fewer kernels)
                feedback = None if len(fast) == L else fast[L:]
                fused_step_no_grad_(fast[:L], feedback, self._rule_numbers(), features, targets, self._beta)
                return list(fast)
        weights, feedback = self.split(fast)
        terms, coefs = self.config.terms, self.coefficients
        deploying = not torch.is_grad_enabled() or not coefs.requires_grad
        if deploying:  # skip terms whose coefficient is exactly zero
            keep = [i for i, c in enumerate(coefs.tolist()) if c != 0.0] or [0]
            terms, coefs = tuple(terms[i] for i in keep), coefs[keep].detach()
        inplace = self.inplace and deploying and not torch.is_grad_enabled()
        new = plasticity_update(
            weights, feedback, coefs, terms, features, targets, beta=self.config.beta, inplace=inplace
        )
        return new if feedback is None else new + feedback

    def adapt_memory_lean(
        self,
        fast: Sequence[Tensor],
        features: Tensor,
        targets: Tensor,
        anchor_every: int | None = None,
    ) -> list[Tensor]:
        """The online trajectory with the memory-lean meta-gradient: the fast state kept every
        ``anchor_every`` steps (None: ``ceil(sqrt(T))``), each segment re-run forward in the backward
        pass (:func:`~avalanche_plasticity.memory_lean.checkpointed_trajectory`; the pool's step is not
        invertible elementwise). The same gradient as the stored graph; memory ``O(sqrt(T))`` fast states."""
        from ..memory_lean import checkpointed_trajectory

        return checkpointed_trajectory(self.step, fast, features, targets, anchor_every)

    def _rule_numbers(self) -> dict[str, float]:
        """The coefficients as Python numbers, recomputed only when they change (checked by the
        parameter's version counter, which every in-place write and optimizer step bumps)."""
        key = (self.raw_coefficients._version, self.raw_coefficients.data_ptr())
        if getattr(self, "_rule_cache", (None,))[0] != key:
            with torch.no_grad():
                self._rule_cache = (key, self.rule())
        return self._rule_cache[1]

    def predict(self, fast: Sequence[Tensor], features: Tensor) -> Tensor:
        """Logits ``(E, B, classes)``."""
        weights, _ = self.split(fast)
        return forward_activities(weights, features, self.config.beta)[1]

    # -- reading and deployment ------------------------------------------------------------------------
    def rule(self) -> dict[str, float]:
        """The coefficients by term name."""
        return dict(zip(self.config.terms, self.coefficients.detach().tolist(), strict=True))

    def with_network(
        self,
        layer_sizes: Sequence[int],
        input_shape: Sequence[int] | None = None,
        init_gain: float | None = None,
    ) -> Any:
        """The same rule on another network (the coefficients are shared by all layers, so a rule
        learned on one architecture runs on any); ``init_gain`` None keeps this learner's."""
        cfg = dataclasses.replace(
            self.config,
            layer_sizes=tuple(layer_sizes),
            input_shape=None if input_shape is None else tuple(input_shape),
            l1=0.0,
            init_gain=self.config.init_gain if init_gain is None else init_gain,
        )
        return PlasticityRuleLearner(cfg, coefficients=self.coefficients.detach().clone())

    def check_fast_state(self, fast: Sequence[Tensor]) -> None:
        """:raises ValueError: forward or feedback shapes do not match the network."""
        weights, feedback = self.split(fast)
        s = self.config.layer_sizes
        for l, W in enumerate(weights):
            if tuple(W.shape[-2:]) != (s[l + 1], s[l]):
                raise ValueError(f"weight {l} must be ({s[l + 1]}, {s[l]}), got {tuple(W.shape[-2:])}")
        if feedback is not None:
            check_feedback(weights, feedback)


def rule_learner(
    terms: Sequence[str] | str = PAPER_POOL,
    *,
    layer_sizes: Sequence[int] = PAPER_LAYER_SIZES,
    coefficients: Mapping[str, float] | Sequence[float] | Tensor | None = None,
    feedback: Literal["fixed", "symmetric"] = "fixed",
    l1: float = 0.0,
    input_shape: Sequence[int] | None = None,
    term_lr_scale: Mapping[str, float] | None = None,
    init_gain: float = 1.0,
    input_norm: float | None = None,
) -> PlasticityRuleLearner:
    """Build a learner. ``coefficients`` as a mapping ``{term: theta}`` (others 0) or one value per term;
    default: the paper's start (pseudo-gradient 1e-3, others 0). ``term_lr_scale``: per-term scale of the
    meta-learning rate; ``init_gain``: gain on the Xavier init (1: the paper's); ``input_norm``: the L2
    norm inputs are scaled to (None: raw); see :class:`PlasticityRuleConfig`.

    :raises ValueError: unknown term names, or coefficients that do not match the terms.
    """
    terms = (terms,) if isinstance(terms, str) else tuple(terms)
    init: dict[str, float] = {"pseudo_gradient": 1e-3} if "pseudo_gradient" in terms else {}
    values = None
    if isinstance(coefficients, Mapping):
        init = dict(coefficients)
    elif coefficients is not None:
        values = torch.as_tensor(coefficients, dtype=torch.float32)
        init = {}
    cfg = PlasticityRuleConfig(
        layer_sizes=tuple(layer_sizes),
        terms=terms,
        init_coefficients=init,
        feedback=feedback,
        l1=l1,
        input_shape=None if input_shape is None else tuple(input_shape),
        term_lr_scale=None if term_lr_scale is None else dict(term_lr_scale),
        init_gain=init_gain,
        input_norm=input_norm,
    )
    return PlasticityRuleLearner(cfg, coefficients=values)


def save_rule(learner: PlasticityRuleLearner, path: str | Path, **extra: Any) -> None:
    """Save a learner (config + coefficients) atomically; ``extra`` is stored beside it."""
    save_atomic(
        {
            "kind": "PlasticityRuleLearner",
            "learner_config": dataclasses.asdict(learner.config),
            "state_dict": learner.state_dict(),
            **extra,
        },
        path,
    )


def load_rule(path: str | Path) -> PlasticityRuleLearner:
    """Load a learner saved by :func:`save_rule` or a :func:`~avalanche_plasticity.meta_learning.meta_train`
    checkpoint of one.

    :raises CheckpointError: not a plasticity-rule checkpoint, or weights that do not fit its config.
    """
    ckpt = load_checkpoint(path, kind="PlasticityRuleLearner")
    cfg = dict(ckpt["learner_config"])
    for k in ("layer_sizes", "terms", "input_shape"):
        if cfg.get(k) is not None:
            cfg[k] = tuple(cfg[k])
    learner = PlasticityRuleLearner(PlasticityRuleConfig(**cfg))
    try:
        learner.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not match its config: {e}") from e
    return learner
