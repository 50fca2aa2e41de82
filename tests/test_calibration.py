"""calibrate() on real DataLoaders: the choice, faults, memory screening and the store."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import time

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import TensorDataset  # noqa: E402

from _datasets import Busy, KillsItsWorkers, Waits  # noqa: E402
from trainperf.calibration.api import Calibration, calibrate, calibrated_loader  # noqa: E402
from trainperf.errors import RecordError, UsageError  # noqa: E402
from trainperf.kvlog import parse_kv  # noqa: E402
from trainperf.resources import detect_resources  # noqa: E402

pytestmark = pytest.mark.slow  # real worker processes, timed


@pytest.fixture
def two_cpus():
    """This machine's limits with a budget of 2 CPUs (the search needs room for a worker)."""
    found = detect_resources(gpus=False)
    return dataclasses.replace(found, cpu_budget=2.0, cpu_affinity=(0, 1), local_world_size=1)


def in_memory() -> TensorDataset:
    return TensorDataset(torch.randn(2048, 16), torch.randn(2048, 1))


def test_in_memory_data_keeps_loading_in_the_training_process(tmp_path, two_cpus) -> None:
    result = calibrate(in_memory(), batch_size=64, home=tmp_path, limits=two_cpus)
    assert result.chosen.num_workers == 0
    assert result.source == "measured"
    workers = [t for t in result.candidates if t.config.num_workers > 0]
    assert workers  # measured, not assumed
    assert all(t.status in ("dropped", "measured") for t in workers)


def test_a_heavy_pipeline_with_a_training_step_gets_a_worker(tmp_path, two_cpus) -> None:
    # 1.5 ms of CPU per sample to load, a 20 ms step: a worker overlaps them. The step
    # waits on a timer (as a GPU step leaves the CPU free), so the overlap's margin holds
    # however busy the machine is.
    def step(batch) -> None:
        time.sleep(0.02)

    result = calibrate(
        Busy(4000, 0.0015, width=8),
        batch_size=16,
        train_step=step,
        home=tmp_path,
        limits=two_cpus,
        samples=8,
    )
    assert result.mode == "end-to-end"
    assert result.chosen.num_workers >= 1
    assert result.chosen.persistent_workers
    assert result.chosen.main_threads == 1  # the workers take the other CPU
    # The step waits on a timer and leaves its CPU free: the rung past the budget (which
    # keeps a whole CPU for the step) is measured too, once one worker has improved.
    assert any(t.config.num_workers == 2 for t in result.candidates)
    base = next(t for t in result.candidates if t.config.num_workers == 0)
    assert result.samples_per_s > 1.3 * base.samples_per_s
    assert result.floor_samples_per_s is not None
    assert result.floor_samples_per_s > result.samples_per_s  # input still costs something


def test_a_loader_that_waits_gets_more_workers_than_cpus(tmp_path, two_cpus) -> None:
    # 3 ms of waiting per sample and almost no CPU: workers overlap the waits.
    result = calibrate(
        Waits(4000, 0.003, width=8), batch_size=8, home=tmp_path, limits=two_cpus, max_workers=6
    )
    base = next(t for t in result.candidates if t.config.num_workers == 0)
    assert base.cpu_share < 0.25
    assert result.chosen.num_workers > two_cpus.usable_cpus
    assert result.samples_per_s > 2.5 * base.samples_per_s


def test_a_candidate_whose_workers_die_is_demoted(tmp_path, two_cpus, caplog) -> None:
    caplog.set_level(logging.INFO, logger="trainperf.calibrate")
    result = calibrate(
        KillsItsWorkers(256, 0.0, width=8), batch_size=8, home=tmp_path, limits=two_cpus
    )
    failed = [t for t in result.candidates if t.status == "failed"]
    assert failed
    assert failed[0].reason.startswith("a worker process died (DataLoader worker (pid")
    assert result.chosen.num_workers == 0
    lines = [parse_kv(r.getMessage()) for r in caplog.records]
    events = [event for event, _ in lines]
    assert events.count("calibration_candidate") == len(result.candidates)
    assert events[-1] == "calibration_chosen"
    assert any(fields.get("status") == "failed" for _, fields in lines)
    # the configuration it returns works
    assert len(list(result.loader(KillsItsWorkers(16, 0.0, width=8)))) == 2


