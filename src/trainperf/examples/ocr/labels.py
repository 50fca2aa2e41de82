"""DB label maps: the shrink (probability) map and the threshold (border) map.

Both follow the DB paper. A word polygon of area ``A`` and perimeter ``L`` is offset
by ``D = A (1 - r^2) / L`` with ``r = 0.4``: inwards (Vatti clipping, pyclipper) for
the shrink map, outwards for the border band of the threshold map. In the band, the
threshold is ``1 - d / D`` for ``d`` the distance to the polygon's nearest edge,
rescaled to ``[THRESH_MIN, THRESH_MAX]``.

The border map has two implementations with the same output:

* :func:`border_map_reference` - per polygon, the distance from every pixel of the
  band's bounding box to every edge segment, as the DB authors' code computes it.
  This is the expensive "map synthesis" step of DBNet pipelines.
* :func:`border_map_fast` - the polygon's edges rasterised into the same window and
  one exact Euclidean distance transform (OpenCV, in C++) instead of a pass over
  the window per edge. It differs from the reference only by rasterising the edges
  to pixel centres: within about one pixel of distance, i.e. ``1 / D`` of the map's
  range (tests state the tolerance).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import pyclipper
from numpy.typing import NDArray

__all__ = [
    "SHRINK_RATIO",
    "THRESH_MAX",
    "THRESH_MIN",
    "LabelMaps",
    "border_map_fast",
    "border_map_reference",
    "make_label_maps",
    "offset_distance",
    "shrink_polygon",
]

SHRINK_RATIO = 0.4
THRESH_MIN = 0.3
THRESH_MAX = 0.7
# Words narrower or shorter than this (pixels) are ignored: too small to shrink.
MIN_TEXT_SIZE = 3

Polygon = NDArray[np.float32]


@dataclass(frozen=True)
class LabelMaps:
    """Float32 maps of one page, all ``H x W``."""

    shrink: NDArray[np.float32]  # 1 inside shrunk words
    shrink_mask: NDArray[np.float32]  # 0 over ignored (tiny or degenerate) words
    threshold: NDArray[np.float32]  # THRESH_MIN .. THRESH_MAX
    threshold_mask: NDArray[np.float32]  # 1 inside the dilated words (the border band)

    def as_dict(self) -> dict[str, NDArray[np.float32]]:
        return {
            "shrink": self.shrink,
            "shrink_mask": self.shrink_mask,
            "threshold": self.threshold,
            "threshold_mask": self.threshold_mask,
        }


def offset_distance(polygon: Polygon, ratio: float = SHRINK_RATIO) -> float:
    """``D = A (1 - r^2) / L``."""
    area = abs(_signed_area(polygon))
    perimeter = float(np.linalg.norm(np.roll(polygon, -1, axis=0) - polygon, axis=1).sum())
    return 0.0 if perimeter == 0 else area * (1 - ratio**2) / perimeter


def shrink_polygon(polygon: Polygon, distance: float) -> Polygon | None:
    """The polygon offset inwards by ``distance``; ``None`` if nothing is left."""
    return _offset(polygon, -distance)


def make_label_maps(
    polygons: tuple[Polygon, ...] | list[Polygon],
    height: int,
    width: int,
    *,
    fast: bool = True,
) -> LabelMaps:
    shrink = np.zeros((height, width), dtype=np.float32)
    shrink_mask = np.ones((height, width), dtype=np.float32)
    kept = []
    for polygon in polygons:
        size = polygon.max(axis=0) - polygon.min(axis=0)
        shrunk = None
        if min(size) >= MIN_TEXT_SIZE and abs(_signed_area(polygon)) >= 1:
            shrunk = shrink_polygon(polygon, offset_distance(polygon))
        if shrunk is None:
            # Ignored: neither taught as text nor as background, and no border band.
            cv2.fillPoly(shrink_mask, [_pixels(polygon)], 0.0)
        else:
            cv2.fillPoly(shrink, [_pixels(shrunk)], 1.0)
            kept.append(polygon)
    border = border_map_fast if fast else border_map_reference
    threshold, threshold_mask = border(kept, height, width)
    return LabelMaps(shrink, shrink_mask, threshold, threshold_mask)


def border_map_reference(
    polygons: tuple[Polygon, ...] | list[Polygon], height: int, width: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    return _border_map(polygons, height, width, _nearest_edge_reference)


def border_map_fast(
    polygons: tuple[Polygon, ...] | list[Polygon], height: int, width: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    return _border_map(polygons, height, width, _nearest_edge_fast)


NearestEdge = Callable[[Polygon, int, int, int, int], NDArray[np.float32]]


def _border_map(
    polygons: tuple[Polygon, ...] | list[Polygon], height: int, width: int, nearest: NearestEdge
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The band of each word, dilated by ``D``, filled with ``1 - d / D`` (max over words)."""
    canvas = np.zeros((height, width), dtype=np.float32)
    mask = np.zeros((height, width), dtype=np.float32)
    for polygon in polygons:
        distance = offset_distance(polygon)
        padded = _offset(polygon, distance)
        if distance <= 0 or padded is None:
            continue
        cv2.fillPoly(mask, [_pixels(padded)], 1.0)
        x0, y0 = (int(v) for v in np.floor(padded.min(axis=0)))
        x1, y1 = (int(v) for v in np.ceil(padded.max(axis=0)))
        closeness = 1.0 - np.clip(nearest(polygon, x0, y0, x1, y1) / distance, 0.0, 1.0)
        _fmax_into(canvas, closeness.astype(np.float32), x0, y0)
    return _rescale(canvas), mask


