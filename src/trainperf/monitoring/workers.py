"""Thread pools as the run goes: torch's threads in the training process, and the
BLAS/OpenMP pools inside each DataLoader worker, read in the worker itself.

    with ThreadWatch(run_folder / WORKERS_FILE) as watch:
        train()                          # any DataLoader, any start method
    watch.max_intra_op_threads           # e.g. 8: the most torch threads an epoch began with
    read_worker_pools(run_folder)        # one WorkerPools per worker started

A DataLoader worker gets one torch thread, but its BLAS/OpenMP pools are the
process's (copied at fork, started afresh under spawn): often one thread per CPU in
every worker. Only the worker can say what it runs, so while the watch is on, every
worker started reports once, after the user's ``worker_init_fn`` and its first fetch
(pools may appear only when BLAS is first used): threadpoolctl's pools, torch's
threads, its OS threads, and how many native (non-Python) threads besides its own ran
during that fetch -- whether its work used the pools at all. One JSON line each, in
``workers.jsonl``; see :class:`WorkerPools`.

OpenMP thread counts belong to the calling thread, so torch's intra-op threads are
read on the thread that starts each DataLoader iterator (each epoch): the training
thread. :func:`oversubscription` is the rule that turns both into a finding.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from trainperf._json import objects, opt_int, read_lines, req_float, req_int, req_str
from trainperf.errors import RecordError
from trainperf.monitoring.worker_timing import (
    BATCHES_FILE,
    LOADER_STARTS_FILE,
    WORKER_STARTS_FILE,
    LoaderStart,
    StageClock,
    WorkerStart,
    append,
    created_at,
    imports_by_package,
    timed_imports,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from types import TracebackType

    from trainperf._json import JsonObject
    from trainperf.monitoring.analyze import Finding

__all__ = [
    "WORKERS_FILE",
    "Pool",
    "ThreadWatch",
    "WorkerPools",
    "oversubscription",
    "read_worker_pools",
]

WORKERS_FILE = "workers.jsonl"
After = Literal["fetch", "exit"]


@dataclass(frozen=True)
class Pool:
    """One thread pool as threadpoolctl names it."""

    user_api: str  # "blas" or "openmp"
    internal_api: str  # "openblas", "mkl", "blis", "openmp", ...
    num_threads: int
    prefix: str = ""  # the library's file name, e.g. "libscipy_openblas"

    def to_json(self) -> JsonObject:
        return {
            "user_api": self.user_api,
            "internal_api": self.internal_api,
            "num_threads": self.num_threads,
            "prefix": self.prefix,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> Pool:
        return cls(
            user_api=req_str(data, "user_api"),
            internal_api=req_str(data, "internal_api"),
            num_threads=req_int(data, "num_threads"),
            prefix=str(data.get("prefix") or ""),
        )


@dataclass(frozen=True)
class WorkerPools:
    """One DataLoader worker's threads, read in the worker.

    ``after``: ``"fetch"`` once its first fetch returned, ``"exit"`` for a worker that
    ended without fetching. ``pools`` is ``None`` without threadpoolctl.
    ``helpers_ran``: native threads other than the worker's own that used CPU during
    its first fetch (BLAS/OpenMP helpers at work); ``None`` when not measured.
    """

    pid: int
    worker_id: int
    num_workers: int
    t_s: float  # seconds since the watch began (wall clock: workers are other processes)
    after: After
    pools: tuple[Pool, ...] | None
    torch_threads: int | None
    os_threads: int | None
    helpers_ran: int | None

    @property
    def widest_pool(self) -> int:
        """Threads of its largest BLAS/OpenMP pool; 0 when none is known."""
        return max((p.num_threads for p in self.pools or ()), default=0)

    @property
    def pools_used(self) -> bool | None:
        """Whether its work ran on pool threads; ``None``: not known."""
        if self.after == "exit":
            return False
        return None if self.helpers_ran is None else self.helpers_ran > 0

    @property
    def busy_threads(self) -> int:
        """What it counts for in :func:`oversubscription`: torch's threads, and its
        widest pool unless its first fetch was seen running on its own thread alone
        (without threadpoolctl: its own thread and the helpers seen running)."""
        if self.pools_used is False:
            pool = 1
        elif self.pools is None:
            pool = 1 + (self.helpers_ran or 0)
        else:
            pool = self.widest_pool
        return max(1, self.torch_threads or 1, pool)

    def to_json(self) -> JsonObject:
        return {
            "pid": self.pid,
            "worker_id": self.worker_id,
            "num_workers": self.num_workers,
            "t_s": round(self.t_s, 3),
            "after": self.after,
            "pools": None if self.pools is None else [p.to_json() for p in self.pools],
            "torch_threads": self.torch_threads,
            "os_threads": self.os_threads,
            "helpers_ran": self.helpers_ran,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> WorkerPools:
        after = req_str(data, "after")
        if after not in ("fetch", "exit"):
            raise RecordError(f"expected 'fetch' or 'exit' for 'after', got {after!r}")
        pools = data.get("pools")
        if pools is not None and not isinstance(pools, list):
            raise RecordError(f"expected a list or null for 'pools', got {pools!r}")
        return cls(
            pid=req_int(data, "pid"),
            worker_id=req_int(data, "worker_id"),
            num_workers=req_int(data, "num_workers"),
            t_s=req_float(data, "t_s"),
            after="fetch" if after == "fetch" else "exit",
            pools=None if pools is None else tuple(Pool.from_json(p) for p in objects(pools)),
            torch_threads=opt_int(data, "torch_threads"),
            os_threads=opt_int(data, "os_threads"),
            helpers_ran=opt_int(data, "helpers_ran"),
        )


def read_worker_pools(folder: Path) -> tuple[WorkerPools, ...]:
    """The workers' reports in a run folder (none when no worker reported); a torn
    last line (a killed writer) is skipped. Raises :class:`RecordError` otherwise."""
    return read_lines(folder / WORKERS_FILE, "worker", WorkerPools.from_json)


# -- in the worker -------------------------------------------------------------------


def _os_threads(proc: str) -> int | None:
    try:
        with Path(proc, "status").open(encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _cpu_ns(task: Path) -> int | None:
    """CPU time of one thread: ``schedstat`` (ns), else ``stat`` (clock ticks)."""
    try:
        return int(Path(task, "schedstat").read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        pass
    try:
        stat = Path(task, "stat").read_text(encoding="ascii", errors="replace")
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def native_cpu(proc: str = "/proc/self") -> dict[int, int] | None:
    """CPU nanoseconds of each thread of this process that Python did not start
    (BLAS/OpenMP helpers and the like), by thread id; ``None`` when unreadable."""
    python = {t.native_id for t in threading.enumerate()}
    try:
        tids = [int(p.name) for p in Path(proc, "task").iterdir() if p.name.isdecimal()]
    except OSError:
        return None
    found = {}
    for tid in tids:
        if tid not in python:
            spent = _cpu_ns(Path(proc, "task", str(tid)))
            if spent is not None:
                found[tid] = spent
    return found


def _pools() -> tuple[Pool, ...] | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return tuple(
        Pool(
            user_api=str(info.get("user_api")),
            internal_api=str(info.get("internal_api")),
            num_threads=int(info.get("num_threads") or 0),
            prefix=str(info.get("prefix") or ""),
        )
        for info in threadpool_info()
    )


class _Report:
    """One worker's reports: its pools and its start (after its first fetch, once),
    and its batches' stages (as they are built)."""

    def __init__(self, loop: _ReportingLoop, entered: float, worker_id: int) -> None:
        self.loop, self.entered = loop, entered
        self.done = False
        self.init_fn_s = 0.0
        self.first_fetch_s = 0.0
        self.modules = len(sys.modules)
        self.stages = StageClock(
            str(Path(loop.records).with_name(BATCHES_FILE)),
            loop.origin,
            pid=os.getpid(),
            worker_id=worker_id,
            start=loop.start,
        )

    def timed_init(self, init_fn: Callable[[int], object]) -> Callable[[int], object]:
        @functools.wraps(init_fn)
        def timed(worker_id: int) -> object:
            began = time.perf_counter()
            try:
                return init_fn(worker_id)
            finally:
                self.init_fn_s = time.perf_counter() - began

        return timed

    def around_first(self, fetch: Callable[[object], object]) -> Callable[[object], object]:
        @functools.wraps(fetch)
        def first(index: object) -> object:
            before = native_cpu()
            began = time.perf_counter()
            try:
                return fetch(index)
            finally:
                self.first_fetch_s = time.perf_counter() - began
                self.write("fetch", before)

        return first

    def write(self, after: After, before: dict[int, int] | None) -> None:
        if self.done:
            return
        self.done = True
        import torch
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        ran = None
        now = native_cpu() if before is not None else None
        if now is not None and before is not None:
            ran = sum(1 for tid, ns in now.items() if ns > before.get(tid, 0))
        try:
            pools = _pools()
        except Exception:  # threadpoolctl failing to inspect a library: report the rest
            pools = None
        loop, origin = self.loop, self.loop.origin
        report = WorkerPools(
            pid=os.getpid(),
            worker_id=-1 if info is None else info.id,
            num_workers=0 if info is None else info.num_workers,
            t_s=time.time() - origin,
            after=after,
            pools=pools,
            torch_threads=torch.get_num_threads(),
            os_threads=_os_threads("/proc/self"),
            helpers_ran=ran,
        )
        append(loop.records, [json.dumps(report.to_json())])
        if after != "fetch":
            return
        created = created_at()
        imports_s, imports = imports_by_package(list(timed_imports()))
        start = WorkerStart(
            pid=report.pid,
            worker_id=report.worker_id,
            num_workers=report.num_workers,
            start=loop.start,
            start_method=loop.start_method,
            created_t_s=None if created is None else created - origin,
            unpickled_t_s=None if loop.unpickled_at is None else loop.unpickled_at - origin,
            entered_t_s=self.entered - origin,
            init_fn_s=self.init_fn_s,
            first_fetch_s=self.first_fetch_s,
            ready_t_s=report.t_s,
            modules=self.modules,
            imports_s=imports_s if imports else None,
            imports=imports,
        )
        append(str(Path(loop.records).with_name(WORKER_STARTS_FILE)), [json.dumps(start.to_json())])


