"""Shared pieces of the online strategies: input validation, the plastic-model wrapper, and the per-run
random state (:class:`RunSeeding`, :class:`SeedPlugin`) that makes every run depend on its seed alone."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import avalanche
import torch
import torch.nn as nn
from avalanche.core import SupervisedPlugin
from avalanche.training.templates import SupervisedTemplate

from avalanche_plasticity.data.seeding import derive_seed, seeded_generator
from avalanche_plasticity.meta_learning import load_learner

Tensor = torch.Tensor
_AVALANCHE_DIR = Path(avalanche.__file__).resolve().parent


PRETRAINED_PREFIX = "pretrained:"


def shipped_by_name(spec: str, kind: str) -> Any:
    """The shipped learner of class ``kind`` named by ``"pretrained:<scenario>[/<scale>]"`` (scale default
    ``cpu``), its hash verified (:func:`avalanche_plasticity.pretrained.load_pretrained`).

    :raises ValueError: a malformed name or no registered learner of that class.
    :raises PretrainedError: nothing shipped under that name, or a file that fails its hash check.
    """
    from avalanche_plasticity import registry
    from avalanche_plasticity.pretrained import load_pretrained

    scenario, _, scale = spec[len(PRETRAINED_PREFIX) :].partition("/")
    if not scenario or "/" in scale:
        raise ValueError(
            f"learner must be 'pretrained:<scenario>' or 'pretrained:<scenario>/<scale>', got {spec!r}"
        )
    names = [n for n, e in registry.learners().items() if e.learner_class.__name__ == kind]
    if not names:
        raise ValueError(f"no registered learner is a {kind}")
    return load_pretrained(names[0], scenario, scale or "cpu")


def resolve_learner(learner: Any, kind: str, load: Callable[..., Any] = load_learner) -> Any:
    """Accept a learner object, a checkpoint path (read by ``load(path, kind=kind)``) or
    ``"pretrained:<scenario>[/<scale>]"`` (a learner shipped with the package, see :func:`shipped_by_name`);
    return the learner (frozen, eval mode)."""
    if isinstance(learner, str) and learner.startswith(PRETRAINED_PREFIX):
        learner = shipped_by_name(learner, kind)
    elif isinstance(learner, (str, Path)):
        learner = load(learner, kind=kind)
    if type(learner).__name__ != kind:
        raise TypeError(
            f"learner must be a {kind}, the path to its checkpoint or 'pretrained:<scenario>', got "
            f"{type(learner).__name__}"
        )
    for p in learner.parameters():
        p.requires_grad_(False)
    return learner


def check_seed(seed: Any) -> int:
    """``seed`` if it is an int (not a bool); else ``ValueError`` naming it."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    return seed


def check_number(
    name: str,
    value: Any,
    *,
    low: float = 0.0,
    low_inclusive: bool = False,
    high: float = math.inf,
    high_inclusive: bool = False,
    integer: bool = False,
) -> None:
    """Raise ``ValueError`` naming ``name``, ``value`` and what is accepted unless ``value`` is a finite
    real number (an int when ``integer``) in the given interval. Bools are refused."""
    kind = "an int" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type:
        ok = False
    else:
        ok = math.isfinite(value)
        ok = ok and (value >= low if low_inclusive else value > low)
        ok = ok and (value <= high if high_inclusive else value < high)
    if not ok:
        bounds = []
        if low != -math.inf:
            bounds.append(f"{'>=' if low_inclusive else '>'} {low:g}")
        if high != math.inf:
            bounds.append(f"{'<=' if high_inclusive else '<'} {high:g}")
        finite = "" if integer else " (not NaN or inf)"
        raise ValueError(f"{name} must be {kind} {' and '.join(bounds)}{finite}, got {value!r}")


