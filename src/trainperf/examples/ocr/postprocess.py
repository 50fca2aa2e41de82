"""From a probability map to word polygons, as DB does it.

Binarise at ``BIN_THRESH``, take each connected contour, score it by the mean
probability inside, drop low scores and tiny boxes, then *unclip*: offset the shrunk
region outwards by ``D' = A * UNCLIP_RATIO / L`` (pyclipper) to undo the label
shrinking, and return the minimum-area rectangle of the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pyclipper

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["Detection", "PostprocessConfig", "detect_words"]


@dataclass(frozen=True, kw_only=True)
class PostprocessConfig:
    bin_thresh: float = 0.3
    box_thresh: float = 0.5
    unclip_ratio: float = 1.5
    min_size: float = 3.0
    max_candidates: int = 500


@dataclass(frozen=True)
class Detection:
    polygon: NDArray[np.float32]  # 4 x 2, (x, y)
    score: float


def detect_words(
    probability: NDArray[np.float32], config: PostprocessConfig | None = None
) -> list[Detection]:
    """``probability``: an H x W map in [0, 1] (one image)."""
    cfg = config or PostprocessConfig()
    bitmap = (probability > cfg.bin_thresh).astype(np.uint8)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    height, width = probability.shape
    found: list[Detection] = []
    for contour in contours[: cfg.max_candidates]:
        if len(contour) < 3:
            continue
        points = contour.reshape(-1, 2).astype(np.float32)
        score = _mean_inside(probability, points)
        if score < cfg.box_thresh:
            continue
        expanded = _unclip(points, cfg.unclip_ratio)
        if expanded is None:
            continue
        rect = cv2.minAreaRect(expanded)
        if min(rect[1]) < cfg.min_size + 2:
            continue
        box = _order(np.asarray(cv2.boxPoints(rect), dtype=np.float32))
        box[:, 0] = np.clip(box[:, 0], 0, width - 1)
        box[:, 1] = np.clip(box[:, 1], 0, height - 1)
        found.append(Detection(box.astype(np.float32), score))
    return found


def _mean_inside(probability: NDArray[np.float32], points: NDArray[np.float32]) -> float:
    x0, y0 = np.floor(points.min(axis=0)).astype(int)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int)
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(points - [x0, y0]).astype(np.int32).reshape(-1, 1, 2)], 1)
    return float(cv2.mean(probability[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def _unclip(points: NDArray[np.float32], ratio: float) -> NDArray[np.float32] | None:
    area = cv2.contourArea(points)
    perimeter = cv2.arcLength(points, closed=True)
    if perimeter == 0:
        return None
    offsetter = pyclipper.PyclipperOffset()
    offsetter.AddPath(
        [tuple(p) for p in np.round(points).astype(np.int64).tolist()],
        pyclipper.JT_ROUND,
        pyclipper.ET_CLOSEDPOLYGON,
    )
    result = offsetter.Execute(area * ratio / perimeter)
    if len(result) != 1:
        return None
    return np.asarray(result[0], dtype=np.float32)


def _order(box: NDArray[np.float32]) -> NDArray[np.float32]:
    """Corners clockwise from the top-left (smallest x + y)."""
    centre = box.mean(axis=0)
    angles = np.arctan2(box[:, 1] - centre[1], box[:, 0] - centre[0])
    ordered = box[np.argsort(angles)]
    start = int(np.argmin(ordered.sum(axis=1)))
    return np.roll(ordered, -start, axis=0)
