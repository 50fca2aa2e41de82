"""The Lightning module: DB loss in training, loss and hmean in validation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import lightning as L
import numpy as np
import torch

from trainperf.examples.ocr.loss import db_loss
from trainperf.examples.ocr.metrics import DetectionScore, match_page
from trainperf.examples.ocr.model import DBNet, ModelConfig
from trainperf.examples.ocr.postprocess import detect_words

if TYPE_CHECKING:
    from trainperf.examples.ocr.config import ModelSchema
    from trainperf.examples.ocr.data import PageBatch

__all__ = ["DBModule"]


class DBModule(L.LightningModule):
    def __init__(self, config: ModelSchema) -> None:
        super().__init__()
        self.config = config
        widths = tuple(config.widths)
        if len(widths) != 4:
            raise ValueError(f"model.widths must list 4 widths, got {config.widths}")
        self.model = DBNet(
            ModelConfig(widths=(widths[0], widths[1], widths[2], widths[3]), neck=config.neck)
        )
        self._score = DetectionScore(0, 0, 0)
        self.last_score = DetectionScore(0, 0, 0)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = self.model(images)
        return out

    def training_step(self, batch: PageBatch, batch_idx: int) -> torch.Tensor:
        losses = db_loss(self(batch.images), batch.maps)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, batch_size=len(batch.images))
        return losses["loss"]

    def on_validation_epoch_start(self) -> None:
        self._score = DetectionScore(0, 0, 0)

    def validation_step(self, batch: PageBatch, batch_idx: int) -> None:
        out = self(batch.images)
        losses = db_loss(out, batch.maps)
        # In eval mode the model predicts only the probability map, so this is the
        # shrink-map term of the loss, not the full training loss.
        self.log("val/loss_shrink", losses["shrink"], batch_size=len(batch.images))
        probability = out["probability"][:, 0].detach().cpu().numpy().astype(np.float32)
        for page_map, expected in zip(probability, batch.polygons, strict=True):
            found = [d.polygon for d in detect_words(page_map)]
            self._score = self._score + match_page(found, expected)

    def on_validation_epoch_end(self) -> None:
        score = self._score
        self.last_score = score
        self.log_dict({"val/precision": score.precision, "val/recall": score.recall})
        self.log("val/hmean", score.hmean, prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay
        )
