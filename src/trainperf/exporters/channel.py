"""Each exporter behind a bounded queue and its own thread: the training loop never waits.

The loop's whole part is :meth:`Channel.put`, a ``put_nowait`` on a bounded queue;
when the queue is full (the exporter fell behind) the period is dropped and counted.
The exporter's thread takes periods off the queue, turns them into figures
(:mod:`.figures`) and writes them. An exception there is logged once and stops that
exporter, never the training. At the end, :meth:`Exports.close` hands each exporter
the run's summary, waits for it (at most ``close_timeout_s``) and reports what it sent
and dropped, in the log and in the run folder's ``exporters.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainperf.errors import UsageError
from trainperf.exporters.figures import EpochTally, run_end, step_figures

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from trainperf._json import JsonObject
    from trainperf.exporters.protocol import Exporter
    from trainperf.monitoring.analyze import RunSummary
    from trainperf.monitoring.records import Period

__all__ = [
    "CLOSE_TIMEOUT_S",
    "EXPORTERS_FILE",
    "QUEUE_SIZE",
    "Channel",
    "ChannelReport",
    "Exports",
    "process_rss",
]

# Periods waiting for one exporter: at 100 steps/s, 40 s of a stalled writer before any
# is dropped; a Period is ~200 bytes, so under a megabyte per exporter.
QUEUE_SIZE = 4096
CLOSE_TIMEOUT_S = 60.0  # at the run's end, the longest wait for every exporter to finish
EXPORTERS_FILE = "exporters.json"

_log = logging.getLogger("trainperf.exporters")


def process_rss() -> int | None:
    """This process's resident memory in bytes (psutil), or ``None`` where unreadable."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        return int(psutil.Process().memory_info().rss)
    except (psutil.Error, OSError):
        return None


@dataclass(frozen=True)
class ChannelReport:
    """What one exporter did: periods it took (``sent``) and ``dropped`` (its queue was
    full), ``error`` when it stopped early, ``finished`` when it closed in time."""

    name: str
    sent: int
    dropped: int
    error: str | None
    finished: bool

    def to_json(self) -> JsonObject:
        return {
            "name": self.name,
            "sent": self.sent,
            "dropped": self.dropped,
            "error": self.error,
            "finished": self.finished,
        }


@dataclass(frozen=True)
class _End:
    summary: RunSummary | None


class Channel:
    """One exporter, its queue (``capacity`` periods) and its thread.

    ``memory`` reads the process's resident memory in bytes for the epoch figures; it
    runs on the exporter's thread, when an epoch is written.
    """

    def __init__(
        self,
        exporter: Exporter,
        *,
        capacity: int = QUEUE_SIZE,
        memory: Callable[[], int | None] = process_rss,
    ) -> None:
        if capacity < 1:
            raise UsageError(f"an exporter's queue capacity must be >= 1, got {capacity}")
        self.exporter = exporter
        self.name = str(exporter.name)
        self.dropped = 0  # only the training loop's thread counts these
        self._memory = memory
        self._queue: queue.Queue[Period | _End] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._work, name="trainperf-export", daemon=True)
        self._sent = 0
        self._error: str | None = None
        self._stopped = False  # the exporter failed: the loop stops handing it periods

    def start(self) -> None:
        self._thread.start()

    def put(self, period: Period) -> None:
        """Hand a period to the exporter. Never waits: a full queue drops it, counted."""
        if self._stopped:
            return
        try:
            self._queue.put_nowait(period)
        except queue.Full:
            self.dropped += 1

    def end(self, summary: RunSummary | None, *, deadline: float) -> None:
        """Tell the thread the run is over (waiting for room in its queue until
        ``deadline``, a ``time.monotonic()`` value)."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(_End(summary), timeout=max(0.0, deadline - time.monotonic()))

    def report(self, *, deadline: float) -> ChannelReport:
        """Wait for the thread until ``deadline``; what the exporter did."""
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        finished = not self._thread.is_alive()
        error = self._error
        if not finished and error is None:
            error = "still writing when the run ended; its last figures may be missing"
        return ChannelReport(self.name, self._sent, self.dropped, error, finished)

    def _work(self) -> None:
        opened = False
        tally: EpochTally | None = None
        try:
            while True:
                item = self._queue.get()
                if isinstance(item, _End):
                    end = item
                    break
                if not opened:
                    self.exporter.open()
                    opened = True
                self._sent += 1
                if tally is not None and item.epoch > tally.epoch:
                    self._write_epoch(tally)
                    tally = None
                if tally is None:
                    tally = EpochTally(item.epoch)
                if item.kind == "train":
                    self.exporter.write_step(item.index, step_figures(item))
                tally.add(item)
            if not opened:
                return  # nothing was recorded: nothing is written
            if tally is not None:
                self._write_epoch(tally)
            self.exporter.close(None if end.summary is None else run_end(end.summary))
        except Exception as exc:
            self._fail(exc, opened=opened)

    def _write_epoch(self, tally: EpochTally) -> None:
        figures = tally.figures(rss_bytes=self._memory())
        if figures:
            self.exporter.write_epoch(tally.epoch, figures)

    def _fail(self, exc: Exception, *, opened: bool) -> None:
        self._stopped = True
        self._error = f"{type(exc).__name__}: {exc}"
        _log.warning(
            "trainperf exporter %s stopped (%s); the run goes on without it", self.name, self._error
        )
        if opened:
            with contextlib.suppress(Exception):  # releasing what it holds, if it can
                self.exporter.close(None)


class Exports:
    """A run's exporters, each on its own :class:`Channel`.

    ``close_timeout_s`` bounds the wait at the run's end for all of them together.
    """

    def __init__(
        self,
        exporters: Sequence[Exporter],
        *,
        capacity: int = QUEUE_SIZE,
        close_timeout_s: float = CLOSE_TIMEOUT_S,
        memory: Callable[[], int | None] = process_rss,
    ) -> None:
        if not close_timeout_s >= 0:
            raise UsageError(f"close_timeout_s must be >= 0 seconds, got {close_timeout_s}")
        self.channels = tuple(Channel(e, capacity=capacity, memory=memory) for e in exporters)
        self.close_timeout_s = close_timeout_s
        self._started = False

    def start(self) -> None:
        for channel in self.channels:
            channel.start()
        self._started = True

    def put(self, period: Period) -> None:
        """Hand a period to every exporter; never waits."""
        for channel in self.channels:
            channel.put(period)

    def close(self, summary: RunSummary | None, *, folder: Path | None) -> list[ChannelReport]:
        """End every exporter with ``summary``, wait for them, report: a warning for
        each that dropped periods or did not finish, and ``exporters.json`` in
        ``folder`` (when given)."""
        if not self._started:
            return []
        self._started = False
        deadline = time.monotonic() + self.close_timeout_s
        for channel in self.channels:
            channel.end(summary, deadline=deadline)
        reports = [channel.report(deadline=deadline) for channel in self.channels]
        for each in reports:
            if each.dropped:
                _log.warning(
                    "trainperf exporter %s dropped %d of %d periods: it fell behind the "
                    "training loop, which never waits for it; its figures have gaps",
                    each.name,
                    each.dropped,
                    each.sent + each.dropped,
                )
            if not each.finished:
                _log.warning("trainperf exporter %s: %s", each.name, each.error)
        if folder is not None:
            from trainperf._schema import EXPORTERS

            record = EXPORTERS.stamp({"exporters": [each.to_json() for each in reports]})
            (folder / EXPORTERS_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
        return reports
