"""Memory-lean meta-gradient of FLP's online rule: a reversible backward pass (issue #16).

The stored-graph meta-gradient (``MetaTrainConfig.meta_gradient="stored"``) back-propagates through
the whole online trajectory, so autograd keeps every step's fast weights and the update's intermediates
(~12.5 MB per step and episode on the authors' 11-300-...-300-1 sine network, 12.9 GB for 400 steps).
:class:`LeanTrajectory` computes the same gradient from a forward pass that keeps only

- each step's layer activities ``a_1 .. a_L`` (``(E, B, n_l)``: the small part), and
- the fast weights at every ``k``-th step (*anchors*, ``k = ceil(sqrt(T))`` by default),

and walks backwards rebuilding each step's fast weights from the next one by inverting the step. With
``post = a~_l`` (the target activity), ``pre = a_{l-1}``, ``H = post^T pre`` (recomputed from the saved
activities) and ``q = sum_b post^2``, the rules and their inverses are (elementwise):

- **Oja**: ``W' = W (.) (1 - eta q) + eta (.) H``  ->  ``W = (W' - eta (.) H) / (1 - eta (.) q)``.
  The division amplifies rounding by ``1 / |1 - eta q|`` per step; rebuilding starts afresh from the
  exact anchor at the end of each segment, so errors never travel more than ``k`` steps. A segment whose
  bound on the amplification (the product over its steps of ``max 1/|1 - eta q|``, from each row's
  extreme rates and the saved ``q``) exceeds ``max_amplification`` (or where ``1 - eta q`` can reach 0)
  is *replayed* instead: the forward steps are re-run from the segment's first anchor, keeping its ``k``
  weight sets (exact; the classic sqrt(T) checkpointing).
- **Hebbian** (no decay): ``W' = W + eta (.) H``  ->  ``W = W' - eta (.) H``: a subtraction, which does
  not amplify rounding; it is never replayed.

Rebuilding is done in the parameters' dtype (float64 learners rebuild in float64). Memory: the
activities, ``T/k`` anchors and one working set of weights and gradients; time: one extra outer
product per layer and step (to rebuild ``H``) over the stored-graph path, and no autograd graph.

The backward pass is written by hand (pure tensor algebra, in place on working buffers), so it also
covers the classification output (``post = onehot(y)``, the dense form of
:func:`~avalanche_plasticity.flp.onehot_oja_update`), every plasticity granularity, the hidden-layer
multiplier, linear feedback and a differentiable trunk (gradients w.r.t. the features).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

Tensor = torch.Tensor


@dataclass(frozen=True)
class LeanSpec:
    """The non-tensor settings of one memory-lean trajectory.

    :param task: ``"regression"`` or ``"classification"``.
    :param rule: ``"oja"`` or ``"hebb"``.
    :param hidden_plasticity_multiplier: scales hidden-layer rates (applied once per trajectory).
    :param linear_feedback: no ReLU on the feedback pathway.
    :param anchor_every: steps between stored weight sets (None: ``ceil(sqrt(T))``).
    :param max_amplification: replay (instead of invert) an Oja segment whose rounding-error
        amplification bound exceeds this.
    :param episode_chunk: episodes run through one forward and reverse pass together (None: as many as
        torch's CPU threads). The reverse pass makes ~8 elementwise passes per layer and step over the
        weight-sized tensors of every episode in the pass; with many episodes at once they no longer fit
        the caches (16 episodes of the authors' network: 4x slower per episode than one), so a meta-batch
        is run a chunk at a time. The result does not depend on it beyond rounding.
    """

    task: str
    rule: str
    hidden_plasticity_multiplier: float = 1.0
    linear_feedback: bool = False
    anchor_every: int | None = None
    max_amplification: float = 10.0
    episode_chunk: int | None = None

    def __post_init__(self) -> None:
        if self.task not in ("regression", "classification"):
            raise ValueError(f"task must be 'regression' or 'classification', got {self.task!r}")
        if self.rule not in ("oja", "hebb"):
            raise ValueError(f"rule must be 'oja' or 'hebb', got {self.rule!r}")
        anchor_interval(1, self.anchor_every)  # validates it
        if self.episode_chunk is not None and (
            isinstance(self.episode_chunk, bool)
            or not isinstance(self.episode_chunk, int)
            or self.episode_chunk < 1
        ):
            raise ValueError(f"episode_chunk must be None or a positive int, got {self.episode_chunk!r}")
        if not self.max_amplification >= 1:
            raise ValueError(f"max_amplification must be >= 1, got {self.max_amplification!r}")

    def interval(self, steps: int) -> int:
        """Steps between anchors for a ``steps``-long trajectory."""
        return anchor_interval(steps, self.anchor_every)


def anchor_interval(steps: int, anchor_every: int | None = None) -> int:
    """``anchor_every``, or ``ceil(sqrt(steps))`` when it is None: steps between kept fast states.

    :raises ValueError: ``anchor_every`` is neither None nor a positive int."""
    if anchor_every is not None and (
        isinstance(anchor_every, bool) or not isinstance(anchor_every, int) or anchor_every < 1
    ):
        raise ValueError(f"anchor_every must be None or a positive int, got {anchor_every!r}")
    return anchor_every or max(1, math.ceil(math.sqrt(steps)))


@dataclass
class _Meta:
    """The meta-parameter tensors, layer by layer (``rates`` already scaled by the hidden multiplier)."""

    biases: Sequence[Tensor]
    fb_weights: Sequence[Tensor]
    fb_biases: Sequence[Tensor]
    rates: Sequence[Tensor]
    betas: Sequence[Tensor]


class _Workspace:
    """Reusable per-layer buffers for the step's full-size temporaries (``H``, ``1 - eta q``, ``dH``).

    Allocating a fresh weight-sized tensor for each of them at every step and layer made the allocator
    return pages to the system and fault them back in: on the authors' network the 900x300 outer product
    ran at a third of its isolated speed. One buffer per layer and name, reused over the trajectory.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, int], Tensor] = {}

    def get(self, name: str, l: int, shape: torch.Size, like: Tensor) -> Tensor:
        buf = self._buffers.get((name, l))
        if buf is None or buf.shape != shape:
            buf = self._buffers[(name, l)] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return buf


