"""Glue shared by examples, benchmarks and the command line: presets with overrides, meta-training with
checkpoints, running strategies over a stream, and comparisons with their tables and plots.

Functional core: :func:`run_comparison` returns a :class:`Comparison` (plain data); :func:`write_outputs`
turns it into ``table.md``, ``table.csv``, ``results.json`` and plots. Logging (W&B) plugs in through
callbacks, see :mod:`avalanche_plasticity.cli`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, write_bytes_atomic
from .configs import (
    CLASSIFICATION_ONLY,
    DEFAULT_LR,
    DEFAULT_SCALE,
    EWC_LAMBDA,
    LEARNER_NAMES,
    NO_LR,
    OMNIGLOT_MARKS,
    StreamConfig,
    configure,
    default_strategies,
    input_size,
    presets,
    runs_on,
    split_strategy,
)
from .contrastive import (
    BilevelMetaTrainConfig,
    ComplexSynapseLearner,
    load_bilevel_learner,
    meta_train_bilevel,
)
from .contrastive.learners import LEARNERS as BILEVEL_LEARNERS
from .distributed import World
from .flp import FLPLearner
from .meta_learning import load_learner, meta_train, saved_meta_config
from .networks import ConvTrunk
from .oml import OMLLearner
from .plasticity_rules.learner import PlasticityRuleLearner, load_rule
from .presets import Preset
from .reporting import machine
from .tasks import SineTaskSource


def build_learner(preset: Preset, seed: int = 0) -> FLPLearner | OMLLearner | PlasticityRuleLearner:
    if preset.learner == "MetaPlasticityRule":  # its weights are drawn afresh every episode
        return PlasticityRuleLearner(preset.learner_config)
    if preset.learner == "ComplexSynapse":  # the seed draws the initial omega, as FLP's and OML's weights
        return ComplexSynapseLearner(dataclasses.replace(preset.learner_config, seed=seed))
    cls = {"FLP": FLPLearner, "OML": OMLLearner}[preset.learner]
    return cls(preset.learner_config, seed=seed)


def load_trained(path: str | Path) -> FLPLearner | OMLLearner | PlasticityRuleLearner:
    """A meta-trained learner from its checkpoint, whichever kind it is."""
    kind = load_checkpoint(path).get("kind")
    if kind == "PlasticityRuleLearner":
        return load_rule(path)
    if kind in BILEVEL_LEARNERS:
        return load_bilevel_learner(path)
    return load_learner(path)


def _omniglot_source(**kwargs: Any):
    from avalanche_plasticity.scenarios import omniglot_meta_train_source

    return omniglot_meta_train_source(**kwargs)


def task_source(scenario: str, preset: Preset, root: str | Path | None = None):
    if scenario == "sine":
        return SineTaskSource(**preset.source)
    return _omniglot_source(**preset.source, root=root)


# ---------------------------------------------------------------------------------------------------
# Meta-training with checkpoints
# ---------------------------------------------------------------------------------------------------
def _digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=repr).encode()).hexdigest()[:8]


def checkpoint_name(scenario: str, scale: str, preset: Preset, seed: int = 0) -> str:
    """``<scenario>_<learner>_<scale>[_steps<N>][_<hash>]_seed<seed>.pt``: the steps tag when the number of
    meta-updates differs from the preset's, the hash when any other setting does (so different settings
    never share a checkpoint, and the plain name is the preset's own run)."""
    base = presets(scenario, scale)[preset.learner]
    tag = f"{scenario}_{preset.learner}_{scale}"
    if preset.meta.steps != base.meta.steps:
        tag += f"_steps{preset.meta.steps}"

    def settings(p: Preset) -> dict[str, Any]:
        meta = {k: v for k, v in dataclasses.asdict(p.meta).items() if k not in ("steps", "seed")}
        return {"learner": dataclasses.asdict(p.learner_config), "meta": meta, "source": p.source}

    if settings(preset) != settings(base):
        tag += f"_{_digest(settings(preset))}"
    return f"{tag}_seed{seed}.pt"


