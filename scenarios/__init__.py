"""Avalanche benchmarks for the papers' protocols."""

from .omniglot import ContinualOmniglot, omniglot_meta_train_source
from .sine import IncrementalSine

__all__ = ["ContinualOmniglot", "IncrementalSine", "omniglot_meta_train_source"]
