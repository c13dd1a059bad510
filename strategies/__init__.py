"""Avalanche strategies for the meta-learned learners."""

from .alignment import AlignmentPlugin, GradientAngle, NormRatio, WeightAngle, alignment_metrics
from .flp import FLP
from .oml import OML, OMLModel
from .online import PlasticModel

__all__ = [
    "FLP",
    "OML",
    "AlignmentPlugin",
    "GradientAngle",
    "NormRatio",
    "OMLModel",
    "PlasticModel",
    "WeightAngle",
    "alignment_metrics",
]
