"""The local-rule strategies' online pass: when no plugin acts inside an epoch, an epoch is the same online
updates without the per-step prediction and loss (#15 item 8); a plugin with per-step hooks still gets
every call, and both paths learn bit-identically."""

from __future__ import annotations

import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import loss_metrics
from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin

from avalanche_plasticity.flp import FLPConfig, FLPLearner
from avalanche_plasticity.scenarios import IncrementalSine
from avalanche_plasticity.strategies import FLP


class CountSteps(SupervisedPlugin):
    def __init__(self) -> None:
        super().__init__()
        self.steps = 0

    def after_training_iteration(self, strategy, **kwargs) -> None:
        self.steps += 1


def _run(plugins):
    bm = IncrementalSine(num_functions=3, batches_per_function=5, batch_size=4, seed=0)
    learner = FLPLearner(
        FLPConfig(layer_sizes=(4, 16, 1), init_plasticity=1e-3, linear_feedback=True), seed=0
    )
    evaluator = EvaluationPlugin(loss_metrics(stream=True), loggers=[])  # evaluation metrics only
    strategy = FLP(learner=learner, train_mb_size=4, plugins=plugins, seed=0, evaluator=evaluator)
    for exp in bm.train_stream:
        strategy.train(exp)
    return strategy


def test_online_pass_learns_as_the_template_and_keeps_per_step_plugins():
    fast = _run([ReplayPlugin(mem_size=8)])
    counter = CountSteps()
    slow = _run([ReplayPlugin(mem_size=8), counter])
    assert not fast.needs_per_step_hooks() and slow.needs_per_step_hooks()
    assert counter.steps == 15  # every minibatch of the 3 experiences (replayed samples join them)
    for a, b in zip(fast.model.fast_weights, slow.model.fast_weights, strict=True):
        assert torch.equal(a, b)
    assert fast.clock.train_iterations == slow.clock.train_iterations == counter.steps
    assert fast.eval_mb_size == 512  # prediction is per example: evaluation runs in large batches
