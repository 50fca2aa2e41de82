"""``PerfMonitor``: the monitor as a Lightning callback.

    trainer = L.Trainer(callbacks=[PerfMonitor()])

It records the fit like ``trainperf.monitor()`` does (training steps from optimizer
steps, data wait from the DataLoader iterators, validation from its loaders) and,
at the end of every training epoch, logs ``perf/data_wait_share``,
``perf/samples_per_s`` and ``perf/validation_share`` to the Trainer's loggers.
The verdict is in ``callback.summary`` after ``fit`` and in the run folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lightning as L

from trainperf.monitoring.analyze import RunSummary, summarize
from trainperf.monitoring.session import Run, monitor

if TYPE_CHECKING:
    import os
    from pathlib import Path

__all__ = ["PerfMonitor"]


class PerfMonitor(L.Callback):
    def __init__(self, *, out: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.out = out
        self.run: Run | None = None

    @property
    def summary(self) -> RunSummary | None:
        return None if self.run is None else self.run.summary

    @property
    def path(self) -> Path | None:
        return None if self.run is None else self.run.path

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        run = monitor(out=self.out)
        run.__enter__()  # may refuse the folder: then there is no run to finish
        self.run = run

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
        if self.run is not None and self.run.summary is None:
            self.run.__exit__(None, None, None)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._finish()
