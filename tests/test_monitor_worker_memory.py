"""Worker memory forensics: smaps_rollup readings, the record, the classifier, the finding;
and real forked DataLoader workers copying a Python list but not a NumPy array."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest

from _support import GIB, FakeSystem
from trainperf.errors import RecordError, UsageError
from trainperf.monitoring.worker_memory import (
    WORKER_MEMORY_FILE,
    ProcessMemory,
    ProcessReading,
    WorkerMemoryRecord,
    WorkerMemoryRecorder,
    classify_growth,
    read_cgroup_memory,
    read_shm,
    read_smaps_rollup,
    read_worker_memory,
    worker_memory_finding,
)

MIB = 1 << 20

ROLLUP = """\
55d1c0a7c000-7ffd6b5f2000 ---p 00000000 00:00 0                          [rollup]
Rss:              307200 kB
Pss:              110000 kB
Pss_Dirty:         20000 kB
Pss_Anon:          18000 kB
Pss_File:          92000 kB
Pss_Shmem:             0 kB
Shared_Clean:     250000 kB
Shared_Dirty:      30000 kB
Private_Clean:      1200 kB
Private_Dirty:     26000 kB
Referenced:       307200 kB
Anonymous:         60000 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
Swap:                512 kB
SwapPss:             256 kB
Locked:                0 kB
"""

STATUS = """\
Name:\tpython
State:\tS (sleeping)
VmPeak:\t  900000 kB
VmRSS:\t  307200 kB
RssAnon:\t   60000 kB
RssFile:\t  240000 kB
RssShmem:\t    7200 kB
VmSwap:\t     512 kB
Threads:\t4
"""


def fake_proc(root: Path, pid: int, **files: str) -> Path:
    folder = root / str(pid)
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


# -- reading ---------------------------------------------------------------------------


def test_smaps_rollup_is_read_in_bytes(tmp_path: Path) -> None:
    fake_proc(tmp_path, 42, smaps_rollup=ROLLUP, status=STATUS)

    memory = read_smaps_rollup(42, proc_root=tmp_path)

    assert memory == ProcessMemory(
        rss=307200 * 1024,
        pss=110000 * 1024,
        uss=(1200 + 26000) * 1024,
        shared=(250000 + 30000) * 1024,
        anonymous=60000 * 1024,
        swap=512 * 1024,
    )


def test_status_stands_in_only_where_smaps_rollup_does_not_exist(tmp_path: Path) -> None:
    fake_proc(tmp_path, 7, status=STATUS)

    memory = read_smaps_rollup(7, proc_root=tmp_path)

    assert memory == ProcessMemory(
        rss=307200 * 1024,
        pss=None,
        uss=None,
        shared=None,
        anonymous=60000 * 1024,
        swap=512 * 1024,
        shmem=7200 * 1024,
        source="status",
    )


def test_gone_zombie_and_unreadable_processes_read_none(tmp_path: Path) -> None:
    fake_proc(tmp_path, 1, smaps_rollup="")  # a zombie: no memory left to sum
    fake_proc(tmp_path, 2, status="Name:\tkthreadd\nThreads:\t1\n")  # no VmRSS
    folder = fake_proc(tmp_path, 3, status=STATUS)
    (folder / "smaps_rollup").mkdir()  # exists but cannot be read: no fallback either
    fake_proc(tmp_path, 4, smaps_rollup="Rss: 12 kB\nPss: lots\n")  # not a rollup

    assert read_smaps_rollup(1, proc_root=tmp_path) is None
    assert read_smaps_rollup(2, proc_root=tmp_path) is None
    assert read_smaps_rollup(3, proc_root=tmp_path) is None
    assert read_smaps_rollup(4, proc_root=tmp_path) is None
    assert read_smaps_rollup(5, proc_root=tmp_path) is None  # no such process


def test_this_process_and_a_reaped_child_on_the_real_proc() -> None:
    memory = read_smaps_rollup(os.getpid())
    assert memory is not None
    assert memory.source == "smaps_rollup"
    assert memory.uss is not None
    assert memory.shared is not None
    assert memory.pss is not None
    assert memory.uss + memory.shared == memory.rss  # proc(5): every resident page is one
    assert memory.uss <= memory.pss <= memory.rss
    child = subprocess.Popen(["true"])
    child.wait()
    assert read_smaps_rollup(child.pid) is None


def test_shm_and_cgroup_memory(tmp_path: Path, fake_system: FakeSystem) -> None:
    shm = read_shm(tmp_path)
    assert shm is not None
    assert 0 <= shm.used_bytes <= shm.total_bytes
    assert read_shm(tmp_path / "missing") is None

    from trainperf.resources._reader import SystemReader

    assert read_cgroup_memory(SystemReader(fake_system.root)) is None  # no cgroup at all
    ctr = fake_system.cgroup_v2("/job")
    (ctr / "memory.max").write_text(f"{8 * GIB}\n")
    (ctr / "memory.current").write_text(f"{3 * GIB}\n")
    (ctr / "memory.stat").write_text(f"anon 1\ninactive_file {GIB}\n")

    memory = read_cgroup_memory(SystemReader(fake_system.root))

    assert memory is not None
    assert (memory.limit_bytes, memory.usage_bytes) == (8 * GIB, 2 * GIB)  # less the cache


# -- recording -------------------------------------------------------------------------


def test_the_recorder_appends_one_line_a_reading(tmp_path: Path, fake_system: FakeSystem) -> None:
    proc = tmp_path / "proc"
    fake_proc(proc, 100, smaps_rollup=ROLLUP)
    fake_proc(
        proc, 101, smaps_rollup=ROLLUP.replace("Private_Dirty:     26000", "Private_Dirty: 1")
    )
    ctr = fake_system.cgroup_v2("/job")
    (ctr / "memory.max").write_text(f"{8 * GIB}\n")
    (ctr / "memory.current").write_text(f"{GIB}\n")
    run = tmp_path / "run"
    run.mkdir()
    recorder = WorkerMemoryRecorder(
        run,
        proc_root=proc,
        shm_path=tmp_path / "no-shm",
        system_root=fake_system.root,
        max_cpu_share=1.0,
    )

    first = recorder.record(1.5, main=100, workers=[101, 102])  # 102 has exited
    second = recorder.record(2.5, main=None, workers=[])

    lines = (run / WORKER_MEMORY_FILE).read_text().splitlines()
    assert json.loads(lines[0]) == {
        "t_s": 1.5,
        "main": {
            "pid": 100,
            "rss": 314572800,
            "pss": 112640000,
            "uss": 27852800,
            "shared": 286720000,
        },
        "workers": [
            {"pid": 101, "rss": 314572800, "pss": 112640000, "uss": 1229824, "shared": 286720000}
        ],
        "shm_used_bytes": None,
        "shm_total_bytes": None,
        "cgroup_limit_bytes": 8 * GIB,
        "cgroup_usage_bytes": GIB,
    }
    assert read_worker_memory(run) == (first, second)


def test_readings_are_spaced_to_cost_at_most_their_share_of_a_cpu(tmp_path: Path) -> None:
    spent = iter([0.0, 0.05, 1.0, 1.05])  # each reading takes 50 ms of CPU
    recorder = WorkerMemoryRecorder(tmp_path, max_cpu_share=0.01, cpu_clock=lambda: next(spent))

    taken = [recorder.record(t, main=None, workers=[]) is not None for t in (0, 1, 4.9, 5, 6)]

    assert taken == [True, False, False, True, False]  # 50 ms / 1% = a reading every 5 s
    assert len(read_worker_memory(tmp_path)) == 2
    with pytest.raises(UsageError, match=r"max_cpu_share must be in \(0, 1\].*got 0"):
        WorkerMemoryRecorder(tmp_path, max_cpu_share=0)


def test_the_record_reader_skips_a_torn_last_line_and_refuses_others(tmp_path: Path) -> None:
    assert read_worker_memory(tmp_path) == ()
    good = json.dumps(tick(0.0, [reading(9, 1, 2)]).to_json())
    path = tmp_path / WORKER_MEMORY_FILE
    path.write_text(f"{good}\n{good}\n" + good[:20])
    assert len(read_worker_memory(tmp_path)) == 2

    path.write_text(f'{good}\n{{"t_s": 1, "workers": 3}}\n{good}\n')
    with pytest.raises(RecordError, match=r"worker_memory.jsonl:2: .*'workers'"):
        read_worker_memory(tmp_path)
    path.write_text(good.replace('"uss": 1', '"uss": "1"') + "\n" + good + "\n")
    with pytest.raises(RecordError, match=r":1: .*'uss'"):
        read_worker_memory(tmp_path)


# -- classifying (synthetic series, one reading a second) -----------------------------


def reading(pid: int, uss: float, shared: float, pss: float | None = None) -> ProcessReading:
    return ProcessReading(
        pid, int(uss + shared), None if pss is None else int(pss), int(uss), int(shared)
    )


def tick(t: float, workers: list[ProcessReading], **kwargs: int | None) -> WorkerMemoryRecord:
    fields: dict[str, int | None] = {
        "shm_used_bytes": None,
        "shm_total_bytes": None,
        "cgroup_limit_bytes": None,
        "cgroup_usage_bytes": None,
        **kwargs,
    }
    return WorkerMemoryRecord(t, None, tuple(workers), **fields)


def copying(seconds: int = 40) -> list[WorkerMemoryRecord]:
    """Two workers copying 4 MiB/s each out of 300 MiB shared."""
    return [
        tick(t, [reading(pid, 10 * MIB + 4 * MIB * t, 300 * MIB - 4 * MIB * t) for pid in (1, 2)])
        for t in range(seconds)
    ]


def test_uss_rising_as_shared_falls_is_copy_on_read() -> None:
    growth = classify_growth(copying())

    assert [w.kind for w in growth.workers] == ["copy-on-read", "copy-on-read"]
    assert growth.workers[0].uss_slope_bytes_per_s == pytest.approx(4 * MIB)
    assert growth.workers[0].shared_slope_bytes_per_s == pytest.approx(-4 * MIB)
    assert growth.kinds == ("copy-on-read",)


def test_copying_that_levelled_off_is_not_projected_to_the_limit() -> None:
    # 4 MiB/s copied for 20 s, then every page read is the worker's own: flat for 40 s.
    def worker(pid: int, t: int) -> ProcessReading:
        copied = 4 * MIB * min(t, 20)
        return reading(pid, 10 * MIB + copied, 300 * MIB - copied, pss=160 * MIB + copied)

    records = [
        dataclasses.replace(
            tick(
                t, [worker(1, t), worker(2, t)], cgroup_limit_bytes=8 * GIB, cgroup_usage_bytes=GIB
            ),
            main=reading(9, 100 * MIB, 0, pss=100 * MIB),
        )
        for t in range(60)
    ]
    assert classify_growth(records).projected_limit_s is None
    finding = worker_memory_finding(records)
    assert finding is not None
    assert "had levelled off" in finding.gain
    assert "limit in" not in finding.gain


def test_uss_rising_with_shared_flat_is_a_leak() -> None:
    records = [tick(t, [reading(1, 10 * MIB + 2 * MIB * t, 300 * MIB)]) for t in range(40)]

    growth = classify_growth(records)

    assert growth.workers[0].kind == "leak"
    assert growth.kinds == ("leak",)


@pytest.mark.parametrize(
    "uss",
    [
        pytest.param(lambda t: 10 * MIB + (3 * MIB if t % 2 else 0), id="noise"),
        pytest.param(lambda t: 10 * MIB + (100 * MIB if t >= 3 else 0), id="start-up step"),
        pytest.param(lambda t: 10 * GIB + MIB * t // 2, id="small for its size"),
    ],
)
def test_noise_a_start_up_step_and_small_growth_are_no_finding(uss) -> None:
    records = [tick(t, [reading(1, uss(t), 300 * MIB)]) for t in range(40)]

    assert classify_growth(records).kinds == ()
    assert worker_memory_finding(records, epoch_s=None) is None


def test_too_few_readings_or_too_short_a_window_decide_nothing() -> None:
    assert classify_growth(copying(4)).kinds == ()  # MIN_SAMPLES
    squeezed = [tick(r.t_s / 5, list(r.workers)) for r in copying(40)]  # 8 s in all
    assert classify_growth(squeezed).kinds == ()  # MIN_DURATION_S


def test_dev_shm_that_keeps_filling_is_a_pile_up_and_a_prefetch_ramp_is_not() -> None:
    flat = [reading(1, 10 * MIB, 300 * MIB)]
    filling = [
        tick(t, flat, shm_used_bytes=5 * MIB * t, shm_total_bytes=GIB) for t in range(40)
    ]  # 195 MiB more, past max(64 MiB, 5% of 1 GiB)
    ramp = [
        tick(t, flat, shm_used_bytes=min(t, 3) * 200 * MIB, shm_total_bytes=GIB) for t in range(40)
    ]

    growth = classify_growth(filling)
    assert growth.kinds == ("shm-pile-up",)
    assert growth.shm_slope_bytes_per_s == pytest.approx(5 * MIB)
    assert classify_growth(ramp).kinds == ()


def test_the_time_to_the_limit_is_projected_from_the_whole_tree() -> None:
    # Main flat at 1 GiB of PSS; each worker's PSS grows 10 MiB/s: 20 MiB/s in all, with
    # 3600 MiB left under an 8 GiB limit at the last reading: 180 s.
    records = [
        WorkerMemoryRecord(
            t,
            reading(10, 500 * MIB, 600 * MIB, pss=GIB),
            tuple(
                reading(
                    pid,
                    10 * MIB + 4 * MIB * t,
                    300 * MIB - 4 * MIB * t,
                    pss=100 * MIB + 10 * MIB * t,
                )
                for pid in (1, 2)
            ),
            shm_used_bytes=MIB,
            shm_total_bytes=GIB,
            cgroup_limit_bytes=8 * GIB,
            cgroup_usage_bytes=8 * GIB - 3600 * MIB,
        )
        for t in range(40)
    ]

    growth = classify_growth(records)
    finding = worker_memory_finding(records, epoch_s=60.0)

    assert growth.total_slope_bytes_per_s == pytest.approx(20 * MIB)
    assert growth.projected_limit_s == pytest.approx(180.0)
    assert finding is not None
    assert finding.kind == "worker-memory"
    assert finding.confidence == "high"
    evidence = finding.evidence
    assert evidence["projected_limit_s"] == pytest.approx(180.0)
    assert evidence["projected_limit_epochs"] == pytest.approx(3.0)
    assert evidence["uss_growth_bytes_per_s"] == pytest.approx(8 * MIB)
    assert evidence["shared_drop_bytes_per_s"] == pytest.approx(8 * MIB)
    assert evidence["memory_limit_bytes"] == 8 * GIB
    assert "reaches its 8 GiB limit in ~3 min, about 3.0 epochs (estimated)" in finding.gain
    assert "copy-on-read" in finding.fix
    assert "np.asarray(labels)" in finding.fix
    assert "fewer workers" in finding.fix


def test_each_kind_names_its_fix_and_a_short_series_is_low_confidence() -> None:
    leak = [tick(t, [reading(1, 10 * MIB + 2 * MIB * t, 300 * MIB)]) for t in range(20)]
    flat = [reading(1, 10 * MIB, 300 * MIB)]
    shm = [tick(t, flat, shm_used_bytes=5 * MIB * t, shm_total_bytes=GIB) for t in range(40)]

    found = worker_memory_finding(leak, epoch_s=None)
    assert found is not None
    assert "cache" in found.fix
    assert "until the machine runs out (estimated)" in found.gain  # no limit known
    assert found.confidence == "low"
    assert found.reasons == ("20 memory readings: a confident trend needs 30",)
    found = worker_memory_finding(shm, epoch_s=None)
    assert found is not None
    assert "prefetch_factor" in found.fix
    assert found.evidence["shm_growth_bytes_per_s"] == pytest.approx(5 * MIB)
    with pytest.raises(UsageError, match=r"epoch_s must be > 0 s.*got 0"):
        worker_memory_finding(shm, epoch_s=0.0)


# -- real forked DataLoader workers ------------------------------------------------------


N_ITEMS = 3_000_000
CHUNK = 10_000


class Chunks:
    """A dataset of ``N_ITEMS // CHUNK`` samples, each the sum of one chunk of ``data``
    (a slice of a list takes a reference to, and so writes into, each of its items)."""

    def __init__(self, data) -> None:
        self.data = data

    def __len__(self) -> int:
        return N_ITEMS // CHUNK

    def __getitem__(self, index: int) -> tuple[int, int]:
        part = self.data[index * CHUNK : (index + 1) * CHUNK]
        return int(part.sum() if hasattr(part, "sum") else sum(part)), os.getpid()


def record_epochs(data, folder: Path) -> list[WorkerMemoryRecord]:
    """Three epochs of 2 persistent forked workers; a reading every 25 batches, on a
    clock that counts readings (seconds stand for ticks: no timing is asserted)."""
    from torch import Generator
    from torch.utils.data import DataLoader

    loader = DataLoader(
        Chunks(data),
        batch_size=None,
        shuffle=True,
        generator=Generator().manual_seed(0),
        num_workers=2,
        multiprocessing_context="fork",
        persistent_workers=True,
    )
    recorder = WorkerMemoryRecorder(folder, max_cpu_share=1.0)
    workers: set[int] = set()
    records = []
    for _ in range(3):
        for index, (_, pid) in enumerate(loader):
            workers.add(int(pid))
            if index % 25 == 24:
                record = recorder.record(float(len(records)), main=os.getpid(), workers=workers)
                assert record is not None
                records.append(record)
    del loader
    return records


def test_forked_workers_reading_a_python_list_copy_it_and_a_numpy_array_does_not(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch")
    np = pytest.importorskip("numpy")
    (tmp_path / "list").mkdir()
    (tmp_path / "array").mkdir()
    listed = record_epochs(list(range(10**6, 10**6 + N_ITEMS)), tmp_path / "list")
    arrayed = record_epochs(np.arange(10**6, 10**6 + N_ITEMS), tmp_path / "array")

    copied, kept = classify_growth(listed), classify_growth(arrayed)

    assert len(copied.workers) == len(kept.workers) == 2
    assert [w.kind for w in copied.workers] == ["copy-on-read", "copy-on-read"]
    assert [w.kind for w in kept.workers] == [None, None]
    # Each worker copies most of the ~110 MiB of ints and the list's pages; the array's
    # workers copy nothing of their 24 MiB buffer.
    assert min(w.uss_growth_bytes for w in copied.workers) > 32 * MIB
    assert max(w.uss_growth_bytes for w in kept.workers) < 8 * MIB
    assert all((w.shared_slope_bytes_per_s or 0) < 0 for w in copied.workers)
    finding = worker_memory_finding(read_worker_memory(tmp_path / "list"), epoch_s=12.0)
    assert finding is not None
    assert "copy-on-read" in finding.fix
    assert worker_memory_finding(read_worker_memory(tmp_path / "array"), epoch_s=12.0) is None


def test_the_sampler_records_worker_memory_into_its_run_folder(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import time

    from torch.utils.data import DataLoader

    from trainperf.monitoring.sampler import Sampler

    assert Sampler(clock=time.perf_counter, origin=0.0, interval_s=60).memory is None
    sampler = Sampler(
        clock=time.perf_counter, origin=time.perf_counter(), interval_s=60, folder=tmp_path
    )
    loader = DataLoader(
        Chunks(list(range(N_ITEMS // 100))),
        batch_size=None,
        num_workers=1,
        multiprocessing_context="fork",
        persistent_workers=True,
    )
    iterator = iter(loader)
    _, worker = next(iterator)
    sampler.sample()
    del iterator, loader

    (record,) = read_worker_memory(tmp_path)
    assert record.main is not None
    assert record.main.pid == os.getpid()
    assert [w.pid for w in record.workers] == [int(worker)]
    assert sampler.samples[0].children == 1
