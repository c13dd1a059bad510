"""Continual Omniglot (OML protocol) to 600 classes: FLP, OML, ANML, Naive, EWC, Replay on the same class
orders.

Meta-trains FLP, OML and ANML on the background classes (or loads their checkpoints), then for ``--runs``
class orders of evaluation-split classes learns 15 images per class in one online pass at batch size 1
and reports test accuracy on the 5 held-out images of every class seen, at each class count.
The SGD learning rate of OML, ANML and the baselines is picked on a validation order (seed 10000, 50
classes). FLP is deployed with the scenario's readout (``prototype``: class means of its meta-learned
features, kept for every class seen) and, for reference, with its meta-learned output rule
(``FLP (rule readout)``, the paper's protocol). Finished runs are cached under ``--work`` (a killed run
resumes).

    AVP_DATA_DIR=../shared/data python benchmarks/continual_omniglot.py [--runs 5] \
        [--counts 10 50 100 200 300 400 600]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from avalanche_plasticity.checkpoint import write_bytes_atomic
from avalanche_plasticity.configs import StreamConfig, presets
from avalanche_plasticity.experiments import learner_digest, make_strategy, meta_trained, run_stream
from avalanche_plasticity.registry import scenario_spec
from avalanche_plasticity.reporting import machine, write_results
from avalanche_plasticity.scenarios import ContinualOmniglot

HERE = Path(__file__).resolve().parent
LR_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)

# The plasticity rules' continual figures are in plasticity_rules.py (they meta-train on other episodes).
LEARNERS = ("FLP", "OML", "ANML")
RULE_READOUT = "FLP (rule readout)"  # FLP deployed with its meta-learned output rule (the paper's protocol)
# The recorded figures (ComplexSynapse: contrastive.py): (name, strategy, readout).
COMPARED = (
    ("FLP", "FLP", None),
    (RULE_READOUT, "FLP", "rule"),
    ("OML", "OML", None),
    ("ANML", "ANML", None),
    ("Naive", "Naive", None),
    ("EWC", "EWC", None),
    ("Replay", "Replay", None),
)
MEM_SIZE = 200
# Online EWC (one running Fisher): separate penalties, one per class, make a step cost grow with the classes
# seen (one 600-class run did not finish in 40 minutes here).
EWC_MODE = "online"


def run(name, learners, cfg, order_seed, lr, counts, root, image_size, readout=None):
    """Accuracy on every class seen at each of ``counts``, for one class order."""
    bm = ContinualOmniglot(
        num_classes=max(counts), classes_per_experience=1, seed=order_seed, root=root, image_size=image_size
    )
    stream = scenario_spec("omniglot")
    s = make_strategy(
        name,
        learner=learners.get(name),
        learner_config=cfg,
        task="classification",
        lr=lr,
        ewc_lambda=stream.ewc_lambda,
        mem_size=MEM_SIZE,
        train_mb_size=1,
        seed=order_seed,
        num_classes=max(counts),
        settings={
            "readout": readout or stream.readout(StreamConfig()),
            "prototype_layer": stream.prototype_layer,
            "ewc_mode": EWC_MODE,
        },
    )
    return run_stream(s, bm, eval_after=list(counts))


def cached_run(work: Path, key: dict, fn) -> dict[int, float]:
    """``fn()``, or its result saved under ``work`` for the same ``key`` (written atomically)."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = work / f"{key['name'].replace(' ', '_')}_{key['order']}_{digest}.json"
    if path.exists():
        return {int(k): v for k, v in json.loads(path.read_text()).items()}
    result = fn()
    write_bytes_atomic(json.dumps(result).encode(), path)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--counts", type=int, nargs="+", default=[10, 50, 100, 200, 300, 400, 600])
    p.add_argument("--scale", choices=["cpu", "paper"], default="cpu")
    p.add_argument("--strategies", nargs="+", default=[c[0] for c in COMPARED], metavar="NAME")
    p.add_argument("--data-root", default=None)
    p.add_argument("--checkpoint-dir", default=str(HERE / "checkpoints"))
    p.add_argument("--work", default=str(HERE / "work" / "continual_omniglot"), help="per-run cache")
    p.add_argument("--out", default=str(HERE / "results" / "continual_omniglot.json"))
    args = p.parse_args()
    unknown = sorted(set(args.strategies) - {c[0] for c in COMPARED})
    if unknown:
        p.error(f"--strategies: unknown {unknown}; choose from {[c[0] for c in COMPARED]}")
    if max(args.counts) > 659 or min(args.counts) < 1:
        p.error(f"--counts must be in [1, 659] (the evaluation classes), got {args.counts}")
    t0 = time.time()
    compared = [c for c in COMPARED if c[0] in args.strategies]
    learners = {
        n: meta_trained(
            "omniglot", n, scale=args.scale, checkpoint_dir=args.checkpoint_dir, root=args.data_root
        )
        for n in LEARNERS
        if any(strategy == n for _, strategy, _ in compared)
    }
    cfg = presets("omniglot", args.scale)["FLP"].learner_config
    size = cfg.trunk["image_size"]
    work = Path(args.work)
    digests = {n: learner_digest(learner) for n, learner in learners.items()}

    layer = scenario_spec("omniglot").prototype_layer

    def one(label, strategy, readout, order, lr, counts):
        key = dict(
            name=label, strategy=strategy, readout=readout, order=order, lr=lr, counts=counts,
            scale=args.scale, learner=digests.get(strategy), mem_size=MEM_SIZE,
        )  # fmt: skip
        if strategy == "FLP" and not readout:  # only where it applies (earlier runs' keys stay valid)
            key["prototype_layer"] = layer
        if strategy == "EWC":
            key["ewc_mode"] = EWC_MODE
        return cached_run(
            work,
            key,
            lambda: run(strategy, learners, cfg, order, lr, counts, args.data_root, size, readout),
        )

    val_counts = [min(50, max(args.counts))]
    chosen_lr = {}
    for label, strategy, readout in compared:
        if not _has_lr(strategy):
            continue
        scores = {lr: one(label, strategy, readout, 10_000, lr, val_counts)[val_counts[0]] for lr in LR_GRID}
        chosen_lr[label] = max(scores, key=scores.get)
        print(f"[lr] {label}: validation accuracy {scores} -> lr {chosen_lr[label]}", file=sys.stderr)
    results = {}
    for label, strategy, readout in compared:
        per_run = [
            one(label, strategy, readout, r, chosen_lr.get(label), args.counts) for r in range(args.runs)
        ]
        results[label] = {
            str(c): {
                "mean": statistics.mean(r[c] for r in per_run),
                "std": statistics.pstdev(r[c] for r in per_run),
                "runs": len(per_run),
                "values": [r[c] for r in per_run],
            }
            for c in args.counts
        }
        results[label]["lr"] = chosen_lr.get(label)
        print(label, {c: round(results[label][str(c)]["mean"], 4) for c in args.counts}, flush=True)
    out_path = Path(args.out)  # read now: another invocation may have written other strategies meanwhile
    previous = json.loads(out_path.read_text()) if out_path.exists() else {}
    out = {
        "config": {
            "scale": args.scale,
            "runs": args.runs,
            "counts": args.counts,
            "classes_per_experience": 1,
            "train_per_class": 15,
            "test_per_class": 5,
            "image_size": size,
            "lr_grid": LR_GRID,
            "ewc_lambda": scenario_spec("omniglot").ewc_lambda,
            "replay_mem_size": MEM_SIZE,
            "ewc_mode": EWC_MODE,
            "readouts": {label: readout or "prototype" for label, s, readout in compared if s == "FLP"},
            "prototype_layer": scenario_spec("omniglot").prototype_layer,
            "learners": {n: repr(presets("omniglot", args.scale)[n]) for n in learners},
        },
        "machine": machine(),
        "seconds": time.time() - t0,
        "results": {**previous.get("results", {}), **results}
        if previous.get("config", {}).get("counts") == args.counts
        else results,
    }
    order = [c[0] for c in COMPARED]  # the table's order, whichever invocation ran which strategy
    out["results"] = dict(
        sorted(out["results"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99)
    )
    if previous.get("config", {}).get("counts") == args.counts:  # other strategies' runs are kept: so are
        for field in ("readouts", "learners"):  # their settings
            out["config"][field] = {**previous["config"].get(field, {}), **out["config"][field]}
        out["seconds"] += previous.get("seconds", 0.0)
    write_results(out, args.out)


def _has_lr(strategy: str) -> bool:
    from avalanche_plasticity.registry import strategy_spec

    return strategy_spec(strategy).has_lr


if __name__ == "__main__":
    torch.set_num_threads(int(__import__("os").environ.get("AVP_THREADS", "2")))
    main()
