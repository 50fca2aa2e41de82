"""Timing one loader configuration: warm up, then time fetches (and steps).

A trial builds a real DataLoader over a window of the dataset -- the same indices
for every candidate, since samples can differ in cost several times over and
candidates must be compared on the same work -- lets it warm up (worker start-up and
the batches they prefetched while starting are not timed), then times fetches in
chunks; each chunk's rate is kept (the spread of a candidate's speed). After each
chunk a ``judge`` may stop the trial early (a candidate clearly worse than the best
so far). The warm-up is timed apart: the time to the first batch (what an epoch
waits for its new workers) and to the end of the warm-up give the start-up an epoch
pays (:mod:`~trainperf.calibration.epochs`); ``startup_limit`` drops a candidate
whose first batch is later than a given time (one whose start-up alone loses). Any
exception -- a worker killed by a signal, ``MemoryError``, a fetch timing out, CUDA
running out of memory -- ends the trial as ``failed`` with the reason (for a start
method that cannot start the workers, what it could not pickle:
:mod:`~trainperf.calibration.startmethod`); it never propagates.

A candidate is run the way its advice is written, and nothing else: the loader from
``config.loader_kwargs()`` (whose ``worker_init_fn`` is the only thing that sets
threads in a worker), iterated inside ``config.threads()`` (torch's threads in this
process only; see :mod:`~trainperf.calibration.config`). The workers it forks see
this process as the caller left it, so what is measured is what a user who applies
the advice gets.
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from trainperf._json import as_object, opt_float, req_int, req_list, req_str
from trainperf.calibration.config import LoaderConfig

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from trainperf._json import Json, JsonObject

__all__ = [
    "MAX_EXTEND",
    "Status",
    "Trial",
    "TrialPlan",
    "run_trial",
    "shut_down",
    "stop_workers",
    "warmup_batches",
    "window",
]

logger = logging.getLogger("trainperf.calibrate")

MAX_EXTEND = 64
# torch's warning when a DataLoader has more workers than CPUs.
_TOO_MANY = "This DataLoader will create"
# torch's warning when the workers' arguments do not pickle: the trial's reason says
# which part does not, and the warning would otherwise be the error under -W error.
_PICKLE_WARNING = "Got pickle error when attempting to start a worker"

Status = Literal["chosen", "measured", "dropped", "failed", "screened"]


@dataclass(frozen=True)
class Trial:
    """One candidate and what became of it."""

    config: LoaderConfig
    status: Status
    samples_per_s: float | None = None
    p95_s: float | None = None  # batch time (fetch, plus the step in end-to-end mode)
    batches: int = 0  # timed
    elapsed_s: float = 0.0  # everything this candidate cost, start-up included
    reason: str = ""
    # CPU seconds per wall second of fetching, in the loading thread (workers 0): near 1
    # for CPU-heavy samples, small for a loader that waits on storage.
    cpu_share: float | None = None
    worker_rss_bytes: int | None = None  # unshared memory per worker process
    chunk_rates: tuple[float, ...] = ()  # samples/s of each timed chunk, in order
    # Seconds from iter(loader) to the first batch (new workers start) and to the end of
    # the warm-up batches (warmup_batches(config), their steps included).
    first_batch_s: float | None = None
    warmup_s: float | None = None

    def to_json(self) -> JsonObject:
        out: JsonObject = dict(self.config.to_json())
        out.update(
            status=self.status,
            samples_per_s=self.samples_per_s,
            p95_s=self.p95_s,
            batches=self.batches,
            elapsed_s=round(self.elapsed_s, 4),
            reason=self.reason,
            chunk_samples_per_s=list(self.chunk_rates),
            first_batch_s=_round(self.first_batch_s),
            warmup_s=_round(self.warmup_s),
        )
        return out

    @classmethod
    def from_json(cls, data: JsonObject) -> Trial:
        data = as_object(data, "a calibration candidate")
        status = req_str(data, "status")
        if status not in ("chosen", "measured", "dropped", "failed", "screened"):
            from trainperf.errors import RecordError

            raise RecordError(f"unknown candidate status {status!r}")
        return cls(
            config=LoaderConfig.from_json(data),
            status=status,  # type: ignore[arg-type]  # checked just above
            samples_per_s=opt_float(data, "samples_per_s"),
            p95_s=opt_float(data, "p95_s"),
            batches=req_int(data, "batches"),
            elapsed_s=opt_float(data, "elapsed_s") or 0.0,
            reason=req_str(data, "reason"),
            chunk_rates=_rates(req_list(data, "chunk_samples_per_s")),  # [] in older records
            first_batch_s=opt_float(data, "first_batch_s"),  # absent in older records
            warmup_s=opt_float(data, "warmup_s"),
        )


@dataclass(frozen=True)
class TrialPlan:
    batches: int  # fetches to time
    chunk: int  # fetches between two looks by the judge
    timeout_s: float  # one fetch taking longer fails the candidate
    # Fast pipelines (in-memory data) time more batches, until this much time has
    # passed or ``MAX_EXTEND`` times ``batches``: a few sub-millisecond fetches are noise.
    min_time_s: float = 0.4

    @property
    def max_batches(self) -> int:
        return self.batches * MAX_EXTEND


def warmup_batches(config: LoaderConfig) -> int:
    """Batches fetched before timing starts: the first (which pays the workers'
    start-up) and those the workers queued meanwhile, which arrive in a burst."""
    return 1 + config.num_workers * (config.prefetch_factor or 2)


def window(length: int, start: int, count: int) -> list[int]:
    """``count`` indices from ``start``, wrapping around the dataset."""
    return [(start + i) % length for i in range(count)]


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def run_trial(
    dataset: object,
    config: LoaderConfig,
    plan: TrialPlan,
    *,
    start: int,
    collate_fn: Callable[..., object] | None,
    step: Callable[[object], object] | None,
    judge: Callable[[float, int], str | None],
    clock: Callable[[], float],
    keep: list[object] | None = None,
    startup_limit: tuple[float, str] | None = None,
) -> Trial:
    """Measure ``config``; ``judge(samples_per_s, batches)`` returns a reason to stop.

    ``keep``: when given, the timed batches are appended to it (the caller replays
    them to find the compute floor). ``startup_limit``: ``(seconds, what)``; no batch
    within ``seconds`` of the start (nor between two batches) drops the candidate, as
    one that takes longer than ``what`` ("the whole run of the fastest (...)").
    """
    import time

    import psutil
    from torch.utils.data import DataLoader

    began = clock()
    length = len(dataset)  # type: ignore[arg-type]
    warmup = warmup_batches(config)
    indices = window(length, start, (warmup + plan.max_batches) * config.batch_size)
    kwargs = config.loader_kwargs()
    kwargs["persistent_workers"] = False  # one pass; the choice itself keeps them
    if collate_fn is not None:
        kwargs["collate_fn"] = collate_fn
    if config.num_workers:
        kwargs["timeout"] = plan.timeout_s
        if startup_limit is not None:
            kwargs["timeout"] = max(1e-3, min(plan.timeout_s, startup_limit[0]))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_TOO_MANY)
        loader: DataLoader[object] = DataLoader(dataset, sampler=indices, **kwargs)  # type: ignore[arg-type]
    times: list[float] = []
    this = psutil.Process()
    fetch_cpu = fetch_wall = 0.0
    worker_rss = None
    reason = ""
    status: Status = "measured"
    iterator: Iterator[object] | None = None
    first_batch_s = warmup_s = None
    try:
        with config.threads(), warnings.catch_warnings():
            # More workers than CPUs is what a loader that waits on storage wants; torch's
            # warning about it is not news to the search that is measuring it.
            warnings.filterwarnings("ignore", message=_TOO_MANY)
            warnings.filterwarnings("ignore", message=_PICKLE_WARNING)
            starting = clock()
            iterator = iter(loader)  # starts the workers (pickling what they are sent)
            if startup_limit is not None and clock() - starting > startup_limit[0]:
                raise TimeoutError("the DataLoader workers' start timed out")
            for _ in range(warmup):
                batch = next(iterator)
                if first_batch_s is None:
                    first_batch_s = clock() - starting
                if step is not None:
                    step(batch)
            warmup_s = clock() - starting
            if config.num_workers:
                worker_rss = _worker_rss(this, iterator)
            while len(times) < plan.batches or (
                sum(times) < plan.min_time_s and len(times) < plan.max_batches
            ):
                for _ in range(plan.chunk):
                    started, cpu = clock(), time.thread_time()
                    batch = next(iterator)
                    fetched = clock()
                    fetch_cpu += time.thread_time() - cpu
                    fetch_wall += fetched - started
                    if step is not None:
                        step(batch)
                    times.append(clock() - started)
                    if keep is not None:
                        keep.append(batch)
                # A judgement needs a whole round of the workers' pipeline and some time:
                # the first batches of many workers come in bursts.
                settled = len(times) >= 2 * config.num_workers and (
                    sum(times) >= plan.min_time_s / 2
                )
                verdict = judge(_rate(times, config.batch_size), len(times)) if settled else None
                if verdict:
                    status, reason = "dropped", verdict
                    break
    except Exception as exc:  # the whole point: a candidate never crashes the search
        if startup_limit is not None and "timed out" in str(exc):
            status, limit = "dropped", f"{startup_limit[0]:.2f} s"
            if first_batch_s is None:
                reason = f"no batch {limit} after the start: its start-up alone outlasts "
                stop_workers(iterator)  # still starting: no need to wait for them to stop
            else:
                reason = f"a batch took over {limit}, which alone outlasts "
            reason += startup_limit[1]
        else:
            status = "failed"
            from trainperf.calibration.startmethod import why_it_failed

            found = why_it_failed(
                exc,
                config,
                dataset=dataset,
                collate_fn=collate_fn,
                started=first_batch_s is not None,
            )
            reason = found or _why(exc)
        return Trial(
            config,
            status,
            batches=len(times),
            elapsed_s=clock() - began,
            reason=reason,
            first_batch_s=first_batch_s,
        )
    finally:
        shut_down(iterator)
        del iterator
    share = fetch_cpu / fetch_wall if config.num_workers == 0 and fetch_wall > 0 else None
    return Trial(
        config,
        status,
        samples_per_s=_rate(times, config.batch_size),
        p95_s=_percentile(times, 0.95) if times else None,
        batches=len(times),
        elapsed_s=clock() - began,
        reason=reason,
        cpu_share=share,
        worker_rss_bytes=worker_rss,
        chunk_rates=_chunk_rates(times, plan.chunk, config.batch_size),
        first_batch_s=first_batch_s,
        warmup_s=warmup_s,
    )


def shut_down(iterator: object) -> None:
    """Stop a loader iterator's workers now, as dropping it would, and take a worker
    that dies as it is told to stop for what it is: the trial's batches were all in.
    Left to the iterator's ``__del__``, such a death (seen on a busy machine: a worker
    aborting as it exits, ``terminate called without an active exception``) makes
    torch's SIGCHLD handler raise inside ``__del__``, where nothing can catch it. Torch
    forgets the workers whatever happens in its shutdown, so nothing raises later.
    Never raises."""
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is None:
        return  # no workers (num_workers=0), or another torch: dropping it will do
    try:
        shutdown()
    except Exception as exc:  # a worker that died on its way out: nothing is lost
        logger.debug("a DataLoader worker died as it was stopped: %s", exc)


def stop_workers(iterator: object) -> None:
    """End a loader iterator's worker processes now, for a start given up on: torch's own
    shutdown waits up to 5 s for each worker to notice it (one still importing torch
    under ``spawn`` takes that long), and then finds them gone.

    This reaches into torch's iterator (its workers, and the registry its SIGCHLD
    handler checks, which would report the ended workers as failed); where either is
    not there, the workers are left to torch's shutdown. Never raises."""
    workers = getattr(iterator, "_workers", None)
    if not workers or getattr(iterator, "_worker_pids_set", None) is not True:
        return
    try:
        from torch.utils.data._utils import signal_handling

        forget = signal_handling._remove_worker_pids  # type: ignore[attr-defined]  # private
        forget(id(iterator))
        iterator._worker_pids_set = False  # type: ignore[attr-defined]  # torch's, checked above
    except Exception:  # another torch: its shutdown will do, slowly
        return
    for worker in workers:
        with contextlib.suppress(Exception):
            if worker.is_alive():
                worker.terminate()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 5)


