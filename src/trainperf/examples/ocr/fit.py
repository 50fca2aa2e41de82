"""Build the DataModule, the module and the Trainer from a validated config, and train."""

from __future__ import annotations

from typing import TYPE_CHECKING

import lightning as L

import trainperf
from trainperf.examples.ocr.data import OCRDataModule
from trainperf.examples.ocr.lightning_module import DBModule

if TYPE_CHECKING:
    from trainperf.examples.ocr.config import OCRConfig
    from trainperf.examples.ocr.metrics import DetectionScore

__all__ = ["fit"]


class _MarkFirstStep(L.Callback):
    """``trainperf.mark("first_step")`` once the first optimizer step is done."""

    def __init__(self) -> None:
        self.done = False

    def on_train_batch_end(self, *args: object, **kwargs: object) -> None:
        if not self.done:
            self.done = True
            trainperf.mark("first_step")


def fit(config: OCRConfig) -> DetectionScore:
    """Train, validate once more at the end, and return the final detection score."""
    L.seed_everything(config.seed, workers=True, verbose=False)
    data = OCRDataModule(config.data)
    module = DBModule(config.model)
    t = config.trainer
    trainer = L.Trainer(
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        num_sanity_val_steps=t.num_sanity_val_steps,
        log_every_n_steps=t.log_every_n_steps,
        accelerator=t.accelerator,
        devices=t.devices,
        precision=t.precision,  # type: ignore[arg-type]  # checked by Lightning at run time
        enable_progress_bar=t.enable_progress_bar,
        enable_checkpointing=t.enable_checkpointing,
        logger=t.logger,
        deterministic=t.deterministic,
        enable_model_summary=False,
        callbacks=[_MarkFirstStep()],
    )
    trainer.fit(module, datamodule=data)
    trainer.validate(module, datamodule=data, verbose=False)
    return module.last_score
