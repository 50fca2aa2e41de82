"""Pure functions from a run's periods to shares, throughput and two verdicts.

The **step's** verdict says what a steady training step waits on; the **run's** says
where the run's wall time went (start-up and validation, else its steps). A short
run can spend half its time starting up and still be input-bound at every step, so
both are reported. Rules, with their thresholds (a verdict needs at least
``MIN_STEPS`` training steps; the first step of each epoch is left out, as worker
start-up and warm-up are reported on their own):

* ``validation-bound`` (run): validation takes at least ``VALIDATION_SHARE`` of the time.
* ``startup-bound`` (run): the time before the first step is at least ``STARTUP_SHARE``.
* ``input-bound``: the median step waits for data at least ``INPUT_SHARE`` of its time.
* ``host-sync-bound``: a GPU is in use (NVML samples during training) but busy
  less than ``HOST_SYNC_UTIL`` % of the time although the loop hardly waits for
  data: the host keeps it idle (per-step synchronisations such as ``.item()``,
  launch overhead). Without NVML this rule cannot fire; ``device_s`` per step
  (CUDA events) is still reported.
* ``compute-bound``: the median step waits for data at most ``COMPUTE_SHARE``.
* ``balanced``: none of the above.

Each finding states its evidence, the fix, and the gain if the cause were removed
(e.g. input-bound with a data-wait share ``w`` gains at most ``1 / (1 - w) - 1``).
When a probe replayed cached batches (:mod:`.probe`), the input-bound gain is the
measured one, and a replay not at least ``1 - CONFIRM_RATIO`` faster than the
measured step says the verdict is not confirmed.

Every verdict and finding carries a **confidence** -- ``high``, ``low`` or
``inconclusive`` -- and the reasons that lowered it: the 95% bootstrap interval of the
deciding share straddles its threshold, fewer than ``CONFIDENT_STEPS`` steady steps, a
phase of the run ``PHASE_RATIO`` times slower than another, a run share near its
threshold, a short run's start-up, or a contended machine (:mod:`.conditions`). When
contention came and went, the step's verdict is taken on the steps measured while the
machine was quiet, if there are enough of them. A contended run whose verdict is also
doubtful for another reason is ``inconclusive``.

Further findings: ``slow-steps`` (the mean step far above the median: the tail the
median hides), ``epoch-start-spike``, ``memory-creep``, ``thread-oversubscription``,
``cpu-throttled`` (the cgroup's CPU quota ran out in ``THROTTLED_SHARE`` of its
periods) and, across ranks, ``straggler-rank``. The input audit (:mod:`.sample_audit`)
adds ``rank-data-overlap`` and ``epoch-order-repeats``.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from trainperf._schema import SUMMARY

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from trainperf._json import JsonObject
    from trainperf.monitoring.anatomy_analysis import StepAnatomy
    from trainperf.monitoring.anatomy_record import AnatomyRecord
    from trainperf.monitoring.conditions import Conditions
    from trainperf.monitoring.probe import Replay
    from trainperf.monitoring.ranks import RankBreakdown
    from trainperf.monitoring.records import Period, RunMeta
    from trainperf.monitoring.sampler import Sample
    from trainperf.monitoring.worker_timing import WorkerTiming
    from trainperf.monitoring.workers import WorkerPools

__all__ = [
    "Confidence",
    "EpochStats",
    "Finding",
    "RunSummary",
    "Tail",
    "Verdict",
    "epoch_stats",
    "recorded_cpu_budget",
    "step_data_share",
    "summarize",
    "summarize_folder",
]

MIN_STEPS = 5
VALIDATION_SHARE = 0.5
STARTUP_SHARE = 0.5
INPUT_SHARE = 0.3
COMPUTE_SHARE = 0.1
HOST_SYNC_UTIL = 50.0  # median GPU utilisation (%) during training below this
# A replay of cached batches (the probe) confirms input-bound when a step is this much
# faster than the measured median step; a replay this much slower than the step it
# would free (which waited for data besides) ran under another load than the run did.
CONFIRM_RATIO = 0.9
DISTURBED_RATIO = 1.1
# Confidence: a verdict on fewer steady steps is low; the deciding share's interval
# is a bootstrap interval (trainperf._stats); a run whose blocks
# of steps (PHASE_BLOCKS of them) differ PHASE_RATIO times had a slow phase; a run
# share within RUN_MARGIN above its threshold is near it.
CONFIDENT_STEPS = 20
PHASE_BLOCKS = 5
PHASE_RATIO = 2.0
RUN_MARGIN = 0.1
# The tail: steps over SLOW_STEP x the median are slow; they are a finding when the
# mean step is TAIL_RATIO x the median and they take SLOW_SHARE of the training time.
SLOW_STEP = 3.0
TAIL_RATIO = 1.5
SLOW_SHARE = 0.2
PERIODIC_SHARE = 0.6  # of the gaps between slow steps, for them to come "every N steps"


@dataclass(frozen=True)
class Finding:
    kind: str
    evidence: dict[str, float]
    fix: str
    gain: str
    confidence: Confidence = "high"
    reasons: tuple[str, ...] = ()  # what lowered the confidence

    def to_json(self) -> JsonObject:
        return {
            "kind": self.kind,
            "evidence": dict(self.evidence),
            "fix": self.fix,
            "gain": self.gain,
            "confidence": self.confidence,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    steps: int
    train_s: float
    val_s: float
    val_data_wait_s: float
    first_batch_wait_s: float | None  # the first fetch of the epoch: worker start-up
    peak_memory_bytes: int | None  # process and workers, from the sampler
    device_allocated_peak_bytes: int | None = None  # CUDA, reset every epoch
    device_reserved_peak_bytes: int | None = None

    def to_json(self) -> JsonObject:
        return {
            "epoch": self.epoch,
            "steps": self.steps,
            "train_s": self.train_s,
            "val_s": self.val_s,
            "val_data_wait_s": self.val_data_wait_s,
            "first_batch_wait_s": self.first_batch_wait_s,
            "peak_memory_bytes": self.peak_memory_bytes,
            "device_allocated_peak_bytes": self.device_allocated_peak_bytes,
            "device_reserved_peak_bytes": self.device_reserved_peak_bytes,
        }


def epoch_stats(
    periods: Sequence[Period],
    host: Sequence[Sample] = (),
    device_memory: Mapping[int, tuple[int, int]] | None = None,
) -> list[EpochStats]:
    """Per epoch: training and validation time, first-batch wait, peak memory."""
    device_memory = device_memory or {}
    out = []
    for epoch in sorted({p.epoch for p in periods}):
        train = [p for p in periods if p.epoch == epoch and p.kind == "train"]
        val = [p for p in periods if p.epoch == epoch and p.kind == "val"]
        inside = [p for p in periods if p.epoch == epoch]
        low = min(p.start_s for p in inside)
        high = max(p.start_s + p.wall_s for p in inside)
        memory = [s.rss_bytes + s.children_rss_bytes for s in host if low <= s.t_s <= high]
        first = next((p.data_wait_s for p in train if p.first_of_epoch), None)
        allocated, reserved = device_memory.get(epoch, (None, None))
        out.append(
            EpochStats(
                epoch=epoch,
                steps=len(train),
                train_s=sum(p.wall_s for p in train),
                val_s=sum(p.wall_s for p in val),
                val_data_wait_s=sum(p.data_wait_s for p in val),
                first_batch_wait_s=first,
                peak_memory_bytes=max(memory) if memory else None,
                device_allocated_peak_bytes=allocated,
                device_reserved_peak_bytes=reserved,
            )
        )
    return out


Confidence = Literal["high", "low", "inconclusive"]


@dataclass(frozen=True)
class Verdict:
    """One answer (the step's or the run's bottleneck) and how sure it is.

    ``share`` is the deciding share (data wait of the median step, start-up or
    validation of the run), ``share_low``-``share_high`` its 95% bootstrap interval
    where it comes from many steps, ``threshold`` the rule's; ``reasons`` say what
    lowered the confidence.
    """

    kind: str
    confidence: Confidence
    reasons: tuple[str, ...] = ()
    share: float | None = None
    share_low: float | None = None
    share_high: float | None = None
    threshold: float | None = None
    steps: int = 0  # steady steps the verdict was taken on

    def to_json(self) -> JsonObject:
        return {
            "kind": self.kind,
            "confidence": self.confidence,
            "reasons": list(self.reasons),
            "share": _round(self.share),
            "share_low": _round(self.share_low),
            "share_high": _round(self.share_high),
            "threshold": self.threshold,
            "steps": self.steps,
        }


@dataclass(frozen=True)
class Tail:
    """The slow end of the steady steps: what a verdict on the median step hides."""

    mean_s: float
    median_s: float
    p90_s: float
    slow_steps: int  # steps over SLOW_STEP x the median
    slow_share: float  # their share of the training time
    slow_data_wait_share: float  # how much of their time was data wait
    every: int | None  # the slow steps come every N steps
    excess_share: float  # training time saved if the slow steps took the median's

    def to_json(self) -> JsonObject:
        return {
            "mean_s": _round(self.mean_s, 6),
            "median_s": _round(self.median_s, 6),
            "mean_over_median": _round(self.mean_s / self.median_s if self.median_s else None),
            "p90_s": _round(self.p90_s, 6),
            "slow_steps": self.slow_steps,
            "slow_share": _round(self.slow_share),
            "slow_data_wait_share": _round(self.slow_data_wait_share),
            "every": self.every,
            "excess_share": _round(self.excess_share),
        }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class RunSummary:
    steps: int
    samples: int | None
    train_s: float
    val_s: float
    startup_s: float
    samples_per_s: float | None
    step_median_s: float | None
    shares: dict[str, float]
    primary: str
    findings: tuple[Finding, ...]
    ranks: int = 1
    epochs: tuple[EpochStats, ...] = ()
    device_step_median_s: float | None = None  # CUDA events, steady steps
    gpu_util_percent: float | None = None  # NVML, median over training
    # The step's bottleneck and the run's, each with its confidence (``primary`` is the
    # run's answer where start-up or validation dominate, else the step's).
    step: Verdict = Verdict("insufficient-data", "inconclusive")
    run: Verdict = Verdict("insufficient-data", "inconclusive")
    tail: Tail | None = None
    conditions: Conditions | None = None
    anatomy: StepAnatomy | None = None  # what the steps' time went on, by phase and line
    # The user's own batch-making functions whose time counts as data wait (a loop
    # without a DataLoader), as "file:function".
    data_wait_functions: tuple[str, ...] = ()
    # Language-model batches: tokens trained on (attention-mask ones), per second of
    # training; samples/s and tokens/s count every micro-batch of an accumulated step.
    tokens: int | None = None
    tokens_per_s: float | None = None
    # The DataLoader workers' starts and batches' stages, timed in the workers.
    workers: WorkerTiming | None = None
    # Several ranks: each rank's part of a step and the straggler analysis.
    rank_breakdown: RankBreakdown | None = None
    # The input audit: the samples each rank trained on (:mod:`.sample_audit`).
    sample_audit: JsonObject | None = None

    @property
    def confidence(self) -> Confidence:
        """The primary verdict's confidence."""
        return self.run.confidence if self.primary == self.run.kind else self.step.confidence

    @property
    def reasons(self) -> tuple[str, ...]:
        chosen = self.run if self.primary == self.run.kind else self.step
        return chosen.reasons

    def to_json(self) -> JsonObject:
        return {
            "schema_version": SUMMARY.version,
            "steps": self.steps,
            "samples": self.samples,
            "train_s": self.train_s,
            "val_s": self.val_s,
            "startup_s": self.startup_s,
            "samples_per_s": self.samples_per_s,
            "tokens": self.tokens,
            "tokens_per_s": self.tokens_per_s,
            "step_median_s": self.step_median_s,
            "shares": dict(self.shares),
            "ranks": self.ranks,
            "epochs": [e.to_json() for e in self.epochs],
            "device": {
                "step_median_s": self.device_step_median_s,
                "gpu_util_percent": self.gpu_util_percent,
            },
            "conditions": None if self.conditions is None else self.conditions.to_json(),
            "anatomy": None if self.anatomy is None else self.anatomy.to_json(),
            "data_wait_functions": list(self.data_wait_functions),
            "workers": None if self.workers is None else self.workers.to_json(),
            "rank_breakdown": (
                None if self.rank_breakdown is None else self.rank_breakdown.to_json()
            ),
            "sample_audit": self.sample_audit,
            "verdict": {
                "primary": self.primary,
                "confidence": self.confidence,
                "reasons": list(self.reasons),
                "step": self.step.to_json(),
                "run": self.run.to_json(),
                "tail": None if self.tail is None else self.tail.to_json(),
                "findings": [f.to_json() for f in self.findings],
            },
        }


