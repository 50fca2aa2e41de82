"""A speed-up and its bootstrap interval, from repeated throughput measurements.

``speedup_interval(before, after, paired=...)`` gives the ratio of medians (after
over before) and a percentile bootstrap interval of it, seeded: the same
measurements always give the same interval, so a record re-rendered later says
what it said when it was measured.

* Paired: the i-th measurements of the two sides were taken together (one round of
  an interleaved comparison) and are resampled together, so a slow spell that hits
  both sides of a round cancels out of the ratio.
* Unpaired: each side is resampled on its own (the timed chunks of two separate
  runs). The interval then knows the noise within each run, not the drift between
  the runs: an interleaved comparison is the one to quote for a claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainperf.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["CONFIDENCE", "RESAMPLES", "Speedup", "speedup_interval"]

CONFIDENCE = 0.95
RESAMPLES = 4000


@dataclass(frozen=True)
class Speedup:
    """``value`` (after / before, 1.0 = no change) within ``[low, high]``."""

    value: float
    low: float
    high: float
    confidence: float = CONFIDENCE

    def describe(self) -> str:
        return (
            f"{self.value:.2f}x ({self.confidence:.0%} interval {self.low:.2f}x-{self.high:.2f}x)"
        )


def speedup_interval(
    before: Sequence[float],
    after: Sequence[float],
    *,
    paired: bool,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
    throughput: bool = False,
) -> Speedup:
    """median(after) / median(before), with a bootstrap interval (rates, e.g. samples/s).

    ``throughput``: the rates are of equal amounts of work (chunks of as many samples),
    and the ratio is of their harmonic means -- total work over total time -- instead of
    medians. A loader with many workers delivers its prefetched batches in bursts: a
    few chunks arrive almost at once, and the median of the chunks' rates overstates
    what it sustains, while the harmonic mean weighs each chunk by the time it took.

    The interval always contains the estimate (with a handful of values the bootstrap
    percentiles of a median can miss it by a hair). Raises ``UsageError`` for fewer
    than 2 values a side, a value that is not a finite positive rate, sides of
    different lengths when ``paired``, or ``confidence`` outside (0, 1).

    >>> speedup_interval([10.0, 10.0], [20.0, 20.0], paired=True).describe()
    '2.00x (95% interval 2.00x-2.00x)'
    """
    for name, values in (("before", before), ("after", after)):
        if len(values) < 2:
            raise UsageError(
                f"{name} needs at least 2 measurements for an interval, got {len(values)}"
            )
        bad = [v for v in values if not (isinstance(v, int | float) and math.isfinite(v) and v > 0)]
        if bad:
            raise UsageError(f"{name} rates must be finite and > 0, got {bad[0]!r}")
    if paired and len(before) != len(after):
        raise UsageError(
            f"paired measurements need as many before as after, got {len(before)} and "
            f"{len(after)}; pass paired=False for separate runs"
        )
    if not 0 < confidence < 1:
        raise UsageError(f"confidence must be between 0 and 1, got {confidence!r}")
    if resamples < 100:
        raise UsageError(f"resamples must be >= 100, got {resamples!r}")
    import numpy as np

    old = np.asarray(before, dtype=float)
    new = np.asarray(after, dtype=float)
    rng = np.random.default_rng(seed)
    picks_old = rng.integers(0, old.size, size=(resamples, old.size))
    picks_new = picks_old if paired else rng.integers(0, new.size, size=(resamples, new.size))

    def centre(values: np.ndarray, axis: int | None = None) -> Any:
        if throughput:
            count = values.shape[-1] if axis is not None else values.size
            return count / np.sum(1.0 / values, axis=axis)
        return np.median(values, axis=axis)

    ratios = centre(new[picks_new], axis=1) / centre(old[picks_old], axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = (float(q) for q in np.percentile(ratios, [tail, 100 - tail]))
    value = float(centre(new) / centre(old))
    return Speedup(value, min(low, value), max(high, value), confidence)
