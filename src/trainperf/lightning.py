"""Lightning integration: the ``PerfMonitor`` callback and ``CalibratedDataModule``.

    trainer = L.Trainer(callbacks=[PerfMonitor()])

It records the fit like ``trainperf.monitor()`` does (training steps from optimizer
steps, data wait from the DataLoader iterators) and tells the recorder where the
validation loops (the sanity check included) begin and end, so validation is
counted as such even over the training dataset. At the end of every training
epoch it logs ``perf/data_wait_share``, ``perf/samples_per_s`` and
``perf/validation_share`` to the Trainer's loggers. The verdict is in
``callback.summary`` after ``fit`` and in the run folder.

When the fit so far is input-bound, it confirms that at the end of training with
a probe (``probe=True``, the default): the last ``PROBE_BATCHES`` training batches,
kept in memory, are replayed through the module's ``training_step``, backward and
optimizer step, with monitoring suspended, logging silenced, and the weights,
optimizer state and random state restored afterwards. The input-bound gain in the
verdict is then measured, not estimated. Modules with manual optimisation or
several optimizers are not probed.

Under ``trainperf run`` (which adds this callback to every Trainer by itself) or
inside ``trainperf.monitor()``, it joins the run already recording the process
instead of starting one; that run's summary is written when it ends.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import lightning as L
import torch

from trainperf.integrations._run import Recording

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Iterator, Sequence

    from trainperf.calibration.api import Calibration
    from trainperf.exporters.spec import ExportTarget
    from trainperf.monitoring.session import Run

__all__ = ["PROBE_BATCHES", "CalibratedDataModule", "PerfMonitor"]

PROBE_BATCHES = 8
_log = logging.getLogger("trainperf")


class PerfMonitor(Recording, L.Callback):
    def __init__(
        self,
        *,
        out: str | os.PathLike[str] | None = None,
        probe: bool = True,
        export: Sequence[ExportTarget] = (),
    ) -> None:
        """``export``: specs (``"tensorboard:DIR"``, ...) or exporters for the run this
        callback starts (see :func:`trainperf.monitor`); checked here. A run already
        recording the process (``trainperf run --export``) keeps its own."""
        super().__init__()
        self.init_recording(out=out, export=export)
        self.probe = probe
        self._batches: collections.deque[Any] = collections.deque(maxlen=PROBE_BATCHES)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Under a bounded run (trainperf doctor) the fit stops itself at the limit,
        # through should_stop, and is proved at the end of training.
        self.begin_recording()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.probe:
            self._batches.append(batch)  # already on the module's device

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.stop_now:
            trainer.should_stop = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        batches, self._batches = list(self._batches), collections.deque(maxlen=PROBE_BATCHES)
        run = self.run
        if run is None:
            return
        steppable = pl_module.automatic_optimization and len(trainer.optimizers) == 1
        if batches and run.summarize().step.kind == "input-bound":
            if not steppable:
                _log.info("trainperf probe skipped: manual optimisation or several optimizers")
            else:
                try:
                    _replay(run, pl_module, trainer.optimizers[0], batches)
                except Exception as exc:  # a probe must never break the fit it watches
                    _log.warning("trainperf probe skipped: %s", exc)
        if self.proving:
            try:
                self._prove(run, trainer, pl_module if steppable else None)
            except Exception as exc:  # the doctor's proofs must never break the fit
                _log.warning("trainperf doctor's proofs skipped: %s", exc)

    def _prove(self, run: Run, trainer: L.Trainer, module: L.LightningModule | None) -> None:
        """``trainperf doctor``: its proofs, end to end through this module's step."""
        from trainperf.doctor.child import prove

        stopped = run.limit_reached  # the fit ended at the doctor's limit, not its own
        if module is None:
            prove(run, stopped=stopped)
            return
        optimizer = trainer.optimizers[0]

        def to_device(batch: object) -> object:
            return trainer.strategy.batch_to_device(batch)

        with _restored(module, optimizer):
            prove(run, train_step=_training_step(module, optimizer, to_device), stopped=stopped)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        run = self.current_run()
        if run is not None:
            run.begin_validation()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        run = self.current_run()
        if run is not None:
            run.end_validation()

    # A test loop is evaluation too: it is recorded as validation, never as training.
    on_test_start = on_validation_start
    on_test_end = on_validation_end

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.run is None:
            return
        so_far = self.run.summarize()
        metrics = {
            "perf/data_wait_share": so_far.shares["data_wait"],
            "perf/validation_share": so_far.shares["validation"],
        }
        if so_far.samples_per_s is not None:
            metrics["perf/samples_per_s"] = so_far.samples_per_s
        pl_module.log_dict(metrics, logger=trainer.logger is not None, prog_bar=False)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.finish_recording()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.finish_recording()