class _ReportingLoop:
    """Stands in for ``torch.utils.data._utils.worker._worker_loop``: runs it, with the
    worker's start and batches reported. Pickled (spawn, forkserver) without the
    original, which the fresh worker process finds unpatched in torch; unpickled there
    before the worker's arguments (a process's target comes before its arguments),
    which dates the end of the interpreter's start and the main module's import.

    ``start`` and ``start_method``: the loader start the workers being started belong
    to, set by the training process before each (copied by fork, pickled otherwise).
    """

    def __init__(
        self,
        records: str,
        origin: float,
        original: Callable[..., None] | None = None,
        parent: int | None = None,
        start: int = -1,
        start_method: str = "fork",
    ) -> None:
        self.records, self.origin, self.original = records, origin, original
        self.parent = os.getpid() if parent is None else parent
        self.start, self.start_method = start, start_method
        # Unpickled in a worker: now its interpreter is up and its main module imported.
        self.unpickled_at = time.time() if self.parent != os.getpid() else None

    def __reduce__(self) -> tuple[type[_ReportingLoop], tuple[str, float, None, int, int, str]]:
        return (
            _ReportingLoop,
            (self.records, self.origin, None, self.parent, self.start, self.start_method),
        )

    def __call__(self, *args: object, **kwargs: object) -> None:
        entered = time.time()
        stop_timing = getattr(sys, "_trainperf_imports_off", None)
        if callable(stop_timing):
            stop_timing()  # the spawned worker's import timer: the imports before the loop
        import inspect

        from torch.utils.data import _DatasetKind
        from torch.utils.data._utils import worker

        # Forked: the original came along; spawned: torch's module is fresh, unpatched.
        loop = worker._worker_loop if self.original is None else self.original
        if loop is self:
            raise RuntimeError("trainperf's DataLoader worker loop lost torch's original")
        bound = inspect.signature(loop).bind(*args, **kwargs)
        worker_id = bound.arguments.get("worker_id")
        report = _Report(self, entered, worker_id if isinstance(worker_id, int) else -1)
        init_fn = bound.arguments.get("init_fn")
        if callable(init_fn):
            bound.arguments["init_fn"] = report.timed_init(init_fn)
        # The fetcher is created right after the worker_init_fn, and again at each
        # epoch of persistent workers: each is timed; the first fetch of all reported.
        kept = _DatasetKind.__dict__["create_fetcher"]
        create: Callable[..., Any] = _DatasetKind.create_fetcher

        def create_fetcher(*a: object, **k: object) -> Any:
            fetcher = create(*a, **k)
            with contextlib.suppress(Exception):  # a fetcher torch changed: untimed
                report.stages.wrap(fetcher)
            if not report.done:
                fetcher.fetch = report.around_first(fetcher.fetch)
            return fetcher

        _DatasetKind.create_fetcher = staticmethod(create_fetcher)  # type: ignore[method-assign]  # this worker process only
        try:
            loop(*bound.args, **bound.kwargs)
        finally:
            _DatasetKind.create_fetcher = kept  # type: ignore[method-assign]
            report.write("exit", None)
            report.stages.flush()