def summarize(
    periods: Sequence[Period],
    *,
    startup_s: float = 0.0,
    host: Sequence[Sample] = (),
    threads: int | None = None,
    cpus: float | None = None,
    device_memory: Mapping[int, tuple[int, int]] | None = None,
    replayed: Replay | None = None,
    stopped_early: bool = False,
    anatomy: AnatomyRecord | None = None,
    worker_pools: Sequence[WorkerPools] = (),
    workers: WorkerTiming | None = None,
) -> RunSummary:
    """The run's shares, verdicts (step and run, with confidence) and findings.

    ``cpus`` is the run's CPU budget (detected when not given); ``stopped_early``
    says the run was cut short on purpose (``trainperf doctor``), so its start-up
    weighs more than it would over a whole run. ``anatomy`` holds the training
    thread's stack samples and GC pauses (:mod:`.anatomy`); ``worker_pools`` the thread
    pools read inside the DataLoader workers (:mod:`.workers`); ``workers`` their
    starts and batches' stages (:mod:`.worker_timing`).
    """
    if cpus is None:
        from trainperf.resources import detect_resources

        cpus = detect_resources(gpus=False).cpus_per_rank
    loaded_by: tuple[str, ...] = ()
    if anatomy is not None:
        from trainperf.monitoring.batch_functions import count_batch_functions

        periods, anatomy, loaded_by = count_batch_functions(periods, anatomy)
    train = [p for p in periods if p.kind == "train"]
    val = [p for p in periods if p.kind == "val"]
    train_s = sum(p.wall_s for p in train)
    val_s = sum(p.wall_s for p in val)
    steady = _steady(train)
    counted = [p.samples for p in train if p.samples is not None]
    samples = sum(counted) if counted else None
    counted_tokens = [p.tokens for p in train if p.tokens is not None]
    tokens = sum(counted_tokens) if counted_tokens else None
    total = train_s + val_s + startup_s
    conditions = _conditions(train, host, cpus)
    decided = _quiet(steady, host, cpus, conditions)
    data_share = step_data_share(periods)
    shares = {
        "data_wait": data_share * train_s / total if total else 0.0,
        "compute": (1 - data_share) * train_s / total if total else 0.0,
        "validation": val_s / total if total else 0.0,
        "startup": startup_s / total if total else 0.0,
    }
    device = [p.device_s for p in steady if p.device_s is not None]
    gpu_util = _gpu_util(train, val, host)
    findings: list[Finding] = []
    primary = "insufficient-data"
    step = run = Verdict("insufficient-data", "inconclusive", (_too_few(len(train)),))
    tail = None
    anatomized = None
    if anatomy is not None and train:
        from trainperf.monitoring.anatomy_analysis import step_anatomy

        anatomized = step_anatomy(anatomy, periods)
    if len(train) >= MIN_STEPS:
        step = _step_verdict(decided, steady, gpu_util, conditions)
        step_median = statistics.median(p.wall_s for p in steady)
        unconfirmed = None
        disturbed = None
        if step.kind == "input-bound" and replayed is not None:
            disturbed = _disturbed(replayed, step_median)
            unconfirmed = None if disturbed else _unconfirmed(replayed, step_median)
            doubt = disturbed or unconfirmed
            if doubt is not None:
                step = dataclasses.replace(step, confidence="low", reasons=(*step.reasons, doubt))
        run = _run_verdict(shares, step, len(train), conditions, stopped_early)
        primary = run.kind
        tail = _tail(decided)
        _run_findings(run, shares, periods, steady, findings)
        if unconfirmed is None:
            _step_findings(step, gpu_util, findings)
        if (
            step.kind == "input-bound"
            and replayed is not None
            and unconfirmed is None
            and disturbed is None
        ):
            at = next(i for i, f in enumerate(findings) if f.kind == "input-bound")
            findings[at] = _confirmed(findings[at], replayed, step_median)
        from trainperf.monitoring.rules import RunRecords, apply_rules

        records = RunRecords(
            periods=periods,
            train=train,
            steady=steady,
            decided=decided,
            host=host,
            cpus=cpus,
            train_s=train_s,
            step=step,
            run=run,
            tail=tail,
            conditions=conditions,
            intra_op_threads=threads,
            anatomy=anatomized,
            anatomy_record=anatomy,
            worker_pools=worker_pools,
            workers=workers,
            total_s=total,
        )
        findings.extend(apply_rules(records))
    return RunSummary(
        steps=len(train),
        samples=samples,
        train_s=train_s,
        val_s=val_s,
        startup_s=startup_s,
        samples_per_s=samples / train_s if samples and train_s else None,
        tokens=tokens,
        tokens_per_s=tokens / train_s if tokens and train_s else None,
        step_median_s=statistics.median(p.wall_s for p in steady) if steady else None,
        shares=shares,
        primary=primary,
        findings=tuple(findings),
        epochs=tuple(epoch_stats(periods, host, device_memory)) if periods else (),
        device_step_median_s=statistics.median(device) if device else None,
        gpu_util_percent=gpu_util,
        step=step,
        run=run,
        tail=tail,
        conditions=conditions,
        anatomy=anatomized,
        data_wait_functions=loaded_by,
        workers=workers,
    )


