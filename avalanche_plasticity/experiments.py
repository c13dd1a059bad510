"""Glue shared by examples, benchmarks and the command line: presets with overrides, meta-training with
checkpoints, running strategies over a stream, and comparisons with their tables and plots.

Functional core: :func:`run_comparison` returns a :class:`Comparison` (plain data); :func:`write_outputs`
turns it into ``table.md``, ``table.csv``, ``results.json`` and plots. Logging (W&B) plugs in through
callbacks, see :mod:`avalanche_plasticity.cli`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from . import registry
from .checkpoint import check_writable, load_checkpoint, write_bytes_atomic
from .configs import (
    StreamConfig,
    configure,
    default_scale,
    default_strategies,
    presets,
    runs_on,
    split_strategy,
)
from .distributed import World
from .networks import baseline_model
from .presets import Preset
from .results import Comparison, RunResult

__all__ = [
    "Comparison",
    "RunResult",
    "baseline_model",
    "build_learner",
    "checkpoint_name",
    "compare",
    "load_trained",
    "make_strategy",
    "meta_trained",
    "run_comparison",
    "run_stream",
    "run_stream_matrix",
    "task_source",
]


def build_learner(preset: Preset, seed: int = 0) -> Any:
    """A freshly initialised learner of ``preset`` (its registered learner's ``build``)."""
    return registry.learner_spec(preset.learner).build(preset, seed)


def load_trained(path: str | Path) -> Any:
    """A meta-trained learner from its checkpoint, whichever registered kind it is.

    :raises CheckpointError: a corrupt file, or a kind no registered learner saves.
    """
    kind = load_checkpoint(path).get("kind")
    try:
        spec = registry.learner_spec_for_kind(kind)
    except ValueError as err:
        from .checkpoint import CheckpointError

        raise CheckpointError(f"{path}: {err}") from None
    return spec.load(path)


def task_source(scenario: str, preset: Preset, root: str | Path | None = None) -> Any:
    """The meta-training episode source of ``preset`` on ``scenario`` (from its registered factory)."""
    spec = registry.scenario_spec(registry.preset_scenario(scenario))
    factory = spec.meta_source()
    return factory(**preset.source, root=root) if spec.data_backed else factory(**preset.source)


# ---------------------------------------------------------------------------------------------------
# Meta-training with checkpoints
# ---------------------------------------------------------------------------------------------------
def _digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=repr).encode()).hexdigest()[:8]


def checkpoint_name(scenario: str, scale: str, preset: Preset, seed: int = 0) -> str:
    """``<scenario>_<learner>_<scale>[_steps<N>][_<hash>]_seed<seed>.pt``: the steps tag when the number of
    meta-updates differs from the preset's, the hash when any other setting does (so different settings
    never share a checkpoint, and the plain name is the preset's own run)."""
    scenario = registry.preset_scenario(scenario)  # a transfer scenario's learners meta-train on its source
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