def check_inputs(
    x: Tensor,
    input_shape: tuple[int, ...],
    y: Tensor | None = None,
    num_outputs: int | None = None,
    task: str = "classification",
) -> None:
    """Raise ``ValueError`` for a wrong input shape, non-finite values or labels beyond the head (naming
    the offending labels, the head size and the accepted range)."""
    if x.dim() != len(input_shape) + 1 or tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"input batch must have shape (batch, {', '.join(map(str, input_shape))}), got {tuple(x.shape)}"
        )
    if not torch.isfinite(x).all():
        raise ValueError("input batch contains NaN or infinite values")
    if y is None:
        return
    if task == "classification":
        if y.dtype.is_floating_point or y.dim() != 1:
            raise ValueError(f"labels must be a 1-d integer tensor, got {y.dtype} of shape {tuple(y.shape)}")
        if len(y) and (y.min() < 0 or y.max() >= num_outputs):
            bad = sorted({int(v) for v in y[(y < 0) | (y >= num_outputs)].tolist()})
            shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
            raise ValueError(
                f"labels must be in [0, {num_outputs}) (the head has {num_outputs} units), "
                f"got label{'s' if len(bad) > 1 else ''} {shown} (labels in [{int(y.min())}, {int(y.max())}])"
            )
    else:
        if not torch.isfinite(y).all():
            raise ValueError("regression targets contain NaN or infinite values")


class RunSeeding:
    """The random state of one strategy, derived from its ``seed`` alone.

    * :attr:`generator` (stream ``(seed, "data_order")``) shuffles the training data: it is handed to the
      training ``DataLoader`` as its ``generator``.
    * While the strategy trains or evaluates (:meth:`enter` / :meth:`exit`, nestable), torch's global RNG
      holds the strategy's own state (stream ``(seed, "global")``, carried over from one call to the next)
      and the caller's state is put back afterwards. Whatever a plugin or Avalanche draws from the global
      RNG (the replay buffer's sampling, the replay loader's shuffling, dropout) thus depends on the seed
      only: ``torch.manual_seed`` calls, other strategies and metrics outside the run change nothing, and
      the run changes nothing outside it.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = check_seed(seed)
        self.generator = seeded_generator(seed, "data_order")
        self._own_state = seeded_generator(seed, "global").get_state()
        self._own_cuda: list[Tensor] | None = None
        self._saved: Tensor | None = None
        self._saved_cuda: list[Tensor] | None = None
        self._depth = 0

    def enter(self) -> None:
        """Swap the strategy's random state in (only the outermost of nested calls swaps)."""
        self._depth += 1
        if self._depth > 1:
            return
        self._saved = torch.get_rng_state()
        torch.set_rng_state(self._own_state)
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            self._saved_cuda = torch.cuda.get_rng_state_all()
            if self._own_cuda is None:
                torch.cuda.manual_seed_all(derive_seed(self.seed, "cuda"))
            else:
                torch.cuda.set_rng_state_all(self._own_cuda)

    def exit(self) -> None:
        """Keep the strategy's random state for its next call and give the caller's back."""
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        self._own_state = torch.get_rng_state()
        torch.set_rng_state(self._saved)
        if self._saved_cuda is not None:
            self._own_cuda = torch.cuda.get_rng_state_all()
            torch.cuda.set_rng_state_all(self._saved_cuda)
            self._saved_cuda = None
        self._saved = None

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """``enter()`` ... ``exit()``, also when the body raises."""
        self.enter()
        try:
            yield
        finally:
            self.exit()

    def dataloader_args(self, args: dict[str, Any]) -> dict[str, Any]:
        """``args`` with the data-order generator added when the loader shuffles."""
        if args.get("shuffle") and args.get("generator") is None:
            args = {**args, "generator": self.generator}
        return args


class SeedPlugin(SupervisedPlugin):
    """Seed any Avalanche strategy (Naive, EWC, Replay, ...) as this package's strategies seed themselves
    (:class:`RunSeeding`): training data order, replay sampling and every other draw made while the
    strategy trains or evaluates come from streams derived from ``seed``, never from torch's global RNG
    state, so the same seed gives the same curves in every process whatever ran before.

    Put it first in ``plugins`` (its ``before_training`` must run before any other plugin draws)::

        Naive(model=model, optimizer=opt, plugins=[SeedPlugin(seed), ReplayPlugin(500)], ...)

    The training DataLoader gets the data-order generator through the strategy's
    ``_obtain_common_dataloader_parameters`` (patched on that strategy object at its first ``train``);
    loaders built elsewhere (``ReplayPlugin``'s) shuffle from the swapped-in global state. If ``train``
    raises, the caller's global RNG state is not restored.

    :param seed: the run's seed (an int).
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seeding = RunSeeding(seed)

    @property
    def seed(self) -> int:
        return self.seeding.seed

    def _attach(self, strategy: Any) -> None:
        if getattr(strategy, "_seed_plugin_seeding", None) is self.seeding:
            return
        strategy._seed_plugin_seeding = self.seeding
        make_args = strategy._obtain_common_dataloader_parameters
        seeding = self.seeding

        def with_generator(**kwargs: Any) -> dict[str, Any]:
            return seeding.dataloader_args(make_args(**kwargs))

        strategy._obtain_common_dataloader_parameters = with_generator

    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._attach(strategy)
        self.seeding.enter()

    def after_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.seeding.exit()

    def before_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.seeding.enter()

    def after_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.seeding.exit()


def seeded_dataloaders(seed: int = 0) -> SeedPlugin:
    """A :class:`SeedPlugin` for ``seed``: pass it first in any strategy's ``plugins``."""
    return SeedPlugin(seed)


