"""Exporters: a run's figures to TensorBoard, W&B and MLflow, from their own threads.

The backends write real files with the real libraries, read back by those libraries'
own readers (W&B has no Python reader for its offline ``.wandb`` log: it is read here
record by record with W&B's own protobuf messages).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from _support import run_cli
from trainperf.errors import MissingDependencyError, UsageError
from trainperf.exporters import ExportSpec, RunEnd, parse_spec, spec
from trainperf.exporters.channel import EXPORTERS_FILE, Channel, Exports
from trainperf.exporters.figures import EpochTally, run_end, step_figures
from trainperf.exporters.mlflow import MlflowExporter
from trainperf.exporters.tensorboard import TensorBoardExporter
from trainperf.exporters.wandb import WandbExporter
from trainperf.monitoring.analyze import RunSummary, Verdict
from trainperf.monitoring.records import Period
from trainperf.settings import export_specs

RSS = 3 << 26  # what the fake memory reader says, in bytes (exact in float32)


def step(index: int, epoch: int, *, wall: float = 0.25, wait: float = 0.125, first=False):
    return Period("train", index, epoch, 0.0, wall, wait, 8, first_of_epoch=first)


def val(index: int, epoch: int, wall: float) -> Period:
    return Period("val", index, epoch, 0.0, wall, 0.0, None)


def two_epochs() -> list[Period]:
    """Epoch 1: four steps (the first a slow 1 s one) and 0.5 s of validation; epoch 2:
    four quarter-second steps. Times are binary fractions, so figures compare exactly."""
    return [
        step(0, 1, wall=1.0, wait=0.75, first=True),
        step(1, 1),
        step(2, 1),
        step(3, 1, wall=0.5, wait=0.0),
        val(0, 1, 0.5),
        step(4, 2, first=True),
        step(5, 2),
        step(6, 2),
        step(7, 2),
    ]


def a_summary() -> RunSummary:
    return RunSummary(
        steps=8,
        samples=64,
        train_s=3.0,
        val_s=0.5,
        startup_s=0.5,
        samples_per_s=64 / 3.0,
        step_median_s=0.25,
        shares={"data_wait": 0.5, "compute": 0.25, "validation": 0.125, "startup": 0.125},
        primary="input-bound",
        findings=(),
        step=Verdict("input-bound", "high"),
    )


class Recorder:
    """An exporter that keeps every call."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def open(self) -> None:
        self.calls.append(("open",))

    def write_step(self, step, figures) -> None:
        self.calls.append(("step", step, dict(figures)))

    def write_epoch(self, epoch, figures) -> None:
        self.calls.append(("epoch", epoch, dict(figures)))

    def close(self, end) -> None:
        self.calls.append(("close", end))

    def of(self, kind: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == kind]


def exported(exporter, periods, summary, *, folder=None, **settings):
    exports = Exports([exporter], memory=lambda: RSS, **settings)
    exports.start()
    for period in periods:
        exports.put(period)
    return exports.close(summary, folder=folder)


# -- figures -------------------------------------------------------------------------


def test_step_figures() -> None:
    assert step_figures(step(3, 1, wall=0.5, wait=0.125)) == {
        "perf/step/step_s": 0.5,
        "perf/step/data_wait_s": 0.125,
        "perf/step/data_wait_share": 0.25,
        "perf/step/samples_per_s": 16.0,
    }
    unknown = Period("train", 0, 0, 0.0, 0.5, 0.0, None)
    assert "perf/step/samples_per_s" not in step_figures(unknown)


def test_epoch_figures_leave_the_first_step_out_of_the_median() -> None:
    tally = EpochTally(1)
    for period in two_epochs()[:5]:
        tally.add(period)
    assert tally.figures(rss_bytes=RSS) == {
        "perf/epoch/step_median_s": 0.25,  # of 0.25, 0.25, 0.5: the 1 s first step aside
        "perf/epoch/validation_share": 0.5 / 2.5,
        "perf/epoch/data_wait_share": 1.0 / 2.0,
        "perf/epoch/samples_per_s": 32 / 2.0,
        "perf/epoch/rss_bytes": float(RSS),
    }
    assert EpochTally(3).figures(rss_bytes=None) == {}  # no training step, no figures