def scaled_rates(rates: Sequence[Tensor], multiplier: float) -> list[Tensor]:
    """Hidden-layer rates times ``multiplier``, computed once per trajectory (no copy when it is 1)."""
    L = len(rates)
    if multiplier == 1.0:
        return list(rates)
    return [r * multiplier if l < L - 1 else r for l, r in enumerate(rates)]


def forward_activities(
    weights: Sequence[Tensor], biases: Sequence[Tensor], x: Tensor, upto: int, out: Sequence[Tensor] | None
) -> list[Tensor]:
    """``[a_0 = x, a_1, ..., a_upto]`` (ReLU hidden, linear output), written into ``out`` when given.

    Same arithmetic as :func:`~avalanche_plasticity.networks.plastic_forward`.
    """
    L = len(weights)
    acts = [x]
    for l in range(upto):
        kw = {"out": out[l]} if out is not None else {}
        z = torch.baddbmm(biases[l].unsqueeze(-2), acts[-1], weights[l].transpose(-1, -2), **kw)
        acts.append(z.relu_() if l < L - 1 else z)
    return acts


def feedback_signal(acts: Sequence[Tensor], y: Tensor, n_out: int, spec: LeanSpec) -> Tensor:
    """``s = y - y_hat`` (regression) or ``onehot(y)`` (classification)."""
    if spec.task == "regression":
        return y - acts[-1]
    return F.one_hot(y, n_out).to(acts[0].dtype)


def target_activity(
    l: int, s: Tensor, acts: Sequence[Tensor], y: Tensor, meta: _Meta, spec: LeanSpec, L: int
):
    """``(post, fb)`` of layer ``l``: ``a~_l = beta ReLU(B s + c) + (1 - beta) a_l`` (``fb`` is the
    feedback term; None for the classification output, whose target is ``onehot(y)``)."""
    if spec.task == "classification" and l == L - 1:
        return s, None
    fb = torch.matmul(s, meta.fb_weights[l].transpose(-1, -2)) + meta.fb_biases[l]
    if not spec.linear_feedback:
        fb = F.relu(fb)
    beta = meta.betas[l]
    return beta * fb + (1 - beta) * acts[l + 1], fb


