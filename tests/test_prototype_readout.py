"""FLP's prototype readout: the count-normalised output rule keeps the exact class means, reads them out by
nearest mean, treats a minibatch as its images one by one, and keeps every class of a class-incremental
stream of real MNIST; bad arguments are errors naming them."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from avalanche_plasticity.flp import FLPConfig, FLPLearner
from avalanche_plasticity.prototypes import UNSEEN_LOGIT, prototype_logits, prototype_update

TRUNK = dict(channels=16, strides=(2, 2, 2, 2), image_size=28)


def _learner(outputs: int = 10, seed: int = 0) -> FLPLearner:
    config = FLPConfig(layer_sizes=(64, 16, outputs), task="classification", trunk=TRUNK)
    return FLPLearner(config, seed=seed)


def test_update_keeps_the_exact_class_means_online_and_by_minibatch():
    g = torch.Generator().manual_seed(0)
    patterns = torch.randn(50, 6, generator=g)
    labels = torch.randint(0, 4, (50,), generator=g)
    labels[:4] = torch.arange(4)
    means, counts = torch.zeros(5, 6), torch.zeros(5)
    for i in range(50):  # one at a time: W_y += (1/n_y)(a - W_y)
        means, counts = prototype_update(means, counts, patterns[i : i + 1], labels[i : i + 1])
    batched, batched_counts = torch.zeros(5, 6), torch.zeros(5)
    for i in range(0, 50, 16):  # minibatches with repeated labels
        batched, batched_counts = prototype_update(
            batched, batched_counts, patterns[i : i + 16], labels[i : i + 16]
        )
    expected = torch.stack([patterns[labels == c].mean(0) for c in range(4)])
    torch.testing.assert_close(means[:4], expected)
    torch.testing.assert_close(batched[:4], expected)
    assert counts.tolist() == [float((labels == c).sum()) for c in range(4)] + [0.0]
    assert torch.equal(means[4], torch.zeros(6))  # a class never seen is untouched


def test_logits_pick_the_nearest_mean_and_never_an_unseen_class():
    means = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    counts = torch.tensor([3.0, 1.0, 0.0])  # class 2 has no prototype (its zero row would be nearest)
    patterns = torch.tensor([[0.9, 0.1], [0.2, 0.7], [0.05, 0.05]])
    logits = prototype_logits(means, counts, patterns)
    assert logits.argmax(1).tolist() == [0, 1, 0]
    assert (logits[:, 2] == UNSEEN_LOGIT).all()
    torch.testing.assert_close(logits[:, :2], -0.5 * torch.cdist(patterns, means[:2]).square())
    assert torch.isfinite(F.cross_entropy(logits, torch.tensor([2, 2, 2])))  # an unseen label: a finite loss


def test_the_strategy_treats_a_minibatch_as_its_images_one_by_one(mnist_root):
    from avalanche_plasticity.scenarios.mnist import mnist_family_benchmark
    from avalanche_plasticity.strategies import FLP

    bm = mnist_family_benchmark("mnist", "split", seed=0, root=mnist_root, train_per_experience=64)
    learner = _learner()
    states = []
    for mb in (1, 32):
        strategy = FLP(learner=learner, readout="prototype", train_mb_size=mb, evaluator=None, seed=3)
        for exp in bm.train_stream[:2]:
            strategy.train(exp)
        states.append((strategy.model.prototype_means.clone(), strategy.model.prototype_counts.clone()))
    torch.testing.assert_close(states[0][0], states[1][0], rtol=1e-5, atol=1e-6)
    assert torch.equal(states[0][1], states[1][1]) and states[0][1].sum() == 128
    assert all(
        torch.equal(a, b) for a, b in zip(learner.initial_weights, _learner().initial_weights, strict=True)
    )


def test_keeps_every_class_of_a_class_incremental_mnist_stream(mnist_root):
    """A randomly initialised FLP network read out by prototypes, 5 experiences of 2 digits (200 images
    each): accuracy on all 10 digits far above chance (0.1) and the first pair still recognised at the end,
    where a forgetting readout (Naive: ~0.2 overall) has lost it."""
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.plugins import EvaluationPlugin

    from avalanche_plasticity.scenarios.mnist import mnist_family_benchmark
    from avalanche_plasticity.strategies import FLP

    bm = mnist_family_benchmark("mnist", "split", seed=1, root=mnist_root, train_per_experience=200)
    evaluator = EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True), loggers=[], strict_checks=False
    )
    strategy = FLP(learner=_learner(), readout="prototype", evaluator=evaluator, seed=0)
    for exp in bm.train_stream:
        strategy.train(exp)
    results = strategy.eval(bm.test_stream)
    first_pair = next(v for k, v in results.items() if k.startswith("Top1_Acc_Exp") and k.endswith("Exp000"))
    accuracy = results["Top1_Acc_Stream/eval_phase/test_stream"]
    assert accuracy > 0.45 and first_pair > 0.3, results
    assert torch.isfinite(strategy.model.prototype_means).all()
    assert strategy.model.prototype_counts.sum() == 1000


def test_experience_prototypes_keep_each_experience_and_read_out_the_nearest_label():
    """One prototype per (experience, label): a label's logit is its nearest prototype's over experiences,
    the table grows with the experiences and survives a state-dict round trip."""
    from avalanche_plasticity.strategies import PrototypeReadoutModel

    model = PrototypeReadoutModel(_learner(outputs=2), num_classes=2, per_experience=True)
    xs = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for experience, (a, b) in enumerate(((0, 1), (2, 3))):  # label 0: image a, label 1: image b
        model.experience = experience
        model.learn(xs[[a, b]], torch.tensor([0, 1]))
    assert model.prototype_counts.tolist() == [1, 1, 1, 1]
    patterns = model.patterns(xs)
    torch.testing.assert_close(model.prototype_means, patterns)  # slot e * 2 + y holds its one image
    assert model(xs).argmax(1).tolist() == [0, 1, 0, 1]  # each image finds its own prototype's label
    expected = prototype_logits(model.prototype_means, model.prototype_counts, patterns).view(4, 2, 2)
    torch.testing.assert_close(model(xs), expected.amax(1))
    fresh = PrototypeReadoutModel(_learner(outputs=2), num_classes=2, per_experience=True)
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(xs), model(xs))
    model.experience = -1
    with pytest.raises(ValueError, match="experience must be an int >= 0, got -1"):
        model.learn(xs[:1], torch.tensor([0]))
    model.reset()
    assert model.prototype_counts.shape == (2,) and model.prototype_counts.sum() == 0


def test_domain_incremental_stream_is_learned_with_experience_prototypes(mnist_root):
    """SplitMNIST domain-incremental (labels 0/1 in each experience): the strategy keys each experience's
    prototypes by its index, and a random FLP network reads out all five pairs above the label mean's
    readout, which mixes five digits per label."""
    from avalanche_plasticity.scenarios.mnist import mnist_family_benchmark
    from avalanche_plasticity.strategies import FLP

    bm = mnist_family_benchmark(
        "mnist", "split", seed=1, root=mnist_root, train_per_experience=200, setting="domain"
    )
    test_x = torch.cat([torch.stack([s[0] for s in exp.dataset]) for exp in bm.test_stream])
    test_y = torch.cat([torch.tensor([int(s[1]) for s in exp.dataset]) for exp in bm.test_stream])
    accuracy = {}
    for readout in ("prototype", "experience_prototype"):
        strategy = FLP(learner=_learner(outputs=2), readout=readout, evaluator=None, seed=0)
        for exp in bm.train_stream:
            strategy.train(exp)
        with torch.no_grad():
            accuracy[readout] = (strategy.model(test_x).argmax(1) == test_y).float().mean().item()
    assert strategy.model.prototype_counts.shape == (10,) and strategy.model.prototype_counts.sum() == 1000
    # measured: 0.75 against 0.68 (the shipped Omniglot FLP's trunk: 0.89 against 0.67)
    assert accuracy["experience_prototype"] > 0.7, accuracy
    assert accuracy["experience_prototype"] > accuracy["prototype"] + 0.04, accuracy


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(readout="nearest"), "readout must be one of"),
        (dict(readout="prototype", prototype_layer=2), r"prototype_layer must be in \[0, 1\]"),
        (dict(readout="prototype", prototype_layer=True), "prototype_layer must be an int"),
        (dict(readout="prototype", num_classes=0), "num_classes must be an int >= 1"),
        (dict(readout="rule", num_classes=10), "num_classes is the prototype readout's"),
    ],
)
def test_bad_readout_arguments(kwargs, message):
    from avalanche_plasticity.strategies import FLP

    with pytest.raises(ValueError, match=message):
        FLP(learner=_learner(), **kwargs)


def test_prototype_readout_refuses_regression_and_labels_beyond_its_classes():
    from avalanche_plasticity.strategies import FLP, PrototypeReadoutModel

    regression = FLPLearner(FLPConfig(layer_sizes=(4, 8, 1)))
    with pytest.raises(ValueError, match="needs a classification learner"):
        FLP(learner=regression, readout="prototype")
    model = PrototypeReadoutModel(_learner(outputs=3), num_classes=12)  # more classes than the head
    model.learn(torch.rand(2, 1, 28, 28), torch.tensor([0, 11]))
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 12)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 12\)"):
        model.learn(torch.rand(1, 1, 28, 28), torch.tensor([12]))


def test_compare_uses_the_scenario_readout_and_records_it(mnist_root, tmp_path):
    """split_mnist's class-incremental streams deploy FLP with the prototype readout and its
    domain-incremental ones with per-experience prototypes, unless ``stream.readout`` says otherwise; each
    run records the readout it used."""
    from avalanche_plasticity.cli import main

    quiet = ["--wandb-mode", "disabled", "--quiet", "--threads", "1", "--data-root", str(mnist_root)]
    argv = ["compare", "--scenario", "split_mnist", "--strategies", "FLP", "--meta-steps", "1"]
    argv += ["--set", "stream.train_per_experience=40", "--checkpoint-dir", str(tmp_path), *quiet]
    domain = ["--set", "stream.setting=domain"]
    for extra, expected in (
        ([], "prototype"),
        (["--set", "stream.readout=rule"], "rule"),
        (domain, "experience_prototype"),  # domain-incremental: one prototype per label and experience
    ):
        out = tmp_path / expected
        assert main([*argv, *extra, "--out", str(out)]) == 0
        (run,) = json.loads((out / "results.json").read_text())["runs"]
        assert run["config"]["readout"] == expected, run["config"]
        assert run["config"]["prototype_layer"] == 0  # split_mnist's, picked on held-out training images
    with pytest.raises(SystemExit):
        main([*argv, "--set", "stream.readout=nearest", "--out", str(tmp_path / "bad")])


def test_scenario_prototype_layers_and_a_bad_one():
    from avalanche_plasticity import registry
    from avalanche_plasticity.configs import StreamConfig

    assert registry.scenario_spec("omniglot").prototype_layer == 1
    assert registry.scenario_spec("split_mnist").prototype_layer == 0
    assert registry.benchmark_scenario() == "split_mnist"
    with pytest.raises(ValueError, match="prototype_layer must be None or an int >= 0, got -1"):
        StreamConfig(prototype_layer=-1)
