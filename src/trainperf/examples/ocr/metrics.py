"""Detection quality by polygon IoU: precision, recall and their harmonic mean.

Predictions and ground-truth words are matched one-to-one, greedily by descending
IoU, when IoU >= ``IOU_THRESHOLD`` (0.5, as in the ICDAR protocols). Counts add up
over pages before the ratios are taken, so large pages weigh more, as in ICDAR.
There are no "don't care" regions: every synthetic word is legible, so even the few
too small to shrink for training (see ``labels.MIN_TEXT_SIZE``) count as expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from shapely.geometry import Polygon as ShapelyPolygon

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from numpy.typing import NDArray

__all__ = ["IOU_THRESHOLD", "DetectionScore", "match_page", "score_pages"]

IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class DetectionScore:
    matched: int
    predicted: int
    expected: int

    @property
    def precision(self) -> float:
        return self.matched / self.predicted if self.predicted else float(self.expected == 0)

    @property
    def recall(self) -> float:
        return self.matched / self.expected if self.expected else float(self.predicted == 0)

    @property
    def hmean(self) -> float:
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    def __add__(self, other: DetectionScore) -> DetectionScore:
        return DetectionScore(
            self.matched + other.matched,
            self.predicted + other.predicted,
            self.expected + other.expected,
        )


def _shape(points: NDArray[np.float32]) -> ShapelyPolygon:
    shape = ShapelyPolygon(points.astype(np.float64))
    return shape if shape.is_valid else shape.buffer(0)


def iou(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    pa, pb = _shape(a), _shape(b)
    union = pa.union(pb).area
    return 0.0 if union == 0 else float(pa.intersection(pb).area / union)


def match_page(
    predicted: Sequence[NDArray[np.float32]], expected: Sequence[NDArray[np.float32]]
) -> DetectionScore:
    pairs = sorted(
        ((iou(p, g), i, j) for i, p in enumerate(predicted) for j, g in enumerate(expected)),
        reverse=True,
    )
    used_p: set[int] = set()
    used_g: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < IOU_THRESHOLD:
            break
        if i not in used_p and j not in used_g:
            used_p.add(i)
            used_g.add(j)
    return DetectionScore(len(used_p), len(predicted), len(expected))


def score_pages(scores: Iterable[DetectionScore]) -> DetectionScore:
    total = DetectionScore(0, 0, 0)
    for score in scores:
        total = total + score
    return total
