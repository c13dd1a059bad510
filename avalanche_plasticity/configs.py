"""Run configuration: the learners' presets by scenario and scale, the comparison stream's settings
(:class:`StreamConfig`), and ``key=value`` overrides applied to them (:func:`configure`)."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

from .contrastive import ComplexSynapseConfig
from .presets import Preset, complex_synapse_preset, omniglot_presets, sine_presets
from .tasks import SineTaskSource

SCENARIOS = ("sine", "omniglot")
SCALES = ("quick", "cpu", "paper")
LEARNER_NAMES = ("FLP", "OML", "MetaPlasticityRule", "ComplexSynapse")
DEFAULT_SCALE = {"sine": "quick", "omniglot": "cpu"}


# ---------------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------------
def quick_sine_presets() -> dict[str, Preset]:
    """Incremental sine sized for the no-argument ``compare``: FLP and OML meta-trained from scratch side by
    side in about 3.5 minutes on 2 CPU cores.

    The ``cpu`` networks (11-64-64-64-1) on shorter episodes: 10 functions x 10 minibatches of 8 (the
    ``cpu``/paper episodes have 40), 8 episodes per meta-update, meta-lr 1e-2 (plasticity rates 1e-5).
    FLP: feedback without ReLU (``linear_feedback``), 350 meta-updates. OML: online SGD lr 0.01, 200
    meta-updates. The evaluation stream has the same shape (10 functions, 10 minibatches of 8 each)."""
    out = sine_presets("cpu")
    source = dict(functions_per_episode=10, batches_per_function=10, batch_size=8, query_per_function=32)
    flp, oml = out["FLP"], out["OML"]
    flp.learner_config = dataclasses.replace(flp.learner_config, linear_feedback=True)
    flp.meta = dataclasses.replace(flp.meta, steps=350, default_lr=1e-2, lr={"plasticity": 1e-5})
    oml.learner_config = dataclasses.replace(oml.learner_config, inner_lr=0.01)
    oml.meta = dataclasses.replace(oml.meta, steps=200, default_lr=1e-2, lr={})
    for p in out.values():
        p.meta = dataclasses.replace(p.meta, checkpoint_every=25)
        p.source = dict(source)
    return out


def presets(scenario: str, scale: str = "cpu") -> dict[str, Preset]:
    """The meta-trained learners' presets of ``scenario`` at ``scale`` (``quick``: sine only; ``cpu``;
    ``paper``): FLP and OML, on Omniglot the plasticity rule (``MetaPlasticityRule``), and below the paper
    scale the contrastive rule's complex synapse (``ComplexSynapse``, on OML's episodes)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {SCENARIOS}, got {scenario!r}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if scale == "quick":
        if scenario != "sine":
            raise ValueError("scale 'quick' exists for the sine scenario only; use 'cpu' or 'paper'")
        out = quick_sine_presets()
    else:
        out = sine_presets(scale) if scenario == "sine" else omniglot_presets(scale)
    if scale != "paper":  # no paper-scale continual setting of the complex synapse exists
        out["ComplexSynapse"] = complex_synapse_preset(scenario, out["OML"].source)
    return out


# ---------------------------------------------------------------------------------------------------
# Comparison stream settings
# ---------------------------------------------------------------------------------------------------
STRATEGIES = (
    "FLP",
    "OML",
    "Naive",
    "EWC",
    "Replay",
    "MetaPlasticityRule",
    "FeedbackAlignment",
    "ComplexSynapse",
)
# Local rules driven by a softmax output error: classification streams only.
CLASSIFICATION_ONLY = ("MetaPlasticityRule", "FeedbackAlignment")
# Strategies deployed without an SGD learning rate of their own (FLP's and the rule's are meta-learned).
NO_LR = ("FLP", "MetaPlasticityRule")
# EWC's lambda per scenario: on continual sine, lambda >= 10 diverges (NaN) at every SGD lr that learns.
EWC_LAMBDA = {"sine": 1.0, "omniglot": 100.0}
DEFAULT_LR = {
    "sine": {"OML": 0.003, "Naive": 0.01, "EWC": 0.01, "Replay": 0.01},
    # FeedbackAlignment: the pseudo-gradient rate with the lowest query cross-entropy on Omniglot episodes
    # at the paper's depth (benchmarks/plasticity_rules.py, `lr_grid`)
    "omniglot": {"OML": 0.03, "Naive": 0.01, "EWC": 0.01, "Replay": 0.01, "FeedbackAlignment": 0.03},
}


