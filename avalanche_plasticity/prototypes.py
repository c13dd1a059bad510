"""A class-prototype readout: the output rule that keeps what it learned while the stream moves on.

FLP's output rule for classification moves the labelled row toward the presynaptic pattern,
``W_y <- W_y + eta_y (a - W_y)`` (Oja with ``post = onehot(y)``). With a fixed rate each row is an
exponential average of the last ``~1/eta`` patterns of its class, and the hidden layers' own plasticity moves
the patterns themselves, so a long class-incremental stream overwrites the early classes. The prototype
readout keeps the same update with a count-normalised rate,

    n_y <- n_y + 1;   W_y <- W_y + (1 / n_y) (a - W_y)                 (W_y = mean of class y's patterns)

so each row is the exact mean of every pattern of its class seen so far (a minibatch adds its same-label
patterns at once: the same result), and reads it out by distance:

    logit_y = -1/2 ||a - W_y||^2                                      (nearest class mean)

over L2-normalised patterns (as iCaRL's nearest-mean-of-exemplars classifier). The patterns are the
activities of a fixed layer of the meta-trained network (the layers below it are not plastic in this mode),
so a prototype never goes stale. Classes not seen yet get :data:`UNSEEN_LOGIT` (never predicted).

The functions are pure: ``(means, counts, patterns, labels) -> (means, counts)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

# The logit of a class with no prototype yet: far below any distance logit (>= -2 for unit vectors), finite
# so that a cross-entropy loss on an unseen class stays a number.
UNSEEN_LOGIT = -1.0e4


def normalized(patterns: Tensor) -> Tensor:
    """The patterns scaled to unit L2 norm along the last dimension (a zero pattern stays zero)."""
    return F.normalize(patterns, dim=-1)


def prototype_update(
    means: Tensor, counts: Tensor, patterns: Tensor, labels: Tensor
) -> tuple[Tensor, Tensor]:
    """Add a minibatch to the class means: ``W_y <- W_y + (k_y / (n_y + k_y)) (mean_batch_y - W_y)``.

    :param means: ``(C, d)`` class means; ``counts``: ``(C,)`` patterns seen per class (float).
    :param patterns: ``(B, d)`` (already normalised if the readout normalises); ``labels``: ``(B,)`` ints
        in ``[0, C)``.
    :returns: the new ``(means, counts)``.
    """
    batch_counts = torch.zeros_like(counts).index_add_(0, labels, torch.ones_like(labels, dtype=counts.dtype))
    batch_sums = torch.zeros_like(means).index_add_(0, labels, patterns.to(means.dtype))
    new_counts = counts + batch_counts
    touched = batch_counts > 0
    rate = torch.where(touched, 1.0 / new_counts.clamp(min=1.0), torch.zeros_like(counts))  # 1 / n_y
    # W_y + (1/n_y) (sum_batch_y - k_y W_y): the count-normalised Oja step summed over the minibatch
    new_means = means + rate.unsqueeze(-1) * (batch_sums - batch_counts.unsqueeze(-1) * means)
    return new_means, new_counts


def prototype_logits(means: Tensor, counts: Tensor, patterns: Tensor) -> Tensor:
    """``-1/2 ||a - W_y||^2`` for every class with a prototype, :data:`UNSEEN_LOGIT` for the others.

    ``patterns (B, d)`` -> logits ``(B, C)``.
    """
    distances = torch.cdist(patterns.to(means.dtype), means).square()
    logits = -0.5 * distances
    return torch.where(counts.unsqueeze(0) > 0, logits, torch.full_like(logits, UNSEEN_LOGIT))


__all__ = ["UNSEEN_LOGIT", "normalized", "prototype_logits", "prototype_update"]