@contextlib.contextmanager
def avalanche_deprecations_silenced() -> Iterator[None]:
    """Drop the ``DeprecationWarning`` s that Avalanche 0.6 raises from its own modules (``ReplayPlugin``
    calls its storage policy's deprecated ``update`` after every experience); every other warning raised
    inside is passed on unchanged.

    Avalanche's ``@deprecated`` puts a ``"once"`` filter in front of every filter at each call, so a
    filter cannot hide them: the warnings raised inside are recorded and re-issued, less those.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if issubclass(w.category, DeprecationWarning) and _from_avalanche(w.filename):
            continue
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _from_avalanche(filename: str) -> bool:
    """Whether ``filename`` is a module of the installed ``avalanche`` package."""
    try:
        return Path(filename).resolve().is_relative_to(_AVALANCHE_DIR)
    except (OSError, ValueError):
        return False


class PlasticModel(nn.Module):
    """A meta-trained learner plus its current plastic (fast) weights, as a plain ``nn.Module``.

    ``forward(x)`` predicts with the current weights; ``learn(x, y)`` applies one online update of the
    learner's own rule. ``reset()`` returns to the meta-learned initial weights.
    """

    def __init__(self, learner: Any) -> None:
        super().__init__()
        self.learner = learner
        self.task = learner.config.task
        self._names: list[str] = []
        self.reset()

    def reset(self) -> None:
        for i, w in enumerate(self.learner.initial_fast_weights(1)):
            name = f"fast_{i}"
            self.register_buffer(name, w.detach().clone())
            if name not in self._names:
                self._names.append(name)

    @property
    def fast_weights(self) -> list[Tensor]:
        return [getattr(self, n) for n in self._names]

    def forward(self, x: Tensor) -> Tensor:
        check_inputs(x, self.learner.input_shape)
        return self.learner.predict(self.fast_weights, self.learner.features(x).unsqueeze(0))[0]

    def learn(self, x: Tensor, y: Tensor, *, checked: bool = False) -> None:
        """One online update on the minibatch ``(x, y)`` (``checked``: the caller has already run
        :func:`check_inputs` on it)."""
        if torch.is_grad_enabled():  # the strategy's training epoch already runs under no_grad
            with torch.no_grad():
                return self.learn(x, y, checked=checked)
        if not checked:
            check_inputs(x, self.learner.input_shape, y, self.learner.num_outputs, self.task)
        if len(x) == 0:
            return
        y = y.reshape(len(x), -1) if self.task == "regression" else y
        new = self.learner.step(self.fast_weights, self.learner.features(x).unsqueeze(0), y.unsqueeze(0))
        for name, w in zip(self._names, new, strict=True):
            if w is not getattr(self, name):  # an in-place rule keeps its tensors (and their cached views)
                setattr(self, name, w.detach())


def check_experience(strategy: Any) -> None:
    """Raise ``ValueError`` for an empty training experience."""
    ds = strategy.experience.dataset
    if len(ds) == 0:
        raise ValueError(f"training experience {strategy.experience.current_experience} is empty")


# Evaluation minibatch of the strategies that deploy a learner, unless one is given.
EVAL_MB_SIZE = 512

# The training callbacks that run inside an epoch, once per minibatch.
PER_STEP_HOOKS = (
    "before_training_iteration",
    "before_forward",
    "after_forward",
    "before_backward",
    "after_backward",
    "before_update",
    "after_update",
    "after_training_iteration",
)


class OnlineLearnerTemplate(SupervisedTemplate):
    """Shared base of the strategies that deploy a meta-trained learner: the default criterion follows
    the learner's task, ``eval_mb_size`` defaults to :data:`EVAL_MB_SIZE` (prediction is per example, so
    the batch changes nothing but the speed: an online stream trains at batch size 1 and evaluates 2,000
    test images in well under a second instead of half a minute), empty training experiences are
    refused (an empty test experience warns), and the optimizer given at construction is kept as is.

    Every minibatch, in training and in evaluation, is checked against the learner before the loss is
    computed (shape, finite values, labels within the head), so a bad label is the project's
    ``ValueError`` and never torch's ``IndexError``. The run's random state is its own
    (:class:`RunSeeding` from ``seed``): the same seed gives the same curves whatever torch's global RNG
    holds. Avalanche's ``ReplayPlugin`` deprecation warnings are dropped.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        task: str,
        criterion: nn.Module | None = None,
        train_mb_size: int = 1,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        eval_every: int = -1,
        seed: int = 0,
        **base_kwargs,
    ) -> None:
        check_number("train_mb_size", train_mb_size, low=1, low_inclusive=True, integer=True)
        check_number("train_epochs", train_epochs, low=1, low_inclusive=True, integer=True)
        if eval_mb_size is not None:
            check_number("eval_mb_size", eval_mb_size, low=1, low_inclusive=True, integer=True)
        check_number("eval_every", eval_every, low=-1, low_inclusive=True, integer=True)
        self.seeding = RunSeeding(seed)
        self.task = task
        if criterion is None:
            criterion = nn.MSELoss() if task == "regression" else nn.CrossEntropyLoss()
        super().__init__(
            model=model,
            optimizer=optimizer,
            criterion=criterion,
            train_mb_size=train_mb_size,
            train_epochs=train_epochs,
            eval_mb_size=eval_mb_size if eval_mb_size is not None else EVAL_MB_SIZE,
            eval_every=eval_every,
            **base_kwargs,
        )

    @property
    def seed(self) -> int:
        """The seed of this strategy's random state."""
        return self.seeding.seed

    def train(self, experiences, eval_streams=None, **kwargs):
        with self.seeding.active():
            return super().train(experiences, eval_streams, **kwargs)

    def eval(self, exp_list, **kwargs):
        with self.seeding.active():
            return super().eval(exp_list, **kwargs)

    def _obtain_common_dataloader_parameters(self, **kwargs):
        return self.seeding.dataloader_args(super()._obtain_common_dataloader_parameters(**kwargs))

    def make_optimizer(self, **kwargs) -> None:
        """Keep the optimizer given at construction (Avalanche's default would reset it to all model
        parameters, frozen meta-parameters included)."""

    def check_minibatch(self) -> None:
        """Raise ``ValueError`` for a minibatch the learner cannot take (wrong shape, NaN/inf, labels
        beyond the head), naming the phase and the experience."""
        learner = self.model.learner
        outputs = getattr(self.model, "num_outputs", learner.num_outputs)  # a readout may have its own
        try:
            check_inputs(self.mb_x, learner.input_shape, self.mb_y, outputs, self.task)
        except ValueError as e:
            phase = "training" if self.is_training else "evaluation"
            where = f"{type(self).__name__}, {phase} experience {self.experience.current_experience}"
            raise ValueError(f"{e} ({where})") from None

    def forward(self):
        self.check_minibatch()
        return super().forward()

    def _before_training_exp(self, **kwargs):
        check_experience(self)
        super()._before_training_exp(**kwargs)

    def _after_training_exp(self, **kwargs):
        with avalanche_deprecations_silenced():
            super()._after_training_exp(**kwargs)

    def _before_eval_exp(self, **kwargs):
        if len(self.experience.dataset) == 0:
            warnings.warn(
                f"{type(self).__name__}: test experience {self.experience.current_experience} is empty: "
                "its metrics are undefined (MSE is NaN; Avalanche reports loss and accuracy 0)",
                RuntimeWarning,
                stacklevel=2,
            )
        super()._before_eval_exp(**kwargs)


