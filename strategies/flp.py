"""The FLP learner as an Avalanche strategy: online learning by meta-learned feedback + Oja plasticity."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from avalanche.training.plugins.evaluation import default_evaluator

from avalanche_plasticity.flp import FLPLearner

from .online import LocalRuleTemplate, PlasticModel, resolve_learner


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
        **base_kwargs,
    ) -> None:
        learner = resolve_learner(learner, "FLPLearner")
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
            **base_kwargs,
        )
        self.reset_on_train = reset_on_train


__all__ = ["FLP"]
