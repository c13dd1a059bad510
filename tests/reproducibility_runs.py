"""One process's curves for every strategy of ``strategies/`` on small seeded streams, as JSON on stdout.

``python tests/reproducibility_runs.py <run seed> <global torch seed>``: every strategy is trained on
a stream in minibatches of 4 (so the data order matters) and evaluated after each experience. The global
torch seed is set before each strategy is built and trained, and torch's global RNG is drawn from
between experiences: with the run seed alone deciding every random choice, the curves do not depend on
it. Used by ``tests/test_reproducibility.py`` and ``benchmarks/reliability.py`` (each call in a fresh
process).
"""

from __future__ import annotations

import json
import sys
import warnings

import torch
import torch.nn as nn
from avalanche.benchmarks.scenarios import benchmark_from_datasets
from avalanche.benchmarks.utils import AvalancheDataset
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin

from avalanche_plasticity.contrastive.learners import (
    ComplexSynapseConfig,
    ComplexSynapseLearner,
    GainModulationConfig,
    GainModulationLearner,
)
from avalanche_plasticity.flp import FLPConfig, FLPLearner
from avalanche_plasticity.metrics import mse_metrics
from avalanche_plasticity.oml import OMLConfig, OMLLearner
from avalanche_plasticity.scenarios import IncrementalSine
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

STRATEGIES = (
    "FLP",
    "OML",
    "ComplexSynapse",
    "GainModulation",
    "MetaPlasticityRule",
    "FeedbackAlignment",
    "Naive+SeedPlugin+Replay",
    "Naive+SeedPlugin+AlignmentPlugin(brsf)",
)


def _classification_stream():
    g = torch.Generator().manual_seed(123)
    train, test = [], []
    for e in range(2):
        for split, n in ((train, 24), (test, 8)):
            x = torch.rand(n, 1, 4, 4, generator=g)
            y = torch.randint(2 * e, 2 * e + 2, (n,), generator=g)
            split.append(AvalancheDataset([torch.utils.data.TensorDataset(x, y)]))
    return benchmark_from_datasets(train=train, test=test)


def _evaluator(task: str) -> EvaluationPlugin:
    from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics

    metrics = mse_metrics(stream=True) if task == "regression" else [accuracy_metrics(stream=True)]
    return EvaluationPlugin(*metrics, loss_metrics(stream=True), loggers=[])


def build(name: str, seed: int):
    """``(strategy, benchmark)`` for one strategy name of :data:`STRATEGIES`."""
    sine = IncrementalSine(num_functions=3, batches_per_function=3)
    common = dict(train_mb_size=4, seed=seed)
    if name == "FLP":
        learner = FLPLearner(FLPConfig(layer_sizes=(4, 16, 1), init_plasticity=1e-4), seed=0)
        return FLP(learner=learner, evaluator=_evaluator("regression"), **common), sine
    if name == "OML":
        learner = OMLLearner(OMLConfig(rln_sizes=(4, 16), pln_sizes=(16, 1)), seed=0)
        return OML(learner=learner, evaluator=_evaluator("regression"), **common), sine
    if name == "ComplexSynapse":
        learner = ComplexSynapseLearner(ComplexSynapseConfig(network={"kind": "mlp", "sizes": [4, 8, 1]}))
        return ComplexSynapse(learner=learner, evaluator=_evaluator("regression"), **common), sine
    if name == "GainModulation":
        learner = GainModulationLearner(GainModulationConfig(network={"kind": "mlp", "sizes": [4, 8, 1]}))
        return GainModulation(learner=learner, evaluator=_evaluator("regression"), **common), sine
    stream = _classification_stream()
    if name == "MetaPlasticityRule":
        strategy = MetaPlasticityRule(
            learner={"pseudo_gradient": 0.05, "oja": 0.001},
            num_classes=4,
            hidden_sizes=(8,),
            input_shape=(1, 4, 4),
            evaluator=_evaluator("classification"),
            **common,
        )
        return strategy, stream
    if name == "FeedbackAlignment":
        strategy = FeedbackAlignment(
            num_classes=4,
            hidden_sizes=(8,),
            input_shape=(1, 4, 4),
            evaluator=_evaluator("classification"),
            **common,
        )
        return strategy, stream
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Dropout(0.2), nn.ReLU(), nn.Linear(8, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    extra = [ReplayPlugin(mem_size=8)] if name.endswith("Replay") else [AlignmentPlugin("brsf", seed=seed)]
    strategy = Naive(
        model=model,
        optimizer=optimizer,
        criterion=nn.CrossEntropyLoss(),
        train_mb_size=4,
        eval_mb_size=8,
        plugins=[SeedPlugin(seed), *extra],
        evaluator=_evaluator("classification"),
    )
    return strategy, stream


def curves(name: str, seed: int, global_seed: int) -> list[dict[str, float]]:
    """The stream metrics after each training experience."""
    torch.manual_seed(0)  # model initialisations (Naive's network) are the caller's business
    strategy, bm = build(name, seed)
    torch.manual_seed(global_seed)
    out = []
    for exp in bm.train_stream:
        strategy.train(exp)
        torch.rand(int(global_seed) % 7 + 1)  # the caller draws from the global RNG between calls
        res = strategy.eval(bm.test_stream)
        out.append({k: float(v) for k, v in sorted(res.items()) if isinstance(v, (int, float))})
    return out


def main(argv: list[str]) -> int:
    seed, global_seed = int(argv[0]), int(argv[1])
    names = argv[2:] or list(STRATEGIES)
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    print(json.dumps({name: curves(name, seed, global_seed) for name in names}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
