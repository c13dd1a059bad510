"""Meta-training a plasticity rule on real Omniglot episodes (and MNIST episodes) with the shared engine,
resuming it, and deploying rules as Avalanche strategies with EvaluationPlugin and ReplayPlugin."""

from __future__ import annotations

import re

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin

from avalanche_plasticity.meta_learning import MetaTrainConfig
from avalanche_plasticity.plasticity_rules import (
    PAPER_POOL,
    coefficient_history,
    fixed_episodes,
    meta_train_rule,
    mnist_episodes,
    omniglot_episodes,
    online_accuracy,
    rule_learner,
)
from avalanche_plasticity.plasticity_rules.learner import load_rule, save_rule
from avalanche_plasticity.strategies.plasticity_rules import FeedbackAlignment, MetaPlasticityRule

SIZES = (784, 100, 5)
SHAPE = (1, 28, 28)
EPISODE = {"ways": 5, "shots": 10, "query_shots": 5, "num_units": 5}


def test_meta_training_on_omniglot_raises_held_out_online_accuracy_above_fa(omniglot_root):
    """Start from feedback alignment alone (pseudo-gradient 3e-2, the other nine terms 0) and meta-train
    all ten coefficients on background-alphabet episodes: online accuracy on unseen (evaluation-alphabet)
    episodes rises above FA alone at its best learning rate of a grid, and terms other than the
    pseudo-gradient take part."""
    torch.manual_seed(0)
    train = omniglot_episodes("background", root=omniglot_root, **EPISODE)
    held = fixed_episodes(omniglot_episodes("evaluation", root=omniglot_root, **EPISODE), 24, seed=7)
    fa_acc = {
        lr: online_accuracy(
            rule_learner(
                "pseudo_gradient", layer_sizes=SIZES, coefficients={"pseudo_gradient": lr}, input_shape=SHAPE
            ),
            held,
            seed=1,
        )
        .mean()
        .item()
        for lr in (1e-2, 3e-2, 1e-1, 3e-1)
    }
    learner = rule_learner(
        PAPER_POOL, layer_sizes=SIZES, coefficients={"pseudo_gradient": 3e-2}, input_shape=SHAPE
    )
    res = meta_train_rule(
        learner,
        train,
        MetaTrainConfig(steps=25, meta_batch_size=4, default_lr=3e-3, checkpoint_every=100),
        progress=False,
    )
    acc = online_accuracy(learner, held, seed=1).mean().item()
    assert acc > max(fa_acc.values()) + 0.05, (acc, fa_acc)
    assert acc > 0.4  # chance is 0.2
    others = learner.coefficients.detach()[1:]
    assert others.abs().max() > 1e-2
    traj = coefficient_history(res.history, learner.config.terms)
    assert len(traj["step"]) == 25 and traj["pseudo_gradient"][-1] == pytest.approx(
        learner.rule()["pseudo_gradient"]
    )


def test_meta_training_resumes_to_the_same_rule(omniglot_root, tmp_path):
    src = omniglot_episodes("background", root=omniglot_root, ways=3, shots=3, query_shots=2, num_units=3)
    cfg = MetaTrainConfig(steps=4, meta_batch_size=2, default_lr=1e-2, checkpoint_every=1, seed=3)

    def fresh():
        torch.manual_seed(5)
        return rule_learner(PAPER_POOL, layer_sizes=(784, 16, 3), input_shape=SHAPE, l1=0.01)

    whole = fresh()
    meta_train_rule(whole, src, cfg, checkpoint=tmp_path / "a.pt", progress=False)
    split = fresh()
    meta_train_rule(split, src, cfg, checkpoint=tmp_path / "b.pt", progress=False, stop_after=2)
    again = fresh()
    res = meta_train_rule(again, src, cfg, checkpoint=tmp_path / "b.pt", progress=False)
    torch.testing.assert_close(again.coefficients, whole.coefficients)
    assert res.steps_done == 4 and len(coefficient_history(res.history, again.config.terms)["step"]) == 4
    assert load_rule(tmp_path / "b.pt").rule() == pytest.approx(again.rule())


