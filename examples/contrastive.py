"""Meta-train a complex-synapse learner with the contrastive rule, then let it learn a continual stream.

1. Meta-training: each task is a set of sine functions (the incremental-sine inputs ``[onehot(slot), z]``);
   the free phase learns the support set from ``phi = omega``, the nudged phases add +-beta times the query
   loss, and the meta-gradient is the finite difference of d_theta L_in (no backward pass through learning).
   The same network is meta-trained by unrolled backprop for comparison.
2. Deployment: the ``ComplexSynapse`` Avalanche strategy learns ``IncrementalSine`` online, one SGD step of
   its inner loss per minibatch, with ``EvaluationPlugin`` reporting the MSE after each function.

    OMP_NUM_THREADS=1 python examples/contrastive.py [--meta-steps 150]     (a few minutes on one core)
"""

from __future__ import annotations

import argparse
import time

import torch
from avalanche.training.plugins import EvaluationPlugin

from avalanche_plasticity.contrastive import (
    BilevelMetaTrainConfig,
    ComplexSynapseConfig,
    ComplexSynapseLearner,
    ContrastiveConfig,
    SolverConfig,
    few_shot_accuracy,
    meta_train_bilevel,
)
from avalanche_plasticity.metrics import mse_metrics
from avalanche_plasticity.scenarios import IncrementalSine
from avalanche_plasticity.strategies.contrastive import ComplexSynapse
from avalanche_plasticity.tasks import SineTaskSource


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--functions", type=int, default=5)
    p.add_argument("--meta-steps", type=int, default=150)
    p.add_argument("--meta-batch", type=int, default=4)
    p.add_argument("--inner-steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    k = args.functions
    source = SineTaskSource(
        functions_per_episode=k, batches_per_function=4, batch_size=8, query_per_function=16
    )
    inner = SolverConfig(lr=0.02, max_steps=args.inner_steps, tol=None)
    results = {}
    for estimator in ("contrastive", "unrolled"):
        learner = ComplexSynapseLearner(
            ComplexSynapseConfig(
                network={"kind": "mlp", "sizes": [k + 1, 64, 64, 1], "activation": "relu"},
                init_lambda=1e-3,
                inner_lr=0.05,
            )
        )
        before = sum(few_shot_accuracy(learner, source, 20, inner, seed=99)) / 20
        cfg = BilevelMetaTrainConfig(
            steps=args.meta_steps,
            meta_batch_size=args.meta_batch,
            estimator=estimator,
            lr=3e-3,
            contrastive=ContrastiveConfig(
                beta=0.05,
                variant="symmetric",
                free=inner,
                nudged=SolverConfig(lr=0.02, max_steps=args.inner_steps // 2, tol=None),
                on_nonconvergence="skip",  # a diverged nudged phase drops its task (counted)
            ),
            unrolled=inner,
        )
        t0 = time.perf_counter()
        meta_train_bilevel(learner, source, cfg)
        after = sum(few_shot_accuracy(learner, source, 20, inner, seed=99)) / 20
        print(
            f"{estimator:>11}: held-out query MSE {before:.3f} -> {after:.3f} "
            f"({time.perf_counter() - t0:.0f} s)"
        )
        results[estimator] = learner

    bm = IncrementalSine(num_functions=k, batches_per_function=40)
    strategy = ComplexSynapse(
        learner=results["contrastive"],
        train_mb_size=8,
        eval_mb_size=256,
        evaluator=EvaluationPlugin(*mse_metrics(stream=True), loggers=[]),
    )
    for exp in bm.train_stream:
        strategy.train(exp)
        mse = strategy.eval(bm.test_stream[: exp.current_experience + 1])["MSE_Stream/eval_phase/test_stream"]
        print(f"after function {exp.current_experience + 1}: MSE on functions seen {mse:.3f}")


if __name__ == "__main__":
    main()
