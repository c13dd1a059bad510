"""The standard continual-learning streams over MNIST and Fashion-MNIST: ``split_mnist`` (5 experiences of
2 classes), ``permuted_mnist`` (10 pixel permutations) and ``split_fashion_mnist``, each class- or
domain-incremental (``stream.setting``), online or with standard minibatches (``stream.regime``).

The meta-continual protocol: the meta-learned learners are meta-trained on Omniglot *background*
classes at 28x28 (the Omniglot presets: ``presets_from``) and deployed here with no meta-training on these
streams; a learner whose input is not 1x28x28 is an error naming both shapes before any work."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..configs import OverrideError
from ..presets import Preset
from ..registry import ScenarioSpec, register_scenario
from . import omniglot

IMAGE_SHAPE = (1, 28, 28)


def _stream_settings(stream: Any, learner_config: Any, source: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "setting": stream.setting,
        "train_per_experience": stream.train_per_experience,
        "image_size": omniglot.image_size_of(learner_config),
    }


def _check_preset(p: Preset) -> None:
    size = omniglot.image_size_of(p.learner_config)
    if (1, size, size) != IMAGE_SHAPE:
        raise OverrideError(
            f"{p.learner} reads images of shape (1, {size}, {size}) but this stream's are {IMAGE_SHAPE}; "
            "use the cpu scale (28x28) or a learner meta-trained at 28x28"
        )
    omniglot.check_image_preset(p)


def _register(
    name: str,
    dataset: str,
    kind: str,
    experiences: int,
    what: str,
    ewc_lambda: float,
    validated: Mapping[tuple[str, str], Mapping[str, float]],
    hosts_benchmarks: bool = False,
    si_lambda: float = 1.0,
) -> ScenarioSpec:
    def make_stream(settings: Mapping[str, Any], seed: int, root: Any) -> Any:
        from avalanche_plasticity.scenarios.mnist import mnist_family_benchmark

        return mnist_family_benchmark(
            dataset,
            kind,
            setting=settings["setting"],
            n_experiences=experiences,
            seed=seed,
            root=root,
            train_per_experience=settings["train_per_experience"],
        )

    def num_classes(stream: Any) -> int:
        if kind == "split":
            return 10 if stream.setting == "class" else 10 // experiences
        return 10 * experiences if stream.setting == "class" else 10

    return register_scenario(
        ScenarioSpec(
            name=name,
            task="classification",
            metric="accuracy",
            metric_key="Top1_Acc_Stream",
            title=f"Accuracy on all {what} seen",
            unit="experiences",
            lower_is_better=False,
            scales=("cpu", "paper"),
            default_scale="cpu",
            meta_source=omniglot.SCENARIO.meta_source,
            stream_settings=_stream_settings,
            make_stream=make_stream,
            default_lr=dict(omniglot.SCENARIO.default_lr),
            ewc_lambda=ewc_lambda,
            si_lambda=si_lambda,
            # the standard benchmarks' Replay (500), so that compare gives their runs
            mem_size=500,
            validated_lr=lambda stream: dict(validated.get((stream.setting, stream.regime), {})),
            train_mb_size=lambda stream, source: 1 if stream.regime == "online" else stream.batch_size,
            train_epochs=lambda stream: 1 if stream.regime == "online" else stream.epochs,
            num_classes=num_classes,
            check_preset=_check_preset,
            stream_options=(
                "setting",
                "regime",
                "batch_size",
                "epochs",
                "train_per_experience",
                "readout",
                "prototype_layer",
            ),
            stream_fix="the same image size for all",
            presets_from=omniglot.NAME,
            size_heads=True,
            # class-incremental: a readout that keeps every class's prototype (FLP's rule readout forgets);
            # domain-incremental: one per label and experience (a label's digits differ between experiences;
            # the rule readout diverged near online step 2,000 of the 1,000-per-experience stream)
            readout=lambda stream: "prototype" if stream.setting == "class" else "experience_prototype",
            # the trunk's features: 79.5 % on 10,000 held-out MNIST training images against 75.9 % for
            # the hidden layer's (Fashion-MNIST: 69.3 against 66.6 %; cpu FLP)
            prototype_layer=0,
            hosts_benchmarks=hosts_benchmarks,
        )
    )


# a user's own 28x28 benchmark runs with SplitMNIST's presets and settings (learners meta-trained on Omniglot)
# EWC's lambda per stream: the best mean of the class- and domain-incremental online validation streams
# (seed 10000) of (1, 10, 100, 1000, 10000) (benchmarks/ewc_lambda.py). PermutedMNIST takes 10: its ten
# separate penalties at Omniglot's 100 pinned the network at chance (validation: 1.0 % class, 9.8 % domain)
#
# SI's c per stream, picked the same way (benchmarks/ewc_lambda.py --strategy SI, grid 1 to 1e5; SI's
# importance is capped at 0.001, so c = 1 barely acts): 1e4 on SplitMNIST and Split Fashion-MNIST, 100 on
# PermutedMNIST
#
# SGD rates on the class-incremental streams, as OML's protocol tunes its meta-test rate: each
# strategy's best mean final accuracy over the validation streams (seeds 10000-10002) over [3e-4 ... 0.1],
# extended past its ends along a ladder of rates
# (benchmarks/deploy_lr.py: results/deploy_lr.json online, results/deploy_lr_standard.json standard).
# Domain-incremental streams and the strategies not named (SI, LwF, Replay, Joint, the credit-assignment
# rules) keep the meta-trained rates and the defaults (they were not swept).
CLASS_ONLINE_LR = {
    "split_mnist": {"Naive": 0.03, "EWC": 0.001, "OML": 1e-4, "ComplexSynapse": 1e-4, "GainModulation": 1e-4},
    "permuted_mnist": {
        "Naive": 0.01,
        "EWC": 0.01,
        "OML": 0.3,
        "ComplexSynapse": 0.003,
        "GainModulation": 0.01,
    },
    "split_fashion_mnist": {
        "Naive": 0.003,
        "EWC": 0.03,
        "OML": 0.001,
        "ComplexSynapse": 0.003,
        "GainModulation": 0.03,
    },
}
CLASS_STANDARD_LR = {
    "split_mnist": {"Naive": 0.3, "EWC": 0.03, "OML": 3e-4, "ComplexSynapse": 1e-4, "GainModulation": 1e-4},
    "permuted_mnist": {"Naive": 0.1, "EWC": 0.03, "OML": 0.03, "ComplexSynapse": 0.01, "GainModulation": 0.1},
    "split_fashion_mnist": {
        "Naive": 0.01,
        "EWC": 0.01,
        "OML": 0.003,
        "ComplexSynapse": 0.01,
        "GainModulation": 0.1,
    },
}


def _validated(name: str) -> dict[tuple[str, str], Mapping[str, float]]:
    """The rates picked on validation by (setting, regime)."""
    standard = CLASS_STANDARD_LR.get(name, {})
    return {("class", "online"): CLASS_ONLINE_LR[name], ("class", "standard"): standard}


SPLIT_MNIST = _register(
    "split_mnist",
    "mnist",
    "split",
    5,
    "digit pairs",
    100.0,
    _validated("split_mnist"),
    hosts_benchmarks=True,
    si_lambda=1e4,
)
PERMUTED_MNIST = _register(
    "permuted_mnist",
    "mnist",
    "permuted",
    10,
    "permutations",
    10.0,
    _validated("permuted_mnist"),
    si_lambda=100.0,
)
SPLIT_FASHION_MNIST = _register(
    "split_fashion_mnist",
    "fashion_mnist",
    "split",
    5,
    "class pairs",
    100.0,
    _validated("split_fashion_mnist"),
    si_lambda=1e4,
)
