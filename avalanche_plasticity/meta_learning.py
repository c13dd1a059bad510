"""Meta-training by back-propagation through the whole online trajectory (optionally truncated).

Works for any learner with the online-learner interface: ``features(x)``, ``initial_fast_weights(E)``,
``step(fast, features, targets)``, ``predict(fast, features)``, ``param_groups()`` and ``config.task``.
Each parameter group gets its own Adam (as in the FLP reference code). Checkpoints are atomic and a
killed run resumes where it stopped, with the same result as an uninterrupted run (the checkpoint holds the
meta-parameters, the Adam states and every random state that task sampling uses: the sampling generator,
torch's global generator, Python's ``random`` and NumPy's).

Under ``torchrun`` the meta-batch is split across processes and the meta-gradients are all-reduced (see
:mod:`avalanche_plasticity.distributed`); only rank 0 writes checkpoints, progress bars and logs.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, load_checkpoint, load_registered, save_atomic
from .distributed import (
    World,
    all_reduce_gradients,
    broadcast_parameters,
    current_world,
    shard,
)
from .flp import FLPConfig, FLPLearner
from .oml import OMLConfig, OMLLearner, task_loss
from .tasks import EpisodeBatch, rng_state, set_rng_state

Tensor = torch.Tensor
LEARNERS: dict[str, tuple[type, type]] = {
    "FLPLearner": (FLPLearner, FLPConfig),
    "OMLLearner": (OMLLearner, OMLConfig),
}


META_GRADIENTS = ("stored", "memory_lean")
ON_DIVERGED = ("skip_batch", "drop_episodes")
# Config fields that change how the meta-gradient is computed, not what it is: free to differ on resume.
GRADIENT_METHOD_FIELDS = ("meta_gradient", "lean_anchor_every")


class TaskSource(Protocol):
    def sample(self, episodes: int, generator: torch.Generator) -> EpisodeBatch: ...


@dataclass
class MetaTrainConfig:
    """Outer-loop settings.

    :param steps: number of meta-updates.
    :param meta_batch_size: episodes per meta-update (run batched, in one computation).
    :param lr: Adam learning rate per parameter group; groups not named use ``default_lr``.
    :param truncate: back-propagate through only the last ``truncate`` online steps (None: all).
    :param grad_clip: clip the global meta-gradient norm (None: no clipping). NaN entries are zeroed.
    :param on_diverged: what a meta-batch whose loss is not finite (an episode's learning diverged) does.
        ``"skip_batch"`` (default): no update. ``"drop_episodes"``: its episodes are re-run one at a time
        (each with fresh initial weights) and the update is the mean over those that stay finite; the
        history records how many were dropped. A rule at the edge of stability then keeps being
        meta-trained on the episodes it survives instead of stalling on every batch that holds one it
        does not; but the dropped episodes give no gradient away from the instability, so it does not make
        a rule stable (the shipped rule is made stable by its episodes, see
        :class:`~avalanche_plasticity.tasks.OmniglotTaskSource`'s ``tasks``). Single-process runs only.
    :param checkpoint_every: meta-updates between checkpoints.
    :param seed: seeds task sampling.
    :param episode_seeds: draw episode ``i`` of meta-update ``s`` from its own generator, seeded from
        ``(seed, s, i)``, instead of drawing whole meta-batches from one stream. The episodes then do not
        depend on the number of processes, and each process of a distributed run samples only its own
        share (faster). Off by default: the single stream reproduces earlier runs.
    :param meta_gradient: how the meta-gradient through the online trajectory is computed.
        ``"stored"`` (the default and the reference): autograd keeps every step's graph, memory linear in
        the steps (~12.5 MB per step and episode on the FLP authors' sine network). ``"memory_lean"``:
        the learner's memory-lean backward pass (:mod:`avalanche_plasticity.memory_lean`): FLP's is
        reversible (it keeps each step's activities and rebuilds the fast weights backwards), the
        plasticity-rule pool's re-runs checkpointed segments of ``sqrt(T)`` steps forward; the same
        gradient up to rounding, a tenth of the memory or less. The two may be swapped when resuming a
        checkpoint.
    :param lean_anchor_every: with ``"memory_lean"``, steps between stored fast-weight sets (None:
        ``ceil(sqrt(T))``); fewer anchors save memory, more bound the rebuilding's rounding drift.
    """

    steps: int = 1000
    meta_batch_size: int = 16
    lr: dict[str, float] = field(default_factory=dict)
    default_lr: float = 1e-3
    truncate: int | None = None
    grad_clip: float | None = 10.0
    checkpoint_every: int = 100
    seed: int = 0
    episode_seeds: bool = False
    meta_gradient: str = "stored"
    lean_anchor_every: int | None = None
    on_diverged: str = "skip_batch"

    def __post_init__(self) -> None:
        for name in ("steps", "meta_batch_size", "checkpoint_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        if self.grad_clip is not None and not (
            isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0 and math.isfinite(self.grad_clip)
        ):
            raise ValueError(f"grad_clip must be None or a finite number > 0, got {self.grad_clip!r}")
        if self.meta_gradient not in META_GRADIENTS:
            raise ValueError(f"meta_gradient must be one of {META_GRADIENTS}, got {self.meta_gradient!r}")
        if self.lean_anchor_every is not None and (
            not isinstance(self.lean_anchor_every, int) or self.lean_anchor_every < 1
        ):
            raise ValueError(
                f"lean_anchor_every must be None or a positive int, got {self.lean_anchor_every!r}"
            )
        if self.on_diverged not in ON_DIVERGED:
            raise ValueError(f"on_diverged must be one of {ON_DIVERGED}, got {self.on_diverged!r}")
        if self.truncate is not None and self.truncate < 1:
            raise ValueError(f"truncate must be None or >= 1, got {self.truncate}")
        for k, v in {**self.lr, "default_lr": self.default_lr}.items():
            if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
                raise ValueError(f"learning rate {k!r} must be a finite number >= 0, got {v!r}")


def saved_meta_config(ckpt: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's ``MetaTrainConfig`` as a dict, with fields added since it was written at their
    defaults (so older checkpoints still resume)."""
    defaults = {
        f.name: f.default
        for f in dataclasses.fields(MetaTrainConfig)
        if f.default is not dataclasses.MISSING and f.name != "steps"
    }
    return {**defaults, **ckpt.get("meta_config", {})}


def saved_learner_config(ckpt: dict[str, Any], learner: Any) -> dict[str, Any]:
    """A checkpoint's learner config as a dict, rebuilt through the learner's config class so that fields
    added since it was written take their defaults (older checkpoints still resume); the raw dict when it
    does not fit the class."""
    try:
        return dataclasses.asdict(type(learner.config)(**ckpt["learner_config"]))
    except (TypeError, ValueError):
        return ckpt["learner_config"]


def episode_seed(seed: int, step: int, episode: int) -> int:
    """The seed of one episode under ``MetaTrainConfig.episode_seeds`` (63 bits of a hash)."""
    digest = hashlib.sha256(f"{seed}/{step}/{episode}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def sample_share(
    source: TaskSource, config: MetaTrainConfig, step: int, generator: torch.Generator, world: World
) -> tuple[EpisodeBatch, float]:
    """This process's share of meta-update ``step``'s episodes and its weight in the mean loss.

    With one stream (the default), every process draws the whole meta-batch, so that all random states stay
    equal, and keeps its share. With ``episode_seeds``, each process draws only its own episodes.
    """
    if hasattr(source, "for_step"):  # sources with a curriculum (e.g. longer episodes later on)
        source = source.for_step(step)
    if not config.episode_seeds:
        return shard(source.sample(config.meta_batch_size, generator), world)
    share = world.share(config.meta_batch_size) if world.distributed else slice(0, config.meta_batch_size)
    parts = []
    for i in range(share.start, share.stop):
        s = episode_seed(config.seed, step, i)
        random.seed(s)  # learn2learn's Taskset samples with Python's random module
        parts.append(source.sample(1, torch.Generator().manual_seed(s)))
    batch = EpisodeBatch(
        *(torch.cat(ts) for ts in zip(*(dataclasses.astuple(b) for b in parts), strict=True))
    )
    return batch, (share.stop - share.start) / config.meta_batch_size


def check_meta_gradient(learner: Any, meta_gradient: str) -> None:
    """:raises ValueError: ``meta_gradient`` is unknown, or ``"memory_lean"`` for a learner without a
    memory-lean trajectory (``adapt_memory_lean``)."""
    if meta_gradient not in META_GRADIENTS:
        raise ValueError(f"meta_gradient must be one of {META_GRADIENTS}, got {meta_gradient!r}")
    if meta_gradient == "memory_lean" and not hasattr(learner, "adapt_memory_lean"):
        raise ValueError(
            f"meta_gradient='memory_lean' needs a learner with a memory-lean trajectory (FLPLearner, "
            f"PlasticityRuleLearner); "
            f"{type(learner).__name__} has none, use meta_gradient='stored'"
        )


def run_trajectory(
    learner: Any,
    fast: list[Tensor],
    features: Tensor,
    targets: Tensor,
    truncate: int | None = None,
    meta_gradient: str = "stored",
    anchor_every: int | None = None,
) -> list[Tensor]:
    """Apply the learner's online rule over ``features (E, T, B, d)``; with ``truncate=k`` only the last
    ``k`` steps keep the graph (truncated back-propagation through learning). ``meta_gradient`` as in
    :class:`MetaTrainConfig` (``anchor_every``: its ``lean_anchor_every``)."""
    check_meta_gradient(learner, meta_gradient)
    T = features.shape[1]
    start = 0 if truncate is None or truncate >= T else T - truncate
    if start:
        with torch.no_grad():
            for t in range(start):
                fast = learner.step(fast, features[:, t].detach(), targets[:, t])
        fast = [w.detach() for w in fast]
    if meta_gradient == "memory_lean":
        return learner.adapt_memory_lean(fast, features[:, start:], targets[:, start:], anchor_every)
    for t in range(start, T):
        fast = learner.step(fast, features[:, t], targets[:, t])
    return fast


def meta_loss(
    learner: Any,
    batch: EpisodeBatch,
    truncate: int | None = None,
    meta_gradient: str = "stored",
    anchor_every: int | None = None,
) -> Tensor:
    """Mean query loss after learning each episode's trajectory online (batched over episodes);
    ``meta_gradient`` and ``anchor_every`` as in :func:`run_trajectory`."""
    E, T = batch.support_x.shape[:2]
    feats = learner.features(torch.cat([batch.support_x.flatten(1, 2), batch.query_x], 1))
    B = batch.support_x.shape[2]
    support, query = feats[:, : T * B].unflatten(1, (T, B)), feats[:, T * B :]
    fast = run_trajectory(
        learner,
        learner.initial_fast_weights(E),
        support,
        batch.support_y,
        truncate,
        meta_gradient,
        anchor_every,
    )
    return task_loss(learner.predict(fast, query), batch.query_y, learner.config.task).mean()


def finite_episodes_backward(learner: Any, batch: EpisodeBatch, config: MetaTrainConfig) -> tuple[float, int]:
    """Back-propagate the mean meta-loss of the episodes of ``batch`` whose learning stays finite, each
    re-run alone (``on_diverged="drop_episodes"``). Returns ``(mean finite loss or NaN, episodes dropped)``;
    the gradients are left in ``.grad`` (none when every episode diverged)."""
    params = [p for group in learner.param_groups().values() for p in group]
    kept, losses = 0, []
    for i in range(batch.episodes):
        loss = meta_loss(
            learner, batch.episode(i), config.truncate, config.meta_gradient, config.lean_anchor_every
        )
        value = loss.item()
        if not math.isfinite(value):
            continue
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        if not all(g is None or bool(torch.isfinite(g).all()) for g in grads):
            continue  # a finite loss whose gradient overflowed is dropped too
        for p, g in zip(params, grads, strict=True):
            if g is not None:
                p.grad = g if p.grad is None else p.grad + g
        kept += 1
        losses.append(value)
    if not kept:
        return math.nan, batch.episodes
    for p in params:
        if p.grad is not None:
            p.grad /= kept
    return sum(losses) / kept, batch.episodes - kept


def query_accuracy(learner: Any, batch: EpisodeBatch) -> float:
    """Query accuracy after online learning (classification learners); no gradients."""
    with torch.no_grad():
        E, T, B = batch.support_x.shape[:3]
        fast = run_trajectory(
            learner, learner.initial_fast_weights(E), learner.features(batch.support_x), batch.support_y
        )
        out = learner.predict(fast, learner.features(batch.query_x))
        return (out.argmax(-1) == batch.query_y).float().mean().item()


def make_optimizers(learner: Any, config: MetaTrainConfig) -> dict[str, torch.optim.Adam]:
    unknown = set(config.lr) - set(learner.param_groups())
    if unknown:
        raise ValueError(
            f"unknown parameter group(s) {sorted(unknown)} in lr; "
            f"{type(learner).__name__} has {sorted(learner.param_groups())}"
        )
    return {
        name: torch.optim.Adam(params, lr=config.lr.get(name, config.default_lr))
        for name, params in learner.param_groups().items()
        if params
    }


def learner_state(learner: Any) -> dict[str, Any]:
    return {
        "kind": type(learner).__name__,
        "learner_config": dataclasses.asdict(learner.config),
        "state_dict": learner.state_dict(),
    }


def save_learner(learner: Any, path: str | Path, **extra: Any) -> None:
    """Save a learner (kind, config, weights) atomically; ``extra`` is stored beside it."""
    save_atomic({**learner_state(learner), **extra}, path)


def load_learner(path: str | Path, *, kind: str | None = None) -> Any:
    """Rebuild a learner saved by :func:`save_learner` or :func:`meta_train`.

    :raises CheckpointError: corrupt file, unknown learner kind, or weights that do not fit the config.
    """
    return load_registered(path, LEARNERS, kind=kind)


@dataclass
class MetaTrainResult:
    learner: Any
    history: list[dict[str, float]]
    steps_done: int
    seconds: float


def meta_train(
    learner: Any,
    source: TaskSource,
    config: MetaTrainConfig,
    *,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    stop_after: int | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    world: World | None = None,
    metadata: dict[str, Any] | None = None,
    desc: str = "meta-train",
    position: int | None = None,
) -> MetaTrainResult:
    """Meta-train ``learner`` on episodes from ``source``.

    Computes on the device of the learner's parameters (episodes are moved there).

    :param checkpoint: file to checkpoint to every ``config.checkpoint_every`` steps and at the end; with
        ``resume=True`` an existing file there is loaded first and training continues from its step.
    :param stop_after: stop (after checkpointing) once this many steps are done in total; used to
        split a run in pieces, e.g. a time-boxed job.
    :param on_step: called with ``(step, metrics)`` after every meta-update (logging hooks); on rank 0 only.
    :param world: the processes sharing each meta-batch (default: the initialised process group, if any,
        else one process). Every rank draws the same meta-batch and keeps its share; meta-gradients are
        summed over ranks before the Adam step; only rank 0 writes the checkpoint and shows progress.
        The result equals one process on the same meta-batch up to float rounding, and a checkpoint can be
        resumed with any number of processes.
    :param metadata: stored in the checkpoint under ``"metadata"`` (e.g. the scenario and task source);
        not compared on resume.
    :param desc: the progress bar's label; ``position``: its line (for several bars at once).
    :raises CheckpointError: the checkpoint belongs to another learner kind or configuration.
    :raises ValueError: ``config.meta_batch_size`` is smaller than the number of processes.
    """
    check_meta_gradient(learner, config.meta_gradient)
    device = next(learner.parameters()).device
    world = world or current_world(device)
    if world.distributed and config.on_diverged != "skip_batch":
        raise ValueError(
            f"on_diverged={config.on_diverged!r} needs a single process; a distributed run skips a diverged "
            "meta-batch (on_diverged='skip_batch')"
        )
    if world.distributed:
        world.share(config.meta_batch_size)  # fail early: every rank needs at least one episode
        broadcast_parameters(learner, world)
    optimizers = make_optimizers(learner, config)
    generator = torch.Generator().manual_seed(config.seed)
    random.seed(config.seed)  # learn2learn's Taskset samples with Python's random module
    np.random.seed(config.seed % 2**32)
    step, history = 0, []
    if checkpoint is not None and resume and Path(checkpoint).exists():
        ckpt = load_checkpoint(checkpoint, kind=type(learner).__name__)
        if saved_learner_config(ckpt, learner) != dataclasses.asdict(learner.config):
            raise CheckpointError(
                f"checkpoint {checkpoint} was made with a different learner config: "
                f"{ckpt['learner_config']} != {dataclasses.asdict(learner.config)}"
            )
        # ``steps`` may grow, and the meta-gradient method may change (same gradient up to rounding).
        free = {"steps": config.steps, **{k: getattr(config, k) for k in GRADIENT_METHOD_FIELDS}}
        if {**saved_meta_config(ckpt), **free} != dataclasses.asdict(config):
            raise CheckpointError(
                f"checkpoint {checkpoint} was made with a different MetaTrainConfig: "
                f"{ckpt.get('meta_config')} != {dataclasses.asdict(config)}"
            )
        learner.load_state_dict(ckpt["state_dict"])
        for name, opt in optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][name])
        set_rng_state(generator, ckpt["rng"])
        if "numpy" in ckpt["rng"]:
            np.random.set_state(ckpt["rng"]["numpy"])
        step, history = ckpt["step"], ckpt["history"]

    def save() -> None:
        if checkpoint is not None and world.is_main:
            save_atomic(
                {
                    **learner_state(learner),
                    "meta_config": dataclasses.asdict(config),
                    "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                    "rng": {**rng_state(generator), "numpy": np.random.get_state()},
                    "step": step,
                    "history": history,
                    "metadata": dict(metadata or {}),
                },
                checkpoint,
            )

    end = config.steps if stop_after is None else min(config.steps, stop_after)
    params = [p for group in learner.param_groups().values() for p in group]
    bar = tqdm(
        total=config.steps,
        initial=step,
        disable=not progress or not world.is_main,
        desc=desc if not world.distributed else f"{desc} ({world.size} processes)",
        dynamic_ncols=True,
        position=position,
    )
    t0, recent = time.perf_counter(), collections.deque(maxlen=25)
    while step < end:
        batch, weight = sample_share(source, config, step, generator, world)
        if device.type != "cpu":
            batch = batch.to(device)
        loss = meta_loss(learner, batch, config.truncate, config.meta_gradient, config.lean_anchor_every)
        dropped = 0
        if world.distributed:
            loss = loss * weight  # the ranks' weighted losses sum to the mean over the whole meta-batch
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        if world.distributed:
            # One meeting point per meta-update: every rank back-propagates (a non-finite share makes the
            # summed gradients non-finite too), then the gradients and the loss are summed in one all_reduce.
            loss.backward()
            value = all_reduce_gradients(params, world, loss.item())
        else:
            value = loss.item()
            if math.isfinite(value):
                loss.backward()
            elif config.on_diverged == "drop_episodes" and batch.episodes > 1:
                del loss  # free the diverged batch's graph before re-running its episodes
                value, dropped = finite_episodes_backward(learner, batch, config)
        if math.isfinite(value):  # a diverged episode batch (e.g. unstable plasticity) is skipped
            for p in params:
                if p.grad is not None:
                    torch.nan_to_num_(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            for opt in optimizers.values():
                opt.step()
            recent.append(value)
        step += 1
        history.append(
            {"step": step, "meta_loss": value, **({"dropped_episodes": dropped} if dropped else {})}
        )
        bar.update(1)
        if recent:  # the median of the last 25 finite losses: one exploding episode does not swamp it
            bar.set_postfix(meta_loss=f"{statistics.median(recent):.4f}")
        if on_step is not None and world.is_main:
            on_step(step, history[-1])
        if step % config.checkpoint_every == 0:
            save()
    if step == end:
        save()
    bar.close()
    return MetaTrainResult(learner, history, step, time.perf_counter() - t0)
