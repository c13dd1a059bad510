"""Avalanche benchmarks for the papers' protocols."""

from .few_shot import FewShotOmniglot, FewShotSine
from .mnist import SplitFashionMNIST, SplitMNIST
from .omniglot import ContinualOmniglot, omniglot_meta_train_source
from .sine import IncrementalSine

__all__ = [
    "ContinualOmniglot",
    "FewShotOmniglot",
    "FewShotSine",
    "IncrementalSine",
    "SplitFashionMNIST",
    "SplitMNIST",
    "omniglot_meta_train_source",
]
