"""The FLP learner as an Avalanche strategy: online learning by meta-learned feedback + Oja plasticity."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn as nn
from avalanche.training.plugins.evaluation import default_evaluator

from avalanche_plasticity.flp import FLPLearner

from .online import LocalRuleTemplate, PlasticModel, check_number, resolve_learner


def deployed_rates(
    learner: FLPLearner, rate_scale: float = 1.0, clamp_negative_rates: bool = False
) -> FLPLearner:
    """``learner`` with its plasticity rates scaled by ``rate_scale`` and, with ``clamp_negative_rates``,
    negative rates set to 0 (anti-Hebbian synapses frozen); a copy whenever anything changes, so the
    learner given (and its checkpoint) keeps its meta-learned rates.

    :raises ValueError: ``rate_scale`` is not a finite number > 0, or ``clamp_negative_rates`` not a bool.
    """
    check_number("rate_scale", rate_scale)
    if not isinstance(clamp_negative_rates, bool):
        raise ValueError(f"clamp_negative_rates must be True or False, got {clamp_negative_rates!r}")
    if rate_scale == 1.0 and not clamp_negative_rates:
        return learner
    learner = copy.deepcopy(learner)
    with torch.no_grad():
        for rate in learner.plasticity_rates:
            if clamp_negative_rates:
                rate.clamp_(min=0.0)
            rate.mul_(float(rate_scale))
    return learner


class FLP(LocalRuleTemplate):
    """Deploy a meta-trained FLP learner in an Avalanche stream.

    Each training minibatch drives one online update of the learned rule (feedback weights set the
    layer targets, Oja/Hebbian plasticity moves the weights). Meta-parameters never change here: there
    is no optimizer and no backward pass. Works with ``EvaluationPlugin`` and ``ReplayPlugin`` (replayed
    samples join the online update).

    :param learner: an :class:`~avalanche_plasticity.flp.FLPLearner` or the path of its checkpoint.
    :param criterion: loss reported in metrics (default: cross-entropy, or MSE for regression).
    :param reset_on_train: restart from the meta-learned initial weights at each ``train()`` call
        (default False: the learner keeps learning across calls, as in a continual stream).
    :param rate_scale: multiplies every plasticity rate at deployment (a finite number > 0; default 1,
        the meta-learned rates). A rule meta-trained on short episodes may diverge on a long stream
        (its weights turn non-finite, a ``FloatingPointError``); a smaller scale slows it down. The
        learner given is not changed (the strategy deploys a copy).
    :param clamp_negative_rates: set negative plasticity rates to 0 before scaling (default False).
    :param seed: seed of the strategy's random state (training data order and any other draw while it
        trains or evaluates; see :class:`~strategies.online.RunSeeding`).
    """

    def __init__(
        self,
        *,
        learner: FLPLearner | str | Path,
        criterion: nn.Module | None = None,
        train_mb_size: int = 1,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        device: str | torch.device = "cpu",
        plugins=None,
        evaluator=default_evaluator,
        eval_every: int = -1,
        reset_on_train: bool = False,
        rate_scale: float = 1.0,
        clamp_negative_rates: bool = False,
        seed: int = 0,
        **base_kwargs,
    ) -> None:
        learner = deployed_rates(resolve_learner(learner, "FLPLearner"), rate_scale, clamp_negative_rates)
        self.rate_scale = float(rate_scale)
        self.clamp_negative_rates = clamp_negative_rates
        # Avalanche's template wants an optimizer; FLP has none at deployment.
        placeholder = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.0)
        super().__init__(
            model=PlasticModel(learner),
            optimizer=placeholder,
            task=learner.config.task,
            criterion=criterion,
            train_mb_size=train_mb_size,
            train_epochs=train_epochs,
            eval_mb_size=eval_mb_size,
            device=device,
            plugins=plugins,
            evaluator=evaluator,
            eval_every=eval_every,
            seed=seed,
            **base_kwargs,
        )
        self.reset_on_train = reset_on_train


__all__ = ["FLP", "deployed_rates"]
