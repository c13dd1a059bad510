"""Episode sources for meta-training: incremental sine regression and Omniglot (learn2learn Taskset).

An :class:`EpisodeBatch` holds ``E`` episodes: an online trajectory ``support_x (E, T, B, *in)``,
``support_y (E, T, B[, 1])`` seen one minibatch at a time, and a query set ``query_x (E, Q, *in)``,
``query_y (E, Q[, 1])`` on which the meta-loss is taken after the whole trajectory.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

Tensor = torch.Tensor


@dataclass
class EpisodeBatch:
    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor

    @property
    def episodes(self) -> int:
        return self.support_x.shape[0]

    def episode(self, i: int) -> EpisodeBatch:
        """Episode ``i`` alone, keeping a leading episode dimension of 1."""
        s = slice(i, i + 1)
        return EpisodeBatch(self.support_x[s], self.support_y[s], self.query_x[s], self.query_y[s])

    def to(self, device: torch.device | str) -> EpisodeBatch:
        return EpisodeBatch(
            *(t.to(device) for t in (self.support_x, self.support_y, self.query_x, self.query_y))
        )


# ---------------------------------------------------------------------------------------------------
# Incremental sine (OML / FLP protocol)
# ---------------------------------------------------------------------------------------------------
SINE_Z_RANGE = (-5.0, 5.0)


def sample_sine_functions(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` functions ``y = A sin(z + phi)``: ``A ~ U[0.1, 5]``, ``phi ~ U[0, pi]``."""
    amplitude = 0.1 + 4.9 * torch.rand(n, generator=generator)
    phase = math.pi * torch.rand(n, generator=generator)
    return amplitude, phase


