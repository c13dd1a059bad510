"""A Weights & Biases logger for Avalanche that works with wandb >= 0.28.

Avalanche 0.6.0's :class:`avalanche.logging.WandBLogger` fails with current wandb: its constructor calls
``wandb.util.generate_id`` (removed in wandb 0.28.2) and ``log_single_metric`` refers to
``wandb.viz.CustomChart`` (``wandb.viz`` no longer exists; the class lives in ``wandb.plot``).

Why a fresh :class:`~avalanche.logging.BaseLogger` subclass rather than a subclass of Avalanche's logger:
its constructor starts a run at once (through the broken ``before_run``), so every method that touches wandb
would have to be overridden anyway (``__init__``, ``before_run``, ``log_single_metric``,
``after_training_exp``, ``__setstate__``). What would be inherited is what we do not want: its
``after_training_exp`` logs every metric a second time (the ``EvaluationPlugin`` already passed them to
``log_metrics``), it logs with ``step=x_plot`` (wandb drops any row whose step is below the current one), it
relies on the global ``wandb.run``, and it re-starts a run when unpickled. Subclassing ``BaseLogger`` keeps
the Avalanche contract (``log_metrics`` / ``log_single_metric`` / strategy callbacks) without those.

Steps: Avalanche's ``x_plot`` (the strategy's training-iteration counter) is *not* passed as wandb's
``step=``. wandb 0.31 ignores, with a warning, any ``log(..., step=s)`` whose ``s`` is lower than the current
step, and ``x_plot`` can go backwards (a second strategy reusing a logger, custom metrics with their own
counters). Instead ``x_plot`` is logged as an ordinary field of each row and declared the x-axis of every
metric with ``define_metric("*", step_metric="x_plot")``; wandb's own ``_step`` just counts rows. Nothing is
ever dropped, and charts are still drawn against ``x_plot``. All values one Avalanche callback reports for
the same ``x_plot`` are written as one row.

Runs are created with ``reinit="create_new"``: every logger owns its own :class:`wandb.Run` (see
:attr:`WandBLogger.run`), and several loggers can live in one process, one after the other or side by side.
The global ``wandb.run`` / ``wandb.log`` are not redirected to it.
"""

from __future__ import annotations

import json
import netrc
import os
import secrets
import string
import struct
import sys
import time
import warnings
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
import torch
import wandb
from avalanche.evaluation.metric_results import AlternativeValues, MetricValue, TensorImage
from avalanche.logging import BaseLogger
from wandb.proto import wandb_internal_pb2
from wandb.sdk.data_types.base_types.wb_value import WBValue

try:  # formerly wandb.viz.CustomChart; not a WBValue subclass in wandb 0.31
    from wandb.plot import CustomChart as _CustomChart
except ImportError:  # pragma: no cover - only for wandb versions without it
    _CustomChart = WBValue

if TYPE_CHECKING:
    from avalanche.training.templates import SupervisedTemplate

__all__ = [
    "MODES",
    "STEP_METRIC",
    "WandBLogger",
    "generate_run_id",
    "has_api_key",
    "read_run_records",
    "record_items",
    "resolve_mode",
]

MODES: tuple[str, ...] = ("online", "offline", "disabled")
"""The values accepted for the ``mode`` argument."""

STEP_METRIC = "x_plot"
"""The history field holding Avalanche's ``x_plot``; the x-axis of every other metric."""

# W&B's public cloud, reached directly or (wandb >= 0.31's default base URL) through CoreWeave Forge.
_CLOUD_API_HOSTS = ("api.wandb.ai", "api.forge.coreweave.com")
_LEGACY_ENV_MODES = {"dryrun": "offline", "run": "online"}
_TRUE = {"1", "true", "yes", "on"}
_ID_CHARS = string.ascii_lowercase + string.digits


class _Skip:
    """Marker for a value the logger does not log."""


_SKIP = _Skip()


def generate_run_id(length: int = 8) -> str:
    """A random base-36 run id (what ``wandb.util.generate_id`` used to return)."""
    return "".join(secrets.choice(_ID_CHARS) for _ in range(length))


