"""The continual-Omniglot scenario (OML protocol on the evaluation alphabets): scenario entry and the
network and episode sizes its learners' presets share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..configs import OverrideError
from ..presets import Preset
from ..registry import ScenarioSpec, register_scenario

NAME = "omniglot"
# After these numbers of classes everything seen is evaluated (capped at the stream's length).
MARKS = (10, 25, 50, 100, 200, 400, 600)


def shared(scale: str) -> dict[str, Any]:
    """What FLP and OML share on Omniglot at ``scale``: the conv ``trunk``, its feature width ``feat``,
    the ``hidden`` width, the head's ``units``, meta-``steps``, meta-batch ``mb`` and the episode
    ``source``. ``cpu``: 28x28, 4 stride-2 conv layers of 32 channels, 10-way 5-shot continual episodes, a
    1000-unit head; ``paper``: 84x84, FLP's 6-layer conv trunk (strides 2,1,2,1,2,2), 128 channels, a
    1000-unit head, 5-way episodes."""
    if scale == "cpu":
        trunk = dict(channels=32, strides=(2, 2, 2, 2), image_size=28)
        # 1,000 head units (as the paper scale): a stream may run to every one of the 659 evaluation classes
        feat, hidden, units, steps, mb, ways = 32 * 2 * 2, 128, 1000, 1500, 8, 10
    elif scale == "paper":
        trunk = dict(channels=128, strides=(2, 1, 2, 1, 2, 2), image_size=84)
        feat, hidden, units, steps, mb, ways = 128 * 3 * 3, 128, 1000, 40000, 16, 5
    else:
        raise ValueError(f"scale must be 'cpu' or 'paper', got {scale!r}")
    source = dict(ways=ways, shots=5, query_shots=5, num_units=units, image_size=trunk["image_size"])
    return dict(trunk=trunk, feat=feat, hidden=hidden, units=units, steps=steps, mb=mb, source=source)


def image_size_of(learner_config: Any) -> int:
    """The side of the square images a learner config reads (conv trunk, bilevel conv net or MLP)."""
    network = getattr(learner_config, "network", None)
    if network is not None:  # a bilevel learner's conv net
        return network["image_size"]
    trunk = getattr(learner_config, "trunk", None)
    return trunk["image_size"] if trunk else learner_config.input_shape[-1]


def _stream_settings(stream: Any, learner_config: Any, source: Mapping[str, Any]) -> dict[str, Any]:
    return {"num_classes": stream.num_classes, "image_size": image_size_of(learner_config)}


def _make_stream(settings: Mapping[str, Any], seed: int, root: Any) -> Any:
    from avalanche_plasticity.scenarios import ContinualOmniglot

    return ContinualOmniglot(**settings, seed=seed, root=root)


def _meta_source() -> Any:
    from avalanche_plasticity.scenarios import omniglot_meta_train_source

    return omniglot_meta_train_source


def head_units(learner_config: Any) -> int | None:
    """The output units of a learner config (``num_outputs``, a conv net's ``network["num_outputs"]``, the
    last of ``pln_sizes`` or ``layer_sizes``), or None when it names none."""
    for read in (
        lambda c: c.num_outputs,
        lambda c: c.network["num_outputs"],
        lambda c: c.pln_sizes[-1],
        lambda c: c.layer_sizes[-1],
    ):
        try:
            return int(read(learner_config))
        except (AttributeError, KeyError, TypeError):
            continue
    return None


def check_image_preset(p: Preset) -> None:
    """A learner's input must read the episodes' images: ``input_shape`` (1, s, s) and a conv trunk of
    image size s, where s is the source's ``image_size``; its head must have the episodes' ``num_units``
    (each episode's classes go to random distinct units of it)."""
    units, head = p.source.get("num_units"), head_units(p.learner_config)
    if units is not None and head is not None and units != head:
        raise OverrideError(
            f"{p.learner}: its head has {head} output units but its episodes' source.num_units is {units}; "
            f"they must agree: set both (e.g. --set {p.learner}.source.num_units={head}, or the head's size "
            "in the learner settings)"
        )
    size = p.source.get("image_size", 28)
    shape = getattr(p.learner_config, "input_shape", None)
    if shape is not None and tuple(shape) != (1, size, size):
        raise OverrideError(
            f"{p.learner}: input_shape {tuple(shape)} must be (1, image_size, image_size) = (1, {size}, "
            f"{size}), and layer_sizes[0] = {size * size}"
        )
    trunk = getattr(p.learner_config, "trunk", None)
    if trunk is not None and trunk["image_size"] != size:
        raise OverrideError(
            f"{p.learner}: the conv trunk reads {trunk['image_size']}x{trunk['image_size']} images but "
            f"its episodes have image_size {size}; the trunk's image size is the scale's (cpu: 28, "
            "paper: 84): choose it with --scale"
        )


def _eval_points(stream: Any) -> tuple[int, ...]:
    return stream.eval_points or tuple(sorted({min(stream.num_classes, c) for c in MARKS}))


SCENARIO = register_scenario(
    ScenarioSpec(
        name=NAME,
        task="classification",
        metric="accuracy",
        metric_key="Top1_Acc_Stream",
        title="Accuracy on all classes seen",
        unit="classes",
        lower_is_better=False,
        scales=("cpu", "paper"),
        default_scale="cpu",
        meta_source=_meta_source,
        stream_settings=_stream_settings,
        make_stream=_make_stream,
        # FeedbackAlignment: the pseudo-gradient rate with the lowest query cross-entropy on Omniglot
        # episodes at the paper's depth (benchmarks/plasticity_rules.py, `lr_grid`)
        default_lr={"OML": 0.03, "Naive": 0.01, "EWC": 0.01, "Replay": 0.01, "FeedbackAlignment": 0.03},
        ewc_lambda=100.0,
        eval_points=_eval_points,
        check_preset=check_image_preset,
        stream_options=("num_classes", "readout", "prototype_layer"),
        stream_fix="the same source.image_size for all",
        # one class per experience: FLP keeps every class's prototype (its rule readout forgets)
        readout=lambda stream: "prototype",
        # the hidden layer's activity: 80.4 / 85.6 % at 50 classes on the validation orders (seeds 10000,
        # 10001) against 77.2 / 78.4 % for the trunk's features (cpu FLP)
        prototype_layer=1,
    )
)
