"""Avalanche's SGD baselines, Naive, EWC and Replay, on the architecture of the scenario's reference
learner (randomly initialised from the run's seed). Each also runs with a credit-assignment rule as
``"<name>+<rule>"``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..networks import baseline_model
from ..registry import StrategyContext, StrategySpec, register_strategy


def sgd_parts(ctx: StrategyContext) -> dict[str, Any]:
    """The model (the reference architecture, initialised from ``ctx.seed``), SGD optimizer at ``ctx.lr``
    (default 0.01) and criterion (MSE for regression, cross-entropy for classification) of an SGD
    baseline."""
    torch.manual_seed(ctx.seed)
    model = baseline_model(ctx.learner_config)
    opt = torch.optim.SGD(model.parameters(), lr=ctx.lr if ctx.lr is not None else 0.01)
    crit = nn.MSELoss() if ctx.task == "regression" else nn.CrossEntropyLoss()
    return dict(model=model, optimizer=opt, criterion=crit, **ctx.common)


def _naive(ctx: StrategyContext) -> Any:
    from avalanche.training import Naive

    return Naive(**sgd_parts(ctx))


def _ewc(ctx: StrategyContext) -> Any:
    from avalanche.training import EWC

    return EWC(**sgd_parts(ctx), ewc_lambda=ctx.ewc_lambda)


def _replay(ctx: StrategyContext) -> Any:
    from avalanche.training import Replay

    return Replay(**sgd_parts(ctx), mem_size=ctx.mem_size)


NAIVE = register_strategy(StrategySpec("Naive", make=_naive, alignment_base=True))
EWC = register_strategy(StrategySpec("EWC", make=_ewc, alignment_base=True, settings=("ewc_lambda",)))
REPLAY = register_strategy(StrategySpec("Replay", make=_replay, alignment_base=True, settings=("mem_size",)))
