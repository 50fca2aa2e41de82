"""Step anatomy, analysis: what a training step's time is spent on, by phase and user line.

Pure functions over an :class:`~trainperf.monitoring.anatomy_record.AnatomyRecord` and the
run's :class:`~trainperf.monitoring.records.Period` list (no torch, no clock).

How the time of the training steps is shared out (``StepAnatomy.shares``, fractions of
the steps' summed wall time):

* ``data``: the periods' ``data_wait_s``, measured exactly;
* ``gc``: the garbage collector's pauses that began inside a step, measured exactly
  (capped, per step, at the step's time outside data wait: a collection during a fetch
  is in both measurements);
* the rest -- wall minus data minus gc -- is split among forward, backward, optimizer,
  checkpoint, loop and monitor in proportion to the stack samples of each inside the
  steps. "data" samples are left out of that split (their time is the exact data wait);
  they only rank the user lines inside data wait (a Dataset's ``__getitem__``);
* ``unsampled``: the rest, when no sample landed in the steps at all.

Samples are pooled over the steps, not split per step: a step shorter than the sampling
interval usually holds no sample, but steps hold samples in proportion to their length.
With ``n`` samples a share is known to about ``1/sqrt(n)`` of itself; ``samples`` says how
many there were, so that a caller can say how sure it is.
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainperf._json import as_object, objects, req_float, req_int, req_str
from trainperf.monitoring.anatomy_record import PHASES, Phase, parse_phase

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

    from trainperf._json import JsonObject
    from trainperf.monitoring.anatomy_record import AnatomyRecord
    from trainperf.monitoring.records import Period

__all__ = [
    "LATE_S",
    "SHARE_KEYS",
    "LineGrowth",
    "LineShare",
    "StepAnatomy",
    "line_growth",
    "step_anatomy",
]

# The keys of StepAnatomy.shares and .seconds_per_step, in the order a report lists them.
SHARE_KEYS = ("data", "gc", "forward", "backward", "optimizer", "checkpoint", "loop", "monitor")
_UNSAMPLED = "unsampled"
# A sample taken this long after it was due waited for the GIL: it shows where the thread
# let go of it, not where it was (see trainperf.monitoring.anatomy).
LATE_S = 0.001


@dataclass(frozen=True)
class LineShare:
    """One user line (``file:line`` in ``function``, source ``code``) in one phase: its
    ``share`` of the steps' wall time (a fraction) from its ``samples``."""

    phase: Phase
    file: str
    line: int
    function: str
    code: str
    share: float
    samples: int

    def to_json(self) -> JsonObject:
        return {
            "phase": self.phase,
            "file": self.file,
            "line": self.line,
            "function": self.function,
            "code": self.code,
            "share": round(self.share, 6),
            "samples": self.samples,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> LineShare:
        return cls(
            phase=parse_phase(req_str(data, "phase")),
            file=req_str(data, "file"),
            line=req_int(data, "line"),
            function=req_str(data, "function"),
            code=str(data.get("code") or ""),
            share=req_float(data, "share"),
            samples=req_int(data, "samples"),
        )


@dataclass(frozen=True)
class StepAnatomy:
    """Where the analysed training steps' time went.

    ``shares`` and ``seconds_per_step`` are keyed by :data:`SHARE_KEYS` (plus
    ``"unsampled"`` when no sample fell in the steps); ``seconds_per_step`` is the median
    step's wall time (``median_step_s``) times each share. ``samples`` counts the stack
    samples inside the steps (``samples_by_phase`` by phase); ``validation_samples`` those
    in validation periods, ``outside_samples`` the rest (set-up, steps not analysed).
    ``late_samples`` of the step samples were taken over :data:`LATE_S` after they were
    due (the GIL was held): those name the next blocking line rather than the exact one.
    ``gc_s`` is the GC pause time (seconds) counted inside the steps, from ``gc_pauses``
    collections. ``lines`` ranks the user lines of every phase by share, largest first.
    """

    steps: int
    wall_s: float
    median_step_s: float
    sample_interval_s: float
    samples: int
    samples_by_phase: Mapping[str, int]
    late_samples: int
    shares: Mapping[str, float]
    seconds_per_step: Mapping[str, float]
    gc_s: float
    gc_pauses: int
    validation_samples: int
    outside_samples: int
    lines: tuple[LineShare, ...]

    def lines_of(self, phase: Phase) -> tuple[LineShare, ...]:
        """The user lines of one phase, largest share first."""
        return tuple(line for line in self.lines if line.phase == phase)

    @property
    def loop_lines(self) -> tuple[LineShare, ...]:
        """The user's own per-step work (phase "loop"), largest share first."""
        return self.lines_of("loop")

    def to_json(self) -> JsonObject:
        return {
            "steps": self.steps,
            "wall_s": round(self.wall_s, 7),
            "median_step_s": round(self.median_step_s, 7),
            "sample_interval_s": self.sample_interval_s,
            "samples": self.samples,
            "samples_by_phase": dict(self.samples_by_phase),
            "late_samples": self.late_samples,
            "shares": {k: round(v, 6) for k, v in self.shares.items()},
            "seconds_per_step": {k: round(v, 7) for k, v in self.seconds_per_step.items()},
            "gc_s": round(self.gc_s, 7),
            "gc_pauses": self.gc_pauses,
            "validation_samples": self.validation_samples,
            "outside_samples": self.outside_samples,
            "lines": [line.to_json() for line in self.lines],
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> StepAnatomy:
        return cls(
            steps=req_int(data, "steps"),
            wall_s=req_float(data, "wall_s"),
            median_step_s=req_float(data, "median_step_s"),
            sample_interval_s=req_float(data, "sample_interval_s"),
            samples=req_int(data, "samples"),
            samples_by_phase=_ints(data, "samples_by_phase"),
            late_samples=req_int(data, "late_samples"),
            shares=_floats(data, "shares"),
            seconds_per_step=_floats(data, "seconds_per_step"),
            gc_s=req_float(data, "gc_s"),
            gc_pauses=req_int(data, "gc_pauses"),
            validation_samples=req_int(data, "validation_samples"),
            outside_samples=req_int(data, "outside_samples"),
            lines=tuple(LineShare.from_json(o) for o in objects(data.get("lines"))),
        )


@dataclass(frozen=True)
class LineGrowth:
    """One user line's share of step time (a fraction) in the first third of the steps
    and in the last third, with the samples behind each."""

    phase: Phase
    file: str
    line: int
    function: str
    code: str
    first_share: float
    last_share: float
    first_samples: int
    last_samples: int

    @property
    def growth(self) -> float:
        """``last_share - first_share``: positive when the line takes more of a step late."""
        return self.last_share - self.first_share

    def to_json(self) -> JsonObject:
        return {
            "phase": self.phase,
            "file": self.file,
            "line": self.line,
            "function": self.function,
            "code": self.code,
            "first_share": round(self.first_share, 6),
            "last_share": round(self.last_share, 6),
            "first_samples": self.first_samples,
            "last_samples": self.last_samples,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> LineGrowth:
        return cls(
            phase=parse_phase(req_str(data, "phase")),
            file=req_str(data, "file"),
            line=req_int(data, "line"),
            function=req_str(data, "function"),
            code=str(data.get("code") or ""),
            first_share=req_float(data, "first_share"),
            last_share=req_float(data, "last_share"),
            first_samples=req_int(data, "first_samples"),
            last_samples=req_int(data, "last_samples"),
        )


def step_anatomy(
    record: AnatomyRecord, periods: Iterable[Period], *, steps: Collection[int] | None = None
) -> StepAnatomy:
    """Attribute ``record``'s samples and GC pauses to the training steps in ``periods``.

    A sample belongs to the step whose ``[start_s, start_s + wall_s)`` holds its time.
    ``steps`` restricts the analysis to those step indices (``None``: every training step).

    Example::

        anatomy = step_anatomy(read_anatomy(folder), read_periods(folder / "steps.jsonl"))
        worst = anatomy.loop_lines[0]  # e.g. train.py:88, share 0.31
    """
    chosen = None if steps is None else frozenset(steps)
    spans: list[tuple[float, float, int]] = []  # (start, end, position in train or -1 val)
    train: list[Period] = []
    for period in sorted(periods, key=lambda p: p.start_s):
        if period.kind == "val":
            spans.append((period.start_s, period.start_s + period.wall_s, -1))
        elif chosen is None or period.index in chosen:
            spans.append((period.start_s, period.start_s + period.wall_s, len(train)))
            train.append(period)
    starts = [start for start, _, _ in spans]

    def where(t_s: float) -> int | None:
        """The position in ``train`` of the step holding ``t_s``, -1 for validation."""
        at = bisect.bisect_right(starts, t_s) - 1
        return spans[at][2] if at >= 0 and t_s < spans[at][1] else None

    by_phase: Counter[str] = Counter()
    by_line: Counter[tuple[Phase, str, int, str]] = Counter()
    validation = outside = late = 0
    for sample in record.samples:
        position = where(sample.t_s)
        if position is None:
            outside += 1
        elif position < 0:
            validation += 1
        else:
            by_phase[sample.phase] += 1
            late += sample.late_s > LATE_S
            if sample.file is not None and sample.line is not None:
                by_line[(sample.phase, sample.file, sample.line, sample.function or "")] += 1

    gc_per_step = [0.0] * len(train)
    gc_count = 0
    for pause in record.gc_pauses:
        position = where(pause.t_s)
        if position is not None and position >= 0:
            gc_per_step[position] += pause.gc_s
            gc_count += 1

    wall = sum(p.wall_s for p in train)
    data = sum(min(p.data_wait_s, p.wall_s) for p in train)
    gc_s = sum(
        min(g, max(0.0, p.wall_s - p.data_wait_s)) for p, g in zip(train, gc_per_step, strict=True)
    )
    rest = max(0.0, wall - data - gc_s)
    sampled = sum(n for phase, n in by_phase.items() if phase != "data")

    def share(seconds: float) -> float:
        return seconds / wall if wall > 0 else 0.0

    shares = {"data": share(data), "gc": share(gc_s)}
    for phase in SHARE_KEYS[2:]:
        shares[phase] = share(rest) * by_phase[phase] / sampled if sampled else 0.0
    if not sampled:
        shares[_UNSAMPLED] = share(rest)
    median = statistics.median(p.wall_s for p in train) if train else 0.0

    lines = []
    for (phase, file, line, function), n in by_line.items():
        # Data wait's lines share its exact time; the others share the sampled rest.
        unit = shares["data"] / by_phase["data"] if phase == "data" else share(rest) / sampled
        code = record.source(file, line)
        lines.append(LineShare(phase, file, line, function, code, unit * n, n))
    lines.sort(key=lambda s: (-s.share, -s.samples, s.phase, s.file, s.line))
    return StepAnatomy(
        steps=len(train),
        wall_s=wall,
        median_step_s=median,
        sample_interval_s=record.sample_interval_s,
        samples=sum(by_phase.values()),
        samples_by_phase={phase: by_phase[phase] for phase in PHASES},
        late_samples=late,
        shares=shares,
        seconds_per_step={k: median * v for k, v in shares.items()},
        gc_s=gc_s,
        gc_pauses=gc_count,
        validation_samples=validation,
        outside_samples=outside,
        lines=tuple(lines),
    )


def line_growth(
    record: AnatomyRecord, periods: Iterable[Period], *, phase: Phase = "loop"
) -> list[LineGrowth]:
    """Each user line of ``phase``: its share of step time in the first third of the
    training steps against the last third, the most grown first (drift: a list or a log
    that gets slower as the run goes). Empty with fewer than three steps."""
    periods = list(periods)
    order = [p.index for p in sorted(periods, key=lambda p: p.start_s) if p.kind == "train"]
    third = len(order) // 3
    if third == 0:
        return []
    first = step_anatomy(record, periods, steps=order[:third])
    last = step_anatomy(record, periods, steps=order[-third:])
    before = {(s.file, s.line, s.function): s for s in first.lines_of(phase)}
    after = {(s.file, s.line, s.function): s for s in last.lines_of(phase)}
    out = []
    for key in before.keys() | after.keys():
        a, b = before.get(key), after.get(key)
        known = before.get(key) or after[key]
        out.append(
            LineGrowth(
                phase=phase,
                file=known.file,
                line=known.line,
                function=known.function,
                code=known.code,
                first_share=0.0 if a is None else a.share,
                last_share=0.0 if b is None else b.share,
                first_samples=0 if a is None else a.samples,
                last_samples=0 if b is None else b.samples,
            )
        )
    out.sort(key=lambda g: (-g.growth, g.file, g.line))
    return out


def _mapping(data: JsonObject, key: str) -> JsonObject:
    return as_object(data.get(key, {}), key)


def _ints(data: JsonObject, key: str) -> dict[str, int]:
    values = _mapping(data, key)
    return {k: req_int(values, k) for k in values}


def _floats(data: JsonObject, key: str) -> dict[str, float]:
    values = _mapping(data, key)
    return {k: req_float(values, k) for k in values}