# Credit-assignment rules without weight symmetry (``AlignmentPlugin``) run inside these SGD strategies:
# the strategy "<base>+<rule>", e.g. "Naive+sa" or "EWC+fa", is the base trained with that rule.
ALIGNMENT_BASES = ("Naive", "EWC", "Replay")


def split_strategy(name: str) -> tuple[str, str | None]:
    """``(strategy, alignment rule)`` of a compared strategy's name: one of :data:`STRATEGIES` (rule
    ``None``), or ``"<base>+<rule>"`` with a base of :data:`ALIGNMENT_BASES` and a registered
    ``AlignmentPlugin`` rule (``fa``, ``sa``, ``wm``, ...; see
    :func:`avalanche_plasticity.alignment.available_rules`).

    :raises ValueError: an unknown strategy, base or rule (the message lists what is accepted).
    """
    if not isinstance(name, str):
        raise ValueError(f"strategy names are strings, got {name!r}")
    if name in STRATEGIES:
        return name, None
    from .alignment import available_rules

    rules = tuple(available_rules())
    base, plus, rule = name.partition("+")
    if plus and base in ALIGNMENT_BASES and rule in rules:
        return base, rule
    if plus and base in ALIGNMENT_BASES:
        raise ValueError(f"strategy {name!r}: unknown alignment rule {rule!r}; rules: {', '.join(rules)}")
    raise ValueError(
        f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}, or <base>+<rule> with base one of "
        f"{', '.join(ALIGNMENT_BASES)} and rule one of {', '.join(rules)} (e.g. Naive+sa)"
    )


def runs_on(name: str, scenario: str) -> bool:
    """Whether strategy ``name`` runs on ``scenario`` (the plasticity rules need a classification stream;
    the alignment rules run wherever their base does)."""
    return scenario != "sine" or split_strategy(name)[0] not in CLASSIFICATION_ONLY


# Run when named only: the complex synapse adds minutes of meta-training to the default comparison.
OPT_IN = ("ComplexSynapse",)


def default_strategies(scenario: str) -> tuple[str, ...]:
    """Every strategy of :data:`STRATEGIES` that runs on ``scenario`` (the plasticity rules need a
    classification stream), except the opt-in ones (:data:`OPT_IN`, and the alignment-rule strategies
    such as ``Naive+sa``)."""
    return tuple(s for s in STRATEGIES if runs_on(s, scenario) and s not in OPT_IN)


OMNIGLOT_MARKS = (10, 25, 50, 100, 200, 400, 600)