def _steady(train: Sequence[Period]) -> list[Period]:
    """Training steps other than each epoch's first (worker start-up, warm-up)."""
    return [p for p in train if not p.first_of_epoch and p.wall_s > 0] or list(train)


def step_data_share(periods: Sequence[Period]) -> float:
    """Median share of a steady training step spent waiting for data."""
    steady = _steady([p for p in periods if p.kind == "train"])
    shares = [p.data_wait_s / p.wall_s for p in steady if p.wall_s > 0]
    return statistics.median(shares) if shares else 0.0


def _gpu_util(
    train: Sequence[Period], val: Sequence[Period], host: Sequence[Sample]
) -> float | None:
    """Median NVML utilisation over the samples taken while training (not validating)."""
    if not train:
        return None
    low = train[0].start_s
    high = max(p.start_s + p.wall_s for p in train)
    values = [
        s.gpu_util_percent
        for s in host
        if s.gpu_util_percent is not None
        and low <= s.t_s <= high
        and not any(v.start_s <= s.t_s <= v.start_s + v.wall_s for v in val)
    ]
    return statistics.median(values) if values else None


def _gain(share: float) -> str:
    """What removing a cost that takes ``share`` of the time gains, at most."""
    if share >= 1:
        return "unbounded"
    factor = 1 / (1 - share)
    return f"+{factor - 1:.0%}" if factor < 2 else f"up to {factor:.1f}x"