def test_mnist_episodes_train_a_rule(mnist_root):
    src = mnist_episodes("train", root=mnist_root, ways=3, shots=4, query_shots=2, num_units=3, per_class=50)
    batch = src.sample(2, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (2, 12, 1, 1, 28, 28) and batch.query_x.shape == (2, 6, 1, 28, 28)
    assert set(batch.support_y.unique().tolist()) <= {0, 1, 2}
    learner = rule_learner(("pseudo_gradient", "oja"), layer_sizes=(784, 16, 3), input_shape=SHAPE)
    before = learner.coefficients.detach().clone()
    meta_train_rule(
        learner, src, MetaTrainConfig(steps=2, meta_batch_size=2, checkpoint_every=10), progress=False
    )
    assert not torch.equal(before, learner.coefficients.detach())


# ---------------------------------------------------------------------------------------------------
# Avalanche strategies
# ---------------------------------------------------------------------------------------------------


def _split_mnist(root, n=300):
    from avalanche_plasticity.scenarios import SplitMNIST

    return SplitMNIST(5, seed=0, root=root, train_subset=n)


def test_rule_strategy_runs_with_evaluation_and_replay(mnist_root, tmp_path):
    bm = _split_mnist(mnist_root)
    learner = rule_learner(
        coefficients={"pseudo_gradient": 0.03, "oja": 1e-3}, layer_sizes=(784, 32, 5), input_shape=SHAPE
    )
    save_rule(learner, tmp_path / "rule.pt")
    replay = ReplayPlugin(mem_size=40)
    strategy = MetaPlasticityRule(
        learner=tmp_path
        / "rule.pt",  # from a checkpoint, deployed on a 10-class head with other hidden sizes
        num_classes=10,
        hidden_sizes=(64, 32),
        train_mb_size=4,
        eval_mb_size=128,
        plugins=[replay],
        evaluator=EvaluationPlugin(
            accuracy_metrics(stream=True, experience=True), loss_metrics(stream=True), loggers=[]
        ),
    )
    assert strategy.rule() == pytest.approx(learner.rule())
    w0 = strategy.model.fast_weights[0].clone()
    fb0 = strategy.model.fast_weights[3].clone()
    for exp in bm.train_stream[:2]:
        strategy.train(exp)
    res = strategy.eval(bm.test_stream[:2])
    acc = res["Top1_Acc_Stream/eval_phase/test_stream"]
    assert 0.0 <= acc <= 1.0 and "Loss_Stream/eval_phase/test_stream" in res
    assert len(replay.storage_policy.buffer) == 40
    assert not torch.equal(strategy.model.fast_weights[0], w0)  # forward weights learned
    assert torch.equal(strategy.model.fast_weights[3], fb0)  # feedback stays fixed
    assert strategy.model.fast_weights[0].shape == (1, 64, 784) and strategy.model.fast_weights[2].shape == (
        1,
        10,
        32,
    )


def test_feedback_alignment_strategy_learns_online(mnist_root):
    bm = _split_mnist(mnist_root, n=600)
    strategy = FeedbackAlignment(
        num_classes=10,
        lr=0.03,
        hidden_sizes=(64,),
        eval_mb_size=256,
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
    )
    strategy.train(bm.train_stream[0])  # two digits, one pass, one sample at a time
    res = strategy.eval(bm.test_stream[:1])
    key = next(k for k in res if k.startswith("Top1_Acc_Exp/eval_phase/test_stream"))
    assert res[key] > 0.8, res[key]


def test_strategy_reports_a_diverging_rule(mnist_root):
    """A rule that blows its weights up (here: a strong negative weight decay) raises a clear error at
    the end of the experience instead of silently predicting one class."""
    bm = _split_mnist(mnist_root, n=100)
    strategy = MetaPlasticityRule(
        learner={"pseudo_gradient": 0.03, "weight_decay": -100.0},  # W grows 101-fold a step
        num_classes=10,
        hidden_sizes=(16,),
        input_shape=SHAPE,
        evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]),
    )
    with pytest.raises(FloatingPointError, match="non-finite.*diverges") as err:
        strategy.train(bm.train_stream[0])
    # it names the layers and the online steps (checked every 100 steps and at the experience's end)
    assert re.search(r"layer\(s\) \[0, 1\] .* between online steps 1 and \d+ ", str(err.value)), err.value
    # the stream runner (compare, benchmarks) stops there and reports NaN, with a warning
    from avalanche_plasticity.experiments import run_stream

    strategy.model.reset()
    with pytest.warns(RuntimeWarning, match="stream stopped at experience 0"):
        curve = run_stream(strategy, bm, eval_after=[1, 5])
    assert set(curve) == {1, 5} and all(v != v for v in curve.values())


def test_strategy_bad_input_raises():
    with pytest.raises(TypeError, match="learner must be a PlasticityRuleLearner"):
        MetaPlasticityRule(learner=42)
    with pytest.raises(ValueError, match="unknown plasticity term"):
        MetaPlasticityRule(learner={"pseudo_gradient": 0.1, "hebbb": 0.1})
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        MetaPlasticityRule(learner={"pseudo_gradient": 0.1}, num_classes=1)
    with pytest.raises(ValueError, match="lr must be a number > 0"):
        FeedbackAlignment(num_classes=10, lr=0.0)
    for bad in ("he", 0.0, float("nan")):
        with pytest.raises(ValueError, match="init_gain must be a finite number > 0"):
            MetaPlasticityRule(learner={"pseudo_gradient": 0.1}, init_gain=bad)
    he = FeedbackAlignment(num_classes=10, hidden_sizes=(8,), init_gain=2**0.5)
    assert he.learner.config.init_gain == 2**0.5
    plain = FeedbackAlignment(num_classes=10, hidden_sizes=(8,))
    torch.testing.assert_close(he.model.fast_weights[0], plain.model.fast_weights[0] * 2**0.5)
    torch.testing.assert_close(he.model.fast_weights[2], plain.model.fast_weights[2])  # feedback
    strategy = FeedbackAlignment(num_classes=10, hidden_sizes=(8,))
    with pytest.raises(ValueError, match="input batch must have shape"):
        strategy.model.learn(torch.rand(2, 784), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 10\)"):
        strategy.model.learn(torch.rand(2, 1, 28, 28), torch.tensor([0, 10]))


def test_the_shipped_rule_stays_finite_and_keeps_learning_over_a_long_stream(mnist_root):
    """Issue #15's long-stream check: the shipped rule (meta-trained on Omniglot only) learns SplitMNIST
    class-incremental online, 10,000 online steps one image at a time, and stays finite; it keeps
    learning: every new pair of digits is learned to > 80 % on its own test images right after its
    experience, the last one as well as the first. (The rule it replaced diverged near step 400.)"""
    bm = _split_mnist(mnist_root, n=10_000)
    strategy = MetaPlasticityRule(
        learner="pretrained:omniglot",
        num_classes=10,
        eval_mb_size=1000,
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
    )
    steps = 0
    for i, exp in enumerate(bm.train_stream):
        strategy.train(exp)
        steps += len(exp.dataset)
        res = strategy.eval(bm.test_stream[i : i + 1])
        key = next(k for k in res if k.startswith("Top1_Acc_Exp/eval_phase/test_stream"))
        assert res[key] > 0.8, (i, res[key])
    assert steps >= 10_000
    assert all(torch.isfinite(w).all() for w in strategy.model.fast_weights)
