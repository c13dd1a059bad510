"""The SGD rate of each strategy on the class-incremental MNIST-family streams (issue #15).

The meta-learned learners that learn by SGD at deployment (OML's head, the complex synapse, gain modulation)
were meta-trained at one rate on Omniglot; Naive and EWC have the scenario's default. OML's own protocol
tunes the meta-test rate on validation trajectories (Javed & White 2019: swept over [0.3 ... 1e-5] on 5
validation trajectories). This sweeps each strategy's learning rate on the class-incremental stream of each
scenario at the validation seed (10000; ``--validation-seeds`` takes the mean over several streams), which
no reported run uses, in the online regime (one pass at batch size 1) or the standard one (``--regime
standard``: minibatches of 32, one epoch), and records each strategy's best rate and accuracy next to its
meta-trained (or default) rate. The best rates are what ``compare`` deploys on those streams
(``CLASS_ONLINE_LR``, ``CLASS_STANDARD_LR`` in ``avalanche_plasticity/catalog/mnist_family.py``; a test
checks that the two agree), so each learner is compared with Naive and EWC each at its own validated rate.

    AVP_DATA_DIR=../shared/data python benchmarks/deploy_lr.py --data-root ../shared/data

Writes ``benchmarks/results/deploy_lr.json`` (standard: ``deploy_lr_standard.json``): ``{"config",
"machine", "results": {"<scenario>": {"<strategy>": {"deployed_lr": lr, "accuracy": {"<lr>": acc},
"best_lr": lr, "best": acc, "validation_seeds": [...][, "runs": {"<lr>": [acc per stream]}][, "rejected":
{"<lr>": reason}]}}}}`` (final accuracy on the test images of all classes seen, the mean over the
validation streams; ``rejected``: rates the strategy refuses, e.g. past the complex synapse's stability
bound). Sections and strategies already in ``--out`` are kept unless re-run; each rate's runs are cached
under ``--work``, so a killed sweep resumes. ``--set KEY=VALUE`` sweeps a learner meta-trained under other
settings (e.g. ``ComplexSynapse.meta.steps=1600``, looked up in ``--checkpoint-dir``); its row records them
under ``"settings"``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import torch

from avalanche_plasticity import registry
from avalanche_plasticity.cli import add_set_option
from avalanche_plasticity.configs import OverrideError, StreamConfig, learner_overrides
from avalanche_plasticity.experiments import run_comparison, sgd_rates
from avalanche_plasticity.reporting import machine, write_results
from avalanche_plasticity.strategies.contrastive import UnstableLearningRateError

HERE = Path(__file__).resolve().parent
SCENARIOS = ("split_mnist", "permuted_mnist", "split_fashion_mnist")
STRATEGIES = ("Naive", "EWC", "OML", "ComplexSynapse", "GainModulation")
GRID = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)
LADDER = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
VALIDATION_SEED = 10000
# the online sections' sizes (standard_benchmarks: 1,000 images per experience, 500 on PermutedMNIST)
TRAIN_PER_EXPERIENCE = {"split_mnist": 1000, "permuted_mnist": 500, "split_fashion_mnist": 1000}
# the standard sections' sizes (every training image; PermutedMNIST 5,000 per experience)
STANDARD_TRAIN_PER_EXPERIENCE = {"split_mnist": None, "permuted_mnist": 5000, "split_fashion_mnist": None}
# a rate is judged by its final accuracy only, so each validation run is evaluated once, after its last
# experience (the same final as evaluating after every one, at a third of the cost on PermutedMNIST)
EXPERIENCES = {"split_mnist": 5, "permuted_mnist": 10, "split_fashion_mnist": 5}


def train_per_experience(regime: str) -> dict[str, int | None]:
    """Training images per experience of each scenario's validation stream in ``regime``."""
    return TRAIN_PER_EXPERIENCE if regime == "online" else STANDARD_TRAIN_PER_EXPERIENCE


def deployed_lr(scenario: str, strategy: str) -> float | None:
    """The rate ``strategy`` has on ``scenario`` without validation: the learner's meta-trained SGD rate
    (read from its preset's config) if its registry entry names one, else the scenario's default."""
    presets = registry.learner_presets(scenario, registry.scenario_spec(scenario).default_scale)
    configs = {n: SimpleNamespace(config=p.learner_config) for n, p in presets.items()}
    return sgd_rates(scenario, StreamConfig(), configs, validated_first=False).get(strategy)


def rates_past_the_end(end: float, direction: int, row: dict[str, float]) -> Iterator[float]:
    """The rates of ``LADDER`` past ``end``, an end of the grid, in ``direction`` (-1: lower, +1: higher)
    that the sweep also measures: one step past it always (a peak can lie just past a flat stretch, as gain
    modulation's does below 3e-4 on SplitMNIST), then on, as OML's own sweep reaches 1e-5, while the rate
    just measured is the best so far. ``row`` (rate -> accuracy) is read after each rate is yielded, so the
    caller measures it in between; a rate the strategy rejected is absent from ``row`` and ends the walk."""
    rate = end
    while rate in LADDER:
        i = LADDER.index(rate) + direction
        if not 0 <= i < len(LADDER):
            return
        rate = LADDER[i]
        yield rate
        if row.get(f"{rate:g}", -1.0) < max(row.values()):
            return