def _too_few(steps: int) -> str:
    return f"{steps} training steps: a verdict needs at least {MIN_STEPS}"


def _conditions(train: Sequence[Period], host: Sequence[Sample], cpus: float) -> Conditions | None:
    """The conditions of the samples taken while the run trained or validated."""
    from trainperf.monitoring.conditions import summarize_conditions

    if not train:
        return None
    low = train[0].start_s
    high = max(p.start_s + p.wall_s for p in train)
    inside = [s for s in host if low <= s.t_s <= high]
    known = ("other_cpu", "load", "pressure", "steal", "throttled")
    if not any(getattr(s, name) is not None for s in inside for name in known):
        return None  # recorded without system counters
    return summarize_conditions(inside, cpus=cpus)


def _quiet(
    steady: list[Period], host: Sequence[Sample], cpus: float, conditions: Conditions | None
) -> list[Period]:
    """The steady steps to decide on: when a contended run also had quiet stretches (a
    quarter of its samples at least), the steps outside the contended sampling
    intervals, if there are enough of them; else all."""
    from trainperf.monitoring.conditions import CONTENDED_SAMPLES, contended_sample

    if conditions is None or not conditions.contended or not conditions.came_and_went:
        return steady
    quiet_samples = conditions.samples - conditions.contended_samples
    if quiet_samples < CONTENDED_SAMPLES * conditions.samples or len(host) < 2:
        return steady  # a few quiet moments in a busy run: no stretch to decide on
    busy: list[tuple[float, float]] = []
    previous = 0.0
    for sample in host:
        if contended_sample(sample, cpus):
            busy.append((previous, sample.t_s))
        previous = sample.t_s
    quiet = [
        p
        for p in steady
        if not any(p.start_s < end and p.start_s + p.wall_s > begin for begin, end in busy)
    ]
    return quiet if len(quiet) >= CONFIDENT_STEPS else steady


