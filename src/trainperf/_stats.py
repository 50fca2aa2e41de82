"""Bootstrap intervals for the figures trainperf reports (numpy, imported when used).

Percentile bootstrap (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993,
ch. 13), seeded so that the same records always give the same interval; long series
are thinned to ``MAX_VALUES`` evenly spaced values first (the interval is as good and
memory stays bounded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["RESAMPLES", "format_speedup", "median_interval", "ratio_interval"]

RESAMPLES = 1000
MAX_VALUES = 2000


def _resampled_medians(values: Sequence[float], seed: int) -> object:
    import numpy as np

    data = np.asarray(values, dtype=float)
    if data.size > MAX_VALUES:
        data = data[np.linspace(0, data.size - 1, MAX_VALUES).astype(int)]
    rng = np.random.default_rng(seed)
    return np.median(rng.choice(data, size=(RESAMPLES, data.size)), axis=1)


def median_interval(values: Sequence[float], *, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` interval of the median of ``values`` (at least one value)."""
    import numpy as np

    if len(values) < 2:
        return float(values[0]), float(values[0])
    medians = _resampled_medians(values, 0)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])  # type: ignore[call-overload]  # an ndarray
    return float(low), float(high)


def ratio_interval(
    numerator: Sequence[float], denominator: Sequence[float], *, level: float = 0.95
) -> tuple[float, float, float]:
    """``median(numerator) / median(denominator)`` and its ``level`` interval, each side
    resampled on its own (two independent sets of measurements of one quantity, e.g.
    step times before and after a change: the ratio is the speedup)."""
    import statistics

    import numpy as np

    if not numerator or not denominator:
        raise ValueError("a ratio needs measurements on both sides")
    ratio = statistics.median(numerator) / statistics.median(denominator)
    top = np.asarray(_resampled_medians(numerator, 1))
    bottom = np.asarray(_resampled_medians(denominator, 2))
    ratios = top / np.maximum(bottom, 1e-12)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return ratio, float(low), float(high)


def format_speedup(factor: float, low: float | None = None, high: float | None = None) -> str:
    """``1.55`` -> ``"1.6x"``, with its interval ``"1.6x (1.5x-1.7x)"``; at least 100 is
    ``"> 100x"`` (beyond that the ratio says only that the other side was near free)."""

    def one(value: float) -> str:
        if value >= 100:
            return "> 100x"
        return (
            f"{value:.2f}x" if value < 1.1 else f"{value:.1f}x" if value < 10 else f"{value:.0f}x"
        )

    text = one(factor)
    if low is not None and high is not None and factor < 100:
        text += f" ({one(low)}-{one(high)})"
    return text
