"""Speed of the complex synapse's online learning: its regulariser's gradient in closed form or by autograd.

The complex synapse's inner loss is ``L_task + sum_i lambda_i (phi_i - omega_i)^2`` over every synapse
(634,640 numbers for the Omniglot ``cpu`` network with its 1000-unit head). Its gradient,
``2 lambda_i (phi_i - omega_i)``, is known in closed form; back-propagating through the sum at every online
step costs more than the network's own backward pass at batch size 1. Both paths compute the same
function (``tests/test_contrastive_learners.py`` checks the meta-gradients agree in float64). Measured in
one process, alternating the two paths:

- ``meta_gradient``: one meta-gradient of the Omniglot ``cpu`` preset (``estimator="online"``: back-
  propagation through one online SGD pass at batch size 1 over 4 class-incremental streams of two 10-way
  5-shot tasks, the query on all 20 classes; 400 online steps), the closed-form pull steps against autograd
  through ``L_in`` at every step;
- ``deployment_step``: one online SGD step of the deployed learner (``FastWeightModel``, 1 image), the
  pull added to the gradient after the backward pass (as ``ComplexSynapse.backward`` does) against the
  learner's regulariser in the loss (as the strategy did before); and the strategy's own step through
  Avalanche's template (``ComplexSynapse``, ``train_mb_size=1``) for reference.

    python benchmarks/bilevel_speed.py [--repeats 3] [--steps 300]

Writes ``benchmarks/results/bilevel_speed.json`` (seconds are medians over ``--repeats``; ``speedup`` is
autograd over closed form). Inputs are random 28x28 images: the timings do not depend on the pixels.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from avalanche_plasticity import registry
from avalanche_plasticity.contrastive.estimators import online_meta_gradient, tasks_from_episodes
from avalanche_plasticity.contrastive.learners import load_bilevel_learner
from avalanche_plasticity.reporting import machine, write_results
from avalanche_plasticity.strategies.contrastive import ComplexSynapse, FastWeightModel
from avalanche_plasticity.strategies.online import OnlineLearnerTemplate, resolve_learner

HERE = Path(__file__).resolve().parent


class AutogradOnly:
    """The learner without its pulls: the online estimator differentiates ``inner_loss`` at every step."""

    def __init__(self, learner: Any) -> None:
        self._learner = learner

    def __getattr__(self, name: str) -> Any:
        if name in ("regulariser_pulls", "support_loss"):
            raise AttributeError(name)
        return getattr(self._learner, name)


def episodes(data_root: str | None, seed: int) -> Any:
    """One meta-batch of the preset's class-incremental Omniglot streams, or random streams of the same
    shapes when the data is absent."""
    preset = registry.learner_presets("omniglot", "cpu")["ComplexSynapse"]
    try:
        from avalanche_plasticity.experiments import task_source

        random.seed(seed)  # learn2learn's transforms draw from Python's random
        source = task_source("omniglot", preset, data_root)
        batch = source.sample(preset.meta.meta_batch_size, torch.Generator().manual_seed(seed))
        return tasks_from_episodes(batch), "omniglot background"
    except (FileNotFoundError, RuntimeError, OSError):
        from avalanche_plasticity.contrastive import Task

        g = torch.Generator().manual_seed(seed)
        tasks = [
            Task(
                torch.rand(100, 1, 28, 28, generator=g),
                torch.randint(0, 1000, (100,), generator=g),
                torch.rand(100, 1, 28, 28, generator=g),
                torch.randint(0, 1000, (100,), generator=g),
            )
            for _ in range(preset.meta.meta_batch_size)
        ]
        return tasks, "random images (Omniglot absent)"


def time_meta_gradient(learner: Any, tasks: list, lr: float, repeats: int) -> dict[str, Any]:
    seconds: dict[str, list[float]] = {"closed_form": [], "autograd": []}
    online_meta_gradient(learner, tasks[:1], lr)  # warm-up
    for _ in range(repeats):
        for name, view in (("closed_form", learner), ("autograd", AutogradOnly(learner))):
            t = time.perf_counter()
            online_meta_gradient(view, tasks, lr)
            seconds[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in seconds.items()}
    steps = sum(len(t.support_y) for t in tasks)
    return {
        "online_steps": steps,
        "seconds": med,
        "runs": seconds,
        "speedup": med["autograd"] / med["closed_form"],
    }


def time_deployment(learner: Any, steps: int, repeats: int, lr: float) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(steps, 1, 28, 28, generator=g), torch.randint(0, 10, (steps,), generator=g)

    def run(closed_form: bool) -> float:
        model = FastWeightModel(learner)
        opt = torch.optim.SGD(model.fast.parameters(), lr=lr)
        t = time.perf_counter()
        for i in range(steps):
            opt.zero_grad()
            loss = F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
            if closed_form:
                loss.backward()
                model.add_regulariser_gradient()
            else:  # as the strategy did before: the learner's regulariser in the loss
                (loss + learner.regulariser(model.fast_weights(), learner.theta())).backward()
            opt.step()
        return (time.perf_counter() - t) / steps * 1e3

    run(True)  # warm-up
    ms: dict[str, list[float]] = {"closed_form": [], "autograd": []}
    for _ in range(repeats):
        ms["autograd"].append(run(False))
        ms["closed_form"].append(run(True))
    med = {k: statistics.median(v) for k, v in ms.items()}

    from avalanche.benchmarks.scenarios import benchmark_from_datasets
    from avalanche.training.plugins import EvaluationPlugin

    from avalanche_plasticity.scenarios.datasets import tensor_dataset

    data = tensor_dataset(x, y)
    bm = benchmark_from_datasets(train=[data], test=[data])
    strategy_ms: dict[str, list[float]] = {"closed_form": [], "autograd": []}
    for _ in range(repeats):
        for name, cls in (("autograd", AutogradComplexSynapse), ("closed_form", ComplexSynapse)):
            strategy = cls(learner=learner, lr=lr, train_mb_size=1, evaluator=EvaluationPlugin(loggers=[]))
            t = time.perf_counter()
            strategy.train(bm.train_stream[0])
            strategy_ms[name].append((time.perf_counter() - t) / steps * 1e3)
    strategy_med = {k: statistics.median(v) for k, v in strategy_ms.items()}
    return {
        "steps": steps,
        "ms_per_step": med,
        "runs": ms,
        "speedup": med["autograd"] / med["closed_form"],
        "strategy_ms_per_step": strategy_med,
        "strategy_speedup": strategy_med["autograd"] / strategy_med["closed_form"],
    }


class AutogradComplexSynapse(ComplexSynapse):
    """The strategy as it was before: the learner's regulariser in the loss, back-propagated."""

    def criterion(self):
        loss = OnlineLearnerTemplate.criterion(self)  # the task loss (not the bilevel strategies' own)
        if self.is_training:
            loss = loss + self.model.learner.regulariser(
                self.model.fast_weights(), self.model.learner.theta()
            )
        return loss

    def backward(self):
        OnlineLearnerTemplate.backward(self)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=300, help="online deployment steps per timing")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=str(HERE / "results" / "bilevel_speed.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    learner = resolve_learner("pretrained:omniglot", "ComplexSynapseLearner", load=load_bilevel_learner)
    preset = registry.learner_presets("omniglot", "cpu")["ComplexSynapse"]
    tasks, data = episodes(args.data_root, seed=0)
    for w in learner.meta_parameters().values():  # the shipped file is frozen; meta-train it here
        w.requires_grad_(True)
    meta = time_meta_gradient(learner, tasks, preset.learner_config.inner_lr, args.repeats)
    for w in learner.meta_parameters().values():
        w.requires_grad_(False)
    print(
        f"meta-gradient ({meta['online_steps']} online steps): closed form "
        f"{meta['seconds']['closed_form']:.2f} s, autograd {meta['seconds']['autograd']:.2f} s, "
        f"x{meta['speedup']:.2f}"
    )
    deploy = time_deployment(learner, args.steps, args.repeats, lr=1e-4)
    print(
        f"deployment step: closed form {deploy['ms_per_step']['closed_form']:.2f} ms, autograd "
        f"{deploy['ms_per_step']['autograd']:.2f} ms, x{deploy['speedup']:.2f}; through the strategy "
        f"{deploy['strategy_ms_per_step']['closed_form']:.2f} ms against "
        f"{deploy['strategy_ms_per_step']['autograd']:.2f} ms, x{deploy['strategy_speedup']:.2f}"
    )
    write_results(
        {
            "config": {
                "learner": "ComplexSynapse, shipped omniglot/cpu",
                "episodes": data,
                "repeats": args.repeats,
                "threads": args.threads,
                "load_average_1min": os.getloadavg()[0],  # other jobs on the machine while it ran
                "command": "python benchmarks/bilevel_speed.py "
                + " ".join(
                    f"--{k.replace('_', '-')} {v}"
                    for k, v in vars(args).items()
                    if k != "out" and v is not None
                ),
            },
            "machine": machine(),
            "results": {"meta_gradient": meta, "deployment_step": deploy},
        },
        args.out,
    )


if __name__ == "__main__":
    main()
