"""The Lightning trainer of the digits example."""

from __future__ import annotations

from typing import TYPE_CHECKING

import lightning as L
import torch
from torch.nn import functional as F

from trainperf.examples.digits.model import DigitsCNN

if TYPE_CHECKING:
    from trainperf.examples.digits.config import ModelSchema

__all__ = ["DigitsModule"]


class DigitsModule(L.LightningModule):
    def __init__(self, config: ModelSchema) -> None:
        super().__init__()
        self.config = config
        self.model = DigitsCNN(channels=config.channels, hidden=config.hidden)
        self._correct = 0
        self._seen = 0
        self.accuracy = 0.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(images)
        return logits

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        images, labels = batch
        loss = F.cross_entropy(self(images), labels)
        self.log("train/loss", loss, batch_size=len(labels))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._correct = self._seen = 0

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        self._correct += int((self(images).argmax(dim=1) == labels).sum())
        self._seen += len(labels)

    def on_validation_epoch_end(self) -> None:
        self.accuracy = self._correct / max(self._seen, 1)
        self.log("val/accuracy", self.accuracy, prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.config.lr)
