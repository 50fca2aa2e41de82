"""``doctor --scale``'s report: each run's medians, each rank count's, the efficiency
and what ate it (:func:`assemble`, pure: from the runs' medians, no measuring).

Efficiency of ``n`` ranks against the smallest count ``b``: ``(rate_n / rate_b) /
(n / b)``, the rates being the runs' throughput over all their training steps; the
steady efficiency is the same from the median steady steps (each epoch's first left
out), robust to a busy machine's outliers. Under data parallelism each rank's step
ideally takes as long at ``n`` as at ``b``; what the step grew by is split into its
parts (:data:`PARTS`): input (data wait), compute (forward pass), collective (sync
less the straggler wait) and the straggler wait. The largest is named as the cause,
with a fix, unless the step grew by less than :data:`NOISE` of the base step: that is
run-to-run noise, and its largest part changes from run to run. The parts are medians
and do not add up to the median step exactly.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from trainperf._schema import SCALING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trainperf._json import JsonObject
    from trainperf.monitoring.ranks import RankRow

__all__ = [
    "NOISE",
    "PARTS",
    "PART_NAMES",
    "SHRANK",
    "Part",
    "ScaleCount",
    "ScaleRun",
    "ScalingLoss",
    "ScalingReport",
    "assemble",
]

Part = Literal["input", "compute", "collective", "straggler"]
PARTS: tuple[Part, ...] = ("input", "compute", "collective", "straggler")
# A step this much shorter at more ranks is not scaling but the machine's load changing.
SHRANK = 0.8
# A step this share longer at more ranks is within run-to-run noise: no cause to name
# (the largest part of a 1.5 ms growth on an 18.6 ms step changed from run to run).
NOISE = 0.1
PART_NAMES: dict[Part, str] = {
    "input": "input (data wait)",
    "compute": "compute (forward pass)",
    "collective": "collective (gradient all-reduce)",
    "straggler": "straggler wait",
}


@dataclass(frozen=True)
class ScaleRun:
    """One run of the command at ``ranks`` ranks: its medians over its ranks' steady
    steps (seconds), or why it gave none (``failure``)."""

    ranks: int
    round: int
    run: str
    returncode: int | None
    failure: str | None
    steps: int = 0
    samples_per_s: float | None = None
    samples_per_step: float | None = None  # each rank's, over its training steps
    step_s: float | None = None
    data_wait_s: float | None = None
    forward_s: float | None = None
    sync_s: float | None = None
    straggler_s: float | None = None  # mean wait per step for the slowest rank; 0 alone
    threads_per_rank: int | None = None
    rank_rows: tuple[RankRow, ...] = ()

    def to_json(self) -> JsonObject:
        return {
            "ranks": self.ranks,
            "round": self.round,
            "run": self.run,
            "returncode": self.returncode,
            "failure": self.failure,
            "steps": self.steps,
            "samples_per_s": self.samples_per_s,
            "samples_per_step": self.samples_per_step,
            "step_s": self.step_s,
            "data_wait_s": self.data_wait_s,
            "forward_s": self.forward_s,
            "sync_s": self.sync_s,
            "straggler_s": self.straggler_s,
            "threads_per_rank": self.threads_per_rank,
            "rank_rows": [r.to_json() for r in self.rank_rows],
        }


@dataclass(frozen=True)
class ScaleCount:
    """One rank count: the medians over its runs that trained (all runs kept in
    ``runs``), and its efficiency against the smallest count: ``efficiency`` from the
    throughput (every training step counts), ``steady_efficiency`` from the median
    steady steps alone (what the parts explain)."""

    ranks: int
    runs: tuple[ScaleRun, ...]
    samples_per_s: float | None
    samples_per_step: float | None
    step_s: float | None
    data_wait_s: float | None
    forward_s: float | None
    sync_s: float | None
    straggler_s: float | None
    threads_per_rank: int | None
    efficiency: float | None = None
    steady_efficiency: float | None = None

    @property
    def failure(self) -> str | None:
        """The first failed run's failure, when no run of this count trained."""
        if any(r.steps > 0 for r in self.runs):
            return None
        return next((r.failure for r in self.runs if r.failure), None)

    def to_json(self) -> JsonObject:
        return {
            "ranks": self.ranks,
            "samples_per_s": self.samples_per_s,
            "efficiency": self.efficiency,
            "steady_efficiency": self.steady_efficiency,
            "samples_per_step": self.samples_per_step,
            "step_s": self.step_s,
            "data_wait_s": self.data_wait_s,
            "forward_s": self.forward_s,
            "sync_s": self.sync_s,
            "straggler_s": self.straggler_s,
            "threads_per_rank": self.threads_per_rank,
            "failure": self.failure,
            "runs": [r.to_json() for r in self.runs],
        }


