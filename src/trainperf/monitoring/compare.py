"""Did step time change between two runs? Per-step samples, not two averages.

* effect: the ratio of median step times, NEW / BASE (above 1 is slower);
* uncertainty: a 95% bootstrap interval of that ratio (``RESAMPLES`` resamples of
  each run's steps, seeded, so the same inputs give the same answer);
* noise floor: the same ratio between the two halves of BASE (odd and even steps,
  so a drift over the run is not mistaken for noise) -- an A/A comparison;
* the smallest effect reported is ``max(MIN_EFFECT, 2 x noise floor)``.

Verdicts: ``insufficient-data`` (fewer than ``MIN_STEPS`` steady steps on a side),
``regression`` (slower by more than the smallest effect, and the interval excludes
no change), ``suspicious`` (slower by more than the smallest effect, but the interval
still includes no change: measure again with more steps), ``no-change`` otherwise --
which includes getting faster, and changes that are real but smaller than the
smallest effect (two runs of one command on one machine differ by a few percent);
the ratio says by how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    from numpy.typing import NDArray

    from trainperf._json import JsonObject
    from trainperf.monitoring.records import Period

__all__ = ["MIN_EFFECT", "MIN_STEPS", "Comparison", "compare_steps", "steady_steps"]

MIN_STEPS = 20
MIN_EFFECT = 0.05
RESAMPLES = 2000
# Longer runs are thinned to this many evenly spaced steps before resampling: the
# interval is as good, and memory stays bounded (RESAMPLES x steps floats).
MAX_STEPS = 5000
Verdict = Literal["regression", "suspicious", "no-change", "insufficient-data"]


@dataclass(frozen=True)
class Comparison:
    verdict: Verdict
    ratio: float | None
    interval: tuple[float, float] | None
    noise_floor: float | None
    threshold: float
    base_steps: int
    new_steps: int

    def to_json(self) -> JsonObject:
        return {
            "verdict": self.verdict,
            "ratio": self.ratio,
            "interval": list(self.interval) if self.interval else None,
            "noise_floor": self.noise_floor,
            "threshold": self.threshold,
            "base_steps": self.base_steps,
            "new_steps": self.new_steps,
            "min_steps": MIN_STEPS,
        }


def steady_steps(periods: Sequence[Period]) -> list[float]:
    """Training step times without each epoch's first step (worker start-up, warm-up)."""
    return [p.wall_s for p in periods if p.kind == "train" and not p.first_of_epoch]


def _thin(values: NDArray[np.float64]) -> NDArray[np.float64]:
    if values.size <= MAX_STEPS:
        return values
    import numpy as np

    picked: NDArray[np.float64] = values[np.linspace(0, values.size - 1, MAX_STEPS).astype(int)]
    return picked


def compare_steps(base: Sequence[float], new: Sequence[float], *, seed: int = 0) -> Comparison:
    import numpy as np

    if min(len(base), len(new)) < MIN_STEPS:
        return Comparison("insufficient-data", None, None, None, MIN_EFFECT, len(base), len(new))
    a = _thin(np.asarray(base, dtype=np.float64))
    b = _thin(np.asarray(new, dtype=np.float64))
    ratio = float(np.median(b) / np.median(a))
    rng = np.random.default_rng(seed)
    boot_a = np.median(rng.choice(a, size=(RESAMPLES, a.size)), axis=1)
    boot_b = np.median(rng.choice(b, size=(RESAMPLES, b.size)), axis=1)
    low, high = (float(v) for v in np.percentile(boot_b / boot_a, [2.5, 97.5]))
    noise = abs(float(np.median(a[1::2]) / np.median(a[::2])) - 1.0)
    threshold = max(MIN_EFFECT, 2 * noise)
    large = ratio > 1 + threshold
    significant = low > 1.0
    verdict: Verdict = "no-change"
    if large:
        verdict = "regression" if significant else "suspicious"
    return Comparison(verdict, ratio, (low, high), noise, threshold, len(base), len(new))
