"""Credit assignment without weight symmetry: every rule against backprop on the same conv nets.

Sections (each skipped with --skip, each run resumable: finished runs are kept in the JSON and not redone
unless --fresh):
  test_acc      deep conv net (--depth conv layers, --width channels) on MNIST and Fashion-MNIST
  depth_sweep   Fashion-MNIST test accuracy at 2, 4, 6, 8 conv layers
  noise         MNIST with noisy updates: lr·ξ, ξ ~ N(0, σ²) added after every update (Kunin et al.)
  split_mnist   class-incremental SplitMNIST (5 experiences) in Avalanche: Naive + Replay + AlignmentPlugin
  step_time     seconds per training step of each rule as a ratio to backprop, interleaved in one process

Training: Adam (lr 1e-3) on the forward weights, the feedback weights trained by the rule's own optimizer
(AlignmentPlugin defaults), batch 128, BatchNorm after every conv.

    python benchmarks/alignment.py --data-root ../shared/data [--epochs 3] [--rules fa,sa] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from avalanche_plasticity.alignment import FeedbackTrainer, available_rules, convert
from avalanche_plasticity.alignment.learning import add_update_noise
from avalanche_plasticity.alignment.models import conv_net
from avalanche_plasticity.data import load_fashion_mnist, load_mnist
from avalanche_plasticity.reporting import machine, run_recorder, write_results

HERE = Path(__file__).resolve().parent
SECTIONS = ("test_acc", "depth_sweep", "noise", "split_mnist", "step_time")
NOISE_RULES = ("backprop", "fa", "usf", "wm", "ia", "sa", "aa", "kp")


def train_and_test(rule, data, *, depth, width, epochs, seed, batch=128, lr=1e-3, noise=0.0) -> dict:
    """Train a fresh conv net with ``rule`` and return its test accuracy and training seconds."""
    (x, y), (xt, yt) = data
    torch.manual_seed(seed)
    model = convert(conv_net(depth, width=width), rule, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    feedback = FeedbackTrainer(model, update_noise=noise)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), batch):
            idx = order[i : i + batch]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            if not torch.isfinite(loss):
                return {"test_acc": float("nan"), "seconds": time.perf_counter() - start, "diverged": True}
            loss.backward()
            feedback.step()
            opt.step()
            feedback.mirror()
            if noise:
                for p in model.parameters():
                    if p.grad is not None:
                        add_update_noise(p, lr, noise)
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        correct = sum(
            int((model(xt[i : i + 1000]).argmax(1) == yt[i : i + 1000]).sum())
            for i in range(0, len(yt), 1000)
        )
    return {"test_acc": correct / len(yt), "seconds": seconds}


def split_mnist_replay(rule: str, *, root, depth, width, seed, mem_size=500) -> float:
    """Average test accuracy over all 10 classes after a SplitMNIST stream, Naive + Replay + the rule."""
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training import Naive
    from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin

    from avalanche_plasticity.scenarios import SplitMNIST
    from avalanche_plasticity.strategies import AlignmentPlugin

    torch.manual_seed(seed)
    bench = SplitMNIST(5, seed=seed, root=root)
    model = conv_net(depth, width=width)
    strategy = Naive(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=128,
        train_epochs=1,
        eval_mb_size=1000,
        evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]),
        plugins=[ReplayPlugin(mem_size=mem_size), AlignmentPlugin(rule, seed=seed)],
    )
    for exp in bench.train_stream:
        strategy.train(exp)
    results = strategy.eval(bench.test_stream)
    return float(results["Top1_Acc_Stream/eval_phase/test_stream"])


def step_times(rules, data, *, depth, width, steps, rounds, batch=128) -> dict[str, float]:
    """Median seconds per training step (forward, backward, feedback update, optimizer step) per rule."""
    (x, y), _ = data
    setups = {}
    for rule in rules:
        torch.manual_seed(0)
        model = convert(conv_net(depth, width=width), rule)
        setups[rule] = (model, torch.optim.Adam(model.parameters(), 1e-3), FeedbackTrainer(model))
    samples = {rule: [] for rule in rules}
    for r in range(rounds + 1):
        for rule, (model, opt, feedback) in setups.items():
            start = time.perf_counter()
            for i in range(steps):
                idx = slice((i * batch) % (len(y) - batch), (i * batch) % (len(y) - batch) + batch)
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                feedback.step()
                opt.step()
                feedback.mirror()
            if r:  # round 0 warms up
                samples[rule].append((time.perf_counter() - start) / steps)
    return {rule: statistics.median(v) for rule, v in samples.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None, help="holds MNIST (default: $AVP_DATA_DIR)")
    p.add_argument("--rules", default=",".join(available_rules()), help="comma-separated rule names")
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--depths", default="2,4,6,8")
    p.add_argument("--sweep-epochs", type=int, default=1)
    p.add_argument("--noise", type=float, default=1.0, help="update-noise variance σ² for the noise section")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--skip", default="", help=f"comma-separated sections to skip: {','.join(SECTIONS)}")
    p.add_argument("--fresh", action="store_true", help="ignore finished runs in the output file")
    p.add_argument("--out", default=str(HERE / "results" / "alignment.json"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    unknown = sorted(set(rules) - set(available_rules()))
    if unknown:
        p.error(f"--rules: unknown {unknown}; available: {', '.join(available_rules())}")
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(SECTIONS):
        p.error(f"--skip: unknown {sorted(skip - set(SECTIONS))}; sections: {', '.join(SECTIONS)}")
    depths = [int(d) for d in args.depths.split(",")]
    config = {k: v for k, v in vars(args).items() if k not in ("out", "fresh", "skip", "threads")}
    config.update(forward_optimizer="adam", forward_lr=1e-3, batch=128, feedback="AlignmentPlugin defaults")

    out = Path(args.out)
    payload = json.loads(out.read_text()) if out.exists() and not args.fresh else {}
    # Runs are reused when the settings that shape them match (a different --rules/--depths only adds runs).
    shaping = ("depth", "width", "epochs", "sweep_epochs", "noise", "seed", "forward_lr", "batch")
    if any(payload.get("config", config).get(k) != config[k] for k in shaping):
        print("config changed: starting fresh")
        payload = {}
    payload.update(config=config, machine=machine())
    for key in (
        "test_acc",
        "depth_sweep",
        "noise",
        "split_mnist_replay",
        "step_time_ratio",
        "seconds",
        "runs",
    ):
        payload.setdefault(key, {})

    record = run_recorder(payload, out, show_result=True, wall_seconds=False)

    mnist = (load_mnist("train", root=args.data_root), load_mnist("test", root=args.data_root))
    fashion = (
        load_fashion_mnist("train", root=args.data_root),
        load_fashion_mnist("test", root=args.data_root),
    )
    kw = dict(depth=args.depth, width=args.width, seed=args.seed)

    if "test_acc" not in skip:
        for name, data in (("mnist", mnist), ("fashion_mnist", fashion)):
            for rule in rules:
                run = record(
                    "test_acc",
                    f"{name}/{rule}",
                    lambda rule=rule, data=data: train_and_test(rule, data, epochs=args.epochs, **kw),
                )
                payload["test_acc"].setdefault(name, {})[rule] = run["test_acc"]
    if "depth_sweep" not in skip:
        for rule in rules:
            for depth in depths:
                run = record(
                    "depth_sweep",
                    f"{rule}/{depth}",
                    lambda rule=rule, depth=depth: train_and_test(
                        rule, fashion, depth=depth, width=args.width, seed=args.seed, epochs=args.sweep_epochs
                    ),
                )
                payload["depth_sweep"].setdefault(rule, {})[str(depth)] = run["test_acc"]
    if "noise" not in skip:
        noise = payload["noise"] = {
            "variance": args.noise,
            "epochs": args.sweep_epochs,
            "noisy": {},
            "clean": {},
        }
        for rule in [r for r in rules if r in NOISE_RULES]:
            for kind, variance in (("noisy", args.noise), ("clean", 0.0)):
                key = rule if kind == "noisy" else f"clean/{rule}"
                run = record(
                    "noise",
                    key,
                    lambda rule=rule, variance=variance: train_and_test(
                        rule, mnist, epochs=args.sweep_epochs, noise=variance, **kw
                    ),
                )
                noise[kind][rule] = run["test_acc"]
    if "split_mnist" not in skip:
        for rule in rules:
            acc = record(
                "split_mnist", rule, lambda rule=rule: split_mnist_replay(rule, root=args.data_root, **kw)
            )
            payload["split_mnist_replay"][rule] = acc
    if "step_time" not in skip:
        timed = ["backprop"] + [r for r in rules if r != "backprop"]
        seconds = record(
            "step_time",
            "seconds",
            lambda: step_times(timed, mnist, depth=args.depth, width=args.width, steps=20, rounds=5),
        )
        payload["seconds"] = seconds
        payload["step_time_ratio"] = {r: s / seconds["backprop"] for r, s in seconds.items()}
    write_results(payload, out)
    print(json.dumps({k: payload[k] for k in ("test_acc", "step_time_ratio")}, indent=1))


if __name__ == "__main__":
    main()
