"""The pool of local plasticity terms of Shervani-Tabar & Rosenbaum (Nat. Commun. 14:1805, 2023).

A plastic layer ``W_l`` (shape ``out x in``) sees four local quantities, all row vectors per sample:
``y_{l-1}`` the presynaptic activity (the layer's input), ``y_l`` the postsynaptic activity (its output;
for the last layer the softmax output), ``e_l`` the error delivered by the feedback pathway to the layer's
output and ``e_{l-1}`` the error at its input. A *term* maps them, and the current weight, to a matrix of
the weight's shape; a rule is ``W <- W + sum_r theta_r F_r`` (see :mod:`.rule`).

Where the pool comes from (read this before trusting a term):

* The paper's pool has ``R = 10`` terms, ``theta_0 .. theta_9`` (Fig. 4d caption: "Convergence of the
  plasticity coefficients Theta = {theta_r | 0 <= r <= R-1} with R = 10"). The paper's own table of the
  terms could not be read here (only abstracts and figure captions of PMC10066328 / arXiv 2210.16414 are in
  the offline corpus).
* The authors' code (``NeuralDynamicsAndComputing/MetaLearning-Plasticity``): the released v1.0
  ``optim.py::plasticity_rule`` keeps three terms (pseudo-gradient, "eHebb", Oja). A development version
  of the same function indexes them with the paper's numbering, ``Theta[0]`` pseudo-gradient,
  ``Theta[2]`` "eHebb rule" and ``Theta[9]`` "Oja's rule"; earlier development versions
  (``generic_rule``) hold a larger exploratory pool, among them ``-y_l^T e_{l-1}``, ``-1 e_{l-1}^T``
  (``e[i].repeat(p.shape[0], 1)``) and weight decay ``(1 - exp(dr)) * p``.
* A public re-implementation of the full ten-term pool (``ComplexSynapse`` with mode
  ``"all_rosenbaum"``, found by content search in the code corpus; repository not named by the index)
  gives all ten in the paper's order. Its terms 4 to 8 are not shape-consistent as written (they only run
  when a layer is square); the forms below are the shape-consistent reading of each, chosen so that every
  product is ``out x in``. Terms 0, 1, 2, 3 and 9 match the authors' code exactly; **terms 4 to 8 are
  this reading, not checked against the paper's table.**

Signs follow the sources: every term but Oja's enters with a minus sign, so a positive ``theta_0`` is the
learning rate of the pseudo-gradient (feedback alignment) and a positive ``theta_9`` adds Oja's rule.

Adding a term is one function: ``register_term("name", fn, formula="...")`` where ``fn`` takes a
:class:`LayerSignals` and returns the summed-over-minibatch update of shape ``(E, out, in)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch

Tensor = torch.Tensor


@dataclass(frozen=True)
class LayerSignals:
    """The local quantities one plastic layer sees, batched over ``E`` episodes and ``B`` samples.

    :param pre: ``y_{l-1}``, ``(E, B, in)``.
    :param post: ``y_l``, ``(E, B, out)`` (softmax output for the last layer).
    :param error_post: ``e_l``, ``(E, B, out)``, the feedback-delivered error at the layer's output.
    :param error_pre: ``e_{l-1}``, ``(E, B, in)``, the error at the layer's input.
    :param weight: ``W_l``, ``(E, out, in)``.
    """

    pre: Tensor
    post: Tensor
    error_post: Tensor
    error_pre: Tensor
    weight: Tensor

    @cached_property
    def post_weight(self) -> Tensor:
        """``y_l W``, ``(E, B, in)``, computed once per step and shared by the terms that use it."""
        return torch.matmul(self.post, self.weight)

    @cached_property
    def error_weight(self) -> Tensor:
        """``e_l W``, ``(E, B, in)``."""
        return torch.matmul(self.error_post, self.weight)


TermFn = Callable[[LayerSignals], Tensor]
FactorFn = Callable[[LayerSignals], list[tuple[Tensor, Tensor]]]


@dataclass(frozen=True)
class PlasticityTerm:
    """A named term: its function, its formula (row-vector convention, summed over the minibatch) and
    where it comes from.

    ``factors`` (optional) writes the term as a sum of minibatch outer products,
    ``F = sum_k left_k^T right_k`` with ``left_k (E, B, out)`` and ``right_k (E, B, in)``. The rule then
    fuses all such terms into one batched matrix product (and back-propagation through the online
    trajectory keeps only these vectors, not one full matrix per term); terms without it are evaluated
    densely with ``fn``.
    """

    name: str
    fn: TermFn
    formula: str
    source: str = "user"
    factors: FactorFn | None = None
    #: ``k`` when the term is ``k W`` (weight decay: -1): deployment then scales ``W`` in place.
    weight_multiple: float | None = None


def _outer(a: Tensor, b: Tensor) -> Tensor:
    """``sum_b a_b^T b_b``: ``(E, B, n) x (E, B, m) -> (E, n, m)``."""
    return torch.matmul(a.transpose(-1, -2), b)


def pseudo_gradient(s: LayerSignals) -> Tensor:
    """F0, the pseudo-gradient: ``-e_l^T y_{l-1}``.

    With feedback equal to the forward weights this is minus the backprop gradient of the cross-entropy;
    with fixed random feedback it is feedback alignment. Source: authors' code, ``Theta[0]``
    ("pseudo-gradient", always on).
    """
    return -_outer(s.error_post, s.pre)


def post_error_hebbian(s: LayerSignals) -> Tensor:
    """F1: ``-y_l^T e_{l-1}`` (postsynaptic activity times presynaptic error).

    Source: the re-implementation's ``theta1``; the authors' development pool has it as term ``'1'``
    (``activation[i + 1].T @ e[i]``).
    """
    return -_outer(s.post, s.error_pre)


def error_hebbian(s: LayerSignals) -> Tensor:
    """F2, error-based Hebbian ("eHebb"): ``-e_l^T e_{l-1}``.

    Source: authors' code, ``Theta[2]`` "eHebb rule" (``Theta[1]`` in the three-term v1.0 release).
    """
    return -_outer(s.error_post, s.error_pre)


def weight_decay(s: LayerSignals) -> Tensor:
    """F3, weight decay: ``-W``. Source: the re-implementation's ``theta3``; the authors' development
    code decays weights as ``(1 - exp(dr)) * p``."""
    return -s.weight


def presynaptic_error(s: LayerSignals) -> Tensor:
    """F4: ``-1 e_{l-1}`` (every row gets the presynaptic error; ``1`` is a column of ones, ``out x 1``).

    Source: the re-implementation's ``theta4`` (shape-consistent reading); the authors' development pool
    has it as term ``'7'`` (``e[i].repeat(p.shape[0], 1)``).
    """
    return -s.error_pre.sum(-2, keepdim=True).expand(-1, s.weight.shape[-2], -1)


def activity_scaled_pseudo_gradient(s: LayerSignals) -> Tensor:
    """F5: ``-(y_l 1^T) e_l^T y_{l-1}``, the pseudo-gradient scaled by the summed postsynaptic activity.

    Source: the re-implementation's ``theta5`` (``e^T 1 y_l^T y_{l-1}``; shape-consistent reading with
    ``1`` a row of ones, so ``e_l^T 1 y_l^T = (sum_k y_l,k) e_l^T``).
    """
    scale = s.post.sum(-1, keepdim=True)  # (E, B, 1)
    return -_outer(s.error_post * scale, s.pre)


def post_hebbian_pre_error(s: LayerSignals) -> Tensor:
    """F6: ``-(y_l^T y_l) W (e_{l-1}^T e_{l-1})``.

    Per sample this is ``-(y_l W e_{l-1}^T) y_l^T e_{l-1}``. Source: the re-implementation's ``theta6``
    (shape-consistent reading).
    """
    gate = torch.matmul(s.post.unsqueeze(-2), torch.matmul(s.weight.unsqueeze(1), s.error_pre.unsqueeze(-1)))
    return -_outer(s.post * gate.squeeze(-1), s.error_pre)


def error_activity_sandwich(s: LayerSignals) -> Tensor:
    """F7: ``-(e_l^T y_l) W (e_{l-1}^T y_{l-1})``.

    Per sample ``-(y_l W e_{l-1}^T) e_l^T y_{l-1}``: the pseudo-gradient gated by how the layer maps the
    presynaptic error onto its activity. Source: the re-implementation's ``theta7`` (shape-consistent
    reading).
    """
    gate = torch.matmul(s.post.unsqueeze(-2), torch.matmul(s.weight.unsqueeze(1), s.error_pre.unsqueeze(-1)))
    return -_outer(s.error_post * gate.squeeze(-1), s.pre)


def activity_error_sandwich(s: LayerSignals) -> Tensor:
    """F8: ``-(y_l^T y_{l-1}) W^T (e_l^T e_{l-1})``.

    Per sample ``-(y_{l-1} W^T e_l^T) y_l^T e_{l-1}``: the Hebbian product of activity and presynaptic
    error gated by the layer's own pseudo-gradient direction. Source: the re-implementation's ``theta8``
    (shape-consistent reading, with ``W^T``).
    """
    gate = torch.matmul(s.error_post.unsqueeze(-2), torch.matmul(s.weight.unsqueeze(1), s.pre.unsqueeze(-1)))
    return -_outer(s.post * gate.squeeze(-1), s.error_pre)


def oja(s: LayerSignals) -> Tensor:
    """F9, Oja's rule (subspace form): ``y_l^T y_{l-1} - (y_l^T y_l) W``.

    Enters with a plus sign. Source: authors' code, ``Theta[9]`` "Oja's rule" (``Theta[2]`` in the
    three-term v1.0 release, "FIX: implement Oja's rule with plus sign").
    """
    return _outer(s.post, s.pre) - _outer(s.post, torch.matmul(s.post, s.weight))


def _post_w_error_pre(s: LayerSignals) -> Tensor:
    """Per-sample gate ``y_l W e_{l-1}^T``, ``(E, B, 1)``."""
    return (s.post_weight * s.error_pre).sum(-1, keepdim=True)


def _error_w_pre(s: LayerSignals) -> Tensor:
    """Per-sample gate ``e_l W y_{l-1}^T``, ``(E, B, 1)``."""
    return (s.error_weight * s.pre).sum(-1, keepdim=True)


_FACTORS: dict[str, FactorFn] = {
    "pseudo_gradient": lambda s: [(-s.error_post, s.pre)],
    "post_error_hebbian": lambda s: [(-s.post, s.error_pre)],
    "error_hebbian": lambda s: [(-s.error_post, s.error_pre)],
    "presynaptic_error": lambda s: [(-torch.ones_like(s.post), s.error_pre)],
    "activity_scaled_pseudo_gradient": lambda s: [(-s.error_post * s.post.sum(-1, keepdim=True), s.pre)],
    "post_hebbian_pre_error": lambda s: [(-s.post * _post_w_error_pre(s), s.error_pre)],
    "error_activity_sandwich": lambda s: [(-s.error_post * _post_w_error_pre(s), s.pre)],
    "activity_error_sandwich": lambda s: [(-s.post * _error_w_pre(s), s.error_pre)],
    "oja": lambda s: [(s.post, s.pre), (-s.post, s.post_weight)],
}

TERMS: dict[str, PlasticityTerm] = {}


def register_term(
    name: str, fn: TermFn, *, formula: str, source: str = "user", factors: FactorFn | None = None
) -> PlasticityTerm:
    """Add a term to the pool (one function of :class:`LayerSignals` returning ``(E, out, in)``).

    :raises ValueError: the name is taken or not an identifier.
    :raises TypeError: ``fn`` is not callable.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"term name must be a Python identifier, got {name!r}")
    if name in TERMS:
        raise ValueError(f"term {name!r} is already registered; pick another name")
    if not callable(fn):
        raise TypeError(f"term function must be callable, got {type(fn).__name__}")
    if factors is not None and not callable(factors):
        raise TypeError(f"factors must be callable or None, got {type(factors).__name__}")
    term = PlasticityTerm(name, fn, formula, source, factors)
    TERMS[name] = term
    return term


