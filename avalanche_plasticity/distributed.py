"""Meta-training on several processes (``torchrun``): who am I, the process group, and meta-gradient
all-reduce.

The learners are functional (the online rule is a pure function of explicit tensors, and the meta-loss is
an ordinary scalar of the meta-parameters), so they are not wrapped in ``DistributedDataParallel``.
Instead :func:`avalanche_plasticity.meta_learning.meta_train` does explicitly what DDP would:

1. every rank draws the *whole* meta-batch from the same seeded generator (so every rank's random state
   stays identical and the checkpoint written by rank 0 is valid for all ranks and any world size) and
   keeps its contiguous share of the episodes (:func:`shard`);
2. each rank back-propagates its share's mean loss, weighted by ``share / meta_batch_size``;
3. the weighted meta-gradients are summed over ranks with one ``all_reduce`` on a flat buffer
   (:func:`all_reduce_gradients`), which gives every rank the gradient of the mean loss over the whole
   meta-batch, i.e. what one process computes on the same meta-batch;
4. every rank then applies the same clipping and Adam step, so the meta-parameters stay identical.

Only rank 0 writes checkpoints, progress bars and logs. Backend: ``gloo`` on CPU, ``nccl`` on CUDA.

Launch, e.g. two CPU processes on one machine::

    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 -m avalanche_plasticity.cli meta-train \\
        --scenario sine --learner FLP
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from .tasks import EpisodeBatch

Tensor = torch.Tensor

__all__ = [
    "World",
    "SINGLE",
    "all_reduce_gradients",
    "broadcast_parameters",
    "current_world",
    "init_distributed",
    "shard",
    "shutdown",
    "world_from_env",
]


@dataclass(frozen=True)
class World:
    """This process's place among the meta-training processes.

    :param rank: global rank (0 is the main process, the only one that writes).
    :param size: number of processes (1: no process group, nothing is communicated).
    :param local_rank: rank on this machine (picks the GPU).
    :param device: where this rank computes.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        if self.size < 1 or not 0 <= self.rank < self.size:
            raise ValueError(f"need 0 <= rank < size, got rank={self.rank}, size={self.size}")

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (writes checkpoints and logs)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def share(self, n: int) -> slice:
        """This rank's contiguous share of ``n`` items; the first ``n % size`` ranks get one more.

        :raises ValueError: fewer items than ranks (a rank would have nothing to do).
        """
        if n < self.size:
            raise ValueError(
                f"meta_batch_size ({n}) must be >= the number of processes ({self.size}) "
                "so that every process has at least one episode"
            )
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))


SINGLE = World()
"""One process, CPU."""


def world_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``
    (``(0, 1, 0)`` when not launched by torchrun).

    :raises ValueError: the variables are not integers or are inconsistent.
    """
    env = os.environ if environ is None else environ
    try:
        rank = int(env.get("RANK", "0"))
        size = int(env.get("WORLD_SIZE", "1"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers: {e}") from e
    if size < 1 or not 0 <= rank < size or local < 0:
        raise ValueError(
            f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={size}, LOCAL_RANK={local}"
        )
    return rank, size, local


def _pick_device(device: str, local_rank: int) -> torch.device:
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be one of 'auto', 'cpu', 'cuda', got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but CUDA is not available")
        index = local_rank % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


def init_distributed(device: str = "cpu", backend: str | None = None, timeout_s: float = 1800.0) -> World:
    """Join the process group described by torchrun's environment, or return a one-process world.

    With ``WORLD_SIZE`` unset or 1 no process group is created. Otherwise the default group is
    initialised from ``MASTER_ADDR``/``MASTER_PORT`` (``env://``) unless one exists already.

    :param device: ``"cpu"``, ``"cuda"`` (rank ``r`` uses GPU ``LOCAL_RANK``) or ``"auto"``.
    :param backend: ``"gloo"`` or ``"nccl"``; default: ``nccl`` on CUDA, ``gloo`` on CPU.
    :raises ValueError: bad ``device``/``backend``, or CUDA asked for and absent.
    """
    rank, size, local = world_from_env()
    dev = _pick_device(device, local)
    if backend is None:
        backend = "nccl" if dev.type == "cuda" else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
    if backend == "nccl" and dev.type != "cuda":
        raise ValueError("the nccl backend needs device 'cuda'; use gloo on CPU")
    if size == 1:
        return World(0, 1, 0, dev)
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            init_method="env://",
            rank=rank,
            world_size=size,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
    return World(rank, size, local, dev)


def current_world(device: torch.device | None = None) -> World:
    """The world of an already initialised default process group, else :data:`SINGLE`."""
    device = device or torch.device("cpu")
    if dist.is_available() and dist.is_initialized():
        _, _, local = world_from_env()
        return World(dist.get_rank(), dist.get_world_size(), local, device)
    return World(device=device)


def shutdown(*, wait_for_all: bool = False) -> None:
    """Leave the default process group if there is one.

    :param wait_for_all: first wait until every rank gets here (a barrier), so that no rank tears its
        connections down while another is still finishing (a rank leaving early could abort the other's
        transport threads at exit). Only for the success path: after an error the other ranks may never
        arrive.
    """
    if dist.is_available() and dist.is_initialized():
        if wait_for_all:
            dist.barrier()
        dist.destroy_process_group()


def shard(batch: EpisodeBatch, world: World) -> tuple[EpisodeBatch, float]:
    """This rank's share of a meta-batch and its weight ``share / episodes`` in the mean loss."""
    if not world.distributed:
        return batch, 1.0
    s = world.share(batch.episodes)
    part = EpisodeBatch(batch.support_x[s], batch.support_y[s], batch.query_x[s], batch.query_y[s])
    return part, (s.stop - s.start) / batch.episodes


def all_reduce_gradients(params: Iterable[torch.nn.Parameter], world: World, value: float = 0.0) -> float:
    """Sum the ``.grad`` of ``params`` over ranks in place, and ``value`` (e.g. the rank's weighted loss)
    with them, in one collective on a flat buffer; returns the summed ``value``.

    Parameters whose ``.grad`` is None are left alone: every rank runs the same graph, so they are None
    on every rank.
    """
    if not world.distributed:
        return value
    grads = [p.grad for p in params if p.grad is not None]
    dtype = grads[0].dtype if grads else torch.float32
    device = grads[0].device if grads else world.device
    flat = torch.cat([*(g.reshape(-1) for g in grads), torch.tensor([value], dtype=dtype, device=device)])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n
    return flat[-1].item()


def broadcast_parameters(module: torch.nn.Module, world: World) -> None:
    """Copy rank 0's parameters and buffers to every rank (so all ranks start identical)."""
    if not world.distributed:
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)
