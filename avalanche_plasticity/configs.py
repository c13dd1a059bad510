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

from . import registry
from .presets import Preset

SCALES = ("quick", "cpu", "paper")


def scenario_names() -> tuple[str, ...]:
    """The registered scenarios (:func:`.registry.scenarios`)."""
    return tuple(registry.scenarios())


def learner_names() -> tuple[str, ...]:
    """The registered meta-learned learners (:func:`.registry.learners`)."""
    return tuple(registry.learners())


def strategy_names() -> tuple[str, ...]:
    """Every registered strategy: the learners' and those that are not meta-trained."""
    return tuple(registry.strategies())


def alignment_bases() -> tuple[str, ...]:
    """The strategies that run with a credit-assignment rule as ``"<base>+<rule>"``."""
    return tuple(n for n, s in registry.strategies().items() if s.alignment_base)


def default_scale(scenario: str) -> str:
    """The preset scale used when none is given (``quick`` on sine, ``cpu`` elsewhere)."""
    return registry.scenario_spec(scenario).default_scale


def presets(scenario: str, scale: str = "cpu") -> dict[str, Preset]:
    """The meta-trained learners' presets of ``scenario`` at ``scale``, as registered by each learner (on
    sine FLP and OML, on Omniglot also the plasticity rule, and below the paper scale the contrastive
    rule's complex synapse).

    :raises ValueError: an unknown scenario, or a scale it does not have (the message lists them).
    """
    return registry.learner_presets(scenario, scale)


# ---------------------------------------------------------------------------------------------------
# Comparison stream settings
# ---------------------------------------------------------------------------------------------------
def split_strategy(name: str) -> tuple[str, str | None]:
    """``(strategy, alignment rule)`` of a compared strategy's name: a registered strategy (rule ``None``),
    or ``"<base>+<rule>"`` with a base of :func:`alignment_bases` and a registered ``AlignmentPlugin``
    rule (``fa``, ``sa``, ``wm``, ...; see :func:`avalanche_plasticity.alignment.available_rules`).

    :raises ValueError: an unknown strategy, base or rule (the message lists what is accepted).
    """
    if not isinstance(name, str):
        raise ValueError(f"strategy names are strings, got {name!r}")
    if name in registry.strategies():
        return name, None
    from .alignment import available_rules

    rules = tuple(available_rules())
    bases = alignment_bases()
    base, plus, rule = name.partition("+")
    if plus and base in bases and rule in rules:
        return base, rule
    if plus and base in bases:
        raise ValueError(f"strategy {name!r}: unknown alignment rule {rule!r}; rules: {', '.join(rules)}")
    raise ValueError(
        f"unknown strategy {name!r}; choose from {', '.join(strategy_names())}, or <base>+<rule> with base "
        f"one of {', '.join(bases)} and rule one of {', '.join(rules)} (e.g. Naive+sa)"
    )


def runs_on(name: str, scenario: str) -> bool:
    """Whether strategy ``name`` runs on ``scenario``: its task types include the scenario's (the plasticity
    rules need a classification stream; the alignment rules run wherever their base does)."""
    spec = registry.strategy_spec(split_strategy(name)[0])
    return registry.scenario_spec(scenario).task in spec.tasks