def measure(
    args: argparse.Namespace,
    scenario: str,
    strategy: str,
    lr: float,
    row: dict[str, float],
    rejected: dict[str, str],
    runs: dict[str, list[float]] | None = None,
) -> float | None:
    """Final accuracy of ``strategy`` at ``lr`` on the validation streams (the mean over
    ``args.validation_seeds``; each stream's in ``runs``), cached in ``row`` and on disk (one folder per
    rate, so a killed sweep resumes where it stopped); None, with the strategy's reason in ``rejected``,
    for a rate the strategy refuses (e.g. one at which the complex synapse's pull toward its anchors makes
    SGD diverge)."""
    if f"{lr:g}" in rejected:
        return None
    if f"{lr:g}" not in row:
        stream = StreamConfig(
            setting="class",
            regime=args.regime,
            train_per_experience=train_per_experience(args.regime)[scenario],
            lr={strategy: lr},
            eval_points=(EXPERIENCES[scenario],),
        )
        try:
            comparison = run_comparison(
                scenario,
                strategies=[strategy],
                seeds=list(args.validation_seeds),
                stream=stream,
                root=args.data_root,
                checkpoint_dir=args.checkpoint_dir,
                overrides=args.settings or None,
                run_cache=Path(args.work)
                / (scenario + ("" if args.regime == "online" else "_standard"))
                / f"lr{lr:g}",
                progress=False,
            )
        except UnstableLearningRateError as err:
            rejected[f"{lr:g}"] = str(err)
            print(f"{scenario} {strategy} lr {lr:g}: rejected ({err})", flush=True)
            return None
        finals = [r.final for r in comparison.by_strategy()[strategy]]
        row[f"{lr:g}"] = sum(finals) / len(finals)
        if runs is not None:
            runs[f"{lr:g}"] = finals
        print(f"{scenario} {strategy} lr {lr:g}: {row[f'{lr:g}']:.4f}", flush=True)
    return row[f"{lr:g}"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    p.add_argument("--grid", nargs="+", type=float, default=list(GRID))
    p.add_argument(
        "--regime",
        choices=("online", "standard"),
        default="online",
        help="online: one pass at batch size 1; standard: minibatches of 32, one epoch (default --out: "
        "results/deploy_lr_standard.json)",
    )
    p.add_argument("--data-root", default=None)
    p.add_argument("--checkpoint-dir", default=str(HERE / "checkpoints"))
    p.add_argument("--work", default=str(HERE / "work" / "deploy_lr"), help="per-run cache")
    p.add_argument("--out", default=None, help="default: results/deploy_lr.json (online)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--validation-seeds",
        type=int,
        nargs="+",
        default=[VALIDATION_SEED],
        help="validation streams; a rate's accuracy is their mean (one stream cannot resolve rates whose "
        "accuracies differ by less than the spread between streams)",
    )
    add_set_option(
        p,
        "change a learner's preset, as compare's --set does, e.g. ComplexSynapse.meta.steps=1600 (its "
        "checkpoint is looked up, or meta-trained, in --checkpoint-dir); recorded in each row",
    )
    args = p.parse_args(argv)
    try:
        args.settings = learner_overrides(args.overrides, args.scenarios)
    except OverrideError as err:
        p.error(str(err))
    if any(seed < VALIDATION_SEED for seed in args.validation_seeds):
        p.error(f"--validation-seeds: use seeds >= {VALIDATION_SEED} (the reported runs use 0 to 4)")
    for s in args.strategies:
        spec = registry.strategy_spec(s)
        if not spec.has_lr:
            p.error(f"--strategies: {s} has no SGD learning rate (its rule is meta-learned)")
    torch.set_num_threads(args.threads)
    suffix = "" if args.regime == "online" else f"_{args.regime}"
    out = Path(args.out or HERE / "results" / f"deploy_lr{suffix}.json")
    payload = json.loads(out.read_text()) if out.exists() else {}
    payload.setdefault("results", {})
    t0 = time.perf_counter()
    for scenario in args.scenarios:
        section = payload["results"].setdefault(scenario, {})
        for strategy in args.strategies:
            row: dict[str, float] = {}
            rejected: dict[str, str] = {}
            runs: dict[str, list[float]] = {}
            for lr in sorted(args.grid):
                measure(args, scenario, strategy, lr, row, rejected, runs)
            if not row:
                raise SystemExit(f"{scenario} {strategy}: every rate of the grid was rejected: {rejected}")
            for direction in (-1, 1):
                end = min(args.grid) if direction < 0 else max(args.grid)
                for rate in rates_past_the_end(end, direction, row):
                    measure(args, scenario, strategy, rate, row, rejected, runs)
            best = max(row, key=lambda k: (row[k], -float(k)))  # ties: the smaller rate
            section[strategy] = {
                "deployed_lr": deployed_lr(scenario, strategy),
                "accuracy": row,
                "best_lr": float(best),
                "best": row[best],
                **({"rejected": rejected} if rejected else {}),
                "validation_seeds": list(args.validation_seeds),
                **({"runs": runs} if len(args.validation_seeds) > 1 else {}),
                **({"settings": args.settings} if args.settings else {}),
            }
            print(f"{scenario} {strategy}: best lr {best} ({row[best]:.4f})", flush=True)
            payload["config"] = {
                "grid": args.grid,
                "extended": "one step past each end of the grid, then on while that end holds the best, "
                f"along {list(LADDER)}",
                "validation_seed": VALIDATION_SEED,
                "validation_seeds": list(args.validation_seeds),  # of the last invocation; per row too
                "setting": "class",
                "regime": args.regime,
                "train_per_experience": train_per_experience(args.regime),
                "metric": "final accuracy on the test images of all classes seen",
                "wall_seconds": time.perf_counter() - t0,
            }
            payload["machine"] = machine()
            write_results(payload, out)  # after every strategy: a killed sweep keeps what it measured
    return 0


if __name__ == "__main__":
    sys.exit(main())