def _saved_meta(spec: registry.LearnerSpec, ckpt: dict[str, Any], steps: int) -> dict[str, Any] | None:
    """A checkpoint's meta-training config as a dict, rebuilt through the learner's meta config class (fields
    added since at their defaults), ``steps`` replaced; None when it does not fit that class."""
    try:
        return dataclasses.asdict(spec.meta_config({**(ckpt.get("meta_config") or {}), "steps": steps}))
    except (TypeError, ValueError):
        return None


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
) -> Any:
    """Meta-train preset ``name`` on ``scenario`` (resuming from ``checkpoint_dir`` if a run was cut
    short) and return the learner. A finished checkpoint is simply loaded.

    :param scale: preset scale (default: the scenario's ``default_scale``, ``cpu`` for every built-in one).
    :param steps: override the preset's number of meta-updates (the checkpoint name then says so).
    :param preset: an already configured preset (e.g. with overrides) instead of the named one.
    :param checkpoint: the checkpoint file (default: ``checkpoint_dir/`` + :func:`checkpoint_name`).
    :param resume: False: start over even if a checkpoint exists (it is overwritten).
    :param world: processes sharing the meta-batch (see :func:`.meta_learning.meta_train`).
    """
    scale = scale or default_scale(scenario)
    scenario = registry.preset_scenario(scenario)  # a transfer scenario's learners meta-train on its source
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
    spec = registry.learner_spec(preset.learner)
    if resume and path.exists():
        ckpt = load_checkpoint(path)
        same = ckpt.get("learner_config") == dataclasses.asdict(preset.learner_config) and (
            _saved_meta(spec, ckpt, meta.steps) == dataclasses.asdict(meta)
        )
        if same and ckpt.get("step", 0) >= meta.steps:  # finished: load (a mismatch is reported below)
            return load_trained(path).to(device)
    if not spec.distributed and world is not None and world.size > 1:
        raise ValueError(f"{name} is meta-trained in one process; run it without torchrun")
    if spec.cpu_only and torch.device(device).type != "cpu":
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
    spec.meta_train(learner, source, meta, world=world, **common)  # resumes; returns at once when finished
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
    train_epochs: int = 1,
    eval_mb_size: int = 256,
    device: str = "cpu",
    plugins: list | None = None,
    loggers: list | None = None,
    seed: int = 0,
    num_classes: int | None = None,
    architecture: Any = None,
    settings: Mapping[str, Any] | None = None,
):
    """Build a registered strategy (:func:`.registry.strategies`), or ``"<base>+<rule>"`` (e.g.
    ``"Naive+sa"``: the SGD strategy ``base`` trained with ``AlignmentPlugin(rule)``; see
    :func:`.configs.split_strategy`), with a quiet evaluator reporting accuracy or MSE (plus loss), per
    experience and over the stream.

    :param learner: the meta-trained learner of a learner's strategy.
    :param learner_config: the architecture of the strategies that are not meta-trained.
    :param num_classes: the stream's classes (strategies that size their head: the plasticity rules).
    :param architecture: the learner config of the preset a strategy's ``architecture_from`` names
        (FeedbackAlignment: the plasticity rule's network; default: the paper's on 28x28 images).
    :param settings: further strategy settings (``si_lambda``, ``lwf_alpha``, ``lwf_temperature``; see
        :class:`.configs.StreamConfig`); ``ewc_lambda`` and ``mem_size`` join them unless they name them.
    :raises ValueError: an unknown strategy, or one that does not run on ``task``.
    """
    from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics, loss_metrics
    from avalanche.training.plugins import EvaluationPlugin

    from avalanche_plasticity.metrics import mse_metrics

    base, rule = split_strategy(name)
    spec = registry.strategy_spec(base)
    if rule is not None:  # the rule's feedback weights are drawn from the run's seed
        from avalanche_plasticity.strategies import AlignmentPlugin

        plugins = [*(plugins or []), AlignmentPlugin(rule, seed=seed)]
    if task not in spec.tasks:
        raise ValueError(
            f"strategy {base!r} runs on {' and '.join(spec.tasks)} streams; task must be one of "
            f"{spec.tasks}, got {task!r}"
        )
    if task == "regression":
        metrics = [*mse_metrics(experience=True, stream=True)]
    else:
        metrics = [accuracy_metrics(experience=True, stream=True), forgetting_metrics(stream=True)]
    with warnings.catch_warnings():  # a run without loggers is deliberate here (metrics are read back)
        warnings.filterwarnings("ignore", message="No loggers specified", category=UserWarning)
        evaluator = EvaluationPlugin(*metrics, loss_metrics(stream=True), loggers=loggers or [])
    common = dict(
        train_mb_size=train_mb_size,
        train_epochs=train_epochs,
        eval_mb_size=eval_mb_size,
        device=device,
        evaluator=evaluator,
        plugins=plugins,
    )
    ctx = registry.StrategyContext(
        learner=learner,
        learner_config=learner_config,
        task=task,
        lr=lr,
        seed=seed,
        common=common,
        num_classes=num_classes,
        architecture=architecture,
        settings={"ewc_lambda": ewc_lambda, "mem_size": mem_size, **(settings or {})},
    )
    return spec.make(ctx)


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
            curve[i + 1] = _stream_value(res, f"{metric}/eval_phase/test_stream")
            prefix = f"{exp_metric}/eval_phase/test_stream/"
            row = {}
            for key, value in res.items():
                if key.startswith(prefix) and "/Exp" in key:
                    row[int(key.rsplit("/Exp", 1)[1])] = float(value)
            matrix[i + 1] = dict(sorted(row.items()))
    bar.close()
    return curve, matrix


def _stream_value(results: Mapping[str, Any], key: str) -> float:
    """The stream metric ``key`` of an ``eval`` result; a benchmark whose samples carry task labels (e.g.
    Avalanche's ``nc_benchmark``) reports it per task (``<key>/Task000``): the mean over its tasks."""
    if key in results:
        return float(results[key])
    per_task = [float(v) for k, v in results.items() if k.startswith(key + "/Task")]
    if not per_task:
        raise KeyError(f"{key} not in the evaluation results {sorted(results)}")
    return sum(per_task) / len(per_task)