def test_run_end_carries_the_step_verdict() -> None:
    end = run_end(a_summary())
    assert end.step == 8
    assert end.tags == {
        "perf/verdict": "input-bound",
        "perf/verdict_confidence": "high",
        "perf/primary": "input-bound",
    }
    assert end.figures["perf/run/data_wait_share"] == 0.5
    assert end.figures["perf/run/validation_share"] == 0.125
    assert end.figures["perf/run/step_median_s"] == 0.25
    assert end.figures["perf/run/samples_per_s"] == 64 / 3.0


# -- specs ---------------------------------------------------------------------------


def test_specs_parse_to_absolute_folders(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    parsed = parse_spec("tensorboard:runs/tb")
    assert parsed == ExportSpec(kind="tensorboard", folder=tmp_path / "runs" / "tb")
    assert parse_spec(parsed) == parsed
    assert parse_spec(str(parsed)) == parsed
    both = spec.join_specs([parsed, parse_spec("mlflow:ml")])
    assert [parse_spec(s) for s in spec.split_specs(both)][1].folder == tmp_path / "ml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "foo:x",
            "unknown exporter 'foo' in 'foo:x'; use tensorboard:DIR, wandb:DIR or mlflow:DIR",
        ),
        (
            "tensorbord:x",
            "unknown exporter 'tensorbord' in 'tensorbord:x'; did you mean 'tensorboard'?",
        ),
        ("x", "unknown exporter 'x'; use tensorboard:DIR"),
        ("wandb", "exporter 'wandb' needs a folder: wandb:DIR"),
        ("mlflow:", "exporter 'mlflow:' needs a folder after the colon: mlflow:DIR"),
        ("mlflow: ", "needs a folder after the colon"),
        ("tensorboard:a;b", "holds ';', which separates specs in TRAINPERF_EXPORT"),
    ],
)
def test_bad_specs_name_the_problem_and_the_fix(text, message) -> None:
    with pytest.raises(UsageError) as caught:
        parse_spec(text)
    assert message in str(caught.value)


def test_a_file_is_no_folder(tmp_path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError, match="is a file; give a folder"):
        parse_spec(f"wandb:{tmp_path / 'f'}")


def test_a_missing_library_names_its_extra(monkeypatch) -> None:
    known = {b.kind: b for b in spec.backends()}
    absent = dataclasses.replace(known["wandb"], library="trainperf_no_such_library")
    monkeypatch.setitem(spec._REGISTRY, "wandb", absent)
    with pytest.raises(MissingDependencyError) as caught:
        parse_spec("wandb:runs")
    assert str(caught.value).endswith('pip install "trainperf[wandb]"')


def test_the_environment_variable_is_read_in_settings(tmp_path) -> None:
    env = {"TRAINPERF_EXPORT": f"tensorboard:{tmp_path / 'a'}; mlflow:{tmp_path / 'b'};"}
    assert [s.kind for s in export_specs(env)] == ["tensorboard", "mlflow"]
    assert export_specs({}) == ()
    with pytest.raises(UsageError, match="TRAINPERF_EXPORT: unknown exporter 'nope'"):
        export_specs({"TRAINPERF_EXPORT": "nope:x"})


def test_specs_and_exporters_and_nothing_else() -> None:
    recorder = Recorder()
    built = spec.exporters_for(["tensorboard:tb", recorder])
    assert isinstance(built[0], TensorBoardExporter)
    assert built[1] is recorder
    with pytest.raises(TypeError, match="got int"):
        spec.exporters_for([3])


