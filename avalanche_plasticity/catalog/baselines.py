"""Avalanche's SGD baselines on the architecture of the scenario's reference learner (randomly initialised
from the run's seed): Naive, EWC and Replay (in the default comparison; each also runs with a
credit-assignment rule as ``"<name>+<rule>"``), and, when named, SI, LwF and ``Joint``, the upper bound
that trains on everything seen so far (Avalanche's ``Cumulative``: at the last experience, joint training
on the whole stream)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..networks import baseline_model
from ..registry import StrategyContext, StrategySpec, register_strategy


def sgd_parts(ctx: StrategyContext) -> dict[str, Any]:
    """The model (the reference architecture, initialised from ``ctx.seed``), SGD optimizer at ``ctx.lr``
    (default 0.01), criterion (MSE for regression, cross-entropy for classification) and plugins of an SGD
    baseline: :class:`~avalanche_plasticity.strategies.SeedPlugin` first, so its data order and every other
    draw come from the run's seed, never from torch's global state (the caller's state is left as it was)."""
    from avalanche_plasticity.strategies import SeedPlugin

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed)
        model = baseline_model(ctx.learner_config)
    opt = torch.optim.SGD(model.parameters(), lr=ctx.lr if ctx.lr is not None else 0.01)
    crit = nn.MSELoss() if ctx.task == "regression" else nn.CrossEntropyLoss()
    common = dict(ctx.common)
    common["plugins"] = [SeedPlugin(ctx.seed), *(common.get("plugins") or [])]
    return dict(model=model, optimizer=opt, criterion=crit, **common)


def _naive(ctx: StrategyContext) -> Any:
    from avalanche.training import Naive

    return Naive(**sgd_parts(ctx))


def _ewc(ctx: StrategyContext) -> Any:
    from avalanche.training import EWC

    mode = ctx.settings.get("ewc_mode", "separate")
    # online EWC (Schwarz et al. 2018) keeps one running Fisher (decay 1: every experience's importance
    # kept), so a step costs the same after 600 experiences as after one; "separate" keeps one per experience
    online = {"decay_factor": 1.0} if mode == "online" else {}
    return EWC(**sgd_parts(ctx), ewc_lambda=ctx.settings["ewc_lambda"], mode=mode, **online)


def _replay(ctx: StrategyContext) -> Any:
    from avalanche.training import Replay

    return Replay(**sgd_parts(ctx), mem_size=ctx.settings["mem_size"])


def _si(ctx: StrategyContext) -> Any:
    # Avalanche's SynapticIntelligence is Naive plus its SI plugin, whose snapshots alias the live weights
    # on CPU (a no-op there); ours copies them
    from avalanche.training import Naive

    from avalanche_plasticity.strategies import SynapticIntelligencePlugin

    parts = sgd_parts(ctx)
    parts["plugins"] = [*parts["plugins"], SynapticIntelligencePlugin(si_lambda=ctx.settings["si_lambda"])]
    return Naive(**parts)


def _lwf(ctx: StrategyContext) -> Any:
    from avalanche.training import LwF

    return LwF(**sgd_parts(ctx), alpha=ctx.settings["lwf_alpha"], temperature=ctx.settings["lwf_temperature"])


def _joint(ctx: StrategyContext) -> Any:
    from avalanche.training import Cumulative

    return Cumulative(**sgd_parts(ctx))


NAIVE = register_strategy(StrategySpec("Naive", make=_naive, alignment_base=True))
EWC = register_strategy(
    StrategySpec("EWC", make=_ewc, alignment_base=True, settings=("ewc_lambda", "ewc_mode"))
)
REPLAY = register_strategy(StrategySpec("Replay", make=_replay, alignment_base=True, settings=("mem_size",)))
# revision 1: our SI plugin (Avalanche's is a no-op on CPU; runs cached before 2026-12-07 were Naive's)
SI = register_strategy(StrategySpec("SI", make=_si, opt_in=True, settings=("si_lambda",), revision=1))
LWF = register_strategy(
    StrategySpec(
        "LwF", make=_lwf, tasks=("classification",), opt_in=True, settings=("lwf_alpha", "lwf_temperature")
    )
)
JOINT = register_strategy(StrategySpec("Joint", make=_joint, opt_in=True))
