"""Command line ``avalanche-plasticity``.

::

    avalanche-plasticity compare                       # continual sine: FLP, OML, Naive, EWC, Replay
    avalanche-plasticity compare --scenario omniglot --seeds 0 1 2 --out results/omniglot   # + the rules
    avalanche-plasticity meta-train --scenario sine --learner FLP --set steps=500 --set lr.plasticity=1e-5
    avalanche-plasticity evaluate checkpoints/sine_FLP_quick_seed0.pt --seeds 0 1 2
    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 -m avalanche_plasticity.cli meta-train \\
        --scenario sine --learner FLP

Settings are the preset dataclasses (``--scale``), changed with ``--set key=value`` (repeatable; see
:func:`avalanche_plasticity.configs.apply_overrides`). Every long command resumes: meta-training from
its checkpoint, ``compare``/``evaluate`` from the runs already finished in ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import string
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from . import registry
from .alignment import available_rules
from .checkpoint import CheckpointError, UnwritableOutputError, check_writable, load_checkpoint
from .configs import (
    SCALES,
    OverrideError,
    StreamConfig,
    alignment_bases,
    apply_overrides,
    configure,
    default_scale,
    learner_names,
    parse_assignments,
    scenario_names,
    split_strategy,
    strategy_names,
)
from .experiments import (
    Comparison,
    RunResult,
    checkpoint_name,
    load_trained,
    meta_trained,
    run_comparison,
    sgd_rates,
)
from .reporting import (
    figures,
    have_matplotlib,
    plasticity_figure,
    plasticity_summary,
    write_outputs,
)

PROG = "avalanche-plasticity"
WANDB_MODES = ("online", "offline", "disabled")


class CommandError(Exception):
    """A failure to report as ``<prog>: error: <message>`` with exit status 2 (no traceback)."""


# ---------------------------------------------------------------------------------------------------
# W&B: one run per strategy x seed, plus one summary run per comparison, all in one group
# ---------------------------------------------------------------------------------------------------
class WandbRuns:
    """Creates and finishes the W&B runs of one command (a no-op when ``mode == "disabled"``)."""

    def __init__(self, mode: str | None, project: str, group: str, directory: Path) -> None:
        self.mode, self.project, self.group, self.dir = mode, project, group, directory
        self.open: list[Any] = []
        self.created = 0
        self.resolved_mode: str | None = None

    @property
    def enabled(self) -> bool:
        return self.mode != "disabled"

    def start(self, name: str, config: dict[str, Any], job_type: str) -> Any:
        from .wandb_logger import WandBLogger

        logger = WandBLogger(
            project=self.project,
            name=name,
            group=self.group,
            config=config,
            mode=self.mode,
            dir=self.dir,
            job_type=job_type,
        )
        self.resolved_mode = logger.mode
        self.open.append(logger)
        self.created += 1
        return logger

    def finish(self, logger: Any, exit_code: int | None = None) -> None:
        logger.finish(exit_code=exit_code)
        if logger in self.open:
            self.open.remove(logger)

    def close_all(self, exit_code: int | None = None) -> None:
        for logger in list(self.open):
            self.finish(logger, exit_code)

    # -- compare / evaluate hooks
    def loggers_for(self, strategy: str, seed: int, config: dict[str, Any]) -> list[Any]:
        if not self.enabled:
            return []
        return [self.start(f"{strategy}-seed{seed}", config, "compare")]

    def on_run(self, result: RunResult, loggers: list[Any], learner: Any, metric: str, unit: str) -> None:
        if not loggers:
            return
        logger = loggers[0]
        points = sorted(result.matrix)
        width = max(points) if points else 0
        logger.log_table(
            "forgetting_matrix",
            [f"{unit}_seen", *(f"exp{j}" for j in range(width))],
            [[p, *(result.matrix[p].get(j) for j in range(width))] for p in points],
        )
        logger.log_table(f"{metric}_curve", [f"{unit}_seen", metric], sorted(result.curve.items()))
        logger.log_summary({f"final_{metric}": result.final, "seconds": result.seconds})
        if learner is not None:
            logger.log_summary(plasticity_summary(learner))
            if have_matplotlib():
                fig = plasticity_figure(learner)
                if fig is not None:
                    logger.log_figure("plasticity", fig)
        self.finish(logger)

    def summary(self, comparison: Comparison, figs: dict[str, Any]) -> None:
        if not self.enabled:
            return
        logger = self.start(f"{self.group}-summary", comparison.config, "summary")
        points = comparison.points()
        key = f"final_{comparison.metric}"
        columns = ["strategy", *(f"{comparison.unit}_seen_{p}" for p in points), key, f"{key}_std", "seeds"]
        rows = []
        for name, s in comparison.summary().items():
            rows.append(
                [name, *(s["curve"][str(p)] for p in points), s[key], s[f"{key}_std"], len(comparison.seeds)]
            )
        logger.log_table("comparison", columns, rows)
        for stem, fig in figs.items():
            logger.log_figure(stem, fig)
        logger.log_summary({f"{name}/{key}": s[key] for name, s in comparison.summary().items()})
        self.finish(logger)


def default_group(kind: str) -> str:
    """``<kind>-<date>-<time>-<4 random characters>``: one W&B group per command invocation."""
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(4))
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{suffix}"


# ---------------------------------------------------------------------------------------------------
# Argument parsing
# ---------------------------------------------------------------------------------------------------
def _int_at_least(name: str, minimum: int):
    """An argparse type: an integer >= ``minimum``, or an error naming ``name``."""
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got {v}")
        return v

    return parse


def _positive_int(name: str):
    return _int_at_least(name, 1)


_seed = _int_at_least("a seed", 0)


def _strategy(text: str) -> str:
    """A compared strategy's name (see :func:`.configs.split_strategy`), as an argparse type."""
    try:
        split_strategy(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_set_option(p: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE`` (repeatable), read into ``args.overrides``; the benchmark scripts take it too."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def _common(p: argparse.ArgumentParser, *, wandb: bool = True, overrides: bool = True) -> None:
    if overrides:
        add_set_option(
            p,
            "change a preset setting: [LEARNER.][learner.|meta.|source.|stream.]FIELD[.ENTRY]=VALUE, "
            "e.g. steps=300, meta.lr.plasticity=1e-5 (repeatable; an unknown key lists the valid ones)",
        )
        p.add_argument(
            "--config",
            default=None,
            metavar="FILE",
            help='a JSON object of settings, e.g. {"steps": 300, "meta_batch_size": 4}, applied before --set',
        )
        p.add_argument("--show-config", action="store_true", help="print the resolved settings and exit")
    p.add_argument("--data-root", default=None, help="data root (default: $AVP_DATA_DIR or the user cache)")
    p.add_argument("--threads", type=_positive_int("--threads"), default=None, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    if wandb:
        g = p.add_argument_group("Weights & Biases")
        g.add_argument(
            "--wandb-mode",
            choices=WANDB_MODES,
            default=None,
            help="default: online if W&B credentials are available, else offline (or $WANDB_MODE)",
        )
        g.add_argument("--wandb-project", default="avalanche-plasticity")
        g.add_argument("--wandb-group", default=None, help="default: a generated name shared by the runs")


def _opt_in() -> list[str]:
    return [n for n, s in registry.strategies().items() if s.opt_in]


def _task_notes() -> str:
    """Which strategies run on one task type only, e.g. 'MetaPlasticityRule, FeedbackAlignment:
    classification scenarios only'."""
    by_tasks: dict[tuple[str, ...], list[str]] = {}
    for name, s in registry.strategies().items():
        if set(s.tasks) != set(registry.TASKS):
            by_tasks.setdefault(tuple(s.tasks), []).append(name)
    return "; ".join(f"{', '.join(names)}: {'/'.join(t)} scenarios only" for t, names in by_tasks.items())


def _default_scales() -> str:
    return ", ".join(f"{s.default_scale} for {n}" for n, s in registry.scenarios().items())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Meta-learned plasticity rules and their baselines as Avalanche strategies.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run '%(prog)s COMMAND --help' for a command's options. With no command: compare.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser(
        "compare",
        help="meta-train the learners and compare them with the baselines on one stream (the default "
        "command)",
        description="Meta-train the scenario's learners (or load their checkpoints), run the strategies "
        "on the same stream for every seed, log each strategy x seed as a W&B run, and write table.md, "
        "table.csv, results.json and plots to --out. Re-running resumes: finished runs in --out are "
        "reused.",
    )
    c.set_defaults(parser=c)
    scenarios = scenario_names()
    c.add_argument("--scenario", choices=scenarios, default=registry.default_scenario())
    c.add_argument(
        "--strategies",
        nargs="+",
        type=_strategy,
        default=None,
        metavar="STRATEGY",
        help=f"{', '.join(strategy_names())}, or a credit-assignment rule inside an SGD strategy: "
        f"<{'|'.join(alignment_bases())}>+<rule> with rule one of {', '.join(available_rules())}. "
        f"Default: every strategy of the first list that runs on the scenario's task, except the opt-in "
        f"ones ({', '.join(_opt_in()) or 'none'}). {_task_notes()}",
    )
    c.add_argument("--scale", choices=SCALES, default=None, help=f"presets (default: {_default_scales()})")
    c.add_argument(
        "--meta-steps",
        type=_positive_int("--meta-steps"),
        default=None,
        help="meta-updates of every meta-trained learner (default: the preset's; same as --set meta.steps=N)",
    )
    c.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="class-incremental scenarios: classes in the stream (50)",
    )
    c.add_argument("--seeds", nargs="+", type=_seed, default=None, help="stream seeds (default: 0)")
    c.add_argument("--seed", type=_seed, default=None, help="a single stream seed (same as --seeds SEED)")
    c.add_argument("--meta-seed", type=_seed, default=0, help="seed of the learners' meta-training")
    c.add_argument("--checkpoint-dir", default="checkpoints", help="meta-training checkpoints (reused)")
    c.add_argument(
        "--meta-jobs",
        type=_positive_int("--meta-jobs"),
        default=min(2, os.cpu_count() or 1),
        help="meta-train the learners side by side in this many processes of one thread (default: "
        "2 if there are 2 CPU cores)",
    )
    c.add_argument(
        "--meta-train",
        action="store_true",
        help="meta-train the learners (or reuse --checkpoint-dir) even where the package ships a learner "
        "meta-trained from the same preset (by default that one is loaded, its hash checked)",
    )
    c.add_argument("--out", default=None, help="output folder (default: results/compare/<scenario>)")
    c.add_argument("--no-resume", action="store_true", help="run every strategy again (ignore --out)")
    _common(c)

    m = sub.add_parser(
        "meta-train",
        help="meta-train one learner to a checkpoint (resumes; torchrun for several processes)",
        description="Meta-train a preset learner. An existing checkpoint is resumed (a finished one is "
        "just reported). Under torchrun the meta-batch is split across the processes and the "
        "meta-gradients all-reduced (gloo on CPU, nccl on GPU); only rank 0 writes.",
    )
    m.set_defaults(parser=m)
    m.add_argument("--scenario", choices=scenarios, default=registry.default_scenario())
    m.add_argument("--learner", choices=learner_names(), required=True, help=_task_notes())
    m.add_argument("--scale", choices=SCALES, default=None, help=f"default: {_default_scales()}")
    m.add_argument("--seed", type=_seed, default=0, help="seeds the initial weights and task sampling")
    m.add_argument("--checkpoint-dir", default="checkpoints")
    m.add_argument("--checkpoint", default=None, help="checkpoint file (default: named after the settings)")
    m.add_argument("--no-resume", action="store_true", help="start over, overwriting the checkpoint")
    m.add_argument(
        "--stop-after", type=_positive_int("--stop-after"), default=None, help="stop after this many steps"
    )
    m.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    _common(m)

    e = sub.add_parser(
        "evaluate",
        help="run a meta-trained checkpoint on a scenario's stream",
        description="Deploy a learner checkpoint on the scenario's evaluation stream for "
        "every seed and write table.md, table.csv, results.json and plots.",
    )
    e.set_defaults(parser=e)
    e.add_argument("checkpoint", help="a checkpoint written by meta-train or compare")
    e.add_argument(
        "--scenario", choices=scenarios, default=None, help="default: the checkpoint's (or from its task)"
    )
    e.add_argument("--seeds", nargs="+", type=_seed, default=[0])
    e.add_argument(
        "--num-classes", type=int, default=None, help="class-incremental scenarios: classes in the stream"
    )
    e.add_argument("--out", default=None, help="default: results/evaluate/<checkpoint name>")
    e.add_argument("--no-resume", action="store_true")
    _common(e)
    return p


# ---------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------
def _overrides(p: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """``--config FILE`` then ``--set`` items, as ``{key: text}``."""
    out: dict[str, str] = {}
    if args.config:
        try:
            data = json.loads(Path(args.config).read_text())
        except (OSError, ValueError) as err:
            p.error(f"--config {args.config}: {err}")
        if not isinstance(data, dict):
            p.error(f"--config {args.config}: expected a JSON object of settings, got {type(data).__name__}")
        out.update({str(k): v if isinstance(v, str) else str(v) for k, v in data.items()})
    try:
        out.update(parse_assignments(args.overrides))
    except OverrideError as err:
        p.error(f"--set: {err}")
    return out


def _show(presets_: dict[str, Any], stream: StreamConfig | None, scenario: str | None = None) -> None:
    for name, preset in presets_.items():
        print(f"{name}.learner: {preset.learner_config}")
        print(f"{name}.meta: {preset.meta}")
        print(f"{name}.source: {preset.source}")
    if stream is not None:
        print(f"stream: {stream}")
    if stream is not None and scenario is not None:  # what stream.lr leaves to validation and meta-training
        configs = {n: SimpleNamespace(config=p.learner_config) for n, p in presets_.items()}
        rates = sgd_rates(scenario, stream, configs)
        print(f"SGD rates (a strategy with an SGD rate not named here: 0.01): {rates}")


def _report(comparison: Comparison, out: Path, wandb: WandbRuns) -> None:
    figs = figures(comparison)
    written = write_outputs(comparison, out, figs)
    wandb.summary(comparison, figs)
    print(comparison.markdown())
    print(f"\n{comparison.seconds:.0f} s; wrote {', '.join(p.name for p in written)} to {out}")
    if not have_matplotlib():
        print("matplotlib is not installed: plots skipped (pip install matplotlib)")
    if wandb.created:
        mode = wandb.resolved_mode
        hint = f"; upload with: wandb sync {wandb.dir}/wandb/offline-run-*" if mode == "offline" else ""
        print(f"W&B: {wandb.created} {mode} runs in project {wandb.project!r}, group {wandb.group!r}{hint}")


def cmd_compare(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    overrides = _overrides(p, args)
    if args.meta_steps is not None:
        overrides["meta.steps"] = str(args.meta_steps)
    if args.seeds is not None and args.seed is not None:
        p.error("give --seeds or --seed, not both")
    seeds = list(dict.fromkeys(args.seeds if args.seeds is not None else [args.seed or 0]))
    stream = StreamConfig()
    _num_classes(p, args, args.scenario, overrides)
    scale = args.scale or default_scale(args.scenario)
    try:
        learner_presets, stream = configure(args.scenario, scale, overrides, stream=stream)
    except ValueError as err:  # OverrideError, or a scale that the scenario lacks
        p.error(str(err))
    if args.show_config:
        _show(learner_presets, stream, args.scenario)
        return 0
    out = check_writable(args.out or Path("results") / "compare" / args.scenario, what="--out folder")
    wandb = WandbRuns(args.wandb_mode, args.wandb_project, args.wandb_group or default_group("compare"), out)
    strategies = list(dict.fromkeys(args.strategies)) if args.strategies else None
    try:
        comparison = run_comparison(
            args.scenario,
            strategies=strategies,
            seeds=seeds,
            scale=scale,
            overrides=overrides,
            stream=stream,
            learner_presets=learner_presets,
            meta_seed=args.meta_seed,
            checkpoint_dir=args.checkpoint_dir,
            root=args.data_root,
            run_cache=out / "runs",
            resume=not args.no_resume,
            progress=not args.quiet,
            loggers_for=wandb.loggers_for,
            on_run=lambda r, lg, lr: wandb.on_run(r, lg, lr, *_metric_unit(args.scenario)),
            meta_jobs=args.meta_jobs,
            shipped=not args.meta_train,
        )
        _report(comparison, out, wandb)
    except BaseException:
        wandb.close_all(exit_code=1)
        raise
    return 0


def _metric_unit(scenario: str) -> tuple[str, str]:
    spec = registry.scenario_spec(scenario)
    return spec.metric, spec.unit


def _num_classes(
    p: argparse.ArgumentParser, args: argparse.Namespace, scenario: str, overrides: dict
) -> None:
    """``--num-classes N`` as ``stream.num_classes=N``, for the scenarios that read it."""
    if args.num_classes is None:
        return
    if "num_classes" not in registry.scenario_spec(scenario).stream_options:
        takes = [n for n, s in registry.scenarios().items() if "num_classes" in s.stream_options]
        p.error(f"--num-classes applies to the scenarios {', '.join(takes)} only, not {scenario}")
    overrides["stream.num_classes"] = str(args.num_classes)


def cmd_evaluate(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    from .presets import Preset

    overrides = _overrides(p, args)
    path = Path(args.checkpoint)
    try:
        ckpt = load_checkpoint(path)
        learner = load_trained(path)
        spec = registry.learner_spec_of(learner)
    except (FileNotFoundError, CheckpointError, ValueError) as err:
        p.error(str(err))
    meta = ckpt.get("metadata", {})
    task = learner.config.task
    scenario = args.scenario or meta.get("scenario")
    if scenario is None:  # the first registered scenario of the learner's task
        scenario = next(n for n, s in registry.scenarios().items() if s.task == task)
    if registry.scenario_spec(scenario).task != task:
        p.error(f"the checkpoint holds a {task} learner, which does not fit scenario {scenario}")
    _num_classes(p, args, scenario, overrides)
    name = spec.name
    preset = Preset(
        name, learner.config, spec.meta_config(ckpt.get("meta_config")), dict(meta.get("source", {}))
    )
    try:
        _, stream = apply_overrides({}, overrides, scenario=scenario, stream=StreamConfig())
    except OverrideError as err:
        p.error(str(err))
    if args.show_config:
        _show({name: preset}, stream)
        return 0
    out = check_writable(args.out or Path("results") / "evaluate" / path.stem, what="--out folder")
    wandb = WandbRuns(args.wandb_mode, args.wandb_project, args.wandb_group or default_group("evaluate"), out)
    try:
        comparison = run_comparison(
            scenario,
            strategies=[name],
            seeds=list(dict.fromkeys(args.seeds)),
            scale=meta.get("scale", "cpu"),
            overrides=overrides,
            stream=stream,
            learners={name: learner},
            learner_presets={name: preset},
            root=args.data_root,
            run_cache=out / "runs",
            resume=not args.no_resume,
            progress=not args.quiet,
            loggers_for=wandb.loggers_for,
            on_run=lambda r, lg, lr: wandb.on_run(r, lg, lr, *_metric_unit(scenario)),
        )
        comparison.config["checkpoint"] = str(path)
        _report(comparison, out, wandb)
    except BaseException:
        wandb.close_all(exit_code=1)
        raise
    return 0


def cmd_meta_train(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    from .distributed import init_distributed, shutdown

    overrides = _overrides(p, args)
    scale = args.scale or default_scale(args.scenario)
    try:
        presets_, _ = configure(args.scenario, scale, overrides, learners=[args.learner])
    except ValueError as err:
        p.error(str(err))
    preset = presets_[args.learner]
    preset.meta = dataclasses.replace(preset.meta, seed=args.seed)
    if args.show_config:
        _show(presets_, None)
        return 0
    default_path = Path(args.checkpoint_dir) / checkpoint_name(args.scenario, scale, preset, args.seed)
    path = Path(args.checkpoint) if args.checkpoint else default_path
    check_writable(path.parent, what="checkpoint folder")
    if registry.scenario_spec(args.scenario).data_backed:
        # Avalanche refuses to be imported in a non-main rank once the process group exists: import it first.
        import avalanche_plasticity.scenarios  # noqa: F401
    try:
        world = init_distributed(args.device)
    except ValueError as err:
        p.error(str(err))
    wandb = WandbRuns(
        args.wandb_mode, args.wandb_project, args.wandb_group or default_group("meta-train"), path.parent
    )
    logger = None
    try:
        if world.is_main and wandb.enabled:
            logger = wandb.start(
                f"meta-train-{args.scenario}-{args.learner}-seed{args.seed}",
                {
                    "scenario": args.scenario,
                    "learner": args.learner,
                    "scale": scale,
                    "seed": args.seed,
                    "learner_config": dataclasses.asdict(preset.learner_config),
                    "meta": dataclasses.asdict(preset.meta),
                    "source": preset.source,
                    "world_size": world.size,
                    "checkpoint": str(path),
                },
                "meta-train",
            )
        timing: dict[str, float] = {}

        def on_step(step: int, metrics: dict[str, float]) -> None:
            timing.setdefault("first", time.perf_counter())
            timing["last"], timing["steps"] = time.perf_counter(), timing.get("steps", 0) + 1
            if logger is not None:
                logger.log_single_metric("meta_loss", metrics["meta_loss"], step)

        t0 = time.perf_counter()
        learner = meta_trained(
            args.scenario,
            args.learner,
            scale=scale,
            preset=preset,
            checkpoint=path,
            root=args.data_root,
            progress=not args.quiet,
            seed=args.seed,
            stop_after=args.stop_after,
            resume=not args.no_resume,
            world=world,
            on_step=on_step,
            device=world.device,
        )
        seconds = time.perf_counter() - t0
        if world.is_main:
            ckpt = load_checkpoint(path)
            done, total = ckpt["step"], preset.meta.steps
            losses = [h["meta_loss"] for h in ckpt["history"][-10:]]
            loss = sum(losses) / len(losses) if losses else float("nan")
            eps = timing.get("steps", 0) * preset.meta.meta_batch_size / seconds if timing else 0.0
            state = "finished" if done >= total else "stopped"
            print(
                f"{args.learner} on {args.scenario}: {state} at step {done}/{total} "
                f"({world.size} process{'es' if world.size > 1 else ''}); meta-loss over the last "
                f"{len(losses)} steps {loss:.4f}; {seconds:.1f} s, {eps:.1f} episodes/s; checkpoint {path}"
            )
            if logger is not None:
                logger.log_summary({"step": done, "final_meta_loss": loss, "episodes_per_s": eps})
                logger.log_summary(plasticity_summary(learner))
                if have_matplotlib():
                    fig = plasticity_figure(learner)
                    if fig is not None:
                        logger.log_figure("plasticity", fig)
                wandb.finish(logger)
        shutdown(wait_for_all=True)  # every rank is done: leave together
    except BaseException:
        wandb.close_all(exit_code=1)
        raise
    finally:
        shutdown()
    return 0


COMMANDS = {"compare": cmd_compare, "meta-train": cmd_meta_train, "evaluate": cmd_evaluate}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``avalanche-plasticity`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not sys.warnoptions:  # Avalanche 0.6 warns about its own deprecated calls at every experience
        warnings.filterwarnings("ignore", category=DeprecationWarning)
    parser = build_parser()
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["compare", *argv]  # the default command
    args = parser.parse_args(argv)
    sub: argparse.ArgumentParser = args.parser
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return COMMANDS[args.command](args, sub)
    except (CheckpointError, FileNotFoundError, ValueError, CommandError, UnwritableOutputError) as err:
        sub.exit(2, f"{sub.prog}: error: {err}\n")
    finally:
        torch.set_num_threads(threads)  # main() may be called in-process (tests, notebooks)


if __name__ == "__main__":
    sys.exit(main())
