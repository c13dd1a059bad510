"""How good is each meta-learned learner's frozen representation on the MNIST family (issue #15)?

A nearest-class-mean readout on the features below each learner's head (the issue's probe for FLP: class
means from 10,000 training images, every test image classified by its nearest mean): it measures the
representation alone, with no learning order, so it separates "the features do not fit these images"
from the readout forgets in class order". Learners: the shipped FLP, OML and ANML, the complex synapse and
gain modulation of the current presets (the shipped files; meta-trained into ``--checkpoint-dir`` when
the presets no longer match them), a randomly initialised copy of their conv net (the floor a
meta-learned body should beat), and any bilevel checkpoint given as ``--checkpoint LABEL=PATH`` (e.g. an
earlier preset's).

    AVP_DATA_DIR=../shared/data python benchmarks/trunk_probe.py --data-root ../shared/data

Writes ``benchmarks/results/trunk_probe.json``: ``{"config", "machine", "results": {"<dataset>":
{"<learner>": accuracy}}}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from avalanche_plasticity import registry
from avalanche_plasticity.contrastive import load_bilevel_learner
from avalanche_plasticity.contrastive.learners import build_network
from avalanche_plasticity.data import DataNotFoundError
from avalanche_plasticity.data.mnist import load_fashion_mnist, load_mnist
from avalanche_plasticity.experiments import meta_trained
from avalanche_plasticity.pretrained import load_pretrained, shipped_learner
from avalanche_plasticity.reporting import machine, write_results

HERE = Path(__file__).resolve().parent
SHIPPED = ("FLP", "OML", "ANML")
BILEVEL = ("ComplexSynapse", "GainModulation")
TRAIN_IMAGES = 10_000


def nearest_class_mean(
    features: Callable[[Tensor], Tensor], train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor]
) -> float:
    """Test accuracy of the nearest class mean of ``features`` (means over ``train``)."""

    def embed(x: Tensor) -> Tensor:
        with torch.no_grad():
            return torch.cat([features(x[i : i + 1000]).flatten(1) for i in range(0, len(x), 1000)])

    f_train, f_test = embed(train[0]), embed(test[0])
    classes = train[1].unique()
    means = torch.stack([f_train[train[1] == c].mean(0) for c in classes])
    predicted = classes[torch.cdist(f_test, means).argmin(1)]
    return (predicted == test[1]).float().mean().item()


def bilevel_features(learner) -> Callable[[Tensor], Tensor]:
    """The features below the head at the learner's initial fast weights (what deployment starts from)."""
    theta = learner.theta()
    fast = learner.initial_fast_weights(theta)
    return lambda x: learner.features(fast, theta, x)


def bilevel_learner(name: str, checkpoint_dir: str, root: str | None):
    """The shipped Omniglot ``cpu`` learner if its file matches the current preset, else meta-trained."""
    preset = registry.learner_presets("omniglot", "cpu")[name]
    found = shipped_learner("omniglot", "cpu", preset)
    if found is not None:
        print(f"using {found[1]}", flush=True)
        return found[0]
    return meta_trained("split_mnist", name, checkpoint_dir=checkpoint_dir, root=root)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None)
    p.add_argument("--checkpoint-dir", default=str(HERE / "checkpoints"))
    p.add_argument("--checkpoint", action="append", default=[], metavar="LABEL=PATH")
    p.add_argument("--out", default=str(HERE / "results" / "trunk_probe.json"))
    p.add_argument("--seed", type=int, default=0, help="draws the training images and the random net")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    extra = {}
    for item in args.checkpoint:
        label, sep, path = item.partition("=")
        if not sep or not label or not Path(path).is_file():
            p.error(f"--checkpoint: expected LABEL=PATH of an existing file, got {item!r}")
        extra[label] = path
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()

    probes: dict[str, Callable[[Tensor], Tensor]] = {}
    for name in SHIPPED:
        learner = load_pretrained(name, "omniglot")
        probes[name] = learner.features
    for name in BILEVEL:
        learner = bilevel_learner(name, args.checkpoint_dir, args.data_root)
        probes[name] = bilevel_features(learner)
        if name == BILEVEL[0]:
            net = build_network(learner.config.network, args.seed)
            probes["random conv net"] = lambda x, body=net[:-1]: body(x)
    for label, path in extra.items():
        probes[label] = bilevel_features(load_bilevel_learner(path))

    datasets = {"mnist": load_mnist}
    try:
        load_fashion_mnist("test", root=args.data_root)
        datasets["fashion_mnist"] = load_fashion_mnist
    except DataNotFoundError as err:
        print(f"Fashion-MNIST left out: {err}", flush=True)
    g = torch.Generator().manual_seed(args.seed)
    results: dict[str, dict[str, float]] = {}
    for dataset, load in datasets.items():
        x, y = load("train", root=args.data_root)
        pick = torch.randperm(len(x), generator=g)[:TRAIN_IMAGES]
        train, test = (x[pick], y[pick]), load("test", root=args.data_root)
        results[dataset] = {}
        for name, features in probes.items():
            results[dataset][name] = nearest_class_mean(features, train, test)
            print(f"{dataset} {name}: {results[dataset][name]:.4f}", flush=True)
    payload = {
        "config": {
            "probe": "nearest class mean of the features below the head",
            "train_images": TRAIN_IMAGES,
            "test_images": "the whole test split",
            "seed": args.seed,
            "checkpoints": extra,
            "wall_seconds": time.perf_counter() - t0,
        },
        "machine": machine(),
        "results": results,
    }
    write_results(payload, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