def _phases(steady: Sequence[Period]) -> str | None:
    """A stretch of the run much slower than another (a busy spell, a warm-up that
    lasts): consecutive blocks of steps whose medians differ PHASE_RATIO times, named
    at the split that separates them best."""
    if len(steady) < 3 * PHASE_BLOCKS:
        return None
    size = len(steady) // PHASE_BLOCKS
    blocks = [steady[i * size : (i + 1) * size] for i in range(PHASE_BLOCKS)]
    medians = [statistics.median(p.wall_s for p in block) for block in blocks]
    if min(medians) <= 0 or max(medians) < PHASE_RATIO * min(medians):
        return None
    times = [p.wall_s for p in steady]
    candidates = range(3, len(times) - 2, max(1, len(times) // 100))

    def cost(k: int) -> float:
        """Absolute deviations from each side's median: least at the change point."""
        return sum(
            sum(abs(t - statistics.median(side)) for t in side) for side in (times[:k], times[k:])
        )

    split = min(candidates, key=cost)
    first, second = steady[:split], steady[split:]
    a, b = statistics.median(times[:split]), statistics.median(times[split:])
    if max(a, b) < PHASE_RATIO * min(a, b):
        return None  # slow blocks scattered through the run: that is the tail, not a phase
    return (
        f"steps {first[0].index}-{first[-1].index} took {_seconds(a)} each, steps "
        f"{second[0].index}-{second[-1].index} {_seconds(b)}: part of the run was much slower"
    )


def _seconds(value: float) -> str:
    return f"{value * 1e3:.0f} ms" if value < 1 else f"{value:.1f} s"


def _step_verdict(
    decided: list[Period],
    steady: list[Period],
    gpu_util: float | None,
    conditions: Conditions | None,
) -> Verdict:
    """What the steady step waits on, from the data-wait share of each step."""
    from trainperf._stats import median_interval

    shares = [p.data_wait_s / p.wall_s for p in decided if p.wall_s > 0]
    share = statistics.median(shares) if shares else 0.0
    low, high = median_interval(shares) if shares else (share, share)
    reasons: list[str] = []
    if len(decided) < len(steady):
        reasons.append(
            f"taken on the {len(decided)} steps measured while the machine was quiet "
            f"(other processes took the CPUs during the rest)"
        )
    if share >= INPUT_SHARE:
        kind, threshold = "input-bound", INPUT_SHARE
    elif gpu_util is not None and gpu_util < HOST_SYNC_UTIL:
        kind, threshold = "host-sync-bound", INPUT_SHARE
    elif share <= COMPUTE_SHARE:
        kind, threshold = "compute-bound", COMPUTE_SHARE
    else:
        kind = "balanced"
        threshold = INPUT_SHARE if high >= INPUT_SHARE else COMPUTE_SHARE
    doubts: list[str] = []
    if low < threshold <= high:
        doubts.append(
            f"data wait {low:.0%}-{high:.0%} of a step (95% interval) straddles the "
            f"{threshold:.0%} threshold"
        )
    if len(decided) < CONFIDENT_STEPS:
        doubts.append(f"only {len(decided)} steady steps (at least {CONFIDENT_STEPS} wanted)")
    phase = _phases(decided)
    if phase:
        doubts.append(phase)
    contended = conditions is not None and conditions.contended and len(decided) == len(steady)
    if contended and conditions is not None:
        doubts.append(f"the machine was busy: {conditions.describe()}")
    confidence: Confidence = "high"
    if doubts:
        confidence = "inconclusive" if contended and len(doubts) > 1 else "low"
    return Verdict(
        kind,
        confidence,
        tuple(reasons + doubts),
        share=share,
        share_low=low,
        share_high=high,
        threshold=threshold,
        steps=len(decided),
    )


def _run_verdict(
    shares: dict[str, float],
    step: Verdict,
    steps: int,
    conditions: Conditions | None,
    stopped_early: bool,
) -> Verdict:
    """Where the run's wall time went: validation, start-up, or its steps."""
    for name, threshold in (("validation", VALIDATION_SHARE), ("startup", STARTUP_SHARE)):
        share = shares[name]
        if share < threshold:
            continue
        doubts: list[str] = []
        if share < threshold + RUN_MARGIN:
            doubts.append(f"{name} is {share:.0%} of the run, near the {threshold:.0%} threshold")
        if name == "startup" and (stopped_early or steps < CONFIDENT_STEPS):
            doubts.append(
                f"a short run ({steps} steps): over a whole run start-up weighs less; the "
                f"step itself is {step.kind}"
            )
        if conditions is not None and conditions.contended:
            doubts.append(f"the machine was busy: {conditions.describe()}")
        confidence: Confidence = "low" if doubts else "high"
        return Verdict(
            f"{name}-bound",
            confidence,
            tuple(doubts),
            share=share,
            threshold=threshold,
            steps=steps,
        )
    near = [
        f"{name} is {shares[name]:.0%} of the run, near the {threshold:.0%} threshold"
        for name, threshold in (("validation", VALIDATION_SHARE), ("startup", STARTUP_SHARE))
        if shares[name] >= threshold - RUN_MARGIN
    ]
    reasons = tuple(near) + step.reasons
    confidence = step.confidence if not near else "low"
    return Verdict(
        step.kind,
        confidence,
        reasons,
        share=step.share,
        share_low=step.share_low,
        share_high=step.share_high,
        threshold=step.threshold,
        steps=step.steps,
    )


def _run_findings(
    run: Verdict,
    shares: dict[str, float],
    periods: Sequence[Period],
    steady: Sequence[Period],
    findings: list[Finding],
) -> None:
    if run.kind == "validation-bound":
        evidence, fix = _validation_parts(periods, steady)
        findings.append(
            Finding(
                "validation-bound",
                {"validation_share": shares["validation"], **evidence},
                fix,
                f"if validation were free: {_gain(shares['validation'])} wall time saved",
                run.confidence,
                run.reasons,
            )
        )
    elif run.kind == "startup-bound":
        findings.append(
            Finding(
                "startup-bound",
                {"startup_share": shares["startup"]},
                "defer heavy imports behind config validation (trainperf imports)",
                f"if start-up were free: {_gain(shares['startup'])}",
                run.confidence,
                run.reasons,
            )
        )


# Validation's parts: its loader's share of its time, its batches against training's.
SMALL_EVAL_BATCH = 0.5  # eval batches at most this share of training's
LARGE_EVAL_SET = 0.5  # a pass reads at least this share of a training epoch's samples


def _validation_parts(
    periods: Sequence[Period], steady: Sequence[Period]
) -> tuple[dict[str, float], str]:
    """Which part of validation takes its time -- its loader, its model work, the size
    or number of its batches -- as evidence and the matching fix."""
    val = [p for p in periods if p.kind == "val"]
    val_s = sum(p.wall_s for p in val)
    wait = sum(p.data_wait_s for p in val)
    evidence: dict[str, float] = {"validation_passes": float(len(val))}
    fixes = []
    if val_s > 0:
        evidence["validation_data_wait_share"] = wait / val_s
        if wait >= INPUT_SHARE * val_s:
            fixes.append(
                f"its loader: {wait / val_s:.0%} of validation waits for batches (workers "
                "for the validation DataLoader, persistent_workers=True, or cache its "
                "deterministic preprocessing)"
            )
    batches = sum(p.batches or 0 for p in val)
    val_samples = sum(p.samples or 0 for p in val)
    train_batch = (
        statistics.median(p.samples for p in steady if p.samples)
        if any(p.samples for p in steady)
        else None
    )
    if batches and val_samples and train_batch:
        eval_batch = val_samples / batches
        evidence["validation_batch"] = eval_batch
        evidence["training_batch"] = float(train_batch)
        if eval_batch <= SMALL_EVAL_BATCH * train_batch:
            fixes.append(
                f"its batches: {eval_batch:.0f} samples against training's {train_batch:.0f} "
                "(evaluation keeps no gradients: a larger batch fits)"
            )
    epochs = {p.epoch for p in steady}
    per_epoch = sum(p.samples or 0 for p in steady) / len(epochs) if epochs else 0.0
    if val and val_samples and per_epoch:
        per_pass = val_samples / len(val)
        evidence["validation_samples_per_pass"] = per_pass
        if per_pass >= LARGE_EVAL_SET * per_epoch:
            fixes.append(
                f"its size: each pass reads {per_pass:.0f} samples, {per_pass / per_epoch:.0%} "
                "of a training epoch's (validate on a subset, or less often: "
                "limit_val_batches, check_val_every_n_epoch, val_check_interval)"
            )
    if val_s > 0 and wait < INPUT_SHARE * val_s:
        fixes.append(
            f"its model work: {1 - wait / val_s:.0%} of validation is the model's "
            "(run it under torch.inference_mode(), with a larger batch, or less often)"
        )
    return evidence, "validation's time is in " + "; ".join(fixes) if fixes else (
        "validate less often, on fewer batches, or cache its deterministic preprocessing"
    )


def _step_findings(step: Verdict, gpu_util: float | None, findings: list[Finding]) -> None:
    share = step.share or 0.0
    if step.kind == "input-bound":
        findings.append(
            Finding(
                "input-bound",
                {
                    "data_wait_share_of_step": share,
                    "data_wait_share_low": step.share_low or share,
                    "data_wait_share_high": step.share_high or share,
                },
                "more DataLoader workers, cheaper per-sample work, or cache it "
                "(trainperf calibrate measures the loader settings)",
                f"if input were free: {_gain(share)} samples/s",
                step.confidence,
                step.reasons,
            )
        )
    elif step.kind == "host-sync-bound" and gpu_util is not None:
        findings.append(
            Finding(
                "host-sync-bound",
                {"gpu_util_percent": gpu_util, "data_wait_share_of_step": share},
                "the GPU idles while the host works: find per-step synchronisations "
                "(.item(), .cpu(), printing or logging tensors, torch.cuda.synchronize) with "
                "torch.cuda.set_sync_debug_mode('warn') and move them out of the step or "
                "every N steps; larger batches, torch.compile or CUDA graphs cut launch "
                "overhead",
                f"if the GPU were kept busy: up to {100 / max(gpu_util, 1.0):.1f}x samples/s",
                step.confidence,
                step.reasons,
            )
        )


def _tail(steady: Sequence[Period]) -> Tail | None:
    """The slow steps the median hides, when there are any worth naming."""
    times = [p.wall_s for p in steady]
    if len(times) < MIN_STEPS:
        return None
    median = statistics.median(times)
    mean = statistics.fmean(times)
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    slow = [p for p in steady if p.wall_s > SLOW_STEP * median]
    total = sum(times)
    slow_s = sum(p.wall_s for p in slow)
    gaps = collections.Counter(b.index - a.index for a, b in itertools.pairwise(slow))
    gap, count = gaps.most_common(1)[0] if gaps else (0, 0)
    return Tail(
        mean_s=mean,
        median_s=median,
        p90_s=p90,
        slow_steps=len(slow),
        slow_share=slow_s / total if total else 0.0,
        slow_data_wait_share=sum(p.data_wait_s for p in slow) / slow_s if slow_s else 0.0,
        # Most slow steps this many steps apart: a periodic cost (a flush, a log line).
        # (Consecutive slow steps are a slow stretch, not a period of one step.)
        every=(
            gap
            if gap >= 2 and len(slow) >= 3 and count >= PERIODIC_SHARE * sum(gaps.values())
            else None
        ),
        excess_share=(slow_s - len(slow) * median) / total if total else 0.0,
    )


NOT_CONFIRMED = "with its batches already in memory a step still took"
NOT_MEASURED = "the probe's replay of batches already in memory took"


def _unconfirmed(replayed: Replay, step_s: float) -> str | None:
    """Why the probe does not confirm an input-bound step (a replay of in-memory batches
    no faster than the step), or None when it does. Said in the step's reasons: a cause
    its own proof did not confirm is not a finding."""
    if replayed.step_s < CONFIRM_RATIO * step_s:
        return None
    return (
        f"{NOT_CONFIRMED} {replayed.step_s * 1e3:.1f} ms against {step_s * 1e3:.1f} ms "
        "(replayed): the wait is contention for the CPUs (threads, other processes) more "
        "than the loader"
    )


def _disturbed(replayed: Replay, step_s: float) -> str | None:
    """Why the probe neither confirms nor refutes an input-bound step, or None when it
    can: its replay of in-memory batches was slower than the run's own steps, which
    waited for data besides. Nothing the replay leaves out can make a step slower; the
    machine's load changed under it (seen beside busy processes: a stretch of replayed
    steps 7x slower than the run's compute, while intra-op threads and other processes
    shared two CPUs). The finding keeps its estimate."""
    if replayed.step_s <= DISTURBED_RATIO * step_s:
        return None
    return (
        f"{NOT_MEASURED} {replayed.step_s * 1e3:.1f} ms a step, longer than the run's "
        f"{step_s * 1e3:.1f} ms steps that waited for data: the machine's load changed "
        "while it ran, so the gain is estimated from the data wait"
    )


def _confirmed(finding: Finding, replayed: Replay, step_s: float) -> Finding:
    """The input-bound finding with the probe's measurement in place of the estimate."""
    evidence = {**finding.evidence, "step_s": step_s, "replay_step_s": replayed.step_s}
    gain = (
        f"measured by replaying {replayed.steps} cached batches: "
        f"{_gain(1 - replayed.step_s / step_s)} samples/s if input were free"
    )
    return dataclasses.replace(finding, evidence=evidence, gain=gain)


def summarize_folder(folder: Path, *, cut: int | None = None) -> tuple[RunSummary, bool]:
    """A run folder's summary, recomputed from its records, and whether the run ended.

    ``cut``: summarise only the first ``cut`` periods (``trainperf doctor`` stops a
    run there and decides its proofs on them; what ran after is reported apart).

    A run of several ranks (``rank<N>`` folders) is summarised as rank 0 -- or as the
    rank that keeps the others waiting, when one does (``rank_breakdown.verdict_rank``)
    -- with the throughput of all ranks, each rank's part of a step and a straggler
    finding (:mod:`trainperf.monitoring.ranks`). Raises
    :class:`~trainperf.errors.RecordError` for records that are not trainperf's.
    """
    import dataclasses
    import json

    from trainperf.errors import RecordError
    from trainperf.monitoring.anatomy_record import read_anatomy
    from trainperf.monitoring.probe import PROBE_FILE, read_replay
    from trainperf.monitoring.records import (
        DEVICE_MEMORY,
        RunMeta,
        rank_folders,
        read_device_memory,
        read_periods,
    )
    from trainperf.monitoring.sampler import read_samples
    from trainperf.monitoring.worker_timing import read_worker_timing
    from trainperf.monitoring.workers import read_worker_pools

    folders = rank_folders(folder)
    if not folders:
        raise RecordError(f"no run records in {folder}")
    summaries, ranked, finished = [], [], True
    for path in folders:
        try:
            periods = read_periods(path / "steps.jsonl")
            meta_file = path / "meta.json"
            meta = None
            if meta_file.is_file():
                meta = RunMeta.from_json(json.loads(meta_file.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:  # JSON and text decoding errors included
            raise RecordError(f"cannot read the run at {path}: {exc}") from None
        startup = 0.0
        if meta is not None and meta.from_process_start:
            startup = next((p.start_s for p in periods if p.kind == "train"), 0.0)
        host = read_samples(path / "samples.jsonl")
        device_memory = read_device_memory(path / DEVICE_MEMORY)
        replayed = read_replay(path / PROBE_FILE)
        anatomy = read_anatomy(path)
        pools = read_worker_pools(path)
        timing = read_worker_timing(path)
        summaries.append(
            summarize(
                periods[:cut] if cut is not None else periods,
                startup_s=startup,
                host=host,
                threads=None if meta is None else meta.intra_op_threads,
                cpus=recorded_cpu_budget(meta),
                device_memory=device_memory,
                replayed=replayed,
                stopped_early=cut is not None,
                anatomy=anatomy,
                worker_pools=pools,
                workers=timing,
            )
        )
        ranked.append(periods[:cut] if cut is not None else periods)
        finished = finished and (path / "summary.json").is_file()
    first = summaries[0]
    # The input audit, read across the rank folders (trainperf.monitoring.sample_audit).
    from trainperf.monitoring.sample_audit import with_audit

    if len(summaries) == 1:
        return with_audit(first, folders), finished
    rates = [s.samples_per_s for s in summaries if s.samples_per_s is not None]
    token_rates = [s.tokens_per_s for s in summaries if s.tokens_per_s is not None]
    from trainperf.monitoring.ranks import rank_breakdown, straggler_finding

    breakdown = rank_breakdown(
        ranked,
        rates=[s.samples_per_s for s in summaries],
        threads=[_threads(path) for path in folders],
    )
    straggler = straggler_finding(breakdown, first.step_median_s)
    slowest = breakdown.slowest
    if straggler is not None and breakdown.pattern == "fixed" and slowest is not None:
        # The others' steps wait for this rank inside backward: its own records say why.
        breakdown = dataclasses.replace(breakdown, verdict_rank=slowest)
        first = summaries[slowest]
    findings = list(first.findings)
    if straggler is not None:
        findings.append(straggler)
    merged = dataclasses.replace(
        first,
        samples_per_s=sum(rates) if rates else None,
        tokens_per_s=sum(token_rates) if token_rates else None,
        ranks=len(summaries),
        findings=tuple(findings),
        rank_breakdown=breakdown,
    )
    return with_audit(merged, folders), finished


def recorded_cpu_budget(meta: RunMeta | None) -> float | None:
    """The CPU budget per rank the run was recorded with (its fingerprint)."""
    if meta is None:
        return None
    value = meta.fingerprint.get("components")
    budget = value.get("cpu_budget") if isinstance(value, dict) else None
    ranks = value.get("local_world_size") if isinstance(value, dict) else None
    if not isinstance(budget, int | float) or isinstance(budget, bool) or budget <= 0:
        return None
    per = ranks if isinstance(ranks, int) and not isinstance(ranks, bool) and ranks > 0 else 1
    return float(budget) / per


def _threads(folder: Path) -> int | None:
    """The intra-op threads a rank's run ended with (its ``meta.json``)."""
    import json

    from trainperf.monitoring.records import RunMeta

    try:
        meta = RunMeta.from_json(json.loads((folder / "meta.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None
    return meta.intra_op_threads
