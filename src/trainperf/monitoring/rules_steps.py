"""Rules on the training steps' times: slow steps, epoch starts, drift, the loop's own work.

Each is registered with :func:`trainperf.monitoring.rules.rule`; thresholds are the
module's constants.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainperf.monitoring.analyze import (
    INPUT_SHARE,
    SLOW_SHARE,
    SLOW_STEP,
    TAIL_RATIO,
    Finding,
    _gain,
)
from trainperf.monitoring.rules import RunRecords, rule

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from trainperf.monitoring.analyze import Confidence
    from trainperf.monitoring.records import Period

__all__ = [
    "CHECKPOINT_SHARE",
    "DRIFT_BLOCKS",
    "DRIFT_RATIO",
    "DRIFT_TAU",
    "EPOCH_START_SPIKE",
    "GC_SHARE",
    "LOOP_SHARE",
    "MIN_BLOCK_S",
    "MIN_RISE_S",
    "WARM_UP_SHARE",
    "WARM_UP_SPAN",
    "Drift",
    "checkpoint_stall",
    "epoch_start_spike",
    "gc_pauses",
    "loop_overhead",
    "slow_steps",
    "step_drift",
    "trend",
]

EPOCH_START_SPIKE = 5.0  # first batch of an epoch waits this many times the median
EPOCH_SPIKE_SHARE = 0.05  # ... and those waits' excess is this share of training
# Step drift: the steady steps in DRIFT_BLOCKS consecutive blocks; the blocks' mean step
# time rises with Kendall's tau >= DRIFT_TAU (p < DRIFT_P) and the Theil-Sen line through
# them ends DRIFT_RATIO times higher than it starts.
DRIFT_BLOCKS = 20
MIN_BLOCK = 3  # steps per block at least: fewer blocks for a short run
# Seconds a block spans at least. The machine's own fluctuations (clock frequency, the
# scheduler, other processes) move sub-millisecond steps by a third over tens of
# milliseconds; blocks shorter than this took them for a trend in a run of 0.6 s (one
# run in twenty of 800 steps of 0.7 ms, quiet machine). Fewer blocks for a short run.
MIN_BLOCK_S = 0.1
MIN_DRIFT_BLOCKS = 8
DRIFT_TAU = 0.5
DRIFT_P = 0.01
DRIFT_RATIO = 1.3
# Seconds the fitted line rises at least. The same loop's median step moved between
# 0.5 and 0.8 ms from epoch to epoch on a quiet machine, and a level that shifted late
# in the run fitted a 1.7x rise: under a millisecond a rise is the machine's, not a cost.
MIN_RISE_S = 0.001
MIN_GROWTH = 0.02  # a line named as growing gained at least this share of a step
# Slow steps that are a warm-up: this share of them in the first WARM_UP_SPAN of the steps.
WARM_UP_SHARE = 0.8
WARM_UP_SPAN = 1 / 3
# Loop overhead: the loop's own work takes LOOP_SHARE of the steps; fewer than
# CONFIDENT_SAMPLES stack samples in the steps make it a low-confidence finding.
LOOP_SHARE = 0.10
CONFIDENT_SAMPLES = 50
MIN_LINE_SAMPLES = 2  # a line named needs this many samples
GC_SHARE = 0.05  # of the run
CHECKPOINT_SHARE = 0.05  # of the run


@rule(
    "slow-steps",
    reads=("steps", "conditions"),
    thresholds={"slow_step": SLOW_STEP, "tail_ratio": TAIL_RATIO, "slow_share": SLOW_SHARE},
)
def slow_steps(records: RunRecords) -> list[Finding]:
    """A run whose mean step is far above its median: name the slow steps, whatever the
    median step's verdict (steps ``SLOW_STEP`` times the median, when the mean is
    ``TAIL_RATIO`` times the median and they take ``SLOW_SHARE`` of training). Slow
    steps that are the run's warm-up (:func:`_warming_up`) and do not wait for data are
    not named: a longer run amortises them."""
    tail, step, conditions = records.tail, records.step, records.conditions
    if tail is None or tail.slow_share < SLOW_SHARE or tail.mean_s < TAIL_RATIO * tail.median_s:
        return []
    if tail.slow_data_wait_share < INPUT_SHARE and _warming_up(records.decided, tail.median_s):
        return []  # the run's first steps: a warm-up a longer run amortises, nothing to fix
    when = f"mostly every {tail.every} steps" if tail.every else "at irregular steps"
    if tail.slow_data_wait_share >= INPUT_SHARE and step.kind == "input-bound":
        return []  # the steps wait for data, slow or not: the input-bound finding says it
    from trainperf.monitoring.rules_workers import startup_matters

    if tail.slow_data_wait_share >= INPUT_SHARE and startup_matters(records) is not None:
        return []  # workers starting again: the worker-startup finding says it, by phase
    if tail.slow_data_wait_share >= INPUT_SHARE:
        fix = (
            f"the slow steps ({when}) wait for the DataLoader: workers restarting, a slow "
            "shard or file, a cache filling; persistent_workers=True and a larger "
            "prefetch_factor hide refills"
        )
    else:
        fix = (
            f"the slow steps ({when}) are not waiting for data: look for work the loop does "
            "every N steps (logging or writing files, checkpoints, evaluation, garbage "
            "collection, a progress bar) and do it less often or in the background"
        )
    if conditions is not None and conditions.contended and not records.quiet_only:
        fix += (
            "; or it is the busy machine (other processes took the CPUs during this run): "
            "re-run on a quiet machine to tell"
        )
    return [
        Finding(
            "slow-steps",
            {
                "mean_step_s": tail.mean_s,
                "median_step_s": tail.median_s,
                "slow_steps": float(tail.slow_steps),
                "slow_share_of_training": tail.slow_share,
                "slow_data_wait_share": tail.slow_data_wait_share,
            },
            fix,
            f"if the slow steps took the median step's time: {_gain(tail.excess_share)} "
            "samples/s (estimated)",
            step.confidence,
            step.reasons,
        )
    ]


def _warming_up(steps: Sequence[Period], median_s: float) -> bool:
    """Whether the slow steps (over ``SLOW_STEP`` x ``median_s``) are the run's first:
    at least ``WARM_UP_SHARE`` of them within its first ``WARM_UP_SPAN`` of steps, the
    lazy initialisation, allocator and caches that a short (or stopped) run over-weighs.
    """
    slow = [i for i, p in enumerate(steps) if p.wall_s > SLOW_STEP * median_s]
    early = sum(i < WARM_UP_SPAN * len(steps) for i in slow)
    return bool(slow) and early >= WARM_UP_SHARE * len(slow)


@rule(
    "epoch-start-spike",
    reads=("steps",),
    thresholds={"ratio": EPOCH_START_SPIKE, "share": EPOCH_SPIKE_SHARE},
)
def epoch_start_spike(records: RunRecords) -> list[Finding]:
    """The first batch of each epoch waits ``EPOCH_START_SPIKE`` times the median batch
    (workers started again every epoch), and the excess takes ``EPOCH_SPIKE_SHARE`` of
    the training time."""
    from trainperf.monitoring.rules_workers import startup_matters

    if startup_matters(records) is not None:
        return []  # the worker-startup finding says it, with what each start spent
    train = records.train
    firsts = [p.data_wait_s for p in train if p.first_of_epoch and p.index > 0]
    others = [p.data_wait_s for p in train if not p.first_of_epoch]
    if not firsts or not others:
        return []
    typical = statistics.median(others)
    spike = statistics.median(firsts)
    if spike <= EPOCH_START_SPIKE * max(typical, 1e-4):
        return []
    if (spike - typical) * len(firsts) < EPOCH_SPIKE_SHARE * records.train_s:
        return []  # real, but too small a part of training to be worth a change
    return [
        Finding(
            "epoch-start-spike",
            {"first_batch_wait_s": spike, "median_batch_wait_s": typical},
            "keep workers alive between epochs (persistent_workers=True)",
            f"{spike - typical:.3f} s per epoch",
        )
    ]


@dataclass(frozen=True)
class Drift:
    """How the mean step time moves through a run (seconds per step).

    ``first_s`` and ``last_s`` are the Theil-Sen line's values at the first and last
    block; ``tau`` and ``p_value`` Kendall's rank correlation of the blocks' means with
    their order (scipy.stats.kendalltau, the Mann-Kendall trend test).
    """

    blocks: int
    steps_per_block: int
    first_s: float
    last_s: float
    tau: float
    p_value: float
    began_s: float = 0.0  # the mean step of the first two blocks, as measured

    @property
    def ratio(self) -> float:
        return self.last_s / self.first_s if self.first_s > 0 else float("inf")

    @property
    def growing(self) -> bool:
        return (
            self.tau >= DRIFT_TAU
            and self.p_value < DRIFT_P
            and self.ratio >= DRIFT_RATIO
            and self.last_s - self.first_s >= MIN_RISE_S
        )


def trend(steps: Sequence[Period]) -> Drift | None:
    """The trend of the mean step time over ``steps`` (in run order), by blocks of
    consecutive steps, so that a cost paid every N steps (a flush) counts in full;
    ``None`` for fewer than ``MIN_DRIFT_BLOCKS`` blocks of ``MIN_BLOCK`` steps and
    ``MIN_BLOCK_S`` seconds each."""
    from scipy import stats

    spanned = sum(p.wall_s for p in steps)
    blocks = min(DRIFT_BLOCKS, len(steps) // MIN_BLOCK, int(spanned / MIN_BLOCK_S))
    if blocks < MIN_DRIFT_BLOCKS:
        return None
    size = len(steps) // blocks
    means = [
        statistics.fmean(p.wall_s for p in steps[i * size : (i + 1) * size]) for i in range(blocks)
    ]
    order = list(range(blocks))
    tau = stats.kendalltau(order, means)
    slope, intercept, _, _ = stats.theilslopes(means, order)
    first = float(intercept)
    last = float(intercept + slope * (blocks - 1))
    p_value = float(tau.pvalue) if tau.pvalue == tau.pvalue else 1.0  # NaN: all equal
    statistic = float(tau.statistic) if tau.statistic == tau.statistic else 0.0
    began = statistics.fmean(means[:2])
    return Drift(blocks, size, max(first, 1e-9), last, statistic, p_value, began)


@rule(
    "step-drift",
    reads=("steps", "anatomy", "conditions"),
    thresholds={
        "tau": DRIFT_TAU,
        "p_value": DRIFT_P,
        "ratio": DRIFT_RATIO,
        "rise_s": MIN_RISE_S,
        "block_s": MIN_BLOCK_S,
    },
)
def step_drift(records: RunRecords) -> list[Finding]:
    """Steps that take longer and longer as the run goes (a cost that grows with the run:
    a log file rewritten whole, a list searched every step, memory fragmenting), named
    by the user lines whose share of the step grows most when the anatomy has them."""
    steady = sorted(records.steady, key=lambda p: p.index)
    found = trend(steady)
    if found is None or not found.growing:
        return []
    reasons = []
    confidence: Confidence = "high"
    if records.conditions is not None and records.conditions.contended:
        confidence = "low"
        reasons.append(
            "the machine was busy during the run: load that rose while it ran looks the same"
        )
    lines = _growing_lines(records)
    where = (
        "; the step's own work that grew most: "
        + "; ".join(
            f"{line} ({before:.0%} of a step first, {after:.0%} last)"
            for line, before, after in lines
        )
        if lines
        else ""
    )
    # The gain at the pace the run began with, as measured (the first blocks' mean), not
    # the fitted line's start, which a flush every N steps can put below any real step.
    pace = found.began_s * len(steady)
    spent = sum(p.wall_s for p in steady)
    return [
        Finding(
            "step-drift",
            {
                "first_step_s": found.began_s,
                "fitted_first_step_s": found.first_s,
                "last_step_s": found.last_s,
                "growth": found.ratio,
                "kendall_tau": found.tau,
                "p_value": found.p_value,
                "steps": float(len(steady)),
            },
            "a cost that grows with every step: work the loop repeats over everything "
            "so far (rewriting a whole log or metrics file, searching a growing list, "
            "keeping tensors with their graphs); append instead of rewriting, keep "
            f"bounded state{where}",
            f"at the first steps' pace ({found.began_s * 1e3:.1f} ms a step): "
            f"{_gain(1 - pace / spent) if spent > pace else '+0%'} samples/s over this run, "
            "more the longer it runs (estimated)",
            confidence,
            tuple(reasons),
        )
    ]


def _growing_lines(records: RunRecords) -> list[tuple[str, float, float]]:
    """The user lines whose share of the step grew most (at least ``MIN_GROWTH``), from
    the stack samples: ``(where, first share, last share)``, at most three."""
    from trainperf.monitoring.anatomy_analysis import line_growth

    if records.anatomy_record is None:
        return []
    grown = [
        g
        for g in line_growth(records.anatomy_record, records.periods)
        if g.growth >= MIN_GROWTH and g.last_samples >= MIN_LINE_SAMPLES
    ]
    return [(_where(g.file, g.line, g.code), g.first_share, g.last_share) for g in grown[:3]]


def _where(file: str, line: int, code: str) -> str:
    """``train.py:88 pbar.set_postfix(loss=loss.item())``."""
    return f"{file}:{line} {code}".strip()


@rule(
    "loop-overhead",
    reads=("steps", "anatomy"),
    thresholds={"share": LOOP_SHARE, "samples": CONFIDENT_SAMPLES},
)
def loop_overhead(records: RunRecords) -> list[Finding]:
    """The loop's own per-step work (progress bars, logging and ``.item()`` calls, file
    writes, bookkeeping: stack samples outside data loading, forward, backward, the
    optimizer and checkpoints) takes at least ``LOOP_SHARE`` of the steps' time. The
    lines that take it are named, ranked by their share of a step."""
    anatomy = records.anatomy
    if anatomy is None or anatomy.samples == 0:
        return []
    share = anatomy.shares.get("loop", 0.0)
    if share < LOOP_SHARE:
        return []
    lines = [line for line in anatomy.loop_lines if line.samples >= MIN_LINE_SAMPLES][:5]
    named = "; ".join(
        f"{_where(line.file, line.line, line.code)} ({line.share:.0%} of a step)" for line in lines
    )
    fixes = _loop_fixes(line.code.split("#", 1)[0] for line in lines)  # code, not comments
    confidence, reasons = _anatomy_confidence(records)
    evidence = {
        "loop_share_of_step": share,
        "loop_s_per_step": anatomy.seconds_per_step.get("loop", 0.0),
        "median_step_s": anatomy.median_step_s,
        "stack_samples": float(anatomy.samples),
    }
    return [
        Finding(
            "loop-overhead",
            evidence,
            f"the loop's own work takes {share:.0%} of each step"
            + (f", in: {named}" if named else "")
            + f". {fixes}",
            f"if that work were done every 50 steps instead: {_gain(share * 0.98)} "
            "samples/s (estimated)",
            confidence,
            reasons,
        )
    ]


# What a line's code says about how to make it cheaper, first match wins.
_FIXES = (
    (
        ("tqdm", "pbar", "set_postfix", "set_description", "bar."),
        "update the progress bar less often (tqdm(..., mininterval=1.0), or "
        "Lightning's bar with refresh_rate)",
    ),
    (
        (".item()", ".tolist()", ".cpu()", ".numpy()", "float("),
        "keep metrics as tensors and read them (.item()) every N steps: each read "
        "waits for the step's work to finish",
    ),
    (
        ("write", "csv", "json.dump", "open(", "flush"),
        "append instead of rewriting, and write every N steps or from a background thread",
    ),
    (("print(", "log", "add_scalar"), "log every N steps, not every step"),
)


def _loop_fixes(codes: Iterable[str]) -> str:
    found = []
    for code in codes:
        for patterns, fix in _FIXES:
            if any(p in code for p in patterns):
                if fix not in found:
                    found.append(fix)
                break
    if not found:
        return "Do that work every N steps, or outside the loop."
    return "Fix: " + "; ".join(found) + "."


def _anatomy_confidence(records: RunRecords) -> tuple[Confidence, tuple[str, ...]]:
    anatomy = records.anatomy
    reasons = []
    if anatomy is not None and anatomy.samples < CONFIDENT_SAMPLES:
        reasons.append(
            f"only {anatomy.samples} stack samples fell in the steps "
            f"(at least {CONFIDENT_SAMPLES} wanted): a longer run tells more"
        )
    if records.conditions is not None and records.conditions.contended:
        reasons.append("the machine was busy: other processes' work slows every line alike")
    return ("low" if reasons else "high"), tuple(reasons)


@rule("gc-pauses", reads=("anatomy",), thresholds={"share": GC_SHARE})
def gc_pauses(records: RunRecords) -> list[Finding]:
    """Garbage collection pauses inside the steps take at least ``GC_SHARE`` of the
    run (measured with ``gc.callbacks``, not sampled)."""
    anatomy = records.anatomy
    total = records.total_s or records.train_s
    if anatomy is None or total <= 0 or anatomy.gc_s < GC_SHARE * total:
        return []
    share = anatomy.gc_s / total
    return [
        Finding(
            "gc-pauses",
            {
                "gc_s": anatomy.gc_s,
                "gc_pauses": float(anatomy.gc_pauses),
                "gc_share_of_run": share,
            },
            f"{anatomy.gc_pauses} garbage collections paused the steps for {anatomy.gc_s:.2f} s "
            "in all: call gc.freeze() once set-up is done (objects made before it are never "
            "scanned again), raise gc.set_threshold(...), and avoid making reference cycles "
            "every step (closures, self-referencing containers)",
            f"if the pauses went: {_gain(share)} (estimated)",
        )
    ]


@rule("checkpoint-stall", reads=("anatomy",), thresholds={"share": CHECKPOINT_SHARE})
def checkpoint_stall(records: RunRecords) -> list[Finding]:
    """Steps that wait on ``torch.save`` / ``torch.load`` (sampled inside
    torch.serialization) for at least ``CHECKPOINT_SHARE`` of the run."""
    anatomy = records.anatomy
    total = records.total_s or records.train_s
    if anatomy is None or total <= 0:
        return []
    seconds = anatomy.shares.get("checkpoint", 0.0) * anatomy.wall_s
    if seconds < CHECKPOINT_SHARE * total:
        return []
    share = seconds / total
    lines = anatomy.lines_of("checkpoint")[:2]
    where = ", at " + "; ".join(_where(x.file, x.line, x.code) for x in lines) if lines else ""
    confidence, reasons = _anatomy_confidence(records)
    return [
        Finding(
            "checkpoint-stall",
            {"checkpoint_s": seconds, "checkpoint_share_of_run": share},
            f"training stops while checkpoints are written ({seconds:.2f} s{where}): save "
            "less often, save from a background thread (copy the state_dict to CPU first), "
            "or use torch.distributed.checkpoint.async_save",
            f"if saving did not stop training: {_gain(share)} (estimated)",
            confidence,
            reasons,
        )
    ]
