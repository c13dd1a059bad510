"""Avalanche strategies for the meta-learned learners."""

from .alignment import AlignmentPlugin, GradientAngle, NormRatio, WeightAngle, alignment_metrics
from .contrastive import ComplexSynapse, GainModulation
from .flp import FLP, PrototypeReadoutModel
from .oml import OML, OMLModel
from .online import PlasticModel
from .plasticity_rules import FeedbackAlignment, MetaPlasticityRule

__all__ = [
    "FLP",
    "OML",
    "ComplexSynapse",
    "FeedbackAlignment",
    "GainModulation",
    "MetaPlasticityRule",
    "AlignmentPlugin",
    "GradientAngle",
    "NormRatio",
    "OMLModel",
    "PlasticModel",
    "PrototypeReadoutModel",
    "WeightAngle",
    "alignment_metrics",
]
from .anml import ANML, ANMLModel  # noqa: E402

__all__ += ["ANML", "ANMLModel"]
from .online import RunSeeding, SeedPlugin, avalanche_deprecations_silenced, seeded_dataloaders  # noqa: E402

__all__ += ["RunSeeding", "SeedPlugin", "avalanche_deprecations_silenced", "seeded_dataloaders"]
from .synaptic_intelligence import SynapticIntelligencePlugin  # noqa: E402

__all__ += ["SynapticIntelligencePlugin"]
