"""WandBLogger: mode resolution, and real offline runs read back from wandb's ``run-<id>.wandb`` record log.

wandb 0.31 ships no Python reader for the record log (``wandb.sdk.internal.datastore`` is gone; reading
moved into the Go ``wandb-core``). ``read_run_records`` decodes the file with the protobuf classes wandb
ships (``wandb.proto.wandb_internal_pb2.Record``), checking every chunk's CRC. One test checks that it agrees
record for record with wandb's own reader, ``wandb leet inspect --json`` (run in wandb-core).

No network: every run is offline or disabled, credentials are removed from the environment, and
wandb's config/cache/artifact-staging folders point into the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from avalanche.benchmarks import tensors_benchmark
from avalanche.evaluation.metric_results import AlternativeValues, MetricValue, TensorImage
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from PIL import Image
from wandb.proto import wandb_internal_pb2

import avalanche_plasticity.wandb_logger as wl
from avalanche_plasticity.wandb_logger import (
    WandBLogger,
    has_api_key,
    read_run_records,
    record_items,
    resolve_mode,
)

WANDB_ENV = (
    "WANDB_API_KEY",
    "WANDB_IDENTITY_TOKEN_FILE",
    "WANDB_MODE",
    "WANDB_DISABLED",
    "WANDB_BASE_URL",
    "WANDB_DIR",
    "WANDB_RUN_ID",
    "WANDB_PROJECT",
    "WANDB_ENTITY",
    "WANDB_RUN_GROUP",
    "WANDB_JOB_TYPE",
    "WANDB_TAGS",
    "WANDB_NAME",
)
ACC_KEY = "Top1_Acc_Stream/eval_phase/test_stream/Task000"


def _isolate_wandb(mp: pytest.MonkeyPatch, root: Path) -> None:
    """No credentials, no WANDB_* overrides; wandb's global folders live under ``root``."""
    for var in WANDB_ENV:
        mp.delenv(var, raising=False)
    mp.setenv("NETRC", str(root / "no-such-netrc"))
    mp.setenv("WANDB_ERROR_REPORTING", "false")
    for var, sub in (
        ("WANDB_CONFIG_DIR", "config"),
        ("WANDB_CACHE_DIR", "cache"),
        ("WANDB_DATA_DIR", "data"),
        ("WANDB_ARTIFACT_DIR", "artifacts"),
    ):
        mp.setenv(var, str(root / "wandb-home" / sub))


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _isolate_wandb(monkeypatch, tmp_path)


# --------------------------------------------------------------------------- decoding records


def by_type(records: list[wandb_internal_pb2.Record], kind: str) -> list[Any]:
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]


def history(records: list[wandb_internal_pb2.Record]) -> list[dict[str, Any]]:
    return [record_items(h.item) for h in by_type(records, "history")]


def summary(records: list[wandb_internal_pb2.Record]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in by_type(records, "summary"):
        out.update(record_items(s.update))
    return out


def only_run_file(root: Path) -> Path:
    files = list(root.glob("wandb/*run-*/run-*.wandb"))
    assert len(files) == 1, files
    return files[0]


# --------------------------------------------------------------------------- mode resolution


def test_default_mode_without_api_key_is_offline():
    assert not has_api_key()
    assert resolve_mode() == "offline"
    assert resolve_mode(None, environ={}) == "offline"


def test_mode_with_api_key_resolves_online(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "fake-" + "0" * 35)
    assert has_api_key()
    assert resolve_mode() == "online"  # resolved only: no online run is started
    assert resolve_mode("offline") == "offline"  # an explicit mode wins
    monkeypatch.setenv("WANDB_MODE", "disabled")  # so does an explicit WANDB_MODE
    assert resolve_mode() == "disabled"
    monkeypatch.setenv("WANDB_MODE", "dryrun")  # legacy spelling of offline
    assert resolve_mode() == "offline"


def test_mode_netrc_entry_counts_as_api_key(tmp_path, monkeypatch):
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    netrc_file.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc_file))
    assert resolve_mode() == "online"
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")  # no entry for that host
    assert resolve_mode() == "offline"
    monkeypatch.setenv("WANDB_DISABLED", "true")
    assert resolve_mode() == "disabled"