def step_(
    weights: list[Tensor],
    meta: _Meta,
    x: Tensor,
    y: Tensor,
    spec: LeanSpec,
    out: Sequence[Tensor] | None = None,
    work: _Workspace | None = None,
) -> list[Tensor]:
    """One FLP step applied **in place** to ``weights``; returns each layer's ``q = sum_b post^2``
    (Oja) and writes the activities into ``out`` when given (``work``: reusable buffers).

    # W <- W + eta (.) (post^T pre - diag(sum_b post^2) W)     (Hebb: W <- W + eta (.) post^T pre)
    """
    L = len(weights)
    upto = L - 1 if spec.task == "classification" else L
    acts = forward_activities(weights, meta.biases, x, upto, out)
    s = feedback_signal(acts, y, weights[-1].shape[-2], spec)
    qs = []
    work = work or _Workspace()
    for l in range(L):
        post, _ = target_activity(l, s, acts, y, meta, spec, L)
        H = work.get("H", l, weights[l].shape, weights[l])
        torch.bmm(post.transpose(-1, -2), acts[l], out=H)  # post^T pre
        if spec.rule == "oja":
            q = post.square().sum(-2)
            H.addcmul_(q.unsqueeze(-1), weights[l], value=-1)  # post^T pre - diag(q) W
            qs.append(q)
        weights[l].addcmul_(meta.rates[l], H)
    return qs


def relu_backward(grad: Tensor, out: Tensor) -> Tensor:
    """``grad * (out > 0)`` for ``out = ReLU(z)``, in one kernel (autograd's own ReLU backward)."""
    return torch.ops.aten.threshold_backward(grad, out, 0)


def _sum_to(x: Tensor, shape: torch.Size) -> Tensor:
    """Sum a broadcast result back to ``shape`` (the reverse of broadcasting)."""
    lead = x.dim() - len(shape)
    if lead:
        x = x.sum(tuple(range(lead)))
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and x.shape[i] != 1)
    return x.sum(dims, keepdim=True) if dims else x


def log_amplification(qs: Tensor, rate: Tensor) -> float:
    """Bound on ``log prod_t max 1/|1 - eta q_t|`` for one layer's segment (``inf`` when ``1 - eta q``
    can reach 0): ``qs (k, E, n)`` (>= 0), ``rate`` broadcastable to ``(n, m)``."""
    r = rate.reshape(1, 1) if rate.dim() < 2 else rate
    rmax, rmin = r.amax(-1), r.amin(-1)  # (n,) or (1,): per row
    hi, lo = 1 - rmin * qs, 1 - rmax * qs  # 1 - eta q over the row's rates lies in [lo, hi]
    if bool(((lo <= 0) & (hi >= 0)).any()):
        return math.inf
    smallest = torch.minimum(lo.abs(), hi.abs())  # (k, E, n)
    return float((-smallest.log()).flatten(1).amax(1).clamp_min(0).sum())


class LeanTrajectory(torch.autograd.Function):
    """Final fast weights after a trajectory, with the memory-lean backward pass (module docstring).

    ``apply(spec, features, targets, *weights, *biases, *fb_weights, *fb_biases, *rates, *betas)``:
    ``features (E, T, B, n_0)``, ``targets (E, T, B[, n_L])``, each group ``L`` tensors; returns the ``L``
    final weights ``(E, n_l, n_{l-1})``.
    """

    @staticmethod
    def forward(ctx, spec: LeanSpec, features: Tensor, targets: Tensor, *tensors: Tensor):  # type: ignore[override]
        L = len(tensors) // 6
        groups = [list(tensors[i * L : (i + 1) * L]) for i in range(6)]
        w0, biases, fbw, fbb, rates, betas = groups
        meta = _Meta(biases, fbw, fbb, scaled_rates(rates, spec.hidden_plasticity_multiplier), betas)
        E, T, B = features.shape[:3]
        k = spec.interval(max(T, 1))
        upto = L - 1 if spec.task == "classification" else L
        dtype, device = features.dtype, features.device
        acts = [torch.empty(T, E, B, w0[l].shape[-2], dtype=dtype, device=device) for l in range(upto)]
        qs = (
            [torch.empty(T, E, w.shape[-2], dtype=dtype, device=device) for w in w0]
            if spec.rule == "oja"
            else []
        )
        weights = [w.clone(memory_format=torch.contiguous_format) for w in w0]
        anchors: dict[int, list[Tensor]] = {}
        work = _Workspace()
        for t in range(T):
            if t and t % k == 0:
                anchors[t] = [w.clone() for w in weights]
            q = step_(weights, meta, features[:, t], targets[:, t], spec, [a[t] for a in acts], work)
            for l, ql in enumerate(q):
                qs[l][t] = ql
        ctx.spec, ctx.L, ctx.k = spec, L, k
        ctx.acts, ctx.qs, ctx.anchors = acts, qs, anchors
        ctx.save_for_backward(features, targets, *tensors, *weights)
        return tuple(weights)

    @staticmethod
    @once_differentiable  # the reverse pass works in place on its buffers: no double backward
    def backward(ctx, *grad_out: Tensor):  # type: ignore[override]
        spec, L, k = ctx.spec, ctx.L, ctx.k
        features, targets, *tensors = ctx.saved_tensors
        tensors, final = tensors[: 6 * L], tensors[6 * L :]
        w0, biases, fbw, fbb, rates, betas = (list(tensors[i * L : (i + 1) * L]) for i in range(6))
        meta = _Meta(biases, fbw, fbb, scaled_rates(rates, spec.hidden_plasticity_multiplier), betas)
        grads = backward_pass(
            spec,
            ctx.acts,
            ctx.qs,
            ctx.anchors,
            k,
            features,
            targets,
            w0,
            final,
            meta,
            grad_out,
            need_features=ctx.needs_input_grad[1],
        )
        ctx.acts = ctx.qs = ctx.anchors = None
        d_feat, g = grads
        mult = spec.hidden_plasticity_multiplier
        d_rate = [d * mult if (l < L - 1 and mult != 1.0) else d for l, d in enumerate(g.rates)]
        out = [d_feat, None, *g.weights, *g.biases, *g.fb_weights, *g.fb_biases, *d_rate, *g.betas]
        needs = ctx.needs_input_grad[1:]
        return (None, *[g if need else None for g, need in zip(out, needs, strict=True)])


