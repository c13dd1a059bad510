"""Scaling of distributed meta-training: 1 process with 1 thread against 2 torchrun processes with 1 thread
each, on the same total meta-batch (each of the 2 processes learns half of the episodes; the meta-gradients
are all-reduced with gloo).

Both runs draw every episode from its own seed (``MetaTrainConfig.episode_seeds``), so each of the 2
processes samples only its own episodes. As a check that this does not slow the baseline, 1 process is also
timed with the default single sampling stream (``1_one_stream``).

Episodes per second are timed on rank 0 between meta-update ``--warmup`` and the last one, so process
start-up, data loading and the first (slower) steps are left out. The settings run ``--repeats`` times,
interleaved; the speed of a setting is the median of its runs (this VM's speed varies by 10-20 % from run
to run), and ``scaling`` is the 2-process median over the 1-process median of the same settings.

    python benchmarks/distributed.py [--config omniglot|sine] [--steps 40] [--repeats 2]
    # -> benchmarks/results/distributed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from avalanche_plasticity.reporting import cpu_name

HERE = Path(__file__).resolve().parent

# Settings per config: (scenario, learner, scale, overrides). Compute must dominate communication:
# Omniglot-sized FLP episodes (conv trunk + 10-way 5-shot online learning) at the CPU preset, or sine
# episodes with a large meta-batch.
CONFIGS = {
    "omniglot": ("omniglot", "FLP", "cpu", {"meta_batch_size": "16"}),
    "sine": ("sine", "FLP", "quick", {"meta_batch_size": "64"}),
}
# (label, processes, episode_seeds): with one sampling stream every process must draw the whole
# meta-batch (about 13 % of a 2-process Omniglot step); with episode seeds, only its own share.
# "2_independent" (0 processes: see launch_independent) is the machine's own ceiling for 2 processes.
SETTINGS = (("1", 1, True), ("2", 2, True), ("1_one_stream", 1, False), ("2_independent", 0, True))


def worker(args: argparse.Namespace) -> None:
    """Run inside torchrun: meta-train ``args.steps`` steps and (rank 0) write the step times."""
    import torch

    from avalanche_plasticity.configs import configure
    from avalanche_plasticity.distributed import init_distributed, shutdown
    from avalanche_plasticity.experiments import build_learner, task_source
    from avalanche_plasticity.meta_learning import meta_train

    torch.set_num_threads(args.threads)
    scenario, name, scale, overrides = CONFIGS[args.config]
    settings = {**overrides, "steps": str(args.steps), "episode_seeds": str(args.episode_seeds)}
    if args.meta_batch_size is not None:
        settings["meta_batch_size"] = str(args.meta_batch_size)
    presets, _ = configure(scenario, scale, settings, learners=[name])
    preset = presets[name]
    world = init_distributed("cpu")
    try:
        learner = build_learner(preset, seed=0)
        source = task_source(scenario, preset, args.data_root)
        times: list[float] = []
        meta_train(
            learner,
            source,
            preset.meta,
            checkpoint=None,
            progress=False,
            world=world,
            on_step=lambda step, _: times.append(time.perf_counter()),
        )
        if world.is_main:
            Path(args.report).write_text(
                json.dumps(
                    {
                        "times": times,
                        "meta_batch_size": preset.meta.meta_batch_size,
                        "world_size": world.size,
                        "threads": torch.get_num_threads(),
                        "preset": repr(preset),
                    }
                )
            )
    finally:
        shutdown()


def _command(nproc: int, episode_seeds: bool, args: argparse.Namespace, report: Path) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd += [__file__, "--worker", "--config", args.config, "--steps", str(args.steps)]
    cmd += ["--threads", "1", "--report", str(report), "--episode-seeds", str(episode_seeds)]
    if args.data_root:
        cmd += ["--data-root", args.data_root]
    return cmd


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def launch(nproc: int, episode_seeds: bool, args: argparse.Namespace) -> dict:
    if nproc == 0:
        return launch_independent(args)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(_command(nproc, episode_seeds, args, report), env=ENV, check=True)
        return _rate(json.loads(report.read_text()), args)


def launch_independent(args: argparse.Namespace) -> dict:
    """The machine's ceiling: two 1-process runs side by side, each on half the meta-batch, with no
    communication at all; their summed rate is what 2 processes could reach with free communication."""
    total = int(CONFIGS[args.config][3]["meta_batch_size"])
    with tempfile.TemporaryDirectory() as tmp:
        reports = [Path(tmp) / f"report{i}.json" for i in range(2)]
        cmds = [[*_command(1, True, args, r), "--meta-batch-size", str(total // 2)] for r in reports]
        procs = [subprocess.Popen(c, env=ENV) for c in cmds]
        if any(p.wait() != 0 for p in procs):
            raise RuntimeError("an independent run failed")
        parts = [_rate(json.loads(r.read_text()), args) for r in reports]
    out = dict(parts[0])
    out["episodes_per_s"] = sum(x["episodes_per_s"] for x in parts)
    out["meta_batch_size"] = total
    return out


def _rate(data: dict, args: argparse.Namespace) -> dict:
    t = data["times"]
    timed = len(t) - 1 - args.warmup
    seconds = t[-1] - t[args.warmup]
    data["episodes_per_s"] = timed * data["meta_batch_size"] / seconds
    data["timed_steps"], data["timed_seconds"] = timed, seconds
    del data["times"]
    return data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--config", choices=sorted(CONFIGS), default=None, help="default: omniglot if its data exist"
    )
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=str(HERE / "results" / "distributed.json"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--report", default=None, help=argparse.SUPPRESS)
    p.add_argument("--episode-seeds", default="True", help=argparse.SUPPRESS)
    p.add_argument("--meta-batch-size", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    if args.config is None:
        from avalanche_plasticity.data import load_omniglot

        try:
            load_omniglot("background", root=args.data_root, image_size=28)
            args.config = "omniglot"
        except FileNotFoundError:
            args.config = "sine"
    import torch

    runs: dict[str, list[dict]] = {label: [] for label, _, _ in SETTINGS}
    load = [os.getloadavg()[0]]
    for r in range(args.repeats):
        for label, n, seeds in SETTINGS:
            res = launch(n, seeds, args)
            runs[label].append(res)
            load.append(os.getloadavg()[0])
            eps = res["episodes_per_s"]
            print(f"[{r + 1}/{args.repeats}] {label}: {n} process(es), {eps:.2f} episodes/s", flush=True)
    median = {label: statistics.median(x["episodes_per_s"] for x in rs) for label, rs in runs.items()}
    best = {label: max(x["episodes_per_s"] for x in rs) for label, rs in runs.items()}
    scenario, name, scale, overrides = CONFIGS[args.config]
    out = {
        "config": {
            "config": args.config,
            "scenario": scenario,
            "learner": name,
            "scale": scale,
            "overrides": overrides,
            "meta_batch_size_total": runs["1"][0]["meta_batch_size"],
            "steps": args.steps,
            "warmup_steps_not_timed": args.warmup,
            "repeats": args.repeats,
            "threads_per_process": 1,
            "backend": "gloo",
            "gradient_reduction": "one all_reduce (sum of loss-weighted meta-gradients) per meta-update",
            "sampling": "episodes_per_s '1' and '2': episode_seeds (each process draws only its own "
            "episodes); '1_one_stream': 1 process with the default single sampling stream",
            "episodes_per_s": "median over the repeats",
            "scaling": "median 2-process rate / median 1-process rate, same settings",
            "machine_ceiling": "two independent 1-process runs at once, half the meta-batch each, no "
            "communication: their summed rate / the 1-process rate (what this machine allows)",
            "preset": runs["1"][0]["preset"],
        },
        "machine": f"{cpu_name()}, {os.cpu_count()} CPU cores; python {platform.python_version()}, "
        f"torch {torch.__version__}",
        "load_average_1min_after_each_run": [round(x, 2) for x in load],
        "episodes_per_s": median,
        "episodes_per_s_best": best,
        "episodes_per_s_all_runs": {n: [x["episodes_per_s"] for x in rs] for n, rs in runs.items()},
        "scaling": median["2"] / median["1"],
        "scaling_vs_1_one_stream": median["2"] / median["1_one_stream"],
        "scaling_best_vs_best": best["2"] / best["1"],
        "machine_ceiling": median["2_independent"] / median["1"],
        "parallel_efficiency_vs_ceiling": median["2"] / median["2_independent"],
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(
        f"scaling 2 vs 1 process: {out['scaling']:.2f}x (machine ceiling {out['machine_ceiling']:.2f}x); "
        f"wrote {path}"
    )


if __name__ == "__main__":
    main()