class LocalRuleTemplate(OnlineLearnerTemplate):
    """Base of the strategies whose learning is a local rule applied by the model (``PlasticModel``):
    each training minibatch is one ``model.learn(x, y)`` step, with no autograd, no backward pass and no
    optimizer step. Subclasses set ``reset_on_train`` (restart from the initial weights at each
    ``train()`` call)."""

    reset_on_train: bool = False

    def train(self, experiences, eval_streams=None, **kwargs):
        if self.reset_on_train:
            self.model.reset()
        return super().train(experiences, eval_streams, **kwargs)

    def training_epoch(self, **kwargs):
        self._checked_step = self.clock.train_iterations
        with torch.no_grad():
            if self.needs_per_step_hooks():
                super().training_epoch(**kwargs)
            else:
                self.online_pass()
        self.check_finite()

    def check_finite(self) -> None:
        """Raise ``FloatingPointError`` naming the layers and the online steps if a plastic weight tensor
        became non-finite since the last check. A diverged rule would otherwise go on predicting one class
        in silence; it is checked every :attr:`finite_check_every` online steps and at the end of each
        epoch (every step would cost a tenth of the step)."""
        step = self.clock.train_iterations
        bad = [i for i, w in enumerate(self.model.fast_weights) if not bool(torch.isfinite(w).all())]
        last = getattr(self, "_checked_step", 0)
        self._checked_step = step
        if bad:
            where = (
                f"at online step {step}"
                if step - last <= 1
                else f"between online steps {last + 1} and {step}"
            )
            raise FloatingPointError(
                f"{type(self).__name__}: the plastic weights of layer(s) {bad} became non-finite (NaN/inf) "
                f"{where} (of the stream), while training experience {self.experience.current_experience}: "
                "the rule diverges on this stream. Lower its rates, drop unstable terms (e.g. a negative "
                "weight decay), or meta-train it on episodes as long as the stream."
            )

    # online steps between two checks that the plastic weights are finite (and at each epoch's end)
    finite_check_every: int = 100

    def needs_per_step_hooks(self) -> bool:
        """Whether any plugin acts inside a training epoch (overrides one of :data:`PER_STEP_HOOKS`), or
        the evaluator has a training-phase metric, or periodic evaluation is on. If none does, an epoch is
        :meth:`online_pass`: the same updates, without a prediction and loss per step that nothing reads."""
        from avalanche.evaluation import PluginMetric
        from avalanche.evaluation.metric_definitions import GenericPluginMetric
        from avalanche.training.templates.base_sgd import PeriodicEval

        if self.eval_every > 0:
            return True

        def overrides(obj: Any, base: type) -> bool:
            return any(getattr(type(obj), h, None) is not getattr(base, h, None) for h in PER_STEP_HOOKS)

        for plugin in self.plugins:
            if plugin is self.clock or isinstance(plugin, PeriodicEval):
                continue  # online_pass keeps the clock's counters; periodic evaluation is off
            if plugin is self.evaluator:
                for m in plugin.metrics:  # a generic metric acts per step only in its training mode
                    generic = isinstance(m, GenericPluginMetric)
                    if (generic and m._mode != "eval") or (not generic and overrides(m, PluginMetric)):
                        return True
                continue
            if overrides(plugin, SupervisedPlugin):
                return True
        return False

    def online_pass(self) -> None:
        """One epoch of online updates, one per minibatch of the (possibly replay-augmented) training
        dataloader: each minibatch is checked and learned, and Avalanche's clock counts it."""
        for mbatch in self.dataloader:
            if self._stop_training:
                break
            self.mbatch = mbatch
            self._unpack_minibatch()
            self.check_minibatch()
            self.model.learn(self.mb_x, self.mb_y, checked=True)
            self.clock.after_training_iteration(self)
            if self.clock.train_iterations - self._checked_step >= self.finite_check_every:
                self.check_finite()

    def backward(self) -> None:
        """No backward pass: the rule is local."""

    def optimizer_step(self) -> None:
        """One online update of the rule on the current minibatch (checked by :meth:`forward`)."""
        self.model.learn(self.mb_x, self.mb_y, checked=True)
        if self.clock.train_iterations + 1 - self._checked_step >= self.finite_check_every:
            self.check_finite()