# -- in the training process ---------------------------------------------------------


def start_method(loader: Any) -> str:
    """How ``loader`` starts its workers: its ``multiprocessing_context``'s method, else
    the default (read without fixing it, so the program may still set its own)."""
    context = getattr(loader, "multiprocessing_context", None)
    if context is None:
        from trainperf.calibration.startmethod import default_start_method

        return default_start_method()
    return str(context.get_start_method())


class _Pickles:
    """What ``multiprocessing`` pickles for new processes while :meth:`counting`: bytes
    and seconds, summed (spawn and forkserver send each worker its state this way)."""

    def __init__(self) -> None:
        self.bytes, self.seconds, self.calls = 0, 0.0, 0

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        from multiprocessing import reduction

        original = reduction.dump

        def dump(obj: object, file: Any, protocol: int | None = None) -> None:
            at = file.tell() if hasattr(file, "tell") else None
            began = time.perf_counter()
            original(obj, file, protocol)
            self.seconds += time.perf_counter() - began
            self.calls += 1
            if at is not None:
                self.bytes += file.tell() - at

        reduction.dump = dump
        try:
            yield
        finally:
            reduction.dump = original


_IMPORT_TIMER = str(Path(__file__).with_name("_worker_imports.py"))


@contextlib.contextmanager
def _timing_imports(on: bool) -> Iterator[None]:
    """While on: spawned processes run ``_worker_imports.py`` first, which times their
    imports (their command is ``python -c 'from multiprocessing.spawn import ...'``)."""
    if not on:
        yield
        return
    from multiprocessing import spawn

    original = spawn.get_command_line

    def command(**kwargs: Any) -> list[str]:
        line = list(original(**kwargs))
        if "-c" in line[:-1]:
            at = line.index("-c") + 1
            path = _IMPORT_TIMER
            line[at] = f"exec(compile(open({path!r}, 'rb').read(), {path!r}, 'exec'));{line[at]}"
        return line

    spawn.get_command_line = command
    try:
        yield
    finally:
        spawn.get_command_line = original


