"""Is B really faster than A? Interleaved segments of two commands, compared in pairs.

``trainperf ab`` runs A and B in short bounded segments, one of each per round, so
that a machine getting busier or quieter over the minutes affects both sides alike.
Everything here is a pure function of the segments' step times (seconds):

* steady steps: a segment's first ``steps`` training steps, less the first
  ``WARMUP_STEPS`` (start-up, caches filling) and each epoch's first step (worker
  start-up), as :func:`trainperf.monitoring.compare.steady_steps` leaves out;
* what is timed: seconds per sample of the whole job (rank 0's step time over the
  samples every rank trained in that step, :func:`job_samples`), so that a side with
  another batch size or another number of ranks is compared by its throughput; the
  step time itself where either side's samples are not known (``unit``);
* effect: the ratio of B's median time to A's, per round, and over the rounds their
  geometric mean (below 1: B is faster);
* uncertainty: a 95% bootstrap interval of that ratio that keeps the pairing: each
  resample draws rounds with replacement, then each drawn round's steps (``RESAMPLES``
  resamples, seeded, so the same inputs give the same answer). The spread between
  rounds, the part a noisy machine adds, is in the interval, not only the spread of
  steps within a segment;
* noise floor: A/A comparisons, as ``compare`` makes: a side's segments in odd
  rounds against its segments in even rounds, the larger of the two sides;
* the smallest effect "no difference" can claim is ``max(MIN_EFFECT, 2 x noise floor)``.

Verdicts: ``faster`` (the interval lies entirely below ``1 - MIN_EFFECT``), ``slower``
(entirely above ``1 + MIN_EFFECT``) -- the interval holds the rounds' spread already,
so a noisy machine widens it rather than moving the bar -- and ``no-difference``
otherwise, with the reason: ``within-effect`` (the interval lies within the smallest
effect either way: any difference is smaller than that), ``too-wide`` (it reaches past
it, or the
smallest effect itself is over ``MAX_EFFECT``: more rounds, or a quieter machine,
would tell), ``too-little-data`` (fewer than ``MIN_ROUNDS`` usable rounds or
``MIN_STEPS`` steady steps a side; a round is usable when both its segments have
``MIN_SEGMENT_STEPS`` steady steps).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from trainperf.monitoring.compare import MIN_EFFECT, MIN_STEPS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trainperf._json import JsonObject
    from trainperf.monitoring.records import Period

__all__ = [
    "MAX_EFFECT",
    "MIN_EFFECT",
    "MIN_ROUNDS",
    "MIN_SEGMENT_STEPS",
    "MIN_STEPS",
    "WARMUP_STEPS",
    "AbResult",
    "RoundStat",
    "Unit",
    "compare_rounds",
    "job_samples",
    "segment_steps",
]

WARMUP_STEPS = 5
MIN_ROUNDS = 2
MIN_SEGMENT_STEPS = 3
RESAMPLES = 2000
# "No difference" is an answer only while the smallest effect reported is at most this:
# past it, the machine's own A/A noise hides any difference worth knowing about.
MAX_EFFECT = 0.25
Verdict = Literal["faster", "slower", "no-difference"]
Reason = Literal["interval", "within-effect", "too-wide", "too-little-data"]
Unit = Literal["sample", "step"]  # what the compared seconds are per


def segment_steps(
    periods: Sequence[Period], *, steps: int, warmup: int = WARMUP_STEPS
) -> list[float]:
    """Steady step times (seconds) of one segment: its first ``steps`` training steps
    without the first ``warmup`` of them and without each epoch's first step: 25 values
    for ``steps=30``, fewer when an epoch starts inside the segment or it ends early.
    """
    train = [p for p in periods if p.kind == "train"][:steps]
    return [p.wall_s for p in train[warmup:] if not p.first_of_epoch]


def job_samples(
    ranks: Sequence[Sequence[Period]], *, steps: int, warmup: int = WARMUP_STEPS
) -> list[int] | None:
    """The samples the whole job trained in each of the steps :func:`segment_steps`
    keeps of ``ranks[0]``: the sum over ranks of their training step of the same index
    (every rank stops at the same step, :mod:`trainperf.monitoring.agreement`). None
    when a rank did not record that step or its samples (a batch of unknown size).

    >>> step = lambda i, n: Period("train", i, 0, float(i), 0.1, 0.0, n)
    >>> job_samples([[step(i, 8) for i in range(4)], [step(i, 8) for i in range(4)]],
    ...             steps=4, warmup=2)
    [16, 16]
    """
    trains = [[p for p in periods if p.kind == "train"][:steps] for periods in ranks]
    if not trains:
        return None
    totals: list[int] = []
    for index, period in enumerate(trains[0]):
        if index < warmup or period.first_of_epoch:
            continue
        counts = [t[index].samples if index < len(t) else None for t in trains]
        if any(n is None or n <= 0 for n in counts):
            return None
        totals.append(sum(n for n in counts if n is not None))
    return totals


@dataclass(frozen=True)
class RoundStat:
    """One round: the median steady time (seconds per step, or per sample of the job)
    of A's and B's segment."""

    a_median_s: float | None
    b_median_s: float | None
    a_steps: int
    b_steps: int

    @property
    def usable(self) -> bool:
        return (
            min(self.a_steps, self.b_steps) >= MIN_SEGMENT_STEPS
            and (self.a_median_s or 0.0) > 0
            and (self.b_median_s or 0.0) > 0
        )

    @property
    def ratio(self) -> float | None:
        """B's median over A's; ``None`` when the round is not usable."""
        if not self.usable or self.a_median_s is None or self.b_median_s is None:
            return None
        return self.b_median_s / self.a_median_s

    def to_json(self) -> JsonObject:
        return {
            "a_median_s": self.a_median_s,
            "b_median_s": self.b_median_s,
            "a_steady_steps": self.a_steps,
            "b_steady_steps": self.b_steps,
            "ratio": self.ratio,
        }


@dataclass(frozen=True)
class AbResult:
    """The verdict; ``ratio`` and ``interval`` are B's time over A's, per ``unit``
    (a sample of the job: B's throughput is A's over ``ratio``; or a step)."""

    verdict: Verdict
    reason: Reason
    ratio: float | None
    interval: tuple[float, float] | None
    noise_floor: float | None
    threshold: float
    rounds: tuple[RoundStat, ...]
    unit: Unit = "step"

    @property
    def inconclusive(self) -> bool:
        """The data could not tell: too little of it, or an interval too wide."""
        return self.reason in ("too-wide", "too-little-data")

    @property
    def used(self) -> tuple[RoundStat, ...]:
        return tuple(r for r in self.rounds if r.usable)

    def to_json(self) -> JsonObject:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "unit": self.unit,
            "inconclusive": self.inconclusive,
            "ratio": self.ratio,
            "interval": list(self.interval) if self.interval else None,
            "noise_floor": self.noise_floor,
            "threshold": self.threshold,
            "min_rounds": MIN_ROUNDS,
            "min_steps": MIN_STEPS,
            "used_rounds": len(self.used),
            "a_steady_steps": sum(r.a_steps for r in self.used),
            "b_steady_steps": sum(r.b_steps for r in self.used),
        }


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _aa_noise(medians: Sequence[float]) -> float:
    """One side's segments in odd rounds against those in even rounds (A/A)."""
    return abs(_geometric_mean(medians[1::2]) / _geometric_mean(medians[::2]) - 1.0)


