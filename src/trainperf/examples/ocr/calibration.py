"""Calibration targets for the OCR example (``trainperf calibrate TARGET``).

``loader``: the training pages with the example's naive settings (reference label
maps built per sample), batch size 8: the input pipeline alone. ``end_to_end``: the
same with the model's real training step (forward, DB loss, backward, AdamW step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainperf.examples.ocr.data import PageBatch

__all__ = ["end_to_end", "loader"]


def loader() -> dict[str, object]:
    from trainperf.examples.ocr.config import DataConfig
    from trainperf.examples.ocr.data import OCRDataModule, _Collate

    config = DataConfig()
    data = OCRDataModule(config)
    return {
        "dataset": data.train_set,
        "collate_fn": _Collate(config.fast_maps),
        "batch_size": config.batch_size,
    }


def end_to_end() -> dict[str, object]:
    import torch

    from trainperf.examples.ocr.config import ModelSchema
    from trainperf.examples.ocr.lightning_module import DBModule
    from trainperf.examples.ocr.loss import db_loss

    target = loader()
    torch.manual_seed(0)
    module = DBModule(ModelSchema())
    optimizer = module.configure_optimizers()

    def step(batch: object) -> None:
        pages: PageBatch = batch  # type: ignore[assignment]  # this loader's batches
        optimizer.zero_grad(set_to_none=True)
        db_loss(module(pages.images), pages.maps)["loss"].backward()  # type: ignore[no-untyped-call]
        optimizer.step()

    target["train_step"] = step
    return target