def run_stream(
    strategy: Any, benchmark: Any, eval_after: list[int] | None = None, metric: str = "Top1_Acc_Stream"
) -> dict[int, float]:
    """Train on the train stream one experience at a time; after the experiences counted in
    ``eval_after`` (default: every one), evaluate on the test experiences seen so far.

    :returns: ``{experiences_seen: value of <metric>/eval_phase/test_stream}``.
    """
    return run_stream_matrix(strategy, benchmark, eval_after, metric)[0]


def learner_digest(learner: Any) -> str:
    """A short hash of a learner's weights (its ``state_dict``), e.g. to key cached runs."""
    h = hashlib.sha1()
    for k, v in learner.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def _stream_settings(
    scenario: str, stream: StreamConfig, learner_config: Any, source: Mapping[str, Any]
) -> dict[str, Any]:
    """The evaluation benchmark's arguments (its shape follows the learner's meta-training episodes)."""
    return registry.scenario_spec(scenario).stream_settings(stream, learner_config, source)


def sgd_rates(
    scenario: str, stream: StreamConfig, learners: Mapping[str, Any], *, validated_first: bool = True
) -> dict[str, float]:
    """The SGD rate of each strategy on ``stream`` (strategies not named: 0.01): ``stream.lr``, else the
    scenario's rates picked on validation for that kind of stream (``ScenarioSpec.validated_lr``; skipped
    with ``validated_first=False``), else a meta-trained learner's own rate (``deploy_lr``, read from
    ``learners[name].config``), else the scenario's default."""
    spec = registry.scenario_spec(scenario)
    validated = spec.validated_lr(stream) if validated_first else {}
    lr = {**spec.default_lr, **validated, **stream.lr}
    for n, learner in learners.items():  # deployed with the SGD lr they were meta-trained for
        deploy_lr = registry.learner_spec(n).deploy_lr if n in registry.learners() else None
        if deploy_lr is not None and n not in stream.lr and n not in validated:
            lr[n] = deploy_lr(learner)
    return dict(lr)