@dataclass
class _Grads:
    """Meta-gradient accumulators. ``weights[l]`` holds ``dL/dW_t`` (``(E, n, m)``) and ends as
    ``dL/dW_0``; ``rates[l]`` is w.r.t. the scaled rates, broadcast over episodes until the end."""

    weights: list[Tensor]
    rates: list[Tensor]
    biases: list[Tensor]
    fb_weights: list[Tensor]
    fb_biases: list[Tensor]
    betas: list[Tensor]


def _accumulate(grads: list[Tensor | None], i: int, g: Tensor) -> None:
    grads[i] = g if grads[i] is None else grads[i].add_(g)


def reverse_step(
    spec: LeanSpec,
    meta: _Meta,
    W: list[Tensor],
    grads: _Grads,
    acts: Sequence[Tensor],
    y: Tensor,
    kept: Sequence[Tensor] | None,
    need_features: bool,
    work: _Workspace | None = None,
) -> Tensor | None:
    """One step backwards, in place: ``W`` goes from ``W_{t+1}`` to ``W_t`` (rebuilt by inverting the
    rule, or copied from ``kept`` for a replayed segment) and ``grads.weights`` from ``dL/dW_{t+1}`` to
    ``dL/dW_t``; the meta-parameter gradients of step ``t`` are added. ``acts = [a_0 = x_t, a_1, ...]``
    as saved by the forward pass. Returns ``dL/dx_t`` when ``need_features``.
    """
    L = len(W)
    oja = spec.rule == "oja"
    upto = len(acts) - 1
    work = work or _Workspace()
    one = torch.ones((), dtype=acts[0].dtype, device=acts[0].device)
    s = feedback_signal(acts, y, W[-1].shape[-2], spec)
    d_a: list[Tensor | None] = [None] * (upto + 1)
    d_s = torch.zeros_like(s) if spec.task == "regression" else None
    for l in range(L):
        pre, r, G = acts[l], meta.rates[l], grads.weights[l]
        post, fb = target_activity(l, s, acts, y, meta, spec, L)
        H = work.get("H", l, G.shape, G)
        torch.bmm(post.transpose(-1, -2), pre, out=H)  # post^T pre, from the saved activities
        if oja:
            q = post.square().sum(-2).unsqueeze(-1)  # (E, n, 1)
            D = work.get("D", l, torch.broadcast_shapes(r.shape, q.shape), G)
            torch.addcmul(one, r, q, value=-1, out=D)  # 1 - eta q
            if kept is not None:
                W[l].copy_(kept[l])
            else:  # W = (W' - eta (.) H) / (1 - eta (.) q)
                W[l].addcmul_(r, H, value=-1).div_(D)
            X = H.addcmul_(q, W[l], value=-1)  # dW'/d eta = H - q W
        else:
            if kept is not None:
                W[l].copy_(kept[l])
            else:  # W = W' - eta (.) H
                W[l].addcmul_(r, H, value=-1)
            X = H
        if grads.rates[l].shape == G.shape:
            grads.rates[l].addcmul_(G, X)
        else:
            grads.rates[l].add_(_sum_to(G * X, grads.rates[l].shape))
        dH = torch.mul(G, r, out=work.get("dH", l, G.shape, G))  # dL/dH
        d_post = torch.bmm(pre, dH.transpose(-1, -2))  # (E, B, n)
        if l > 0 or need_features:
            _accumulate(d_a, l, torch.bmm(post, dH))  # d pre
        if oja:
            dq = torch.mul(dH, W[l], out=work.get("P", l, G.shape, G)).sum(-1)  # dL/dq = -sum_j dH W
            d_post.addcmul_(post, dq.unsqueeze(-2), value=-2)
            G.mul_(D)  # the direct path W -> W' = W (.) (1 - eta q) + ...
        if fb is None:  # classification output: the target is the label
            continue
        beta = meta.betas[l]
        grads.betas[l] += (d_post * (fb - acts[l + 1])).sum()
        d_fb = d_post * beta
        if not spec.linear_feedback:
            d_fb = relu_backward(d_fb, fb)
        grads.fb_weights[l] += d_fb.flatten(0, 1).transpose(0, 1) @ s.flatten(0, 1)
        grads.fb_biases[l] += d_fb.sum((0, 1))
        if d_s is not None:
            d_s.add_(torch.matmul(d_fb, meta.fb_weights[l]))
        _accumulate(d_a, l + 1, d_post.mul_(1 - beta))
    if d_s is not None:  # s = y - a_L
        _accumulate(d_a, upto, d_s.neg_())
    for l in reversed(range(upto)):  # back through the forward pass a_{l+1} = ReLU(W_l a_l + b_l)
        dz = d_a[l + 1]
        if dz is None:
            continue
        if l < L - 1:
            dz = relu_backward(dz, acts[l + 1])
        grads.weights[l].baddbmm_(dz.transpose(-1, -2), acts[l])
        grads.biases[l] += dz.sum((0, 1))
        if l > 0 or need_features:
            _accumulate(d_a, l, torch.bmm(dz, W[l]))
    return d_a[0] if need_features else None


