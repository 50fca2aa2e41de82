"""DataLoader workers timed from inside: their starts, taken apart, and the stages of
each batch, on real worker processes (fork and spawn), with planted costs that wait
on a timer so that they hold on a busy machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, Dataset  # noqa: E402

import trainperf  # noqa: E402
from trainperf.errors import RecordError  # noqa: E402
from trainperf.monitoring.html import workers_section  # noqa: E402
from trainperf.monitoring.render import render_summary  # noqa: E402
from trainperf.monitoring.worker_timing import (  # noqa: E402
    BATCHES_FILE,
    BatchStages,
    LoaderStart,
    WorkerStart,
    created_at,
    read_batches,
    read_loader_starts,
    read_worker_starts,
    stage_times,
    worker_startup,
)
from trainperf.monitoring.workers import unpicklable  # noqa: E402


class Staged(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``n`` samples, each waiting ``getitem_s`` (sample ``slow`` waits ``slow_s``)."""

    def __init__(self, n: int, getitem_s: float, slow: int = -1, slow_s: float = 0.0) -> None:
        self.n, self.getitem_s, self.slow, self.slow_s = n, getitem_s, slow, slow_s

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(self.slow_s if i == self.slow else self.getitem_s)
        return torch.ones(8), torch.zeros(1)


