"""Deterministic synthetic document pages: words in real fonts, with word polygons.

    >>> page = render_page(PageSpec(height=128, width=128), seed=7)
    >>> page.image.shape, len(page.polygons) > 0
    ((128, 128, 3), True)

The same ``(spec, seed)`` always gives the same pixels and polygons. Each word is
drawn at a random size, angle and position on a noisy, unevenly lit background;
words never overlap, so every polygon is a clean label.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from trainperf.examples._fonts import font_paths

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["Page", "PageSpec", "render_page"]

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# Placement attempts per word before giving up on it (the page is then simply sparser).
_MAX_TRIES = 30


@dataclass(frozen=True, kw_only=True)
class PageSpec:
    """How pages look. Sizes are pixels; ``max_angle`` is degrees either way."""

    height: int = 256
    width: int = 256
    min_words: int = 3
    max_words: int = 8
    min_font: int = 14
    max_font: int = 32
    max_angle: float = 20.0
    noise: float = 12.0

    def __post_init__(self) -> None:
        if self.height < 32 or self.width < 32:
            raise ValueError(f"pages must be at least 32x32 pixels, got {self.height}x{self.width}")
        if not 1 <= self.min_words <= self.max_words:
            raise ValueError(
                f"need 1 <= min_words <= max_words, got {self.min_words} and {self.max_words}"
            )
        if not 6 <= self.min_font <= self.max_font:
            raise ValueError(
                f"need 6 <= min_font <= max_font, got {self.min_font} and {self.max_font}"
            )


@dataclass(frozen=True)
class Page:
    image: NDArray[np.uint8]  # H x W x 3
    polygons: tuple[NDArray[np.float32], ...]  # each 4 x 2, (x, y), clockwise from top-left
    words: tuple[str, ...]


@functools.lru_cache(maxsize=256)
def _font(index: int, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_paths()[index]), size)


def render_page(spec: PageSpec, seed: int) -> Page:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(_background(spec, rng))
    taken = np.zeros((spec.height, spec.width), dtype=bool)
    polygons: list[NDArray[np.float32]] = []
    words: list[str] = []
    for _ in range(int(rng.integers(spec.min_words, spec.max_words + 1))):
        placed = _place_word(image, taken, spec, rng)
        if placed is not None:
            polygons.append(placed[0])
            words.append(placed[1])
    return Page(np.asarray(image, dtype=np.uint8), tuple(polygons), tuple(words))


def _background(spec: PageSpec, rng: np.random.Generator) -> NDArray[np.uint8]:
    base = rng.uniform(180, 250)
    ys, xs = np.mgrid[0 : spec.height, 0 : spec.width].astype(np.float32)
    gx, gy = rng.uniform(-0.15, 0.15, size=2)
    light = base + gx * (xs - spec.width / 2) + gy * (ys - spec.height / 2)
    tint = rng.uniform(-10, 10, size=3)
    noise = rng.normal(0.0, spec.noise, size=(spec.height, spec.width, 3))
    page = light[..., None] + tint + noise
    out: NDArray[np.uint8] = np.clip(page, 0, 255).astype(np.uint8)
    return out


def _place_word(
    image: Image.Image,
    taken: NDArray[np.bool_],
    spec: PageSpec,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float32], str] | None:
    word = "".join(rng.choice(list(_LETTERS), size=int(rng.integers(2, 9))))
    size = int(rng.integers(spec.min_font, spec.max_font + 1))
    font = _font(int(rng.integers(len(font_paths()))), size)
    left, top, right, bottom = (int(v) for v in font.getbbox(word))
    w, h = right - left, bottom - top
    if w < 4 or h < 4:
        return None
    angle = float(rng.uniform(-spec.max_angle, spec.max_angle))
    # The word's box around its own centre, rotated (image y points down, so a
    # positive angle turns the word counter-clockwise as PIL's rotate does).
    theta = math.radians(angle)
    cos, sin = math.cos(theta), math.sin(theta)
    corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    rotated = corners @ np.array([[cos, -sin], [sin, cos]])
    span = rotated.max(axis=0) - rotated.min(axis=0)
    if span[0] + 4 >= spec.width or span[1] + 4 >= spec.height:
        return None  # the word does not fit on the page at this size
    for _ in range(_MAX_TRIES):
        cx = float(rng.uniform(span[0] / 2 + 2, spec.width - span[0] / 2 - 2))
        cy = float(rng.uniform(span[1] / 2 + 2, spec.height - span[1] / 2 - 2))
        # PIL's pixel i covers [i, i+1); OpenCV, which rasterises the labels, puts pixel
        # centres on integers: shift by half a pixel so labels sit on the ink.
        quad = (rotated + np.array([cx - 0.5, cy - 0.5])).astype(np.float32)
        x0, y0 = np.floor(quad.min(axis=0)).astype(int) - 2
        x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 2
        x0, y0 = max(x0, 0), max(y0, 0)
        if taken[y0:y1, x0:x1].any():
            continue
        taken[y0:y1, x0:x1] = True
        _draw(image, word, font, (left, top, w, h), angle, (cx, cy), rng)
        return quad, word
    return None


def _draw(
    image: Image.Image,
    word: str,
    font: ImageFont.FreeTypeFont,
    box: tuple[int, int, int, int],
    angle: float,
    centre: tuple[float, float],
    rng: np.random.Generator,
) -> None:
    left, top, w, h = box
    layer = Image.new("L", (w, h), 0)
    ImageDraw.Draw(layer).text((-left, -top), word, font=font, fill=255)
    turned = layer.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    ink = tuple(int(v) for v in rng.integers(0, 90, size=3))
    solid = Image.new("RGB", turned.size, ink)
    corner = (round(centre[0] - turned.width / 2), round(centre[1] - turned.height / 2))
    image.paste(solid, corner, turned)
