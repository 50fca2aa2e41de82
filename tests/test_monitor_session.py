"""trainperf.monitor() on real loops: planted bottlenecks get the right verdict."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402
from torch.utils.data.dataloader import _BaseDataLoaderIter  # noqa: E402

import trainperf  # noqa: E402
from _datasets import Busy, Waits  # noqa: E402
from trainperf.monitoring.records import RunMeta, read_periods  # noqa: E402


def train(loader, model, *, epochs=1, val_loader=None, work=0):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            out = model(x)
            for _ in range(work):  # extra compute per step
                out = out + model(x) * 0
            torch.nn.functional.mse_loss(out, y).backward()
            opt.step()
        if val_loader is not None:
            with torch.no_grad():
                for x, _ in val_loader:
                    model(x)


@pytest.mark.verdict
def test_input_bound_loop_with_worker_processes(tmp_path) -> None:
    # Each sample waits 20 ms on a timer in a worker: the wait does not shrink or grow
    # with the CPUs' speed or load, and the linear layer's step, even slowed tenfold by a
    # busy machine, is far shorter than the 40 ms a batch takes two workers.
    loader = DataLoader(Waits(96, 0.02), batch_size=4, num_workers=2)
    with trainperf.monitor(out=tmp_path / "run") as run:
        train(loader, torch.nn.Linear(32, 1))
    summary = run.summary
    assert summary is not None
    assert summary.steps == 24
    assert summary.samples == 96
    assert summary.step.kind == "input-bound"
    assert summary.step.share is not None
    assert summary.step.share > 0.5
    (finding,) = [f for f in summary.findings if f.kind == "input-bound"]
    assert finding.evidence["data_wait_share_of_step"] == summary.step.share


@pytest.mark.verdict
def test_compute_bound_loop(tmp_path) -> None:
    # 40 extra forward passes a step against a batch of 8 ready-made samples: the fetch
    # is a few percent of the step at most, on a quiet machine or a busy one; 20 steps
    # so that a preemption landing in a few fetches moves no median.
    big = torch.nn.Sequential(torch.nn.Linear(32, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1))
    loader = DataLoader(Busy(160, 0.0), batch_size=8)
    with trainperf.monitor(out=tmp_path / "run") as run:
        train(loader, big, work=40)
    assert run.summary is not None
    assert run.summary.step.kind == "compute-bound"


@pytest.mark.verdict
def test_validation_bound_loop(tmp_path) -> None:
    # Validation waits 4 ms a sample on a timer: 0.5 s against 8 steps of a linear layer.
    train_set, val_set = Busy(16, 0.0), Waits(64, 0.004)
    with trainperf.monitor(out=tmp_path / "run") as run:
        train(
            DataLoader(train_set, batch_size=4),
            torch.nn.Linear(32, 1),
            epochs=2,
            val_loader=DataLoader(val_set, batch_size=4),
        )
    summary = run.summary
    assert summary is not None
    assert summary.steps == 8
    assert summary.primary == summary.run.kind == "validation-bound"
    periods = read_periods(tmp_path / "run" / "steps.jsonl")
    assert [p.kind for p in periods].count("val") == 2


def test_manual_sgd_without_optimizer_or_loader_counts_steps(tmp_path) -> None:
    w = torch.zeros(4, requires_grad=True)
    with trainperf.monitor(out=tmp_path / "run") as run:
        for _ in range(7):
            loss = ((w - 1) ** 2).sum()
            loss.backward()
            with torch.no_grad():
                w -= 0.1 * w.grad
                w.grad.zero_()
    assert run.summary is not None
    assert run.summary.steps == 7


def test_hooks_are_restored_even_when_the_loop_raises(tmp_path) -> None:
    from torch.optim import optimizer as optim_module

    before = (
        _BaseDataLoaderIter.__next__,
        torch.Tensor.backward,
        dict(optim_module._global_optimizer_post_hooks),
    )
    with pytest.raises(RuntimeError, match="boom"), trainperf.monitor(out=tmp_path / "run"):
        raise RuntimeError("boom")
    after = (
        _BaseDataLoaderIter.__next__,
        torch.Tensor.backward,
        dict(optim_module._global_optimizer_post_hooks),
    )
    assert after == before
    assert (tmp_path / "run" / "summary.json").exists()


def test_records_on_disk(tmp_path) -> None:
    with trainperf.monitor(out=tmp_path / "run"):
        train(DataLoader(Busy(16, 0.0), batch_size=4), torch.nn.Linear(32, 1))
    folder = tmp_path / "run"
    meta = RunMeta.from_json(json.loads((folder / "meta.json").read_text()))
    assert meta.pid == os.getpid()
    assert meta.fingerprint["digest"] == trainperf.environment_fingerprint().digest
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["steps"] == 4
    assert set(summary["shares"]) == {"data_wait", "compute", "validation", "startup"}
    assert {"primary", "findings"} <= set(summary["verdict"])


KILLED = textwrap.dedent(
    """
    import sys, time, torch, trainperf
    w = torch.zeros(4, requires_grad=True)
    with trainperf.monitor(out=sys.argv[1]):
        for i in range(10**9):
            ((w - 1) ** 2).sum().backward()
            end = time.perf_counter() + 0.01
            while time.perf_counter() < end:
                pass
            if i == 400:
                print("ready", flush=True)
    """
)


@pytest.mark.slow
def test_a_killed_run_leaves_a_readable_record(tmp_path) -> None:
    script = tmp_path / "job.py"
    script.write_text(KILLED)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "run")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.1)  # let a flush interval pass  (a wait for the child, not a timing)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    periods = read_periods(tmp_path / "run" / "steps.jsonl")
    assert len(periods) >= 100  # flushed every couple of seconds while running
    assert [p.index for p in periods] == list(range(len(periods)))
    assert not (tmp_path / "run" / "summary.json").exists()


def test_sampler_sees_the_process_and_its_workers() -> None:
    from trainperf.monitoring.sampler import Sampler

    sampler = Sampler(clock=time.perf_counter, origin=time.perf_counter(), interval_s=0.05)
    loader = DataLoader(Busy(64, 0.002), batch_size=4, num_workers=2, persistent_workers=True)
    sampler.start()
    for _ in range(2):
        for _ in loader:
            pass
    sampler.stop()
    assert len(sampler.samples) >= 2
    assert all(s.rss_bytes > 10 * 2**20 for s in sampler.samples)
    assert max(s.children for s in sampler.samples) == 2
    assert max(s.children_rss_bytes for s in sampler.samples) > 0


def test_a_child_running_another_program_is_not_a_worker() -> None:
    """W&B's service, a shell, ffmpeg: children of the process, never DataLoader workers
    (the thread-oversubscription rule counts workers from these samples)."""
    import subprocess

    from trainperf.monitoring.sampler import Sampler

    sampler = Sampler(clock=time.perf_counter, origin=time.perf_counter(), interval_s=60)
    other = subprocess.Popen(["sleep", "30"])
    try:
        loader = DataLoader(Busy(16, 0.001), batch_size=4, num_workers=1, persistent_workers=True)
        iterator = iter(loader)
        next(iterator)  # the worker is up
        sampler.sample()
        (sample,) = sampler.samples
        assert sample.children == 1  # the worker, not sleep
        del iterator, loader
    finally:
        other.kill()
        other.wait()


def test_samples_are_written_with_the_run(tmp_path) -> None:
    with trainperf.monitor(out=tmp_path / "run"):
        train(DataLoader(Busy(8, 0.0), batch_size=4), torch.nn.Linear(32, 1))
    lines = (tmp_path / "run" / "samples.jsonl").read_text().splitlines()
    assert len(lines) >= 1
    assert json.loads(lines[-1])["rss_bytes"] > 0


def test_samples_taken_while_unrecorded_are_not_the_programs(tmp_path) -> None:
    """A probe or a doctor's proof (its own workers, its memory) is left out of the
    samples, as its steps are left out of the periods."""
    with trainperf.monitor(out=tmp_path / "run") as run:
        train(DataLoader(Busy(8, 0.0), batch_size=4), torch.nn.Linear(32, 1))
        before = time.perf_counter()
        with run.unrecorded():
            train(DataLoader(Busy(8, 0.0), batch_size=4), torch.nn.Linear(32, 1))
            time.sleep(2.5)  # at least two of the sampler's 1 s ticks
        inside = (before - run._recorder.origin, time.perf_counter() - run._recorder.origin)
        time.sleep(1.2)
    samples = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert samples  # the ticks outside the block are kept
    assert not [x for x in samples if inside[0] + 0.05 < x["t_s"] < inside[1] - 0.05]
    assert len([p for p in run.periods if p.kind == "train"]) == 2  # the first loop's only


def test_a_folder_that_holds_a_run_is_not_reused(tmp_path) -> None:
    from trainperf.errors import UsageError

    with trainperf.monitor(out=tmp_path / "run"):
        pass
    (tmp_path / "run" / "steps.jsonl").write_text("kept\n")
    with pytest.raises(UsageError, match="already holds a recorded run"):
        trainperf.monitor(out=tmp_path / "run").__enter__()
    assert (tmp_path / "run" / "steps.jsonl").read_text() == "kept\n"


def test_finished_runs_are_indexed_in_history(tmp_path, monkeypatch) -> None:
    from trainperf.monitoring.history import indexed_runs

    monkeypatch.setenv("TRAINPERF_HOME", str(tmp_path / "home"))
    for name in ("a", "b"):
        with trainperf.monitor(out=tmp_path / name):
            train(DataLoader(Busy(20, 0.0), batch_size=4), torch.nn.Linear(32, 1))
    runs = indexed_runs(tmp_path / "home" / "history.sqlite")
    assert [r.path for r in runs] == [str((tmp_path / n).resolve()) for n in ("a", "b")]
    assert all(r.steps == 5 for r in runs)
    digest = trainperf.environment_fingerprint().digest
    assert len(indexed_runs(tmp_path / "home" / "history.sqlite", fingerprint=digest)) == 2
    assert indexed_runs(tmp_path / "home" / "history.sqlite", fingerprint="other") == []


def test_a_foreign_history_file_is_left_untouched(tmp_path, monkeypatch, caplog) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "history.sqlite").write_bytes(b"not a database at all")
    monkeypatch.setenv("TRAINPERF_HOME", str(home))
    with trainperf.monitor(out=tmp_path / "run") as run:
        train(DataLoader(Busy(8, 0.0), batch_size=4), torch.nn.Linear(32, 1))
    assert run.summary is not None
    assert (home / "history.sqlite").read_bytes() == b"not a database at all"
    assert "left as it is" in caplog.text


def test_epochs_are_counted_when_iterators_reuse_an_address(tmp_path) -> None:
    loader = DataLoader(Busy(8, 0.0), batch_size=4)
    with trainperf.monitor(out=tmp_path / "run"):
        train(loader, torch.nn.Linear(32, 1), epochs=3)
    periods = read_periods(tmp_path / "run" / "steps.jsonl")
    assert [p.epoch for p in periods] == [0, 0, 1, 1, 2, 2]
    assert [p.first_of_epoch for p in periods] == [True, False] * 3


def test_one_run_per_process(tmp_path) -> None:
    from trainperf.errors import UsageError
    from trainperf.monitoring.session import active_run

    with trainperf.monitor(out=tmp_path / "a") as run:
        assert active_run() is run
        with (
            pytest.raises(UsageError, match="already recorded into"),
            trainperf.monitor(out=tmp_path / "b"),
        ):
            pass
    assert active_run() is None
    assert not (tmp_path / "b").exists()


@pytest.mark.gpu
def test_cuda_device_time_without_added_synchronisation(tmp_path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    from torch.utils.data import TensorDataset

    device = torch.device("cuda")
    model = torch.nn.Sequential(*[torch.nn.Linear(1024, 1024, device=device) for _ in range(8)])
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    loader = DataLoader(TensorDataset(torch.randn(64 * 32, 1024, device=device)), batch_size=64)
    truth = []
    torch.cuda.synchronize()
    with trainperf.monitor(out=tmp_path / "run") as run:
        torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
        try:
            for _ in range(2):
                for (x,) in loader:
                    start = torch.cuda.Event(enable_timing=True)
                    end = torch.cuda.Event(enable_timing=True)
                    start.record()
                    opt.zero_grad()
                    model(x).square().mean().backward()
                    opt.step()
                    end.record()
                    truth.append((start, end))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    periods = [p for p in read_periods(tmp_path / "run" / "steps.jsonl") if p.kind == "train"]
    assert len(periods) == 64
    assert all(p.device_s is not None for p in periods)
    expected = sorted(s.elapsed_time(e) / 1000 for s, e in truth)[len(truth) // 2]
    assert run.summary.device_step_median_s == pytest.approx(expected, rel=0.2)
    epochs = run.summary.epochs
    assert all(e.device_allocated_peak_bytes for e in epochs)
    assert (tmp_path / "run" / "device_memory.json").is_file()


@pytest.mark.verdict
def test_threads_set_after_monitoring_began_are_seen_and_kept_in_the_record(tmp_path) -> None:
    from trainperf.monitoring.analyze import summarize_folder
    from trainperf.resources import detect_resources

    too_many = 4 * max(1, int(detect_resources(gpus=False).cpus_per_rank))
    before = torch.get_num_threads()
    try:
        with trainperf.monitor(out=tmp_path / "run") as run:
            torch.set_num_threads(too_many)  # the script's own setting, after the start
            train(DataLoader(Waits(48, 0.001), batch_size=4), torch.nn.Linear(32, 1))
    finally:
        torch.set_num_threads(before)
    meta = RunMeta.from_json(json.loads((tmp_path / "run" / "meta.json").read_text()))
    assert meta.intra_op_threads == too_many
    assert run.summary is not None
    recorded, _ = summarize_folder(tmp_path / "run")  # what report and the doctor read
    for summary in (run.summary, recorded):
        (finding,) = [f for f in summary.findings if f.kind == "thread-oversubscription"]
        assert finding.evidence["intra_op_threads"] == too_many