class SlowCollate:
    """Stacks the batch after waiting ``seconds`` (a tokenising collator's cost)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, batch: list[tuple[torch.Tensor, torch.Tensor]]) -> object:
        time.sleep(self.seconds)
        return torch.utils.data.default_collate(batch)


def sleeping_init(worker_id: int) -> None:
    time.sleep(0.4)


def train(loader: DataLoader, epochs: int = 1) -> None:
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()


# -- records and their analysis, on fixed inputs ---------------------------------------


def _start(serial: int, t_s: float, *, loader: int = 0, persistent: bool = False) -> LoaderStart:
    return LoaderStart(serial, loader, "Staged", t_s, 0.01, 2, "fork", persistent)


def _worker(serial: int, t_s: float, pid: int, *, init_s: float = 0.0) -> WorkerStart:
    return WorkerStart(
        pid=pid,
        worker_id=pid % 2,
        num_workers=2,
        start=serial,
        start_method="fork",
        created_t_s=t_s + 0.01,
        unpickled_t_s=None,
        entered_t_s=t_s + 0.02,
        init_fn_s=init_s,
        first_fetch_s=0.05,
        ready_t_s=t_s + 0.02 + init_s + 0.05,
        modules=100,
    )


def test_each_start_after_a_loaders_first_is_avoidable_unless_persistent() -> None:
    starts = [_start(0, 0.0), _start(1, 5.0), _start(2, 10.0)]
    workers = [
        _worker(s.start, s.t_s, 10 * s.start + w, init_s=1.0) for s in starts for w in (0, 1)
    ]
    batches = [
        BatchStages(w.pid, w.worker_id, w.start, 1.0, 0.05, 0.0, 4, 3, 0.02) for w in workers
    ]
    startup = worker_startup(starts, workers, batches)
    assert startup is not None
    assert len(startup.costs) == 3
    # Each start: 1.07 s to its first batch, 0.05 s of which a warm worker takes too.
    assert startup.paid_s == pytest.approx(3 * 1.02, abs=1e-6)
    assert startup.avoidable_s == pytest.approx(2 * 1.02, abs=1e-6)
    assert startup.phase_means()["worker_init_fn"] == pytest.approx(1.0)
    persistent = [_start(0, 0.0, persistent=True)]
    kept = worker_startup(persistent, workers[:2], batches)
    assert kept is not None
    assert kept.avoidable_s == 0.0
    # A second loader's first start is its own, not avoidable.
    two = worker_startup([_start(0, 0.0), _start(1, 5.0, loader=1)], workers[:4], batches)
    assert two is not None
    assert two.avoidable_s == 0.0
    # Starts whose workers never reported are not costed.
    assert worker_startup(starts, [], batches) is None


def test_stage_times_percentiles_and_slowest_samples() -> None:
    batches = [
        BatchStages(1, 0, 0, float(i), 0.010 + i * 1e-3, 0.002, 4, i, 0.001 * i) for i in range(100)
    ]
    stages = stage_times(batches)
    assert stages is not None
    assert stages.p50_s == pytest.approx(0.010 + 49e-3)
    assert stages.p95_s == pytest.approx(0.010 + 94e-3)
    assert stages.p99_s == pytest.approx(0.010 + 98e-3)
    assert [index for index, _ in stages.slowest] == [99, 98, 97, 96, 95]
    assert 0 < stages.collate_share < 0.2
    assert stage_times([]) is None


def test_readers_skip_a_torn_last_line_and_refuse_a_foreign_one(tmp_path: Path) -> None:
    line = json.dumps(BatchStages(1, 0, 0, 0.5, 0.01, None, None, None, None).to_json())
    (tmp_path / BATCHES_FILE).write_text(line + "\n" + line[:20], encoding="utf-8")
    (read,) = read_batches(tmp_path)
    assert read.fetch_s == 0.01
    (tmp_path / BATCHES_FILE).write_text('{"pid": 1}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match=rf"{BATCHES_FILE}:1: not a trainperf worker batch"):
        read_batches(tmp_path)
    assert read_worker_starts(tmp_path) == ()  # no such file: no starts
    nan = line.replace('"fetch_s": 0.01', '"fetch_s": NaN')
    (tmp_path / BATCHES_FILE).write_text(nan + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match="NaN is not a measurement"):
        read_batches(tmp_path)


def test_created_at_reads_the_start_time_from_proc(tmp_path: Path) -> None:
    # The test process itself: created before now, not long before this test.
    created = created_at()
    assert created is not None
    assert created <= time.time()
    (tmp_path / "stat").write_text("not a stat line", encoding="ascii")
    assert created_at(str(tmp_path)) is None


class _Holder:
    def __init__(self) -> None:
        self.config = {"path": "data.bin", "lock": threading.Lock()}


def test_unpicklable_names_the_attribute_that_fails() -> None:
    class Data:
        def __init__(self) -> None:
            self.items = [1, 2, 3]
            self.state = _Holder()

    assert unpicklable(Data(), "dataset") == ("dataset.state.config['lock']", "lock")
    assert unpicklable([1, 2], "dataset") is None


# -- real workers --------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Got pickle error")  # torch's own, which names no attribute
def test_an_unpicklable_dataset_under_spawn_is_named_before_any_worker_starts(
    tmp_path: Path,
) -> None:
    dataset = Staged(8, 0.0)
    dataset.handle = _Holder()  # type: ignore[attr-defined]
    loader = DataLoader(dataset, batch_size=4, num_workers=1, multiprocessing_context="spawn")
    with trainperf.monitor(out=tmp_path / "run"), pytest.raises(TypeError) as raised:
        train(loader)
    notes = "\n".join(getattr(raised.value, "__notes__", []))
    assert "dataset.handle.config['lock'] (lock) cannot be pickled" in notes
    assert "'spawn' start method" in notes
    assert "multiprocessing_context='fork'" in notes


@pytest.mark.filterwarnings("ignore:Got pickle error")
def test_a_lambda_collate_fn_under_spawn_is_told_to_be_a_module_function(tmp_path: Path) -> None:
    loader = DataLoader(
        Staged(8, 0.0),
        batch_size=4,
        num_workers=1,
        multiprocessing_context="spawn",
        collate_fn=lambda batch: batch,
    )
    with trainperf.monitor(out=tmp_path / "run"), pytest.raises(Exception) as raised:  # noqa: PT011
        train(loader)
    notes = "\n".join(getattr(raised.value, "__notes__", []))
    assert "collate_fn (function) cannot be pickled" in notes
    assert "define it as a function at the top level of a module" in notes


@pytest.mark.slow
@pytest.mark.verdict
def test_workers_started_every_epoch_are_taken_apart_and_persistence_is_advised(
    tmp_path: Path,
) -> None:
    # Each worker start waits 0.4 s in worker_init_fn, four epochs over: the starts
    # after the first are what persistent workers save.
    def loader(persistent: bool) -> DataLoader:
        return DataLoader(
            Staged(16, 0.001),
            batch_size=4,
            num_workers=2,
            multiprocessing_context="fork",
            worker_init_fn=sleeping_init,
            persistent_workers=persistent,
        )

    with trainperf.monitor(out=tmp_path / "each") as run:
        train(loader(False), epochs=4)
    assert run.summary is not None
    starts = read_loader_starts(tmp_path / "each")
    assert [s.start for s in starts] == [0, 1, 2, 3]
    assert {s.loader for s in starts} == {0}
    assert all(s.start_method == "fork" and s.pickled_bytes is None for s in starts)
    workers = read_worker_starts(tmp_path / "each")
    assert sorted((w.start, w.worker_id) for w in workers) == [
        (s, w) for s in range(4) for w in (0, 1)
    ]
    assert all(w.init_fn_s >= 0.4 for w in workers)
    assert all(w.unpickled_t_s is None for w in workers)  # forked: nothing unpickled
    (finding,) = [f for f in run.summary.findings if f.kind == "worker-startup"]
    assert "persistent_workers=True" in finding.fix
    assert "worker_init_fn takes" in finding.fix
    assert finding.evidence["starts"] == 4
    assert finding.evidence["worker_init_fn_s"] >= 0.4
    assert finding.evidence["avoidable_s"] >= 3 * 0.4
    assert "(estimated)" in finding.gain
    # The epoch-start spike is this finding's, not said twice.
    assert not [f for f in run.summary.findings if f.kind == "epoch-start-spike"]
    # The report says it, and the page draws each start, phase by phase.
    text = render_summary(run.summary, title="run")
    assert "worker starts: 4 (fork)" in text
    assert "avoidable with persistent workers" in text
    page = workers_section(run.summary)
    assert page.count('<text class="tick"') >= 4  # one row per start at least
    assert ">start 3</text>" in page
    assert "worker_init_fn: " in page

    with trainperf.monitor(out=tmp_path / "kept") as kept:
        train(loader(True), epochs=4)
    assert kept.summary is not None
    assert len(read_loader_starts(tmp_path / "kept")) == 1
    assert kept.summary.workers is not None
    assert kept.summary.workers.startup is not None
    assert kept.summary.workers.startup.avoidable_s == 0.0
    kept_findings = [f for f in kept.summary.findings if f.kind == "worker-startup"]
    assert all("persistent_workers=True:" not in f.fix for f in kept_findings)


@pytest.mark.slow
@pytest.mark.verdict
def test_spawned_workers_reimport_a_heavy_main_module_and_are_sent_a_large_state(
    tmp_path: Path,
) -> None:
    # The main module imports a module whose import waits 0.6 s: every spawned worker
    # imports it again. The dataset carries 4 MiB, pickled for each worker.
    (tmp_path / "heavy_module.py").write_text("import time\ntime.sleep(0.6)\n")
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            import heavy_module
            import torch
            from torch.utils.data import DataLoader, Dataset
            import trainperf

            class Blob(Dataset):
                def __init__(self):
                    self.blob = bytes(4 << 20)
                def __len__(self):
                    return 16
                def __getitem__(self, i):
                    time.sleep(0.002)
                    return torch.ones(8), torch.zeros(1)

            if __name__ == "__main__":
                model = torch.nn.Linear(8, 1)
                opt = torch.optim.SGD(model.parameters(), lr=0.01)
                loader = DataLoader(Blob(), batch_size=2, num_workers=2,
                                    multiprocessing_context="spawn")
                with trainperf.monitor(out="run"):
                    for epoch in range(2):
                        for x, y in loader:
                            opt.zero_grad()
                            torch.nn.functional.mse_loss(model(x), y).backward()
                            opt.step()
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    starts = read_loader_starts(tmp_path / "run")
    assert len(starts) == 2
    assert all(s.start_method == "spawn" for s in starts)
    assert all(s.pickled_bytes is not None and s.pickled_bytes >= 2 * (4 << 20) for s in starts)
    workers = read_worker_starts(tmp_path / "run")
    assert len(workers) == 4
    for worker in workers:
        assert worker.unpickled_t_s is not None
        assert worker.imports_s is not None
        imports = dict(worker.imports)
        assert imports["heavy_module"] >= 0.6  # timed in the worker, as it waited
        assert "torch" in imports
        # The import happened before the worker's arguments were unpickled.
        assert worker.created_t_s is not None
        assert worker.unpickled_t_s - worker.created_t_s >= 0.6
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    startup = summary["workers"]["startup"]
    assert startup["start_method"] == "spawn"
    assert startup["phases_s"]["imports"] >= 0.6
    assert startup["pickled_bytes_per_worker"] >= 4 << 20
    (finding,) = [f for f in summary["verdict"]["findings"] if f["kind"] == "worker-startup"]
    assert "imports the main module and its packages again" in finding["fix"]
    assert "heavy_module" in finding["fix"]
    assert "multiprocessing_context='fork'" in finding["fix"]
    assert "set_forkserver_preload" in finding["fix"]


def _stages(
    tmp_path: Path, name: str, dataset: Dataset, collate: object, workers: int = 1
) -> object:
    # One worker by default: workers started together on timer waits hand over their
    # batches in pairs, every other step waits for nothing, and the median step's data
    # wait sits on the input-bound threshold.
    loader = DataLoader(
        dataset,
        batch_size=4,
        num_workers=workers,
        multiprocessing_context="fork",
        collate_fn=collate,  # type: ignore[arg-type]
    )
    with trainperf.monitor(out=tmp_path / name) as run:
        train(loader, epochs=2)
    assert run.summary is not None
    return run.summary


@pytest.mark.slow
@pytest.mark.verdict
def test_a_collate_heavy_and_a_getitem_heavy_loader_get_their_own_finding(
    tmp_path: Path,
) -> None:
    # Both input-bound on timers: 40 ms of collate_fn a batch against 1 ms samples, and
    # 10 ms samples (sample 5: 60 ms) against a plain collate_fn.
    collating = _stages(tmp_path, "collate", Staged(48, 0.001), SlowCollate(0.04))
    getting = _stages(tmp_path, "getitem", Staged(48, 0.01, slow=5, slow_s=0.06), None)
    assert collating.step.kind == getting.step.kind == "input-bound"  # type: ignore[attr-defined]
    kinds = {f.kind for f in collating.findings}  # type: ignore[attr-defined]
    assert "collate-heavy" in kinds
    assert "getitem-heavy" not in kinds
    kinds = {f.kind for f in getting.findings}  # type: ignore[attr-defined]
    assert "getitem-heavy" in kinds
    assert "collate-heavy" not in kinds

    stages = collating.workers.stages  # type: ignore[attr-defined]
    assert stages.collate_share > 0.7
    assert stages.collate_s >= 0.04
    assert {w for w, *_ in stages.per_worker} == {0}
    # Two workers: each one's stages are kept apart.
    pair = _stages(tmp_path, "pair", Staged(16, 0.001), SlowCollate(0.01), workers=2)
    assert {w for w, *_ in pair.workers.stages.per_worker} == {0, 1}  # type: ignore[attr-defined]
    stages = getting.workers.stages  # type: ignore[attr-defined]
    assert stages.collate_share < 0.3
    assert stages.slowest[0][0] == 5  # the planted slow sample, named first
    assert stages.slowest[0][1] >= 0.06
    assert stages.sample_s is not None
    assert stages.sample_s >= 0.01
    assert stages.p50_s <= stages.p95_s <= stages.p99_s
    (finding,) = [f for f in getting.findings if f.kind == "getitem-heavy"]  # type: ignore[attr-defined]
    assert "slowest samples: 5 (" in finding.fix


def test_rules_stay_quiet_without_worker_records(tmp_path: Path) -> None:
    loader = DataLoader(Staged(32, 0.002), batch_size=4)  # no workers
    with trainperf.monitor(out=tmp_path / "run") as run:
        train(loader, epochs=2)
    assert run.summary is not None
    assert run.summary.workers is not None
    assert run.summary.workers.startup is None
    assert run.summary.workers.stages is None
    assert not (tmp_path / "run" / BATCHES_FILE).exists()
    kinds = {f.kind for f in run.summary.findings}
    assert not kinds & {"worker-startup", "collate-heavy", "getitem-heavy"}


def _doctor(folder: Path) -> dict[str, Any]:
    """``trainperf doctor --json -- python train.py`` in ``folder``, its report."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRAINPERF_")}
    done = subprocess.run(
        [sys.executable, "-m", "trainperf", "doctor", "--json", "--", sys.executable, "train.py"],
        cwd=folder,
        env={**clean, "TRAINPERF_HOME": str(folder / ".trainperf")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


RESTARTING = textwrap.dedent(
    """
    import time
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Data(Dataset):
        def __len__(self):
            return 8
        def __getitem__(self, i):
            time.sleep(0.04 if i == 5 else 0.01)  # sample 5 is the slow one
            return torch.ones(8), torch.zeros(1)

    def init(worker_id):
        time.sleep(0.5)  # each worker start waits half a second

    if __name__ == "__main__":
        model = torch.nn.Linear(8, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        # One worker: every step waits for its batch (two would hand over every other
        # batch at once, and the median step would sit on the input-bound threshold).
        loader = DataLoader(Data(), batch_size=2, num_workers=1, worker_init_fn=init,
                            multiprocessing_context="fork")
        for epoch in range(6):
            for x, y in loader:
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                opt.step()
    """
)


@pytest.mark.slow
@pytest.mark.verdict
def test_the_doctor_measures_persistent_workers_against_restarts(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(RESTARTING)
    report = _doctor(tmp_path)
    (proof,) = [p for p in report["proofs"] if p["kind"] == "persistence"]
    assert proof["start_method"] == "fork"
    assert len(proof["original_times"]) == len(proof["persistent_times"]) == 3
    # Every restart waits 0.5 s in worker_init_fn; a kept worker does not start again.
    assert min(proof["original_times"]) >= 0.5
    assert max(proof["persistent_times"]) < min(proof["original_times"])
    (finding,) = [f for f in report["findings"] if f["kind"] == "worker-startup"]
    assert finding["gain_source"] == "measured"
    assert "with persistent_workers=True" in finding["gain"]
    assert finding["speedup"] > 1.0  # the run's factor, estimated from the measured start
    assert finding["speedup_low"] is None  # its interval is the epoch start's, in the gain
    assert "persistent_workers=True" in finding["fix"]
    # Input-bound (a linear layer against 10 ms samples waited for on a timer, a margin
    # that holds beside busy loops): the cache proof builds
    # the slowest sample the workers timed first.
    assert report["verdict"]["step"]["kind"] == "input-bound"
    (cache,) = [p for p in report["proofs"] if p["kind"] == "cache"]
    assert cache["slow_indices"][0] == 5


@pytest.mark.slow
def test_the_persistence_proof_also_times_fork_for_spawned_workers() -> None:
    from _datasets import Waits
    from trainperf.doctor.child import persistence_proof
    from trainperf.monitoring.hooks import LoaderSeen

    seen = LoaderSeen(
        dataset=Waits(8, 0.001),
        collate_fn=None,
        batch_size=2,
        drop_last=False,
        num_workers=1,
        prefetch_factor=2,
        pin_memory=False,
        start_method="spawn",
    )
    proof = persistence_proof(seen, epochs=2)
    assert proof["start_method"] == "spawn"
    assert len(proof["original_times"]) == len(proof["fork_times"]) == 2
    # A spawned worker imports torch before its first batch; a forked one has it.
    assert max(proof["fork_times"]) < min(proof["original_times"])
    assert max(proof["persistent_times"]) < min(proof["original_times"])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_every_start_method_reports_its_starts_and_batches(tmp_path: Path, method: str) -> None:
    loader = DataLoader(
        Staged(8, 0.001, slow=3, slow_s=0.03),
        batch_size=2,
        num_workers=2,
        multiprocessing_context=method,
    )
    with trainperf.monitor(out=tmp_path / "run"):
        train(loader)
    (start,) = read_loader_starts(tmp_path / "run")
    assert start.start_method == method
    # fork copies the process; spawn and forkserver send each worker its state pickled.
    assert (start.pickled_bytes is None) == (method == "fork")
    workers = read_worker_starts(tmp_path / "run")
    assert sorted(w.worker_id for w in workers) == [0, 1]
    assert all((w.unpickled_t_s is None) == (method == "fork") for w in workers)
    assert all(w.start_method == method and w.start == start.start for w in workers)
    # Only a spawned worker's imports are timed (forkserver's happened in its server).
    assert all((w.imports_s is not None) == (method == "spawn") for w in workers)
    batches = read_batches(tmp_path / "run")
    assert len(batches) == 4
    slowest = max(batches, key=lambda b: b.slowest_s or 0.0)
    assert slowest.slowest_index == 3


class _Ids:
    def __init__(self, items: object) -> None:
        self.items = items

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> object:
        return type(self.items[i]).__name__  # changes when the list becomes an array


def test_only_large_lists_numpy_holds_plainly_are_converted() -> None:
    from trainperf.doctor.memory import MIN_ITEMS, large_lists, memory_proof
    from trainperf.monitoring.hooks import LoaderSeen

    class Data:
        def __init__(self) -> None:
            self.ids = list(range(MIN_ITEMS))
            self.paths = [f"img{i}.png" for i in range(MIN_ITEMS)]
            self.small = [1, 2, 3]
            self.objects = [object() for _ in range(MIN_ITEMS)]
            self.table = {i: i for i in range(MIN_ITEMS)}

    assert large_lists(Data()) == ["ids", "paths"]
    seen = LoaderSeen(_Ids(list(range(MIN_ITEMS))), None, 2, False, 2, 2, False)
    proof = memory_proof(seen)
    assert "sample 0 differs with items as numpy arrays" in str(proof["skipped"])
    seen = LoaderSeen(Staged(8, 0.0), None, 2, False, 2, 2, False)
    assert "no Python list" in str(memory_proof(seen)["skipped"])


COPYING = textwrap.dedent(
    """
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Listed(Dataset):
        def __init__(self):
            self.items = list(range(4_000_000))  # Python ints: each read writes its refcount
        def __len__(self):
            return 256
        def __getitem__(self, i):
            step = len(self.items) // 256
            return torch.tensor([float(sum(self.items[i * step:(i + 1) * step]))])

    if __name__ == "__main__":
        model = torch.nn.Linear(1, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        loader = DataLoader(Listed(), batch_size=16, num_workers=2,
                            multiprocessing_context="fork", persistent_workers=True)
        for epoch in range(3):
            for x in loader:
                opt.zero_grad()
                model(x).sum().backward()
                opt.step()
    """
)


@pytest.mark.slow
def test_the_doctor_measures_copy_on_read_against_arrays(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(COPYING)
    report = _doctor(tmp_path)
    (proof,) = [p for p in report["proofs"] if p["kind"] == "memory"]
    assert proof["attributes"] == ["items"]
    # 4 million ints, half read by each worker: tens of MiB copied with the list; an
    # array's pages are only read.
    assert proof["list_gain_bytes"] >= 16 * 2**20
    assert proof["array_gain_bytes"] < 0.25 * proof["list_gain_bytes"]
    (finding,) = [f for f in report["findings"] if f["kind"] == "worker-memory"]
    assert finding["gain_source"] == "measured"
    assert "np.asarray(items)" in finding["fix"]
