"""The project's output is free of third-party noise that says nothing to the user: Gym's "unmaintained"
notice (imported by learn2learn) and Avalanche's ReplayPlugin DeprecationWarnings."""

from __future__ import annotations

import os
import subprocess
import sys

BUILD_OMNIGLOT_SOURCE = """
from avalanche_plasticity.scenarios import omniglot_meta_train_source
source = omniglot_meta_train_source(ways=2, shots=1, query_shots=1, num_units=5)
import learn2learn  # later imports anywhere (tasks.py's) are silent too
print("built")
"""

FLP_WITH_REPLAY = """
import torch
from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin
from avalanche_plasticity.flp import FLPConfig, FLPLearner
from avalanche_plasticity.scenarios import IncrementalSine
from avalanche_plasticity.strategies import FLP, OML
from avalanche_plasticity.oml import OMLConfig, OMLLearner
bm = IncrementalSine(num_functions=3, batches_per_function=3)
flp = FLPLearner(FLPConfig(layer_sizes=(4, 16, 1), init_plasticity=1e-4), seed=0)
oml = OMLLearner(OMLConfig(rln_sizes=(4, 16), pln_sizes=(16, 1)), seed=0)
for s in (
    FLP(learner=flp, train_mb_size=8, evaluator=EvaluationPlugin(), plugins=[ReplayPlugin(mem_size=8)]),
    OML(learner=oml, train_mb_size=8, evaluator=EvaluationPlugin(), plugins=[ReplayPlugin(mem_size=8)]),
):
    for exp in bm.train_stream:
        s.train(exp)
import warnings
warnings.warn("a warning of the project's own still shows", UserWarning)
print("trained")
"""


def _run(code: str, **extra_env: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(extra_env)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_building_an_omniglot_source_prints_no_gym_notice(omniglot_root):
    proc = _run(BUILD_OMNIGLOT_SOURCE, AVP_DATA_DIR=str(omniglot_root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "built"
    assert "Gym" not in proc.stderr and "gymnasium" not in proc.stderr.lower(), proc.stderr


def test_our_strategies_with_replay_print_no_avalanche_deprecation_warning():
    proc = _run(FLP_WITH_REPLAY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DeprecationWarning" not in proc.stderr, proc.stderr
    assert "a warning of the project's own still shows" in proc.stderr
