"""Which loader configurations to try, in what order, and when to stop.

The budget: ``workers x worker_threads x c + main_threads <= cpus``, where ``cpus``
is the rank's usable CPUs (``detect_resources``) and ``c`` the CPU a loading process
really uses, measured on the first candidate (no workers): CPU seconds of the
loading thread per wall second of fetching. For CPU-heavy samples ``c`` is about 1
and the budget is the usual one. A loader that mostly waits (``c`` below
``IO_BOUND_SHARE``: files on remote storage, latency) is not what uses the CPU:
its worker count is bounded by ``max_workers``, memory, and the measurements (the
climb stops when more workers stop helping), not by the CPU count.

The search (racing with early stops; every constant is named below):

1. ``workers=0`` with every CPU to the main process: the baseline. It also gives the
   bytes of a batch (for memory screening) and, with a train step, cached batches
   whose replay is the compute floor.
2. Worker counts up a ladder (1, 2, 3, 4, 6, 8, 12, 16; for a loader that waits, whose
   best count is far up, 2, 4, 8, 12, 16) within the budget. Each is
   screened for memory first, then timed (end to end, where the trial times the
   training step too, one rung past the budget is also timed when the last rung
   improved: the budget keeps a whole CPU for a step that may need far less); it is
   dropped early when after a chunk of batches it runs ``DROP`` slower than the best
   so far twice in a row (one noisy chunk is not enough). The climb stops after
   ``PATIENCE`` rungs without an improvement of ``IMPROVE``, or once a candidate is
   within ``FLOOR_GAP`` of the compute floor (nothing left to gain).

   Worker threads: workers doing matrix work each start a BLAS pool as wide as the
   machine, next to the training process's threads, where the budget counts one
   thread per worker. So where a plain worker runs a BLAS/OpenMP pool of several
   threads (``worker_pool_threads()``, asked of a real worker once the first rung
   has run), the first rung is measured again with ``worker_threads=1`` (also when
   it was dropped: oversubscribed workers are the ones that fall behind); if one
   thread per worker is ``IMPROVE`` faster, the rest of the climb keeps it. The CPU
   share cannot decide this (a loading thread waiting on its own BLAS pool looks
   idle). The limit reaches the workers only through ``worker_threads``, which the
   advice states: nothing set in this process leaks into them.
3. ``prefetch_factor=4`` for the best worker count, kept only if it wins by ``TIE``.
4. When the two fastest are within ``DUEL_GAP`` of each other, both are measured once
   more, side by side, and each keeps the mean of its two measurements: the choice
   between near-equals is where one noisy measurement would decide it.

The winner is the fastest, except that a configuration with fewer workers within
``TIE`` of it is preferred (fewer processes, less memory, same speed).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trainperf.calibration.config import LoaderConfig
from trainperf.calibration.dataset import batch_nbytes
from trainperf.calibration.trials import Trial, TrialPlan, run_trial

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DROP",
    "DUEL_GAP",
    "FLOOR_GAP",
    "IMPROVE",
    "IO_BOUND_SHARE",
    "LADDER",
    "MEMORY_SAFETY",
    "PATIENCE",
    "TIE",
    "WAITING_LADDER",
    "Budget",
    "SearchResult",
    "search",
]

LADDER = (1, 2, 3, 4, 6, 8, 12, 16)
WAITING_LADDER = (2, 4, 8, 12, 16)
DUEL_GAP = 0.15
DROP = 0.15  # a chunk this much slower than the best (twice in a row) ends a candidate
IMPROVE = 0.05  # what counts as better when climbing the ladder or trying prefetch
PATIENCE = 2  # rungs without improvement before the climb stops
FLOOR_GAP = 0.03  # this close to the compute floor: stop searching
TIE = 0.03  # within this of the fastest, fewer workers win
MEMORY_SAFETY = 0.8  # share of available memory and free /dev/shm a candidate may plan on
MIN_CPU_SHARE = 0.05  # a loading process never counts as less than this much CPU
IO_BOUND_SHARE = 0.25  # a loader using less CPU than this per wall second mostly waits


@dataclass(frozen=True)
class Budget:
    batch_size: int
    cpus: int  # usable by this rank
    max_workers: int = LADDER[-1]
    memory_bytes: int | None = None  # available to this rank
    shm_free_bytes: int | None = None
    local_world_size: int = 1
    pin_memory: bool = False


@dataclass
class SearchResult:
    trials: list[Trial] = field(default_factory=list)
    winner: Trial | None = None
    baseline: Trial | None = None  # workers=0, every CPU to the main process
    why: str = ""
    floor_samples_per_s: float | None = None
    batch_bytes: int | None = None
    cpu_share: float | None = None
    # Measured but not eligible (a prefetch that was not clearly better than the default).
    held_back: list[Trial] = field(default_factory=list)


def _fits(budget: Budget, workers: int, share: float) -> bool:
    if share < IO_BOUND_SHARE:
        return True  # waiting workers: the measurements decide
    return workers * share + 1 <= budget.cpus + 1e-9


def _screen(
    budget: Budget, config: LoaderConfig, batch_bytes: int | None, worker_rss: int | None
) -> str | None:
    """Why ``config`` cannot be afforded in memory, or ``None``."""
    if batch_bytes is None or config.num_workers == 0:
        return None
    queued = config.num_workers * (config.prefetch_factor or 2)
    need = config.num_workers * (worker_rss or 0) + (queued + 1) * batch_bytes
    if budget.memory_bytes is not None and need > MEMORY_SAFETY * budget.memory_bytes:
        return (
            f"would need ~{need / 2**20:,.0f} MiB ({config.num_workers} workers, {queued} "
            f"batches queued) of {budget.memory_bytes / 2**20:,.0f} MiB available"
        )
    shm = queued * batch_bytes * budget.local_world_size
    if budget.shm_free_bytes is not None and shm > MEMORY_SAFETY * budget.shm_free_bytes:
        return (
            f"would queue ~{shm / 2**20:,.0f} MiB in /dev/shm, which has "
            f"{budget.shm_free_bytes / 2**20:,.0f} MiB free (workers die with 'Bus error')"
        )
    return None


def search(
    dataset: object,
    budget: Budget,
    plan: TrialPlan,
    *,
    collate_fn: Callable[..., object] | None = None,
    step: Callable[[object], object] | None = None,
    floor: Callable[[list[object]], float] | None = None,
    clock: Callable[[], float],
    report: Callable[[Trial], None] = lambda trial: None,
    worker_pool_threads: Callable[[], int] | None = None,
) -> SearchResult:
    """Run the search; ``floor(batches)`` gives seconds per step replaying cached batches,
    ``worker_pool_threads()`` the threads of the widest BLAS/OpenMP pool in a plain
    worker (``None``: ``worker_threads`` is never tried)."""
    result = SearchResult()

    def measure(
        config: LoaderConfig, keep: list[object] | None = None, *, record: bool = True
    ) -> Trial:
        best = max(
            (t.samples_per_s or 0.0 for t in result.trials if t.status == "measured"), default=0.0
        )
        slow_looks = [0]

        def judge(rate: float, batches: int) -> str | None:
            if best <= 0 or rate >= (1 - DROP) * best:
                slow_looks[0] = 0
                return None
            slow_looks[0] += 1
            if slow_looks[0] < 2:
                return None
            return f"{rate:,.1f} samples/s after {batches} batches, over {DROP:.0%} below the best"

        trial = run_trial(
            dataset,
            config,
            plan,
            start=0,
            collate_fn=collate_fn,
            step=step,
            judge=judge,
            clock=clock,
            keep=keep,
        )
        if record:
            result.trials.append(trial)
            report(trial)
        return trial

    cached: list[object] = []
    base = measure(
        LoaderConfig(batch_size=budget.batch_size, main_threads=budget.cpus), keep=cached
    )
    if cached:
        result.batch_bytes = batch_nbytes(cached[0])
    result.cpu_share = base.cpu_share
    if step is not None and floor is not None and cached:
        step_s = floor(cached[:8])
        result.floor_samples_per_s = budget.batch_size / step_s if step_s > 0 else None
    del cached[8:]
    # A worker runs one thread: however many the main process used, it needs <= 1 CPU.
    share = min(1.0, base.cpu_share) if base.cpu_share is not None else 1.0
    worker_rss: int | None = None
    stale = 0
    best_rate = base.samples_per_s or 0.0
    # None: as DataLoader leaves them; 1 once limiting them has won (see the module).
    worker_threads: int | None = None
    ask_pools = worker_pool_threads  # once, at the first rung that ran
    past_budget = False
    for workers in LADDER if share >= IO_BOUND_SHARE else WAITING_LADDER:
        if workers > budget.max_workers:
            break
        if not _fits(budget, workers, share):
            # The budget keeps a whole CPU for the training step. End to end, the trial
            # times the step itself, so one rung past the budget is measured when the
            # last rung improved: a light step leaves room the budget cannot know of.
            if step is None or past_budget or stale > 0 or not result.trials[1:]:
                break
            past_budget = True
        if _near_floor(result, best_rate):
            break
        main = max(1, math.floor(budget.cpus - workers * max(share, MIN_CPU_SHARE) + 1e-9))
        config = LoaderConfig(
            batch_size=budget.batch_size,
            num_workers=workers,
            prefetch_factor=2,
            pin_memory=budget.pin_memory,
            main_threads=main,
            worker_threads=worker_threads,
        )
        reason = _screen(budget, config, result.batch_bytes, worker_rss)
        if reason is not None:
            trial = Trial(config, "screened", reason=reason)
            result.trials.append(trial)
            report(trial)
            break  # more workers need more still
        trial = measure(config)
        if trial.worker_rss_bytes is not None:
            worker_rss = max(worker_rss or 0, trial.worker_rss_bytes)
        rate = trial.samples_per_s if trial.status == "measured" else None
        if ask_pools is not None and trial.status in ("measured", "dropped"):
            wide = ask_pools() > 1
            ask_pools = None
            if wide:
                limited = measure(config.replace(worker_threads=1))
                faster = limited.samples_per_s if limited.status == "measured" else None
                if faster is not None and faster > (1 + IMPROVE) * (rate or 0.0):
                    worker_threads, rate = 1, faster
        if rate is not None and rate > (1 + IMPROVE) * best_rate:
            stale = 0
        else:
            stale += 1
            if stale >= PATIENCE:
                break
        best_rate = max(best_rate, rate or 0.0)
    _try_prefetch(result, budget, measure, worker_rss)
    _duel(result, measure)
    _choose(result)
    # As it stands after the duel (which may have measured it twice) and the choice.
    result.baseline = next(t for t in result.trials if t.config == base.config)
    return result


def _near_floor(result: SearchResult, rate: float) -> bool:
    floor = result.floor_samples_per_s
    return floor is not None and rate >= (1 - FLOOR_GAP) * floor


def _try_prefetch(
    result: SearchResult,
    budget: Budget,
    measure: Callable[[LoaderConfig], Trial],
    worker_rss: int | None,
) -> None:
    measured = _eligible(result)
    if not measured:
        return
    best = max(measured, key=lambda t: t.samples_per_s or 0.0)
    if best.config.num_workers == 0 or _near_floor(result, best.samples_per_s or 0.0):
        return
    config = best.config.replace(prefetch_factor=4)
    reason = _screen(budget, config, result.batch_bytes, worker_rss)
    if reason is not None:
        result.trials.append(Trial(config, "screened", reason=reason))
        return
    trial = measure(config)
    if trial.status == "measured" and (trial.samples_per_s or 0.0) <= (1 + TIE) * (
        best.samples_per_s or 0.0
    ):
        # Not clearly better: measured, but the default prefetch stays the choice.
        index = result.trials.index(trial)
        held = dataclasses.replace(trial, reason=f"not {TIE:.0%} faster than prefetch 2")
        result.trials[index] = held
        result.held_back.append(held)


def _eligible(result: SearchResult) -> list[Trial]:
    return [
        t
        for t in result.trials
        if t.status == "measured" and t.samples_per_s and t not in result.held_back
    ]


def _duel(result: SearchResult, measure: Callable[..., Trial]) -> None:
    """Measure the two fastest once more, side by side, when they are close."""
    ranked = sorted(_eligible(result), key=lambda t: -(t.samples_per_s or 0.0))
    if len(ranked) < 2:
        return
    first, second = ranked[0], ranked[1]
    if (second.samples_per_s or 0.0) < (1 - DUEL_GAP) * (first.samples_per_s or 0.0):
        return
    for trial in (first, second):
        again = measure(trial.config, record=False)
        if again.status != "measured" or not again.samples_per_s:
            continue
        combined = dataclasses.replace(
            trial,
            samples_per_s=((trial.samples_per_s or 0.0) + again.samples_per_s) / 2,
            batches=trial.batches + again.batches,
            elapsed_s=trial.elapsed_s + again.elapsed_s,
            chunk_rates=trial.chunk_rates + again.chunk_rates,
            reason="measured twice (a close second)",
        )
        result.trials[result.trials.index(trial)] = combined


def _choose(result: SearchResult) -> None:
    measured = _eligible(result)
    if not measured:
        return
    fastest = max(measured, key=lambda t: t.samples_per_s or 0.0)
    top = fastest.samples_per_s or 0.0
    close = [t for t in measured if (t.samples_per_s or 0.0) >= (1 - TIE) * top]
    winner = min(close, key=lambda t: (t.config.num_workers, -(t.samples_per_s or 0.0)))
    if winner is fastest:
        why = f"fastest measured: {top:,.1f} samples/s"
    else:
        why = (
            f"within {TIE:.0%} of the fastest ({fastest.config.describe()}: {top:,.1f} "
            f"samples/s) with fewer workers"
        )
    chosen = dataclasses.replace(winner, status="chosen", reason=why)
    result.trials[result.trials.index(winner)] = chosen
    result.winner = chosen
    result.why = why