def sine_samples(
    amplitude: Tensor,
    phase: Tensor,
    slot: Tensor,
    num_slots: int,
    shape: tuple[int, ...],
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Inputs ``[onehot(slot), z]`` and targets ``A sin(z + phi)``.

    ``amplitude``, ``phase``, ``slot`` have shape ``shape[:-1]``-broadcastable leading dims; the last dim
    of ``shape`` is the number of points per function.
    """
    z = SINE_Z_RANGE[0] + (SINE_Z_RANGE[1] - SINE_Z_RANGE[0]) * torch.rand(*shape, generator=generator)
    y = amplitude.unsqueeze(-1) * torch.sin(z + phase.unsqueeze(-1))
    onehot = torch.nn.functional.one_hot(slot, num_slots).float().unsqueeze(-2).expand(*shape, num_slots)
    return torch.cat([onehot, z.unsqueeze(-1)], -1), y.unsqueeze(-1)


class SineTaskSource:
    """Incremental-sine episodes: ``functions_per_episode`` functions from a fixed pool, each seen as a
    block of ``batches_per_function`` minibatches of ``batch_size`` points (input = one-hot slot + z);
    the query has ``query_per_function`` fresh points of every function.

    :param order: ``"continual"`` (function blocks in sequence) or ``"iid"`` (minibatches shuffled).
    :param length_schedule: an episode-length curriculum, ``((step, batches_per_function), ...)``: from
        meta-update ``step`` on, blocks have that many minibatches (before the first step named:
        ``batches_per_function``).
        A plastic learner meta-trained only on short blocks can be unstable on longer ones.
    """

    def __init__(
        self,
        *,
        pool_size: int = 400,
        functions_per_episode: int = 10,
        batches_per_function: int = 40,
        batch_size: int = 8,
        query_per_function: int = 32,
        order: Literal["continual", "iid"] = "continual",
        pool_seed: int = 0,
        length_schedule: Sequence[Sequence[int]] = (),
    ) -> None:
        if order not in ("continual", "iid"):
            raise ValueError(f"order must be 'continual' or 'iid', got {order!r}")
        try:
            schedule = sorted((int(step), int(n)) for step, n in length_schedule)
        except (TypeError, ValueError):
            raise ValueError(
                f"length_schedule must be pairs (step, batches_per_function), got {length_schedule!r}"
            ) from None
        if any(step < 0 or n < 1 for step, n in schedule):
            raise ValueError(f"length_schedule needs steps >= 0 and lengths >= 1, got {length_schedule!r}")
        self.base_length, self.length_schedule = batches_per_function, schedule
        for name, v in (
            ("pool_size", pool_size),
            ("functions_per_episode", functions_per_episode),
            ("batches_per_function", batches_per_function),
            ("batch_size", batch_size),
            ("query_per_function", query_per_function),
        ):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.amplitude, self.phase = sample_sine_functions(
            pool_size, torch.Generator().manual_seed(pool_seed)
        )
        self.k, self.T, self.B, self.Q, self.order = (
            functions_per_episode,
            batches_per_function,
            batch_size,
            query_per_function,
            order,
        )
        self.input_size = functions_per_episode + 1

    def for_step(self, step: int) -> SineTaskSource:
        """Set the block length of meta-update ``step`` from ``length_schedule`` (returns ``self``)."""
        self.T = self.base_length
        for start, n in self.length_schedule:
            if step >= start:
                self.T = n
        return self

    def sample(self, episodes: int, generator: torch.Generator) -> EpisodeBatch:
        E, k, T, B = episodes, self.k, self.T, self.B
        idx = torch.stack([torch.randperm(len(self.amplitude), generator=generator)[:k] for _ in range(E)])
        amp, ph = self.amplitude[idx], self.phase[idx]  # (E, k)
        slots = torch.arange(k).expand(E, k)
        # support: (E, k, T, B, d) -> (E, k*T, B, d)
        sx, sy = sine_samples(
            amp.unsqueeze(-1).expand(E, k, T),
            ph.unsqueeze(-1).expand(E, k, T),
            slots.unsqueeze(-1).expand(E, k, T),
            k,
            (E, k, T, B),
            generator,
        )
        sx, sy = sx.reshape(E, k * T, B, -1), sy.reshape(E, k * T, B, 1)
        if self.order == "iid":
            perm = torch.stack([torch.randperm(k * T, generator=generator) for _ in range(E)])
            sx = sx[torch.arange(E).unsqueeze(1), perm]
            sy = sy[torch.arange(E).unsqueeze(1), perm]
        qx, qy = sine_samples(amp, ph, slots, k, (E, k, self.Q), generator)
        return EpisodeBatch(sx, sy, qx.reshape(E, k * self.Q, -1), qy.reshape(E, k * self.Q, 1))


# ---------------------------------------------------------------------------------------------------
# Omniglot episodes over learn2learn's Taskset
# ---------------------------------------------------------------------------------------------------
class OmniglotTaskSource:
    """N-way episodes over Omniglot classes with learn2learn's ``Taskset``
    (``NWays``, ``KShots``, ``LoadData``, ``RemapLabels``).

    Each episode draws ``ways`` classes and ``shots + query_shots`` images of each; the ``shots`` images
    form the online trajectory (one image per step, class by class when ``order="continual"``), the
    others the query. Labels are mapped onto ``ways`` distinct random units of a ``num_units``-way head,
    so every output unit is meta-trained and a deployed learner can take any class at any unit.

    With ``tasks > 1`` an episode is a *stream*: its online trajectory learns ``tasks`` such N-way tasks
    one after another (classes and unit mapping drawn afresh for each; a class may recur), and its query
    tests the last one. The meta-loss then measures how well the learner still learns after
    ``(tasks - 1) * ways * shots`` steps of other tasks: a rule that drifts or blows up over a long stream
    is penalised, one that fits a single short episode is not enough.

    With ``query="seen"`` the stream is *class-incremental*, as OML and FLP meta-train: its ``tasks * ways``
    classes are distinct and land on distinct units (``tasks * ways <= num_units``), and the query tests
    every task of the stream, so the meta-loss also measures what the learner keeps of the earlier tasks.

    :param images: ``(classes, drawers, C, H, W)`` images (e.g. ``load_omniglot("background").images``).
    :param tasks: N-way tasks per episode, learned in sequence (default 1: the classic episode).
    :param query: ``"last"`` (default) queries the stream's last task; ``"seen"`` all of its tasks.
    """

    def __init__(
        self,
        images: Tensor,
        *,
        ways: int = 5,
        shots: int = 5,
        query_shots: int = 5,
        num_units: int = 1000,
        order: Literal["continual", "iid"] = "continual",
        tasks: int = 1,
        query: Literal["last", "seen"] = "last",
    ) -> None:
        from .data import import_learn2learn  # without Gym's "unmaintained" notice on stderr

        l2l = import_learn2learn()
        C, D = images.shape[:2]
        if not 1 <= ways <= min(C, num_units):
            raise ValueError(f"ways must be in [1, {min(C, num_units)}], got {ways}")
        if shots < 1 or query_shots < 1 or shots + query_shots > D:
            raise ValueError(
                f"need shots >= 1, query_shots >= 1, shots + query_shots <= {D}; got {shots}, {query_shots}"
            )
        if order not in ("continual", "iid"):
            raise ValueError(f"order must be 'continual' or 'iid', got {order!r}")
        if isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 1:
            raise ValueError(f"tasks must be an int >= 1 (N-way tasks per episode), got {tasks!r}")
        if query not in ("last", "seen"):
            raise ValueError(
                f"query must be 'last' (the stream's last task) or 'seen' (all its tasks), got {query!r}"
            )
        if query == "seen" and tasks * ways > min(C, num_units):
            raise ValueError(
                f"query='seen' draws the {tasks} tasks' classes distinct, on distinct units: need tasks * "
                f"ways <= num_units and <= the {C} classes; got {tasks} * {ways}, num_units {num_units}"
            )
        self.tasks, self.query = tasks, query
        flat = images.reshape(C * D, *images.shape[2:])
        labels = torch.arange(C).repeat_interleave(D)
        dataset = l2l.data.MetaDataset(torch.utils.data.TensorDataset(flat, labels))
        self.taskset = l2l.data.Taskset(
            dataset,
            task_transforms=[
                l2l.data.transforms.NWays(dataset, n=ways * tasks if query == "seen" else ways),
                l2l.data.transforms.KShots(dataset, k=shots + query_shots),
                l2l.data.transforms.LoadData(dataset),
                l2l.data.transforms.RemapLabels(dataset, shuffle=True),
            ],
            num_tasks=-1,
        )
        self.ways, self.shots, self.query_shots, self.num_units, self.order = (
            ways,
            shots,
            query_shots,
            num_units,
            order,
        )

    def _one(self, generator: torch.Generator, tasks: int = 1) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One draw of ``tasks * ways`` distinct classes on as many distinct units, learned ``ways`` classes
        (one task) after another; the query covers them all."""
        x, y = self.taskset.sample()
        n, k, q = self.ways * tasks, self.shots, self.query_shots
        order = torch.argsort(y, stable=True)  # group by remapped class 0..n-1
        x, y = x[order].reshape(n, k + q, *x.shape[1:]), y[order].reshape(n, k + q)
        units = torch.randperm(self.num_units, generator=generator)[:n]
        y = units[y]
        sx, sy = x[:, :k].reshape(n * k, *x.shape[2:]), y[:, :k].reshape(n * k)
        if self.order == "iid":  # shuffled within each task
            per_task = self.ways * k
            perm = torch.cat(
                [t * per_task + torch.randperm(per_task, generator=generator) for t in range(tasks)]
            )
            sx, sy = sx[perm], sy[perm]
        return (
            sx.unsqueeze(1),
            sy.unsqueeze(1),
            x[:, k:].reshape(n * q, *x.shape[2:]),
            y[:, k:].reshape(n * q),
        )

    def _stream(self, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``tasks`` tasks' online trajectories one after another and the last task's query; with
        ``query="seen"``, distinct classes throughout and every task's query."""
        if self.query == "seen":
            return self._one(generator, self.tasks)
        parts = [self._one(generator) for _ in range(self.tasks)]
        if self.tasks == 1:
            return parts[0]
        return (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), *parts[-1][2:])

    def sample(self, episodes: int, generator: torch.Generator) -> EpisodeBatch:
        parts = [self._stream(generator) for _ in range(episodes)]
        return EpisodeBatch(*(torch.stack(p) for p in zip(*parts, strict=True)))


def rng_state(generator: torch.Generator) -> dict:
    """Everything that makes task sampling reproducible (torch generator, Python's ``random``)."""
    return {"generator": generator.get_state(), "python": random.getstate(), "torch": torch.get_rng_state()}


def set_rng_state(generator: torch.Generator, state: dict) -> None:
    generator.set_state(state["generator"])
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
