"""OML as an Avalanche strategy: frozen meta-learned RLN, PLN trained online by SGD."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from avalanche.training.plugins.evaluation import default_evaluator

from avalanche_plasticity.oml import OMLLearner

from .online import OnlineLearnerTemplate, check_inputs, check_number, resolve_learner


class OMLModel(nn.Module):
    """Frozen RLN followed by a trainable PLN initialised at the meta-learned PLN weights."""

    def __init__(self, learner: OMLLearner) -> None:
        super().__init__()
        self.learner = learner  # RLN parameters are frozen (requires_grad False)
        sizes = learner.config.pln_sizes
        layers: list[nn.Module] = []
        for l, (w, b) in enumerate(zip(learner.pln_weights, learner.pln_biases, strict=True)):
            lin = nn.Linear(sizes[l], sizes[l + 1])
            with torch.no_grad():
                lin.weight.copy_(w)
                lin.bias.copy_(b)
            layers += [lin, nn.ReLU()] if l < len(sizes) - 2 else [lin]
        self.pln = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_inputs(x, self.learner.input_shape)
        with torch.no_grad():
            rep = self.learner.features(x)
        return self.pln(rep)


class OML(OnlineLearnerTemplate):
    """Deploy a meta-trained OML learner: the RLN stays frozen and the PLN learns online by SGD.

    This is an ordinary SGD strategy on the PLN, so SGD plugins (EWC, Replay, ...) compose with it.

    :param learner: an :class:`~avalanche_plasticity.oml.OMLLearner` or the path of its checkpoint.
    :param optimizer: optimizer over ``model.pln`` parameters; default SGD at the learner's meta-trained
        inner learning rate (the rule it was meta-trained for).
    :param lr: learning rate of the default optimizer (a finite number > 0; default:
        ``learner.config.inner_lr``).
    :param seed: seed of the strategy's random state (training data order and any other draw while it
        trains or evaluates).
    """

    def __init__(
        self,
        *,
        learner: OMLLearner | str | Path,
        optimizer: torch.optim.Optimizer | None = None,
        lr: float | None = None,
        criterion: nn.Module | None = None,
        train_mb_size: int = 1,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        device: str | torch.device = "cpu",
        plugins=None,
        evaluator=default_evaluator,
        eval_every: int = -1,
        seed: int = 0,
        **base_kwargs,
    ) -> None:
        if lr is not None:
            check_number("lr", lr)
        learner = resolve_learner(learner, "OMLLearner")
        model = OMLModel(learner)
        if optimizer is None:
            lr = learner.config.inner_lr if lr is None else lr
            check_number("lr", lr)
            optimizer = torch.optim.SGD(model.pln.parameters(), lr=lr)
        elif not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}"
            )
        super().__init__(
            model=model,
            optimizer=optimizer,
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

    def training_iteration_checks(self) -> None:
        """The minibatch checks (shape, finite values, labels within the head); the template runs them
        before every forward pass, in training and in evaluation (:meth:`check_minibatch`)."""
        self.check_minibatch()


__all__ = ["OML", "OMLModel"]