def _netrc_path(env: Mapping[str, str]) -> Path | None:
    """The netrc file wandb would read: ``$NETRC``, else ``~/.netrc``, else ``~/_netrc``."""
    if env.get("NETRC"):
        return Path(env["NETRC"]).expanduser()
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    for name in (".netrc", "_netrc"):
        if (home / name).is_file():
            return home / name
    return None


def has_api_key(environ: Mapping[str, str] | None = None) -> bool:
    """Whether W&B credentials are available locally. Reads files only; never contacts the server.

    True when ``WANDB_API_KEY`` (or ``WANDB_IDENTITY_TOKEN_FILE``) is set, or when the netrc file
    (``$NETRC``, else ``~/.netrc``) has a password for the W&B host: the host of ``WANDB_BASE_URL`` if set,
    and for the public cloud (the default) ``api.wandb.ai`` or ``api.forge.coreweave.com``.

    :param environ: the environment to consult; defaults to ``os.environ``.
    """
    env = os.environ if environ is None else environ
    if env.get("WANDB_API_KEY") or env.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    path = _netrc_path(env)
    if path is None:
        return False
    base = urlsplit(env.get("WANDB_BASE_URL") or "")
    hosts = {base.netloc} if base.netloc else set()
    if not base.netloc or base.hostname in (*_CLOUD_API_HOSTS, "forge.coreweave.com"):
        hosts.update(_CLOUD_API_HOSTS)
    try:
        entries = netrc.netrc(str(path))
    except (OSError, netrc.NetrcParseError):
        return False
    return any((creds := entries.authenticators(host)) and creds[2] for host in hosts)


def resolve_mode(mode: str | None = None, *, environ: Mapping[str, str] | None = None) -> str:
    """The wandb mode a logger will use: ``"online"``, ``"offline"`` or ``"disabled"``.

    An explicit ``mode`` wins. With ``mode=None``: a non-empty ``WANDB_MODE`` is used (legacy ``dryrun`` /
    ``run`` map to offline / online); else a true ``WANDB_DISABLED`` gives ``"disabled"``; else
    ``"online"`` if :func:`has_api_key`, otherwise ``"offline"``.

    :param mode: the requested mode, or None to choose automatically.
    :param environ: the environment to consult; defaults to ``os.environ``.
    :raises ValueError: ``mode`` (or ``WANDB_MODE``) is not one of the accepted values.
    """
    accepted = ", ".join(repr(m) for m in MODES)
    if mode is not None:
        if not isinstance(mode, str) or mode not in MODES:
            raise ValueError(f"mode must be one of {accepted} or None (automatic), got {mode!r}")
        return mode
    env = os.environ if environ is None else environ
    env_mode = (env.get("WANDB_MODE") or "").strip().lower()
    if env_mode:
        resolved = _LEGACY_ENV_MODES.get(env_mode, env_mode)
        if resolved not in MODES:
            raise ValueError(
                f"mode is None and the WANDB_MODE environment variable is {env.get('WANDB_MODE')!r}; "
                f"it must be one of {accepted}"
            )
        return resolved
    if (env.get("WANDB_DISABLED") or "").strip().lower() in _TRUE:
        return "disabled"
    return "online" if has_api_key(env) else "offline"


# --------------------------------------------------------------------------- reading a run's record log
# wandb 0.31 has no Python reader for ``run-<id>.wandb`` any more (``wandb.sdk.internal.datastore`` is gone;
# the only reader is ``wandb leet inspect`` inside the Go wandb-core). The format: a 7-byte header
# (":W&B", magic 0xBEE1 little-endian, version 0), then LevelDB-log chunks in 32 KiB blocks, each with a
# 7-byte header (CRC-32 of type byte + payload, payload length, type FULL/FIRST/MIDDLE/LAST); a block tail
# too short for a header is zero padding. Each reassembled payload is a ``wandb_internal_pb2.Record``.

