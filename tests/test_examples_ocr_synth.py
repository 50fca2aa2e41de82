from __future__ import annotations

import itertools

import numpy as np
import pytest
from shapely.geometry import Polygon

from trainperf.examples.ocr.synth import PageSpec, render_page


def test_same_seed_same_page() -> None:
    spec = PageSpec(height=128, width=160)
    a, b = render_page(spec, 11), render_page(spec, 11)
    assert np.array_equal(a.image, b.image)
    assert a.words == b.words
    assert all(np.array_equal(p, q) for p, q in zip(a.polygons, b.polygons, strict=True))


def test_different_seeds_differ() -> None:
    spec = PageSpec(height=128, width=128)
    assert not np.array_equal(render_page(spec, 1).image, render_page(spec, 2).image)


def test_words_lie_on_the_page_and_never_overlap() -> None:
    spec = PageSpec(height=192, width=192, min_words=6, max_words=10)
    for seed in range(10):
        page = render_page(spec, seed)
        assert page.image.shape == (192, 192, 3)
        assert page.image.dtype == np.uint8
        assert 1 <= len(page.polygons) == len(page.words) <= 10
        for polygon in page.polygons:
            assert polygon.shape == (4, 2)
            assert polygon.min() >= 0
            assert polygon[:, 0].max() < 192
            assert polygon[:, 1].max() < 192
        for p, q in itertools.combinations(page.polygons, 2):
            assert Polygon(p).intersection(Polygon(q)).area == 0


def test_text_is_drawn_inside_its_polygon() -> None:
    # Ink (dark pixels) inside each word's polygon, background outside all of them.
    import cv2

    spec = PageSpec(height=160, width=160, noise=0.0)
    page = render_page(spec, 5)
    gray = page.image.mean(axis=2)
    inside = np.zeros(gray.shape, dtype=np.uint8)
    for polygon in page.polygons:
        word = np.zeros(gray.shape, dtype=np.uint8)
        cv2.fillPoly(word, [np.round(polygon).astype(np.int32)], 1)
        assert gray[word == 1].min() < 120  # some ink in every word
        inside |= word
    grown = cv2.dilate(inside, np.ones((5, 5), np.uint8))
    assert gray[grown == 0].min() > 130  # no ink outside the words


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"height": 16}, "at least 32x32"),
        ({"min_words": 5, "max_words": 2}, "min_words <= max_words"),
        ({"min_font": 2}, "6 <= min_font"),
    ],
)
def test_spec_is_validated(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        PageSpec(**kwargs)
