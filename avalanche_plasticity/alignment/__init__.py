"""Credit assignment without weight symmetry (Kunin et al. 2020; BioTorch's FA/sign-symmetry family).

``convert(model, rule)`` gives any torch model separate feedback weights; :class:`FeedbackTrainer` learns them
with a rule's layer-wise regularizer; :mod:`.measures` reports how close the feedback is to backprop. The
Avalanche adapter is :class:`avalanche_plasticity.strategies.AlignmentPlugin`.
"""

from .layers import FeedbackConv2d, FeedbackLinear, backprop_mode, convert, feedback_layers
from .learning import FeedbackTrainer, feedback_gradients
from .measures import angle_degrees, gradient_angles, norm_ratios, weight_angles
from .primitives import PRIMITIVES, LayerGeometry, regularizer, regularizer_gradient
from .rules import AlignmentRule, available_rules, make_rule, register_rule

__all__ = [
    "PRIMITIVES",
    "AlignmentRule",
    "FeedbackConv2d",
    "FeedbackLinear",
    "FeedbackTrainer",
    "LayerGeometry",
    "angle_degrees",
    "available_rules",
    "backprop_mode",
    "convert",
    "feedback_gradients",
    "feedback_layers",
    "gradient_angles",
    "make_rule",
    "norm_ratios",
    "register_rule",
    "regularizer",
    "regularizer_gradient",
    "weight_angles",
]
