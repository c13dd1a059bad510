"""Glue shared by examples, benchmarks and the command line: build learners and baselines from presets,
meta-train them with checkpoints, and run strategies over a stream."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .checkpoint import load_checkpoint
from .flp import FLPLearner
from .meta_learning import load_learner, meta_train
from .networks import ConvTrunk
from .oml import OMLLearner
from .presets import Preset, omniglot_presets, sine_presets
from .tasks import SineTaskSource

SCENARIOS = ("sine", "omniglot")


def presets(scenario: str, scale: str = "cpu") -> dict[str, Preset]:
    if scenario == "sine":
        return sine_presets(scale)
    if scenario == "omniglot":
        return omniglot_presets(scale)
    raise ValueError(f"scenario must be one of {SCENARIOS}, got {scenario!r}")


def build_learner(preset: Preset, seed: int = 0) -> FLPLearner | OMLLearner:
    cls = {"FLP": FLPLearner, "OML": OMLLearner}[preset.learner]
    return cls(preset.learner_config, seed=seed)


def task_source(scenario: str, preset: Preset, root: str | Path | None = None):
    if scenario == "sine":
        return SineTaskSource(**preset.source)
    from avalanche_plasticity.scenarios import omniglot_meta_train_source

    return omniglot_meta_train_source(**preset.source, root=root)


def meta_trained(
    scenario: str,
    name: str,
    *,
    scale: str = "cpu",
    checkpoint_dir: str | Path = "checkpoints",
    root: str | Path | None = None,
    progress: bool = True,
    seed: int = 0,
    steps: int | None = None,
    stop_after: int | None = None,
) -> FLPLearner | OMLLearner:
    """Meta-train preset ``name`` on ``scenario`` (resuming from ``checkpoint_dir`` if a run was cut
    short) and return the learner. A finished checkpoint is simply loaded.

    :param steps: override the preset's number of meta-updates (the checkpoint name then says so).
    """
    preset = presets(scenario, scale)[name]
    tag = f"{scenario}_{name}_{scale}_seed{seed}.pt"
    if steps is not None:
        preset.meta.steps = steps
        tag = f"{scenario}_{name}_{scale}_steps{steps}_seed{seed}.pt"
    path = Path(checkpoint_dir) / tag
    preset.meta.seed = seed
    if path.exists():
        ckpt = load_checkpoint(path)
        if ckpt.get("step", 0) >= preset.meta.steps:
            return load_learner(path)
    learner = build_learner(preset, seed)
    meta_train(
        learner,
        task_source(scenario, preset, root),
        preset.meta,
        checkpoint=path,
        progress=progress,
        stop_after=stop_after,
    )
    return learner


def baseline_model(learner_config: Any) -> nn.Module:
    """A standard network with the same architecture as a learner, randomly initialised (for Naive, EWC,
    Replay): optional conv trunk, ReLU MLP, linear output."""
    if hasattr(learner_config, "layer_sizes"):
        sizes = list(learner_config.layer_sizes)
    else:
        sizes = [*learner_config.rln_sizes, *learner_config.pln_sizes[1:]]
    layers: list[nn.Module] = []
    if learner_config.trunk is not None:
        layers.append(ConvTrunk(**learner_config.trunk))
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def write_results(payload: dict[str, Any], path: str | Path) -> None:
    """Write a benchmark's results as indented JSON (creating the folder) and say where."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")


def machine() -> str:
    """One line naming the machine and versions, for results files."""
    import avalanche

    return (
        f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} threads, "
        f"{'cuda ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'}; "
        f"python {platform.python_version()}, torch {torch.__version__}, avalanche {avalanche.__version__}"
    )


# ---------------------------------------------------------------------------------------------------
# Running strategies side by side
# ---------------------------------------------------------------------------------------------------
STRATEGIES = ("FLP", "OML", "Naive", "EWC", "Replay")
# EWC's lambda per scenario: on continual sine, lambda >= 10 diverges (NaN) at every SGD lr that learns.
EWC_LAMBDA = {"sine": 1.0, "omniglot": 100.0}


