"""Meta-learned plasticity rules with fixed random feedback (Shervani-Tabar & Rosenbaum, Nat. Commun. 2023).

``terms``: the pool of local plasticity terms (add your own with :func:`register_term`); ``rule``: the pure
online step; ``learner``: the meta-learnable rule for the shared engine; ``episodes``: Omniglot/MNIST
episodes (learn2learn Taskset); ``training``: meta-training and online accuracy; ``reading``: the learned
rule as a table, a formula and a coefficient plot.
"""

from .episodes import emnist_episodes, fixed_episodes, mnist_episodes, omniglot_episodes
from .learner import (
    DEFAULT_TERM_LR_SCALE,
    PAPER_LAYER_SIZES,
    PlasticityRuleConfig,
    PlasticityRuleLearner,
    deeper_sizes,
    load_rule,
    rule_learner,
    save_rule,
)
from .reading import rule_formula, rule_markdown, rule_table, save_rule_report, surviving_terms
from .rule import feedback_errors, forward_activities, plasticity_update, term_updates, xavier_uniform
from .terms import PAPER_POOL, RELEASED_POOL, TERMS, LayerSignals, get_term, register_term, unregister_term
from .training import (
    alignment_with_backprop,
    coefficient_history,
    meta_train_rule,
    online_accuracy,
    online_evaluation,
)

__all__ = [
    "DEFAULT_TERM_LR_SCALE",
    "PAPER_LAYER_SIZES",
    "PAPER_POOL",
    "RELEASED_POOL",
    "TERMS",
    "LayerSignals",
    "PlasticityRuleConfig",
    "PlasticityRuleLearner",
    "alignment_with_backprop",
    "coefficient_history",
    "deeper_sizes",
    "feedback_errors",
    "fixed_episodes",
    "forward_activities",
    "get_term",
    "load_rule",
    "meta_train_rule",
    "emnist_episodes",
    "mnist_episodes",
    "omniglot_episodes",
    "online_accuracy",
    "online_evaluation",
    "plasticity_update",
    "register_term",
    "rule_formula",
    "rule_learner",
    "rule_markdown",
    "rule_table",
    "save_rule",
    "save_rule_report",
    "surviving_terms",
    "term_updates",
    "unregister_term",
    "xavier_uniform",
]