def unregister_term(name: str) -> None:
    """Remove a user-registered term (the paper's pool cannot be removed)."""
    if name in PAPER_POOL:
        raise ValueError(f"{name!r} is part of the paper's pool and cannot be removed")
    TERMS.pop(name, None)


def get_term(name: str) -> PlasticityTerm:
    """The term called ``name``; :raises ValueError: naming the known terms."""
    if name not in TERMS:
        raise ValueError(f"unknown plasticity term {name!r}; known terms: {sorted(TERMS)}")
    return TERMS[name]


_PAPER = (
    ("pseudo_gradient", pseudo_gradient, "-e_l^T y_{l-1}", "authors' code Theta[0]"),
    (
        "post_error_hebbian",
        post_error_hebbian,
        "-y_l^T e_{l-1}",
        "re-implementation theta1; authors' dev '1'",
    ),
    ("error_hebbian", error_hebbian, "-e_l^T e_{l-1}", "authors' code Theta[2] (eHebb)"),
    ("weight_decay", weight_decay, "-W", "re-implementation theta3"),
    ("presynaptic_error", presynaptic_error, "-1 e_{l-1}", "re-implementation theta4 (reading)"),
    (
        "activity_scaled_pseudo_gradient",
        activity_scaled_pseudo_gradient,
        "-(sum y_l) e_l^T y_{l-1}",
        "re-implementation theta5 (reading)",
    ),
    (
        "post_hebbian_pre_error",
        post_hebbian_pre_error,
        "-(y_l^T y_l) W (e_{l-1}^T e_{l-1})",
        "re-implementation theta6 (reading)",
    ),
    (
        "error_activity_sandwich",
        error_activity_sandwich,
        "-(e_l^T y_l) W (e_{l-1}^T y_{l-1})",
        "re-implementation theta7 (reading)",
    ),
    (
        "activity_error_sandwich",
        activity_error_sandwich,
        "-(y_l^T y_{l-1}) W^T (e_l^T e_{l-1})",
        "re-implementation theta8 (reading)",
    ),
    ("oja", oja, "y_l^T y_{l-1} - (y_l^T y_l) W", "authors' code Theta[9] (Oja)"),
)
for _name, _fn, _formula, _source in _PAPER:
    register_term(_name, _fn, formula=_formula, source=_source, factors=_FACTORS.get(_name))
TERMS["weight_decay"] = dataclasses.replace(TERMS["weight_decay"], weight_multiple=-1.0)

#: The paper's ten terms, in its order (theta_0 .. theta_9).
PAPER_POOL: tuple[str, ...] = tuple(n for n, *_ in _PAPER)
#: The three terms the authors' released code keeps.
RELEASED_POOL: tuple[str, ...] = ("pseudo_gradient", "error_hebbian", "oja")