def backward_pass(
    spec: LeanSpec,
    acts: Sequence[Tensor],
    qs: Sequence[Tensor],
    anchors: dict[int, list[Tensor]],
    k: int,
    features: Tensor,
    targets: Tensor,
    w0: Sequence[Tensor],
    final: Sequence[Tensor],
    meta: _Meta,
    grad_out: Sequence[Tensor | None],
    need_features: bool = True,
) -> tuple[Tensor | None, _Grads]:
    """Walk the trajectory backwards segment by segment, rebuilding the fast weights (module docstring).

    ``acts[l]`` ``(T, E, B, n_{l+1})`` and ``qs[l]`` ``(T, E, n_{l+1})`` (Oja) are the forward's saved
    activities and ``sum_b post^2``; ``anchors[t]`` the weights before step ``t`` (every ``k``-th);
    ``final`` the weights after the last step. Returns ``(dL/dfeatures or None, gradients)`` with the
    rate gradients w.r.t. the scaled rates.
    """
    E, T = features.shape[:2]
    G = [
        (g if g is not None else torch.zeros_like(w))
        .expand(E, *w.shape[-2:])
        .clone(memory_format=torch.contiguous_format)
        for g, w in zip(grad_out, w0, strict=True)
    ]
    grads = _Grads(
        G,
        [
            torch.zeros(torch.broadcast_shapes(g.shape, r.shape), dtype=g.dtype, device=g.device)
            for g, r in zip(G, meta.rates, strict=True)
        ],
        [torch.zeros_like(b) for b in meta.biases],
        [torch.zeros_like(b) for b in meta.fb_weights],
        [torch.zeros_like(b) for b in meta.fb_biases],
        [torch.zeros_like(b) for b in meta.betas],
    )
    W = [w.clone(memory_format=torch.contiguous_format) for w in final]
    d_feat = torch.zeros_like(features) if need_features else None
    work = _Workspace()
    for start in reversed(range(0, T, k)):
        end = min(start + k, T)
        if end < T:  # start afresh from the exact weights at the segment's end
            for w, anchor in zip(W, anchors[end], strict=True):
                w.copy_(anchor)
        kept = None
        if spec.rule == "oja":
            bound = max(log_amplification(q[start:end], r) for q, r in zip(qs, meta.rates, strict=True))
            if bound > math.log(spec.max_amplification):
                kept = _replay(anchors, start, end, features, targets, w0, meta, spec, work)
        for t in reversed(range(start, end)):
            a = [features[:, t], *(buf[t] for buf in acts)]
            d_x = reverse_step(
                spec, meta, W, grads, a, targets[:, t], kept[t - start] if kept else None, need_features, work
            )
            if d_feat is not None and d_x is not None:
                d_feat[:, t] = d_x
    grads.rates = [_sum_to(d, r.shape) for d, r in zip(grads.rates, meta.rates, strict=True)]
    return d_feat, grads


