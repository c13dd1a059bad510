"""Discover a plasticity rule for fixed random feedback, read it, and deploy it in an Avalanche stream.

1. Meta-train the coefficients of the paper's ten-term pool (Shervani-Tabar & Rosenbaum 2023) on Omniglot
   episodes (background alphabets), with an L1 penalty so that few terms survive; checkpointed and
   resumable.
2. Read the rule: the coefficient trajectory (PNG), the final-rule table (CSV/markdown) and the formula,
   also logged to W&B (offline unless an API key is set) with ``--wandb``.
3. Deploy it on SplitMNIST beside online feedback alignment (the pseudo-gradient alone), with Avalanche's
   EvaluationPlugin and a ReplayPlugin.

    AVP_DATA_DIR=../shared/data python examples/plasticity_rules.py [--steps 60] [--wandb] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin

from avalanche_plasticity.meta_learning import MetaTrainConfig
from avalanche_plasticity.plasticity_rules import (
    PAPER_POOL,
    coefficient_history,
    meta_train_rule,
    omniglot_episodes,
    rule_formula,
    rule_learner,
    save_rule,
    save_rule_report,
)
from avalanche_plasticity.scenarios import SplitMNIST
from avalanche_plasticity.strategies.plasticity_rules import FeedbackAlignment, MetaPlasticityRule


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=60, help="meta-updates (4 episodes each)")
    p.add_argument("--l1", type=float, default=0.02)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default="runs/plasticity_rules")
    p.add_argument("--wandb", action="store_true", help="log the rule to W&B (offline without an API key)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)

    # 1. meta-train the rule on Omniglot episodes (5 classes, 15 online images each, 5 query)
    torch.manual_seed(0)
    episodes = omniglot_episodes(
        "background", ways=5, shots=15, query_shots=5, num_units=5, root=args.data_root
    )
    learner = rule_learner(
        PAPER_POOL,
        layer_sizes=(784, 170, 130, 100, 70, 5),
        input_shape=(1, 28, 28),
        coefficients={"pseudo_gradient": 0.03},
        l1=args.l1,
    )
    result = meta_train_rule(
        learner,
        episodes,
        MetaTrainConfig(steps=args.steps, meta_batch_size=4, default_lr=3e-3, checkpoint_every=10),
        checkpoint=out / "rule_checkpoint.pt",
    )
    save_rule(learner, out / "rule.pt")

    # 2. read it
    logger = None
    if args.wandb:
        from avalanche_plasticity.wandb_logger import WandBLogger

        logger = WandBLogger(group="plasticity_rules", dir=out)
    rule = learner.rule()
    save_rule_report(
        out, rule, coefficient_history(result.history, learner.config.terms), name="learned", logger=logger
    )
    print("learned rule:", rule_formula(rule))

    # 3. deploy on SplitMNIST (10 classes: same rule, new output layer)
    bm = SplitMNIST(5, seed=0, root=args.data_root, train_subset=2000)

    def evaluator() -> EvaluationPlugin:
        return EvaluationPlugin(accuracy_metrics(stream=True), loggers=[logger] if logger is not None else [])

    strategies = {
        "learned rule": MetaPlasticityRule(
            learner=learner, num_classes=10, plugins=[ReplayPlugin(mem_size=200)], evaluator=evaluator()
        ),
        "feedback alignment": FeedbackAlignment(
            num_classes=10,
            lr=rule["pseudo_gradient"],
            plugins=[ReplayPlugin(mem_size=200)],
            evaluator=evaluator(),
        ),
    }
    for name, strategy in strategies.items():
        for exp in bm.train_stream:
            strategy.train(exp)
        acc = strategy.eval(bm.test_stream)["Top1_Acc_Stream/eval_phase/test_stream"]
        print(f"{name}: SplitMNIST accuracy after all 5 experiences {acc:.3f}")
    if logger is not None:
        logger.finish()


if __name__ == "__main__":
    main()
