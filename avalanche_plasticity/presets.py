"""A named configuration of one meta-learned learner (:class:`Preset`). Each learner declares its presets
per scenario and scale in its own module of :mod:`avalanche_plasticity.catalog`; read them with
:func:`avalanche_plasticity.configs.presets`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Preset:
    """Everything needed to meta-train one learner on one scenario: the registered learner's name, its
    learner config, its meta-training config and the keyword arguments of its episode source."""

    learner: str
    learner_config: Any
    meta: Any  # MetaTrainConfig, or BilevelMetaTrainConfig for the contrastive rule's learners
    source: dict[str, Any] = field(default_factory=dict)