def test_a_candidate_over_the_memory_budget_is_screened_before_it_runs(tmp_path, two_cpus) -> None:
    # 8 samples x 256 KiB = 2 MiB per batch; 4 MiB available allows no queue of batches.
    tight = dataclasses.replace(two_cpus, memory_available_bytes=4 << 20)
    result = calibrate(Busy(64, 0.0, width=65536), batch_size=8, home=tmp_path, limits=tight)
    (screened,) = [t for t in result.candidates if t.status == "screened"]
    assert screened.config.num_workers == 1
    assert "MiB available" in screened.reason
    assert screened.samples_per_s is None  # never started
    assert result.chosen.num_workers == 0


def test_results_are_stored_and_reused_until_they_expire(tmp_path, two_cpus, caplog) -> None:
    caplog.set_level(logging.INFO, logger="trainperf.calibrate")
    data = in_memory()
    # A clock that ticks per reading: the recheck sees the stored speed again however
    # busy the machine is, so what is tested is the store, not this moment's CPU.
    ticks = itertools.count()

    def clock() -> float:
        return next(ticks) * 1e-3

    first = calibrate(data, batch_size=64, home=tmp_path, limits=two_cpus, clock=clock)
    stored = json.loads((tmp_path / "calibration.json").read_text())
    assert len(stored["entries"]) == 1
    caplog.clear()
    again = calibrate(data, batch_size=64, home=tmp_path, limits=two_cpus, clock=clock)
    assert again.source == "stored"
    assert again.chosen == first.chosen
    assert [parse_kv(r.getMessage())[0] for r in caplog.records] == ["calibration_reused"]
    # another batch size is another entry; an expired entry is measured again
    assert calibrate(data, batch_size=32, home=tmp_path, limits=two_cpus).source == "measured"
    expired = calibrate(data, batch_size=64, home=tmp_path, limits=two_cpus, ttl_s=0)
    assert expired.source == "measured"
    # Every measurement, not reuse, is a row in the history: a trend per dataset.
    from trainperf.monitoring.history import indexed_calibrations

    rows = indexed_calibrations(tmp_path / "history.sqlite")
    assert [(r.batch_size, r.mode) for r in rows] == [
        (64, "loader"),
        (32, "loader"),
        (64, "loader"),
    ]
    assert rows[0].key == rows[2].key != rows[1].key
    assert json.loads(rows[2].chosen) == expired.chosen.to_json()


def test_a_result_measured_end_to_end_answers_a_loader_lookup(tmp_path, two_cpus) -> None:
    """What ``trainperf doctor --apply`` stores (through the training step) is what a
    plain ``calibrated_loader`` of the same dataset then uses, without measuring."""
    data = in_memory()
    model = torch.nn.Linear(16, 1)

    def step(batch: object) -> None:
        x, y = batch  # type: ignore[misc]
        torch.nn.functional.mse_loss(model(x), y).backward()

    measured = calibrate(data, batch_size=64, train_step=step, home=tmp_path, limits=two_cpus)
    assert measured.mode == "end-to-end"
    found = calibrate(data, batch_size=64, calibrate=False, home=tmp_path, limits=two_cpus)
    assert found.source == "stored"
    assert found.mode == "end-to-end"
    assert found.chosen == measured.chosen
    # A loader-mode result of its own wins over the end-to-end one.
    own = calibrate(data, batch_size=64, force=True, home=tmp_path, limits=two_cpus)
    again = calibrate(data, batch_size=64, calibrate=False, home=tmp_path, limits=two_cpus)
    assert (own.mode, again.mode) == ("loader", "loader")


def test_a_pipeline_that_got_slower_is_searched_again(tmp_path, two_cpus) -> None:
    data = in_memory()
    calibrate(data, batch_size=64, home=tmp_path, limits=two_cpus)
    path = tmp_path / "calibration.json"
    store = json.loads(path.read_text())
    (entry,) = store["entries"].values()
    entry["result"]["samples_per_s"] *= 10  # as if it had been ten times faster
    path.write_text(json.dumps(store))
    assert calibrate(data, batch_size=64, home=tmp_path, limits=two_cpus).source == "measured"