@dataclass
class StreamConfig:
    """The evaluation stream of a comparison and the settings of the SGD-trained strategies.

    :param num_classes: Omniglot: classes in the stream (one class per experience).
    :param batches_per_function: sine: minibatches per function (None: as in the learners' meta-training
        episodes). The number of functions is the learners' one-hot width (``functions_per_episode``).
    :param eval_points: numbers of experiences after which everything seen so far is evaluated (None:
        after every function for sine; at 10, 25, 50, 100, ... classes for Omniglot).
    :param lr: learning rates by strategy (OML's online PLN, Naive, EWC, Replay, FeedbackAlignment's
        pseudo-gradient, and alignment-rule strategies such as ``Naive+sa``); missing ones use the
        defaults: OML the ``inner_lr`` it was meta-trained with, FeedbackAlignment 0.03, an alignment-rule
        strategy its base's, the others 0.01.
    :param ewc_lambda: EWC's penalty (None: 1 on sine, 100 on Omniglot).
    :param mem_size: Replay's buffer size.
    """

    num_classes: int = 50
    batches_per_function: int | None = None
    eval_points: tuple[int, ...] | None = None
    lr: dict[str, float] = field(default_factory=dict)
    ewc_lambda: float | None = None
    mem_size: int = 200

    def __post_init__(self) -> None:
        if not isinstance(self.num_classes, int) or not 1 <= self.num_classes <= 659:
            raise ValueError(f"num_classes must be an int in [1, 659], got {self.num_classes!r}")
        if self.batches_per_function is not None and self.batches_per_function < 1:
            raise ValueError(f"batches_per_function must be None or >= 1, got {self.batches_per_function}")
        if self.eval_points is not None:
            self.eval_points = tuple(int(p) for p in self.eval_points)
            if not self.eval_points or min(self.eval_points) < 1:
                raise ValueError(
                    f"eval_points must be positive numbers of experiences, got {self.eval_points}"
                )
        with_lr = [s for s in STRATEGIES if s not in NO_LR]
        for k in self.lr:
            try:
                base, _ = split_strategy(k)
            except ValueError as e:
                raise ValueError(f"lr: {e}") from None
            if base in NO_LR:
                raise ValueError(
                    f"lr: {k!r} has no SGD learning rate; choose from {with_lr} or <base>+<rule>"
                )
        for k, v in self.lr.items():
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"lr[{k!r}] must be a finite number > 0, got {v!r}")
        if self.ewc_lambda is not None and not self.ewc_lambda >= 0:
            raise ValueError(f"ewc_lambda must be None or >= 0, got {self.ewc_lambda}")
        if not isinstance(self.mem_size, int) or self.mem_size < 1:
            raise ValueError(f"mem_size must be a positive int, got {self.mem_size!r}")


# ---------------------------------------------------------------------------------------------------
# Overrides: ``key=value`` strings applied to the preset dataclasses
# ---------------------------------------------------------------------------------------------------
SECTIONS = ("learner", "meta", "source", "stream")


