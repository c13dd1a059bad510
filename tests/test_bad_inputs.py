"""Every bad input is a clear error before any work: the error type, a message naming the bad value and what
is accepted, and nothing written. One case per row of :data:`CASES`; ``benchmarks/reliability.py`` runs the
same rows and counts them.

A case is ``Case(id, act, error, mentions)``: ``act(tmp)`` sets up what it needs in the empty folder ``tmp``
and returns the call that must fail; the call must raise ``error`` with every string of ``mentions`` in its
message (for the CLI: in what it writes to stderr, exiting with code 2), and must leave ``tmp`` as the setup
left it.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
from avalanche.benchmarks.scenarios import benchmark_from_datasets
from avalanche.benchmarks.utils import AvalancheDataset
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from avalanche_plasticity.alignment import convert
from avalanche_plasticity.checkpoint import CheckpointError, write_bytes_atomic
from avalanche_plasticity.contrastive.learners import (
    ComplexSynapseConfig,
    ComplexSynapseLearner,
    GainModulationConfig,
    GainModulationLearner,
)
from avalanche_plasticity.data import DataNotFoundError, load_mnist, load_omniglot
from avalanche_plasticity.flp import FLPConfig, FLPLearner
from avalanche_plasticity.meta_learning import load_learner, save_learner
from avalanche_plasticity.oml import OMLConfig, OMLLearner
from avalanche_plasticity.plasticity_rules.learner import PlasticityRuleConfig
from avalanche_plasticity.scenarios import ContinualOmniglot, IncrementalSine
from avalanche_plasticity.strategies import (
    FLP,
    OML,
    AlignmentPlugin,
    ComplexSynapse,
    FeedbackAlignment,
    GainModulation,
    MetaPlasticityRule,
    SeedPlugin,
)
from avalanche_plasticity.strategies.contrastive import UnstableLearningRateError
from avalanche_plasticity.wandb_logger import WandBLogger, resolve_mode

INF, NAN = float("inf"), float("nan")


@dataclass(frozen=True)
class Case:
    id: str
    act: Callable[[Path], Callable[[], Any]]
    error: type[BaseException]
    mentions: tuple[str, ...]


# --------------------------------------------------------------------------- small learners and streams


def quiet() -> EvaluationPlugin:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EvaluationPlugin(loggers=[])


def flp_learner(outputs: int = 5, task: str = "classification") -> FLPLearner:
    return FLPLearner(FLPConfig(layer_sizes=(4, 8, outputs), task=task, init_plasticity=1e-3), seed=0)


def oml_learner(outputs: int = 5, task: str = "classification") -> OMLLearner:
    return OMLLearner(OMLConfig(rln_sizes=(4, 8), pln_sizes=(8, outputs), task=task), seed=0)


def cs_learner(outputs: int = 5, task: str = "classification") -> ComplexSynapseLearner:
    spec = {"kind": "mlp", "sizes": [4, 8, outputs]}
    return ComplexSynapseLearner(ComplexSynapseConfig(network=spec, task=task))


def gm_learner(outputs: int = 5) -> GainModulationLearner:
    spec = {"kind": "mlp", "sizes": [4, 8, outputs]}
    return GainModulationLearner(GainModulationConfig(network=spec, task="classification"))


def stream(x: torch.Tensor, y: torch.Tensor, test: tuple[torch.Tensor, torch.Tensor] | None = None):
    """One training experience (x, y) and one test experience (``test``, default the same data)."""
    tx, ty = test if test is not None else (x, y)
    return benchmark_from_datasets(
        train=[AvalancheDataset([torch.utils.data.TensorDataset(x, y)])],
        test=[AvalancheDataset([torch.utils.data.TensorDataset(tx, ty)])],
    )


def labels(*values: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(len(values), 4), torch.tensor(values)


def train_on(strategy_fn: Callable[[], Any], x: torch.Tensor, y: torch.Tensor) -> Callable[[Path], Callable]:
    def act(tmp: Path) -> Callable[[], Any]:
        s, bm = strategy_fn(), stream(x, y)
        return lambda: s.train(bm.train_stream[0])

    return act


def eval_on(strategy_fn: Callable[[], Any], test: tuple[torch.Tensor, torch.Tensor]) -> Callable:
    def act(tmp: Path) -> Callable[[], Any]:
        s, bm = strategy_fn(), stream(*labels(0, 1, 2, 3), test=test)
        s.train(bm.train_stream[0])
        return lambda: s.eval(bm.test_stream)

    return act


def make(fn: Callable[[], Any]) -> Callable[[Path], Callable[[], Any]]:
    """A case whose failing call needs no setup."""
    return lambda tmp: fn


def naive_with(plugin: AlignmentPlugin, *, out: int = 3, loss: nn.Module | None = None) -> Naive:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, out))
    return Naive(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        criterion=loss or nn.CrossEntropyLoss(),
        train_mb_size=4,
        plugins=[SeedPlugin(0), plugin],
        evaluator=quiet(),
    )


def nan_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = labels(0, 1, 2, 0)
    x[2, 1] = NAN
    return x, y


def saved(tmp: Path, learner: Any, name: str = "learner.pt") -> Path:
    save_learner(learner, tmp / name)
    return tmp / name


def truncated(tmp: Path) -> Path:
    good = saved(tmp, oml_learner())
    (tmp / "truncated.pt").write_bytes(good.read_bytes()[:300])
    return tmp / "truncated.pt"


def mismatched(tmp: Path) -> Path:
    ckpt = torch.load(saved(tmp, oml_learner()), weights_only=False)
    torch.save({**ckpt, "kind": "FLPLearner", "learner_config": vars(flp_learner().config)}, tmp / "mix.pt")
    return tmp / "mix.pt"


def a_file(tmp: Path) -> Path:
    (tmp / "a_file").write_text("not a folder")
    return tmp / "a_file"


def cli(*argv: str) -> Callable[[Path], Callable[[], Any]]:
    from avalanche_plasticity.cli import main

    return make(lambda: main(list(argv)))


# --------------------------------------------------------------------------- the cases

FINITE_POS = "a finite number > 0"
NUMBER_POS = "a number > 0 (not NaN or inf)"
HEAD = "labels must be in [0, 5) (the head has 5 units)"

CASES: list[Case] = [
    # strategy hyperparameters: rates, coefficients, counts, seeds
    Case(
        "OML lr=inf", make(lambda: OML(learner=oml_learner(), lr=INF)), ValueError, ("lr", NUMBER_POS, "inf")
    ),
    Case(
        "OML lr=nan", make(lambda: OML(learner=oml_learner(), lr=NAN)), ValueError, ("lr", NUMBER_POS, "nan")
    ),
    Case(
        "OML lr<0", make(lambda: OML(learner=oml_learner(), lr=-0.1)), ValueError, ("lr", NUMBER_POS, "-0.1")
    ),
    Case(
        "OML lr=True",
        make(lambda: OML(learner=oml_learner(), lr=True)),
        ValueError,
        ("lr", NUMBER_POS, "True"),
    ),
    Case(
        "OML optimizer not an optimizer",
        make(lambda: OML(learner=oml_learner(), optimizer="sgd")),
        TypeError,
        ("optimizer must be a torch.optim.Optimizer or None", "str"),
    ),
    Case(
        "FLP train_mb_size=0",
        make(lambda: FLP(learner=flp_learner(), train_mb_size=0)),
        ValueError,
        ("train_mb_size must be an int >= 1", "got 0"),
    ),
    Case(
        "FLP train_mb_size=2.5",
        make(lambda: FLP(learner=flp_learner(), train_mb_size=2.5)),
        ValueError,
        ("train_mb_size must be an int >= 1", "2.5"),
    ),
    Case(
        "FLP train_epochs=0",
        make(lambda: FLP(learner=flp_learner(), train_epochs=0)),
        ValueError,
        ("train_epochs must be an int >= 1", "got 0"),
    ),
    Case(
        "FLP eval_mb_size=-1",
        make(lambda: FLP(learner=flp_learner(), eval_mb_size=-1)),
        ValueError,
        ("eval_mb_size must be an int >= 1", "-1"),
    ),
    Case(
        "FLP eval_every=-2",
        make(lambda: FLP(learner=flp_learner(), eval_every=-2)),
        ValueError,
        ("eval_every must be an int >= -1", "-2"),
    ),
    Case(
        "FLP seed=1.5",
        make(lambda: FLP(learner=flp_learner(), seed=1.5)),
        ValueError,
        ("seed must be an int", "1.5"),
    ),
    Case(
        "FLP rate_scale=inf",
        make(lambda: FLP(learner=flp_learner(), rate_scale=INF)),
        ValueError,
        ("rate_scale", NUMBER_POS, "inf"),
    ),
    Case(
        "FLP rate_scale=0",
        make(lambda: FLP(learner=flp_learner(), rate_scale=0)),
        ValueError,
        ("rate_scale", NUMBER_POS, "got 0"),
    ),
    Case(
        "ComplexSynapse lr=inf",
        make(lambda: ComplexSynapse(learner=cs_learner(), lr=INF)),
        ValueError,
        ("lr", NUMBER_POS, "inf"),
    ),
    Case(
        "ComplexSynapse momentum=1",
        make(lambda: ComplexSynapse(learner=cs_learner(), momentum=1.0)),
        ValueError,
        ("momentum must be a number >= 0 and < 1 (not NaN or inf)", "1.0"),
    ),
    Case(
        "ComplexSynapse lr past its pull's stability bound",
        make(
            lambda: ComplexSynapse(
                learner=ComplexSynapseLearner(
                    ComplexSynapseConfig(network={"kind": "mlp", "sizes": [4, 8, 5]}, init_lambda=50.0)
                ),
                lr=0.03,
            )
        ),
        UnstableLearningRateError,
        ("lr 0.03", "strongest pull is 50", "use lr < 0.02"),
    ),
    Case(
        "GainModulation momentum=nan",
        make(lambda: GainModulation(learner=gm_learner(), momentum=NAN)),
        ValueError,
        ("momentum must be a number >= 0 and < 1 (not NaN or inf)", "nan"),
    ),
    Case(
        "FeedbackAlignment lr=inf",
        make(lambda: FeedbackAlignment(num_classes=5, lr=INF)),
        ValueError,
        ("lr", NUMBER_POS, "inf"),
    ),
    Case(
        "FeedbackAlignment num_classes=1",
        make(lambda: FeedbackAlignment(num_classes=1)),
        ValueError,
        ("num_classes must be an int >= 2", "got 1"),
    ),
    Case(
        "MetaPlasticityRule hidden_sizes=(0,)",
        make(lambda: MetaPlasticityRule(learner={"pseudo_gradient": 0.1}, num_classes=5, hidden_sizes=(0,))),
        ValueError,
        ("hidden_sizes must be positive ints", "(0,)"),
    ),
    Case(
        "MetaPlasticityRule init_gain=inf",
        make(lambda: MetaPlasticityRule(learner={"pseudo_gradient": 0.1}, num_classes=5, init_gain=INF)),
        ValueError,
        ("init_gain", FINITE_POS, "inf"),
    ),
    Case(
        "MetaPlasticityRule seed='0'",
        make(lambda: MetaPlasticityRule(learner={"pseudo_gradient": 0.1}, num_classes=5, seed="0")),
        ValueError,
        ("seed must be an int", "'0'"),
    ),
    Case(
        "MetaPlasticityRule minibatch='mean'",
        make(lambda: MetaPlasticityRule(learner={"pseudo_gradient": 0.1}, num_classes=5, minibatch="mean")),
        ValueError,
        ("minibatch must be one of", "sequential", "'mean'"),
    ),
    Case(
        "MetaPlasticityRule unknown term",
        make(lambda: MetaPlasticityRule(learner={"hebbian": 0.1}, num_classes=5)),
        ValueError,
        ("unknown plasticity term 'hebbian'", "known terms", "pseudo_gradient"),
    ),
    Case(
        "AlignmentPlugin feedback_lr=inf",
        make(lambda: AlignmentPlugin("fa", feedback_lr=INF)),
        ValueError,
        ("feedback_lr", FINITE_POS, "inf"),
    ),
    Case(
        "AlignmentPlugin update_noise<0",
        make(lambda: AlignmentPlugin("fa", update_noise=-1.0)),
        ValueError,
        ("update_noise must be a finite number >= 0", "-1.0"),
    ),
    Case(
        "AlignmentPlugin unknown optimizer",
        make(lambda: AlignmentPlugin("fa", feedback_optimizer="rmsprop")),
        ValueError,
        ("feedback_optimizer must be one of", "adam", "'rmsprop'"),
    ),
    Case(
        "AlignmentPlugin unknown rule",
        make(lambda: AlignmentPlugin("mirror")),
        ValueError,
        ("unknown rule 'mirror'", "available", "backprop"),
    ),
    Case(
        "AlignmentPlugin seed=0.5",
        make(lambda: AlignmentPlugin("fa", seed=0.5)),
        ValueError,
        ("seed must be an int", "0.5"),
    ),
    Case(
        "AlignmentPlugin output_dim=0",
        make(lambda: AlignmentPlugin("dfa", output_dim=0)),
        ValueError,
        ("output_dim must be a positive int or None", "got 0"),
    ),
    Case("SeedPlugin seed=None", make(lambda: SeedPlugin(None)), ValueError, ("seed must be an int", "None")),
    # learner configs
    Case(
        "OMLConfig inner_lr=inf",
        make(lambda: OMLConfig(inner_lr=INF)),
        ValueError,
        ("inner_lr", FINITE_POS, "inf"),
    ),
    Case(
        "OMLConfig inner_lr=0",
        make(lambda: OMLConfig(inner_lr=0)),
        ValueError,
        ("inner_lr", FINITE_POS, "got 0"),
    ),
    Case(
        "OMLConfig rln/pln mismatch",
        make(lambda: OMLConfig(rln_sizes=(11, 10), pln_sizes=(20, 1))),
        ValueError,
        ("rln_sizes[-1] (10) must equal pln_sizes[0] (20)",),
    ),
    Case(
        "FLPConfig init_plasticity=nan",
        make(lambda: FLPConfig(init_plasticity=NAN)),
        ValueError,
        ("init_plasticity must be a finite number", "nan"),
    ),
    Case(
        "FLPConfig init_feedback_strength=inf",
        make(lambda: FLPConfig(init_feedback_strength=INF)),
        ValueError,
        ("init_feedback_strength must be a finite number", "inf"),
    ),
    Case(
        "FLPConfig hidden_plasticity_multiplier<0",
        make(lambda: FLPConfig(hidden_plasticity_multiplier=-1.0)),
        ValueError,
        ("hidden_plasticity_multiplier must be a finite number >= 0", "-1.0"),
    ),
    Case(
        "FLPConfig unknown task",
        make(lambda: FLPConfig(task="ranking")),
        ValueError,
        ("task must be one of", "classification", "'ranking'"),
    ),
    Case(
        "ComplexSynapseConfig inner_lr=inf",
        make(lambda: ComplexSynapseConfig(inner_lr=INF)),
        ValueError,
        ("inner_lr", FINITE_POS, "inf"),
    ),
    Case(
        "ComplexSynapseConfig init_lambda<0",
        make(lambda: ComplexSynapseConfig(init_lambda=-1.0)),
        ValueError,
        ("init_lambda", FINITE_POS, "-1.0"),
    ),
    Case(
        "ComplexSynapseConfig head_lambda=0",
        make(lambda: ComplexSynapseConfig(head_lambda=0.0)),
        ValueError,
        ("head_lambda", FINITE_POS, "0.0"),
    ),
    Case(
        "GainModulationConfig reg_strength=inf",
        make(lambda: GainModulationConfig(reg_strength=INF)),
        ValueError,
        ("reg_strength must be a finite number >= 0", "inf"),
    ),
    Case(
        "PlasticityRuleConfig l1=inf",
        make(lambda: PlasticityRuleConfig(l1=INF)),
        ValueError,
        ("l1 must be >= 0 and finite", "inf"),
    ),
    Case(
        "PlasticityRuleConfig beta=0",
        make(lambda: PlasticityRuleConfig(beta=0.0)),
        ValueError,
        ("beta must be > 0 and finite", "0.0"),
    ),
    Case(
        "PlasticityRuleConfig coefficient=nan",
        make(lambda: PlasticityRuleConfig(init_coefficients={"pseudo_gradient": NAN})),
        ValueError,
        ("init_coefficients must be finite numbers", "'pseudo_gradient': nan"),
    ),
    # labels beyond the head, in training and in evaluation, for every strategy
    Case(
        "FLP train label 7 of 5",
        train_on(lambda: FLP(learner=flp_learner(), evaluator=quiet()), *labels(0, 7)),
        ValueError,
        (HEAD, "got label 7", "training"),
    ),
    Case(
        "FLP train label -1",
        train_on(lambda: FLP(learner=flp_learner(), evaluator=quiet()), *labels(-1, 2)),
        ValueError,
        (HEAD, "got label -1", "training"),
    ),
    Case(
        "FLP eval label 7 of 5",
        eval_on(lambda: FLP(learner=flp_learner(), evaluator=quiet()), labels(1, 7)),
        ValueError,
        (HEAD, "got label 7", "evaluation"),
    ),
    Case(
        "OML train label -1",
        train_on(lambda: OML(learner=oml_learner(), evaluator=quiet()), *labels(0, -1)),
        ValueError,
        (HEAD, "got label -1", "training"),
    ),
    Case(
        "OML eval label 7 of 5",
        eval_on(lambda: OML(learner=oml_learner(), evaluator=quiet()), labels(7, 0)),
        ValueError,
        (HEAD, "got label 7", "evaluation"),
    ),
    Case(
        "ComplexSynapse train label 7 of 5",
        train_on(lambda: ComplexSynapse(learner=cs_learner(), evaluator=quiet()), *labels(7, 0)),
        ValueError,
        (HEAD, "got label 7", "training"),
    ),
    Case(
        "GainModulation eval label -1",
        eval_on(lambda: GainModulation(learner=gm_learner(), evaluator=quiet()), labels(-1, 0)),
        ValueError,
        (HEAD, "got label -1", "evaluation"),
    ),
    Case(
        "MetaPlasticityRule train label 7 of 5",
        train_on(
            lambda: MetaPlasticityRule(
                learner={"pseudo_gradient": 0.1},
                num_classes=5,
                input_shape=(4,),
                hidden_sizes=(8,),
                evaluator=quiet(),
            ),
            *labels(7, 0),
        ),
        ValueError,
        (HEAD, "got label 7", "training"),
    ),
    Case(
        "FeedbackAlignment eval label 9 of 5",
        eval_on(
            lambda: FeedbackAlignment(num_classes=5, input_shape=(4,), hidden_sizes=(8,), evaluator=quiet()),
            labels(9, 0),
        ),
        ValueError,
        (HEAD, "got label 9", "evaluation"),
    ),
    Case(
        "float labels for classification",
        train_on(
            lambda: FLP(learner=flp_learner(), evaluator=quiet()), torch.randn(2, 4), torch.tensor([0.0, 1.0])
        ),
        ValueError,
        ("labels must be a 1-d integer tensor", "torch.float32"),
    ),
    # inputs and targets: shapes, NaN/inf, empty
    Case(
        "FLP wrong input shape",
        train_on(
            lambda: FLP(learner=flp_learner(), evaluator=quiet()), torch.randn(2, 5), torch.tensor([0, 1])
        ),
        ValueError,
        ("input batch must have shape (batch, 4)", "got (1, 5)"),
    ),
    Case(
        "FLP NaN input",
        train_on(lambda: FLP(learner=flp_learner(), evaluator=quiet()), *nan_inputs()),
        ValueError,
        ("input batch contains NaN or infinite values", "training experience 0"),
    ),
    Case(
        "OML NaN regression target",
        train_on(
            lambda: OML(learner=oml_learner(1, "regression"), evaluator=quiet()),
            torch.randn(2, 4),
            torch.tensor([[0.0], [NAN]]),
        ),
        ValueError,
        ("regression targets contain NaN or infinite values",),
    ),
    Case(
        "ComplexSynapse inf input in evaluation",
        eval_on(
            lambda: ComplexSynapse(learner=cs_learner(), evaluator=quiet()),
            (torch.full((2, 4), INF), torch.tensor([0, 1])),
        ),
        ValueError,
        ("input batch contains NaN or infinite values", "evaluation"),
    ),
    Case(
        "empty training experience",
        train_on(
            lambda: FLP(learner=flp_learner(), evaluator=quiet()), torch.zeros(0, 4), torch.zeros(0).long()
        ),
        ValueError,
        ("training experience 0 is empty",),
    ),
    # credit-assignment rules: shapes and non-finite values name the layer
    Case(
        "aligned Linear wrong input shape",
        make(
            lambda: convert(nn.Sequential(nn.Linear(784, 32), nn.Linear(32, 10)), "fa")(torch.randn(4, 1024))
        ),
        ValueError,
        ("layer '0'", "Linear(784, 32)", "(..., 784)", "(4, 1024)"),
    ),
    Case(
        "aligned Conv2d wrong channels",
        make(lambda: convert(nn.Sequential(nn.Conv2d(3, 4, 3)), "sa")(torch.randn(2, 1, 8, 8))),
        ValueError,
        ("layer '0'", "Conv2d(3, 4)", "(batch, 3, H, W)", "(2, 1, 8, 8)"),
    ),
    Case(
        "AlignmentPlugin NaN inputs",
        train_on(lambda: naive_with(AlignmentPlugin("fa")), *nan_inputs()),
        FloatingPointError,
        ("AlignmentPlugin('fa')", "NaN/inf", "first converted layer '0'", "Inputs must be finite"),
    ),
    Case(
        "AlignmentPlugin inf targets",
        train_on(
            lambda: naive_with(AlignmentPlugin("sa"), out=1, loss=nn.MSELoss()),
            torch.randn(4, 4),
            torch.tensor([[0.0], [INF], [1.0], [2.0]]),
        ),
        FloatingPointError,
        ("weight gradient of layer(s)", "['0', '2']", "non-finite", "before the update"),
    ),
    Case(
        "convert a model without layers",
        make(lambda: convert(nn.Sequential(nn.ReLU()), "fa")),
        ValueError,
        ("no nn.Linear or nn.Conv2d layer",),
    ),
    Case(
        "convert seed='x'",
        make(lambda: convert(nn.Linear(2, 2), "fa", seed="x")),
        TypeError,
        ("seed must be an int", "'x'"),
    ),
    # checkpoints: corrupt, truncated, mismatched, missing
    Case(
        "corrupt checkpoint",
        lambda tmp: (p := tmp / "bad.pt", p.write_bytes(b"not a checkpoint"), lambda: load_learner(p))[-1],
        CheckpointError,
        ("bad.pt", "corrupt or not a torch file"),
    ),
    Case(
        "truncated checkpoint",
        lambda tmp: (p := truncated(tmp), lambda: load_learner(p))[-1],
        CheckpointError,
        ("truncated.pt", "corrupt"),
    ),
    Case(
        "checkpoint of another learner",
        lambda tmp: (p := saved(tmp, oml_learner()), lambda: FLP(learner=p))[-1],
        CheckpointError,
        ("holds a 'OMLLearner', expected 'FLPLearner'",),
    ),
    Case(
        "checkpoint weights do not fit its config",
        lambda tmp: (p := mismatched(tmp), lambda: load_learner(p))[-1],
        CheckpointError,
        ("mix.pt", "does not match its learner config"),
    ),
    Case(
        "missing checkpoint",
        make(lambda: FLP(learner="/nonexistent/flp.pt")),
        FileNotFoundError,
        ("no checkpoint at /nonexistent/flp.pt",),
    ),
    # scenarios and data roots
    Case(
        "IncrementalSine num_functions=0",
        make(lambda: IncrementalSine(num_functions=0)),
        ValueError,
        ("num_functions must be a positive int", "0"),
    ),
    Case(
        "ContinualOmniglot num_classes=1000",
        make(lambda: ContinualOmniglot(num_classes=1000)),
        ValueError,
        ("num_classes must be an int in [1, 659]", "1000"),
    ),
    Case(
        "ContinualOmniglot classes_per_experience=3 of 10",
        make(lambda: ContinualOmniglot(num_classes=10, classes_per_experience=3)),
        ValueError,
        ("classes_per_experience must be a positive divisor of num_classes (10)", "got 3"),
    ),
    Case(
        "Omniglot under a missing data root",
        lambda tmp: lambda: load_omniglot("background", root=tmp / "nowhere"),
        DataNotFoundError,
        ("Omniglot 'background' split not found under data root", "nowhere"),
    ),
    Case(
        "MNIST under a missing data root",
        lambda tmp: lambda: load_mnist("train", root=tmp / "nowhere"),
        DataNotFoundError,
        ("MNIST 'train' not found", "nowhere"),
    ),
    # W&B modes
    Case(
        "WandBLogger mode='cloud'",
        lambda tmp: lambda: WandBLogger(mode="cloud", dir=tmp / "wandb"),
        ValueError,
        ("mode must be one of 'online', 'offline', 'disabled' or None", "'cloud'"),
    ),
    Case(
        "WANDB_MODE=bogus",
        make(lambda: resolve_mode(None, environ={"WANDB_MODE": "bogus"})),
        ValueError,
        ("WANDB_MODE environment variable is 'bogus'", "'online', 'offline', 'disabled'"),
    ),
    # unwritable paths
    Case(
        "atomic write under a file",
        lambda tmp: (f := a_file(tmp), lambda: write_bytes_atomic(b"{}", f / "results.json"))[-1],
        OSError,
        ("a_file",),
    ),
    Case(
        "checkpoint under a file",
        lambda tmp: (f := a_file(tmp), lambda: save_learner(flp_learner(), f / "flp.pt"))[-1],
        OSError,
        ("a_file",),
    ),
    # the command line (exit code 2, the message on stderr)
    Case(
        "CLI seed 'x'", cli("compare", "--seeds", "x"), SystemExit, ("a seed must be an integer >= 0", "'x'")
    ),
    Case(
        "CLI unknown learner",
        cli("meta-train", "--learner", "NOPE"),
        SystemExit,
        ("invalid choice: 'NOPE'", "FLP", "OML"),
    ),
    Case(
        "CLI unknown W&B mode",
        cli("compare", "--wandb-mode", "cloud"),
        SystemExit,
        ("invalid choice: 'cloud'", "'online', 'offline', 'disabled'"),
    ),
    Case(
        "CLI --threads 0",
        cli("compare", "--threads", "0"),
        SystemExit,
        ("--threads must be a positive integer", "0"),
    ),
    Case(
        "CLI --set steps=abc",
        cli("meta-train", "--learner", "FLP", "--set", "steps=abc", "--show-config"),
        SystemExit,
        ("--set steps=abc", "expected an integer", "'abc'"),
    ),
    Case(
        "CLI unknown setting",
        cli("compare", "--set", "nosuch=1", "--show-config"),
        SystemExit,
        ("unknown setting 'nosuch'", "valid keys"),
    ),
    Case(
        "CLI unknown strategy",
        cli("compare", "--strategies", "Bogus", "--show-config"),
        SystemExit,
        ("unknown strategy 'Bogus'", "choose from", "Naive"),
    ),
    Case(
        "CLI unknown scenario",
        cli("compare", "--scenario", "imagenet"),
        SystemExit,
        ("invalid choice: 'imagenet'", "sine", "omniglot"),
    ),
]


def _listing(tmp: Path) -> dict[str, int]:
    return {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*"))}


def run_case(case: Case, tmp: Path) -> str | None:
    """None if ``case`` fails as it must (type, message, nothing written), else what went wrong."""
    tmp.mkdir(parents=True, exist_ok=True)
    stderr = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call = case.act(tmp)
        before = _listing(tmp)
        try:
            with contextlib.redirect_stderr(stderr):
                call()
        except case.error as e:
            if isinstance(e, SystemExit):
                if e.code != 2:
                    return f"exit code {e.code!r}, expected 2"
                message = stderr.getvalue()
            else:
                message = str(e)
        except Exception as e:  # the wrong error type
            return f"raised {type(e).__name__}: {str(e)[:300]}"
        else:
            return f"no {case.error.__name__} was raised"
    missing = [m for m in case.mentions if m not in message]
    if missing:
        return f"message lacks {missing}: {message[-500:]}"
    after = _listing(tmp)
    if after != before:
        return f"files written: {sorted(set(after) - set(before))}"
    return None


def test_there_are_at_least_fifty_distinct_cases():
    assert len(CASES) >= 50
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_clear_error_and_nothing_is_written(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written to the working folder would show too
    problem = run_case(case, tmp_path / "case")
    assert problem is None, problem
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case"]
