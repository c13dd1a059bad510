"""The incremental-sine scenario (OML/FLP regression protocol): scenario entry and the network and
episode sizes its learners' presets share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..configs import OverrideError, input_size
from ..presets import Preset
from ..registry import ScenarioSpec, register_scenario
from ..tasks import SineTaskSource

NAME = "sine"

# The ``quick`` scale's episodes (FLP's first curriculum stage at ``cpu``): 10 functions x 10 minibatches
# of 8.
QUICK_SOURCE = dict(functions_per_episode=10, batches_per_function=10, batch_size=8, query_per_function=32)


def network(scale: str) -> tuple[int, int, int, int]:
    """``(width, hidden layers, meta-updates, meta-batch)`` of the sine learners at ``scale``: ``cpu``
    (and ``quick``) 64 x 3, 1200 updates of 8 episodes; ``paper`` 300 x 8, 20000 updates of 16."""
    if scale == "paper":
        return 300, 8, 20000, 16
    return 64, 3, 1200, 8


def final_episode_length(source: Mapping[str, Any]) -> int:
    """Minibatches per function of a sine source's episodes at the end of meta-training: the last length
    of its ``length_schedule`` (FLP's curriculum at the ``cpu`` scale ends at the protocol's 40), else
    its ``batches_per_function``."""
    schedule = source.get("length_schedule") or ()
    if schedule:
        return int(max(schedule, key=lambda pair: int(pair[0]))[1])
    return source.get("batches_per_function", 40)


def _stream_settings(stream: Any, learner_config: Any, source: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "num_functions": input_size(learner_config) - 1,
        "batches_per_function": stream.batches_per_function or final_episode_length(source),
        "batch_size": source.get("batch_size", 8),
    }


def _make_stream(settings: Mapping[str, Any], seed: int, root: Any) -> Any:
    from avalanche_plasticity.scenarios import IncrementalSine

    return IncrementalSine(**settings, seed=seed)


def _check_preset(p: Preset) -> None:
    k = p.source.get("functions_per_episode", 10)
    if input_size(p.learner_config) != k + 1:
        raise OverrideError(
            f"{p.learner}: the input size ({input_size(p.learner_config)}) must be "
            f"functions_per_episode + 1 = {k + 1} (one-hot function slot + z)"
        )


SCENARIO = register_scenario(
    ScenarioSpec(
        name=NAME,
        task="regression",
        metric="mse",
        metric_key="MSE_Stream",
        title="MSE on all functions seen",
        unit="functions",
        lower_is_better=True,
        scales=("quick", "cpu", "paper"),
        default_scale="cpu",
        meta_source=lambda: SineTaskSource,
        stream_settings=_stream_settings,
        make_stream=_make_stream,
        # Baselines: picked as benchmarks/continual_sine.py picks them, on validation problems: every rate
        # of (0.001, 0.003, 0.01, 0.03) on the default stream (cpu: 10 functions x 40 minibatches of 8) at
        # the validation stream seeds 10000-10002, lowest mean final MSE, a rate diverging on any seed out
        # (`python benchmarks/compare_default.py --tune-lr`; the scores are lr_validation in
        # benchmarks/results/compare_default.json). OML deploys its meta-trained inner_lr instead.
        default_lr={"OML": 0.003, "Naive": 0.003, "EWC": 0.01, "Replay": 0.03},
        # on continual sine, lambda >= 10 diverges (NaN) at every SGD lr that learns
        ewc_lambda=1.0,
        train_mb_size=lambda stream, source: source.get("batch_size", 8),
        check_preset=_check_preset,
        stream_options=("batches_per_function",),
        data_backed=False,
        stream_fix="stream.batches_per_function (and the same functions_per_episode and batch_size for all)",
    )
)