def make_strategy(
    name: str,
    *,
    learner: Any = None,
    learner_config: Any = None,
    task: str,
    lr: float | None = None,
    ewc_lambda: float = 100.0,
    mem_size: int = 200,
    train_mb_size: int = 1,
    device: str = "cpu",
    plugins: list | None = None,
    loggers: list | None = None,
    seed: int = 0,
):
    """Build one of :data:`STRATEGIES` with a quiet evaluator reporting accuracy or MSE (plus loss)."""
    from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics, loss_metrics
    from avalanche.training import EWC, Naive, Replay
    from avalanche.training.plugins import EvaluationPlugin

    from avalanche_plasticity.metrics import mse_metrics
    from avalanche_plasticity.strategies import FLP, OML

    if task == "regression":
        metrics = [*mse_metrics(experience=True, stream=True)]
    else:
        metrics = [accuracy_metrics(experience=True, stream=True), forgetting_metrics(stream=True)]
    evaluator = EvaluationPlugin(*metrics, loss_metrics(stream=True), loggers=loggers or [])
    common = dict(
        train_mb_size=train_mb_size, eval_mb_size=256, device=device, evaluator=evaluator, plugins=plugins
    )
    if name == "FLP":
        return FLP(learner=learner, **common)
    if name == "OML":
        return OML(learner=learner, lr=lr, **common)
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    torch.manual_seed(seed)
    model = baseline_model(learner_config)
    opt = torch.optim.SGD(model.parameters(), lr=lr if lr is not None else 0.01)
    crit = nn.MSELoss() if task == "regression" else nn.CrossEntropyLoss()
    if name == "Naive":
        return Naive(model=model, optimizer=opt, criterion=crit, **common)
    if name == "EWC":
        return EWC(model=model, optimizer=opt, criterion=crit, ewc_lambda=ewc_lambda, **common)
    return Replay(model=model, optimizer=opt, criterion=crit, mem_size=mem_size, **common)


def run_stream(
    strategy: Any, benchmark: Any, eval_after: list[int] | None = None, metric: str = "Top1_Acc_Stream"
) -> dict[int, float]:
    """Train on the train stream one experience at a time; after the experiences counted in
    ``eval_after`` (default: every one), evaluate on the test experiences seen so far.

    :returns: ``{experiences_seen: value of <metric>/eval_phase/test_stream}``.
    """
    n = len(benchmark.train_stream)
    points = set(eval_after or range(1, n + 1))
    out = {}
    for i, exp in enumerate(benchmark.train_stream):
        strategy.train(exp)
        if i + 1 in points:
            res = strategy.eval(benchmark.test_stream[: i + 1])
            out[i + 1] = float(res[f"{metric}/eval_phase/test_stream"])
    return out


def compare(
    scenario: str = "sine",
    *,
    strategies: tuple[str, ...] = STRATEGIES,
    scale: str = "cpu",
    meta_steps: int | None = None,
    seed: int = 0,
    num_classes: int = 50,
    lr: dict[str, float] | None = None,
    checkpoint_dir: str | Path = "checkpoints",
    root: str | Path | None = None,
    loggers: list | None = None,
    progress: bool = True,
) -> dict[str, dict[int, float]]:
    """Meta-train FLP and OML (resumable), then run ``strategies`` on the same stream and seed.

    :param meta_steps: override the preset's number of meta-updates (small = quick demo).
    :returns: ``{strategy: {experiences_seen: metric}}`` with MSE (sine) or accuracy (Omniglot).
    """
    from avalanche_plasticity.scenarios import ContinualOmniglot, IncrementalSine

    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        raise ValueError(f"unknown strategies {sorted(unknown)}; choose from {STRATEGIES}")
    chosen = presets(scenario, scale)
    learners = {
        name: meta_trained(
            scenario,
            name,
            scale=scale,
            checkpoint_dir=checkpoint_dir,
            root=root,
            progress=progress,
            seed=seed,
            steps=meta_steps,
        )
        for name in ("FLP", "OML")
        if name in strategies
    }
    cfg = chosen["FLP"].learner_config
    default_lr = {
        "sine": {"OML": 0.003, "Naive": 0.01, "EWC": 0.01, "Replay": 0.01},
        "omniglot": {"OML": 0.03, "Naive": 0.01, "EWC": 0.01, "Replay": 0.01},
    }[scenario]
    lr = {**default_lr, **(lr or {})}
    if scenario == "sine":
        task, mb, metric, marks = "regression", 8, "MSE_Stream", None
    else:
        task, mb, metric = "classification", 1, "Top1_Acc_Stream"
        marks = sorted({min(num_classes, c) for c in (10, 25, 50, 100, 200, 400, 600)})
    results = {}
    for name in strategies:
        # A fresh benchmark per strategy: every strategy sees the same stream, from its start.
        if scenario == "sine":
            bm = IncrementalSine(seed=seed)
        else:
            bm = ContinualOmniglot(
                num_classes=num_classes, seed=seed, root=root, image_size=cfg.trunk["image_size"]
            )
        s = make_strategy(
            name,
            learner=learners.get(name),
            learner_config=cfg,
            task=task,
            lr=lr.get(name),
            ewc_lambda=EWC_LAMBDA[scenario],
            train_mb_size=mb,
            seed=seed,
            loggers=loggers,
        )
        results[name] = run_stream(s, bm, eval_after=marks, metric=metric)
    return results


def format_table(results: dict[str, dict[int, float]], metric: str) -> str:
    """A markdown table: one row per strategy, one column per evaluation point."""
    points = sorted({k for r in results.values() for k in r})
    head = "| strategy | " + " | ".join(str(p) for p in points) + " |"
    rule = "|---|" + "---|" * len(points)
    rows = [
        f"| {n} | " + " | ".join(f"{r.get(p, float('nan')):.3f}" for p in points) + " |"
        for n, r in results.items()
    ]
    return "\n".join([f"{metric} after each number of experiences seen", "", head, rule, *rows])
