"""Credit-assignment rules: how each layer's feedback weights are set or learned.

A rule is data: a feedback kind plus, for learned feedback, a weighted combination of the primitives of
:mod:`.primitives` (Kunin et al. 2020, coefficients from the authors' ``params.py``). Users compose their own
with :func:`make_rule` or register one with :func:`register_rule`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from .primitives import PRIMITIVES

FEEDBACK_KINDS = ("backprop", "random", "sign", "direct", "learned")
SIGN_MAGNITUDES = ("constant", "fixed_random", "batch_random")
INPUT_KINDS = ("activity", "noise")


@dataclass(frozen=True)
class AlignmentRule:
    """One credit-assignment rule.

    :param name: short name (``"sa"``, ``"fa"``, ...).
    :param feedback: ``"backprop"`` (F = W), ``"random"`` (fixed random F: feedback alignment), ``"sign"``
        (F = magnitude ⊙ sign(W)), ``"direct"`` (direct feedback alignment from the output error) or
        ``"learned"`` (F trained by the regularizer built from ``primitives``).
    :param sign_magnitude: for ``"sign"``: ``"constant"`` (uSF, the init std), ``"fixed_random"`` (frSF, |M|
        drawn once) or ``"batch_random"`` (brSF, |M| redrawn at every forward pass).
    :param primitives: primitive name -> coefficient, for ``"learned"``.
    :param tie_gradient: Kolen-Pollack: F receives the same update as W (plus the ``decay`` primitive).
    :param inputs: what the data primitives see: ``"activity"`` (the layer's last training input, the
        authors' default) or ``"noise"`` (white Gaussian inputs of std ``input_std``, their
        ``input_distribution`` option and Akrout et al.'s mirror phase: Σ = σ²I, so weight mirror's fixed
        point becomes ∝ Wᵀ).
    :param input_std: std of the noise inputs.
    :param description: one line for tables and ``--help``.
    """

    name: str
    feedback: str
    sign_magnitude: str | None = None
    primitives: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    tie_gradient: bool = False
    inputs: str = "activity"
    input_std: float = 1.0
    description: str = ""

    def __post_init__(self) -> None:
        if self.feedback not in FEEDBACK_KINDS:
            raise ValueError(f"feedback must be one of {FEEDBACK_KINDS}, got {self.feedback!r}")
        if self.inputs not in INPUT_KINDS:
            raise ValueError(f"inputs must be one of {INPUT_KINDS}, got {self.inputs!r}")
        if not (isinstance(self.input_std, int | float) and 0 < self.input_std < math.inf):
            raise ValueError(f"input_std must be a finite number > 0, got {self.input_std!r}")
        if self.feedback == "sign" and self.sign_magnitude not in SIGN_MAGNITUDES:
            raise ValueError(f"sign_magnitude must be one of {SIGN_MAGNITUDES}, got {self.sign_magnitude!r}")
        unknown = sorted(set(self.primitives) - set(PRIMITIVES))
        if unknown:
            raise ValueError(
                f"unknown primitive(s) {unknown} in rule {self.name!r}; known: {sorted(PRIMITIVES)}"
            )
        for key, value in self.primitives.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"coefficient of {key!r} must be a finite number, got {value!r}")
            if value < 0:
                raise ValueError(
                    f"coefficient of {key!r} must be >= 0 (the primitive carries its own sign), got {value}"
                )
        if self.feedback == "learned" and not any(self.primitives.values()) and not self.tie_gradient:
            raise ValueError(f"learned rule {self.name!r} needs at least one positive primitive coefficient")
        if self.feedback != "learned" and (self.primitives or self.tie_gradient):
            raise ValueError(
                f"only feedback='learned' rules take primitives; rule {self.name!r} is {self.feedback!r}"
            )
        object.__setattr__(self, "primitives", MappingProxyType(dict(self.primitives)))

    @property
    def learns_feedback(self) -> bool:
        return self.feedback == "learned"

    def formula(self) -> str:
        """The regularizer as text, e.g. ``R = 0.001·decay + 0.002·self``."""
        if self.feedback != "learned":
            return f"{self.name}: {self.feedback} feedback" + (
                f" ({self.sign_magnitude})" if self.sign_magnitude else ""
            )
        terms = " + ".join(f"{c:g}·{k}" for k, c in self.primitives.items() if c)
        return f"{self.name}: R = {terms}" + (" (+ tied task gradient)" if self.tie_gradient else "")


def _learned(
    name: str, description: str, tie: bool = False, inputs: str = "activity", **coefficients: float
) -> AlignmentRule:
    return AlignmentRule(
        name, "learned", primitives=coefficients, tie_gradient=tie, inputs=inputs, description=description
    )


_RULES: dict[str, AlignmentRule] = {
    r.name: r
    for r in (
        AlignmentRule("backprop", "backprop", description="exact backprop, F = W"),
        AlignmentRule("fa", "random", description="feedback alignment: fixed random F"),
        AlignmentRule("usf", "sign", "constant", description="uniform sign-concordant feedback"),
        AlignmentRule("frsf", "sign", "fixed_random", description="fixed random-magnitude sign feedback"),
        AlignmentRule("brsf", "sign", "batch_random", description="batchwise random-magnitude sign feedback"),
        AlignmentRule("dfa", "direct", description="direct feedback alignment from the output error"),
        # Weight mirror as Akrout et al. define it: white-noise inputs (on activity inputs its fixed point is
        # tilted by the input covariance, ΣWᵀ/2, and it trains poorly; pass inputs="activity" for that
        # variant).
        _learned("wm", "weight mirror (decay + amp, noise inputs)", inputs="noise", decay=1e-3, amp=1e-3),
        _learned("ia", "information alignment (amp + null + decay)", amp=2e-3, null=1e-3, decay=1e-3),
        _learned("sa", "symmetric alignment (decay + self)", decay=1e-3, self=2e-3),
        _learned("aa", "activation alignment (sparse + amp)", sparse=1e-3, amp=2e-3),
        _learned("kp", "Kolen-Pollack (tied updates + decay)", tie=True, decay=1e-3),
    )
}


def available_rules() -> dict[str, str]:
    """Registered rule names with their one-line descriptions."""
    return {name: r.description for name, r in _RULES.items()}


def register_rule(rule: AlignmentRule, *, overwrite: bool = False) -> AlignmentRule:
    """Add a user rule to the registry so that ``AlignmentPlugin(rule=name)`` finds it."""
    if rule.name in _RULES and not overwrite:
        raise ValueError(f"rule {rule.name!r} exists; pass overwrite=True to replace it")
    _RULES[rule.name] = rule
    return rule


def make_rule(
    rule: str | AlignmentRule, coefficients: dict[str, float] | None = None, **options
) -> AlignmentRule:
    """Resolve a rule by name (or pass one through), optionally overriding primitive coefficients.

    :param options: other :class:`AlignmentRule` fields to override (``inputs``, ``input_std``).
    :raises ValueError: for an unknown name (the message lists the registered rules), unknown primitives or
        invalid coefficients.
    """
    if isinstance(rule, str):
        if rule not in _RULES:
            raise ValueError(f"unknown rule {rule!r}; available: {', '.join(_RULES)}")
        rule = _RULES[rule]
    elif not isinstance(rule, AlignmentRule):
        raise TypeError(f"rule must be a name or an AlignmentRule, got {type(rule).__name__}")
    if coefficients:
        if not rule.learns_feedback:
            raise ValueError(
                f"coefficients apply to learned-feedback rules only; {rule.name!r} is {rule.feedback!r}"
            )
        rule = replace(rule, primitives={**rule.primitives, **coefficients})
    if options:
        allowed = {"inputs", "input_std"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ValueError(f"unknown rule option(s) {unknown}; allowed: {sorted(allowed)}")
        rule = replace(rule, **options)
    return rule