_LOG_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
_LOG_BLOCK = 32768
_CHUNK = struct.Struct("<IHB")
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _record_payloads(data: bytes) -> Iterator[bytes]:
    """The serialized records of a transaction log; stops quietly at a tail that is still being written."""
    if data[: len(_LOG_HEADER)] != _LOG_HEADER:
        raise ValueError("not a W&B transaction log (bad header)")
    pos, pending = len(_LOG_HEADER), b""
    while pos + _CHUNK.size <= len(data):
        space = _LOG_BLOCK - pos % _LOG_BLOCK
        crc, length, kind = _CHUNK.unpack_from(data, pos) if space >= _CHUNK.size else (0, 0, 0)
        if space < _CHUNK.size or (crc, length, kind) == (0, 0, 0):  # zero padding up to the next block
            pos += space
            continue
        end = pos + _CHUNK.size + length
        if end > len(data):
            return
        payload = data[pos + _CHUNK.size : end]
        if zlib.crc32(bytes([kind]) + payload) != crc:
            raise ValueError(f"corrupt W&B transaction log: bad checksum at offset {pos}")
        pos = end
        if kind == _FULL:
            yield payload
        elif kind == _FIRST:
            pending = payload
        elif kind == _MIDDLE:
            pending += payload
        elif kind == _LAST:
            yield pending + payload
            pending = b""
        else:
            raise ValueError(f"corrupt W&B transaction log: chunk type {kind} at offset {pos}")


def _parse_record(payload: bytes) -> wandb_internal_pb2.Record:
    record = wandb_internal_pb2.Record()
    record.ParseFromString(payload)
    return record


def read_run_records(path: str | os.PathLike[str]) -> list[wandb_internal_pb2.Record]:
    """Decode a run's transaction log (``run-<id>.wandb``) into ``wandb_internal_pb2.Record`` messages.

    Records come in write order; ``record.WhichOneof("record_type")`` tells their kind (``"run"``,
    ``"history"``, ``"summary"``, ``"config"``, ``"metric"``, ``"exit"``, ...). A log still being written is
    read up to its last complete record.

    :raises ValueError: the file is not a W&B transaction log, or a checksum does not match.
    """
    return [_parse_record(p) for p in _record_payloads(Path(path).read_bytes())]


def record_items(items: Any) -> dict[str, Any]:
    """History, summary or config items of a record (``key`` or ``nested_key`` + ``value_json``) as a
    nested dict, e.g. ``record_items(record.history.item)``; media (tables, images) come as nested keys."""
    out: dict[str, Any] = {}
    for item in items:
        path = [item.key] if item.key else list(item.nested_key)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = json.loads(item.value_json)
    return out


def _log_is_complete(path: Path, tail: int = 16) -> bool:
    """Whether one of the last ``tail`` records of the log is the run's exit record."""
    try:
        payloads = list(_record_payloads(path.read_bytes()))
    except (OSError, ValueError):
        return False
    return any(_parse_record(p).WhichOneof("record_type") == "exit" for p in reversed(payloads[-tail:]))