def meta_trained(
    scenario: str,
    name: str,
    *,
    scale: str | None = None,
    checkpoint_dir: str | Path = "checkpoints",
    root: str | Path | None = None,
    progress: bool = True,
    seed: int = 0,
    steps: int | None = None,
    stop_after: int | None = None,
    preset: Preset | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    world: World | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    device: str | torch.device = "cpu",
    position: int | None = None,
) -> FLPLearner | OMLLearner | PlasticityRuleLearner | ComplexSynapseLearner:
    """Meta-train preset ``name`` on ``scenario`` (resuming from ``checkpoint_dir`` if a run was cut
    short) and return the learner. A finished checkpoint is simply loaded.

    :param scale: preset scale (default: ``quick`` for sine, ``cpu`` for Omniglot).
    :param steps: override the preset's number of meta-updates (the checkpoint name then says so).
    :param preset: an already configured preset (e.g. with overrides) instead of the named one.
    :param checkpoint: the checkpoint file (default: ``checkpoint_dir/`` + :func:`checkpoint_name`).
    :param resume: False: start over even if a checkpoint exists (it is overwritten).
    :param world: processes sharing the meta-batch (see :func:`.meta_learning.meta_train`).
    """
    scale = scale or DEFAULT_SCALE.get(scenario, "cpu")
    preset = preset or presets(scenario, scale)[name]
    preset = dataclasses.replace(preset, source=dict(preset.source))
    meta = dataclasses.replace(preset.meta, seed=seed)
    if steps is not None:
        meta = dataclasses.replace(meta, steps=steps)
    preset.meta = meta
    path = (
        Path(checkpoint)
        if checkpoint is not None
        else Path(checkpoint_dir) / checkpoint_name(scenario, scale, preset, seed)
    )
    if resume and path.exists():
        ckpt = load_checkpoint(path)
        same = ckpt.get("learner_config") == dataclasses.asdict(preset.learner_config) and {
            **saved_meta_config(ckpt),
            "steps": meta.steps,
        } == dataclasses.asdict(meta)
        if same and ckpt.get("step", 0) >= meta.steps:  # finished: load (a mismatch is reported below)
            return load_trained(path).to(device)
    bilevel = isinstance(meta, BilevelMetaTrainConfig)  # the contrastive rule's learners
    if bilevel and world is not None and world.size > 1:
        raise ValueError(f"{name} is meta-trained in one process; run it without torchrun")
    if bilevel and torch.device(device).type != "cpu":
        raise ValueError(f"{name} is meta-trained on the CPU here, got device {device!r}")
    learner = build_learner(preset, seed).to(device)
    common = dict(
        checkpoint=path,
        resume=resume,
        progress=progress,
        stop_after=stop_after,
        on_step=on_step,
        metadata={"scenario": scenario, "scale": scale, "preset": name, "source": preset.source},
        desc=f"meta-train {name}",
        position=position,
    )
    source = task_source(scenario, preset, root)
    if bilevel:  # resumes from the checkpoint, and returns at once when it is finished
        meta_train_bilevel(learner, source, meta, **common)
    else:
        meta_train(learner, source, meta, world=world, **common)
    return learner


def _is_finished(job: Mapping[str, Any]) -> bool:
    """Whether the checkpoint of a :func:`meta_trained` call exists and is finished."""
    preset, seed = job["preset"], job.get("seed", 0)
    path = Path(job["checkpoint_dir"]) / checkpoint_name(job["scenario"], job["scale"], preset, seed)
    try:
        return load_checkpoint(path).get("step", 0) >= preset.meta.steps
    except (FileNotFoundError, ValueError):
        return False


def _meta_train_job(job: dict[str, Any]) -> str:
    torch.set_num_threads(1)
    meta_trained(**job)
    return job["name"]


