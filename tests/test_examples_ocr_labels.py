"""DB label maps on hand-made polygons, and reference vs fast border maps."""

from __future__ import annotations

import numpy as np
import pytest

from trainperf.examples.ocr.labels import (
    THRESH_MAX,
    THRESH_MIN,
    border_map_fast,
    border_map_reference,
    make_label_maps,
    offset_distance,
    shrink_polygon,
)
from trainperf.examples.ocr.synth import PageSpec, render_page

RECT = np.array([[20, 30], [120, 30], [120, 70], [20, 70]], dtype=np.float32)  # 100 x 40


def test_offset_distance_is_area_times_one_minus_r_squared_over_perimeter() -> None:
    # A = 4000, L = 280, r = 0.4: D = 4000 * 0.84 / 280 = 12
    assert offset_distance(RECT) == pytest.approx(12.0)


def test_shrunk_rectangle_loses_d_on_every_side() -> None:
    shrunk = shrink_polygon(RECT, 12.0)
    assert shrunk is not None
    xs, ys = shrunk[:, 0], shrunk[:, 1]
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (32, 108, 42, 58)


def test_shrink_map_fills_the_shrunk_polygon() -> None:
    maps = make_label_maps([RECT], 100, 160)
    assert maps.shrink[50, 70] == 1.0  # centre
    assert maps.shrink[35, 25] == 0.0  # inside the word, outside the shrunk core
    assert maps.shrink.sum() == pytest.approx(77 * 17, rel=0.02)  # 76 x 16 plus edge pixels
    assert maps.shrink_mask.min() == 1.0  # nothing ignored


@pytest.mark.parametrize("fast", [True, False])
def test_threshold_map_peaks_on_the_edges_and_fades_over_d(fast: bool) -> None:
    maps = make_label_maps([RECT], 100, 160, fast=fast)
    t = maps.threshold
    assert t[30, 70] == pytest.approx(THRESH_MAX)  # on the top edge
    assert t[50, 70] == pytest.approx(THRESH_MIN)  # 20 px from every edge: beyond D = 12
    assert t[36, 70] == pytest.approx(THRESH_MIN + 0.5 * (THRESH_MAX - THRESH_MIN), abs=1e-3)
    assert t[5, 5] == pytest.approx(THRESH_MIN)  # far outside
    # The band mask is the polygon dilated by D (rounded corners).
    assert maps.threshold_mask[30 - 11, 70] == 1.0
    assert maps.threshold_mask[30 - 14, 70] == 0.0
    assert maps.threshold_mask[50, 70] == 1.0


@pytest.mark.parametrize(
    "polygon",
    [
        np.array([[10, 10], [12, 10], [12, 40], [10, 40]], dtype=np.float32),  # 2 px wide
        np.array([[10, 10], [50, 10], [90, 10], [50, 10]], dtype=np.float32),  # no area
    ],
)
def test_tiny_or_degenerate_words_are_ignored_not_learned(polygon) -> None:
    maps = make_label_maps([RECT, polygon], 100, 160)
    assert maps.shrink_mask[int(polygon[:, 1].mean()), int(polygon[:, 0].mean())] == 0.0
    # ... and get no border band either: only the real word's band is there.
    alone = make_label_maps([RECT], 100, 160)
    assert np.array_equal(maps.threshold_mask, alone.threshold_mask)
    assert np.array_equal(maps.threshold, alone.threshold)
    assert maps.shrink_mask[50, 70] == 1.0  # the real word still counts
    assert maps.shrink[50, 70] == 1.0


def test_fast_border_map_matches_the_reference_on_real_pages() -> None:
    # Tolerance: the fast map measures distances to rasterised edges (pixel centres), so it
    # may differ by about one pixel of distance, i.e. (THRESH_MAX - THRESH_MIN) / D per pixel.
    spec = PageSpec(height=192, width=192)
    worst = []
    for seed in range(12):
        page = render_page(spec, seed)
        ref, ref_mask = border_map_reference(page.polygons, spec.height, spec.width)
        fast, fast_mask = border_map_fast(page.polygons, spec.height, spec.width)
        assert np.array_equal(ref_mask, fast_mask)
        diff = np.abs(ref - fast)
        assert diff.mean() < 0.01
        assert np.quantile(diff, 0.999) < 0.1
        worst.append(diff.max())
    assert max(worst) < 0.15


def test_no_polygons_gives_empty_maps() -> None:
    maps = make_label_maps([], 64, 64)
    assert maps.shrink.sum() == 0
    assert maps.threshold_mask.sum() == 0
    assert np.all(maps.threshold == np.float32(THRESH_MIN))