class OverrideError(ValueError):
    """A ``--set key=value`` override names an unknown key or has a bad value."""


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """``["a=1", "b.c=x"]`` -> ``{"a": "1", "b.c": "x"}`` (a later repeat of a key wins).

    :raises OverrideError: an item without ``=`` or with an empty key.
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise OverrideError(f"expected key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _split_items(text: str) -> list[str]:
    text = text.strip()
    if text[:1] in "([" and text[-1:] in ")]":
        text = text[1:-1]
    return [t.strip() for t in text.split(",") if t.strip()]


def convert_value(text: str, tp: Any) -> Any:
    """Convert the command-line text ``text`` to type ``tp`` (a field annotation).

    Handles ``int``, ``float``, ``bool``, ``str``, ``Literal[...]``, ``X | None`` (``none``/``null``),
    ``tuple[T, ...]`` (``1,2,3``), ``dict[str, T]`` (``a:1,b:2`` or a Python/JSON literal) and ``dict``.

    :raises ValueError: the text is not a valid value of that type.
    """
    import ast

    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    if origin is Union or origin is types.UnionType:
        non_none = [a for a in args if a is not type(None)]
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        errors = []
        for a in non_none:
            try:
                return convert_value(text, a)
            except ValueError as e:
                errors.append(str(e))
        allowed = " or ".join([*(_type_name(a) for a in non_none), *(["None"] if type(None) in args else [])])
        raise ValueError(f"expected {allowed}, got {text!r}")
    if origin is Literal:
        for a in args:
            if text == str(a):
                return a
        raise ValueError(f"expected one of {list(args)}, got {text!r}")
    if tp is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean (true/false), got {text!r}")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    if tp is str:
        return text
    if origin is tuple or tp is tuple:
        elem = args[0] if args and (len(args) == 2 and args[1] is Ellipsis) else Any
        if args and not (len(args) == 2 and args[1] is Ellipsis):
            items = _split_items(text)
            if len(items) != len(args):
                raise ValueError(f"expected {len(args)} comma-separated values, got {text!r}")
            return tuple(convert_value(t, a) for t, a in zip(items, args, strict=True))
        return tuple(convert_value(t, elem) for t in _split_items(text))
    if origin is dict or tp is dict:
        value_tp = args[1] if len(args) == 2 else Any
        text = text.strip()
        if text.startswith("{"):
            try:
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise ValueError(f"expected a dict literal, got {text!r}") from None
            if not isinstance(parsed, dict):
                raise ValueError(f"expected a dict, got {text!r}")
            return {
                str(k): convert_value(str(v), value_tp) if value_tp is not Any else v
                for k, v in parsed.items()
            }
        out = {}
        for part in _split_items(text):
            k, sep, v = part.partition(":")
            if not sep:
                raise ValueError(f"expected key:value pairs separated by commas, got {text!r}")
            out[k.strip()] = convert_value(v.strip(), value_tp)
        return out
    raise ValueError(f"cannot set a value of type {_type_name(tp)} from the command line")


def _field_types(target: Any) -> dict[str, Any]:
    """Settable fields of a dataclass instance, or of a source factory's keyword arguments."""
    if dataclasses.is_dataclass(target):
        hints = typing.get_type_hints(type(target))
        return {f.name: hints[f.name] for f in dataclasses.fields(target) if f.init}
    import inspect

    hints = typing.get_type_hints(target.__init__ if isinstance(target, type) else target)
    return {
        n: hints.get(n, Any)
        for n, prm in inspect.signature(target).parameters.items()
        if prm.kind is inspect.Parameter.KEYWORD_ONLY and n != "root"
    }


@dataclass
class _Scope:
    """What one override may touch: per learner, its learner config, meta config and source; plus the
    stream config of a comparison."""

    learners: dict[str, Preset]
    source_factory: Callable[..., Any]
    stream: StreamConfig | None

    def sections(self, learner: str) -> dict[str, dict[str, Any]]:
        """``{section: {field: type}}`` of one learner's preset."""
        p = self.learners[learner]
        return {
            "learner": {k: v for k, v in _field_types(p.learner_config).items() if k != "seed"},
            "meta": {k: v for k, v in _field_types(p.meta).items() if k != "seed"},
            "source": _field_types(self.source_factory),
        }

    def valid_keys(self) -> str:
        lines = []
        for name in self.learners:
            for section, fields in self.sections(name).items():
                lines.append(f"{name}.{section}: {', '.join(sorted(fields))}")
        if self.stream is not None:
            lines.append(f"stream: {', '.join(sorted(_field_types(self.stream)))}")
        return "; ".join(lines)


