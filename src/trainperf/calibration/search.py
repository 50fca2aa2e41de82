"""Which loader configurations to try, in what order, and when to stop.

The budget: ``workers x worker_threads x c + main_threads <= cpus``, where ``cpus``
is the rank's usable CPUs (``detect_resources``) and ``c`` the CPU a loading process
really uses, measured on the first candidate (no workers): CPU seconds of the
loading thread per wall second of fetching. For CPU-heavy samples ``c`` is about 1
and the budget is the usual one: one CPU kept for the training step, the rest for
loading. A loader that mostly waits (``c`` below ``IO_BOUND_SHARE``: files on remote
storage, latency) is not what uses the CPU: its worker count is bounded by
``max_workers``, memory, and the measurements (the climb stops when more workers stop
helping), not by the CPU count.

Candidates are ranked by their rate over a run (``epochs``, an
:class:`~trainperf.calibration.epochs.EpochPlan`): the steady rate, with the start-up
each epoch pays added (:mod:`~trainperf.calibration.epochs`). Without a plan, by the
steady rate alone.

The search (racing with early stops; every constant is named below):

1. ``workers=0`` with every CPU to the main process: the baseline. It also gives the
   bytes of a batch (for memory screening) and, with a train step, cached batches
   whose replay is the compute floor.
2. Worker counts up a ladder (1, 2, 3, 4, 6, 8, 12, 16; for a loader that waits, whose
   best count is far up, 2, 4, 8, 12, 16) within the budget, under the default start
   method (named: ``start_method``). Each is
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
   thread per worker is ``IMPROVE`` faster (steady rate, what oversubscription slows),
   the rest of the climb keeps it. Not for a loader that mostly waits (its noise would
   decide it: there is no matrix work to oversubscribe). The CPU
   share cannot decide this (a loading thread waiting on its own BLAS pool looks
   idle). The limit reaches the workers only through ``worker_threads``, which the
   advice states: nothing set in this process leaks into them.
3. ``prefetch_factor=4`` for the best worker count, kept only if it wins by ``TIE``.
4. The other start methods (``start_methods``) for the best, each kept only if it wins
   by ``TIE`` over the run. One that cannot start the workers (a dataset that does not
   pickle) fails with the reason; one whose first batch comes later than the best's
   whole run (without persistent workers: its epoch) is stopped there, since its
   start-up alone loses.
5. When the two fastest are within ``DUEL_GAP`` of each other, both are measured once
   more, side by side, and each keeps the mean of its two measurements: the choice
   between near-equals is where one noisy measurement would decide it. Where the whole
   run is short (under ``RUN_CHECK_S`` at the fastest's rate: start-up is much of it,
   and one start-up measurement is noisy), the ``FINALISTS`` fastest within
   ``DUEL_GAP`` are instead timed over the whole run itself, as advised
   (:func:`~trainperf.calibration.epochs.time_epochs`), in two interleaved rounds, and
   ranked by that.

The winner is the fastest, except that a configuration with fewer workers within
``TIE`` of it is preferred (fewer processes, less memory, same speed).

Then, for a winner with workers, an epoch's start-up with its workers kept alive
(``persistent_workers``) is measured (:func:`~trainperf.calibration.epochs.measure_restart`).
Without a train step (loader only), the climb goes on past the CPU budget with the
winner's settings, the same way, for the *loader-only optimum*: the fastest loading
with no CPU kept for the step. Those candidates are measured but never chosen; the
result shows the optimum beside the budgeted choice. Every rung not measured is named,
with the reason, in ``SearchResult.skipped``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trainperf.calibration.config import LoaderConfig
from trainperf.calibration.dataset import batch_nbytes
from trainperf.calibration.epochs import measure_restart, run_samples_per_s, time_epochs
from trainperf.calibration.startmethod import main_module_work
from trainperf.calibration.trials import Trial, TrialPlan, run_trial

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from trainperf.calibration.config import StartMethod
    from trainperf.calibration.epochs import EpochPlan, Restart

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
STEP_CPUS = 1  # what the budget keeps for the training step
RUN_CHECK_S = 5.0  # a run this short at the fastest's rate: finalists timed over all of it
FINALISTS = 3  # at most, within DUEL_GAP of the fastest

OVER_BUDGET = "over the CPU budget, no CPU left for a training step (for the loader-only optimum)"


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
    # Measured but not eligible (a prefetch or start method not clearly better than the
    # default, a configuration over the CPU budget).
    held_back: list[Trial] = field(default_factory=list)
    epochs: EpochPlan | None = None  # what candidates are weighed over
    # Candidates not measured, "num_workers 8, 12, 16: why".
    skipped: list[str] = field(default_factory=list)
    # Loader only: the fastest measured with no CPU kept for the step (may be the winner),
    # whether the climb for it ran its course, and how it ended.
    loader_only: Trial | None = None
    loader_only_searched: bool = False
    loader_only_note: str = ""
    restart: Restart | None = None  # the winner's start-up, new and live workers
    run_samples_per_s: float | None = None  # the winner over the run, start-ups included
    # Finalists of a short run, timed over the whole of it (samples/s), by configuration.
    runs: dict[LoaderConfig, float] = field(default_factory=dict)

    def score(self, trial: Trial) -> float:
        """What candidates are ranked by: the rate over the run (timed whole, else from
        the steady rate and start-up), else the steady rate."""
        rate = trial.samples_per_s or 0.0
        if self.epochs is None or not math.isfinite(rate):
            return rate
        timed = self.runs.get(trial.config)
        if timed is not None:
            return timed
        return run_samples_per_s(trial, self.epochs) or 0.0


def _fits(budget: Budget, workers: int, share: float) -> bool:
    if share < IO_BOUND_SHARE:
        return True  # waiting workers: the measurements decide
    return workers * share + STEP_CPUS <= budget.cpus + 1e-9


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


def _skip(result: SearchResult, workers: Sequence[int], why: str) -> None:
    if workers:
        result.skipped.append(f"num_workers {', '.join(map(str, workers))}: {why}")


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
    epochs: EpochPlan | None = None,
    start_method: StartMethod | None = None,
    start_methods: Sequence[StartMethod] = (),
) -> SearchResult:
    """Run the search; ``floor(batches)`` gives seconds per step replaying cached batches,
    ``worker_pool_threads()`` the threads of the widest BLAS/OpenMP pool in a plain
    worker (``None``: ``worker_threads`` is never tried); ``start_method``: the one the
    ladder runs under (the default, named), ``start_methods``: the others to try."""
    result = SearchResult(epochs=epochs)

    def measure(
        config: LoaderConfig,
        keep: list[object] | None = None,
        *,
        record: bool = True,
        startup_limit: tuple[float, str] | None = None,
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
            startup_limit=startup_limit,
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
    best_rate = result.score(base) if base.status == "measured" else 0.0
    # None: as DataLoader leaves them; 1 once limiting them has won (see the module).
    worker_threads: int | None = None
    ask_pools = worker_pool_threads  # once, at the first rung that ran
    if share < IO_BOUND_SHARE and ask_pools is not None:
        ask_pools = None
        result.skipped.append(
            f"worker_threads=1: not tried, the loader mostly waits ({share:.2f} CPU per "
            f"second of loading): no matrix work in its workers to oversubscribe"
        )
    # The ladder's start method; fork instead, when the default is another and fork
    # wins at the first rung (see the module).
    ladder_method = start_method
    ask_fork = start_method not in (None, "fork") and "fork" in start_methods
    fork_tried = False
    past_budget = False
    full = LADDER if share >= IO_BOUND_SHARE else WAITING_LADDER
    rungs = [w for w in full if w <= budget.max_workers]
    _skip(
        result,
        [w for w in full if w > budget.max_workers],
        f"above max_workers={budget.max_workers}",
    )
    beyond: list[int] = []  # loader only: the rungs over the budget, for the optimum
    ended = "end"  # why the climb ended: end (of the rungs), budget, floor, memory, patience
    over = (
        f"over the CPU budget ({budget.cpus} CPUs, {STEP_CPUS} kept for the training step, "
        f"{share:.2f} CPU per loading process)"
    )
    for index, workers in enumerate(rungs):
        after = rungs[index + 1 :]
        if not _fits(budget, workers, share):
            if step is None:
                beyond = rungs[index:]  # measured after the choice, never chosen
                ended = "budget"
                break
            # The budget keeps a whole CPU for the training step. End to end, the trial
            # times the step itself, so one rung past the budget is measured when the
            # last rung improved: a light step leaves room the budget cannot know of.
            if past_budget or stale > 0 or not result.trials[1:]:
                _skip(result, rungs[index:], over)
                ended = "budget"
                break
            past_budget = True
        if _near_floor(result, best_rate):
            _skip(result, rungs[index:], f"within {FLOOR_GAP:.0%} of the compute floor already")
            ended = "floor"
            break
        main = max(1, math.floor(budget.cpus - workers * max(share, MIN_CPU_SHARE) + 1e-9))
        config = LoaderConfig(
            batch_size=budget.batch_size,
            num_workers=workers,
            prefetch_factor=2,
            pin_memory=budget.pin_memory,
            main_threads=main,
            worker_threads=worker_threads,
            multiprocessing_context=ladder_method,
        )
        reason = _screen(budget, config, result.batch_bytes, worker_rss)
        if reason is not None:
            trial = Trial(config, "screened", reason=reason)
            result.trials.append(trial)
            report(trial)
            _skip(result, after, "more workers need more memory still")
            ended = "memory"
            break  # more workers need more still
        trial = measure(config)
        if trial.worker_rss_bytes is not None:
            worker_rss = max(worker_rss or 0, trial.worker_rss_bytes)
        rate = result.score(trial) if trial.status == "measured" else None
        if ask_pools is not None and trial.status in ("measured", "dropped"):
            wide = ask_pools() > 1
            ask_pools = None
            if wide:
                # Decided on the steady rate, what oversubscribed pools slow down: over a
                # short run the start-up's noise would decide it otherwise.
                limited = measure(config.replace(worker_threads=1))
                steady = trial.samples_per_s if trial.status == "measured" else None
                faster = limited.samples_per_s if limited.status == "measured" else None
                if faster is not None and faster > (1 + IMPROVE) * (steady or 0.0):
                    worker_threads, rate = 1, result.score(limited)
        if ask_fork and trial.status in ("measured", "dropped"):
            ask_fork, fork_tried = False, True
            forked = measure(
                config.replace(multiprocessing_context="fork", worker_threads=worker_threads)
            )
            quicker = result.score(forked) if forked.status == "measured" else None
            if quicker is not None and quicker > (1 + IMPROVE) * (rate or 0.0):
                ladder_method, rate = "fork", quicker
            elif quicker is not None:
                _hold_back(result, forked, f"not {IMPROVE:.0%} faster than {start_method}")
        if rate is not None and rate > (1 + IMPROVE) * best_rate:
            stale = 0
        else:
            stale += 1
            if stale >= PATIENCE:
                _skip(
                    result,
                    after,
                    f"the climb stopped, {PATIENCE} rungs without a {IMPROVE:.0%} gain",
                )
                ended = "patience"
                break
        best_rate = max(best_rate, rate or 0.0)
    _try_prefetch(result, budget, measure, worker_rss)
    others = [m for m in start_methods if m != ladder_method and not (m == "fork" and fork_tried)]
    if ladder_method != start_method and start_method is not None:
        others.append(start_method)  # the default, at the best worker count
    _try_start_methods(result, measure, others, (dataset, collate_fn))
    if not _whole_runs(result, dataset, collate_fn, step, clock):
        _duel(result, measure)
    _choose(result, over_budget=bool(beyond))
    if step is None:
        cut = len(rungs) < len(full)
        _loader_only(result, beyond, ended, cut, budget, measure, worker_rss, ladder_method)
    _restart(result, dataset, plan, collate_fn, step, clock)
    # As it stands after the duel (which may have measured it twice) and the choice.
    result.baseline = next(t for t in result.trials if t.config == base.config)
    return result


def _near_floor(result: SearchResult, rate: float) -> bool:
    floor = result.floor_samples_per_s
    return floor is not None and rate >= (1 - FLOOR_GAP) * floor


def _hold_back(result: SearchResult, trial: Trial, why: str) -> None:
    """Keep ``trial`` in the record, measured, but out of the choice."""
    held = dataclasses.replace(trial, reason=why)
    result.trials[result.trials.index(trial)] = held
    result.held_back.append(held)


def _try_prefetch(
    result: SearchResult,
    budget: Budget,
    measure: Callable[[LoaderConfig], Trial],
    worker_rss: int | None,
) -> None:
    measured = _eligible(result)
    if not measured:
        return
    best = max(measured, key=result.score)
    if best.config.num_workers == 0 or _near_floor(result, best.samples_per_s or 0.0):
        return
    config = best.config.replace(prefetch_factor=4)
    reason = _screen(budget, config, result.batch_bytes, worker_rss)
    if reason is not None:
        result.trials.append(Trial(config, "screened", reason=reason))
        return
    trial = measure(config)
    if trial.status == "measured" and result.score(trial) <= (1 + TIE) * result.score(best):
        # Not clearly better: measured, but the default prefetch stays the choice.
        _hold_back(result, trial, f"not {TIE:.0%} faster than prefetch 2")


def _try_start_methods(
    result: SearchResult,
    measure: Callable[..., Trial],
    methods: Sequence[StartMethod],
    sent: tuple[object, ...],
) -> None:
    measured = _eligible(result)
    if not measured or not methods:
        return
    best = max(measured, key=result.score)
    base = best.config
    if best.config.num_workers == 0:
        # Workers that were faster once running lost on their start: another start
        # method may win it back. Workers slower once running, none can.
        lost = [
            t
            for t in measured
            if t.config.num_workers and (t.samples_per_s or 0.0) > (best.samples_per_s or 0.0)
        ]
        if not lost:
            result.skipped.append(
                f"start methods {', '.join(methods)}: not tried, the fastest loads in the "
                f"training process and workers were no faster once running"
            )
            return
        base = max(lost, key=lambda t: t.samples_per_s or 0.0).config
    plan = result.epochs
    rerun = main_module_work() if any(m != "fork" for m in methods) else None
    for method in methods:
        rate = result.score(best)
        fastest: str = best.config.multiprocessing_context or "default start"
        if not best.config.num_workers:
            fastest = "loading in the training process"
        limit = None
        if plan is not None and rate > 0:
            # A candidate waits at least its first batch once per run (persistent workers)
            # or once per epoch: later than the best's whole run (or epoch), it has lost.
            run_s = plan.count * plan.batches * base.batch_size / rate
            per = 1 if plan.persistent else plan.count
            span = "whole run" if per == 1 else "epoch"
            limit = (
                run_s / per,
                f"the {span} of the fastest ({fastest}, {run_s / per:.2f} s; {plan.describe()})",
            )
        config = base.replace(multiprocessing_context=method)
        if method != "fork" and rerun is not None:
            result.trials.append(
                Trial(
                    config,
                    "dropped",
                    reason=(
                        f"not started: a {method} worker imports the main module again, "
                        f'and its top level works outside `if __name__ == "__main__":` '
                        f"({rerun}), which would run in the worker too; put that under the "
                        f"guard to have {method} measured"
                    ),
                )
            )
            continue
        if limit is not None and method != "fork":
            floor = _pickled_start_s(config, sent)
            if floor is not None and floor > limit[0]:
                trial = Trial(
                    config,
                    "dropped",
                    reason=(
                        f"not started: this process pickles what a worker is sent for each "
                        f"of the {config.num_workers} workers, {floor:.2f} s per start at "
                        f"least (timed once, tensors aside), longer than {limit[1]}"
                    ),
                )
                result.trials.append(trial)
                continue
        trial = measure(config, startup_limit=limit)
        if trial.status != "measured":
            continue
        if result.score(trial) > (1 + TIE) * rate:
            best = trial  # the one later methods must beat
        else:
            _hold_back(
                result,
                trial,
                f"not {TIE:.0%} faster than {fastest}"
                + (" over the run" if plan is not None else ""),
            )


def _pickled_start_s(config: LoaderConfig, sent: tuple[object, ...]) -> float | None:
    """A floor under a spawn or forkserver start of ``config``: its workers times the
    seconds to pickle what each is sent (the dataset, collate_fn, worker_init_fn)."""
    from trainperf.calibration.startmethod import pickling_s

    init = config.loader_kwargs().get("worker_init_fn")
    once = pickling_s((*sent, init))
    return None if once is None else once * config.num_workers


def _eligible(result: SearchResult) -> list[Trial]:
    return [
        t
        for t in result.trials
        if t.status == "measured" and t.samples_per_s and t not in result.held_back
    ]


def _duel(result: SearchResult, measure: Callable[..., Trial]) -> None:
    """Measure the two fastest once more, side by side, when they are close."""
    ranked = sorted(_eligible(result), key=lambda t: -result.score(t))
    if len(ranked) < 2:
        return
    first, second = ranked[0], ranked[1]
    if result.score(second) < (1 - DUEL_GAP) * result.score(first):
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
            first_batch_s=_mean(trial.first_batch_s, again.first_batch_s),
            warmup_s=_mean(trial.warmup_s, again.warmup_s),
            reason="measured twice (a close second)",
        )
        result.trials[result.trials.index(trial)] = combined


def _whole_runs(
    result: SearchResult,
    dataset: object,
    collate_fn: Callable[..., object] | None,
    step: Callable[[object], object] | None,
    clock: Callable[[], float],
) -> bool:
    """For a short run, time the finalists over the whole of it, as advised, in two
    interleaved rounds: where start-up is much of a run, its one measurement per
    candidate would decide between near-equals. ``False`` when the run is not short or
    there is nothing to decide."""
    plan = result.epochs
    ranked = sorted(_eligible(result), key=lambda t: -result.score(t))
    if plan is None or len(ranked) < 2:
        return False
    top = result.score(ranked[0])
    length = len(dataset)  # type: ignore[arg-type]
    samples = plan.count * length
    if top <= 0 or samples / top > RUN_CHECK_S:
        return False
    finalists = [t for t in ranked[:FINALISTS] if result.score(t) >= (1 - DUEL_GAP) * top]
    if len(finalists) < 2:
        return False
    seconds: dict[LoaderConfig, list[float]] = {t.config: [] for t in finalists}
    for turn in range(2):
        for trial in finalists if turn == 0 else finalists[::-1]:
            config = trial.config
            if config.num_workers:
                config = config.replace(persistent_workers=plan.persistent)
            try:
                taken = time_epochs(
                    dataset,
                    config,
                    epochs=plan.count,
                    collate_fn=collate_fn,
                    train_step=step,
                    clock=clock,
                    limit_s=3 * samples / top,
                )
            except Exception:  # it ran as a candidate: count it as lost, not as a crash
                taken = math.inf
            seconds[trial.config].append(taken)
    for trial in finalists:
        median = statistics.median(seconds[trial.config])
        rate = samples / median if math.isfinite(median) and median > 0 else 0.0
        result.runs[trial.config] = rate
        timed = dataclasses.replace(
            trial,
            reason=f"timed over the whole run ({plan.describe()}), side by side with the "
            f"other finalists: {rate:,.1f} samples/s",
        )
        result.trials[result.trials.index(trial)] = timed
    return True


def _mean(a: float | None, b: float | None) -> float | None:
    return a if b is None else b if a is None else (a + b) / 2


def _choose(result: SearchResult, *, over_budget: bool) -> None:
    measured = _eligible(result)
    if not measured:
        return
    fastest = max(measured, key=result.score)
    top = result.score(fastest)
    close = [t for t in measured if result.score(t) >= (1 - TIE) * top]
    winner = min(close, key=lambda t: (t.config.num_workers, -result.score(t)))
    what = "fastest within the CPU budget" if over_budget else "fastest measured"
    plan = result.epochs
    if plan is not None:
        what += f" over {plan.describe()}, start-up included"
        if winner.config in result.runs:
            what += " (the finalists timed over all of it)"
    if winner is fastest:
        why = f"{what}: {top:,.1f} samples/s"
    else:
        why = (
            f"within {TIE:.0%} of the {what} ({fastest.config.describe()}: {top:,.1f} "
            f"samples/s) with fewer workers"
        )
    chosen = dataclasses.replace(winner, status="chosen", reason=why)
    result.trials[result.trials.index(winner)] = chosen
    result.winner = chosen
    result.why = why


def _loader_only(
    result: SearchResult,
    beyond: list[int],
    ended: str,
    cut: bool,
    budget: Budget,
    measure: Callable[..., Trial],
    worker_rss: int | None,
    start_method: StartMethod | None,
) -> None:
    """Climb on past the CPU budget (loader only): the fastest loading with no CPU kept
    for a training step, measured beside the choice, never chosen. ``ended``: why the
    climb within the budget ended; ``cut``: ``max_workers`` left rungs out."""
    winner = result.winner
    if winner is None:
        return
    best = max([*_eligible(result), winner], key=result.score)
    searched, note = True, "the climb ended within the CPU budget"
    if ended in ("patience", "floor"):
        note = "the climb stopped within the CPU budget: more workers brought no gain"
    elif ended == "memory":
        searched, note = False, "not measured further: more workers need more memory"
    elif cut:
        searched, note = False, f"not measured above max_workers={budget.max_workers}"
    stale = 0
    template = winner.config if winner.config.num_workers else None
    for index, workers in enumerate(beyond):
        after = beyond[index + 1 :]
        if template is not None:
            config = template.replace(num_workers=workers, main_threads=1)
        else:
            config = LoaderConfig(
                batch_size=budget.batch_size,
                num_workers=workers,
                prefetch_factor=2,
                pin_memory=budget.pin_memory,
                main_threads=1,
                multiprocessing_context=start_method,
            )
        reason = _screen(budget, config, result.batch_bytes, worker_rss)
        if reason is not None:
            result.trials.append(Trial(config, "screened", reason=reason))
            _skip(result, after, "more workers need more memory still")
            searched, note = False, f"not measured past num_workers={workers}: {reason}"
            break
        trial = measure(config)
        if trial.status == "measured":
            _hold_back(result, trial, OVER_BUDGET)
            trial = result.held_back[-1]
        rate = result.score(trial) if trial.status == "measured" else 0.0
        if rate > (1 + IMPROVE) * result.score(best):
            stale = 0
        else:
            stale += 1
        if rate > result.score(best):
            best = trial
        searched = True
        note = f"measured past the CPU budget up to num_workers={workers}"
        if stale >= PATIENCE:
            _skip(
                result,
                after,
                f"the climb past the CPU budget stopped, {PATIENCE} rungs without a "
                f"{IMPROVE:.0%} gain",
            )
            note += f", where {PATIENCE} rungs brought no {IMPROVE:.0%} gain"
            break
    else:
        if beyond and cut:
            searched = False
            note += f"; not measured above max_workers={budget.max_workers}"
    result.loader_only = best
    result.loader_only_searched = searched
    result.loader_only_note = note


def _restart(
    result: SearchResult,
    dataset: object,
    plan: TrialPlan,
    collate_fn: Callable[..., object] | None,
    step: Callable[[object], object] | None,
    clock: Callable[[], float],
) -> None:
    """The winner's start-up per epoch with its workers kept alive, and its rate over the
    run with it."""
    winner = result.winner
    if winner is None:
        return
    epochs = result.epochs
    live = None
    if winner.config.num_workers and winner.samples_per_s and math.isfinite(winner.samples_per_s):
        try:
            result.restart = measure_restart(
                dataset,
                winner.config,
                samples_per_s=winner.samples_per_s,
                collate_fn=collate_fn,
                step=step,
                timeout_s=plan.timeout_s,
                clock=clock,
            )
            live = result.restart.live_startup_s
        except Exception as exc:  # a measurement of the advice: it never ends the search
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            result.skipped.append(
                f"persistent workers' restart: not measured ({type(exc).__name__}: {text})"[:300]
            )
    if epochs is not None:
        timed = result.runs.get(winner.config)
        modelled = run_samples_per_s(winner, epochs, live_startup_s=live)
        result.run_samples_per_s = timed if timed is not None else modelled