@dataclass(frozen=True)
class ScalingLoss:
    """What ate the efficiency of ``ranks`` against ``base``: the step's growth and its
    parts (seconds per step, None where not measured), the largest named as
    ``cause`` (None: the step did not grow, or grew within :data:`NOISE`), and
    ``advice``, one sentence."""

    ranks: int
    base: int
    step_growth_s: float
    parts: tuple[tuple[Part, float | None], ...]
    cause: Part | None
    advice: str

    def to_json(self) -> JsonObject:
        return {
            "ranks": self.ranks,
            "base": self.base,
            "step_growth_s": self.step_growth_s,
            "parts": dict(self.parts),
            "cause": self.cause,
            "advice": self.advice,
        }


@dataclass(frozen=True)
class ScalingReport:
    command: tuple[str, ...]  # with {n}
    counts: tuple[int, ...]  # as run, in order
    rounds: int
    steps: int | None
    budget_s: float | None
    folder: str
    cpu_budget: float | None
    rows: tuple[ScaleCount, ...]  # by rank count, smallest first
    losses: tuple[ScalingLoss, ...]  # each count above the smallest
    elapsed_s: float

    @property
    def failed(self) -> bool:
        return any(run.failure is not None for row in self.rows for run in row.runs)

    def to_json(self) -> JsonObject:
        return SCALING.stamp(
            {
                "command": list(self.command),
                "counts": list(self.counts),
                "rounds": self.rounds,
                "steps": self.steps,
                "budget_s": self.budget_s,
                "folder": self.folder,
                "cpu_budget": self.cpu_budget,
                "elapsed_s": self.elapsed_s,
                "rows": [r.to_json() for r in self.rows],
                "losses": [loss.to_json() for loss in self.losses],
            }
        )


def assemble(
    runs: Sequence[ScaleRun],
    *,
    command: tuple[str, ...],
    counts: tuple[int, ...],
    rounds: int,
    steps: int | None,
    budget_s: float | None,
    folder: str,
    cpu_budget: float | None,
    elapsed_s: float,
) -> ScalingReport:
    """The report of ``runs``: per count the medians over its runs that trained, the
    efficiency against the smallest count, and what ate it."""
    rows = [_count(n, [r for r in runs if r.ranks == n]) for n in sorted(counts)]
    base = rows[0]
    rated = []
    for row in rows:
        efficiency = steady = None
        if row.samples_per_s and base.samples_per_s:
            efficiency = (row.samples_per_s / base.samples_per_s) / (row.ranks / base.ranks)
        if row.step_s and base.step_s:
            # Samples per rank-step as recorded; unknown (batches without a size): equal.
            batches = 1.0
            if row.samples_per_step and base.samples_per_step:
                batches = row.samples_per_step / base.samples_per_step
            steady = base.step_s / row.step_s * batches
        rated.append(dataclasses.replace(row, efficiency=efficiency, steady_efficiency=steady))
    losses = tuple(
        loss for row in rated[1:] if (loss := _loss(rated[0], row, cpu_budget)) is not None
    )
    return ScalingReport(
        command=command,
        counts=counts,
        rounds=rounds,
        steps=steps,
        budget_s=budget_s,
        folder=folder,
        cpu_budget=cpu_budget,
        rows=tuple(rated),
        losses=losses,
        elapsed_s=elapsed_s,
    )


def _count(n: int, runs: Sequence[ScaleRun]) -> ScaleCount:
    trained = [r for r in runs if r.steps > 0]
    threads = [r.threads_per_rank for r in trained if r.threads_per_rank is not None]
    return ScaleCount(
        ranks=n,
        runs=tuple(runs),
        samples_per_s=_median([r.samples_per_s for r in trained]),
        samples_per_step=_median([r.samples_per_step for r in trained]),
        step_s=_median([r.step_s for r in trained]),
        data_wait_s=_median([r.data_wait_s for r in trained]),
        forward_s=_median([r.forward_s for r in trained]),
        sync_s=_median([r.sync_s for r in trained]),
        straggler_s=_median([r.straggler_s for r in trained]),
        threads_per_rank=statistics.median_low(threads) if threads else None,
    )


