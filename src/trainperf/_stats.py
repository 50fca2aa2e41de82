"""The median's bootstrap interval, and how a speed-up is written (numpy, imported when
used; a speed-up's own interval is :func:`trainperf.calibration.speedup.speedup_interval`).

Percentile bootstrap (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993,
ch. 13), seeded so that the same records always give the same interval; long series
are thinned to ``MAX_VALUES`` evenly spaced values first (the interval is as good and
memory stays bounded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["RESAMPLES", "format_speedup", "median_interval"]

RESAMPLES = 1000
MAX_VALUES = 2000


def median_interval(values: Sequence[float], *, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` interval of the median of ``values`` (at least one value)."""
    import numpy as np

    if len(values) < 2:
        return float(values[0]), float(values[0])
    data = np.asarray(values, dtype=float)
    if data.size > MAX_VALUES:
        data = data[np.linspace(0, data.size - 1, MAX_VALUES).astype(int)]
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(data, size=(RESAMPLES, data.size)), axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return float(low), float(high)


def format_speedup(factor: float, low: float | None = None, high: float | None = None) -> str:
    """``1.55`` -> ``"1.6x"``, with its interval ``"1.6x (1.5x-1.7x)"``; at least 100 is
    ``"> 100x"`` (beyond that the ratio says only that the other side was near free),
    and an interval reaching it ``"93x (44x to > 100x)"``."""

    def one(value: float) -> str:
        if value >= 100:
            return "> 100x"
        return (
            f"{value:.2f}x" if value < 1.1 else f"{value:.1f}x" if value < 10 else f"{value:.0f}x"
        )

    text = one(factor)
    if low is not None and high is not None and factor < 100:
        joined = " to " if high >= 100 else "-"  # "(44x to > 100x)", not "(44x-> 100x)"
        text += f" ({one(low)}{joined}{one(high)})"
    return text
