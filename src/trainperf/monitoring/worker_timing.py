"""DataLoader workers, timed from inside: how each one started, and where each batch's
time went (their memory over time is :mod:`.worker_memory`'s).

Three records, all JSON Lines in the run folder, written while a
:class:`~trainperf.monitoring.workers.ThreadWatch` is on (any monitored run):

* ``loader_starts.jsonl`` -- one :class:`LoaderStart` per ``iter(loader)`` that
  started worker processes (every epoch and validation pass without
  ``persistent_workers``; once with it), written by the training process: the start
  method, and, for ``spawn`` and ``forkserver``, what was pickled to send the workers
  their dataset, ``collate_fn`` and ``worker_init_fn`` (bytes and seconds).
* ``worker_starts.jsonl`` -- one :class:`WorkerStart` per worker process, written by
  the worker after its first batch: when the process was created, when it had
  imported the main module and began to unpickle its arguments (``spawn``,
  ``forkserver``), when the worker loop began, its ``worker_init_fn`` and first
  fetch. Under ``spawn`` the imports before the loop are timed in the worker (each
  module's exclusive time, as ``python -X importtime`` reports it), summed by
  top-level package.
* ``worker_batches.jsonl`` -- one :class:`BatchStages` per batch a worker built: the
  fetch, its ``collate_fn``, the samples' ``__getitem__`` (the fetch less the
  collate), and the slowest sample. Buffered in the worker and written at most every
  ``FLUSH_S`` and when it exits: no extra synchronisation of the loop, one ``write``
  with ``O_APPEND`` per flush, so workers' lines never interleave.

All times are wall-clock seconds; ``t_s`` fields count from the watch's origin (the
run's start), which the workers, being other processes, share through the clock.
:func:`worker_startup` and :func:`stage_times` turn the records into what a rule and
the report page read.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainperf._json import as_object, opt_float, opt_int, read_lines, req_float, req_int, req_str
from trainperf.errors import RecordError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from trainperf._json import JsonObject
    from trainperf.monitoring.worker_memory import WorkerMemoryRecord

__all__ = [
    "BATCHES_FILE",
    "FLUSH_S",
    "LOADER_STARTS_FILE",
    "WORKER_STARTS_FILE",
    "BatchStages",
    "LoaderStart",
    "StageClock",
    "StageTimes",
    "StartCost",
    "WorkerStart",
    "WorkerStartup",
    "WorkerTiming",
    "read_batches",
    "read_loader_starts",
    "read_worker_starts",
    "read_worker_timing",
    "stage_times",
    "worker_startup",
]

LOADER_STARTS_FILE = "loader_starts.jsonl"
WORKER_STARTS_FILE = "worker_starts.jsonl"
BATCHES_FILE = "worker_batches.jsonl"
FLUSH_S = 0.5  # a worker writes its batches' lines at most this often
FLUSH_LINES = 256  # ... or once it holds this many
TOP_PACKAGES = 8  # packages kept per worker start, by import time
SLOWEST = 5  # sample indices named as the slowest


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class LoaderStart:
    """One ``iter(loader)`` that started ``num_workers`` worker processes.

    ``start``: its serial in the run (workers carry it); ``loader``: the serial of the
    DataLoader object (two starts of one loader are two epochs or passes);
    ``iter_s``: how long ``iter(loader)`` took in the training process (starting the
    processes; under ``spawn`` also writing each one its pickled state, which waits
    for the worker to read it once a pipe's buffer is full). ``pickled_bytes`` and
    ``pickle_s``: the state pickled for all its workers (``None`` under ``fork``,
    which copies the process instead).
    """

    start: int
    loader: int
    dataset: str  # the dataset's class name
    t_s: float
    iter_s: float
    num_workers: int
    start_method: str
    persistent: bool
    pickled_bytes: int | None = None
    pickle_s: float | None = None

    def to_json(self) -> JsonObject:
        return {
            "start": self.start,
            "loader": self.loader,
            "dataset": self.dataset,
            "t_s": round(self.t_s, 6),
            "iter_s": round(self.iter_s, 6),
            "num_workers": self.num_workers,
            "start_method": self.start_method,
            "persistent": self.persistent,
            "pickled_bytes": self.pickled_bytes,
            "pickle_s": _round(self.pickle_s),
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> LoaderStart:
        return cls(
            start=req_int(data, "start"),
            loader=req_int(data, "loader"),
            dataset=req_str(data, "dataset"),
            t_s=req_float(data, "t_s"),
            iter_s=req_float(data, "iter_s"),
            num_workers=req_int(data, "num_workers"),
            start_method=req_str(data, "start_method"),
            persistent=bool(data.get("persistent")),
            pickled_bytes=opt_int(data, "pickled_bytes"),
            pickle_s=opt_float(data, "pickle_s"),
        )


@dataclass(frozen=True)
class WorkerStart:
    """One worker process's start, read in the worker (times since the origin).

    ``created_t_s``: the process's creation, from ``/proc`` (10 ms resolution;
    ``None`` elsewhere). ``unpickled_t_s``: when it began to unpickle its arguments,
    after the interpreter started and imported the main module (``None`` under
    ``fork``). ``entered_t_s``: the worker loop began (its arguments unpickled).
    ``ready_t_s``: its first batch was built. ``imports_s`` and ``imports``: the
    modules imported before the loop, timed in the worker (``spawn`` only; ``None``
    and empty otherwise), their exclusive seconds summed by top-level package, the
    largest first. ``modules``: the modules loaded when the loop began.
    """

    pid: int
    worker_id: int
    num_workers: int
    start: int  # the LoaderStart's serial; -1 when not known
    start_method: str
    created_t_s: float | None
    unpickled_t_s: float | None
    entered_t_s: float
    init_fn_s: float
    first_fetch_s: float
    ready_t_s: float
    modules: int
    imports_s: float | None = None
    imports: tuple[tuple[str, float], ...] = ()

    def to_json(self) -> JsonObject:
        return {
            "pid": self.pid,
            "worker_id": self.worker_id,
            "num_workers": self.num_workers,
            "start": self.start,
            "start_method": self.start_method,
            "created_t_s": _round(self.created_t_s),
            "unpickled_t_s": _round(self.unpickled_t_s),
            "entered_t_s": round(self.entered_t_s, 6),
            "init_fn_s": round(self.init_fn_s, 6),
            "first_fetch_s": round(self.first_fetch_s, 6),
            "ready_t_s": round(self.ready_t_s, 6),
            "modules": self.modules,
            "imports_s": _round(self.imports_s),
            "imports": [{"package": p, "s": round(s, 6)} for p, s in self.imports],
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> WorkerStart:
        imports = data.get("imports") or []
        if not isinstance(imports, list):
            raise RecordError(f"expected a list for 'imports', got {imports!r}")
        return cls(
            pid=req_int(data, "pid"),
            worker_id=req_int(data, "worker_id"),
            num_workers=req_int(data, "num_workers"),
            start=req_int(data, "start"),
            start_method=req_str(data, "start_method"),
            created_t_s=opt_float(data, "created_t_s"),
            unpickled_t_s=opt_float(data, "unpickled_t_s"),
            entered_t_s=req_float(data, "entered_t_s"),
            init_fn_s=req_float(data, "init_fn_s"),
            first_fetch_s=req_float(data, "first_fetch_s"),
            ready_t_s=req_float(data, "ready_t_s"),
            modules=req_int(data, "modules"),
            imports_s=opt_float(data, "imports_s"),
            imports=tuple(
                (req_str(item, "package"), req_float(item, "s"))
                for item in (as_object(i, "an import") for i in imports)
            ),
        )


@dataclass(frozen=True)
class BatchStages:
    """One batch built in a worker: ``fetch_s`` in all, of which ``collate_s`` in
    ``collate_fn`` (the rest is the samples' ``__getitem__``, or the dataset's
    ``__getitems__``, or an iterable dataset's ``next``). ``samples``: how many
    ``__getitem__`` calls were timed one by one (``None``: the dataset was not read
    sample by sample); ``slowest_index``/``slowest_s``: the slowest of them (an index
    that is not an ``int`` is not kept)."""

    pid: int
    worker_id: int
    start: int
    t_s: float  # when the fetch began
    fetch_s: float
    collate_s: float | None
    samples: int | None
    slowest_index: int | None
    slowest_s: float | None

    @property
    def getitem_s(self) -> float:
        """The fetch less its ``collate_fn``: reading and transforming the samples."""
        return max(self.fetch_s - (self.collate_s or 0.0), 0.0)

    def to_json(self) -> JsonObject:
        return {
            "pid": self.pid,
            "worker_id": self.worker_id,
            "start": self.start,
            "t_s": round(self.t_s, 6),
            "fetch_s": round(self.fetch_s, 7),
            "collate_s": _round(self.collate_s, 7),
            "samples": self.samples,
            "slowest_index": self.slowest_index,
            "slowest_s": _round(self.slowest_s, 7),
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> BatchStages:
        return cls(
            pid=req_int(data, "pid"),
            worker_id=req_int(data, "worker_id"),
            start=req_int(data, "start"),
            t_s=req_float(data, "t_s"),
            fetch_s=req_float(data, "fetch_s"),
            collate_s=opt_float(data, "collate_s"),
            samples=opt_int(data, "samples"),
            slowest_index=opt_int(data, "slowest_index"),
            slowest_s=opt_float(data, "slowest_s"),
        )


def read_loader_starts(folder: Path) -> tuple[LoaderStart, ...]:
    """The run folder's :class:`LoaderStart` records. Raises :class:`RecordError`."""
    return read_lines(folder / LOADER_STARTS_FILE, "loader start", LoaderStart.from_json)


def read_worker_starts(folder: Path) -> tuple[WorkerStart, ...]:
    """The run folder's :class:`WorkerStart` records. Raises :class:`RecordError`."""
    return read_lines(folder / WORKER_STARTS_FILE, "worker start", WorkerStart.from_json)


def read_batches(folder: Path) -> tuple[BatchStages, ...]:
    """The run folder's :class:`BatchStages` records. Raises :class:`RecordError`."""
    return read_lines(folder / BATCHES_FILE, "worker batch", BatchStages.from_json)


def append(path: str, lines: Sequence[str]) -> None:
    """One ``write`` with ``O_APPEND``: lines from several processes never interleave.
    A run folder removed under a live worker loses the lines, not the loading."""
    if not lines:
        return
    data = "".join(line + "\n" for line in lines).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError:
        pass


# -- in the worker -------------------------------------------------------------------


def created_at(proc: str = "/proc/self") -> float | None:
    """The wall time this process was created: its ``starttime`` (clock ticks since
    boot, ``/proc/<pid>/stat`` field 22, proc(5)) against ``/proc/uptime``, both in
    hundredths of a second. ``None`` where ``/proc`` cannot say."""
    try:
        stat = Path(proc, "stat").read_text(encoding="ascii", errors="replace")
        uptime = float(Path("/proc/uptime").read_text(encoding="ascii").split()[0])
        ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - (uptime - ticks / hz)


def imports_by_package(
    timed: Sequence[tuple[str, float]],
) -> tuple[float, tuple[tuple[str, float], ...]]:
    """The total of ``(module, exclusive seconds)`` pairs, and the ``TOP_PACKAGES``
    top-level packages that took longest, largest first."""
    packages: dict[str, float] = {}
    for name, seconds in timed:
        top = name.split(".", 1)[0]
        packages[top] = packages.get(top, 0.0) + seconds
    ranked = sorted(packages.items(), key=lambda item: -item[1])[:TOP_PACKAGES]
    return sum(packages.values()), tuple(ranked)


class _TimedDataset:
    """Stands in for a map-style dataset inside one worker's fetcher: times each
    ``__getitem__``; every other attribute (``__getitems__`` included) is the
    dataset's own."""

    def __init__(self, dataset: Any, clock: StageClock) -> None:
        self._dataset, self._clock = dataset, clock

    def __getitem__(self, index: Any) -> Any:
        began = _perf()
        item = self._dataset[index]  # an exception ends the batch: nothing to record
        took = _perf() - began
        clock = self._clock
        clock.samples += 1
        if took > clock.slowest_s:
            clock.slowest_s, clock.slowest_index = took, index
        return item

    def __len__(self) -> int:
        return len(self._dataset)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dataset, name)


