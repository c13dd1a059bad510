"""The standard continual-learning benchmarks (issue #15): every strategy of ``compare`` on SplitMNIST,
PermutedMNIST and Split Fashion-MNIST, class- and domain-incremental, online (one pass, batch size 1) and
standard (minibatches of 32), over several seeds (stream order and baseline init).

The meta-learned learners are meta-trained on Omniglot background classes only (the ``cpu`` presets;
checkpoints in ``--checkpoint-dir``, reused) and deployed on these streams with no meta-training on them;
heads are sized to the stream. Each section (``<scenario>/<setting>/<regime>``) is one
:func:`run_comparison`; finished runs are cached under ``--work`` so a killed run resumes.

    AVP_DATA_DIR=../shared/data python benchmarks/standard_benchmarks.py \\
        --sections split_mnist/class/online --strategies Naive EWC SI LwF Replay Joint --seeds 0 1 2 3 4

Writes ``benchmarks/results/standard_benchmarks.json``:
``{"config", "machine", "results": {"<scenario>/<setting>/<regime>": {"<strategy>": {"accuracy": {"mean",
"std", "runs"}, "forgetting": {...}, "bwt": {...}, "diverged_runs": int, "seconds": float}}}}``.
Accuracy is the fraction of the test images of all classes seen, after the last experience; forgetting is
the mean over experiences (but the last) of their best accuracy minus their final one; BWT the mean of
final minus just-learned accuracy (negative: forgetting). ``--long-stream`` records a run under
``long_stream`` (same layout; its settings under ``long_stream_config``), e.g. FLP over every training image
of SplitMNIST (60,000 online updates). ``python benchmarks/summarize.py --section standard_benchmarks``
prints the file as Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from avalanche_plasticity.cli import add_set_option
from avalanche_plasticity.configs import OverrideError, StreamConfig, default_strategies, learner_overrides
from avalanche_plasticity.experiments import run_comparison
from avalanche_plasticity.registry import scenario_spec
from avalanche_plasticity.reporting import machine, write_results

HERE = Path(__file__).resolve().parent
SCENARIOS = ("split_mnist", "permuted_mnist", "split_fashion_mnist")
SETTINGS = ("class", "domain")
REGIMES = ("online", "standard")
BASELINES = ("Naive", "EWC", "SI", "LwF", "Replay", "Joint")


def stats(values: list[float]) -> dict[str, Any]:
    """Mean and population std of the finite values, and every value (NaN: a diverged run)."""
    finite = [v for v in values if math.isfinite(v)]
    return {
        "mean": statistics.mean(finite) if finite else float("nan"),
        "std": statistics.pstdev(finite) if finite else float("nan"),
        "runs": values,
    }


def forgetting_and_bwt(matrix: dict[int, dict[int, float]]) -> tuple[float, float]:
    """From the accuracy matrix ``matrix[k][j]`` (experience j after training on k experiences, all
    experiences evaluated): mean forgetting (best minus final) and BWT (final minus just-learned) over
    the experiences before the last."""
    points = sorted(matrix)
    if len(points) < 2 or points != list(range(1, len(points) + 1)):
        return float("nan"), float("nan")
    last = matrix[points[-1]]
    old = range(len(points) - 1)
    forgetting = [max(matrix[k][j] for k in points if j in matrix[k]) - last[j] for j in old]
    bwt = [last[j] - matrix[j + 1][j] for j in old]
    return statistics.mean(forgetting), statistics.mean(bwt)


def section_results(comparison: Any) -> dict[str, Any]:
    """``{strategy: {accuracy, forgetting, bwt, diverged_runs, seconds, lr}}`` of one comparison."""
    out = {}
    for name, runs in comparison.by_strategy().items():
        finals = [r.final for r in runs]
        pairs = [forgetting_and_bwt(r.matrix) for r in runs]
        out[name] = {
            "accuracy": stats(finals),
            "forgetting": stats([p[0] for p in pairs]),
            "bwt": stats([p[1] for p in pairs]),
            "diverged_runs": sum(1 for v in finals if not math.isfinite(v)),
            "seconds": sum(r.seconds for r in runs),
            "lr": runs[0].config.get("lr"),  # the SGD rate it ran at (None: its rule is meta-learned)
        }
    return out


def step_overhead(root: str | None, steps: int = 2000, repeats: int = 3) -> dict[str, Any]:
    """Seconds per online FLP step through the Avalanche strategy (as ``compare`` builds it: evaluation
    metrics only) against ``PlasticModel.learn`` alone, on the first SplitMNIST experience with the
    ``cpu`` Omniglot FLP network (randomly initialised: the cost does not depend on the weights). Median of
    ``repeats`` interleaved timings; ``ratio`` is strategy over learn."""
    from avalanche_plasticity.configs import presets
    from avalanche_plasticity.experiments import build_learner, make_strategy
    from avalanche_plasticity.registry import learner_spec
    from avalanche_plasticity.scenarios.mnist import mnist_family_benchmark
    from avalanche_plasticity.strategies import PlasticModel

    bm = mnist_family_benchmark("mnist", "split", seed=0, root=root, train_per_experience=steps)
    exp = bm.train_stream[0]
    data = [exp.dataset[i] for i in range(len(exp.dataset))]
    xs = torch.stack([d[0] for d in data])
    ys = torch.tensor([int(d[1]) for d in data])
    learner = learner_spec("FLP").with_outputs(build_learner(presets("split_mnist", "cpu")["FLP"]), 10)
    learn_s, strategy_s = [], []
    for _ in range(repeats):
        model = PlasticModel(learner)
        t = time.perf_counter()
        for i in range(len(ys)):
            model.learn(xs[i : i + 1], ys[i : i + 1])
        learn_s.append((time.perf_counter() - t) / len(ys))
        strategy = make_strategy("FLP", learner=learner, task="classification", train_mb_size=1)
        t = time.perf_counter()
        strategy.train(exp)
        strategy_s.append((time.perf_counter() - t) / len(ys))
    learn, through = statistics.median(learn_s), statistics.median(strategy_s)
    return {"learn_ms": 1e3 * learn, "strategy_ms": 1e3 * through, "ratio": through / learn, "steps": len(ys)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    all_sections = [f"{s}/{t}/{r}" for s in SCENARIOS for t in SETTINGS for r in REGIMES]
    p.add_argument("--sections", nargs="+", default=all_sections, metavar="SCENARIO/SETTING/REGIME")
    p.add_argument(
        "--strategies", nargs="+", default=None, help="default: the defaults of compare + SI, LwF, Joint"
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--train-per-experience", type=int, default=None, help="default: every training image")
    p.add_argument("--epochs", type=int, default=1, help="the standard regime's passes per experience")
    p.add_argument("--mem-size", type=int, default=500, help="Replay's buffer (the issue's Replay (500))")
    p.add_argument("--data-root", default=None)
    p.add_argument("--checkpoint-dir", default=str(HERE / "checkpoints"))
    p.add_argument("--work", default=str(HERE / "work" / "standard_benchmarks"), help="per-run cache")
    p.add_argument("--out", default=str(HERE / "results" / "standard_benchmarks.json"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--step-overhead", action="store_true", help="measure only the online FLP step's overhead")
    p.add_argument(
        "--long-stream",
        action="store_true",
        help="record under the file's long_stream key (e.g. every training image: 60,000 online updates)",
    )
    add_set_option(
        p,
        "change a learner's preset, as compare's --set does, e.g. ComplexSynapse.meta.steps=1600 (its "
        "checkpoint is looked up, or meta-trained, in --checkpoint-dir); recorded in the section's config",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    for section in args.sections:
        scenario, setting, regime = (section.split("/") + ["", ""])[:3]
        if scenario not in SCENARIOS or setting not in SETTINGS or regime not in REGIMES:
            p.error(
                f"section {section!r}: expected SCENARIO/SETTING/REGIME, one of each of {SCENARIOS}, "
                f"{SETTINGS} and {REGIMES}"
            )
    try:
        args.settings = learner_overrides(args.overrides, sorted({s.split("/")[0] for s in args.sections}))
    except OverrideError as err:
        p.error(str(err))
    out = Path(args.out)
    payload = json.loads(out.read_text()) if out.exists() else {}
    key = "long_stream" if args.long_stream else "results"
    config_key = "long_stream_config" if args.long_stream else "config"
    payload.setdefault(key, {})
    if args.step_overhead:
        payload["step_overhead"] = {**step_overhead(args.data_root), "machine": machine()}
        write_results(payload, out)
        print(f"step_overhead: {payload['step_overhead']}")
        return 0
    for section in args.sections:
        scenario, setting, regime = section.split("/")
        strategies = args.strategies or [
            *default_strategies(scenario),
            *(b for b in BASELINES if b not in default_strategies(scenario)),
        ]
        stream = StreamConfig(
            setting=setting,
            regime=regime,
            epochs=args.epochs,
            train_per_experience=args.train_per_experience,
            mem_size=args.mem_size,
        )
        t0 = time.perf_counter()
        comparison = run_comparison(
            scenario,
            strategies=strategies,
            seeds=args.seeds,
            stream=stream,
            checkpoint_dir=args.checkpoint_dir,
            root=args.data_root,
            overrides=args.settings or None,
            run_cache=Path(args.work) / section.replace("/", "_"),
            progress=sys.stderr.isatty(),
        )
        payload[key][section] = {**payload[key].get(section, {}), **section_results(comparison)}
        earlier = payload.get(config_key, {}).get(section, {})
        settings = {k: v for k, v in vars(stream).items() if k != "lr"}
        # a re-run of some strategies keeps the record of the others (the same stream settings only;
        # a setting the earlier record lacks was added since, at its default)
        same_stream = all(earlier.get("stream", {}).get(k, v) == v for k, v in settings.items())
        kept = [n for n in earlier.get("strategies", []) if n not in strategies] if same_stream else []
        payload[config_key] = {
            **payload.get(config_key, {}),
            section: {
                "strategies": kept + strategies,
                "last_run_strategies": strategies,
                "seeds": args.seeds,
                "stream": settings,
                "unit": scenario_spec(scenario).unit,
                "wall_seconds": time.perf_counter() - t0,
                **({"settings": args.settings} if args.settings else {}),
            },
        }
        payload["machine"] = machine()
        write_results(payload, out)
        for name, r in payload[key][section].items():
            a = r["accuracy"]
            print(f"{section} {name}: accuracy {a['mean']:.3f} ± {a['std']:.3f} ({len(a['runs'])} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
