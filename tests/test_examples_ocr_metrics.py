"""Post-processing and IoU matching: perfect predictions score 1, known cases known values."""

from __future__ import annotations

import numpy as np
import pytest

from trainperf.examples.ocr.labels import make_label_maps
from trainperf.examples.ocr.metrics import DetectionScore, iou, match_page, score_pages
from trainperf.examples.ocr.postprocess import detect_words
from trainperf.examples.ocr.synth import PageSpec, render_page


def square(x: float, y: float, side: float) -> np.ndarray:
    return np.array([[x, y], [x + side, y], [x + side, y + side], [x, y + side]], np.float32)


def test_iou_of_known_squares() -> None:
    assert iou(square(0, 0, 10), square(0, 0, 10)) == 1.0
    assert iou(square(0, 0, 10), square(5, 0, 10)) == pytest.approx(50 / 150)
    assert iou(square(0, 0, 10), square(20, 20, 10)) == 0.0


def test_known_partial_match() -> None:
    expected = [square(0, 0, 10), square(20, 0, 10), square(40, 0, 10)]
    predicted = [
        square(0, 0, 10),  # exact
        square(21, 0, 10),  # IoU 90/110 = 0.82: a match
        square(45, 0, 10),  # IoU 50/150 = 0.33: a miss
        square(80, 80, 10),  # nothing there
    ]
    score = match_page(predicted, expected)
    assert score == DetectionScore(matched=2, predicted=4, expected=3)
    assert score.precision == pytest.approx(0.5)
    assert score.recall == pytest.approx(2 / 3)
    assert score.hmean == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_matching_is_one_to_one() -> None:
    expected = [square(0, 0, 10)]
    predicted = [square(0, 0, 10), square(0.5, 0, 10)]
    assert match_page(predicted, expected).matched == 1


def test_empty_pages() -> None:
    assert match_page([], []).hmean == 1.0
    assert match_page([], [square(0, 0, 5)]).hmean == 0.0
    assert match_page([square(0, 0, 5)], []).precision == 0.0


def test_scores_add_up_over_pages() -> None:
    total = score_pages([DetectionScore(1, 2, 3), DetectionScore(4, 5, 6)])
    assert total == DetectionScore(5, 7, 9)


def test_perfect_probability_maps_give_hmean_one() -> None:
    # The ground-truth shrink map is a perfect prediction: unclip must undo the shrink.
    spec = PageSpec(height=256, width=256)
    scores = []
    for seed in range(8):
        page = render_page(spec, seed)
        maps = make_label_maps(page.polygons, spec.height, spec.width)
        found = [d.polygon for d in detect_words(maps.shrink)]
        scores.append(match_page(found, page.polygons))
    total = score_pages(scores)
    assert total.expected > 20
    assert total.hmean == 1.0


def test_a_blank_map_finds_nothing() -> None:
    assert detect_words(np.zeros((64, 64), np.float32)) == []
    assert detect_words(np.full((64, 64), 0.2, np.float32)) == []