def test_overrides_from_arguments_and_the_environment(tmp_path, two_cpus, monkeypatch) -> None:
    data = in_memory()
    skipped = calibrate(data, batch_size=64, home=tmp_path, limits=two_cpus, calibrate=False)
    assert skipped.source == "default"
    assert skipped.candidates == ()
    assert not (tmp_path / "calibration.json").exists()
    calibrate(data, batch_size=64, home=tmp_path, limits=two_cpus)
    forced = calibrate(data, batch_size=64, home=tmp_path, limits=two_cpus, force=True)
    assert forced.source == "measured"
    monkeypatch.setenv("TRAINPERF_CALIBRATE", "force")
    assert calibrate(data, batch_size=64, home=tmp_path, limits=two_cpus).source == "measured"
    monkeypatch.setenv("TRAINPERF_CALIBRATE", "0")
    assert calibrate(data, batch_size=64, home=tmp_path, limits=two_cpus).source == "stored"
    monkeypatch.setenv("TRAINPERF_CALIBRATE", "sometimes")
    with pytest.raises(UsageError, match="TRAINPERF_CALIBRATE must be 0, 1 or force"):
        calibrate(data, batch_size=64, home=tmp_path, limits=two_cpus)


@pytest.mark.parametrize(
    "content", [b"{not json", b'{"hello": "world"}', b"\xff\xfe binary", b"[1, 2]"]
)
def test_a_store_that_is_not_ours_is_reported_and_left_untouched(
    tmp_path, two_cpus, content
) -> None:
    path = tmp_path / "calibration.json"
    path.write_bytes(content)
    with pytest.raises(RecordError, match="left as it is"):
        calibrate(in_memory(), batch_size=64, home=tmp_path, limits=two_cpus)
    assert path.read_bytes() == content


def test_calibrated_loader_applies_the_choice_and_the_callers_options(tmp_path, two_cpus) -> None:
    loader = calibrated_loader(in_memory(), batch_size=64, shuffle=True, drop_last=True, samples=4)
    assert loader.batch_size == 64
    assert loader.drop_last
    assert isinstance(loader.sampler, torch.utils.data.RandomSampler)
    assert len(list(loader)) == 32


def test_the_result_as_json(tmp_path, two_cpus) -> None:
    result = calibrate(in_memory(), batch_size=64, home=tmp_path, limits=two_cpus, samples=4)
    data = result.to_json()
    assert data["chosen"]["num_workers"] == result.chosen.num_workers
    assert {"samples_per_s", "elapsed_s", "candidates"} <= set(data)
    for candidate in data["candidates"]:
        assert {
            "num_workers",
            "prefetch_factor",
            "samples_per_s",
            "p95_s",
            "status",
            "reason",
        } <= set(candidate)
    assert Calibration.from_json(json.loads(json.dumps(data))).to_json() == data


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"batch_size": 8, "samples": 1}, "samples (batches timed per candidate) must be >= 2"),
        ({"batch_size": 8, "max_workers": -2}, "max_workers must be an integer >= 0"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, fragment) -> None:
    with pytest.raises(UsageError) as caught:
        calibrate(in_memory(), home=tmp_path, **kwargs)
    assert fragment in str(caught.value)


def test_datasets_it_cannot_sample(tmp_path) -> None:
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield torch.ones(1)

    with pytest.raises(UsageError, match="map-style dataset"):
        calibrate(Stream(), batch_size=2, home=tmp_path)
    with pytest.raises(UsageError, match="the dataset is empty"):
        calibrate(TensorDataset(torch.ones(0, 2)), batch_size=2, home=tmp_path)


def _abort_on_exit(worker_id: int) -> None:
    """A worker that aborts on its way out (SIGABRT as it exits, once told to stop)."""
    import multiprocessing.util
    import os
    import signal

    multiprocessing.util.Finalize(None, os.kill, (os.getpid(), signal.SIGABRT), exitpriority=10)


def test_a_worker_that_dies_as_it_is_stopped_ends_the_trial_quietly() -> None:
    """torch's SIGCHLD handler raises for such a worker inside the iterator's __del__,
    where nothing can catch it; the trials stop their workers themselves first."""
    import sys

    from torch.utils.data import DataLoader

    from trainperf.calibration.trials import shut_down

    caught: list[object] = []
    previous = sys.unraisablehook
    sys.unraisablehook = caught.append
    try:
        loader = DataLoader(
            list(range(64)), batch_size=4, num_workers=2, worker_init_fn=_abort_on_exit
        )
        iterator = iter(loader)
        assert next(iterator).tolist() == [0, 1, 2, 3]
        shut_down(iterator)  # the workers abort on their way out: taken as the end
        del iterator
        import gc

        gc.collect()
    finally:
        sys.unraisablehook = previous
    assert caught == []
