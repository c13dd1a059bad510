"""The online plasticity step: forward pass, errors through the feedback pathway, weighted sum of terms.

Network (authors' ``main.py::MyModel``): fully connected, no biases, hidden activity
``y_l = softplus_beta(W_l y_{l-1})`` with ``beta = 10``, linear output (softmax in the loss). Errors
(``optim.py::MyOptimizer``)::

    e_L = softmax(z_L) - onehot(label)
    e_{l} = (e_{l+1} B_{l+1}) * (1 - exp(-beta y_l))     # softplus'(z) written from the activity

with ``B_l`` the feedback matrix of layer ``l`` (same shape as ``W_l``). ``B = W`` is backprop; fixed
random ``B`` is feedback alignment. The rule (paper Eq. 3, coefficients ``theta_r``)::

    W_l <- W_l + sum_r theta_r F_r(y_{l-1}, y_l, e_l, e_{l-1}, W_l)

applied after every sample. Everything here is a pure function of explicit tensors, batched over
episodes ``E`` (and over a minibatch ``B``, whose updates are summed), and differentiable with respect to
the coefficients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .terms import LayerSignals, PlasticityTerm, get_term

Tensor = torch.Tensor
SOFTPLUS_BETA = 10.0


def xavier_uniform(shape: tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
    """Glorot/Xavier uniform ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))`` over the last two dims
    (the authors' ``weights_init``, used for forward and feedback matrices)."""
    fan_out, fan_in = shape[-2], shape[-1]
    a = math.sqrt(6.0 / (fan_in + fan_out))
    return (torch.rand(*shape, generator=generator) * 2 - 1) * a


def forward_activities(
    weights: Sequence[Tensor], x: Tensor, beta: float = SOFTPLUS_BETA
) -> tuple[list[Tensor], Tensor]:
    """``([y_0 = x, y_1, ..., y_{L-1}], logits z_L)`` for weights ``(E, out, in)`` and ``x (E, B, in)``."""
    acts = [x]
    for W in weights[:-1]:
        acts.append(F.softplus(torch.matmul(acts[-1], W.transpose(-1, -2)), beta=beta))
    return acts, torch.matmul(acts[-1], weights[-1].transpose(-1, -2))


def feedback_errors(
    feedback: Sequence[Tensor], acts: Sequence[Tensor], logits: Tensor, labels: Tensor, beta: float
) -> list[Tensor]:
    """``[e_0, e_1, ..., e_L]``: the output error sent back through the feedback matrices.

    ``e_0`` (at the network input) is computed the same way, as the authors' code does; it only enters
    terms that use the presynaptic error of the first layer.
    """
    e = [torch.softmax(logits, -1) - F.one_hot(labels, logits.shape[-1]).to(logits.dtype)]
    for B, y in zip(reversed(feedback), reversed(acts), strict=True):
        e.insert(0, torch.matmul(e[0], B) * (1 - torch.exp(-beta * y)))
    return e


def check_coefficients(coefficients: Tensor, terms: Sequence[str]) -> None:
    """:raises ValueError: ``coefficients`` is not a vector with one entry per term."""
    if not isinstance(coefficients, torch.Tensor):
        raise TypeError(f"coefficients must be a tensor, got {type(coefficients).__name__}")
    if coefficients.shape != (len(terms),):
        raise ValueError(
            f"coefficients must have shape ({len(terms)},), one per term {tuple(terms)}, "
            f"got {tuple(coefficients.shape)}"
        )


def check_feedback(weights: Sequence[Tensor], feedback: Sequence[Tensor]) -> None:
    """:raises ValueError: the feedback matrices do not match the forward weights one to one in shape."""
    if len(feedback) != len(weights):
        raise ValueError(f"need one feedback matrix per layer ({len(weights)}), got {len(feedback)}")
    for l, (W, B) in enumerate(zip(weights, feedback, strict=True)):
        if B.shape[-2:] != W.shape[-2:]:
            raise ValueError(
                f"feedback matrix {l} must have the forward weight's shape {tuple(W.shape[-2:])} "
                f"(out x in), got {tuple(B.shape[-2:])}"
            )


def plasticity_update(
    weights: Sequence[Tensor],
    feedback: Sequence[Tensor] | None,
    coefficients: Tensor,
    terms: Sequence[str],
    x: Tensor,
    labels: Tensor,
    *,
    beta: float = SOFTPLUS_BETA,
    inplace: bool = False,
) -> list[Tensor]:
    """One online step of the rule: ``(weights, feedback, theta, x, y) -> new weights``.

    ``inplace=True`` (deployment only: no autograd) writes the new weights into ``weights``.

    :param weights: ``W_l``, ``(E, out, in)``.
    :param feedback: ``B_l`` of the same shapes, or None for symmetric feedback (``B = W``: backprop).
    :param coefficients: ``theta``, shape ``(len(terms),)``.
    :param x: ``(E, B, n_0)`` inputs; ``labels``: ``(E, B)`` class indices.
    """
    check_coefficients(coefficients, terms)
    pool = [get_term(t) for t in terms]
    if feedback is not None:
        check_feedback(weights, feedback)
    fb = list(weights) if feedback is None else list(feedback)
    acts, logits = forward_activities(weights, x, beta)
    errors = feedback_errors(fb, acts, logits, labels, beta)
    posts = [*acts[1:], torch.softmax(logits, -1)]
    new = []
    for l, W in enumerate(weights):
        s = LayerSignals(pre=acts[l], post=posts[l], error_post=errors[l + 1], error_pre=errors[l], weight=W)
        new.append(combined_update(s, coefficients, pool, base=W, inplace=inplace))
    return new


def combined_update(
    s: LayerSignals,
    coefficients: Tensor,
    pool: Sequence[PlasticityTerm],
    *,
    base: Tensor | None = None,
    inplace: bool = False,
) -> Tensor:
    """``sum_r theta_r F_r`` for one layer (plus ``base`` when given): factorised terms fused into one
    batched product ``[theta_k left_k]^T [right_k]``, the others evaluated densely. ``inplace`` adds into
    ``base`` itself (deployment, no autograd)."""
    if inplace and base is not None:
        return _update_in_place(s, coefficients.tolist(), pool, base)
    lefts, rights, dense = [], [], None
    for c, term in zip(coefficients, pool, strict=True):
        if term.factors is None:
            part = c * term.fn(s)
            dense = part if dense is None else dense + part
            continue
        for a, b in term.factors(s):
            lefts.append(c * a)
            rights.append(b)
    update = None
    if lefts:
        left, right = torch.cat(lefts, -2).transpose(-1, -2), torch.cat(rights, -2)
        update = torch.matmul(left, right) if base is None else torch.baddbmm(base, left, right)
    elif base is not None:
        update = base
    if dense is not None:
        update = dense if update is None else update + dense
    return update


def _update_in_place(
    s: LayerSignals, coefficients: list[float], pool: Sequence[PlasticityTerm], W: Tensor
) -> Tensor:
    """Deployment (no autograd): ``W += sum_r theta_r F_r`` written into ``W`` with as few kernels as
    possible. Factorised terms that share a right factor (``y_{l-1}``, ``e_{l-1}``, ``y_l W``) have their
    scaled left factors summed first, so the whole rule is one batched product; terms that are a multiple
    of ``W`` (weight decay) become one in-place scaling. Every factor is computed from the old ``W``."""
    groups: dict[int, list[Tensor]] = {}
    dense, scale = None, 1.0
    for c, term in zip(coefficients, pool, strict=True):
        if c == 0.0:
            continue
        if term.weight_multiple is not None:
            scale += c * term.weight_multiple
        elif term.factors is None:
            part = term.fn(s) * c
            dense = part if dense is None else dense.add_(part)
        else:
            for a, b in term.factors(s):
                g = groups.get(id(b))
                if g is None:
                    groups[id(b)] = [a * c, b]
                else:
                    g[0].add_(a, alpha=c)
    if scale != 1.0:
        W.mul_(scale)
    if groups:
        lefts, rights = zip(*groups.values(), strict=True)
        if len(lefts) == 1:
            W.baddbmm_(lefts[0].transpose(-1, -2), rights[0])
        else:
            W.baddbmm_(torch.cat(lefts, -2).transpose(-1, -2), torch.cat(rights, -2))
    if dense is not None:
        W.add_(dense)
    return W


def term_updates(
    weights: Sequence[Tensor],
    feedback: Sequence[Tensor] | None,
    terms: Sequence[str],
    x: Tensor,
    labels: Tensor,
    *,
    beta: float = SOFTPLUS_BETA,
) -> dict[str, list[Tensor]]:
    """Each term's un-weighted update of every layer, ``{term: [F_r(layer l)]}`` (for inspection/tests)."""
    fb = list(weights) if feedback is None else list(feedback)
    acts, logits = forward_activities(weights, x, beta)
    errors = feedback_errors(fb, acts, logits, labels, beta)
    posts = [*acts[1:], torch.softmax(logits, -1)]
    out: dict[str, list[Tensor]] = {}
    for t in terms:
        fn = get_term(t).fn
        out[t] = [
            fn(LayerSignals(acts[l], posts[l], errors[l + 1], errors[l], W)) for l, W in enumerate(weights)
        ]
    return out