def apply_overrides(
    learners: Mapping[str, Preset],
    overrides: Mapping[str, str],
    *,
    scenario: str = "sine",
    stream: StreamConfig | None = None,
) -> tuple[dict[str, Preset], StreamConfig | None]:
    """Apply ``key=value`` overrides to copies of the presets (and of the stream config).

    A key is ``[FLP.|OML.][learner.|meta.|source.|stream.]field[.entry]``: the learner prefix restricts
    it to one learner (default: every learner that has the field), the section names the dataclass
    (default: the one section that has the field), and ``.entry`` sets one entry of a dict field (e.g.
    ``meta.lr.plasticity=1e-5``). Values are converted to the field's type (:func:`convert_value`) and
    each changed dataclass is rebuilt with :func:`dataclasses.replace`, so its own validation runs. The
    seed is not a setting (``--seed``/``--meta-seed``).

    :raises OverrideError: unknown or ambiguous key (the message lists the valid ones) or a bad value.
    """
    presets_ = {n: dataclasses.replace(p, source=dict(p.source)) for n, p in learners.items()}
    scope = _Scope(presets_, _source_factory(scenario), stream)
    stream_fields = _field_types(stream) if stream is not None else {}
    changes: dict[tuple[str | None, str], dict[str, Any]] = {}
    for key, text in overrides.items():
        parts = key.split(".")
        only = None
        if parts[0] in LEARNER_NAMES:
            if parts[0] not in presets_:
                raise OverrideError(f"--set {key}: {parts[0]} is not in this run (have {list(presets_)})")
            only, parts = parts[0], parts[1:]
        section = parts.pop(0) if parts and parts[0] in SECTIONS else None
        if not parts:
            raise OverrideError(f"--set {key}: no field named; valid keys are {scope.valid_keys()}")
        if section == "stream" and stream is None:
            raise OverrideError(f"--set {key}: stream settings apply to 'compare' and 'evaluate' only")
        name, entry = parts[0], ".".join(parts[1:]) or None
        hits: list[tuple[str | None, str, Any]] = []
        for learner in [only] if only else list(presets_):
            for sec, fields in scope.sections(learner).items():
                if section in (None, sec) and name in fields:
                    if entry is not None and only is None and not _is_dict_type(fields[name]):
                        continue  # e.g. meta.lr.plasticity: the learners whose meta lr is a dict
                    hits.append((learner, sec, fields[name]))
        if only is None and section in (None, "stream") and name in stream_fields:
            hits.append((None, "stream", stream_fields[name]))
        if not hits:
            if name == "seed":
                raise OverrideError(f"--set {key}: the seed is set with --seed (or --meta-seed), not --set")
            raise OverrideError(f"--set {key}: unknown setting {name!r}; valid keys are {scope.valid_keys()}")
        sections_hit = sorted({sec for _, sec, _ in hits})
        if len(sections_hit) > 1:
            raise OverrideError(
                f"--set {key}: {name!r} is in several sections ({', '.join(sections_hit)}); "
                f"prefix it, e.g. {sections_hit[0]}.{name}"
            )
        for learner, sec, tp in hits:
            target = changes.setdefault((learner, sec), {})
            try:
                if entry is None:
                    target[name] = convert_value(text, tp)
                    continue
                dict_tp = next((a for a in (tp, *get_args(tp)) if _is_dict_type(a)), None)
                if dict_tp is None:
                    raise ValueError(f"{name!r} is not a dict, so '.{entry}' cannot be set")
                value_tp = get_args(dict_tp)[1] if len(get_args(dict_tp)) == 2 else Any
                current = target.get(name)
                if current is None:
                    current = dict(_current(presets_, stream, learner, sec, name) or {})
                current[entry] = convert_value(text, value_tp)
                target[name] = current
            except ValueError as e:
                raise OverrideError(f"--set {key}={text}: {e}") from None
    for (learner, sec), values in changes.items():
        try:
            if sec == "stream":
                stream = dataclasses.replace(stream, **values)
            elif sec == "source":
                presets_[learner].source.update(values)
            elif sec == "learner":
                p = presets_[learner]
                p.learner_config = dataclasses.replace(p.learner_config, **values)
            else:
                presets_[learner].meta = dataclasses.replace(presets_[learner].meta, **values)
        except (ValueError, TypeError) as e:
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
            where = f"{learner}.{sec}" if learner else sec
            raise OverrideError(f"--set {where}: {shown}: {e}") from None
    for p in presets_.values():
        _follow_source(scenario, p)
        _check_consistency(scenario, p)
    return presets_, stream


def _is_dict_type(tp: Any) -> bool:
    return any(a is dict or get_origin(a) is dict for a in (tp, *get_args(tp)))


