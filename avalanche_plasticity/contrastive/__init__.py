"""The contrastive meta-learning rule (Zucchet et al., NeurIPS 2022) as a meta-gradient engine for
bilevel learners, an implicit-differentiation reference, and the paper's two learners."""

from .estimators import (
    STENCILS,
    BilevelLearner,
    ContrastiveConfig,
    MetaGradient,
    Task,
    check_bilevel_learner,
    contrastive_meta_gradient,
    online_meta_gradient,
    tasks_from_episodes,
    unrolled_meta_gradient,
)
from .implicit import CGConfig, ConjugateGradientError, conjugate_gradient, implicit_meta_gradient
from .learners import (
    ComplexSynapseConfig,
    ComplexSynapseLearner,
    GainModulationConfig,
    GainModulationLearner,
    load_bilevel_learner,
    save_bilevel_learner,
)
from .meta_training import (
    BilevelMetaTrainConfig,
    estimate_meta_gradient,
    few_shot_accuracy,
    meta_train_bilevel,
)
from .solvers import InnerSolverError, SolverConfig, SolveResult, minimise, unroll

__all__ = [
    "STENCILS",
    "BilevelLearner",
    "BilevelMetaTrainConfig",
    "CGConfig",
    "ComplexSynapseConfig",
    "ComplexSynapseLearner",
    "ConjugateGradientError",
    "ContrastiveConfig",
    "GainModulationConfig",
    "GainModulationLearner",
    "InnerSolverError",
    "MetaGradient",
    "SolveResult",
    "SolverConfig",
    "Task",
    "check_bilevel_learner",
    "conjugate_gradient",
    "contrastive_meta_gradient",
    "estimate_meta_gradient",
    "few_shot_accuracy",
    "implicit_meta_gradient",
    "load_bilevel_learner",
    "meta_train_bilevel",
    "minimise",
    "save_bilevel_learner",
    "tasks_from_episodes",
    "unroll",
    "online_meta_gradient",
    "unrolled_meta_gradient",
]