def meta_train_parallel(jobs: Sequence[dict[str, Any]], processes: int) -> None:
    """Run several :func:`meta_trained` calls (keyword dicts) side by side in ``processes`` worker
    processes with one thread each; the results are their checkpoints. Progress bars are stacked."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
    with ProcessPoolExecutor(max_workers=min(processes, len(jobs)), mp_context=ctx) as pool:
        futures = [pool.submit(_meta_train_job, {**job, "position": i}) for i, job in enumerate(jobs)]
        for f in futures:
            f.result()


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


# ---------------------------------------------------------------------------------------------------
# Running strategies side by side
# ---------------------------------------------------------------------------------------------------
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
    num_classes: int | None = None,
    rule_config: Any = None,
):
    """Build one of :data:`STRATEGIES`, or ``"<base>+<rule>"`` (e.g. ``"Naive+sa"``: the SGD strategy
    ``base`` trained with ``AlignmentPlugin(rule)``; see :func:`.configs.split_strategy`), with a quiet
    evaluator reporting accuracy or MSE (plus loss), per experience and over the stream.

    :param num_classes: the stream's classes (MetaPlasticityRule, FeedbackAlignment: the output units).
    :param rule_config: FeedbackAlignment's network (a ``PlasticityRuleConfig``: hidden widths and input
        shape; default: the paper's on 28x28 images).
    """
    from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics, loss_metrics
    from avalanche.training import EWC, Naive, Replay
    from avalanche.training.plugins import EvaluationPlugin

    from avalanche_plasticity.metrics import mse_metrics
    from avalanche_plasticity.strategies import FLP, OML, FeedbackAlignment, MetaPlasticityRule
    from avalanche_plasticity.strategies.plasticity_rules import PAPER_HIDDEN_SIZES

    name, rule = split_strategy(name)
    if rule is not None:  # the rule's feedback weights are drawn from the run's seed
        from avalanche_plasticity.strategies import AlignmentPlugin

        plugins = [*(plugins or []), AlignmentPlugin(rule, seed=seed)]
    if name in CLASSIFICATION_ONLY and task != "classification":
        raise ValueError(
            f"strategy {name!r} learns from a classification error; task must be 'classification', "
            f"got {task!r}"
        )
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
    if name == "MetaPlasticityRule":
        return MetaPlasticityRule(learner=learner, num_classes=num_classes, seed=seed, **common)
    if name == "ComplexSynapse":  # SGD on the inner loss at lr (default: the learner's inner_lr)
        from avalanche_plasticity.strategies import ComplexSynapse

        return ComplexSynapse(learner=learner, lr=lr, **common)
    if name == "FeedbackAlignment":
        shape = tuple(getattr(rule_config, "input_shape", None) or (1, 28, 28))
        hidden = tuple(rule_config.layer_sizes[1:-1]) if rule_config is not None else PAPER_HIDDEN_SIZES
        return FeedbackAlignment(
            num_classes=num_classes,
            lr=lr if lr is not None else DEFAULT_LR["omniglot"]["FeedbackAlignment"],
            hidden_sizes=hidden,
            input_shape=shape,
            seed=seed,
            **common,
        )
    torch.manual_seed(seed)
    model = baseline_model(learner_config)
    opt = torch.optim.SGD(model.parameters(), lr=lr if lr is not None else 0.01)
    crit = nn.MSELoss() if task == "regression" else nn.CrossEntropyLoss()
    if name == "Naive":
        return Naive(model=model, optimizer=opt, criterion=crit, **common)
    if name == "EWC":
        return EWC(model=model, optimizer=opt, criterion=crit, ewc_lambda=ewc_lambda, **common)
    return Replay(model=model, optimizer=opt, criterion=crit, mem_size=mem_size, **common)


def run_stream_matrix(
    strategy: Any,
    benchmark: Any,
    eval_after: Iterable[int] | None = None,
    metric: str = "Top1_Acc_Stream",
    progress: bool = False,
    desc: str | None = None,
) -> tuple[dict[int, float], dict[int, dict[int, float]]]:
    """Train on the train stream one experience at a time; after the numbers of experiences in
    ``eval_after`` (default: every one), evaluate on the test experiences seen so far.

    A strategy that raises ``FloatingPointError`` (a local rule whose weights diverged) stops the stream
    with a warning, and its curve is NaN from that experience on.

    :returns: ``(curve, matrix)``: ``curve[k]`` is ``<metric>`` on all ``k`` experiences seen;
        ``matrix[k][j]`` is the per-experience metric (``..._Exp``) on test experience ``j < k`` after
        training on ``k`` experiences (the rows of the forgetting / accuracy matrix, at the evaluation
        points).
    """
    n = len(benchmark.train_stream)
    points = set(eval_after or range(1, n + 1))
    exp_metric = metric.replace("_Stream", "_Exp")
    curve: dict[int, float] = {}
    matrix: dict[int, dict[int, float]] = {}
    bar = tqdm(total=n, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    for i, exp in enumerate(benchmark.train_stream):
        try:
            strategy.train(exp)
        except FloatingPointError as err:  # a local rule diverged: the rest of the curve is NaN
            warnings.warn(f"stream stopped at experience {i}: {err}", RuntimeWarning, stacklevel=2)
            curve.update({k: math.nan for k in points if k > i})
            break
        bar.update(1)
        if i + 1 in points:
            res = strategy.eval(benchmark.test_stream[: i + 1])
            curve[i + 1] = float(res[f"{metric}/eval_phase/test_stream"])
            prefix = f"{exp_metric}/eval_phase/test_stream/"
            row = {}
            for key, value in res.items():
                if key.startswith(prefix) and "/Exp" in key:
                    row[int(key.rsplit("/Exp", 1)[1])] = float(value)
            matrix[i + 1] = dict(sorted(row.items()))
    bar.close()
    return curve, matrix


def run_stream(
    strategy: Any, benchmark: Any, eval_after: list[int] | None = None, metric: str = "Top1_Acc_Stream"
) -> dict[int, float]:
    """Train on the train stream one experience at a time; after the experiences counted in
    ``eval_after`` (default: every one), evaluate on the test experiences seen so far.

    :returns: ``{experiences_seen: value of <metric>/eval_phase/test_stream}``.
    """
    return run_stream_matrix(strategy, benchmark, eval_after, metric)[0]


@dataclass
class RunResult:
    """One strategy on one stream seed."""

    strategy: str
    seed: int
    curve: dict[int, float]
    matrix: dict[int, dict[int, float]]
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> float:
        return self.curve[max(self.curve)]

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "seed": self.seed,
            "curve": {str(k): v for k, v in self.curve.items()},
            "matrix": {str(k): {str(j): v for j, v in row.items()} for k, row in self.matrix.items()},
            "seconds": self.seconds,
            "config": self.config,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunResult:
        return cls(
            d["strategy"],
            int(d["seed"]),
            {int(k): float(v) for k, v in d["curve"].items()},
            {int(k): {int(j): float(v) for j, v in row.items()} for k, row in d["matrix"].items()},
            float(d["seconds"]),
            dict(d.get("config", {})),
        )


def _stats(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std of the finite values (NaN if none is finite)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return float("nan"), float("nan")
    return statistics.mean(finite), statistics.pstdev(finite)


@dataclass
class Comparison:
    """Several strategies on the same streams: the functional result of :func:`run_comparison`."""

    scenario: str
    runs: list[RunResult]
    config: dict[str, Any]
    seconds: float = 0.0
    learners: dict[str, Any] = field(default_factory=dict)

    @property
    def metric(self) -> str:
        """``"mse"`` (sine, lower is better) or ``"accuracy"`` (Omniglot, higher is better)."""
        return "mse" if self.scenario == "sine" else "accuracy"

    @property
    def title(self) -> str:
        return "MSE on all functions seen" if self.scenario == "sine" else "Accuracy on all classes seen"

    @property
    def unit(self) -> str:
        return "functions" if self.scenario == "sine" else "classes"

    @property
    def strategies(self) -> list[str]:
        return list(dict.fromkeys(r.strategy for r in self.runs))

    @property
    def seeds(self) -> list[int]:
        return sorted({r.seed for r in self.runs})

    def by_strategy(self) -> dict[str, list[RunResult]]:
        out: dict[str, list[RunResult]] = {}
        for r in self.runs:
            out.setdefault(r.strategy, []).append(r)
        return out

    def points(self) -> list[int]:
        return sorted({k for r in self.runs for k in r.curve})

    def curve_stats(self, strategy: str) -> dict[int, tuple[float, float]]:
        runs = self.by_strategy()[strategy]
        return {p: _stats([r.curve[p] for r in runs if p in r.curve]) for p in self.points()}

    def matrix_mean(self, strategy: str) -> list[list[float]]:
        """Rows: evaluation points; columns: experiences; mean over seeds, NaN where not evaluated."""
        runs = self.by_strategy()[strategy]
        points = self.points()
        width = max(points)
        return [
            [_stats([r.matrix.get(p, {}).get(j, float("nan")) for r in runs])[0] for j in range(width)]
            for p in points
        ]

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per strategy: ``final_<metric>`` (mean over seeds), its std, per-seed finals and the mean curve."""
        key = f"final_{self.metric}"
        out = {}
        for name, runs in self.by_strategy().items():
            mean, std = _stats([r.final for r in runs])
            stats = self.curve_stats(name)
            out[name] = {
                key: mean,
                f"{key}_std": std,
                f"{key}_per_seed": {str(r.seed): r.final for r in runs},
                "curve": {str(p): m for p, (m, _) in stats.items()},
                "curve_std": {str(p): s for p, (_, s) in stats.items()},
                "forgetting_matrix": self.matrix_mean(name),
                "lr": runs[0].config.get("lr"),
            }
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "metric": self.metric,
            "seconds": self.seconds,
            "machine": machine(),
            "config": self.config,
            "evaluation_points": self.points(),
            "results": self.summary(),
            "runs": [r.to_json() for r in self.runs],
        }

    def _cell(self, mean: float, std: float, diverged: int = 0) -> str:
        """``mean [± std]`` over the finite runs, noting the runs that diverged (NaN: a local rule's
        weights became non-finite and the stream stopped, or a baseline's loss blew up)."""
        if math.isnan(mean):
            return "diverged"
        cell = f"{mean:.3f} ± {std:.3f}" if len(self.seeds) > 1 else f"{mean:.3f}"
        return f"{cell} ({diverged} diverged)" if diverged else cell

    def markdown(self) -> str:
        """A markdown table: one row per strategy, one column per evaluation point (mean ± std over
        seeds when there are several)."""
        points = self.points()
        seeds = self.seeds
        note = f"mean ± std over seeds {seeds}" if len(seeds) > 1 else f"seed {seeds[0]}"
        head = "| strategy | " + " | ".join(str(p) for p in points) + " |"
        rule = "|---|" + "---:|" * len(points)
        rows = []
        for name in self.strategies:
            stats, runs = self.curve_stats(name), self.by_strategy()[name]
            nans = {p: sum(1 for r in runs if p in r.curve and math.isnan(r.curve[p])) for p in points}
            rows.append(f"| {name} | " + " | ".join(self._cell(*stats[p], nans[p]) for p in points) + " |")
        return "\n".join(
            [f"{self.title} after each number of {self.unit} seen ({note})", "", head, rule, *rows]
        )

    def csv(self) -> str:
        """Long format: ``strategy, <unit>_seen, mean, std, seeds`` and one column per seed."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        seeds = self.seeds
        w.writerow(
            ["strategy", f"{self.unit}_seen", f"{self.metric}_mean", f"{self.metric}_std", "seeds"]
            + [f"seed{s}" for s in seeds]
        )
        for name, runs in self.by_strategy().items():
            by_seed = {r.seed: r for r in runs}
            for p, (m, s) in self.curve_stats(name).items():
                per_seed = [by_seed[x].curve.get(p, "") if x in by_seed else "" for x in seeds]
                w.writerow([name, p, m, s, len(runs), *per_seed])
        return buf.getvalue()


def _learner_digest(learner: Any) -> str:
    h = hashlib.sha1()
    for k, v in learner.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def _final_episode_length(source: Mapping[str, Any]) -> int:
    """Minibatches per function of a sine source's episodes at the end of meta-training: the last length
    of its ``length_schedule`` (FLP's curriculum at the ``cpu`` scale ends at the protocol's 40), else
    its ``batches_per_function``."""
    schedule = source.get("length_schedule") or ()
    if schedule:
        return int(max(schedule, key=lambda pair: int(pair[0]))[1])
    return source.get("batches_per_function", 40)


def _stream_settings(
    scenario: str, stream: StreamConfig, learner_config: Any, source: Mapping[str, Any]
) -> dict[str, Any]:
    """The evaluation benchmark's arguments (its shape follows the learner's meta-training episodes)."""
    if scenario == "sine":
        return {
            "num_functions": input_size(learner_config) - 1,
            "batches_per_function": stream.batches_per_function or _final_episode_length(source),
            "batch_size": source.get("batch_size", 8),
        }
    trunk = getattr(learner_config, "trunk", None)
    network = getattr(learner_config, "network", None)
    if network is not None:  # a bilevel learner's conv net
        size = network["image_size"]
    else:
        size = trunk["image_size"] if trunk else learner_config.input_shape[-1]
    return {"num_classes": stream.num_classes, "image_size": size}


def _make_stream(scenario: str, settings: Mapping[str, Any], seed: int, root: str | Path | None):
    from avalanche_plasticity.scenarios import ContinualOmniglot, IncrementalSine

    if scenario == "sine":
        return IncrementalSine(**settings, seed=seed)
    return ContinualOmniglot(**settings, seed=seed, root=root)


def run_comparison(
    scenario: str = "sine",
    *,
    strategies: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    scale: str | None = None,
    overrides: Mapping[str, str] | None = None,
    stream: StreamConfig | None = None,
    meta_seed: int = 0,
    learners: Mapping[str, Any] | None = None,
    learner_presets: Mapping[str, Preset] | None = None,
    checkpoint_dir: str | Path = "checkpoints",
    root: str | Path | None = None,
    run_cache: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    loggers_for: Callable[[str, int, dict[str, Any]], list] | None = None,
    on_run: Callable[[RunResult, list, Any], None] | None = None,
    meta_jobs: int = 1,
) -> Comparison:
    """Meta-train the learners among ``strategies`` (FLP, OML and, on Omniglot, the plasticity rule;
    resumable checkpoints), then run ``strategies`` on the same stream for every seed in ``seeds``.

    :param strategies: default: every strategy that runs on the scenario (:func:`default_strategies`);
        MetaPlasticityRule and FeedbackAlignment need a classification stream. ``"<base>+<rule>"``
        (e.g. ``"Naive+sa"``) adds an SGD strategy trained with a credit-assignment rule
        (:func:`.configs.split_strategy`).
    :param scale: preset scale (default: ``quick`` for sine, ``cpu`` for Omniglot).
    :param overrides: ``key=value`` settings (see :func:`apply_overrides`), for the learners' presets and
        the stream (``stream.*``).
    :param stream: the stream settings before overrides (default: :class:`StreamConfig`).
    :param meta_seed: the seed of meta-training (the stream seeds vary the problem and the baselines' init).
    :param learners: already meta-trained learners by strategy name (skip meta-training for those).
    :param learner_presets: configured presets (e.g. of :func:`configure`) instead of ``scale``+``overrides``.
    :param run_cache: folder holding one JSON per finished strategy x seed run; with ``resume=True`` a run
        whose settings are unchanged is read back instead of run again (a killed comparison resumes).
    :param loggers_for: ``(strategy, seed, config) -> loggers`` for the strategy's evaluator (e.g. one W&B
        run per strategy x seed); not called for runs read from ``run_cache``.
    :param on_run: called with ``(result, loggers, learner)`` after each run that was executed.
    :param meta_jobs: meta-train FLP and OML side by side in this many processes (one thread each; 1: one
        after the other here).
    """
    t0 = time.perf_counter()
    strategies = default_strategies(scenario) if strategies is None else tuple(strategies)
    for s in strategies:
        split_strategy(s)  # raises for an unknown strategy, base or rule
    misplaced = [s for s in strategies if not runs_on(s, scenario)]
    if misplaced:
        raise ValueError(
            f"strategies {misplaced} need a classification stream; on {scenario!r} choose from "
            f"{default_strategies(scenario)}"
        )
    if not seeds:
        raise ValueError("seeds must not be empty")
    scale = scale or DEFAULT_SCALE.get(scenario, "cpu")
    if learner_presets is None:
        learner_presets, stream = configure(scenario, scale, overrides, stream=stream or StreamConfig())
    stream = stream or StreamConfig()
    learners = dict(learners or {})
    missing = [n for n in strategies if n in LEARNER_NAMES and n not in learner_presets and n not in learners]
    if missing:
        raise ValueError(f"{missing} have no preset at scale {scale!r} on {scenario!r}; use another scale")
    ref_name = "FLP" if "FLP" in learner_presets else next(iter(learner_presets))
    ref = learner_presets[ref_name]  # the baselines' architecture and episodes
    arch = ref.learner_config
    rule = learner_presets.get("MetaPlasticityRule")
    rule_arch = rule.learner_config if rule is not None else None
    # One stream for all: the strategies run must see the same functions and minibatches (sine) or images
    # (Omniglot); the baselines follow the reference learner's episodes.
    shown = {n: learner_presets[n] for n in strategies if n in learner_presets}
    if any(n not in learner_presets for n in strategies):
        shown.setdefault(ref_name, ref)
    shapes = {n: _stream_settings(scenario, stream, p.learner_config, p.source) for n, p in shown.items()}
    if len({json.dumps(v, sort_keys=True) for v in shapes.values()}) > 1:
        fix = (
            "stream.batches_per_function (and the same functions_per_episode and batch_size for all)"
            if scenario == "sine"
            else "the same source.image_size for all"
        )
        raise ValueError(f"the strategies would run on different {scenario} streams {shapes}; set {fix}")
    todo = [n for n in learner_presets if n in strategies and n not in learners]
    jobs = {
        n: dict(
            scenario=scenario,
            name=n,
            scale=scale,
            preset=learner_presets[n],
            checkpoint_dir=checkpoint_dir,
            root=root,
            progress=progress,
            seed=meta_seed,
        )
        for n in todo
    }
    unfinished = [n for n in todo if not _is_finished(jobs[n])]
    if meta_jobs > 1 and len(unfinished) > 1:
        meta_train_parallel([jobs[n] for n in unfinished], meta_jobs)
    for n in todo:  # loads the checkpoints finished above, or meta-trains here
        learners[n] = meta_trained(**jobs[n])
    lr = {**DEFAULT_LR[scenario], **stream.lr}
    for n in ("OML", "ComplexSynapse"):  # deployed with the SGD lr they were meta-trained for
        if n in learners and n not in stream.lr:
            lr[n] = learners[n].config.inner_lr
    ewc_lambda = EWC_LAMBDA[scenario] if stream.ewc_lambda is None else stream.ewc_lambda
    if scenario == "sine":
        task, metric = "regression", "MSE_Stream"
        mb = ref.source.get("batch_size", 8)
        marks = stream.eval_points
    else:
        task, metric, mb = "classification", "Top1_Acc_Stream", 1
        marks = stream.eval_points or tuple(sorted({min(stream.num_classes, c) for c in OMNIGLOT_MARKS}))
    cache = Path(run_cache) if run_cache is not None else None
    runs: list[RunResult] = []
    jobs = [(name, seed) for seed in seeds for name in strategies]
    outer = tqdm(total=len(jobs), desc="compare", disable=not progress, dynamic_ncols=True)
    for name, seed in jobs:
        base, rule_name = split_strategy(name)
        learner = learners.get(name)
        source = learner_presets[name].source if name in learner_presets else ref.source
        settings = _stream_settings(scenario, stream, learner.config if learner is not None else arch, source)
        cfg: dict[str, Any] = {
            "scenario": scenario,
            "strategy": name,
            "seed": seed,
            "scale": scale,
            "stream": settings,
            "lr": lr.get(name, lr.get(base)) if base not in NO_LR else None,
            "ewc_lambda": ewc_lambda if base == "EWC" else None,
            "mem_size": stream.mem_size if base == "Replay" else None,
            "train_mb_size": mb,
            "eval_points": list(marks) if marks else None,
        }
        if rule_name is not None:  # only then, so the other runs' cached fingerprints stay valid
            cfg["alignment_rule"] = rule_name
        if learner is not None:
            cfg["meta_seed"] = meta_seed
            cfg["learner"] = {"kind": type(learner).__name__, **dataclasses.asdict(learner.config)}
            if name in learner_presets:
                cfg["meta"] = dataclasses.asdict(learner_presets[name].meta)
                cfg["source"] = dict(learner_presets[name].source)
        else:
            own = rule_arch if name == "FeedbackAlignment" and rule_arch is not None else arch
            cfg["architecture"] = dataclasses.asdict(own)
        fingerprint = _digest({**cfg, "weights": _learner_digest(learner) if learner is not None else None})
        cached = cache / f"{name}_seed{seed}.json" if cache is not None else None
        if resume and cached is not None and cached.exists():
            try:
                data = json.loads(cached.read_text())
                if data.get("fingerprint") == fingerprint:
                    runs.append(RunResult.from_json(data["run"]))
                    outer.update(1)
                    continue
            except (ValueError, KeyError):
                pass  # unreadable cache entry: run again
        loggers = loggers_for(name, seed, cfg) if loggers_for is not None else []
        t = time.perf_counter()
        bm = _make_stream(scenario, settings, seed, root)
        s = make_strategy(
            name,
            learner=learner,
            learner_config=arch,
            task=task,
            lr=lr.get(name, lr.get(base)),
            ewc_lambda=ewc_lambda,
            mem_size=stream.mem_size,
            train_mb_size=mb,
            seed=seed,
            loggers=loggers,
            num_classes=stream.num_classes if task == "classification" else None,
            rule_config=rule_arch,
        )
        curve, matrix = run_stream_matrix(s, bm, marks, metric, progress=progress, desc=f"{name} seed {seed}")
        result = RunResult(name, seed, curve, matrix, time.perf_counter() - t, cfg)
        runs.append(result)
        if cached is not None:
            payload = {"fingerprint": fingerprint, "run": result.to_json()}
            write_bytes_atomic(json.dumps(payload).encode(), cached)
        if on_run is not None:
            on_run(result, loggers, learner)
        outer.update(1)
        if progress:
            outer.set_postfix_str(f"{name} seed {seed}: final {result.final:.3f}")
    outer.close()
    config = {
        "scenario": scenario,
        "scale": scale,
        "strategies": list(strategies),
        "seeds": list(seeds),
        "meta_seed": meta_seed,
        "overrides": dict(overrides or {}),
        "stream": dataclasses.asdict(stream),
        "learners": {n: repr(p) for n, p in learner_presets.items()},
    }
    return Comparison(scenario, runs, config, time.perf_counter() - t0, learners)


def compare(
    scenario: str = "sine",
    *,
    strategies: tuple[str, ...] | None = None,
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
    """Meta-train the learners among ``strategies`` (resumable), then run ``strategies`` (default: every
    one that runs on the scenario) on the same stream and seed.

    :param meta_steps: override the preset's number of meta-updates (small = quick demo).
    :returns: ``{strategy: {experiences_seen: metric}}`` with MSE (sine) or accuracy (Omniglot).
    """
    overrides = {"meta.steps": str(meta_steps)} if meta_steps is not None else {}
    result = run_comparison(
        scenario,
        strategies=strategies,
        seeds=(seed,),
        scale=scale,
        overrides=overrides,
        stream=StreamConfig(num_classes=num_classes, lr=dict(lr or {})),
        meta_seed=seed,
        checkpoint_dir=checkpoint_dir,
        root=root,
        progress=progress,
        loggers_for=(lambda *_: list(loggers)) if loggers else None,
    )
    return {r.strategy: r.curve for r in result.runs}
