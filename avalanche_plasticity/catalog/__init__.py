"""The built-in entries of :mod:`avalanche_plasticity.registry`: one module per scenario and per learner or
strategy, each declaring itself once. :data:`MODULES` is imported in order, which is the order of the
registries (the first scenario is the default one; strategies appear in ``compare``'s tables in it)."""

from __future__ import annotations

import importlib

MODULES = (
    # scenarios
    "sine",
    "omniglot",
    "mnist_family",
    # learners and strategies
    "flp",
    "oml",
    "anml",
    "baselines",
    "plasticity_rule",
    "complex_synapse",
    "gain_modulation",
)

for _module in MODULES:
    importlib.import_module(f"{__name__}.{_module}")