def _nearest_edge_reference(
    polygon: Polygon, x0: int, y0: int, x1: int, y1: int
) -> NDArray[np.float32]:
    """Distance of each pixel of the window to the nearest edge: one pass per edge."""
    ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1].astype(np.float32)
    nearest = np.full(xs.shape, np.inf, dtype=np.float32)
    for start, end in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        nearest = np.minimum(nearest, _segment_distance(xs, ys, start, end))
    return nearest


def _nearest_edge_fast(polygon: Polygon, x0: int, y0: int, x1: int, y1: int) -> NDArray[np.float32]:
    """The same from the edges drawn as zeros and one exact Euclidean distance transform."""
    edges = np.full((y1 - y0 + 1, x1 - x0 + 1), 255, dtype=np.uint8)
    shifted = (polygon - np.array([x0, y0], dtype=np.float32)).astype(np.float32)
    cv2.polylines(edges, [_pixels(shifted)], isClosed=True, color=0)
    found = cv2.distanceTransform(edges, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.asarray(found, dtype=np.float32)


def _fmax_into(canvas: NDArray[np.float32], window: NDArray[np.float32], x0: int, y0: int) -> None:
    """``canvas = max(canvas, window)`` where the window, placed at ``(x0, y0)``, overlaps."""
    height, width = canvas.shape
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x0 + window.shape[1], width), min(y0 + window.shape[0], height)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    region = canvas[cy0:cy1, cx0:cx1]
    np.fmax(region, window[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0], out=region)


def _rescale(closeness: NDArray[np.float32]) -> NDArray[np.float32]:
    return (closeness * (THRESH_MAX - THRESH_MIN) + THRESH_MIN).astype(np.float32)


def _segment_distance(
    xs: NDArray[np.float32], ys: NDArray[np.float32], start: Polygon, end: Polygon
) -> NDArray[np.float32]:
    """Distance from each pixel centre to the segment ``start``-``end``."""
    dx, dy = float(end[0] - start[0]), float(end[1] - start[1])
    length2 = dx * dx + dy * dy
    if length2 == 0:
        near_x, near_y = xs - start[0], ys - start[1]
    else:
        t = np.clip(((xs - start[0]) * dx + (ys - start[1]) * dy) / length2, 0.0, 1.0)
        near_x, near_y = xs - (start[0] + t * dx), ys - (start[1] + t * dy)
    out: NDArray[np.float32] = np.hypot(near_x, near_y).astype(np.float32)
    return out


def _offset(polygon: Polygon, distance: float) -> Polygon | None:
    offsetter = pyclipper.PyclipperOffset()
    offsetter.AddPath(
        [tuple(p) for p in np.round(polygon).astype(np.int64).tolist()],
        pyclipper.JT_ROUND,
        pyclipper.ET_CLOSEDPOLYGON,
    )
    result = offsetter.Execute(distance)
    if not result:
        return None
    biggest = max(result, key=lambda path: abs(_signed_area(np.asarray(path, dtype=np.float32))))
    out = np.asarray(biggest, dtype=np.float32)
    return out if len(out) >= 3 else None


def _signed_area(polygon: NDArray[np.float32]) -> float:
    x, y = polygon[:, 0].astype(np.float64), polygon[:, 1].astype(np.float64)
    return float(0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _pixels(polygon: Polygon) -> NDArray[np.int32]:
    return np.round(polygon).astype(np.int32).reshape(-1, 1, 2)
