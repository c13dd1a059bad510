"""Few-shot task sources: N-way K-shot Omniglot (learn2learn ``Taskset`` over the real data) and few-shot
sine regression. Each ``sample(episodes, generator)`` returns an
:class:`~avalanche_plasticity.tasks.EpisodeBatch` whose support set is one minibatch
(``support_x (E, 1, N*K, ...)``), ready for :func:`avalanche_plasticity.contrastive.tasks_from_episodes`
and for :func:`avalanche_plasticity.contrastive.meta_train_bilevel`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import torch

from avalanche_plasticity.data import load_omniglot
from avalanche_plasticity.tasks import EpisodeBatch, OmniglotTaskSource

SINE_AMPLITUDE = (0.1, 5.0)
SINE_PHASE = (0.0, math.pi)
SINE_INPUT = (-5.0, 5.0)


class FewShotOmniglot:
    """N-way K-shot Omniglot episodes with labels 0..N-1 (a fresh random assignment per episode).

    :param ways: classes per episode (5 and 20 are the standard settings).
    :param shots: support images per class (1 or 5).
    :param query_shots: query images per class (``shots + query_shots <= 20``).
    :param split: ``"evaluation"`` (the 659 meta-test classes, default) or ``"background"`` (the 964
        meta-training classes).
    :raises DataNotFoundError: Omniglot is not under ``root`` / ``$AVP_DATA_DIR``.
    """

    def __init__(
        self,
        *,
        ways: int = 5,
        shots: int = 1,
        query_shots: int = 15,
        split: Literal["background", "evaluation"] = "evaluation",
        image_size: int = 28,
        root: str | Path | None = None,
    ) -> None:
        if split not in ("background", "evaluation"):
            raise ValueError(f"split must be 'background' or 'evaluation', got {split!r}")
        for name, v in (("ways", ways), ("shots", shots), ("query_shots", query_shots)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if shots + query_shots > 20:
            raise ValueError(
                f"shots + query_shots must be <= 20 (drawers per class), got {shots + query_shots}"
            )
        data = load_omniglot(split, root=root, image_size=image_size)
        self._source = OmniglotTaskSource(
            data.images, ways=ways, shots=shots, query_shots=query_shots, num_units=ways, order="iid"
        )
        self.taskset = self._source.taskset
        self.ways, self.shots, self.query_shots, self.split = ways, shots, query_shots, split
        self.input_shape = tuple(data.images.shape[2:])

    def sample(self, episodes: int, generator: torch.Generator) -> EpisodeBatch:
        if not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"episodes must be a positive int, got {episodes!r}")
        b = self._source.sample(episodes, generator)  # support (E, N*K, 1, ...): one image per step
        return EpisodeBatch(b.support_x.transpose(1, 2), b.support_y.transpose(1, 2), b.query_x, b.query_y)


class FewShotSine:
    """K-shot sine regression (Finn et al. 2017): ``y = A sin(x + phase)``, ``A ~ U[0.1, 5]``,
    ``phase ~ U[0, pi]``, ``x ~ U[-5, 5]``; input ``x`` (1 feature), target ``y`` (1 feature).

    :param shots: support points per task; ``query``: query points per task.
    """

    input_shape = (1,)

    def __init__(self, *, shots: int = 10, query: int = 10) -> None:
        for name, v in (("shots", shots), ("query", query)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.shots, self.query = shots, query

    def sample(self, episodes: int, generator: torch.Generator) -> EpisodeBatch:
        if not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"episodes must be a positive int, got {episodes!r}")
        E, n = episodes, self.shots + self.query
        amp = SINE_AMPLITUDE[0] + (SINE_AMPLITUDE[1] - SINE_AMPLITUDE[0]) * torch.rand(
            E, 1, generator=generator
        )
        phase = SINE_PHASE[0] + (SINE_PHASE[1] - SINE_PHASE[0]) * torch.rand(E, 1, generator=generator)
        x = SINE_INPUT[0] + (SINE_INPUT[1] - SINE_INPUT[0]) * torch.rand(E, n, generator=generator)
        y = amp * torch.sin(x + phase)
        x, y = x.unsqueeze(-1), y.unsqueeze(-1)
        k = self.shots
        return EpisodeBatch(x[:, None, :k], y[:, None, :k], x[:, k:], y[:, k:])


__all__ = ["FewShotOmniglot", "FewShotSine"]