def _rate(times: Sequence[float], batch_size: int) -> float:
    total = sum(times)
    return len(times) * batch_size / total if total > 0 else math.inf


def _chunk_rates(times: Sequence[float], chunk: int, batch_size: int) -> tuple[float, ...]:
    """The rate of each whole chunk of ``chunk`` timed batches (samples/s)."""
    whole = len(times) - len(times) % chunk
    parts = (times[i : i + chunk] for i in range(0, whole, chunk))
    return tuple(_rate(part, batch_size) for part in parts if sum(part) > 0)


def _rates(values: list[Json]) -> tuple[float, ...]:
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        from trainperf.errors import RecordError

        raise RecordError(f"chunk_samples_per_s must be a list of numbers, got {values!r}")
    return tuple(float(v) for v in values)  # type: ignore[arg-type]  # checked above


def _worker_rss(process: object, iterator: object) -> int | None:
    """Memory a worker holds of its own (resident minus shared), the median over them.

    The workers are the iterator's (under ``forkserver`` they are not this process's
    children, and a ``spawn`` or ``forkserver`` start adds helper processes that are);
    this process's children where torch does not say which they are."""
    import psutil

    workers = getattr(iterator, "_workers", None)  # private to torch: used where present
    pids = [w.pid for w in workers if isinstance(getattr(w, "pid", None), int)] if workers else []
    sizes = []
    try:
        found = [psutil.Process(pid) for pid in pids] or process.children()  # type: ignore[attr-defined]
        for child in found:
            info = child.memory_info()
            sizes.append(max(0, info.rss - getattr(info, "shared", 0)))
    except psutil.Error:
        return None
    return int(statistics.median(sizes)) if sizes else None


def _why(exc: BaseException) -> str:
    """One line on why a candidate failed, with the usual cause where there is one."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if "DataLoader worker" in first:
        return (
            f"a worker process died ({first}); memory running out or a full /dev/shm "
            f"are the usual causes"
        )[:300]
    if isinstance(exc, MemoryError):
        return "MemoryError: this configuration needs more memory than there is"
    return f"{type(exc).__name__}: {first}"[:300]