def compare_rounds(
    rounds: Sequence[tuple[Sequence[float], Sequence[float]]],
    *,
    seed: int = 0,
    unit: Unit = "step",
) -> AbResult:
    """Compare B with A from each round's steady times, ``(a_times, b_times)`` in
    seconds per ``unit`` (see :func:`segment_steps`, :func:`job_samples`);
    deterministic for a given ``seed``.

    >>> compare_rounds([([0.02] * 25, [0.01] * 25)] * 4).verdict
    'faster'
    """
    stats = tuple(RoundStat(_median(a), _median(b), len(a), len(b)) for a, b in rounds)
    used = [(a, b) for (a, b), s in zip(rounds, stats, strict=True) if s.usable]
    a_total = sum(len(a) for a, _ in used)
    b_total = sum(len(b) for _, b in used)
    if len(used) < MIN_ROUNDS or min(a_total, b_total) < MIN_STEPS:
        return AbResult(
            "no-difference", "too-little-data", None, None, None, MIN_EFFECT, stats, unit
        )
    ratios = [r.ratio for r in stats if r.ratio is not None]
    ratio = _geometric_mean(ratios)
    interval = _interval(used, seed=seed)
    a_medians = [r.a_median_s for r in stats if r.usable and r.a_median_s is not None]
    b_medians = [r.b_median_s for r in stats if r.usable and r.b_median_s is not None]
    noise = max(_aa_noise(a_medians), _aa_noise(b_medians))
    threshold = max(MIN_EFFECT, 2 * noise)
    low, high = interval
    verdict: Verdict = "no-difference"
    reason: Reason = "interval"
    # The interval already carries the spread between rounds (and the pairing cancels
    # what hits both sides): a change it excludes by MIN_EFFECT is real, however noisy
    # the machine. The noise floor only bounds what "no difference" can claim.
    if high < 1 - MIN_EFFECT:
        verdict = "faster"
    elif low > 1 + MIN_EFFECT:
        verdict = "slower"
    elif 1 - threshold <= low and high <= 1 + threshold and threshold <= MAX_EFFECT:
        reason = "within-effect"
    else:
        reason = "too-wide"
    return AbResult(verdict, reason, ratio, interval, noise, threshold, stats, unit)


def _interval(
    used: Sequence[tuple[Sequence[float], Sequence[float]]], *, seed: int
) -> tuple[float, float]:
    """2.5th and 97.5th percentiles of the resampled ratio: rounds drawn with
    replacement, then each drawn round's steps."""
    import numpy as np

    rng = np.random.default_rng(seed)
    # log(B median / A median) of each round, for RESAMPLES resamples of its steps.
    logs = np.empty((len(used), RESAMPLES))
    for row, (a, b) in enumerate(used):
        steps_a = np.asarray(a, dtype=np.float64)
        steps_b = np.asarray(b, dtype=np.float64)
        med_a = np.median(rng.choice(steps_a, size=(RESAMPLES, steps_a.size)), axis=1)
        med_b = np.median(rng.choice(steps_b, size=(RESAMPLES, steps_b.size)), axis=1)
        # A resample of mostly zero-length steps must not divide by zero.
        logs[row] = np.log(np.maximum(med_b, 1e-12) / np.maximum(med_a, 1e-12))
    picked = rng.integers(0, len(used), size=(RESAMPLES, len(used)))
    # A round drawn twice gets two independent resamples of its steps.
    draws = rng.integers(0, RESAMPLES, size=(RESAMPLES, len(used)))
    resampled = np.exp(logs[picked, draws].mean(axis=1))
    low, high = (float(v) for v in np.percentile(resampled, [2.5, 97.5]))
    return low, high
