"""The registries of learners, strategies and scenarios: what the CLI, ``compare``, ``--show-config`` and the
benchmarks know, declared once per learner or scenario in its own module (the built-in ones live in
:mod:`avalanche_plasticity.catalog`).

Three kinds of entry:

* :class:`LearnerSpec`: a meta-learned learner (config class, learner class, presets per scenario and
  scale, meta-trainer, checkpoint loader) together with the Avalanche strategy that deploys it.
* :class:`StrategySpec`: a strategy that is not meta-trained (Naive, EWC, Replay, a fixed local rule), built
  on the architecture of the scenario's reference learner.
* :class:`ScenarioSpec`: an evaluation stream (builder, metric and unit, meta-training episode source,
  default learning rates, task type).

Adding a learner or a scenario is one module that calls :func:`register_learner`, :func:`register_strategy`
or :func:`register_scenario`; nothing else names it::

    from avalanche_plasticity.registry import StrategySpec, register_strategy
    register_strategy(StrategySpec("MySGD", make=lambda ctx: ..., tasks=("classification",)))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .configs import StreamConfig
    from .presets import Preset

TASKS = ("regression", "classification")


@dataclass
class StrategyContext:
    """Everything a strategy factory may read when ``compare`` (or a benchmark) builds one strategy.

    :param learner: the meta-trained learner (``None`` for strategies that are not meta-trained).
    :param learner_config: the architecture of a strategy without a learner of its own (the reference
        learner's config, or the preset named by :attr:`StrategySpec.architecture_from`).
    :param task: ``"regression"`` or ``"classification"``.
    :param lr: the SGD learning rate (``None``: the strategy's own default).
    :param common: keyword arguments every Avalanche strategy takes (``train_mb_size``, ``eval_mb_size``,
        ``device``, ``evaluator``, ``plugins``).
    :param num_classes: the stream's classes (classification), for strategies that size a head.
    :param architecture: :attr:`StrategySpec.architecture_from`'s learner config, when named.
    :param settings: the stream's strategy settings (``ewc_lambda``, ``mem_size``, ``si_lambda``,
        ``lwf_alpha``, ``lwf_temperature``, ``readout``).
    """

    learner: Any
    learner_config: Any
    task: str
    lr: float | None
    seed: int
    common: dict[str, Any]
    num_classes: int | None = None
    architecture: Any = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StrategySpec:
    """A strategy of ``compare`` that is not meta-trained.

    :param name: the name users type (``--strategies NAME``).
    :param make: ``StrategyContext -> Avalanche strategy``.
    :param tasks: the task types it runs on (a local rule driven by a softmax error: classification).
    :param has_lr: whether it takes an SGD learning rate (``stream.lr.<name>``).
    :param alignment_base: whether ``"<name>+<rule>"`` runs it with a credit-assignment rule.
    :param architecture_from: a learner whose preset network it runs on (default: the reference learner).
    :param opt_in: run only when named (not in the default strategies).
    :param settings: the :attr:`StrategyContext.settings` it reads beyond the lr (``ewc_lambda``,
        ``mem_size``, ...), recorded in each run's config.
    :param revision: raised when a fix changes what the strategy computes, so that runs cached by an
        earlier revision (``run_comparison(run_cache=...)``) are run again; 0 adds nothing to a run's
        fingerprint, so the cached runs of strategies never revised stay valid.
    """

    name: str
    make: Callable[[StrategyContext], Any]
    tasks: tuple[str, ...] = TASKS
    has_lr: bool = True
    alignment_base: bool = False
    architecture_from: str | None = None
    opt_in: bool = False
    settings: tuple[str, ...] = ()
    revision: int = 0

    @property
    def meta_learned(self) -> bool:
        return False


@dataclass(frozen=True)
class LearnerSpec:
    """A meta-learned learner and the strategy that deploys it.

    :param presets: ``(scenario, scale) -> Preset | None`` (None: no preset of that scenario and scale).
    :param build: ``(preset, seed) -> learner`` with freshly initialised meta-parameters.
    :param meta_train: ``(learner, source, meta_config, *, world, **common) -> Any``: the meta-trainer
        (resumes from ``common["checkpoint"]``).
    :param load: ``path -> learner``, the checkpoint loader.
    :param make: ``StrategyContext -> Avalanche strategy`` deploying ``ctx.learner``.
    :param checkpoint_kinds: the learner kinds (class names) its checkpoints hold.
    :param deploy_lr: ``learner -> lr`` deployed when ``stream.lr`` does not name one (e.g. OML's
        ``inner_lr``); ``None`` with ``has_lr=False``: the rule is meta-learned, there is no SGD rate.
    :param distributed: whether its meta-trainer splits a meta-batch across ``torchrun`` processes.
    :param cpu_only: whether its meta-trainer runs on the CPU only.
    :param follow_source: ``(scenario, preset) -> preset`` adjusting settings derived from the episodes
        (e.g. a network's input and output sizes), applied after every override.
    :param meta_config_from_dict: rebuilds its meta-training config from a checkpoint's ``meta_config``
        (default: ``MetaTrainConfig(**d)``).
    :param resize_config: ``(config, k) -> config`` with a head of ``k`` units, for deploying it (or a
        baseline on its architecture) on a stream of ``k`` classes (see :mod:`.transfer`).
    :param meta_gradients: the ``meta.meta_gradient`` methods its meta-trainer supports.
    """

    name: str
    config_class: type
    learner_class: type
    presets: Callable[[str, str], Preset | None]
    build: Callable[[Preset, int], Any]
    meta_train: Callable[..., Any]
    load: Callable[[str | Path], Any]
    make: Callable[[StrategyContext], Any]
    checkpoint_kinds: tuple[str, ...] = ()
    tasks: tuple[str, ...] = TASKS
    has_lr: bool = True
    deploy_lr: Callable[[Any], float] | None = None
    distributed: bool = True
    cpu_only: bool = False
    opt_in: bool = False
    follow_source: Callable[[str, Preset], Preset] | None = None
    architecture_from: str | None = None
    alignment_base: bool = False
    settings: tuple[str, ...] = ()
    meta_config_from_dict: Callable[[dict[str, Any]], Any] | None = None
    resize_config: Callable[[Any, int], Any] | None = None
    meta_gradients: tuple[str, ...] = ("stored",)

    def with_outputs(self, learner: Any, k: int) -> Any:
        """``learner`` with the first ``k`` units of its head (itself when it has ``k``).

        :raises ValueError: the learner cannot be resized (no ``resize_config``) or has fewer units.
        """
        if self.resize_config is None:
            if int(learner.num_outputs) == k:
                return learner
            raise ValueError(f"{self.name} cannot resize its head from {learner.num_outputs} to {k} units")
        from .presets import Preset
        from .transfer import keep_first_outputs

        return keep_first_outputs(
            learner, k, self.resize_config, lambda c: self.build(Preset(self.name, c, None), 0)
        )

    def meta_config(self, saved: Mapping[str, Any] | None) -> Any:
        """The meta-training config stored in a checkpoint (``saved``), or the default one if none is."""
        if self.meta_config_from_dict is not None and saved is not None:
            return self.meta_config_from_dict(dict(saved))
        from .meta_learning import MetaTrainConfig

        return MetaTrainConfig(**saved) if saved is not None else MetaTrainConfig()

    @property
    def meta_learned(self) -> bool:
        return True


@dataclass(frozen=True)
class ScenarioSpec:
    """An evaluation scenario of ``compare``.

    :param task: ``"regression"`` or ``"classification"``.
    :param metric: the reported metric's name (``"mse"``, ``"accuracy"``); ``metric_key`` is the Avalanche
        stream metric it is read from (``"MSE_Stream"``, ``"Top1_Acc_Stream"``).
    :param lower_is_better: MSE yes, accuracy no (plots use a log scale and a reversed colour map).
    :param scales: the preset scales it has; ``default_scale`` the one used when none is given.
    :param meta_source: ``() -> factory`` of the meta-training episode source (imported on demand; the
        factory's keyword-only arguments are the ``source.*`` settings, and it is called as
        ``factory(**source, root=root)`` when ``data_backed``).
    :param stream_settings: ``(stream_config, learner_config, source) -> benchmark kwargs``: the stream's
        shape follows the learner's meta-training episodes.
    :param make_stream: ``(settings, seed, root) -> Avalanche benchmark``.
    :param default_lr: SGD learning rates by strategy name (others: 0.01).
    :param validated_lr: ``stream_config -> SGD learning rates by strategy name`` picked on the scenario's
        validation streams for that kind of stream; they take precedence over ``default_lr`` and over a
        learner's meta-trained rate (``deploy_lr``), and ``stream.lr`` over them.
    :param ewc_lambda: EWC's penalty on this scenario.
    :param si_lambda: SI's penalty (c) on this scenario.
    :param mem_size: Replay's buffer on this scenario.
    :param train_mb_size: ``(stream_config, source) -> minibatch size`` of the stream's training.
    :param train_epochs: ``stream_config -> passes`` over each training experience.
    :param num_classes: ``stream_config -> classes`` a head must cover (classification; ``None``: the
        stream config's ``num_classes``).
    :param eval_points: ``stream_config -> numbers of experiences after which to evaluate`` (None: all).
    :param check_preset: ``(preset) -> None``, raising ``ValueError`` when a learner's settings do not
        fit the scenario's data (e.g. input size against image size).
    :param stream_options: the :class:`StreamConfig` fields it reads beyond the common ones.
    :param data_backed: whether its data come from files (Avalanche and the data root are needed).
    :param stream_fix: what to set so that all strategies run on one stream (for the error message).
    :param presets_from: the scenario whose presets its learners use (meta-training happens there).
    :param size_heads: deploy learners (and build baselines) with a head of ``num_classes(stream)`` units,
        keeping the first units of a larger meta-trained head (transfer to a stream with fewer classes).
    :param readout: ``stream_config -> readout`` the learners that offer a choice use when
        ``stream.readout`` is None (``"rule"``, ``"prototype"`` or ``"experience_prototype"``).
    :param prototype_layer: the prototype readout's layer when ``stream.prototype_layer`` is None (picked on
        the scenario's validation data).
    :param hosts_benchmarks: a user's own benchmark runs with this scenario's presets and settings when no
        scenario is named (:func:`benchmark_scenario`).
    """

    name: str
    task: str
    metric: str
    metric_key: str
    title: str
    unit: str
    lower_is_better: bool
    scales: tuple[str, ...]
    default_scale: str
    meta_source: Callable[[], Callable[..., Any]]
    stream_settings: Callable[[StreamConfig, Any, Mapping[str, Any]], dict[str, Any]]
    make_stream: Callable[[Mapping[str, Any], int, str | Path | None], Any]
    default_lr: Mapping[str, float] = field(default_factory=dict)
    validated_lr: Callable[[StreamConfig], Mapping[str, float]] = lambda stream: {}
    ewc_lambda: float = 100.0
    si_lambda: float = 1.0
    mem_size: int = 200
    train_mb_size: Callable[[StreamConfig, Mapping[str, Any]], int] = lambda stream, source: 1
    train_epochs: Callable[[StreamConfig], int] = lambda stream: 1
    num_classes: Callable[[StreamConfig], int] | None = None
    eval_points: Callable[[StreamConfig], tuple[int, ...] | None] = lambda stream: stream.eval_points
    check_preset: Callable[[Preset], None] | None = None
    stream_options: tuple[str, ...] = ()
    data_backed: bool = True
    stream_fix: str = "the same settings for all"
    presets_from: str | None = None
    size_heads: bool = False
    readout: Callable[[StreamConfig], str] = lambda stream: "rule"
    prototype_layer: int = 0
    hosts_benchmarks: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"scenario {self.name!r}: task must be one of {TASKS}, got {self.task!r}")
        if self.default_scale not in self.scales:
            raise ValueError(
                f"scenario {self.name!r}: default_scale {self.default_scale!r} is not one of its scales "
                f"{self.scales}"
            )


_STRATEGIES: dict[str, LearnerSpec | StrategySpec] = {}
_SCENARIOS: dict[str, ScenarioSpec] = {}
_loaded = False


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        import avalanche_plasticity.catalog  # noqa: F401  (registers the built-in entries)


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not name or "+" in name or "." in name or " " in name:
        raise ValueError(f"{kind} name must be a non-empty string without '+', '.' or spaces, got {name!r}")


def register_learner(spec: LearnerSpec, *, replace: bool = False) -> LearnerSpec:
    """Add a meta-learned learner (and its strategy) to the registry.

    :raises ValueError: a bad name, a bad task type, or a name already taken (unless ``replace``).
    """
    return _register_strategy(spec, replace)


def register_strategy(spec: StrategySpec, *, replace: bool = False) -> StrategySpec:
    """Add a strategy that is not meta-trained to the registry (see :func:`register_learner`)."""
    return _register_strategy(spec, replace)


def _register_strategy(spec: Any, replace: bool) -> Any:
    _load_builtins()  # the built-in entries come first, whoever registers first
    if not isinstance(spec, (LearnerSpec, StrategySpec)):
        raise TypeError(f"expected a LearnerSpec or StrategySpec, got {type(spec).__name__}")
    _check_name("strategy", spec.name)
    bad = [t for t in spec.tasks if t not in TASKS]
    if bad or not spec.tasks:
        raise ValueError(
            f"strategy {spec.name!r}: tasks must be a non-empty subset of {TASKS}, got {spec.tasks}"
        )
    if spec.name in _STRATEGIES and not replace:
        raise ValueError(f"a strategy named {spec.name!r} is already registered (pass replace=True)")
    _STRATEGIES[spec.name] = spec
    return spec


def register_scenario(spec: ScenarioSpec, *, replace: bool = False) -> ScenarioSpec:
    """Add a scenario to the registry.

    :raises ValueError: a bad name, or a name already taken (unless ``replace``).
    """
    _load_builtins()
    if not isinstance(spec, ScenarioSpec):
        raise TypeError(f"expected a ScenarioSpec, got {type(spec).__name__}")
    _check_name("scenario", spec.name)
    if spec.name in _SCENARIOS and not replace:
        raise ValueError(f"a scenario named {spec.name!r} is already registered (pass replace=True)")
    _SCENARIOS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a strategy, learner or scenario (tests, notebooks)."""
    _STRATEGIES.pop(name, None)
    _SCENARIOS.pop(name, None)


def strategies() -> dict[str, LearnerSpec | StrategySpec]:
    """Every registered strategy by name, in registration order."""
    _load_builtins()
    return dict(_STRATEGIES)


def learners() -> dict[str, LearnerSpec]:
    """The meta-learned learners by name, in registration order."""
    return {n: s for n, s in strategies().items() if isinstance(s, LearnerSpec)}


def scenarios() -> dict[str, ScenarioSpec]:
    """Every registered scenario by name, in registration order."""
    _load_builtins()
    return dict(_SCENARIOS)


def strategy_spec(name: str) -> LearnerSpec | StrategySpec:
    """The entry of strategy ``name``.

    :raises ValueError: an unknown name (the message lists the registered ones).
    """
    table = strategies()
    if name not in table:
        raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(table)}")
    return table[name]


def learner_spec(name: str) -> LearnerSpec:
    """The entry of the meta-learned learner ``name``.

    :raises ValueError: an unknown name, or a strategy that is not meta-trained.
    """
    table = learners()
    if name not in table:
        raise ValueError(f"unknown learner {name!r}; choose from {', '.join(table)}")
    return table[name]


def learner_spec_of(learner: Any) -> LearnerSpec:
    """The entry whose learner class (or checkpoint kind) ``learner`` is.

    :raises ValueError: a learner of no registered kind.
    """
    kind = type(learner).__name__
    for spec in learners().values():
        if isinstance(learner, spec.learner_class) or kind in spec.checkpoint_kinds:
            return spec
    raise ValueError(
        f"a {kind} is not a registered learner; registered: "
        f"{', '.join(s.learner_class.__name__ for s in learners().values())}"
    )


def learner_spec_for_kind(kind: str) -> LearnerSpec:
    """The entry whose checkpoints hold learners of ``kind`` (a class name).

    :raises ValueError: no registered learner saves that kind.
    """
    for spec in learners().values():
        if kind == spec.learner_class.__name__ or kind in spec.checkpoint_kinds:
            return spec
    raise ValueError(f"no registered learner saves checkpoints of kind {kind!r}")


def default_scenario() -> str:
    """The scenario used when none is named: the first registered one (the built-in incremental sine,
    which needs no data)."""
    table = scenarios()
    if not table:
        raise ValueError("no scenario is registered")
    return next(iter(table))


def benchmark_scenario() -> str:
    """The scenario whose presets and settings a user's own Avalanche benchmark runs with when none is
    named (``run_comparison(benchmark=...)``): the first registered one marked ``hosts_benchmarks``."""
    for name, spec in scenarios().items():
        if spec.hosts_benchmarks:
            return name
    raise ValueError("no registered scenario hosts user benchmarks (ScenarioSpec.hosts_benchmarks)")


def scenario_spec(name: str) -> ScenarioSpec:
    """The entry of scenario ``name``.

    :raises ValueError: an unknown name (the message lists the registered ones).
    """
    table = scenarios()
    if name not in table:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(table)}")
    return table[name]


def preset_scenario(scenario: str) -> str:
    """The scenario whose presets (and meta-training episodes) ``scenario``'s learners use."""
    return scenario_spec(scenario).presets_from or scenario


def learner_presets(scenario: str, scale: str) -> dict[str, Preset]:
    """Every registered learner's preset on ``scenario`` at ``scale``, in registration order (learners
    without one there are left out).

    :raises ValueError: an unknown scenario, or a scale the scenario does not have.
    """
    spec = scenario_spec(scenario)
    if scale not in spec.scales:
        raise ValueError(f"scale must be one of {spec.scales} on {scenario!r}, got {scale!r}")
    source_scenario = spec.presets_from or scenario
    out = {}
    for name, entry in learners().items():
        preset = entry.presets(source_scenario, scale)
        if preset is not None:
            if preset.learner != name:
                raise ValueError(f"learner {name!r}: its preset says learner {preset.learner!r}")
            out[name] = dataclasses.replace(preset, source=dict(preset.source))
    return out
