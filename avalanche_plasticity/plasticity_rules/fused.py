"""The deployed rule's online step for one sample, fused: the paper's ten terms collapsed algebraically.

At deployment the coefficients are fixed numbers and the network sees one sample at a time (the paper's
online setting, and the ``MetaPlasticityRule`` strategy's default). Every term of the paper's pool is then
a rank-one outer product (or a multiple of ``W``), and they share three left vectors, so the whole rule
for layer ``l`` is (``e = e_l``, ``y = y_l``, ``p = y_{l-1}``, ``q = e_{l-1}``, ``c_r = theta_r``)::

    W <- (1 - c3) W
         + e (x) [-(c0 + c5 sum(y) + c7 g1) p - c2 q]          # F0, F5, F7 and F2
         + y (x) [c9 (p - y W) - (c1 + c6 g1 + c8 g2) q]       # F9 (Oja), F1, F6, F8
         - 1 (x) c4 q                                          # F4
    g1 = y W q^T,   g2 = e W p^T = e . z_l                     # the per-sample gates of F6, F7, F8

two ``addr_`` calls and at most one broadcast add per layer, with the scalar gates read as Python numbers.
The result equals :func:`.rule.plasticity_update` (tested to float precision); it exists for speed, since
at batch size 1 the generic path is bound by the number of small kernels it launches.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from .terms import PAPER_POOL

Tensor = torch.Tensor
_softplus_backward = torch.ops.aten.softplus_backward  # grad * sigmoid(beta z) (beta z <= 20, else grad)
# (W[0], W[0].t()) of each deployed weight tensor, kept while that tensor lives: at batch size 1, making
# these views afresh every step costs about a tenth of the step.
_VIEWS: dict[int, tuple[Tensor, Tensor]] = {}
_POOL = frozenset(PAPER_POOL)


def _matrix_views(W: Tensor) -> tuple[Tensor, Tensor]:
    views = _VIEWS.get(id(W))
    if views is None or views[0].data_ptr() != W.data_ptr():
        if id(W) not in _VIEWS:
            weakref.finalize(W, _VIEWS.pop, id(W), None)
        views = _VIEWS[id(W)] = (W[0], W[0].t())
    return views


def fusable(terms: Sequence[str], weights: Sequence[Tensor], x: Tensor) -> bool:
    """Whether :func:`fused_online_step_` applies: only paper terms, one episode, one sample."""
    return paper_terms_only(terms) and one_sample(weights, x)


def paper_terms_only(terms: Sequence[str]) -> bool:
    return set(terms) <= _POOL


def one_sample(weights: Sequence[Tensor], x: Tensor) -> bool:
    return x.shape[:-1] == (1, 1) and weights[0].shape[0] == 1


def fused_step_no_grad_(
    weights: Sequence[Tensor],
    feedback: Sequence[Tensor] | None,
    coefficients: Mapping[str, float],
    x: Tensor,
    label: Tensor,
    beta: float,
) -> None:
    """One online step of the rule, written into ``weights`` in place; the caller runs it under
    ``torch.no_grad`` (:func:`fused_online_step_` enters it for you).

    :param weights: ``W_l`` of shape ``(1, out, in)``; :param feedback: ``B_l`` likewise, or None (B = W).
    :param coefficients: ``{term: theta}`` over the paper's terms (absent terms are 0).
    :param x: ``(1, 1, n_0)``; :param label: ``(1, 1)`` class index.
    """
    c = [float(coefficients.get(t, 0.0)) for t in PAPER_POOL]
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9 = c
    Ws, WTs = zip(*(_matrix_views(W) for W in weights), strict=True)
    BTs = WTs if feedback is None else [_matrix_views(B)[1] for B in feedback]
    # forward: pre-activations z_l and activities y_l
    acts, pre_acts = [x.reshape(-1)], []
    for W in Ws[:-1]:
        z = torch.mv(W, acts[-1])
        pre_acts.append(z)
        acts.append(F.softplus(z, beta=beta))
    logits = torch.mv(Ws[-1], acts[-1])
    pre_acts.append(logits)
    probs = torch.softmax(logits, 0)
    error = probs.clone()
    error[int(label)] -= 1.0  # e_L = softmax(z_L) - onehot(label)
    # errors through the feedback pathway: e_{l} = (e_{l+1} B_{l+1}) * (1 - exp(-beta y_l))
    need_input_error = any((c1, c2, c4, c6, c7, c8))  # the terms that read e_{l-1} (F7 through its gate)
    errors = [error]
    for l in range(len(Ws) - 1, -1, -1):
        if l == 0 and not need_input_error:
            errors.insert(0, None)
            break
        sent = torch.mv(BTs[l], errors[0])  # e_{l+1} B_{l+1}
        if l:  # 1 - exp(-beta softplus(z)) = sigmoid(beta z): softplus's own backward, one kernel
            errors.insert(0, _softplus_backward(sent, pre_acts[l - 1], beta, 20.0))
        else:  # the input has no z: the authors' formula on the pixels
            errors.insert(0, sent.mul_(torch.rsub(torch.exp(acts[0] * -beta), 1.0)))
    posts = [*acts[1:], probs]
    scale = 1.0 - c3
    for l, (W, WT) in enumerate(zip(Ws, WTs, strict=True)):
        e, y, p, q = errors[l + 1], posts[l], acts[l], errors[l]
        g1 = g2 = 0.0
        post_weight = None
        if c9 or c6 or c7:
            post_weight = torch.mv(WT, y)  # y W
            if c6 or c7:
                g1 = float(torch.dot(post_weight, q))
        if c8:
            g2 = float(torch.dot(e, pre_acts[l]))
        a = -(c0 + (c5 * float(y.sum()) if c5 else 0.0) + c7 * g1)
        b = -(c1 + c6 * g1 + c8 * g2)
        # every factor above is read from the old W; now write the new one
        left_e = torch.mul(q, -c2).add_(p, alpha=a) if c2 else p * a
        left_y = None
        if c9:
            left_y = torch.sub(p, post_weight).mul_(c9)
            if b:
                left_y.add_(q, alpha=b)
        elif b:
            left_y = q * b
        W.addr_(e, left_e, beta=scale)
        if left_y is not None:
            W.addr_(y, left_y)
        if c4:
            W.sub_(q, alpha=c4)


#: :func:`fused_step_no_grad_` under ``torch.no_grad`` (deployment, no autograd).
fused_online_step_ = torch.no_grad()(fused_step_no_grad_)

__all__ = ["fusable", "fused_online_step_", "fused_step_no_grad_", "one_sample", "paper_terms_only"]