def run_comparison(
    scenario: str | None = None,
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
    shipped: bool = True,
    benchmark: Any = None,
) -> Comparison:
    """Meta-train the learners among ``strategies`` (FLP, OML and, on Omniglot, the plasticity rule;
    resumable checkpoints), then run ``strategies`` on the same stream for every seed in ``seeds``.

    :param strategies: default: every strategy that runs on the scenario (:func:`default_strategies`);
        MetaPlasticityRule and FeedbackAlignment need a classification stream. ``"<base>+<rule>"``
        (e.g. ``"Naive+sa"``) adds an SGD strategy trained with a credit-assignment rule
        (:func:`.configs.split_strategy`).
    :param scale: preset scale (default: the scenario's ``default_scale``, ``cpu`` for every built-in one).
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
    :param shipped: deploy the learners shipped with the package (:mod:`.pretrained`) whose preset matches
        (same config digest, meta seed 0) instead of meta-training them; False: meta-train.
    :param benchmark: any Avalanche benchmark (e.g. one built with ``nc_benchmark``) to run instead of the
        scenario's own stream, the same for every seed (the seeds then vary data order and the baselines'
        init). ``scenario`` (default :func:`.registry.benchmark_scenario`, SplitMNIST's: the learners
        meta-trained on Omniglot at 28x28) gives the presets and settings; heads are sized to the benchmark's
        classes. Its runs are not cached.
    :raises ValueError: the benchmark's inputs do not have the learners' input shape (naming both), before
        any meta-training or training.
    """
    t0 = time.perf_counter()
    if benchmark is not None and scenario is None:
        scenario = registry.benchmark_scenario()
    scenario = scenario or registry.default_scenario()
    spec = registry.scenario_spec(scenario)
    scale = scale or spec.default_scale
    strategies = default_strategies(scenario, scale) if strategies is None else tuple(strategies)
    for s in strategies:
        split_strategy(s)  # raises for an unknown strategy, base or rule
    misplaced = [s for s in strategies if not runs_on(s, scenario)]
    if misplaced:
        raise ValueError(
            f"strategies {misplaced} do not run on {spec.task} streams; on {scenario!r} choose from "
            f"{default_strategies(scenario)}"
        )
    if not seeds:
        raise ValueError("seeds must not be empty")
    scale = scale or spec.default_scale
    if learner_presets is None:
        learner_presets, stream = configure(scenario, scale, overrides, stream=stream or StreamConfig())
    stream = stream or StreamConfig()
    learners = dict(learners or {})
    entries = {n: registry.strategy_spec(split_strategy(n)[0]) for n in strategies}
    missing = [
        n for n in strategies if entries[n].meta_learned and n not in learner_presets and n not in learners
    ]
    if missing:
        raise ValueError(f"{missing} have no preset at scale {scale!r} on {scenario!r}; use another scale")
    if not learner_presets:
        raise ValueError(f"no learner has a preset at scale {scale!r} on {scenario!r}")
    # The reference learner (the first registered one with a preset here) gives the architecture and the
    # episodes of the strategies that are not meta-trained.
    ref_name = next(iter(learner_presets))
    ref = learner_presets[ref_name]
    arch = ref.learner_config

    def architecture_of(name: str) -> Any:
        own = entries[name].architecture_from
        return learner_presets[own].learner_config if own in learner_presets else None

    # One stream for all: the strategies run must see the same functions and minibatches, or images; the
    # strategies that are not meta-trained follow the reference learner's episodes.
    shown = {n: learner_presets[n] for n in strategies if n in learner_presets}
    if any(n not in learner_presets for n in strategies):
        shown.setdefault(ref_name, ref)
    shapes = {n: _stream_settings(scenario, stream, p.learner_config, p.source) for n, p in shown.items()}
    if len({json.dumps(v, sort_keys=True) for v in shapes.values()}) > 1:
        raise ValueError(
            f"the strategies would run on different {scenario} streams {shapes}; set {spec.stream_fix}"
        )
    user_classes = None
    if benchmark is not None:  # before any work: its inputs must fit the learners
        user_classes = _check_benchmark(benchmark, build_learner(ref, 0).input_shape, spec.task)
        run_cache = None
    todo = [n for n in learner_presets if n in strategies and n not in learners]
    used: dict[str, str] = {}
    if shipped:  # a learner shipped for exactly this preset is loaded (hash checked), not meta-trained
        from .pretrained import shipped_learner

        for n in list(todo):
            found = shipped_learner(registry.preset_scenario(scenario), scale, learner_presets[n], meta_seed)
            if found is not None:
                learners[n], used[n] = found
                print(f"using {used[n]}", flush=True)
                todo.remove(n)
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
    if unfinished:  # before any work: meta-training will write checkpoints there
        check_writable(checkpoint_dir, what=f"checkpoint folder (to meta-train {', '.join(unfinished)})")
    if run_cache is not None:
        check_writable(run_cache, what="run cache folder")
    if meta_jobs > 1 and len(unfinished) > 1:
        meta_train_parallel([jobs[n] for n in unfinished], meta_jobs)
    for n in todo:  # loads the checkpoints finished above, or meta-trains here
        learners[n] = meta_trained(**jobs[n])
    head = spec.num_classes(stream) if spec.num_classes is not None else stream.num_classes
    head = user_classes if user_classes is not None else head
    if (
        spec.size_heads or benchmark is not None
    ) and spec.task == "classification":  # transfer: heads sized to the stream's classes
        for n, learner in learners.items():
            entry = registry.learner_spec(n)
            if entry.resize_config is not None:
                learners[n] = entry.with_outputs(learner, head)
        resize = registry.learner_spec(ref_name).resize_config
        arch = resize(arch, head) if resize is not None else arch
    lr = sgd_rates(scenario, stream, learners)
    # the strategies' own settings, each run recording those its strategy reads; a None penalty or buffer
    # is the scenario's
    strategy_settings = {k: getattr(stream, k) for k in ("lwf_alpha", "lwf_temperature", "ewc_mode")}
    for k in ("ewc_lambda", "si_lambda", "mem_size"):
        strategy_settings[k] = getattr(spec, k) if getattr(stream, k) is None else getattr(stream, k)
    strategy_settings["readout"] = spec.readout(stream) if stream.readout is None else stream.readout
    layer = stream.prototype_layer
    strategy_settings["prototype_layer"] = spec.prototype_layer if layer is None else layer
    task, metric = spec.task, spec.metric_key
    mb = spec.train_mb_size(stream, ref.source)
    epochs = spec.train_epochs(stream)
    marks = spec.eval_points(stream)
    cache = Path(run_cache) if run_cache is not None else None
    runs: list[RunResult] = []
    jobs = [(name, seed) for seed in seeds for name in strategies]
    outer = tqdm(total=len(jobs), desc="compare", disable=not progress, dynamic_ncols=True)
    for name, seed in jobs:
        base, rule_name = split_strategy(name)
        learner = learners.get(name)
        source = learner_presets[name].source if name in learner_presets else ref.source
        settings = _stream_settings(scenario, stream, learner.config if learner is not None else arch, source)
        if benchmark is not None:
            settings = _benchmark_description(benchmark, user_classes)
        cfg: dict[str, Any] = {
            "scenario": scenario,
            "strategy": name,
            "seed": seed,
            "scale": scale,
            "stream": settings,
            "lr": lr.get(name, lr.get(base)) if entries[name].has_lr else None,
            # ewc_lambda and mem_size always have a key (None when unread), as in earlier run caches
            "ewc_lambda": None,
            "mem_size": None,
            **{k: strategy_settings[k] for k in entries[name].settings},
            "train_mb_size": mb,
            "train_epochs": epochs,
            "eval_points": list(marks) if marks else None,
        }
        if rule_name is not None:  # only then, so the other runs' cached fingerprints stay valid
            cfg["alignment_rule"] = rule_name
        # a fixed strategy (a StrategySpec's revision; learners have none): its runs cached before the fix
        if getattr(entries[name], "revision", 0):  # run again
            cfg["revision"] = entries[name].revision
        if learner is not None:
            cfg["meta_seed"] = meta_seed
            cfg["learner"] = {"kind": type(learner).__name__, **dataclasses.asdict(learner.config)}
            if name in learner_presets:
                cfg["meta"] = dataclasses.asdict(learner_presets[name].meta)
                cfg["source"] = dict(learner_presets[name].source)
        else:
            cfg["architecture"] = dataclasses.asdict(architecture_of(name) or arch)
        fingerprint = _digest({**cfg, "weights": learner_digest(learner) if learner is not None else None})
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
        bm = benchmark if benchmark is not None else spec.make_stream(settings, seed, root)
        s = make_strategy(
            name,
            learner=learner,
            learner_config=arch,
            task=task,
            lr=lr.get(name, lr.get(base)),
            settings=strategy_settings,
            train_mb_size=mb,
            seed=seed,
            loggers=loggers,
            train_epochs=epochs,
            num_classes=head if task == "classification" else None,
            architecture=architecture_of(name),
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
        **({"shipped": used} if used else {}),
    }
    return Comparison(
        scenario,
        runs,
        config,
        time.perf_counter() - t0,
        learners,
        metric=spec.metric,
        title=spec.title,
        unit=spec.unit,
        lower_is_better=spec.lower_is_better,
    )


