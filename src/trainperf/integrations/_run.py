"""What trainers' callbacks share: the run they record into, joined or their own."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from trainperf.exporters.spec import parse_spec
from trainperf.monitoring.session import Run, active_run, monitor

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from trainperf.exporters.spec import ExportTarget
    from trainperf.monitoring.analyze import RunSummary

__all__ = ["Recording"]


class Recording:
    """A callback's run: the one already recording the process (``trainperf run``,
    ``trainperf doctor``, ``trainperf.monitor()``), joined, or one it starts and ends.

    Under a bounded run (the doctor, ``trainperf ab``) the callback takes the run's stop
    for itself (:attr:`stop_now`), so that its trainer stops politely at the limit, and
    gives it back at :meth:`finish_recording`.
    """

    run: Run | None
    out: str | os.PathLike[str] | None
    export: tuple[ExportTarget, ...]

    def init_recording(
        self, *, out: str | os.PathLike[str] | None, export: Sequence[ExportTarget]
    ) -> None:
        """Settings checked here: a bad export spec raises before any training."""
        self.out = out
        self.export = tuple(parse_spec(e) if isinstance(e, str) else e for e in export)
        self.run = None
        self._owned = False  # started by this callback, so finished by it
        self._bounded: Callable[[], None] | None = None  # the run's own stop, meanwhile

    @property
    def summary(self) -> RunSummary | None:
        return None if self.run is None else self.run.summary

    @property
    def path(self) -> Path | None:
        return None if self.run is None else self.run.path

    def begin_recording(self) -> Run:
        joined = active_run()
        if joined is not None:
            self.run, self._owned = joined, False
            self._bounded, joined.on_limit = joined.on_limit, None
            return joined
        run = monitor(out=self.out, export=self.export)
        run.__enter__()  # may refuse the folder: then there is no run to finish
        self.run, self._owned = run, True
        return run

    @property
    def stop_now(self) -> bool:
        """A bounded run reached its limit: the trainer should stop."""
        return self._bounded is not None and self.run is not None and self.run.limit_reached

    @property
    def proving(self) -> bool:
        """Bounded by ``trainperf doctor`` (proofs wanted), not by ``trainperf ab``."""
        from trainperf.doctor.child import DOCTOR_VARIABLE

        return self._bounded is not None and os.environ.get(DOCTOR_VARIABLE) == "1"

    def current_run(self) -> Run | None:
        """This callback's run, else the process's (an evaluation outside training)."""
        return self.run if self.run is not None else active_run()

    def finish_recording(self) -> None:
        if self.run is not None and self._bounded is not None:
            self.run.on_limit, self._bounded = self._bounded, None
        if self.run is not None and self._owned and self.run.summary is None:
            self.run.__exit__(None, None, None)