def unpicklable(value: object, path: str, *, depth: int = 4) -> tuple[str, str] | None:
    """Where pickling ``value`` (named ``path``) fails: the deepest attribute, item or
    key, within ``depth`` levels, that does not pickle, and its type's name; ``None``
    when ``value`` pickles. Pickles with multiprocessing's own pickler (which knows
    torch's tensors), so it costs what sending ``value`` to a worker would."""
    from multiprocessing.reduction import ForkingPickler

    try:
        ForkingPickler.dumps(value)
    except Exception:  # what it raises is the object's own choice: look inside
        failed = True
    else:
        failed = False
    if not failed:
        return None
    if depth > 0:
        children: list[tuple[str, object]] = []
        if isinstance(value, dict):
            children = [(f"{path}[{k!r}]", v) for k, v in list(value.items())[:64]]
        elif isinstance(value, list | tuple | set | frozenset):
            children = [(f"{path}[{i}]", v) for i, v in enumerate(list(value)[:64])]
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            children = [(f"{path}.{k}", v) for k, v in vars(value).items()]
        for name, child in children:
            found = unpicklable(child, name, depth=depth - 1)
            if found is not None:
                return found
    return path, type(value).__qualname__


def explain_unpicklable(error: BaseException, loader: Any, method: str) -> None:
    """Adds a note to ``error`` (raised starting ``loader``'s workers) naming what could
    not be pickled for ``method`` and the fixes, when pickling is what failed."""
    pickling = isinstance(error, TypeError | AttributeError | ValueError)
    if method == "fork" or not (pickling or type(error).__name__ == "PicklingError"):
        return
    for name in ("dataset", "collate_fn", "worker_init_fn"):
        found = unpicklable(getattr(loader, name, None), name)
        if found is not None:
            where, kind = found
            if kind in ("function", "method") or "<lambda>" in repr(getattr(loader, name, "")):
                error.add_note(
                    f"trainperf: the DataLoader's {where} ({kind}) cannot be pickled, and the "
                    f"{method!r} start method pickles it for every worker: define it as a "
                    "function at the top level of a module (not a lambda or a nested "
                    "function), or start the workers with multiprocessing_context='fork'"
                )
                return
            error.add_note(
                f"trainperf: the DataLoader's {where} ({kind}) cannot be pickled, and the "
                f"{method!r} start method pickles the dataset, collate_fn and worker_init_fn "
                "for every worker: create it in worker_init_fn or on first use in the "
                "worker, or start the workers with multiprocessing_context='fork' (Linux, "
                "when no threads or CUDA were started before the DataLoader)"
            )
            return