def _start_weights(anchors, start: int, w0: Sequence[Tensor]) -> list[Tensor]:
    return [w.clone(memory_format=torch.contiguous_format) for w in (anchors[start] if start else w0)]


def _replay(
    anchors, start: int, end: int, features, targets, w0, meta: _Meta, spec: LeanSpec, work=None
) -> list[list[Tensor]]:
    """The exact fast weights of steps ``start .. end-1``, re-run forward from the segment's anchor."""
    weights = _start_weights(anchors, start, w0)
    kept = []
    for t in range(start, end):
        kept.append([w.clone() for w in weights])
        step_(weights, meta, features[:, t], targets[:, t], spec, work=work)
    return kept


def checkpointed_trajectory(
    step: Callable[[list[Tensor], Tensor, Tensor], list[Tensor]],
    fast: Sequence[Tensor],
    features: Tensor,
    targets: Tensor,
    anchor_every: int | None = None,
) -> list[Tensor]:
    """Run ``step`` over ``features (E, T, ...)`` keeping only every ``k``-th fast state (``k =
    ceil(sqrt(T))`` by default): each segment of ``k`` steps is a non-reentrant
    :func:`torch.utils.checkpoint.checkpoint`, re-run forward during the backward pass.

    The memory-lean meta-gradient of a rule that cannot be inverted elementwise. The plasticity-rule pool's
    step ``W' = W + sum_r theta_r F_r(W)`` has terms that multiply ``W`` by matrices on either side (Oja's
    subspace form ``(y^T y) W``, the sandwich terms), so rebuilding ``W`` from ``W'`` would mean solving a
    linear system per step; re-running the step forward from the last kept state is exact instead (the
    same operations on the same numbers) at the cost of one more forward pass. Memory: ``T/k`` fast states
    plus one segment's graph. ``step`` must be deterministic (draws belong to the initial state).
    """
    from torch.utils.checkpoint import checkpoint

    T = features.shape[1]
    k = anchor_interval(max(T, 1), anchor_every)
    n = len(fast)

    def segment(*state: Tensor) -> tuple[Tensor, ...]:  # the fast state, then the segment's x and y
        w, x, y = list(state[:n]), state[n], state[n + 1]
        for t in range(x.shape[1]):
            w = step(w, x[:, t], y[:, t])
        return tuple(w)

    for start in range(0, T, k):
        x, y = features[:, start : start + k], targets[:, start : start + k]
        fast = checkpoint(segment, *fast, x, y, use_reentrant=False)
    return list(fast)


def lean_trajectory(
    fast_weights: Sequence[Tensor],
    biases: Sequence[Tensor],
    feedback_weights: Sequence[Tensor],
    feedback_biases: Sequence[Tensor],
    plasticity_rates: Sequence[Tensor],
    feedback_strengths: Sequence[Tensor],
    features: Tensor,
    targets: Tensor,
    spec: LeanSpec,
) -> list[Tensor]:
    """Final fast weights after ``features (E, T, B, n_0)``, differentiable through the memory-lean
    backward pass (equal to back-propagating through every step, up to rounding)."""
    if features.shape[1] == 0:
        return list(fast_weights)
    E = features.shape[0]
    chunk = min(E, spec.episode_chunk or torch.get_num_threads())
    meta = (*biases, *feedback_weights, *feedback_biases, *plasticity_rates, *feedback_strengths)
    if chunk >= E:
        return list(LeanTrajectory.apply(spec, features, targets, *fast_weights, *meta))
    parts = []
    for start in range(0, E, chunk):  # a chunk of episodes at a time (see LeanSpec.episode_chunk)
        part = slice(start, start + chunk)
        w = [fw[part] if fw.shape[0] == E else fw for fw in fast_weights]  # shared weights stay shared
        parts.append(LeanTrajectory.apply(spec, features[part], targets[part], *w, *meta))
    return [torch.cat(ws) for ws in zip(*parts, strict=True)]