def _wait_for_complete_log(path: Path, timeout: float) -> bool:
    """Poll until the log holds its exit record; False if ``timeout`` seconds pass first."""
    deadline, delay = time.monotonic() + timeout, 0.01
    while not _log_is_complete(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(2 * delay, 0.2)
    return True


def _disable_wandb_telemetry() -> None:
    """Switch off wandb's own usage telemetry for this process.

    wandb 0.31 records SDK usage metrics (e.g. on every ``run.log``) through a process-wide OpenTelemetry
    recorder configured from the *global* wandb settings, not the run's, so a run started with
    ``mode="offline"`` still POSTs to the W&B server (api.forge.coreweave.com) from an export thread and at
    interpreter exit. Only wandb's anonymous usage data is affected; the run itself is not.
    """
    try:
        from wandb.analytics.opentelemetry import opentelemetry_proxy

        opentelemetry_proxy.disable()
    except (ImportError, AttributeError):  # other wandb versions: nothing to switch off
        pass


def _loaded_type(module: str, name: str) -> type | None:
    """A class from a module, only if that module is already imported (so no import is triggered)."""
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return cls if isinstance(cls, type) else None


def _is_image_like(value: Any) -> bool:
    """A PIL image or a matplotlib figure, recognised without importing either library."""
    pil_image = _loaded_type("PIL.Image", "Image")
    if pil_image is not None and isinstance(value, pil_image):
        return True
    return type(value).__module__.startswith("matplotlib") and hasattr(value, "savefig")


def _histogram(values: torch.Tensor | np.ndarray) -> wandb.Histogram:
    """A ``wandb.Histogram`` of the finite entries of a tensor or array (any device/dtype)."""
    if isinstance(values, torch.Tensor):
        arr = values.detach().to("cpu", torch.float64).reshape(-1).numpy()
    else:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    return wandb.Histogram(np_histogram=np.histogram(arr[np.isfinite(arr)]))


class WandBLogger(BaseLogger):
    """Log Avalanche metrics to Weights & Biases (wandb >= 0.28), offline unless credentials exist.

    Pass it to ``EvaluationPlugin(..., loggers=[logger])``. Every metric value becomes a history row field
    named after the metric, next to ``x_plot`` (see :data:`STEP_METRIC`): numbers and strings as they are,
    0-d tensors as numbers, other tensors and arrays as ``wandb.Histogram``, PIL images, matplotlib figures
    and Avalanche ``TensorImage`` as ``wandb.Image``, wandb data types (``wandb.Image``, ``wandb.Table``,
    ``wandb.plot`` charts...) unchanged. ``AlternativeValues`` are reduced with ``best_supported_value`` as
    Avalanche's own logger does. Raw bytes (``WeightCheckpoint``) are skipped; other unsupported values are
    skipped with one warning per metric name.

    After each training experience the field ``TrainingExperience`` (0, 1, ...) is logged.

    Usable as a context manager; :meth:`finish` / :meth:`close` are idempotent. Once finished, a logger
    ignores further metrics (with one warning) and its explicit ``log_*`` methods raise ``RuntimeError``.
    """

    def __init__(
        self,
        *,
        project: str = "avalanche-plasticity",
        name: str | None = None,
        group: str | None = None,
        config: Mapping[str, Any] | None = None,
        mode: str | None = None,
        dir: str | os.PathLike[str] | None = None,
        tags: Sequence[str] | None = None,
        job_type: str | None = None,
        settings: Mapping[str, Any] | None = None,
        offline_fallback: bool = True,
    ) -> None:
        """Start a W&B run.

        :param project: W&B project name.
        :param name: run display name (wandb picks one if None).
        :param group: run group; give all runs of one comparison the same group.
        :param config: the run config (hyper-parameters); copied.
        :param mode: ``"online"``, ``"offline"``, ``"disabled"``, or None to choose with
            :func:`resolve_mode` (``WANDB_MODE``, else online only if an API key is available).
        :param dir: folder under which wandb creates its ``wandb/`` run folders (created if missing);
            default: wandb's default (``$WANDB_DIR`` or the working directory).
        :param tags: run tags.
        :param job_type: run job type (e.g. ``"train"``, ``"eval"``).
        :param settings: extra ``wandb.Settings`` fields, overriding this logger's defaults (silent,
            ``console="off"``, ``init_timeout=30``; offline/disabled also turn off system metrics and
            machine-info probes).
        :param offline_fallback: in online mode, if ``wandb.init`` fails (no network, bad key, timeout),
            warn and start the run offline instead of raising, under a new run id (:attr:`run_id`; the
            failed attempt's id is kept in ``failed_online_run_id``). It can be synced later with
            ``wandb sync``.
        :raises ValueError: invalid ``mode`` (or ``WANDB_MODE``).
        """
        super().__init__()
        self.mode: str = resolve_mode(mode)
        self.run_id: str = generate_run_id()
        self.project = project
        self.name = name
        self.group = group
        self.config: dict[str, Any] = dict(config or {})
        self.dir: Path | None = Path(dir) if dir is not None else None
        self.tags: tuple[str, ...] = tuple(tags or ())
        self.job_type = job_type
        self.failed_online_run_id: str | None = None
        """The id of the online attempt that failed before the offline fallback; None otherwise."""
        self.run_dir: Path | None = None
        """The run's folder (``.../wandb/offline-run-<time>-<id>``); None in disabled mode."""
        self._user_settings: dict[str, Any] = dict(settings or {})
        self._run: Any = None
        self._finished = False
        self._exp_count = 0
        self._warned: set[str] = set()

        if self.mode != "online":
            _disable_wandb_telemetry()
        if self.dir is not None and self.mode != "disabled":
            self.dir.mkdir(parents=True, exist_ok=True)
        settings_obj = self._settings(self.mode)  # invalid `settings` fail here, before any fallback
        try:
            self._run = self._init_run(self.mode, settings_obj)
        except Exception as e:
            if self.mode != "online" or not offline_fallback:
                raise
            warnings.warn(
                f"wandb.init failed in online mode ({type(e).__name__}: {e}); logging offline instead",
                RuntimeWarning,
                stacklevel=2,
            )
            self.mode = "offline"
            _disable_wandb_telemetry()
            # A fresh id: after an init timeout wandb's service still holds the online attempt under the
            # first id, and an offline run with that id fails with "run ID ... is in use".
            self.failed_online_run_id = self.run_id
            self.run_id = generate_run_id()
            self._run = self._init_run("offline", self._settings("offline"))
        if self.mode != "disabled":
            self.run_dir = Path(self._run.settings.sync_dir)
        self._run.define_metric(STEP_METRIC)
        self._run.define_metric("*", step_metric=STEP_METRIC)

    # ------------------------------------------------------------------ run life cycle

    def _settings(self, mode: str) -> wandb.Settings:
        base: dict[str, Any] = {"init_timeout": 30.0, "console": "off", "save_code": False}
        if mode == "online":
            base["quiet"] = True
        else:  # no system-metrics sampler or cloud-metadata probes: nothing that could touch the network
            base.update(silent=True, x_disable_stats=True, x_disable_machine_info=True)
        return wandb.Settings(**{**base, **self._user_settings})

    def _init_run(self, mode: str, settings: wandb.Settings) -> Any:
        return wandb.init(
            project=self.project,
            name=self.name,
            group=self.group,
            job_type=self.job_type,
            tags=list(self.tags) or None,
            config=dict(self.config),
            dir=str(self.dir) if self.dir is not None and mode != "disabled" else None,  # disabled: no folder
            id=self.run_id,
            mode=mode,  # type: ignore[arg-type]
            reinit="create_new",
            settings=settings,
        )

    @property
    def run(self) -> Any:
        """The ``wandb.Run`` this logger writes to (a no-op run in disabled mode); None once finished."""
        return self._run

    @property
    def finished(self) -> bool:
        """Whether :meth:`finish` has been called."""
        return self._finished

    @property
    def run_file(self) -> Path | None:
        """The run's transaction log, ``<run_dir>/run-<id>.wandb``; None in disabled mode."""
        return self.run_dir / f"run-{self.run_id}.wandb" if self.run_dir is not None else None

    def finish(self, exit_code: int | None = None, *, timeout: float = 30.0) -> None:
        """Finish the run. Safe to call more than once.

        In offline mode this also waits until the run's record log (:attr:`run_file`) is complete on disk:
        wandb 0.31's ``Run.finish()`` returns before wandb-core has flushed and closed that file.

        :param exit_code: recorded exit code; non-zero marks the run as failed.
        :param timeout: at most this many seconds to wait for the record log (a warning if it runs out).
        """
        if self._finished:
            return
        self._finished = True
        run, self._run = self._run, None
        if run is None:
            return
        run.finish(exit_code=exit_code)
        if self.mode == "offline" and self.run_file is not None:
            if not _wait_for_complete_log(self.run_file, timeout):
                warnings.warn(
                    f"WandBLogger: {self.run_file} was not complete {timeout:g}s after finish()",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def close(self) -> None:
        """Alias of :meth:`finish`."""
        self.finish()

    def __enter__(self) -> WandBLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exit_code=1 if exc_type is not None else None)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle support (Avalanche checkpoints pickle loggers): the live run is not pickled, and an
        unpickled logger is finished. Create a new logger to keep logging."""
        state = self.__dict__.copy()
        state["_run"] = None
        state["_finished"] = True
        return state

    # ------------------------------------------------------------------ Avalanche logger API

    def _active_run(self, what: str) -> Any:
        if self._run is None:
            raise RuntimeError(f"WandBLogger.{what}: the run {self.run_id} is already finished")
        return self._run

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    def _supported_types(self) -> tuple[type, ...]:
        types: list[type] = [float, int, str, np.generic, np.ndarray, torch.Tensor, TensorImage]
        types += [WBValue, _CustomChart]
        for module, name in (("PIL.Image", "Image"), ("matplotlib.figure", "Figure")):
            cls = _loaded_type(module, name)
            if cls is not None:
                types.append(cls)
        return tuple(types)

    def _convert(self, name: str, value: Any) -> Any:
        """The wandb-loggable form of one metric value, or ``_SKIP``."""
        if isinstance(value, AlternativeValues):
            value = value.best_supported_value(*self._supported_types())
            if value is None:
                self._warn_once(name, f"WandBLogger: no alternative of metric {name!r} is supported; skipped")
                return _SKIP
        if isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, torch.Tensor):
            return value.item() if value.dim() == 0 else _histogram(value)
        if isinstance(value, np.ndarray):
            return value.item() if value.ndim == 0 else _histogram(value)
        if isinstance(value, TensorImage):
            return wandb.Image(value.image)  # a CHW tensor: wandb.Image permutes tensors to HWC itself
        if _is_image_like(value):
            return wandb.Image(value)
        if isinstance(value, WBValue | _CustomChart):
            return value
        if isinstance(value, bytes | bytearray):  # WeightCheckpoint: model weights, not a metric
            return _SKIP
        self._warn_once(name, f"WandBLogger: metric {name!r} has unsupported type {type(value).__name__}")
        return _SKIP

    def _log_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        if self._run is None:
            self._warn_once("__finished__", f"WandBLogger: run {self.run_id} is finished; metrics dropped")
            return
        for row in rows:
            self._run.log(row)

    def log_single_metric(self, name: str, value: Any, x_plot: int) -> None:
        """Log one metric value as its own history row ``{name: value, "x_plot": x_plot}``."""
        converted = self._convert(name, value)
        if converted is not _SKIP:
            self._log_rows([{name: converted, STEP_METRIC: x_plot}])

    def log_metrics(self, metric_values: list[MetricValue]) -> None:
        """Log the values of one Avalanche callback: one history row per distinct ``x_plot``.

        Dict-valued metrics are flattened to ``name/key`` as in :class:`BaseLogger`. A name seen twice for
        the same ``x_plot`` starts a new row, so no value is overwritten.
        """
        rows: list[dict[str, Any]] = []
        open_row: dict[int, dict[str, Any]] = {}
        for mval in metric_values:
            items = (
                [(f"{mval.name}/{k}", v) for k, v in mval.value.items()]
                if isinstance(mval.value, dict)
                else [(mval.name, mval.value)]
            )
            for name, value in items:
                converted = self._convert(name, value)
                if converted is _SKIP:
                    continue
                row = open_row.get(mval.x_plot)
                if row is None or name in row:
                    row = {STEP_METRIC: mval.x_plot}
                    rows.append(row)
                    open_row[mval.x_plot] = row
                row[name] = converted
        if rows:
            self._log_rows(rows)

    def after_training_exp(
        self, strategy: SupervisedTemplate, metric_values: list[MetricValue], **kwargs: Any
    ) -> None:
        """Strategy callback: log ``TrainingExperience`` (the number of experiences trained so far - 1)."""
        self._log_rows(
            [{"TrainingExperience": self._exp_count, STEP_METRIC: strategy.clock.train_iterations}]
        )
        self._exp_count += 1

    # ------------------------------------------------------------------ extra logging helpers

    def log_table(self, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> wandb.Table:
        """Log a ``wandb.Table`` under ``name`` (at the last ``x_plot``) and return it.

        :raises RuntimeError: the run is finished.
        """
        run = self._active_run("log_table")
        table = wandb.Table(columns=list(columns), data=[list(r) for r in rows])
        run.log({name: table})
        return table

    def log_figure(self, name: str, fig: Any) -> wandb.Image:
        """Log a matplotlib figure, PIL image or ``wandb.Image`` as a ``wandb.Image`` and return it.

        The figure is rendered, not closed: closing it is up to the caller.

        :raises TypeError: ``fig`` is none of those.
        :raises RuntimeError: the run is finished.
        """
        run = self._active_run("log_figure")
        if isinstance(fig, wandb.Image):
            image = fig
        elif _is_image_like(fig):
            image = wandb.Image(fig)
        else:
            raise TypeError(
                f"log_figure expects a matplotlib figure or a PIL image, got {type(fig).__name__}"
            )
        run.log({name: image})
        return image

    def log_summary(self, values: Mapping[str, Any]) -> None:
        """Set run summary values (the final numbers shown in the runs table).

        :raises RuntimeError: the run is finished.
        """
        self._active_run("log_summary").summary.update(dict(values))
