"""``trainperf.monitor()``: watch a training loop in this process, with no other change.

    with trainperf.monitor() as run:
        train()                      # any loop using DataLoader + an optimizer
    print(run.summary.primary)       # e.g. "input-bound"

The run is recorded in ``.trainperf/runs/<id>/`` as it goes (``steps.jsonl`` is
flushed every ``FLUSH_EVERY_S``), so a killed run can still be reported.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from trainperf.errors import UsageError
from trainperf.monitoring.analyze import MIN_STEPS, RunSummary, summarize
from trainperf.monitoring.capture import StepRecorder
from trainperf.monitoring.probe import PROBE_FILE, Replay, replay
from trainperf.monitoring.records import DEVICE_MEMORY, Period, RunMeta, write_device_memory
from trainperf.monitoring.sampler import Sampler

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from contextlib import AbstractContextManager
    from pathlib import Path
    from types import TracebackType

    from trainperf.exporters.channel import Exports
    from trainperf.exporters.spec import ExportTarget
    from trainperf.monitoring.hooks import LoaderSeen
    from trainperf.monitoring.sampler import Sample

__all__ = ["FLUSH_EVERY_S", "Run", "active_run", "monitor"]

FLUSH_EVERY_S = 2.0

# The run recording this process, if any: the hooks are process-wide, so there is at
# most one, and a Lightning callback joins it rather than starting another.
_ACTIVE: Run | None = None


def active_run() -> Run | None:
    """The run being recorded in this process (``trainperf run``, ``monitor()``), if any."""
    return _ACTIVE


class Run:
    """A monitored run: use as a context manager; ``summary`` once it has ended."""

    def __init__(
        self,
        folder: Path,
        *,
        clock: Callable[[], float],
        measure_startup: bool = False,
        export: Sequence[ExportTarget] = (),
    ) -> None:
        self.path = folder
        self.clock = clock
        # Injected into a process at start-up, the time before the first step is known.
        self.measure_startup = measure_startup
        self.entered = False
        self.summary: RunSummary | None = None
        self._periods: list[Period] = []
        self._pending: list[Period] = []
        self._file: TextIO | None = None
        self._last_flush = 0.0
        self._recorder: StepRecorder | None = None
        self._origin: float | None = None
        self._sampler: Sampler | None = None
        self.threads: int | None = None  # torch's intra-op threads when monitoring began
        self._meta: RunMeta | None = None
        self._hooks: AbstractContextManager[None] | None = None
        self.replayed: Replay | None = None
        # A bounded run (``trainperf doctor``): after ``stop_steps`` training steps or
        # ``stop_after_s`` seconds (and at least MIN_STEPS steps), ``limit_reached``;
        # ``on_limit`` then runs at the next DataLoader fetch, outside the recorder.
        self.stop_steps: int | None = None
        self.stop_after_s: float | None = None
        self.on_limit: Callable[[], None] | None = None
        self.limit_reached = False
        # Under torch.distributed: the ranks' agreement on the limit (every rank stops
        # after the same step), called at the steps :func:`.agreement.due` names.
        self.agree: Callable[[bool], bool] | None = None
        self.keep_loaders = False  # keep the loaders seen (``loaders``) for later use
        self._train_steps = 0
        self._unrecorded: list[tuple[float, float]] = []  # (start, end) since the origin
        self._exports = _exports(export)

    @classmethod
    def injected(cls, folder: str, *, export: Sequence[ExportTarget] = ()) -> Run:
        """A run for ``trainperf run``: its clock starts with the interpreter."""
        from pathlib import Path

        run = cls(
            _rank_folder(Path(folder)), clock=time.perf_counter, measure_startup=True, export=export
        )
        run._origin = time.perf_counter()
        return run

    @property
    def periods(self) -> list[Period]:
        """The steps and validation periods recorded so far."""
        return list(self._periods)

    @property
    def loaders(self) -> dict[int, LoaderSeen]:
        """The DataLoaders seen, by dataset id, when ``keep_loaders`` was set."""
        found = None if self._recorder is None else self._recorder.loaders
        return dict(found or {})

    @property
    def train_loader(self) -> int | None:
        """The dataset id of the loader whose batches fed the optimizer steps."""
        return None if self._recorder is None else self._recorder.train_loader

    def step(self) -> None:
        """Mark the end of a training step yourself (loops the hooks cannot see)."""
        if self._recorder is not None:
            self._recorder.explicit_step()

    @contextlib.contextmanager
    def unrecorded(self) -> Iterator[None]:
        """Work inside the block (a probe, a proof) is not the program's: the hooks
        record none of it."""
        recorder = self._recorder
        previous = recorder.suspended if recorder is not None else False
        if recorder is not None:
            recorder.suspended = True
        began = self.clock()
        watch = getattr(self, "_thread_watch", None)
        try:
            with contextlib.nullcontext() if watch is None else watch.paused():
                yield
        finally:
            if recorder is not None:
                recorder.suspended = previous
                # The sampler's readings meanwhile (a calibration's workers) are not the
                # program's memory either.
                self._unrecorded.append((began - recorder.origin, self.clock() - recorder.origin))

    def replay(
        self,
        step: Callable[[object], object],
        batches: Sequence[object],
        *,
        repeats: int = 2,
        sync: Callable[[], None] | None = None,
    ) -> Replay:
        """Time ``step`` on batches already in memory, unrecorded: the counterfactual
        for an input-bound verdict (see :mod:`trainperf.monitoring.probe`). The step
        may change the model; restoring it is the caller's part."""
        with self.unrecorded():
            result = replay(step, batches, repeats=repeats, sync=sync or (lambda: None))
        self.replayed = result
        if self.entered:
            (self.path / PROBE_FILE).write_text(json.dumps(result.to_json()), encoding="utf-8")
        return result

    def summarize(
        self,
        samples: Sequence[Sample] | None = None,
        *,
        device_memory: dict[int, tuple[int, int]] | None = None,
        stopped_early: bool = False,
    ) -> RunSummary:
        """The run so far, summarised as its record will be (the same start-up, CPU
        budget and samples): decisions taken during the run and the report agree."""
        from trainperf.monitoring.analyze import recorded_cpu_budget
        from trainperf.monitoring.worker_timing import read_worker_timing
        from trainperf.monitoring.workers import read_worker_pools

        if samples is None:
            samples = [] if self._sampler is None else list(self._sampler.samples)
        first = next((p.start_s for p in self._periods if p.kind == "train"), 0.0)
        return summarize(
            self._periods,
            startup_s=first if self.measure_startup else 0.0,
            host=samples,
            threads=self._threads_seen(),
            cpus=recorded_cpu_budget(self._meta),
            device_memory=device_memory,
            replayed=self.replayed,
            stopped_early=stopped_early,
            anatomy=self._anatomy.record() if self.entered else None,
            worker_pools=read_worker_pools(self.path) if self.entered else (),
            workers=read_worker_timing(self.path) if self.entered else None,
        )

    def _threads_seen(self) -> int | None:
        """Torch's intra-op threads: the most seen so far (at the start, each epoch's).
        Injected at the interpreter's start, the monitor reads them before the program
        sets its own (``torch.set_num_threads``): once an epoch began, its count wins."""
        watch = getattr(self, "_thread_watch", None)
        seen = None if watch is None else watch.max_intra_op_threads
        epochs: int | None = None if watch is None else watch.epoch_intra_op_threads
        if self.measure_startup and epochs:
            return epochs
        return max(self.threads or 0, seen or 0) or None

    def begin_validation(self) -> None:
        """Everything until :meth:`end_validation` is validation, whichever loader."""
        if self._recorder is not None:
            self._recorder.begin_validation()

    def end_validation(self) -> None:
        if self._recorder is not None:
            self._recorder.end_validation()

    def _emit(self, period: Period) -> None:
        self._periods.append(period)
        self._pending.append(period)
        if self._exports is not None:
            self._exports.put(period)  # never waits: the exporters write on their threads
        now = self.clock()
        if period.kind == "train":
            self._train_steps += 1
            if not self.limit_reached and self._limit_agreed(now):
                self.limit_reached = True
                if self.on_limit is not None and self._recorder is not None:
                    self._recorder.at_fetch = self._fire_limit
        if now - self._last_flush >= FLUSH_EVERY_S:
            self._flush(now)

    def _limit_agreed(self, now: float) -> bool:
        """This rank is over its limit, or, under torch.distributed, some rank is (asked
        at the same steps on every rank)."""
        if self.agree is None:
            return self._over_limit(now)
        from trainperf.monitoring.agreement import due

        if not due(self._train_steps, self.stop_steps):
            return False
        return self.agree(self._over_limit(now))

    def _over_limit(self, now: float) -> bool:
        if self.stop_steps is not None and self._train_steps >= self.stop_steps:
            return True
        if self.stop_after_s is None or self._recorder is None:
            return False
        return self._train_steps >= MIN_STEPS and now - self._recorder.origin >= self.stop_after_s

    def _fire_limit(self) -> None:
        if self._recorder is not None:
            self._recorder.at_fetch = None
        if self.on_limit is not None:
            self.on_limit()

    def _flush(self, now: float) -> None:
        if self._file is not None and self._pending:
            self._file.write("".join(p.to_line() + "\n" for p in self._pending))
            self._file.flush()  # in the OS's hands: survives the process being killed
            self._pending.clear()
        self._last_flush = now

    def _drop_unrecorded_memory(self) -> None:
        """The workers' memory read while a proof or a calibration ran is theirs."""
        from trainperf.errors import RecordError
        from trainperf.monitoring.worker_memory import WORKER_MEMORY_FILE, read_worker_memory

        try:
            kept = [
                r
                for r in read_worker_memory(self.path)
                if not any(start <= r.t_s <= end for start, end in self._unrecorded)
            ]
        except RecordError:
            return
        lines = "".join(json.dumps(r.to_json()) + "\n" for r in kept)
        (self.path / WORKER_MEMORY_FILE).write_text(lines, encoding="utf-8")

    def _discard(self) -> None:
        from trainperf.monitoring import worker_timing
        from trainperf.monitoring.anatomy import ANATOMY
        from trainperf.monitoring.sample_audit import SAMPLE_AUDIT_FILE
        from trainperf.monitoring.worker_memory import WORKER_MEMORY_FILE
        from trainperf.monitoring.workers import WORKERS_FILE

        names = ("meta.json", "steps.jsonl", "samples.jsonl", DEVICE_MEMORY, PROBE_FILE)
        workers = (
            WORKERS_FILE,
            WORKER_MEMORY_FILE,
            worker_timing.LOADER_STARTS_FILE,
            worker_timing.WORKER_STARTS_FILE,
            worker_timing.BATCHES_FILE,
        )
        for name in (*names, *workers, ANATOMY, SAMPLE_AUDIT_FILE):
            (self.path / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.path.rmdir()

    def __enter__(self) -> Run:
        from trainperf.fingerprint import environment_fingerprint
        from trainperf.monitoring.hooks import instrument

        global _ACTIVE
        if _ACTIVE is not None:
            raise UsageError(
                f"this process is already recorded into {_ACTIVE.path}; one run per process "
                f"(trainperf.monitoring.session.active_run() returns it)"
            )
        if (self.path / "steps.jsonl").exists():
            raise UsageError(
                f"{self.path} already holds a recorded run; choose another folder (or remove "
                f"that run) so that its records are not mixed with this one's"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        rank = os.environ.get("RANK")
        meta = RunMeta(
            run_id=self.path.name,
            command=" ".join(sys.argv),
            started_at=time.time(),
            pid=os.getpid(),
            rank=int(rank) if rank and rank.isdecimal() else None,
            fingerprint=environment_fingerprint().to_json(),
            from_process_start=self.measure_startup,
        )
        (self.path / "meta.json").write_text(json.dumps(meta.to_json(), indent=1), "utf-8")
        self._meta = meta
        self._file = (self.path / "steps.jsonl").open("a", encoding="utf-8")
        self._recorder = StepRecorder(clock=self.clock, emit=self._emit)
        if self.keep_loaders:
            self._recorder.loaders = {}
        if self._origin is not None:
            self._recorder.origin = self._origin
        self._last_flush = self.clock()
        from trainperf.monitoring.sample_audit import SampleRecorder

        self._audit = SampleRecorder()  # the samples each pass read (sample_audit.jsonl)
        self._hooks = instrument(self._recorder, self.clock, audit=self._audit)
        self._hooks.__enter__()
        import torch

        self.threads = torch.get_num_threads()
        from trainperf.monitoring.conditions import SystemCounters
        from trainperf.monitoring.sampler import nvml_reader

        self._sampler = Sampler(
            clock=self.clock,
            origin=self._recorder.origin,
            gpu=nvml_reader(),
            counters=SystemCounters(),
            folder=self.path,  # the workers' memory: worker_memory.jsonl
        )
        self._sampler.start()
        from trainperf.monitoring.workers import WORKERS_FILE, ThreadWatch

        # Workers' thread pools (workers.jsonl) and torch's threads at each epoch.
        self._thread_watch = ThreadWatch(self.path / WORKERS_FILE, origin=meta.started_at)
        self._thread_watch.__enter__()
        from trainperf.monitoring.anatomy import AnatomyCapture

        # The step's anatomy: this thread's stack, sampled, and the GC's pauses.
        self._anatomy = AnatomyCapture(
            thread_id=threading.get_ident(), clock=self.clock, origin=self._recorder.origin
        )
        self._anatomy.start()
        if self._exports is not None:
            self._exports.start()
        self.entered = True
        _ACTIVE = self
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if self._hooks is not None:
                self._hooks.__exit__(kind, value, traceback)
        finally:
            self._finish()

    def _record_threads(self) -> None:
        """The thread count the run ended with, kept in ``meta.json`` so that a report
        re-analysed from the records sees what the run saw."""
        import dataclasses

        import torch

        now = torch.get_num_threads()
        self.threads = now if self.threads is None else max(self.threads, now)
        if self._meta is not None:
            self._meta = dataclasses.replace(self._meta, intra_op_threads=self.threads)
            (self.path / "meta.json").write_text(
                json.dumps(self._meta.to_json(), indent=1), "utf-8"
            )

    def _finish(self) -> None:
        try:
            self._finish_records()
        finally:
            if self._exports is not None:
                # After the summary, which they export; nothing when the run was discarded.
                folder = self.path if self.summary is not None else None
                self._exports.close(self.summary, folder=folder)

    def _finish_records(self) -> None:
        global _ACTIVE
        if not self.entered:
            return  # __enter__ failed: nothing was recorded, nothing may be written
        if _ACTIVE is self:
            _ACTIVE = None
        # The last step, written as the run ends, is no point to agree at: the other
        # ranks may be ending too, or their group gone.
        self.agree = None
        self._thread_watch.__exit__(None, None, None)
        self._anatomy.stop()
        if self._recorder is not None:
            self._recorder.close()
        samples = []
        if self._sampler is not None:
            self._sampler.stop()
            samples = [
                x
                for x in self._sampler.samples
                if not any(start <= x.t_s <= end for start, end in self._unrecorded)
            ]
            lines = "".join(json.dumps(x.to_json()) + "\n" for x in samples)
            (self.path / "samples.jsonl").write_text(lines, encoding="utf-8")
            if self._unrecorded:
                self._drop_unrecorded_memory()
        self._flush(self.clock())
        if self._file is not None:
            self._file.close()
        from trainperf.monitoring.anatomy import write_anatomy

        write_anatomy(self.path, self._anatomy.record())
        device_memory = {} if self._recorder is None else self._recorder.device_memory
        if device_memory:
            (self.path / DEVICE_MEMORY).write_text(
                json.dumps(write_device_memory(device_memory)), encoding="utf-8"
            )
        self._audit.write(self.path, train_loader=self.train_loader)
        if self.measure_startup and not self._periods:
            # Injected into a process that never trained (a launcher such as torchrun,
            # a helper script): leave no record behind.
            self._discard()
            return
        self.threads = self._threads_seen()  # the most any epoch began with
        self._record_threads()
        self.summary = self.summarize(samples, device_memory=device_memory)
        world = os.environ.get("WORLD_SIZE", "")
        if not (world.isdecimal() and int(world) > 1):  # ranks: audited together, on report
            from trainperf.monitoring.sample_audit import with_audit

            self.summary = with_audit(self.summary, [self.path])
        summary = json.dumps(self.summary.to_json(), indent=1)
        (self.path / "summary.json").write_text(summary, encoding="utf-8")
        if self._meta is not None:
            from trainperf.monitoring.history import index_run
            from trainperf.settings import Settings

            try:
                database = Settings.from_env().home() / "history.sqlite"
            except UsageError:
                return  # no usable home folder: the run folder is the record
            index_run(database, self.path, self._meta, self.summary)


def monitor(
    *,
    out: str | os.PathLike[str] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    export: Sequence[ExportTarget] = (),
) -> Run:
    """A :class:`Run` recording into ``out`` (default: a new folder under ``.trainperf/runs``).

    ``export``: specs (``"tensorboard:DIR"``, ``"wandb:DIR"``, ``"mlflow:DIR"``) or
    :class:`~trainperf.exporters.Exporter` objects that also receive the run's figures,
    each from its own thread (see :mod:`trainperf.exporters`). A bad spec raises here.
    """
    from pathlib import Path

    from trainperf.settings import Settings

    if out is None:
        out = Settings.from_env().home() / "runs" / new_run_id()
    return Run(_rank_folder(Path(out)), clock=clock, export=export)


def _exports(targets: Sequence[ExportTarget]) -> Exports | None:
    if not targets:
        return None
    from trainperf.exporters.channel import Exports
    from trainperf.exporters.spec import exporters_for

    return Exports(exporters_for(targets))


def new_run_id() -> str:
    """Sortable by start time, unique even for runs started in the same second."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{os.urandom(3).hex()}"


def _rank_folder(folder: Path) -> Path:
    """Under torch.distributed, each rank records into ``rank<N>`` of the run folder."""
    rank, world = os.environ.get("RANK", ""), os.environ.get("WORLD_SIZE", "")
    if rank.isdecimal() and world.isdecimal() and int(world) > 1:
        return folder / f"rank{int(rank)}"
    return folder
