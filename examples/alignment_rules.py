"""The same Avalanche pipeline trained with several credit-assignment rules side by side.

Class-incremental SplitMNIST (5 experiences) with Naive, EWC or Replay; the only change between runs is
``AlignmentPlugin(rule)``. Avalanche's accuracy and forgetting metrics (on the test experiences seen so
far, after every experience) are reported beside the per-layer
alignment metrics (angle between B and Wᵀ, angle to the true gradient, ‖B‖/‖W‖), and each run can be logged
to Weights & Biases (offline unless an API key is set).

    python examples/alignment_rules.py --data-root ../shared/data [--rules backprop,fa,usf,sa,ia]
        [--strategy replay] [--train-subset 6000] [--wandb-mode offline]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
from avalanche.training import EWC, Naive
from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin

from avalanche_plasticity.alignment import available_rules
from avalanche_plasticity.alignment.models import conv_net
from avalanche_plasticity.scenarios import SplitMNIST
from avalanche_plasticity.strategies import AlignmentPlugin, alignment_metrics


def run(rule: str, args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(args.seed)
    bench = SplitMNIST(5, seed=args.seed, root=args.data_root, train_subset=args.train_subset)
    model = conv_net(args.depth, width=args.width)
    loggers = []
    if args.wandb_mode != "none":
        from avalanche_plasticity.wandb_logger import WandBLogger

        loggers.append(
            WandBLogger(
                project="avalanche-plasticity",
                group="alignment_rules",
                name=f"{args.strategy}-{rule}",
                config={"rule": rule, **vars(args)},
                mode=None if args.wandb_mode == "auto" else args.wandb_mode,
            )
        )
    evaluator = EvaluationPlugin(
        accuracy_metrics(stream=True), forgetting_metrics(stream=True), *alignment_metrics(), loggers=loggers
    )
    plugins = [AlignmentPlugin(rule, seed=args.seed)]
    extra = {}
    if args.strategy == "replay":
        plugins.append(ReplayPlugin(mem_size=500))
    cls = Naive
    if args.strategy == "ewc":
        cls, extra = EWC, {"ewc_lambda": 1000.0}
    strategy = cls(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=128,
        train_epochs=args.epochs,
        eval_mb_size=1000,
        evaluator=evaluator,
        plugins=plugins,
        **extra,
    )
    for i, exp in enumerate(bench.train_stream):
        strategy.train(exp)
        res = strategy.eval(bench.test_stream[: i + 1])  # experiences seen so far, so forgetting is measured
    for logger in loggers:
        logger.finish()
    angles = [v[1][-1] for k, v in evaluator.get_all_metrics().items() if k.startswith("WeightAngle")]
    grads = [v[1][-1] for k, v in evaluator.get_all_metrics().items() if k.startswith("GradientAngle")]
    return {
        "accuracy": float(res["Top1_Acc_Stream/eval_phase/test_stream"]),
        "forgetting": float(res["StreamForgetting/eval_phase/test_stream"]),
        "weight_angle": statistics.mean(angles) if angles else float("nan"),
        "gradient_angle": statistics.mean(grads) if grads else float("nan"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rules", default="backprop,fa,usf,sa,ia", help=f"any of {', '.join(available_rules())}")
    p.add_argument("--strategy", choices=["naive", "ewc", "replay"], default="replay")
    p.add_argument("--data-root", default=None, help="holds MNIST (default: $AVP_DATA_DIR)")
    p.add_argument("--train-subset", type=int, default=6000, help="training images used (all: 60000)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wandb-mode", choices=["none", "auto", "online", "offline", "disabled"], default="none")
    args = p.parse_args()
    rules = [r for r in args.rules.split(",") if r]
    unknown = sorted(set(rules) - set(available_rules()))
    if unknown:
        p.error(f"--rules: unknown {unknown}; available: {', '.join(available_rules())}")
    print(f"SplitMNIST, {args.strategy} + AlignmentPlugin(rule)")
    print("| rule | accuracy | forgetting | mean angle B vs Wᵀ | mean angle to true gradient |")
    print("|---|---|---|---|---|")
    for rule in rules:
        r = run(rule, args)
        print(
            f"| {rule} | {r['accuracy']:.3f} | {r['forgetting']:.3f} | {r['weight_angle']:.1f}° | "
            f"{r['gradient_angle']:.1f}° |",
            flush=True,
        )


if __name__ == "__main__":
    main()
