"""DataLoader workers' memory as the run goes: copy-on-read, leaks, a filling /dev/shm.

    recorder = WorkerMemoryRecorder(run_folder)      # the Sampler does this each tick
    recorder.record(t_s, main=os.getpid(), workers=worker_pids)
    records = read_worker_memory(run_folder)         # one WorkerMemoryRecord per tick
    worker_memory_finding(records, epoch_s=42.0)     # a Finding, or None

A forked worker starts out sharing every page of the training process. Reading a
Python object writes its reference count, so each page of Python lists, dicts and
their items that a worker reads is copied into it ("copy-on-read", PyTorch issue
pytorch/pytorch#13246): the worker's private memory (USS) rises while its shared
memory falls by as much, in every worker, until the container is killed. Monitors that
read the RSS of the training process see none of it, and RSS, which counts shared pages
in every process, cannot tell a copy from a page that was always there.

Each tick reads ``/proc/<pid>/smaps_rollup`` once per process (the sums of
``/proc/<pid>/smaps``, Linux 4.14 and later; fields as in the proc(5) man page), the
``/dev/shm`` mount's use (``statvfs``) and the cgroup's memory limit and working set
(:mod:`trainperf.resources.cgroup`), and appends one JSON line to
``worker_memory.jsonl``; see :class:`WorkerMemoryRecord`.

Rules (:func:`classify_growth`), on least-squares slopes (bytes/s) over at least
``MIN_SAMPLES`` readings and ``MIN_DURATION_S`` seconds, a worker's USS that grows over
the window by ``max(MIN_GROWTH_BYTES, GROWTH_SHARE x its RSS)`` is:

* ``copy-on-read``: its shared memory falls at least ``COPY_SHARE`` as fast;
* ``leak``: it does not, and the USS still grows in the later half of the window
  (``STILL_GROWING``), which a one-off allocation at start-up does not.

``shm-pile-up``: ``/dev/shm`` use grows by ``max(SHM_MIN_GROWTH_BYTES, SHM_GROWTH_SHARE
x its size)`` and still grows in the later half. The time to the memory limit is
estimated from the growth of the process tree (the sum of the processes' PSS, which
counts a shared page once; or of ``/dev/shm``, if faster) and the cgroup's headroom.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from trainperf._json import as_object, objects, opt_int, read_lines, req_float, req_int
from trainperf.errors import RecordError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from trainperf._json import JsonObject
    from trainperf.monitoring.analyze import Finding
    from trainperf.resources._reader import SystemReader

__all__ = [
    "CONFIDENT_SAMPLES",
    "COPY_SHARE",
    "GROWTH_SHARE",
    "MAX_CPU_SHARE",
    "MIN_DURATION_S",
    "MIN_GROWTH_BYTES",
    "MIN_SAMPLES",
    "SHM_GROWTH_SHARE",
    "SHM_MIN_GROWTH_BYTES",
    "STILL_GROWING",
    "WORKER_MEMORY_FILE",
    "CgroupMemory",
    "GrowthKind",
    "MemoryGrowth",
    "ProcessMemory",
    "ProcessReading",
    "ShmUsage",
    "WorkerGrowth",
    "WorkerMemoryRecord",
    "WorkerMemoryRecorder",
    "classify_growth",
    "read_cgroup_memory",
    "read_shm",
    "read_smaps_rollup",
    "read_worker_memory",
    "worker_memory_finding",
]

WORKER_MEMORY_FILE = "worker_memory.jsonl"
GrowthKind = Literal["copy-on-read", "leak", "shm-pile-up"]

# A slope through fewer readings, or over a shorter time, follows one reading's noise.
MIN_SAMPLES = 5
MIN_DURATION_S = 10.0
# A worker's own start-up (imports, its first batches, the allocator's arenas) moves its
# USS by a few MiB; growth counts when it is both this large and this share of the
# worker's RSS (a worker forked from a 10 GiB process copying 16 MiB is no finding).
MIN_GROWTH_BYTES = 16 * 2**20
GROWTH_SHARE = 0.05
# Copy-on-read moves pages from shared to private one for one; a shared drop of at least
# half the USS rise leaves room for the worker's own allocations beside the copying.
COPY_SHARE = 0.5
# Growth that continues: the later half's slope is at least this share of the whole
# window's. A step at start-up (prefetched batches filling /dev/shm, buffers allocated
# once) has a later-half slope near zero.
STILL_GROWING = 0.25
# In-flight batches (workers x prefetch_factor) hold /dev/shm steady; growth past this
# much, and this share of the mount, is batches that are never freed.
SHM_MIN_GROWTH_BYTES = 64 * 2**20
SHM_GROWTH_SHARE = 0.05
# Fewer readings than this give low confidence.
CONFIDENT_SAMPLES = 30
# The recorder spaces its readings to spend at most this share of one CPU: a finding
# needs tens of readings over minutes, not one a second from a dozen workers.
MAX_CPU_SHARE = 0.01

_KIB = 1024


# -- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessMemory:
    """One process's memory, in bytes (proc(5), ``/proc/<pid>/smaps_rollup``).

    ``rss``: resident pages; ``pss``: each page divided by the processes mapping it;
    ``uss``: pages mapped by this process alone (``Private_Clean + Private_Dirty``);
    ``shared``: pages also mapped by another (``Shared_Clean + Shared_Dirty``);
    ``anonymous``: pages not backed by a file; ``swap``: swapped out. Read from
    ``/proc/<pid>/status`` (kernels before 4.14), only ``rss`` (``VmRSS``), ``anonymous``
    (``RssAnon``), ``swap`` (``VmSwap``) and ``shmem`` (``RssShmem``: tmpfs and
    ``/dev/shm`` pages) are known; from ``smaps_rollup``, ``shmem`` is not.
    """

    rss: int
    pss: int | None
    uss: int | None
    shared: int | None
    anonymous: int | None
    swap: int | None
    shmem: int | None = None
    source: Literal["smaps_rollup", "status"] = "smaps_rollup"


def _kib_fields(text: str) -> dict[str, int]:
    """``Name:   123 kB`` lines, in bytes (the rollup's first line is its range)."""
    out = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if sep and len(parts) == 2 and parts[1] == "kB" and parts[0].isdecimal():
            out[name.strip()] = int(parts[0]) * _KIB
    return out


def read_smaps_rollup(pid: int, proc_root: Path = Path("/proc")) -> ProcessMemory | None:
    """The memory of process ``pid``; ``None`` when it is gone (or a zombie, which has no
    memory left) or its files are unreadable. Falls back to ``status`` only where
    ``smaps_rollup`` does not exist. One read of a few hundred bytes, for which the
    kernel walks the process's page tables: milliseconds, more for a larger process."""
    folder = proc_root / str(pid)
    try:
        text = (folder / "smaps_rollup").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return _from_status(folder) if folder.is_dir() else None
    except OSError:  # gone between the calls (ESRCH), not ours to read, not a file
        return None
    f = _kib_fields(text)
    try:
        return ProcessMemory(
            rss=f["Rss"],
            pss=f["Pss"],
            uss=f["Private_Clean"] + f["Private_Dirty"],
            shared=f["Shared_Clean"] + f["Shared_Dirty"],
            anonymous=f.get("Anonymous"),
            swap=f.get("Swap"),
        )
    except KeyError:  # empty for a zombie; something else is not a rollup
        return None


def _from_status(folder: Path) -> ProcessMemory | None:
    try:
        text = (folder / "status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    f = _kib_fields(text)
    if "VmRSS" not in f:  # a zombie or a kernel thread: no memory of its own
        return None
    return ProcessMemory(
        rss=f["VmRSS"],
        pss=None,
        uss=None,
        shared=None,
        anonymous=f.get("RssAnon"),
        swap=f.get("VmSwap"),
        shmem=f.get("RssShmem"),
        source="status",
    )


@dataclass(frozen=True)
class ShmUsage:
    """The ``/dev/shm`` mount, in bytes."""

    used_bytes: int
    total_bytes: int


def read_shm(path: Path = Path("/dev/shm")) -> ShmUsage | None:
    """The use of the ``/dev/shm`` mount (every process's segments, unlinked ones still
    open included), by ``statvfs``; ``None`` where it cannot be read."""
    try:
        stat = os.statvfs(path)
    except (OSError, AttributeError):  # AttributeError: no statvfs on this platform
        return None
    return ShmUsage((stat.f_blocks - stat.f_bfree) * stat.f_frsize, stat.f_blocks * stat.f_frsize)


@dataclass(frozen=True)
class CgroupMemory:
    """The tightest cgroup memory limit, and the working set counted against it
    (``limit - headroom``; see :mod:`trainperf.resources.cgroup`), in bytes."""

    limit_bytes: int
    usage_bytes: int


def read_cgroup_memory(reader: SystemReader) -> CgroupMemory | None:
    """``None`` without a memory limit. ``reader`` holds the root (``/`` or a fake tree)."""
    from trainperf.resources.cgroup import read_cgroup_limits

    limits = read_cgroup_limits(reader)
    limit, headroom = limits.memory_limit_bytes, limits.memory_headroom_bytes
    if limit is None or headroom is None:
        return None
    return CgroupMemory(limit, max(0, limit - headroom))


# -- recording -------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessReading:
    """One process at one tick, in bytes; ``pss``, ``uss``, ``shared`` are ``None``
    where only ``/proc/<pid>/status`` could be read."""

    pid: int
    rss: int
    pss: int | None
    uss: int | None
    shared: int | None

    @property
    def size(self) -> int:
        """What it adds to the tree's memory: its PSS (shared pages counted once over
        the processes), else its RSS."""
        return self.rss if self.pss is None else self.pss

    def to_json(self) -> JsonObject:
        return {
            "pid": self.pid,
            "rss": self.rss,
            "pss": self.pss,
            "uss": self.uss,
            "shared": self.shared,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> ProcessReading:
        return cls(
            pid=req_int(data, "pid"),
            rss=req_int(data, "rss"),
            pss=opt_int(data, "pss"),
            uss=opt_int(data, "uss"),
            shared=opt_int(data, "shared"),
        )


@dataclass(frozen=True)
class WorkerMemoryRecord:
    """One tick: ``t_s`` since the start of monitoring; the training process and its
    workers (those still alive); ``/dev/shm`` and the cgroup, ``None`` where unknown."""

    t_s: float
    main: ProcessReading | None
    workers: tuple[ProcessReading, ...]
    shm_used_bytes: int | None
    shm_total_bytes: int | None
    cgroup_limit_bytes: int | None
    cgroup_usage_bytes: int | None

    def to_json(self) -> JsonObject:
        return {
            "t_s": round(self.t_s, 3),
            "main": None if self.main is None else self.main.to_json(),
            "workers": [w.to_json() for w in self.workers],
            "shm_used_bytes": self.shm_used_bytes,
            "shm_total_bytes": self.shm_total_bytes,
            "cgroup_limit_bytes": self.cgroup_limit_bytes,
            "cgroup_usage_bytes": self.cgroup_usage_bytes,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> WorkerMemoryRecord:
        main = data.get("main")
        workers = data.get("workers")
        if not isinstance(workers, list):
            raise RecordError(f"expected a list for 'workers', got {workers!r}")
        return cls(
            t_s=req_float(data, "t_s"),
            main=None if main is None else ProcessReading.from_json(as_object(main, "'main'")),
            workers=tuple(ProcessReading.from_json(w) for w in objects(workers)),
            shm_used_bytes=opt_int(data, "shm_used_bytes"),
            shm_total_bytes=opt_int(data, "shm_total_bytes"),
            cgroup_limit_bytes=opt_int(data, "cgroup_limit_bytes"),
            cgroup_usage_bytes=opt_int(data, "cgroup_usage_bytes"),
        )


class WorkerMemoryRecorder:
    """Appends one :class:`WorkerMemoryRecord` a reading to ``folder/worker_memory.jsonl``.

    A reading costs one ``smaps_rollup`` read per process, one ``statvfs`` and the
    cgroup's few memory files. The kernel walks each process's page tables for
    ``smaps_rollup`` (5-15 ms of CPU for a 300 MiB PyTorch process on a virtual machine),
    so readings are spaced to cost at most ``max_cpu_share`` of one CPU, measured on
    ``cpu_clock`` (this thread's CPU time): a tick that comes sooner records nothing.
    Each line is one ``O_APPEND`` write, so a killed run leaves whole lines. The roots
    are injected for tests (fake trees).
    """

    def __init__(
        self,
        folder: Path,
        *,
        proc_root: Path = Path("/proc"),
        shm_path: Path = Path("/dev/shm"),
        system_root: Path = Path("/"),
        max_cpu_share: float = MAX_CPU_SHARE,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        from trainperf.resources._reader import SystemReader

        if not 0 < max_cpu_share <= 1:
            raise UsageError(
                f"max_cpu_share must be in (0, 1] (a share of one CPU), got {max_cpu_share}"
            )
        self.path = folder / WORKER_MEMORY_FILE
        self.proc_root = proc_root
        self.shm_path = shm_path
        self.max_cpu_share = max_cpu_share
        self.cpu_clock = cpu_clock
        self._system = SystemReader(system_root)  # one, so each odd file warns once
        self._next_t_s = float("-inf")

    def record(
        self, t_s: float, *, main: int | None, workers: Iterable[int]
    ) -> WorkerMemoryRecord | None:
        """Reads and appends the tick at ``t_s`` (seconds since the start of monitoring);
        ``None``, reading nothing, while the last reading's CPU time is not paid off."""
        if t_s < self._next_t_s:
            return None
        began = self.cpu_clock()
        shm = read_shm(self.shm_path)
        cgroup = read_cgroup_memory(self._system)
        record = WorkerMemoryRecord(
            t_s=t_s,
            main=None if main is None else self._read(main),
            workers=tuple(r for pid in workers if (r := self._read(pid)) is not None),
            shm_used_bytes=None if shm is None else shm.used_bytes,
            shm_total_bytes=None if shm is None else shm.total_bytes,
            cgroup_limit_bytes=None if cgroup is None else cgroup.limit_bytes,
            cgroup_usage_bytes=None if cgroup is None else cgroup.usage_bytes,
        )
        line = (json.dumps(record.to_json(), separators=(",", ":")) + "\n").encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError:
            pass  # a run folder removed under a live run: the sampling must go on
        self._next_t_s = t_s + (self.cpu_clock() - began) / self.max_cpu_share
        return record

    def _read(self, pid: int) -> ProcessReading | None:
        memory = read_smaps_rollup(pid, self.proc_root)
        if memory is None:
            return None
        return ProcessReading(pid, memory.rss, memory.pss, memory.uss, memory.shared)


def read_worker_memory(folder: Path) -> tuple[WorkerMemoryRecord, ...]:
    """The ticks recorded in a run folder (none without the file); a torn last line (a
    killed writer) is skipped. Raises :class:`RecordError` on any other bad line."""
    return read_lines(folder / WORKER_MEMORY_FILE, "memory", WorkerMemoryRecord.from_json)


# -- classifying -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Series:
    t: tuple[float, ...]
    y: tuple[float, ...]

    @property
    def usable(self) -> bool:
        return len(self.t) >= MIN_SAMPLES and self.duration_s >= MIN_DURATION_S

    @property
    def duration_s(self) -> float:
        return self.t[-1] - self.t[0] if self.t else 0.0

    def slope(self) -> float:
        return statistics.linear_regression(self.t, self.y).slope

    def still_growing(self) -> bool:
        """The later half's slope is at least ``STILL_GROWING`` of the whole's."""
        half = len(self.t) // 2
        late = _Series(self.t[half:], self.y[half:])
        if len(late.t) < 2 or late.duration_s <= 0:
            return False
        return late.slope() >= STILL_GROWING * self.slope()


def _series(points: Iterable[tuple[float, float | None]]) -> _Series:
    kept = [(t, y) for t, y in points if y is not None]
    return _Series(tuple(t for t, _ in kept), tuple(y for _, y in kept))


@dataclass(frozen=True)
class WorkerGrowth:
    """One worker over the window: slopes in bytes/s, ``None`` where unknown."""

    pid: int
    samples: int
    duration_s: float
    rss_bytes: int  # median over the window
    uss_slope_bytes_per_s: float | None
    shared_slope_bytes_per_s: float | None
    kind: Literal["copy-on-read", "leak"] | None

    @property
    def uss_growth_bytes(self) -> float:
        """The USS gained over the window, by the fitted slope."""
        return (self.uss_slope_bytes_per_s or 0.0) * self.duration_s


@dataclass(frozen=True)
class MemoryGrowth:
    """The workers, ``/dev/shm`` and the whole tree over a run (bytes, seconds)."""

    workers: tuple[WorkerGrowth, ...]
    shm_slope_bytes_per_s: float | None
    shm_pile_up: bool
    shm_used_bytes: int | None  # the last reading
    total_slope_bytes_per_s: float | None  # the tree (PSS), or /dev/shm if faster
    limit_bytes: int | None
    headroom_bytes: int | None  # the limit less the last working set
    samples: int
    duration_s: float

    @property
    def kinds(self) -> tuple[GrowthKind, ...]:
        """The kinds found, the one to fix first first."""
        found = {w.kind for w in self.workers}
        order: tuple[GrowthKind, ...] = ("copy-on-read", "leak")
        kinds = tuple(k for k in order if k in found)
        return (*kinds, "shm-pile-up") if self.shm_pile_up else kinds

    @property
    def projected_limit_s(self) -> float | None:
        """Estimated seconds until the working set reaches the limit at the measured
        rate; ``None`` without a limit or growth."""
        slope = self.total_slope_bytes_per_s
        if self.headroom_bytes is None or slope is None or slope <= 0:
            return None
        return self.headroom_bytes / slope


def classify_growth(records: Sequence[WorkerMemoryRecord]) -> MemoryGrowth:
    """Slopes and kinds of growth (see the module's rules); pure."""
    by_pid: dict[int, list[tuple[float, ProcessReading]]] = {}
    for record in records:
        for reading in record.workers:
            by_pid.setdefault(reading.pid, []).append((record.t_s, reading))
    workers = tuple(_worker(pid, readings) for pid, readings in sorted(by_pid.items()))

    shm = _series((r.t_s, r.shm_used_bytes) for r in records)
    shm_slope = shm.slope() if shm.usable else None
    total_shm = next((r.shm_total_bytes for r in reversed(records) if r.shm_total_bytes), 0)
    pile_up = False
    if shm_slope is not None:
        floor = max(SHM_MIN_GROWTH_BYTES, SHM_GROWTH_SHARE * total_shm)
        pile_up = shm_slope * shm.duration_s >= floor and shm.still_growing()

    tree = _series(
        (r.t_s, sum(p.size for p in (r.main, *r.workers) if p is not None))
        for r in records
        if r.main is not None or r.workers
    )
    # Projected only while the tree still grows: a worker copies what it reads once,
    # so copy-on-read levels off when every page it reads has been copied.
    total = tree.slope() if tree.usable and tree.still_growing() else None
    if shm_slope is not None and (total is None or shm_slope > total):
        total = shm_slope  # pages in /dev/shm that no process maps are in no PSS
    cgroup = next((r for r in reversed(records) if r.cgroup_limit_bytes is not None), None)
    limit = None if cgroup is None else cgroup.cgroup_limit_bytes
    headroom = None
    if cgroup is not None and limit is not None and cgroup.cgroup_usage_bytes is not None:
        headroom = max(0, limit - cgroup.cgroup_usage_bytes)
    return MemoryGrowth(
        workers=workers,
        shm_slope_bytes_per_s=shm_slope,
        shm_pile_up=pile_up,
        shm_used_bytes=int(shm.y[-1]) if shm.y else None,
        total_slope_bytes_per_s=total,
        limit_bytes=limit,
        headroom_bytes=headroom,
        samples=len(records),
        duration_s=records[-1].t_s - records[0].t_s if records else 0.0,
    )


def _worker(pid: int, readings: list[tuple[float, ProcessReading]]) -> WorkerGrowth:
    uss = _series((t, r.uss) for t, r in readings)
    shared = _series((t, r.shared) for t, r in readings)
    rss = int(statistics.median(r.rss for _, r in readings))
    duration = readings[-1][0] - readings[0][0]
    uss_slope = uss.slope() if uss.usable else None
    shared_slope = shared.slope() if shared.usable else None
    kind: Literal["copy-on-read", "leak"] | None = None
    if uss_slope is not None and uss_slope * uss.duration_s >= max(
        MIN_GROWTH_BYTES, GROWTH_SHARE * rss
    ):
        if shared_slope is not None and -shared_slope >= COPY_SHARE * uss_slope:
            kind = "copy-on-read"
        elif uss.still_growing():
            kind = "leak"
    return WorkerGrowth(pid, len(readings), duration, rss, uss_slope, shared_slope, kind)


# -- the finding -------------------------------------------------------------------------


def _mib(value: float) -> str:
    return f"{value / 2**20:.1f} MiB" if abs(value) < 10 * 2**20 else f"{value / 2**20:.0f} MiB"


def _size(value: float) -> str:
    return f"{value / 2**30:.3g} GiB" if value >= 2**30 else f"{value / 2**20:.0f} MiB"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


_FIXES: dict[GrowthKind, str] = {
    "copy-on-read": (
        "reading Python objects in a forked worker writes their reference counts, so "
        "each worker copies the pages of the dataset's Python lists and dicts it reads "
        "(copy-on-read): keep the dataset in NumPy arrays or Arrow instead, e.g. "
        "self.labels = np.asarray(labels) and self.paths = np.array(paths, dtype=np.bytes_) "
        "(or a pyarrow.Table), and use fewer workers"
    ),
    "leak": (
        "a worker keeps something per sample: find what the dataset holds on to (a cache "
        "filled in __getitem__, decoded samples, a list of seen items) and bound it "
        "(functools.lru_cache(maxsize=...)) or drop it"
    ),
    "shm-pile-up": (
        "batches passed through /dev/shm are not freed: lower prefetch_factor (e.g. 2) and "
        "num_workers, and keep no references to past batches"
    ),
}


def worker_memory_finding(
    records: Sequence[WorkerMemoryRecord], *, epoch_s: float | None = None
) -> Finding | None:
    """A ``worker-memory`` finding when a worker's memory or ``/dev/shm`` grows (see the
    module's rules), with the estimated time to the cgroup's memory limit; ``None``
    when nothing grows. ``epoch_s``: an epoch's duration, to say it in epochs too.

    E.g. two workers reading a list of 3 million Python ints: each copies ~80 MiB,
    ``fix`` names copy-on-read and NumPy arrays, ``gain`` says when the limit is reached.
    """
    from trainperf.monitoring.analyze import Finding

    if epoch_s is not None and not epoch_s > 0:
        raise UsageError(f"epoch_s must be > 0 s (an epoch's duration) or None, got {epoch_s}")
    growth = classify_growth(records)
    kinds = growth.kinds
    if not kinds:
        return None
    growing = [w for w in growth.workers if w.kind is not None]
    evidence: dict[str, float] = {
        "workers": float(len(growth.workers)),
        "growing_workers": float(len(growing)),
        "samples": float(growth.samples),
        "duration_s": growth.duration_s,
    }
    said = []
    if growing:
        uss = sum(w.uss_slope_bytes_per_s or 0.0 for w in growing)
        each = statistics.fmean(w.uss_growth_bytes for w in growing)
        evidence["uss_growth_bytes_per_s"] = uss
        evidence["uss_growth_per_worker_bytes"] = each
        whose = f"{len(growing)} worker" + ("s'" if len(growing) > 1 else "'s")
        said.append(
            f"{whose} private memory (USS) grows {_mib(uss)}/s, {_mib(each)} each "
            f"in {growth.duration_s:.0f} s"
        )
        if all(w.shared_slope_bytes_per_s is not None for w in growing):
            drop = -sum(w.shared_slope_bytes_per_s or 0.0 for w in growing)
            evidence["shared_drop_bytes_per_s"] = drop
            said[-1] += f", while the shared memory {'falls' if drop > 0 else 'rises'} "
            said[-1] += f"{_mib(abs(drop))}/s"
    if growth.shm_slope_bytes_per_s is not None:
        evidence["shm_growth_bytes_per_s"] = growth.shm_slope_bytes_per_s
        if growth.shm_pile_up:
            said.append(f"/dev/shm fills {_mib(growth.shm_slope_bytes_per_s)}/s")
    for key, value in (
        ("shm_used_bytes", growth.shm_used_bytes),
        ("total_growth_bytes_per_s", growth.total_slope_bytes_per_s),
        ("memory_limit_bytes", growth.limit_bytes),
        ("memory_headroom_bytes", growth.headroom_bytes),
    ):
        if value is not None:
            evidence[key] = float(value)
    gain = _projection(growth, epoch_s, evidence)
    if "copy-on-read" in kinds and growing:
        gain = (
            f"{_mib(evidence['uss_growth_per_worker_bytes'])} per worker would stay shared; {gain}"
        )
    reasons: tuple[str, ...] = ()
    if growth.samples < CONFIDENT_SAMPLES:
        reasons = (
            f"{growth.samples} memory readings: a confident trend needs {CONFIDENT_SAMPLES}",
        )
    return Finding(
        "worker-memory",
        evidence,
        "; ".join(said) + ": " + "; and ".join(_FIXES[k] for k in kinds),
        gain,
        "low" if reasons else "high",
        reasons,
    )


def _projection(growth: MemoryGrowth, epoch_s: float | None, evidence: dict[str, float]) -> str:
    """When the limit is reached, said and added to ``evidence``."""
    projected, limit = growth.projected_limit_s, growth.limit_bytes
    if not growth.total_slope_bytes_per_s or growth.total_slope_bytes_per_s <= 0:
        return (
            "the run's memory had levelled off by its end (each worker copies what it reads "
            "once): more workers or a larger dataset copy more"
        )
    if projected is None or limit is None:
        rate = _mib(growth.total_slope_bytes_per_s)
        return f"the run's memory grows {rate}/s until the machine runs out (estimated)"
    evidence["projected_limit_s"] = projected
    when = _duration(projected)
    if epoch_s is not None:
        evidence["projected_limit_epochs"] = projected / epoch_s
        when += f", about {projected / epoch_s:.1f} epochs"
    return (
        f"at this rate the container reaches its {_size(limit)} limit in {when} "
        "(estimated), and its processes are killed"
    )