def default_strategies(scenario: str, scale: str | None = None) -> tuple[str, ...]:
    """Every registered strategy that runs on ``scenario``, except the opt-in ones (e.g. the complex
    synapse, which adds minutes of meta-training), the learners without a preset there at ``scale``
    (default: the scenario's default scale), and the alignment-rule strategies such as ``Naive+sa``."""
    with_preset = registry.learner_presets(scenario, scale or default_scale(scenario))
    return tuple(
        n
        for n, s in registry.strategies().items()
        if runs_on(n, scenario) and not s.opt_in and (not s.meta_learned or n in with_preset)
    )


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
    :param ewc_lambda: EWC's penalty (None: the scenario's; 1 on sine, 100 on Omniglot).
    :param ewc_mode: ``"separate"`` (one penalty per past experience, Avalanche's default) or ``"online"``
        (online EWC: one running Fisher, for long streams such as 600 Omniglot classes).
    :param mem_size: Replay's buffer size (None: the scenario's; 200 on sine and Omniglot, 500 on the MNIST
        family, the Replay (500) of the standard benchmarks).
    :param si_lambda: SI's penalty (Zenke et al.'s c; None: the scenario's, picked on its validation streams).
    :param lwf_alpha: LwF's distillation weight; ``lwf_temperature`` its softmax temperature.
    :param setting: MNIST-family streams: ``"class"``-incremental (one head over every class seen) or
        ``"domain"``-incremental (each experience's classes relabelled 0, 1, ...).
    :param regime: MNIST-family streams: ``"online"`` (one pass, minibatches of 1: the meta-continual
        setting) or ``"standard"`` (minibatches of ``batch_size``, ``epochs`` passes).
    :param batch_size: the standard regime's training minibatch.
    :param epochs: the standard regime's passes over each experience.
    :param train_per_experience: MNIST-family streams: random training images kept per experience (None:
        all of them; the test streams keep every test image).
    :param readout: the output rule of the learners that offer a choice (FLP): ``"rule"`` (the meta-learned
        rule), ``"prototype"`` (class means read out by nearest mean, :mod:`avalanche_plasticity.prototypes`),
        ``"experience_prototype"`` (one mean per label and training experience, for domain-incremental
        streams), or None: the scenario's default (``prototype`` on the class-incremental streams: Omniglot
        and the MNIST family's ``class`` setting; ``experience_prototype`` on the MNIST family's ``domain``
        setting; ``rule`` elsewhere).
    :param prototype_layer: with the prototype readout, the layer whose activity the prototypes store (0:
        the trunk's features, 1: the first hidden layer), or None: the scenario's (picked on validation data:
        1 on Omniglot, 0 on the MNIST family).
    """

    num_classes: int = 50
    batches_per_function: int | None = None
    eval_points: tuple[int, ...] | None = None
    lr: dict[str, float] = field(default_factory=dict)
    ewc_lambda: float | None = None
    ewc_mode: Literal["separate", "online"] = "separate"
    mem_size: int | None = None
    si_lambda: float | None = None
    lwf_alpha: float = 1.0
    lwf_temperature: float = 2.0
    setting: Literal["class", "domain"] = "class"
    regime: Literal["online", "standard"] = "online"
    batch_size: int = 32
    epochs: int = 1
    train_per_experience: int | None = None
    readout: Literal["rule", "prototype", "experience_prototype"] | None = None
    prototype_layer: int | None = None

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
        with_lr = [n for n, s in registry.strategies().items() if s.has_lr]
        for k in self.lr:
            try:
                base, _ = split_strategy(k)
            except ValueError as e:
                raise ValueError(f"lr: {e}") from None
            if not registry.strategy_spec(base).has_lr:
                raise ValueError(
                    f"lr: {k!r} has no SGD learning rate; choose from {with_lr} or <base>+<rule>"
                )
        for k, v in self.lr.items():
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"lr[{k!r}] must be a finite number > 0, got {v!r}")
        for name in ("ewc_lambda", "si_lambda", "lwf_alpha", "lwf_temperature"):
            v = getattr(self, name)
            if v is None and name in ("ewc_lambda", "si_lambda"):  # the scenario's penalty
                continue
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
            if not ok or (name == "lwf_temperature" and v == 0):
                low = "> 0" if name == "lwf_temperature" else ">= 0"
                what = "None or a finite number" if name.endswith("_lambda") else "a finite number"
                raise ValueError(f"{name} must be {what} {low}, got {v!r}")
        if self.ewc_mode not in ("separate", "online"):
            raise ValueError(f"ewc_mode must be 'separate' or 'online', got {self.ewc_mode!r}")
        if self.mem_size is not None and (
            not isinstance(self.mem_size, int) or isinstance(self.mem_size, bool) or self.mem_size < 1
        ):
            what = "None (the scenario's) or a positive int"
            raise ValueError(f"mem_size must be {what}, got {self.mem_size!r}")
        if self.setting not in ("class", "domain"):
            raise ValueError(f"setting must be 'class' or 'domain', got {self.setting!r}")
        if self.regime not in ("online", "standard"):
            raise ValueError(f"regime must be 'online' or 'standard', got {self.regime!r}")
        for name in ("batch_size", "epochs"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        t = self.train_per_experience
        if t is not None and (not isinstance(t, int) or isinstance(t, bool) or t < 1):
            raise ValueError(f"train_per_experience must be None or a positive int, got {t!r}")
        if self.readout not in (None, "rule", "prototype", "experience_prototype"):
            raise ValueError(
                f"readout must be None, 'rule', 'prototype' or 'experience_prototype', got {self.readout!r}"
            )
        p = self.prototype_layer
        if p is not None and (not isinstance(p, int) or isinstance(p, bool) or p < 0):
            raise ValueError(f"prototype_layer must be None or an int >= 0, got {p!r}")


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
    items = [t.strip() for t in text.split(",") if t.strip()]
    # a JSON or Python list of strings (["a", "b"]) names the same items as [a, b]
    return [t[1:-1] if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'" else t for t in items]


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
    scope = _Scope(presets_, registry.scenario_spec(scenario).meta_source(), stream)
    stream_fields = _field_types(stream) if stream is not None else {}
    changes: dict[tuple[str | None, str], dict[str, Any]] = {}
    for key, text in overrides.items():
        parts = key.split(".")
        only = None
        if parts[0] in registry.learners():
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
        follow = registry.learner_spec(p.learner).follow_source
        if follow is not None:
            follow(scenario, p)
        _check_counts(p)
        method, supported = (
            getattr(p.meta, "meta_gradient", "stored"),
            registry.learner_spec(p.learner).meta_gradients,
        )
        if method not in supported:
            raise OverrideError(
                f"{p.learner}: meta_gradient {method!r} is not supported; it supports {supported} (prefix "
                "the setting with the learner that supports it, e.g. FLP.meta.meta_gradient=memory_lean)"
            )
        check = registry.scenario_spec(scenario).check_preset
        if check is not None:
            check(p)
    return presets_, stream


def learner_overrides(items: Iterable[str], scenarios: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` items that change learners' presets only (a benchmark that sets the stream itself
    takes these), checked on each scenario's default-scale presets before any work.

    :raises OverrideError: a malformed item, a stream setting, or a key no learner there has.
    """
    try:
        settings = parse_assignments(items)
    except OverrideError as err:
        raise OverrideError(f"--set: {err}") from None
    scenarios = list(scenarios)
    for key in settings:
        parts = key.split(".")
        parts = parts[1:] if parts[0] in registry.learners() else parts
        if parts and (parts[0] == "stream" or (len(parts) == 1 and parts[0] in _field_types(StreamConfig()))):
            hint = _learner_sections_hint(parts[-1], scenarios) if len(parts) == 1 else ""
            raise OverrideError(
                f"--set {key}: the benchmark sets the stream itself; only learner settings here{hint}"
            )
    for scenario in scenarios:
        apply_overrides(presets(scenario, default_scale(scenario)), settings, scenario=scenario)
    return settings


def _learner_sections_hint(name: str, scenarios: Iterable[str]) -> str:
    """Where a learner setting called ``name`` lives, for an error about a bare key that names a stream
    field (``lr`` is both the stream's SGD rate and a learner's meta-learning rate)."""
    found: set[str] = set()
    for scenario in scenarios:
        learners = presets(scenario, default_scale(scenario))
        scope = _Scope(learners, registry.scenario_spec(scenario).meta_source(), None)
        for learner in learners:
            found |= {f"{sec}.{name}" for sec, fields in scope.sections(learner).items() if name in fields}
    if not found:
        return " (written [LEARNER.]learner.KEY, [LEARNER.]meta.KEY or [LEARNER.]source.KEY)"
    return f" (a learner's {name} is written " + " or ".join(f"[LEARNER.]{f}" for f in sorted(found)) + ")"


def _check_counts(p: Preset) -> None:
    """Every integer setting of a learner's episode source is a count (>= 1), except seeds (>= 0): checked
    when the settings are resolved, so ``--show-config`` rejects what the run would."""
    for key, value in p.source.items():
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        low = 0 if key.endswith("seed") else 1
        if value < low:
            what = "a seed >= 0" if low == 0 else "a count >= 1"
            raise OverrideError(f"{p.learner}.source.{key} must be {what}, got {value}")


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
    scale = scale or default_scale(scenario)
    base = presets(scenario, scale)
    learners = list(base) if learners is None else learners
    unknown = set(learners) - set(base)
    if unknown:
        raise ValueError(f"learner must be one of {list(base)} on {scenario}, got {sorted(unknown)}")
    return apply_overrides({n: base[n] for n in learners}, overrides or {}, scenario=scenario, stream=stream)