def _check_benchmark(benchmark: Any, input_shape: Sequence[int], task: str) -> int | None:
    """The number of classes of a user's benchmark (classification), after checking that it has a train and
    a test stream and that its inputs have ``input_shape``.

    :raises ValueError: naming the benchmark's input shape and the learners'.
    """
    train = getattr(benchmark, "train_stream", None)
    test = getattr(benchmark, "test_stream", None)
    if train is None or test is None or len(train) == 0:
        raise ValueError(
            f"benchmark must be an Avalanche benchmark with a non-empty train_stream and a test_stream, got "
            f"{type(benchmark).__name__}"
        )
    x = train[0].dataset[0][0]
    shape = tuple(getattr(x, "shape", ()))
    if shape != tuple(input_shape):
        raise ValueError(
            f"benchmark inputs have shape {shape} but the learners read inputs of shape "
            f"{tuple(input_shape)}; resize the benchmark's inputs (e.g. a transform) or choose a scenario "
            "whose presets fit"
        )
    if task != "classification":
        return None
    classes = getattr(benchmark, "n_classes", None)
    if classes is None:
        seen = [c for exp in train for c in exp.classes_in_this_experience]
        classes = max(seen) + 1
    return int(classes)


def _benchmark_description(benchmark: Any, classes: int | None) -> dict[str, Any]:
    """What a run records about a user's benchmark."""
    return {
        "benchmark": type(benchmark).__name__,
        "classes": classes,
        "experiences": len(benchmark.train_stream),
    }


def compare(
    scenario: str | None = None,
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
    benchmark: Any = None,
) -> dict[str, dict[int, float]]:
    """Meta-train the learners among ``strategies`` (resumable), then run ``strategies`` (default: every
    one that runs on the scenario) on the same stream and seed.

    :param meta_steps: override the preset's number of meta-updates (small = quick demo).
    :param benchmark: an Avalanche benchmark to run instead of the scenario's stream (see
        :func:`run_comparison`).
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
        benchmark=benchmark,
    )
    return {r.strategy: r.curve for r in result.runs}
