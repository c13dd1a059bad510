"""ANML as an Avalanche strategy: the NM gate and the PN's convs fixed, the PN's head learned online."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from avalanche.training.plugins.evaluation import default_evaluator

from avalanche_plasticity.anml import ANMLConfig, ANMLLearner
from avalanche_plasticity.checkpoint import load_registered
from avalanche_plasticity.data.seeding import seeded_generator
from avalanche_plasticity.networks import kaiming_linear

from .online import PRETRAINED_PREFIX, OnlineLearnerTemplate, check_inputs, check_number, resolve_learner


class ANMLModel(nn.Module):
    """The frozen NM and PN convs (meta-learned), then a trainable linear head on the gated features.

    :param reset_head: start the head from Kaiming-normal weights (drawn from ``generator``) and zero
        biases, as the paper's evaluation does, instead of from its meta-learned initial weights.
    """

    def __init__(
        self, learner: ANMLLearner, *, reset_head: bool = False, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.learner = learner  # parameters frozen (requires_grad False)
        self.head = nn.Linear(learner.config.feature_size, learner.num_outputs)
        with torch.no_grad():
            if reset_head:
                self.head.weight.copy_(kaiming_linear(*self.head.weight.shape, generator))
                self.head.bias.zero_()
            else:
                self.head.weight.copy_(learner.head_weight)
                self.head.bias.copy_(learner.head_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_inputs(x, self.learner.input_shape)
        with torch.no_grad():
            gated = self.learner.gated_features(x)  # h(x) * m(x): the gate also gates the head's gradient
        return self.head(gated)


def resolve_anml(learner: ANMLLearner | str | Path) -> ANMLLearner:
    """An :class:`ANMLLearner` or the path of its checkpoint (:func:`~avalanche_plasticity.meta_learning.
    save_learner` / ``meta_train``) or ``"pretrained:<scenario>[/<scale>]"``, frozen."""
    if isinstance(learner, (str, Path)) and not str(learner).startswith(PRETRAINED_PREFIX):
        learner = load_registered(learner, {"ANMLLearner": (ANMLLearner, ANMLConfig)}, kind="ANMLLearner")
    return resolve_learner(learner, "ANMLLearner")


class ANML(OnlineLearnerTemplate):
    """Deploy a meta-trained ANML learner: only the prediction network's head learns, online.

    As in the paper's meta-test (the authors' ``evaluate_classification.py --rln 13``; higherANML's
    ``test_train``), the neuromodulatory network and the PN's conv layers keep their meta-learned weights
    and only the PN's final linear layer is trained, one pass, on the gated features ``h(x) * m(x)``.
    It is an ordinary SGD strategy on that head, so SGD plugins (EWC, Replay, ...) compose with it.

    :param learner: an :class:`~avalanche_plasticity.anml.ANMLLearner` or the path of its checkpoint.
    :param optimizer: optimizer over ``model.head`` parameters; default SGD at ``lr``.
    :param lr: learning rate of the default SGD (default: ``learner.config.inner_lr``, the rate it was
        meta-trained for). The paper trains a re-initialised head by Adam at a rate searched per stream
        length (1e-3 ... 1e-5): pass ``reset_head=True`` and an Adam over ``model.head`` for that.
    :param reset_head: start the head from fresh Kaiming-normal weights and zero biases (the paper's
        evaluation) instead of its meta-learned initial weights (the default: what meta-training used).
    :param seed: seed of the strategy's random state (training data order, the reset head's weights).
    :raises ValueError: ``lr`` not a finite number > 0; at training or evaluation time, labels beyond the
        head or a wrong image shape (checked by the template on every minibatch).
    """

    def __init__(
        self,
        *,
        learner: ANMLLearner | str | Path,
        optimizer: torch.optim.Optimizer | None = None,
        lr: float | None = None,
        reset_head: bool = False,
        seed: int = 0,
        criterion: nn.Module | None = None,
        train_mb_size: int = 1,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        device: str | torch.device = "cpu",
        plugins=None,
        evaluator=default_evaluator,
        eval_every: int = -1,
        **base_kwargs,
    ) -> None:
        if lr is not None:
            check_number("lr", lr)
        learner = resolve_anml(learner)
        generator = seeded_generator(seed, "anml_head") if reset_head else None
        model = ANMLModel(learner, reset_head=reset_head, generator=generator)
        if optimizer is None:
            lr = learner.config.inner_lr if lr is None else lr
            check_number("lr", lr)
            optimizer = torch.optim.SGD(model.head.parameters(), lr=lr)
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


__all__ = ["ANML", "ANMLModel", "resolve_anml"]