def _replay(
    run: Run, module: L.LightningModule, optimizer: torch.optim.Optimizer, batches: list[Any]
) -> None:
    """Replay cached batches through the real step; leave the module as it was."""
    cuda = module.device.type == "cuda"
    with _restored(module, optimizer):
        run.replay(
            _training_step(module, optimizer),
            batches,
            sync=torch.cuda.synchronize if cuda else None,
        )


def _training_step(
    module: L.LightningModule,
    optimizer: torch.optim.Optimizer,
    to_device: Callable[[object], object] | None = None,
) -> Callable[[object], None]:
    """The module's training step, backward and optimizer step, as one call per batch."""

    def step(batch: object) -> None:
        if to_device is not None:
            batch = to_device(batch)
        with torch.enable_grad():
            out = module.training_step(batch, 0)
        loss = out["loss"] if isinstance(out, dict) else out
        if isinstance(loss, torch.Tensor):
            loss.backward()  # type: ignore[no-untyped-call]  # unannotated in torch
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


@contextlib.contextmanager
def _restored(module: L.LightningModule, optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Steps taken inside leave no trace (:func:`trainperf.integrations._state.restored`),
    and the module's ``log`` calls go nowhere meanwhile."""
    from trainperf.integrations._state import restored

    module.log = module.log_dict = _silent  # type: ignore[method-assign]
    try:
        with restored(module, optimizer):
            yield
    finally:
        del module.log, module.log_dict  # the class's own methods again


def _silent(*args: object, **kwargs: object) -> None:
    """``self.log`` during the probe: its values are not the run's."""


class CalibratedDataModule(L.LightningDataModule):
    """A DataModule whose loaders come with measured settings (``trainperf.calibrate``).

        class Pages(CalibratedDataModule):
            def train_dataset(self): return PageDataset(...)
            def val_dataset(self): return PageDataset(...)

        trainer.fit(model, datamodule=Pages(batch_size=8, collate_fn=collate))

    At ``setup("fit")`` the training and validation datasets are calibrated (or a
    stored result reused); under DDP every rank calls it, rank 0 measures with its
    share of the node's CPUs, and the others take its choice. The results are in
    ``train_calibration`` / ``val_calibration``.
    """

    def __init__(
        self,
        *,
        batch_size: int,
        collate_fn: Callable[..., object] | None = None,
        calibrate: bool | None = None,
        force: bool | None = None,
        samples: int | None = None,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.collate_fn = collate_fn
        self._options: dict[str, Any] = {"calibrate": calibrate, "force": force, "samples": samples}
        self.train_calibration: Calibration | None = None
        self.val_calibration: Calibration | None = None
        self._train: object | None = None
        self._val: object | None = None

    def train_dataset(self) -> object:
        raise NotImplementedError("return the training dataset from train_dataset()")

    def val_dataset(self) -> object | None:
        return None

    def _calibrated(self, dataset: object) -> Calibration:
        from trainperf.calibration.api import calibrate

        return calibrate(
            dataset, batch_size=self.batch_size, collate_fn=self.collate_fn, **self._options
        )

    def setup(self, stage: str) -> None:
        if stage != "fit" or self._train is not None:
            return
        self._train = self.train_dataset()
        self.train_calibration = self._calibrated(self._train)
        self._val = self.val_dataset()
        if self._val is not None:
            self.val_calibration = self._calibrated(self._val)

    def _loader(self, dataset: object, calibration: Calibration, *, train: bool) -> Any:
        extra: dict[str, object] = {"shuffle": train, "drop_last": train}
        if self.collate_fn is not None:
            extra["collate_fn"] = self.collate_fn
        return calibration.loader(dataset, **extra)

    def train_dataloader(self) -> Any:
        if self._train is None or self.train_calibration is None:
            raise RuntimeError("train_dataloader() before setup('fit')")
        return self._loader(self._train, self.train_calibration, train=True)

    def val_dataloader(self) -> Any:
        if self._val is None or self.val_calibration is None:
            return []
        return self._loader(self._val, self.val_calibration, train=False)