def _current(presets_: Mapping[str, Preset], stream: Any, learner: str | None, sec: str, name: str) -> Any:
    if sec == "stream":
        return getattr(stream, name)
    p = presets_[learner]
    if sec == "source":
        return p.source.get(name)
    return getattr(p.learner_config if sec == "learner" else p.meta, name)


def input_size(learner_config: Any) -> int:
    """The network input width of a learner config (FLP: ``layer_sizes[0]``, OML: ``rln_sizes[0]``, a
    bilevel learner's MLP: ``network["sizes"][0]``)."""
    network = getattr(learner_config, "network", None)
    if network is not None:
        return network["sizes"][0]
    sizes = getattr(learner_config, "layer_sizes", None) or learner_config.rln_sizes
    return sizes[0]


def _follow_source(scenario: str, p: Preset) -> None:
    """The complex synapse's network spec is not a ``--set`` field: its input and output sizes follow its
    episodes (sine: ``functions_per_episode + 1`` inputs; Omniglot: ``image_size``, ``num_units``)."""
    if not isinstance(p.learner_config, ComplexSynapseConfig):
        return
    net = dict(p.learner_config.network)
    if scenario == "sine":
        net["sizes"] = [p.source.get("functions_per_episode", 10) + 1, *net["sizes"][1:]]
    else:
        net["image_size"] = p.source.get("image_size", 28)
        net["num_outputs"] = p.source.get("num_units", net["num_outputs"])
    p.learner_config = dataclasses.replace(p.learner_config, network=net)


def _check_consistency(scenario: str, p: Preset) -> None:
    shape = getattr(p.learner_config, "input_shape", None)
    if scenario == "omniglot" and shape is not None:
        size = p.source.get("image_size", 28)
        if tuple(shape) != (1, size, size):
            raise OverrideError(
                f"{p.learner}: input_shape {tuple(shape)} must be (1, image_size, image_size) = (1, {size}, "
                f"{size}), and layer_sizes[0] = {size * size}"
            )
    trunk = getattr(p.learner_config, "trunk", None)
    if scenario == "omniglot" and trunk is not None:
        size = p.source.get("image_size", 28)
        if trunk["image_size"] != size:
            raise OverrideError(
                f"{p.learner}: the conv trunk reads {trunk['image_size']}x{trunk['image_size']} images but "
                f"its episodes have image_size {size}; the trunk's image size is the scale's (cpu: 28, "
                "paper: 84): choose it with --scale"
            )
    if scenario == "sine":
        k = p.source.get("functions_per_episode", 10)
        if input_size(p.learner_config) != k + 1:
            raise OverrideError(
                f"{p.learner}: the input size ({input_size(p.learner_config)}) must be "
                f"functions_per_episode + 1 = {k + 1} (one-hot function slot + z)"
            )


def configure(
    scenario: str,
    scale: str | None = None,
    overrides: Mapping[str, str] | None = None,
    *,
    learners: Sequence[str] | None = None,
    stream: StreamConfig | None = None,
) -> tuple[dict[str, Preset], StreamConfig | None]:
    """The presets of ``learners`` (default: every learner of the scenario) for ``scenario``/``scale``
    (default scale: ``quick`` for sine, ``cpu`` for Omniglot) with ``overrides`` applied (see
    :func:`apply_overrides`)."""
    scale = scale or DEFAULT_SCALE.get(scenario, "cpu")
    base = presets(scenario, scale)
    learners = list(base) if learners is None else learners
    unknown = set(learners) - set(base)
    if unknown:
        raise ValueError(f"learner must be one of {list(base)} on {scenario}, got {sorted(unknown)}")
    return apply_overrides({n: base[n] for n in learners}, overrides or {}, scenario=scenario, stream=stream)


def _source_factory(scenario: str) -> Callable[..., Any]:
    if scenario == "sine":
        return SineTaskSource
    from avalanche_plasticity.scenarios import omniglot_meta_train_source

    return omniglot_meta_train_source