class ThreadWatch:
    """While entered: every DataLoader worker started reports its pools into
    ``records`` (see the module) and its start and batches beside it (see
    :mod:`~trainperf.monitoring.worker_timing`); each ``iter(loader)`` that starts
    workers is recorded with what it pickled for them; torch's intra-op threads are
    read at each new DataLoader iterator on the thread that starts it. The hooks are
    restored on exit. ``origin``: the wall time the records' ``t_s`` count from
    (default: now).
    """

    def __init__(self, records: Path, *, origin: float | None = None) -> None:
        self.records = records
        self.origin = time.time() if origin is None else origin
        self.max_intra_op_threads: int | None = None
        # The most an epoch began with (the reading at the watch's start left out).
        self.epoch_intra_op_threads: int | None = None
        self._restore: Callable[[], None] | None = None
        self._starts = 0
        self._loaders: dict[int, tuple[int, Any]] = {}  # id -> (serial, weak reference)

    def read(self, threads: int) -> None:
        if self.max_intra_op_threads is None or threads > self.max_intra_op_threads:
            self.max_intra_op_threads = threads

    def __enter__(self) -> ThreadWatch:
        import torch
        from torch.utils.data import DataLoader
        from torch.utils.data._utils import worker

        if self._restore is not None:
            raise RuntimeError("this ThreadWatch is already watching")
        loop = worker._worker_loop
        start = DataLoader.__dict__["__iter__"]
        threads = torch.get_num_threads
        self.read(threads())
        reporting = _ReportingLoop(str(self.records), self.origin, loop)

        @functools.wraps(start)
        def iterate(loader: DataLoader[object]) -> object:
            now = threads()  # a few hundred ns, once per epoch
            self.read(now)
            self.epoch_intra_op_threads = max(self.epoch_intra_op_threads or 0, now)
            if loader.num_workers == 0 or (
                loader.persistent_workers and getattr(loader, "_iterator", None) is not None
            ):
                return start(loader)  # no worker starts
            return self._start_workers(loader, start, reporting)

        def restore() -> None:
            DataLoader.__iter__ = start  # type: ignore[method-assign]
            worker._worker_loop = loop

        worker._worker_loop = reporting
        DataLoader.__iter__ = iterate  # type: ignore[method-assign, assignment]
        self._restore = restore
        return self

    def _loader_serial(self, loader: object) -> int:
        import weakref

        known = self._loaders.get(id(loader))
        if known is not None and known[1]() is loader:
            return int(known[0])
        serial = len(self._loaders)
        with contextlib.suppress(TypeError):  # not weakly referable: counted anew each time
            self._loaders[id(loader)] = (serial, weakref.ref(loader))
        return serial

    def _start_workers(
        self, loader: Any, start: Callable[[Any], object], reporting: _ReportingLoop
    ) -> object:
        """``iter(loader)``, starting its workers: recorded as a :class:`LoaderStart`."""
        method = start_method(loader)
        serial = self._starts
        self._starts += 1
        reporting.start, reporting.start_method = serial, method
        pickles = _Pickles()
        wall = time.time()
        began = time.perf_counter()
        with pickles.counting(), _timing_imports(method == "spawn"):
            try:
                iterator = start(loader)
            except Exception as error:
                explain_unpicklable(error, loader, method)
                raise
        record = LoaderStart(
            start=serial,
            loader=self._loader_serial(loader),
            dataset=type(loader.dataset).__qualname__,
            t_s=wall - self.origin,
            iter_s=time.perf_counter() - began,
            num_workers=loader.num_workers,
            start_method=method,
            persistent=bool(loader.persistent_workers),
            pickled_bytes=pickles.bytes if pickles.calls else None,
            pickle_s=pickles.seconds if pickles.calls else None,
        )
        append(str(self.records.parent / LOADER_STARTS_FILE), [json.dumps(record.to_json())])
        return iterator

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._restore is not None:
            self._restore()
            self._restore = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Loaders run inside the block (a calibration's, a proof's) are not the
        program's: their workers report nothing and their threads are not read."""
        if self._restore is None:
            yield
            return
        self.__exit__(None, None, None)
        try:
            yield
        finally:
            self.__enter__()


