"""A small CNN for 8x8 digits."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["DigitsCNN"]


class DigitsCNN(nn.Module):
    def __init__(self, *, channels: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * channels * 16, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 10),
        )

    def forward(self, images: Tensor) -> Tensor:
        """``images``: N x 1 x 8 x 8 in [0, 1]; returns N x 10 logits."""
        logits: Tensor = self.classifier(self.features(images))
        return logits
