"""DB loss: ``L = L_s + alpha * L_b + beta * L_t`` (alpha = 1, beta = 10).

``L_s``: binary cross-entropy on the probability map with online hard negative
mining (all positives, and the hardest negatives up to 3 per positive).
``L_b``: dice loss on the approximate binary map. ``L_t``: L1 on the threshold map
inside the border band.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["db_loss"]

ALPHA = 1.0
BETA = 10.0
NEGATIVE_RATIO = 3
_EPS = 1e-6


def db_loss(predictions: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, Tensor]:
    """Targets are N x H x W maps named as in :class:`~.labels.LabelMaps`."""
    shrink = targets["shrink"]
    shrink_mask = targets["shrink_mask"]
    probability = predictions["probability"][:, 0]
    losses = {"shrink": _balanced_bce(probability, shrink, shrink_mask)}
    total = losses["shrink"]
    if "binary" in predictions:
        losses["binary"] = _dice(predictions["binary"][:, 0], shrink, shrink_mask)
        losses["threshold"] = _masked_l1(
            predictions["threshold"][:, 0], targets["threshold"], targets["threshold_mask"]
        )
        total = total + ALPHA * losses["binary"] + BETA * losses["threshold"]
    losses["loss"] = total
    return losses


def _balanced_bce(pred: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    positive = gt * mask
    negative = (1 - gt) * mask
    n_pos = int(positive.sum().item())
    n_neg = min(int(negative.sum().item()), max(n_pos, 1) * NEGATIVE_RATIO)
    # binary_cross_entropy refuses to run under CUDA autocast: compute it in float32.
    with torch.autocast(pred.device.type, enabled=False):
        loss = F.binary_cross_entropy(
            pred.float().clamp(_EPS, 1 - _EPS), gt.float(), reduction="none"
        )
    pos_loss = (loss * positive).sum()
    neg_loss, _ = torch.topk((loss * negative).flatten(), n_neg)
    return (pos_loss + neg_loss.sum()) / (n_pos + n_neg + _EPS)


def _dice(pred: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    intersection = (pred * gt * mask).sum()
    union = (pred * mask).sum() + (gt * mask).sum() + _EPS
    return 1 - 2.0 * intersection / union


def _masked_l1(pred: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    return (torch.abs(pred - gt) * mask).sum() / (mask.sum() + _EPS)
