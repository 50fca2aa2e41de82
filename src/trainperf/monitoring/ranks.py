"""Each rank's part of a step, and the straggler that the all-reduce hides.

Under DDP every rank's step ends at the same gradient all-reduce, so step times are
equal on all ranks and tell nothing: the slow rank's delay shows up as the others'
wait inside ``backward()``. What differs is each rank's **arrival**: the time from
the step's start to its first ``backward()`` (its exposed data wait plus its forward
pass), recorded per step as ``before_backward_s``. Steps are aligned across ranks by
their index (DDP runs them in lockstep), so at every step the rank that arrived last
is known, and the others waited for it roughly the gap between its arrival and theirs.

From that, per run: each rank's medians (:class:`RankRow`), which rank is slowest in
each epoch and in what share of steps, and whether the slowest rank is **fixed** (one
rank in most steps: its shard, its host, its device) or **rotates** (whoever drew a
slow batch: data loading). The cause is the larger of the slowest rank's two excesses
over the others, data wait or forward. Thresholds, as used by
:func:`straggler_finding`:

* a fixed straggler: its median arrival is ``STRAGGLER_FACTOR`` times the other
  ranks' median and the gap is at least ``STRAGGLER_STEP_SHARE`` of a step;
* a rotating straggler: no rank is slowest in ``FIXED_SHARE`` of the steps, the mean
  wait for the slowest rank is at least ``ROTATING_STEP_SHARE`` of a step, and most of
  it (``DATA_CAUSE_SHARE``) is data wait -- compute jitter alone rotates too, and is
  not a finding.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from trainperf._json import JsonObject
    from trainperf.monitoring.analyze import Finding
    from trainperf.monitoring.records import Period

__all__ = [
    "DATA_CAUSE_SHARE",
    "FIXED_SHARE",
    "ROTATING_STEP_SHARE",
    "STRAGGLER_FACTOR",
    "STRAGGLER_STEP_SHARE",
    "RankBreakdown",
    "RankRow",
    "rank_breakdown",
    "read_rank_breakdown",
    "straggler_finding",
]

STRAGGLER_FACTOR = 1.2
STRAGGLER_STEP_SHARE = 0.05
FIXED_SHARE = 0.7
ROTATING_STEP_SHARE = 0.1
DATA_CAUSE_SHARE = 0.5

Pattern = Literal["fixed", "rotating"]
Cause = Literal["data", "compute"]


@dataclass(frozen=True)
class RankRow:
    """One rank's steady training steps (each epoch's first left out), medians in
    seconds. ``arrival_s``: data wait plus forward pass, the part of a step no other
    rank waits inside; ``sync_s``: the rest (backward with its all-reduce, where the
    rank waits for the slowest one, and the optimizer step). ``slowest_share``: of
    the steps all ranks recorded, the share in which this rank arrived last."""

    rank: int
    steps: int
    step_s: float | None
    data_wait_s: float | None
    forward_s: float | None
    arrival_s: float | None
    sync_s: float | None
    slowest_share: float
    samples_per_s: float | None = None
    intra_op_threads: int | None = None

    def to_json(self) -> JsonObject:
        return {
            "rank": self.rank,
            "steps": self.steps,
            "step_s": self.step_s,
            "data_wait_s": self.data_wait_s,
            "forward_s": self.forward_s,
            "arrival_s": self.arrival_s,
            "sync_s": self.sync_s,
            "slowest_share": self.slowest_share,
            "samples_per_s": self.samples_per_s,
            "intra_op_threads": self.intra_op_threads,
        }


@dataclass(frozen=True)
class RankBreakdown:
    """All ranks' rows and the straggler analysis of the steps they share.

    ``wait_s``: the mean, over aligned steps, of the slowest arrival minus the median
    of the others' (seconds each step the other ranks wait). ``slowest_by_epoch``: the
    rank with the largest median arrival in each epoch. ``pattern``: ``fixed``,
    ``rotating`` or None (one rank, or no aligned steps). ``slowest``: the rank
    slowest most often; ``cause``: of the slowest ranks' excess arrival over the
    others', whether data wait or forward took more (``data_excess_s`` and
    ``forward_excess_s``, means per aligned step)."""

    rows: tuple[RankRow, ...]
    aligned_steps: int
    wait_s: float | None
    slowest: int | None
    pattern: Pattern | None
    cause: Cause | None
    data_excess_s: float | None
    forward_excess_s: float | None
    slowest_by_epoch: tuple[int, ...]
    # The rank whose records the run's verdict is drawn from: 0, or a fixed straggler.
    verdict_rank: int = 0

    def to_json(self) -> JsonObject:
        return {
            "rows": [r.to_json() for r in self.rows],
            "verdict_rank": self.verdict_rank,
            "aligned_steps": self.aligned_steps,
            "wait_s": self.wait_s,
            "slowest": self.slowest,
            "pattern": self.pattern,
            "cause": self.cause,
            "data_excess_s": self.data_excess_s,
            "forward_excess_s": self.forward_excess_s,
            "slowest_by_epoch": list(self.slowest_by_epoch),
        }


def _arrival(p: Period) -> float:
    return p.before_backward_s if p.before_backward_s is not None else p.data_wait_s


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def rank_breakdown(
    ranks: Sequence[Sequence[Period]],
    *,
    rates: Sequence[float | None] = (),
    threads: Sequence[int | None] = (),
) -> RankBreakdown:
    """The breakdown of ``ranks`` (each rank's periods, in rank order); ``rates`` and
    ``threads``: each rank's samples/s and intra-op threads, when known."""
    steady = [
        [p for p in periods if p.kind == "train" and not p.first_of_epoch] for periods in ranks
    ]
    by_index = [{p.index: p for p in periods} for periods in steady]
    # Steps all ranks recorded, compared across ranks (one rank: nothing to compare).
    common = sorted(set.intersection(*(set(d) for d in by_index))) if len(by_index) > 1 else []
    slowest_count = [0] * len(ranks)
    waits: list[float] = []
    data_excess: list[float] = []
    forward_excess: list[float] = []
    epochs: dict[int, list[list[float]]] = {}
    for index in common:
        steps = [d[index] for d in by_index]
        arrivals = [_arrival(p) for p in steps]
        last = max(range(len(steps)), key=lambda r: arrivals[r])
        slowest_count[last] += 1
        others = [a for r, a in enumerate(arrivals) if r != last]
        waits.append(arrivals[last] - statistics.median(others))
        other_wait = statistics.median(p.data_wait_s for r, p in enumerate(steps) if r != last)
        dw = steps[last].data_wait_s - other_wait
        data_excess.append(dw)
        forward_excess.append(arrivals[last] - statistics.median(others) - dw)
        per_epoch = epochs.setdefault(steps[0].epoch, [[] for _ in ranks])
        for r, a in enumerate(arrivals):
            per_epoch[r].append(a)
    rows = []
    for r, periods in enumerate(steady):
        arrivals = [_arrival(p) for p in periods]
        forwards = [
            p.before_backward_s - p.data_wait_s for p in periods if p.before_backward_s is not None
        ]
        syncs = [p.wall_s - _arrival(p) for p in periods]
        rows.append(
            RankRow(
                rank=r,
                steps=len(periods),
                step_s=_median([p.wall_s for p in periods]),
                data_wait_s=_median([p.data_wait_s for p in periods]),
                forward_s=_median(forwards),
                arrival_s=_median(arrivals),
                sync_s=_median(syncs),
                slowest_share=slowest_count[r] / len(common) if common else 0.0,
                samples_per_s=rates[r] if r < len(rates) else None,
                intra_op_threads=threads[r] if r < len(threads) else None,
            )
        )
    by_epoch = tuple(
        max(range(len(ranks)), key=lambda r: statistics.median(arr[r]))
        for _, arr in sorted(epochs.items())
        if all(arr)
    )
    pattern: Pattern | None = None
    cause: Cause | None = None
    slowest: int | None = None
    if len(ranks) > 1 and common:
        slowest = max(range(len(ranks)), key=lambda r: slowest_count[r])
        pattern = "fixed" if slowest_count[slowest] >= FIXED_SHARE * len(common) else "rotating"
        mean_data = statistics.fmean(data_excess)
        mean_forward = statistics.fmean(forward_excess)
        cause = "data" if mean_data >= mean_forward else "compute"
    return RankBreakdown(
        rows=tuple(rows),
        aligned_steps=len(common),
        wait_s=statistics.fmean(waits) if waits else None,
        slowest=slowest,
        pattern=pattern,
        cause=cause,
        data_excess_s=statistics.fmean(data_excess) if data_excess else None,
        forward_excess_s=statistics.fmean(forward_excess) if forward_excess else None,
        slowest_by_epoch=by_epoch,
    )


def read_rank_breakdown(folder: Path) -> RankBreakdown:
    """The breakdown of a run folder's ranks (``rank<N>`` folders, or the folder itself
    for a single process), from its records. Raises
    :class:`~trainperf.errors.RecordError` for records that are not trainperf's."""
    from trainperf.monitoring.analyze import summarize_folder

    summary, _ = summarize_folder(folder)
    if summary.rank_breakdown is None:
        from trainperf.errors import RecordError

        raise RecordError(f"no training steps in the run at {folder}")
    return summary.rank_breakdown


def straggler_finding(view: RankBreakdown, step_s: float | None) -> Finding | None:
    """``straggler-rank`` when one rank keeps the others waiting (see the module's
    thresholds), naming the rank, whether it is fixed or rotates, its cause and fix."""
    from trainperf.monitoring.analyze import Finding

    rows = [r for r in view.rows if r.arrival_s is not None]
    if len(rows) < 2 or step_s is None or view.slowest is None or view.wait_s is None:
        return None
    slow = view.rows[view.slowest]
    others = statistics.median(
        r.arrival_s for r in rows if r.rank != slow.rank and r.arrival_s is not None
    )
    assert slow.arrival_s is not None
    data_x = view.data_excess_s or 0.0
    forward_x = view.forward_excess_s or 0.0
    evidence: dict[str, float] = {
        "rank": slow.rank,
        "own_s": slow.arrival_s,
        "other_ranks_own_s": others,
        "wait_s": view.wait_s,
        "slowest_share": slow.slowest_share,
        "data_excess_s": data_x,
        "forward_excess_s": forward_x,
        "rotating": 1.0 if view.pattern == "rotating" else 0.0,
    }
    fixed = (
        view.pattern == "fixed"
        and slow.arrival_s > STRAGGLER_FACTOR * others
        and slow.arrival_s - others > STRAGGLER_STEP_SHARE * step_s
    )
    excess = data_x + forward_x
    rotating = (
        view.pattern == "rotating"
        and view.wait_s >= ROTATING_STEP_SHARE * step_s
        and excess > 0
        and data_x >= DATA_CAUSE_SHARE * excess
    )
    gain = f"the other ranks wait about {view.wait_s * 1000:.1f} ms per step for the slowest"
    if fixed and view.cause == "data":
        fix = (
            f"rank {slow.rank} waits longer for its batches than the others "
            f"({data_x * 1000:.1f} ms more a step), in {slow.slowest_share:.0%} of the steps: "
            "check its data shard (larger or slower samples) and its loader's workers"
        )
    elif fixed:
        fix = (
            f"rank {slow.rank} spends longer on its forward pass than the others "
            f"({forward_x * 1000:.1f} ms more a step), in {slow.slowest_share:.0%} of the steps: "
            "check its host and device (other processes, throttling, a slower GPU) and "
            "its inputs' sizes"
        )
    elif rotating:
        fix = (
            "a different rank is the slowest from one step to the next, waiting for its "
            f"batch ({data_x * 1000:.1f} ms more than the others a step): slow batches come "
            "from data loading; more workers or a larger prefetch_factor hide them, and "
            "caching the costly samples removes them"
        )
    else:
        return None
    return Finding("straggler-rank", evidence, fix, gain)
