"""A tiny DBNet: a four-stage convolutional backbone, an FPN neck and the DB head.

The head predicts a probability map ``P`` and a threshold map ``T`` at full input
resolution; the differentiable binarisation is ``B = 1 / (1 + exp(-k (P - T)))``
with ``k = 50``, as in the paper. Input sides must be multiples of 32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["DBNet", "ModelConfig"]

# The paper's amplifying factor for the approximate step function.
BINARIZE_K = 50.0


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    widths: tuple[int, int, int, int] = (16, 32, 64, 96)
    neck: int = 48

    def __post_init__(self) -> None:
        if any(w < 1 for w in self.widths) or self.neck < 4:
            raise ValueError(f"channel widths must be positive, got {self.widths}/{self.neck}")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Backbone(nn.Module):
    """Features at 1/4, 1/8, 1/16 and 1/32 of the input."""

    def __init__(self, widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        stem = widths[0]
        self.stem = nn.Sequential(_conv(3, stem, 2), _conv(stem, stem, 2))
        self.stages = nn.ModuleList()
        cin = stem
        for i, cout in enumerate(widths):
            stride = 1 if i == 0 else 2
            self.stages.append(nn.Sequential(_conv(cin, cout, stride), _conv(cout, cout)))
            cin = cout

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class _FPN(nn.Module):
    """Top-down fusion, then every level upsampled to 1/4 and concatenated."""

    def __init__(self, widths: tuple[int, int, int, int], channels: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(w, channels, 1) for w in widths)
        self.smooth = nn.ModuleList(
            nn.Conv2d(channels, channels // 4, 3, padding=1) for _ in widths
        )

    def forward(self, features: list[Tensor]) -> Tensor:
        laterals = [conv(f) for conv, f in zip(self.lateral, features, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest"
            )
        size = laterals[0].shape[-2:]
        outs = [
            F.interpolate(smooth(lat), size=size, mode="nearest") if i else smooth(lat)
            for i, (smooth, lat) in enumerate(zip(self.smooth, laterals, strict=True))
        ]
        return torch.cat(outs, dim=1)


def _head(channels: int) -> nn.Sequential:
    """1/4 resolution in, one full-resolution map out (two transposed convolutions)."""
    mid = max(channels // 4, 4)
    return nn.Sequential(
        nn.Conv2d(channels, mid, 3, padding=1, bias=False),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(mid, mid, 2, stride=2),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(mid, 1, 2, stride=2),
        nn.Sigmoid(),
    )


class DBNet(nn.Module):
    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        cfg = config or ModelConfig()
        self.backbone = _Backbone(cfg.widths)
        self.neck = _FPN(cfg.widths, cfg.neck)
        fused = (cfg.neck // 4) * len(cfg.widths)
        self.probability = _head(fused)
        self.threshold = _head(fused)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """``images``: N x 3 x H x W in [0, 1]; returns maps of N x 1 x H x W."""
        fused = self.neck(self.backbone(images))
        probability = self.probability(fused)
        out = {"probability": probability}
        if self.training:
            threshold = self.threshold(fused)
            out["threshold"] = threshold
            out["binary"] = torch.sigmoid(BINARIZE_K * (probability - threshold))
        return out