def test_importing_and_parsing_load_no_backend_library() -> None:
    code = (
        "import sys, trainperf.exporters as e\n"
        "for s in ('tensorboard:a', 'wandb:b', 'mlflow:c'): e.parse_spec(s)\n"
        "heavy = ('tensorboard', 'wandb', 'mlflow', 'numpy', 'torch', 'google')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == "[]"


# -- the channel: never blocking, never raising ----------------------------------------


def test_steps_epochs_and_the_end_reach_the_exporter(tmp_path) -> None:
    recorder = Recorder()
    (report,) = exported(recorder, two_epochs(), a_summary(), folder=tmp_path)
    assert recorder.calls[0] == ("open",)
    assert [c[1] for c in recorder.of("step")] == list(range(8))
    assert recorder.of("step")[3][2] == step_figures(step(3, 1, wall=0.5, wait=0.0))
    epochs = recorder.of("epoch")
    assert [e[1] for e in epochs] == [1, 2]
    assert epochs[0][2]["perf/epoch/validation_share"] == 0.2
    assert epochs[1][2] == {
        "perf/epoch/step_median_s": 0.25,
        "perf/epoch/validation_share": 0.0,
        "perf/epoch/data_wait_share": 0.5,
        "perf/epoch/samples_per_s": 32.0,
        "perf/epoch/rss_bytes": float(RSS),
    }
    ((_, end),) = recorder.of("close")
    assert isinstance(end, RunEnd)
    assert end.tags["perf/verdict"] == "input-bound"
    assert recorder.calls[-1][0] == "close"
    assert (report.sent, report.dropped, report.error, report.finished) == (9, 0, None, True)
    record = json.loads((tmp_path / EXPORTERS_FILE).read_text())
    assert record == {"schema_version": 1, "exporters": [report.to_json()]}


def test_a_run_with_nothing_recorded_opens_nothing() -> None:
    recorder = Recorder()
    exported(recorder, [], None)
    assert recorder.calls == []


class Stalled(Recorder):
    """Its first write waits until the test releases it: a backend that hangs."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = threading.Event()
        self.release = threading.Event()

    def write_step(self, step, figures) -> None:
        self.writing.set()
        assert self.release.wait(timeout=60)
        super().write_step(step, figures)


def test_a_stalled_exporter_drops_and_counts_without_blocking_the_loop() -> None:
    stalled = Stalled()
    channel = Channel(stalled, capacity=4)
    channel.start()
    periods = [step(i, 0) for i in range(21)]
    channel.put(periods[0])
    assert stalled.writing.wait(timeout=60)  # the thread holds period 0, stuck

    loop = threading.Thread(target=lambda: [channel.put(p) for p in periods[1:]])
    loop.start()
    loop.join(timeout=30)
    # Were put() to wait for room, the loop would still be waiting on the stuck writer.
    assert not loop.is_alive()
    assert channel.dropped == 20 - 4  # four fit in the queue, the rest were dropped

    stalled.release.set()
    deadline = time.monotonic() + 60
    channel.end(None, deadline=deadline)
    report = channel.report(deadline=deadline)
    assert (report.sent, report.dropped, report.finished) == (5, 16, True)
    assert [c[1] for c in stalled.of("step")] == [0, 1, 2, 3, 4]


def test_dropped_periods_are_reported_at_close(tmp_path, caplog) -> None:
    stalled = Stalled()
    exports = Exports([stalled], capacity=1)
    exports.start()
    exports.put(step(0, 0))
    assert stalled.writing.wait(timeout=60)
    for i in range(1, 5):
        exports.put(step(i, 0))
    stalled.release.set()
    with caplog.at_level(logging.WARNING, logger="trainperf.exporters"):
        (report,) = exports.close(a_summary(), folder=tmp_path)
    assert report.dropped == 3
    (warning,) = caplog.records
    assert "recorder dropped 3 of 5 periods" in warning.getMessage()
    (saved,) = json.loads((tmp_path / EXPORTERS_FILE).read_text())["exporters"]
    assert saved["dropped"] == 3


class Failing(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.failed = threading.Event()

    def write_step(self, step, figures) -> None:
        self.failed.set()
        raise OSError("disk full")


def test_a_failing_exporter_warns_once_and_stops_alone(caplog) -> None:
    failing, healthy = Failing(), Recorder()
    exports = Exports([failing, healthy])
    with caplog.at_level(logging.WARNING, logger="trainperf.exporters"):
        exports.start()
        exports.put(step(0, 0))
        assert failing.failed.wait(timeout=60)
        for i in range(1, 10):
            exports.put(step(i, 0))  # never raises into the loop
        broken, fine = exports.close(a_summary(), folder=None)
    (warning,) = caplog.records
    assert "trainperf exporter recorder stopped (OSError: disk full)" in warning.getMessage()
    assert broken.error == "OSError: disk full"
    assert failing.calls[-1] == ("close", None)  # released what it held
    assert fine.error is None
    assert len(healthy.of("step")) == 10


def test_an_exporter_still_writing_at_the_deadline_is_left_behind(caplog) -> None:
    stalled = Stalled()
    exports = Exports([stalled], close_timeout_s=0.0)
    exports.start()
    exports.put(step(0, 0))
    assert stalled.writing.wait(timeout=60)
    with caplog.at_level(logging.WARNING, logger="trainperf.exporters"):
        (report,) = exports.close(a_summary(), folder=None)
    stalled.release.set()
    assert not report.finished
    assert "still writing when the run ended" in caplog.records[0].getMessage()


def test_settings_are_checked() -> None:
    with pytest.raises(UsageError, match="capacity must be >= 1, got 0"):
        Exports([Recorder()], capacity=0)
    with pytest.raises(UsageError, match="close_timeout_s must be >= 0 seconds, got -1"):
        Exports([Recorder()], close_timeout_s=-1)


# -- the backends, read back by their own readers --------------------------------------


def test_tensorboard_event_file(tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    folder = tmp_path / "tb"
    (report,) = exported(TensorBoardExporter(folder), two_epochs(), a_summary())
    assert report.error is None
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    steps = events.Scalars("perf/step/step_s")
    assert [e.step for e in steps] == list(range(8))
    assert [e.value for e in steps] == [1.0, 0.25, 0.25, 0.5, 0.25, 0.25, 0.25, 0.25]
    share = events.Scalars("perf/epoch/data_wait_share")
    assert [(e.step, e.value) for e in share] == [(1, 0.5), (2, 0.5)]
    assert [e.value for e in events.Scalars("perf/epoch/rss_bytes")] == [RSS, RSS]
    assert [(e.step, e.value) for e in events.Scalars("perf/run/data_wait_share")] == [(8, 0.5)]
    (verdict,) = events.Tensors("perf/verdict")
    assert tensor_util.make_ndarray(verdict.tensor_proto).item() == b"input-bound"


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B with no network (offline, and a base URL nothing listens on) and its own
    settings folders in ``tmp_path``."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    yield tmp_path / "wb"
    if "wandb" in sys.modules:  # W&B's service process outlives its runs: stop it here
        sys.modules["wandb"].teardown()


def wandb_records(folder):
    """The records of the offline run under ``folder``, from its ``.wandb`` log.

    W&B's service process writes the log; on a busy machine its last records may land
    after finish() returns, so this waits (30 s at most) for the run's exit record."""
    (path,) = folder.glob("wandb/offline-run-*/run-*.wandb")
    gave_up = threading.Event()
    timer = threading.Timer(30, gave_up.set)
    timer.start()
    try:
        records = _wandb_log(path.read_bytes())
        while not any(r.HasField("exit") for r in records) and not gave_up.wait(0.1):
            records = _wandb_log(path.read_bytes())
    finally:
        timer.cancel()
    return records


def _wandb_log(data):
    """A LevelDB-style log (7-byte header, 32 KiB blocks of checksummed chunks) of W&B's
    own ``Record`` protobuf messages."""
    from wandb.proto import wandb_internal_pb2

    assert struct.unpack("<4sHB", data[:7]) == (b":W&B", 0xBEE1, 0)
    records, position, block, pending = [], 7, 32768, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a chunk: padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if position + 7 + length > len(data):
            break  # a chunk still being written
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or a record's last chunk
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            records.append(record)
    return records


def test_wandb_offline_run(offline_wandb) -> None:
    exporter = WandbExporter(offline_wandb)
    (report,) = exported(exporter, two_epochs(), a_summary())
    assert report.error is None
    rows, summary, config, kinds = [], {}, {}, []
    for record in wandb_records(offline_wandb):
        kinds.append(record.WhichOneof("record_type"))
        if record.HasField("history"):
            items = record.history.item
            rows.append({"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in items})
        if record.HasField("summary"):
            summary.update({u.key: json.loads(u.value_json) for u in record.summary.update})
        if record.HasField("config"):
            config.update({u.key: json.loads(u.value_json) for u in record.config.update})
        if record.HasField("run"):
            tags = list(record.run.tags)
    step_rows = [r for r in rows if "perf/step/step_s" in r]
    assert [r["perf/step"] for r in step_rows] == list(range(8))
    assert [r["perf/step/step_s"] for r in step_rows][:4] == [1.0, 0.25, 0.25, 0.5]
    epoch_rows = [r for r in rows if "perf/epoch" in r]
    assert [(r["perf/epoch"], r["perf/epoch/data_wait_share"]) for r in epoch_rows] == [
        (1, 0.5),
        (2, 0.5),
    ]
    assert summary["perf/verdict"] == "input-bound"
    assert summary["perf/run/step_median_s"] == 0.25
    assert config["perf/verdict_confidence"] == "high"
    assert tags == ["input-bound"]
    assert "exit" in kinds  # finish() was called: the run is complete and can be synced
    logs = "".join(p.read_text() for p in offline_wandb.glob("wandb/**/*.log"))
    assert "127.0.0.1:9" not in logs  # no attempt to reach a server
    assert "dial tcp" not in logs


@pytest.mark.slow
def test_wandb_leaves_no_process_behind(offline_wandb, tmp_path) -> None:
    code = textwrap.dedent(
        f"""
        import psutil, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_exporters import a_summary, exported, two_epochs
        from trainperf.exporters.wandb import WandbExporter
        (report,) = exported(WandbExporter(__import__("pathlib").Path({str(offline_wandb)!r})),
                             two_epochs(), a_summary())
        assert report.error is None, report.error
        print(" ".join(str(p.pid) for p in psutil.Process().children(recursive=True)))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    import psutil

    # Its children (W&B's service) end with it: none is left running on its own.
    alive = []
    for pid in proc.stdout.split():
        with contextlib.suppress(psutil.NoSuchProcess):
            alive.append(psutil.Process(int(pid)))
    _, still = psutil.wait_procs(alive, timeout=30)
    assert still == []


def test_mlflow_file_store(tmp_path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    before = dict(os.environ)
    exporter = MlflowExporter(tmp_path / "ml")
    (report,) = exported(exporter, two_epochs(), a_summary())
    assert report.error is None
    assert dict(os.environ) == before  # the file-store opt-in was the exporter's alone

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(tmp_path / "ml").as_uri())
    history = client.get_metric_history(exporter.run_id, "perf/step/step_s")
    assert [(m.step, m.value) for m in history] == [
        (0, 1.0),
        (1, 0.25),
        (2, 0.25),
        (3, 0.5),
        (4, 0.25),
        (5, 0.25),
        (6, 0.25),
        (7, 0.25),
    ]
    epochs = client.get_metric_history(exporter.run_id, "perf/epoch/validation_share")
    assert [(m.step, m.value) for m in epochs] == [(1, 0.2), (2, 0.0)]
    run = client.get_run(exporter.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["perf/verdict"] == "input-bound"
    assert run.data.params["perf/verdict_confidence"] == "high"
    assert run.data.metrics["perf/run/startup_share"] == 0.125


# -- a run that exports --------------------------------------------------------------


@pytest.mark.slow
def test_a_monitored_loop_exports_its_periods(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    import trainperf

    recorder = Recorder()
    data = TensorDataset(torch.ones(64, 4), torch.zeros(64, 1))
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with trainperf.monitor(out=tmp_path / "run", export=[recorder]) as run:
        for _ in range(2):
            for x, y in DataLoader(data, batch_size=8):
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                opt.step()
    periods = run.periods
    assert [c[1] for c in recorder.of("step")] == [p.index for p in periods]
    assert len(recorder.of("step")) == 16
    assert [c[1] for c in recorder.of("epoch")] == sorted({p.epoch for p in periods})
    ((_, end),) = recorder.of("close")
    assert run.summary is not None
    assert end.tags["perf/verdict"] == run.summary.step.kind
    (saved,) = json.loads((run.path / EXPORTERS_FILE).read_text())["exporters"]
    assert (saved["sent"], saved["dropped"]) == (16, 0)


def test_a_bad_spec_stops_monitor_before_anything_is_written(tmp_path) -> None:
    import trainperf

    with pytest.raises(UsageError, match="unknown exporter 'foo'"):
        trainperf.monitor(out=tmp_path / "run", export=["foo:x"])
    assert not (tmp_path / "run").exists()


def test_the_lightning_callback_checks_its_specs(tmp_path) -> None:
    pytest.importorskip("lightning")
    from trainperf.lightning import PerfMonitor

    callback = PerfMonitor(out=tmp_path / "run", export=[f"tensorboard:{tmp_path / 'tb'}"])
    assert callback.export == (ExportSpec(kind="tensorboard", folder=tmp_path / "tb"),)
    with pytest.raises(UsageError, match="unknown exporter 'foo'"):
        PerfMonitor(export=["foo:x"])


def test_cli_refuses_a_bad_spec_in_one_line() -> None:
    proc = run_cli("run", "--export", "foo:x", "--", sys.executable, "-c", "pass")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "trainperf: error: unknown exporter 'foo' in 'foo:x'; use tensorboard:DIR, wandb:DIR "
        "or mlflow:DIR"
    ]


LOOP = textwrap.dedent(
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    data = TensorDataset(torch.ones(96, 4), torch.zeros(96, 1))
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        for x, y in DataLoader(data, batch_size=4):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    """
)


@pytest.mark.slow
def test_trainperf_run_exports_to_tensorboard(tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from trainperf.monitoring.records import read_periods

    script = tmp_path / "loop.py"
    script.write_text(LOOP)
    out, tb = tmp_path / "run", tmp_path / "tb"
    proc = run_cli(
        "run", "--out", str(out), "--export", f"tensorboard:{tb}", "--", sys.executable, str(script)
    )
    assert proc.returncode == 0, proc.stderr
    periods = read_periods(out / "steps.jsonl")
    assert len(periods) == 48
    events = EventAccumulator(str(tb))
    events.Reload()
    assert [e.step for e in events.Scalars("perf/step/data_wait_s")] == list(range(48))
    assert [e.step for e in events.Scalars("perf/epoch/samples_per_s")] == sorted(
        {p.epoch for p in periods}
    )
    assert events.Tensors("perf/verdict")
    (saved,) = json.loads((out / EXPORTERS_FILE).read_text())["exporters"]
    assert (saved["name"], saved["sent"], saved["dropped"]) == (f"tensorboard:{tb}", 48, 0)
