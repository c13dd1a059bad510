"""Avalanche strategies for the meta-learned learners."""

from .flp import FLP
from .oml import OML, OMLModel
from .online import PlasticModel

__all__ = ["FLP", "OML", "OMLModel", "PlasticModel"]