_perf = time.perf_counter


class StageClock:
    """In one worker: times every fetch of the fetchers :meth:`wrap` is given, and
    writes their :class:`BatchStages` lines to ``path`` (see the module). What it adds
    to a fetch is measured by ``benchmarks/monitor_overhead.py --parts workers``."""

    def __init__(self, path: str, origin: float, *, pid: int, worker_id: int, start: int) -> None:
        self.path, self.origin = path, origin
        self.pid, self.worker_id, self.start = pid, worker_id, start
        # Each batch: (t_s, fetch_s, collate_s, samples, slowest index, slowest_s).
        self.batches: list[tuple[float, float, float, int, Any, float]] = []
        self.flushed = _perf()
        self.collate_s = 0.0
        self.samples = 0
        self.slowest_s = -1.0
        self.slowest_index: Any = None

    def wrap(self, fetcher: Any) -> None:
        """Times ``fetcher.fetch``, its ``collate_fn`` and, for a map-style dataset
        read sample by sample, each ``__getitem__``."""
        from torch.utils.data._utils.fetch import _MapDatasetFetcher

        collate = getattr(fetcher, "collate_fn", None)
        if callable(collate):
            fetcher.collate_fn = self._timed_collate(collate)
        if isinstance(fetcher, _MapDatasetFetcher):
            fetcher.dataset = _TimedDataset(fetcher.dataset, self)
        fetcher.fetch = self._timed_fetch(fetcher.fetch)

    def _timed_collate(self, collate: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def timed(data: Any) -> Any:
            began = _perf()
            out = collate(data)
            self.collate_s += _perf() - began
            return out

        return timed

    def _timed_fetch(self, fetch: Callable[[Any], Any]) -> Callable[[Any], Any]:
        wall = time.time

        def timed(index: Any) -> Any:
            self.collate_s, self.samples, self.slowest_s = 0.0, 0, -1.0
            at = wall()
            began = _perf()
            out = fetch(index)  # a StopIteration (an iterable dataset's end) is no batch
            ended = _perf()
            self.batches.append(
                (
                    at - self.origin,
                    ended - began,
                    self.collate_s,
                    self.samples,
                    self.slowest_index,
                    self.slowest_s,
                )
            )
            if len(self.batches) >= FLUSH_LINES or ended - self.flushed >= FLUSH_S:
                self.flush()
            return out

        return timed

    def flush(self) -> None:
        """Writes the batches held, one line each (see :class:`BatchStages`); formatted
        here rather than through ``json.dumps``, which would cost the worker more."""
        head = f'{{"pid": {self.pid}, "worker_id": {self.worker_id}, "start": {self.start}'
        lines = []
        for t_s, fetch_s, collate_s, samples, index, slowest_s in self.batches:
            timed = samples > 0
            named = index if timed and type(index) is int else "null"
            lines.append(
                f'{head}, "t_s": {t_s:.6f}, "fetch_s": {fetch_s:.7f}, "collate_s": '
                f'{collate_s:.7f}, "samples": {samples if timed else "null"}, '
                f'"slowest_index": {named}, "slowest_s": '
                f"{f'{slowest_s:.7f}' if timed else 'null'}}}"
            )
        append(self.path, lines)
        self.batches.clear()
        self.flushed = _perf()


# -- what the records say ------------------------------------------------------------


@dataclass(frozen=True)
class StartCost:
    """One loader start, its slowest worker's way to its first batch (seconds).

    ``phases``: ``launch`` (from ``iter(loader)`` to the process's creation: pickling,
    starting the workers before it), ``imports`` (the interpreter's start and the main
    module's import, ``spawn`` and ``forkserver``), ``unpickle`` (the dataset and
    what its unpickling imports),
    ``worker_init_fn``, ``setup`` (torch's seeding, and waiting for the first indices
    while the other workers start), ``first_fetch``; summing to ``total_s``.
    """

    start: LoaderStart
    workers: tuple[WorkerStart, ...]
    total_s: float
    phases: tuple[tuple[str, float], ...]

    @property
    def slowest(self) -> WorkerStart | None:
        return max(self.workers, key=lambda w: w.ready_t_s, default=None)


@dataclass(frozen=True)
class WorkerStartup:
    """The run's worker starts: each start's cost and the loaders they belong to.

    ``paid_s``: the time from each ``iter(loader)`` to its first batch, beyond one
    typical batch (what a warm worker would have taken), summed over every start;
    ``avoidable_s``: the same over the starts after each loader's first (what
    ``persistent_workers=True`` saves, estimated).
    """

    costs: tuple[StartCost, ...]
    batch_s: float  # a typical batch's fetch in a worker (median)
    paid_s: float
    avoidable_s: float

    def phase_means(self) -> dict[str, float]:
        """Each phase's mean over the starts, seconds."""
        if not self.costs:
            return {}
        names = [name for name, _ in self.costs[0].phases]
        return {name: statistics.fmean(dict(c.phases)[name] for c in self.costs) for name in names}


def _phases(start: LoaderStart, worker: WorkerStart) -> tuple[tuple[str, float], ...]:
    created = worker.created_t_s if worker.created_t_s is not None else start.t_s
    created = min(max(created, start.t_s), worker.entered_t_s)
    unpickled = worker.unpickled_t_s if worker.unpickled_t_s is not None else created
    unpickled = min(max(unpickled, created), worker.entered_t_s)
    fetched = worker.ready_t_s - worker.first_fetch_s
    setup = max(fetched - worker.entered_t_s - worker.init_fn_s, 0.0)
    return (
        ("launch", created - start.t_s),
        ("imports", unpickled - created),
        ("unpickle", worker.entered_t_s - unpickled),
        ("worker_init_fn", worker.init_fn_s),
        ("setup", setup),
        ("first_fetch", worker.first_fetch_s),
    )


def worker_startup(
    loader_starts: Sequence[LoaderStart],
    worker_starts: Sequence[WorkerStart],
    batches: Sequence[BatchStages] = (),
) -> WorkerStartup | None:
    """The starts whose workers all reported, costed (see :class:`WorkerStartup`);
    ``None`` when no start did."""
    by_start: dict[int, list[WorkerStart]] = {}
    for worker in worker_starts:
        by_start.setdefault(worker.start, []).append(worker)
    costs = []
    for start in loader_starts:
        workers = by_start.get(start.start, [])
        if not workers:
            continue
        slowest = max(workers, key=lambda w: w.ready_t_s)
        phases = _phases(start, slowest)
        costs.append(StartCost(start, tuple(workers), sum(s for _, s in phases), phases))
    if not costs:
        return None
    firsts = {w.pid for w in worker_starts}
    steady = [b.fetch_s for b in batches if b.pid in firsts] or [
        w.first_fetch_s for w in worker_starts
    ]
    batch_s = statistics.median(steady)
    seen: set[int] = set()
    paid = avoidable = 0.0
    for cost in costs:
        excess = max(cost.total_s - batch_s, 0.0)
        paid += excess
        if cost.start.loader in seen and not cost.start.persistent:
            avoidable += excess
        seen.add(cost.start.loader)
    return WorkerStartup(tuple(costs), batch_s, paid, avoidable)


@dataclass(frozen=True)
class StageTimes:
    """Where the workers' batches went (seconds): per worker, the median fetch and its
    median ``collate_fn``; the batches' fetch percentiles; the slowest samples.

    ``collate_share``: ``collate_fn``'s share of all fetch time. ``slowest``:
    ``(index, seconds)`` of the slowest samples seen, slowest first.
    """

    batches: int
    fetch_s: float
    collate_s: float
    getitem_s: float
    collate_share: float
    p50_s: float
    p95_s: float
    p99_s: float
    per_worker: tuple[tuple[int, int, float, float], ...]  # worker_id, batches, fetch, collate
    slowest: tuple[tuple[int, float], ...]
    sample_s: float | None  # the median sample's __getitem__, where read one by one


def _quantile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of ``values`` (already sorted)."""
    rank = max(1, math.ceil(q * len(values)))
    return values[rank - 1]


def stage_times(batches: Sequence[BatchStages]) -> StageTimes | None:
    """The workers' batches summarised (``None`` without any)."""
    if not batches:
        return None
    fetches = sorted(b.fetch_s for b in batches)
    total = sum(fetches)
    collate = sum(b.collate_s or 0.0 for b in batches)
    workers: dict[int, list[BatchStages]] = {}
    for batch in batches:
        workers.setdefault(batch.worker_id, []).append(batch)
    per_worker = tuple(
        (
            wid,
            len(mine),
            statistics.median(b.fetch_s for b in mine),
            statistics.median(b.collate_s or 0.0 for b in mine),
        )
        for wid, mine in sorted(workers.items())
    )
    slow = sorted(
        (
            (b.slowest_index, b.slowest_s)
            for b in batches
            if b.slowest_index is not None and b.slowest_s is not None
        ),
        key=lambda pair: -pair[1],
    )
    seen: set[int] = set()
    slowest: list[tuple[int, float]] = []
    for index, seconds in slow:
        if index not in seen:
            seen.add(index)
            slowest.append((index, seconds))
        if len(slowest) == SLOWEST:
            break
    per_sample = [b.getitem_s / b.samples for b in batches if b.samples]
    return StageTimes(
        batches=len(batches),
        fetch_s=statistics.median(fetches),
        collate_s=statistics.median(b.collate_s or 0.0 for b in batches),
        getitem_s=statistics.median(b.getitem_s for b in batches),
        collate_share=collate / total if total > 0 else 0.0,
        p50_s=_quantile(fetches, 0.50),
        p95_s=_quantile(fetches, 0.95),
        p99_s=_quantile(fetches, 0.99),
        per_worker=per_worker,
        slowest=tuple(slowest),
        sample_s=statistics.median(per_sample) if per_sample else None,
    )


@dataclass(frozen=True)
class WorkerTiming:
    """A run's worker records, analysed: what the rules and the report page read."""

    startup: WorkerStartup | None = None
    stages: StageTimes | None = None
    memory: tuple[WorkerMemoryRecord, ...] = ()  # the workers' memory over time

    def to_json(self) -> JsonObject:
        startup, stages = self.startup, self.stages
        out: JsonObject = {"startup": None, "stages": None, "memory": None}
        if startup is not None:
            first = startup.costs[0]
            slowest = first.slowest
            pickled = [c.start.pickled_bytes for c in startup.costs if c.start.pickled_bytes]
            out["startup"] = {
                "starts": len(startup.costs),
                "loaders": len({c.start.loader for c in startup.costs}),
                "start_method": first.start.start_method,
                "persistent": all(c.start.persistent for c in startup.costs),
                "batch_s": round(startup.batch_s, 6),
                "paid_s": round(startup.paid_s, 4),
                "avoidable_s": round(startup.avoidable_s, 4),
                "start_s": round(statistics.fmean(c.total_s for c in startup.costs), 4),
                "phases_s": {k: round(v, 4) for k, v in startup.phase_means().items()},
                "pickled_bytes_per_worker": (
                    round(statistics.fmean(pickled) / max(first.start.num_workers, 1))
                    if pickled
                    else None
                ),
                "imports": [
                    {"package": p, "s": round(v, 4)}
                    for p, v in (() if slowest is None else slowest.imports)
                ],
            }
        if stages is not None:
            out["stages"] = {
                "batches": stages.batches,
                "fetch_s": round(stages.fetch_s, 6),
                "getitem_s": round(stages.getitem_s, 6),
                "collate_s": round(stages.collate_s, 6),
                "collate_share": round(stages.collate_share, 4),
                "p50_s": round(stages.p50_s, 6),
                "p95_s": round(stages.p95_s, 6),
                "p99_s": round(stages.p99_s, 6),
                "sample_s": _round(stages.sample_s, 7),
                "per_worker": [
                    {"worker_id": w, "batches": n, "fetch_s": round(f, 6), "collate_s": round(c, 6)}
                    for w, n, f, c in stages.per_worker
                ],
                "slowest": [{"index": i, "s": round(t, 6)} for i, t in stages.slowest],
            }
        if self.memory:
            from trainperf.monitoring.worker_memory import classify_growth

            growth = classify_growth(self.memory)
            out["memory"] = {
                "samples": growth.samples,
                "duration_s": round(growth.duration_s, 3),
                "kinds": list(growth.kinds),
                "limit_bytes": growth.limit_bytes,
                "projected_limit_s": _round(growth.projected_limit_s, 1),
                "shm_used_bytes": growth.shm_used_bytes,
                "workers": [
                    {
                        "pid": w.pid,
                        "rss_bytes": w.rss_bytes,
                        "uss_slope_bytes_per_s": _round(w.uss_slope_bytes_per_s, 1),
                        "shared_slope_bytes_per_s": _round(w.shared_slope_bytes_per_s, 1),
                        "kind": w.kind,
                    }
                    for w in growth.workers
                ],
            }
        return out


def read_worker_timing(folder: Path) -> WorkerTiming:
    """The worker records of a run folder, analysed. Raises :class:`RecordError`."""
    from trainperf.monitoring.worker_memory import read_worker_memory

    batches = read_batches(folder)
    return WorkerTiming(
        startup=worker_startup(read_loader_starts(folder), read_worker_starts(folder), batches),
        stages=stage_times(batches),
        memory=read_worker_memory(folder),
    )


def timed_imports() -> Iterator[tuple[str, float]]:
    """The imports the worker's import timer recorded before the loop (see
    ``_worker_imports.py``): ``(module, exclusive seconds)``; none when it did not run."""
    recorded = getattr(sys, "_trainperf_imports", None)
    if isinstance(recorded, list):
        for name, seconds in recorded:
            yield str(name), float(seconds)