# -- the rule ------------------------------------------------------------------------


def oversubscription(
    *,
    intra_op_threads: int | None,
    worker_processes: int,
    worker_pools: Sequence[WorkerPools],
    cpus: float,
) -> Finding | None:
    """``thread-oversubscription``: more threads at work than the CPU budget, counted
    where they run.

    busy threads = the training process's torch intra-op threads (the most seen during
    the run; 1 when unknown) + workers x the threads of the widest worker, where

    * workers = ``worker_processes`` (the most worker processes the sampler saw at
      once), or more if a worker reported a larger ``num_workers``;
    * a worker counts ``max(1, its torch threads, its widest BLAS/OpenMP pool)`` --
      the pool only if its work used it: a worker whose first fetch ran on its own
      thread alone (no helper thread used CPU) counts 1, however wide its idle pools
      (numpy imported by a pipeline that never multiplies matrices is not a
      problem). A pool whose use was not measured counts, at low confidence;
      workers that reported nothing count 1 each (the count can only be too low).

    Every worker counts as the widest one: the workers of one loader run the same
    code, and when loaders differ the widest is the one that can oversubscribe.
    Fires when busy threads > ``cpus`` + 0.5. The fix names each place in turn: the
    workers' pools (``worker_init_fn`` calling ``threadpool_limits(1)``), the
    training process's threads (``torch.set_num_threads(N)``, N = the CPUs left
    after one per worker, at least 1), and the worker count when the workers at one
    thread each and that N still exceed the budget (workers alone over the budget;
    otherwise only if they stay busy: a worker ahead of the queue waits).

    E.g. case 03, 16 intra-op threads and no workers on 2 CPUs: busy 16, fix
    ``torch.set_num_threads(2)``. Case 13, 2 training threads and 2 workers each
    running OpenBLAS on 2 threads: busy 6, fix ``threadpool_limits(1)`` in the
    workers' ``worker_init_fn``, then ``torch.set_num_threads(1)``.
    """
    from trainperf.monitoring.analyze import Finding

    reports = [w for w in worker_pools if w.after == "fetch"] or list(worker_pools)
    workers = max([worker_processes, *(w.num_workers for w in reports)])
    main = intra_op_threads or 1
    widest = max(reports, key=lambda w: w.busy_threads, default=None)
    per_worker = 1 if widest is None or workers == 0 else widest.busy_threads
    busy = main + workers * per_worker
    if busy <= cpus + 0.5:
        return None
    evidence: dict[str, float] = {"worker_processes": float(workers)}
    if intra_op_threads is not None:
        evidence["intra_op_threads"] = float(intra_op_threads)
    if reports:
        evidence["worker_blas_threads"] = float(max(w.widest_pool for w in reports))
        evidence["worker_torch_threads"] = float(max(w.torch_threads or 1 for w in reports))
    evidence["busy_threads"] = float(busy)
    evidence["cpu_budget"] = cpus
    fixes, where = [], []
    if per_worker > 1:
        assert widest is not None
        where.append(f"{workers} workers x {per_worker} threads ({_describe(widest)})")
        torch_too = (widest.torch_threads or 1) > 1
        fixes.append(
            "limit each DataLoader worker to one thread: worker_init_fn=... calling "
            "threadpoolctl.threadpool_limits(1)"
            + (" and torch.set_num_threads(1)" if torch_too else "")
            + " (or start the program with OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "
            "MKL_NUM_THREADS=1, which the workers inherit; the training process then "
            "needs its own torch.set_num_threads)"
        )
    elif workers:
        where.append(f"{workers} workers x 1 thread")
    where.insert(
        0, f"{main} torch intra-op thread{'s' if main > 1 else ''} in the training process"
    )
    budget = max(1, math.floor(cpus + 1e-9))
    target = max(1, budget - workers)
    if main > target:
        fixes.append(f"torch.set_num_threads({target}) in the training process")
    if min(main, target) + workers > cpus + 0.5:
        keep = max(1, budget - min(main, target))
        if workers > cpus + 0.5:
            fixes.append(
                f"fewer DataLoader workers: {workers} alone exceed the budget "
                f"(num_workers={keep} fits it)"
            )
        else:
            fixes.append(f"if the workers stay busy with CPU work, num_workers={keep}")
    reasons: tuple[str, ...] = ()
    if widest is not None and widest.pools_used is None and widest.widest_pool > 1:
        reasons = (
            "whether the workers' work used their BLAS/OpenMP pools was not measured; "
            "idle pools cost nothing",
        )
    return Finding(
        "thread-oversubscription",
        evidence,
        f"{busy} busy threads on a budget of {cpus:g} CPUs ({' + '.join(where)}): "
        + "; ".join(fixes),
        f"estimated, not measured: {busy / cpus:.1f} busy threads per CPU, and a pool's "
        f"threads wait at each barrier for the siblings descheduled, which can make the "
        f"oversubscribed work several times slower; trainperf calibrate measures it (its "
        f"worker_threads=1 and main_threads candidates)",
        "low" if reasons else "high",
        reasons,
    )


def _describe(worker: WorkerPools) -> str:
    """The pools of a worker, e.g. ``openblas 2, torch 1``."""
    parts = [f"{p.internal_api} {p.num_threads}" for p in worker.pools or () if p.num_threads > 1]
    parts.append(f"torch {worker.torch_threads or 1}")
    return ", ".join(parts)