def test_invalid_mode_raises_value_error(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"mode.*'online', 'offline', 'disabled'"):
        WandBLogger(mode="shared", dir=tmp_path / "wb")
    with pytest.raises(ValueError, match="mode"):
        resolve_mode("Offline")
    monkeypatch.setenv("WANDB_MODE", "bogus")
    with pytest.raises(ValueError, match="WANDB_MODE"):
        WandBLogger(dir=tmp_path / "wb")
    assert not (tmp_path / "wb").exists()  # failed before anything was created


def test_online_init_failure_falls_back_to_offline(tmp_path, monkeypatch):
    """An online run that cannot start (no network) becomes offline. wandb.init is faked for "online"."""
    real_init = wl.wandb.init

    def fake_init(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("mode") == "online":
            raise RuntimeError("simulated: no network")
        return real_init(*args, **kwargs)

    monkeypatch.setattr(wl.wandb, "init", fake_init)
    monkeypatch.setenv("WANDB_API_KEY", "fake-" + "0" * 35)
    with pytest.warns(RuntimeWarning, match="logging offline instead"):
        logger = WandBLogger(dir=tmp_path)
    with logger:
        assert logger.mode == "offline"
    assert logger.run_file is not None and logger.run_file.is_file()
    with pytest.raises(RuntimeError, match="simulated"):
        WandBLogger(dir=tmp_path, offline_fallback=False)


# --------------------------------------------------------------------------- a real Avalanche run


def tiny_benchmark(seed: int = 0):
    g = torch.Generator().manual_seed(seed)

    def exp(n: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 2, (n,), generator=g) + offset
        return torch.randn(n, 8, generator=g) + y[:, None].float(), y

    return tensors_benchmark(
        train_tensors=[exp(32, 0), exp(32, 2)], test_tensors=[exp(16, 0), exp(16, 2)], task_labels=[0, 0]
    )


@pytest.fixture(scope="module")
def avalanche_run(tmp_path_factory):
    """Naive on 2 tensor experiences, logged offline; returns (logger, eval results, records, wandb dir)."""
    root = tmp_path_factory.mktemp("avalanche_run")
    with pytest.MonkeyPatch.context() as mp:
        _isolate_wandb(mp, root)
        torch.manual_seed(0)
        config = {"lr": 0.05, "epochs": 1, "model": {"hidden": 16}}
        logger = WandBLogger(
            name="naive-tiny", group="cmp-1", job_type="test", tags=["ci"], config=config, dir=root
        )
        assert logger.mode == "offline"  # no API key -> offline by default
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
        evaluator = EvaluationPlugin(
            accuracy_metrics(epoch=True, experience=True, stream=True),
            loss_metrics(epoch=True),
            loggers=[logger],
        )
        strategy = Naive(
            model=model,
            optimizer=torch.optim.SGD(model.parameters(), lr=config["lr"]),
            criterion=torch.nn.CrossEntropyLoss(),
            train_mb_size=16,
            train_epochs=1,
            eval_mb_size=32,
            evaluator=evaluator,
            device="cpu",
        )
        bm = tiny_benchmark()
        for exp in bm.train_stream:
            strategy.train(exp)
        results = strategy.eval(bm.test_stream)
        logger.finish()
        logger.finish()  # idempotent
        yield logger, results, read_run_records(only_run_file(root)), root


def test_avalanche_metrics_are_in_the_offline_record_log(avalanche_run):
    logger, results, records, root = avalanche_run
    assert logger.run_file == only_run_file(root)
    assert logger.run_dir is not None and logger.run_dir.name.startswith("offline-run-")

    (run,) = by_type(records, "run")
    assert run.run_id == logger.run_id
    assert (run.project, run.display_name, run.run_group, run.job_type) == (
        "avalanche-plasticity",
        "naive-tiny",
        "cmp-1",
        "test",
    )
    assert list(run.tags) == ["ci"]
    config = record_items(run.config.update)
    assert config["lr"] == 0.05 and config["epochs"] == 1 and config["model"] == {"hidden": 16}

    rows = history(records)
    acc_rows = [r for r in rows if ACC_KEY in r]
    assert acc_rows, f"{ACC_KEY} not logged; keys: {sorted({k for r in rows for k in r})}"
    final_acc = acc_rows[-1][ACC_KEY]
    assert 0.0 <= final_acc <= 1.0
    assert final_acc == pytest.approx(results[ACC_KEY])
    assert acc_rows[-1]["x_plot"] == 4  # 2 experiences x 32 samples / mb 16 = 4 training iterations

    # every metric Avalanche returned was logged with the same final value
    logged_last: dict[str, Any] = {}
    for r in rows:
        logged_last.update(r)
    for key, value in results.items():
        assert logged_last[key] == pytest.approx(float(value)), key
    loss_key = "Loss_Epoch/train_phase/train_stream/Task000"
    losses = [r[loss_key] for r in rows if loss_key in r]
    assert len(losses) == 2 and all(0.0 < v < 10.0 for v in losses)
    assert [r["TrainingExperience"] for r in rows if "TrainingExperience" in r] == [0, 1]
    assert all("x_plot" in r for r in rows)  # x_plot is the x-axis of every row ...
    (glob_metric,) = [m for m in by_type(records, "metric") if m.glob_name == "*"]
    assert glob_metric.step_metric == "x_plot"  # ... declared with define_metric("*", step_metric=...)

    assert summary(records)[ACC_KEY] == pytest.approx(final_acc)
    (exit_record,) = by_type(records, "exit")
    assert exit_record.exit_code == 0


def test_reader_agrees_with_wandb_leet_inspect(avalanche_run):
    """Cross-check read_run_records against wandb's own record-log reader (Go, in wandb-core)."""
    logger, _, records, _ = avalanche_run
    wandb_cli = Path(sys.executable).with_name("wandb")
    if not wandb_cli.exists() and shutil.which("wandb") is None:
        pytest.skip("wandb CLI not found")
    cmd = [
        str(wandb_cli) if wandb_cli.exists() else "wandb",
        "leet",
        "inspect",
        "--json",
        str(logger.run_file),
    ]
    env = {**os.environ, "WANDB_MODE": "offline"}  # offline => wandb-core runs with --no-observability
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    if proc.returncode != 0 and "leet" in proc.stderr and "No such command" in proc.stderr:
        pytest.skip("this wandb has no `leet inspect`")
    assert proc.returncode == 0, proc.stderr
    theirs = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [t["type"] for t in theirs] == [r.WhichOneof("record_type") for r in records]
    their_history = [t["history"]["item"] for t in theirs if t["type"] == "history"]
    ours = history(records)
    assert len(their_history) == len(ours)
    for mine, their in zip(ours, their_history, strict=True):
        assert mine.keys() == their.keys()
        assert {k: v for k, v in mine.items() if k != "_runtime"} == pytest.approx(
            {k: v for k, v in their.items() if k != "_runtime"}
        )


# --------------------------------------------------------------------------- media, tables, summary


def test_tables_summary_media_and_out_of_order_steps(tmp_path):
    with WandBLogger(dir=tmp_path, config={"seed": 3}) as logger:
        logger.log_single_metric("m", 1.0, 10)
        logger.log_single_metric("m", 2.0, 3)  # x_plot goes backwards: must not be dropped
        logger.log_metrics(
            [
                MetricValue(None, "weights", torch.randn(50), 11),
                MetricValue(None, "alt", AlternativeValues(object(), 0.25), 11),
                MetricValue(None, "img", Image.new("RGB", (4, 4), "red"), 11),
                MetricValue(None, "cm", TensorImage(torch.rand(3, 5, 6)), 11),
                MetricValue(None, "per_class", {0: 0.5, 1: 0.75}, 11),
                MetricValue(None, "ckpt", b"weights-blob", 11),  # WeightCheckpoint bytes: skipped
            ]
        )
        table = logger.log_table("results", ["strategy", "acc"], [("naive", 0.5), ("flp", 0.75)])
        logger.log_figure("pic", Image.new("L", (3, 3)))
        with pytest.raises(TypeError):
            logger.log_figure("bad", 42)
        logger.log_summary({"final_acc": 0.75, "best": {"acc": 0.8}})
        with pytest.warns(RuntimeWarning, match="unsupported type"):
            logger.log_single_metric("weird", object(), 12)
    assert table.data == [["naive", 0.5], ["flp", 0.75]]

    records = read_run_records(only_run_file(tmp_path))
    rows = history(records)
    assert [(r["m"], r["x_plot"]) for r in rows if "m" in r] == [(1.0, 10), (2.0, 3)]
    (media,) = [r for r in rows if "weights" in r]  # one callback, one x_plot -> one row
    assert media["x_plot"] == 11
    assert media["weights"]["_type"] == "histogram"
    assert sum(media["weights"]["values"]) == 50
    assert media["alt"] == 0.25
    assert media["img"]["_type"] == media["cm"]["_type"] == "image-file"
    assert (media["cm"]["height"], media["cm"]["width"]) == (5, 6)  # CHW tensor -> HxW image
    assert media["per_class/0"] == 0.5 and media["per_class/1"] == 0.75
    assert "ckpt" not in media
    (table_row,) = [r for r in rows if "results" in r]
    assert table_row["results"]["_type"] == "table-file"
    assert (table_row["results"]["nrows"], table_row["results"]["ncols"]) == (2, 2)
    assert (only_run_file(tmp_path).parent / "files" / table_row["results"]["path"]).is_file()
    assert any(r.get("pic", {}).get("_type") == "image-file" for r in rows)
    final = summary(records)
    assert final["final_acc"] == 0.75 and final["best"] == {"acc": 0.8}
    assert record_items(by_type(records, "run")[0].config.update)["seed"] == 3


def test_matplotlib_figure_is_logged_as_image(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    with WandBLogger(dir=tmp_path) as logger:
        logger.log_figure("curve", fig)
        logger.log_single_metric("fig_metric", fig, 1)
    plt.close(fig)
    rows = history(read_run_records(only_run_file(tmp_path)))
    assert [r["curve"]["_type"] for r in rows if "curve" in r] == ["image-file"]
    assert [r["fig_metric"]["_type"] for r in rows if "fig_metric" in r] == ["image-file"]


def test_read_run_records_truncated_and_corrupt_logs(avalanche_run, tmp_path):
    logger, _, records, _ = avalanche_run
    data = logger.run_file.read_bytes()
    partial = tmp_path / "partial.wandb"
    partial.write_bytes(data[: len(data) // 2])  # as if still being written: a prefix of the records
    prefix = read_run_records(partial)
    assert 0 < len(prefix) < len(records)
    assert [r.SerializeToString() for r in prefix] == [r.SerializeToString() for r in records[: len(prefix)]]
    corrupt = tmp_path / "corrupt.wandb"
    corrupt.write_bytes(data[:20] + bytes([data[20] ^ 0xFF]) + data[21:])
    with pytest.raises(ValueError, match="checksum"):
        read_run_records(corrupt)
    with pytest.raises(ValueError, match="not a W&B transaction log"):
        read_run_records(logger.run_dir / "files" / "requirements.txt")


# --------------------------------------------------------------------------- no network


def test_offline_run_opens_no_network_connection(tmp_path, monkeypatch):
    """No non-local socket during an offline run, and wandb's exit-time usage telemetry is switched off."""
    monkeypatch.delenv("WANDB_ERROR_REPORTING")  # let wandb's own telemetry run, if it still would
    local = {None, "localhost", "127.0.0.1", "::1"}
    attempts: list[tuple[str, Any]] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in local:
            attempts.append(("getaddrinfo", host))
        return real_getaddrinfo(host, *args, **kwargs)

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if self.family != socket.AF_UNIX and address[0] not in local:
            attempts.append(("connect", address))
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    with WandBLogger(dir=tmp_path, config={"a": 1}) as logger:
        logger.log_single_metric("m", 1.0, 1)
        logger.log_table("t", ["a"], [[1]])
    assert attempts == []
    from wandb.analytics.opentelemetry import opentelemetry_proxy

    assert opentelemetry_proxy.get_open_telemetry_proxy() is None  # nothing left to POST at exit


# --------------------------------------------------------------------------- disabled, life cycle


def test_disabled_mode_logs_nothing_to_disk(tmp_path):
    out = tmp_path / "wb"
    with WandBLogger(mode="disabled", dir=out, config={"a": 1}) as logger:
        assert logger.mode == "disabled" and logger.run_dir is None and logger.run_file is None
        logger.log_single_metric("m", 1.0, 0)
        logger.log_metrics([MetricValue(None, "h", torch.randn(5), 1)])
        logger.log_table("t", ["a"], [[1]])
        logger.log_summary({"s": 1})
    assert not out.exists()


def test_sequential_runs_context_manager_and_finish(tmp_path):
    with WandBLogger(dir=tmp_path, group="cmp", name="first") as first:
        first.log_single_metric("acc", 0.1, 1)
    assert first.finished and first.run is None
    first.finish()
    first.close()
    with pytest.raises(RuntimeError, match="finished"):
        first.log_summary({"x": 1})
    with pytest.warns(RuntimeWarning, match="finished"):
        first.log_single_metric("acc", 0.2, 2)  # Avalanche callbacks after finish: dropped, no crash

    with pytest.raises(KeyError), WandBLogger(dir=tmp_path, group="cmp", name="second") as second:
        second.log_single_metric("acc", 0.3, 1)
        raise KeyError("boom")
    assert second.finished and second.run_id != first.run_id

    restored = pickle.loads(pickle.dumps(second))
    assert restored.finished and restored.run is None and restored.run_id == second.run_id

    runs = {}
    for path in tmp_path.glob("wandb/offline-run-*/run-*.wandb"):
        records = read_run_records(path)
        (run,) = by_type(records, "run")
        runs[run.display_name] = (run.run_group, by_type(records, "exit")[0].exit_code, history(records))
    assert set(runs) == {"first", "second"}
    assert runs["first"][:2] == ("cmp", 0) and runs["second"][:2] == ("cmp", 1)
    assert [r["acc"] for r in runs["first"][2] if "acc" in r] == [0.1]
    assert [r["acc"] for r in runs["second"][2] if "acc" in r] == [0.3]


def test_many_values_one_name_same_x_plot_are_all_kept(tmp_path):
    with WandBLogger(dir=tmp_path) as logger:
        logger.log_metrics([MetricValue(None, "v", float(i), 7) for i in range(3)])
        logger.log_metrics([MetricValue(None, "np", np.float32(0.5), 8)])
    rows = history(read_run_records(only_run_file(tmp_path)))
    assert [r["v"] for r in rows if "v" in r] == [0.0, 1.0, 2.0]
    assert [r["np"] for r in rows if "np" in r] == [0.5]


UNREACHABLE_SERVER_RUN = """
import json, sys, warnings
from avalanche_plasticity.wandb_logger import WandBLogger, read_run_records, record_items
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    logger = WandBLogger(dir=sys.argv[1], settings={"init_timeout": 3})
logger.log_metrics([])
logger.log_single_metric("Top1_Acc", 0.5, 7)
logger.log_summary({"final": 1.0})
logger.finish()
history = [record_items(r.history.item) for r in read_run_records(logger.run_file) if r.HasField("history")]
print(json.dumps({
    "mode": logger.mode, "run_id": logger.run_id, "failed": logger.failed_online_run_id,
    "history": history, "warnings": [str(w.message) for w in caught],
}))
"""


def test_api_key_without_network_falls_back_offline_under_a_new_run_id(tmp_path):
    """A real online attempt against a closed local port (never the internet): after the init timeout the
    fallback used to reuse the run id and crash with "run ID ... is in use"."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused
    env = {k: v for k, v in os.environ.items() if k not in WANDB_ENV}
    env.update(
        WANDB_BASE_URL=f"http://127.0.0.1:{port}",
        WANDB_API_KEY="local-" + "0" * 40,
        NETRC=str(tmp_path / "no-netrc"),
        WANDB_ERROR_REPORTING="false",
        WANDB_CONFIG_DIR=str(tmp_path / "config"),
        WANDB_CACHE_DIR=str(tmp_path / "cache"),
        WANDB_DATA_DIR=str(tmp_path / "data"),
    )
    proc = subprocess.run(
        [sys.executable, "-c", UNREACHABLE_SERVER_RUN, str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["mode"] == "offline"
    assert out["failed"] and out["run_id"] != out["failed"]
    assert any("logging offline instead" in w for w in out["warnings"])
    assert {"Top1_Acc": 0.5, "x_plot": 7} in [
        {k: h[k] for k in ("Top1_Acc", "x_plot") if k in h} for h in out["history"]
    ]