def _delta(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None else new - old


def _loss(base: ScaleCount, row: ScaleCount, cpus: float | None) -> ScalingLoss | None:
    """The step's growth from ``base`` to ``row`` split into its parts; None when either
    count has no step time."""
    if base.step_s is None or row.step_s is None:
        return None
    collective_b = _delta(base.sync_s, base.straggler_s)
    collective_n = _delta(row.sync_s, row.straggler_s)
    parts: tuple[tuple[Part, float | None], ...] = (
        ("input", _delta(row.data_wait_s, base.data_wait_s)),
        ("compute", _delta(row.forward_s, base.forward_s)),
        ("collective", _delta(collective_n, collective_b)),
        ("straggler", _delta(row.straggler_s, base.straggler_s)),
    )
    growth = row.step_s - base.step_s
    known = [(part, value) for part, value in parts if value is not None]
    cause, largest = max(known, key=lambda item: item[1], default=(None, 0.0))
    if cause is None or largest <= 0 or growth <= 0:
        advice = (
            f"the step did not grow from {base.ranks} to {row.ranks} ranks "
            f"({_ms(base.step_s)} to {_ms(row.step_s)}): the ranks add throughput as expected"
        )
        if row.step_s < SHRANK * base.step_s:
            advice = (
                f"the step shrank from {_ms(base.step_s)} at {base.ranks} ranks to "
                f"{_ms(row.step_s)} at {row.ranks}: faster than linear, which more ranks of "
                "the same step cannot give; the counts ran under different machine load "
                "(see the rounds' rates): rerun on a quieter machine, or with more --rounds"
            )
        return ScalingLoss(row.ranks, base.ranks, growth, parts, None, advice)
    if growth < NOISE * base.step_s:
        advice = (
            f"the ranks scale well: the step grew {_ms(growth)} from {base.ranks} to "
            f"{row.ranks} ranks, {growth / base.step_s:.0%} of the {_ms(base.step_s)} step, "
            f"within run-to-run noise (under {NOISE:.0%}): no part is worth a fix"
        )
        return ScalingLoss(row.ranks, base.ranks, growth, parts, None, advice)
    advice = _advice(cause, largest, base, row, cpus)
    if row.steady_efficiency is not None and row.step_s > largest:
        estimate = min(row.steady_efficiency * row.step_s / (row.step_s - largest), 1.0)
        advice += (
            f"; without it the median steps' efficiency would be about {estimate:.0%} (estimated)"
        )
    return ScalingLoss(row.ranks, base.ranks, growth, parts, cause, advice)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _advice(part: Part, grew: float, base: ScaleCount, row: ScaleCount, cpus: float | None) -> str:
    """One sentence: the part's measurement, why it grows with the ranks, the fix."""
    n, b = row.ranks, base.ranks
    if part == "input":
        share = f" ({cpus / n:g} CPU{'' if cpus / n == 1 else 's'} each)" if cpus else ""
        return (
            f"each rank waits {_ms(grew)} more a step for its batches at {n} ranks "
            f"than at {b}; the ranks' loaders compete for the same CPUs and storage: "
            f"build batches ahead in DataLoader workers within each rank's share of the "
            f"CPUs{share}, or cache the prepared samples (trainperf.cache) so that every "
            "rank reads them ready"
        )
    if part == "compute":
        threads, before = row.threads_per_rank, base.threads_per_rank
        if threads and cpus and n * threads > cpus:
            fit = max(1, math.floor(cpus / n))
            why = (
                f"{n} ranks x {threads} intra-op threads = {n * threads} threads on "
                f"{cpus:g} CPUs compete for the cores: set OMP_NUM_THREADS={fit} "
                f"(torch.set_num_threads({fit})) in each rank"
            )
        elif threads and before and threads < before:
            on = f" of {cpus:g}" if cpus else ""
            why = (
                f"each rank computes on {threads} intra-op thread{'s' if threads > 1 else ''} "
                f"at {n} ranks against {before} at {b}: the ranks split the CPUs{on}, so "
                "every forward pass runs on fewer cores; more ranks on the same CPUs add no "
                "compute: scale across machines or GPUs (one rank each)"
            )
        else:
            on = f" {cpus:g}" if cpus else ""
            why = (
                f"the ranks share the{on} CPUs and their memory bandwidth: give each rank its "
                "own cores or device, or scale across machines or GPUs"
            )
        return f"the forward pass takes {_ms(grew)} more a step at {n} ranks; {why}"
    if part == "collective":
        return (
            f"backward with the gradient all-reduce and the optimizer step takes "
            f"{_ms(grew)} more a step at {n} ranks (the straggler wait left out): all-reduce "
            "less often (gradient accumulation with DDP's no_sync()), in larger buckets "
            "(bucket_cap_mb), on NCCL where there are GPUs; on one machine's CPUs gloo's "
            "all-reduce also competes with the compute for cores"
        )
    return (
        f"the ranks wait {_ms(grew)} a step at the all-reduce for the slowest "
        "rank to arrive: balance the ranks' shards and loaders; trainperf report on the "
        f"{n}-rank run names the slow rank and its cause"
    )


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None
