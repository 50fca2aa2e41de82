"""``PerfMonitor``: the monitor as a Lightning callback.

    trainer = L.Trainer(callbacks=[PerfMonitor()])

It records the fit like ``trainperf.monitor()`` does (training steps from optimizer
steps, data wait from the DataLoader iterators) and tells the recorder where the
validation loops (the sanity check included) begin and end, so validation is
counted as such even over the training dataset. At the end of every training
epoch it logs ``perf/data_wait_share``, ``perf/samples_per_s`` and
``perf/validation_share`` to the Trainer's loggers. The verdict is in
``callback.summary`` after ``fit`` and in the run folder.

Under ``trainperf run`` (which adds this callback to every Trainer by itself) or
inside ``trainperf.monitor()``, it joins the run already recording the process
instead of starting one; that run's summary is written when it ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lightning as L

from trainperf.monitoring.analyze import RunSummary, summarize
from trainperf.monitoring.session import Run, active_run, monitor

if TYPE_CHECKING:
    import os
    from pathlib import Path

__all__ = ["PerfMonitor"]


class PerfMonitor(L.Callback):
    def __init__(self, *, out: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.out = out
        self.run: Run | None = None
        self._owned = False  # started by this callback, so finished by it

    @property
    def summary(self) -> RunSummary | None:
        return None if self.run is None else self.run.summary

    @property
    def path(self) -> Path | None:
        return None if self.run is None else self.run.path

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        joined = active_run()
        if joined is not None:
            self.run, self._owned = joined, False
            return
        run = monitor(out=self.out)
        run.__enter__()  # may refuse the folder: then there is no run to finish
        self.run, self._owned = run, True

    def _current(self) -> Run | None:
        # trainer.validate()/test() without fit: the process's run, if one is recording.
        return self.run if self.run is not None else active_run()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        run = self._current()
        if run is not None:
            run.begin_validation()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        run = self._current()
        if run is not None:
            run.end_validation()

    # A test loop is evaluation too: it is recorded as validation, never as training.
    on_test_start = on_validation_start
    on_test_end = on_validation_end

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.run is None:
            return
        so_far = summarize(self.run.periods)
        metrics = {
            "perf/data_wait_share": so_far.shares["data_wait"],
            "perf/validation_share": so_far.shares["validation"],
        }
        if so_far.samples_per_s is not None:
            metrics["perf/samples_per_s"] = so_far.samples_per_s
        pl_module.log_dict(metrics, logger=trainer.logger is not None, prog_bar=False)

    def _finish(self) -> None:
        if self.run is not None and self._owned and self.run.summary is None:
            self.run.__exit__(None, None, None)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._finish()
