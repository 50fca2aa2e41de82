"""What a loader fix is made of: the settings to write and their gain (:class:`Calibrated`,
:class:`Gain`), what the plan changes or points at (:class:`Change`, :class:`Pointer`,
:class:`FileEdit`, :class:`LoaderFix`), and the re-measure (:class:`Remeasured`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from trainperf._json import JsonObject
    from trainperf.calibration.config import LoaderConfig
    from trainperf.calibration.verify import SideBySide


COMMENT = "trainperf fix loader"
Kind = Literal["DataLoader", "TrainingArguments"]
Scalar = int | bool | str | None


@dataclass(frozen=True)
class Gain:
    """A calibration's speed-up (new over old samples/s; 1.0 = no change), with its
    interval when it has one, and what it was measured against (``basis``)."""

    value: float
    low: float | None
    high: float | None
    measured: bool  # False: estimated by the calibration's search, not timed as written
    basis: str

    def short(self) -> str:
        """``3.1x measured (2.7x-3.6x)``, as the comment beside a change says it."""
        from trainperf._stats import format_speedup

        value = format_speedup(self.value)
        if not self.measured:
            return f"about {value} estimated"
        return value + " measured" + format_speedup(self.value, self.low, self.high)[len(value) :]

    def overlaps(self, low: float, high: float) -> bool | None:
        """Whether ``[low, high]`` meets this gain's interval; None without one."""
        if self.low is None or self.high is None:
            return None
        return max(low, self.low) <= min(high, self.high)

    def to_json(self) -> JsonObject:
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "measured": self.measured,
            "basis": self.basis,
        }


@dataclass(frozen=True)
class Calibrated:
    """Settings to write: a calibration's choice, where it comes from, and its gain.

    ``measured_at``: seconds since the epoch. ``ran_with``: the loader's own settings as
    a doctor run saw them (``num_workers``, ``prefetch_factor``, ``pin_memory``,
    ``batch_size``); they tell which of several configuration files the run read.
    """

    config: LoaderConfig
    measured_at: float
    gain: Gain | None
    source: str
    framework: str | None = None
    dataset: str | None = None  # the dataset's class, as recorded
    ran_with: Mapping[str, Scalar] = field(default_factory=dict)

    @property
    def date(self) -> str:
        return time.strftime("%Y-%m-%d", time.localtime(self.measured_at))

    def comment(self) -> str:
        gain = "calibrated, gain not measured" if self.gain is None else self.gain.short()
        return f"# {COMMENT} {self.date}: {gain}"


@dataclass(frozen=True)
class Change:
    """One value the fix writes: ``line`` (1-based) of the original ``file``; ``old`` is
    the source text replaced, ``None`` for an argument added."""

    file: Path
    line: int
    argument: str
    old: str | None
    new: str

    def to_json(self, cwd: Path) -> JsonObject:
        from trainperf.fix.patch import shown_path

        return {
            "file": shown_path(self.file, cwd),
            "line": self.line,
            "argument": self.argument,
            "old": self.old,
            "new": self.new,
        }


@dataclass(frozen=True)
class Pointer:
    """Where a setting the call reads from a configuration is set. ``edited``: the fix
    changes it there (the line is among the changes); else ``note`` says what to do.
    ``override``: the Hydra command-line override that sets it."""

    file: Path
    line: int
    argument: str
    key: str
    value: str
    wanted: str
    edited: bool
    override: str | None = None
    note: str = ""

    def describe(self, cwd: Path) -> str:
        from trainperf.fix.patch import shown_path

        text = f"{self.argument} comes from {self.key} at {shown_path(self.file, cwd)}:{self.line}"
        text += f" ({self.value} -> {self.wanted})" if self.edited else f" ({self.value})"
        if self.override:
            text += f"; override: {self.override}"
        return text + (f"; {self.note}" if self.note else "")

    def to_json(self, cwd: Path) -> JsonObject:
        from trainperf.fix.patch import shown_path

        return {
            "file": shown_path(self.file, cwd),
            "line": self.line,
            "argument": self.argument,
            "key": self.key,
            "value": self.value,
            "wanted": self.wanted,
            "edited": self.edited,
            "override": self.override,
            "note": self.note,
        }


@dataclass(frozen=True)
class FileEdit:
    """A file's text before and after the fix."""

    path: Path
    before: str
    after: str


@dataclass(frozen=True)
class LoaderFix:
    """What :func:`plan` found: the edits (nothing written yet), where the settings read
    from a configuration are set, and the loader's settings before and after the fix
    (``original``, ``written``) for :func:`remeasure`."""

    target: Path
    kind: Kind
    line: int  # the call's first line
    calibrated: Calibrated
    changes: tuple[Change, ...]
    pointers: tuple[Pointer, ...]
    notes: tuple[str, ...]
    edits: tuple[FileEdit, ...]
    original: LoaderConfig
    written: LoaderConfig

    @property
    def changed(self) -> bool:
        return bool(self.edits)

    def diff(self, cwd: Path) -> str:
        from trainperf.fix.patch import unified_diff

        return "".join(unified_diff(e.path, e.before, e.after, cwd) for e in self.edits)


@dataclass(frozen=True)
class Remeasured:
    """The settings as written against the original ones, timed in turns."""

    side_by_side: SideBySide
    agrees: bool | None  # the intervals overlap; None: the calibration gave no interval

    def describe(self, gain: Gain | None) -> str:
        text = f"re-measured: {self.side_by_side.describe()}"
        if gain is None:
            return text + "; the calibration recorded no gain to compare it with"
        if self.agrees is None:
            return text + f"; the calibration's {gain.short()} has no interval to compare"
        if self.agrees:
            return text + f"; agrees with the calibration's {gain.short()} (intervals overlap)"
        return (
            f"{text}; DOES NOT AGREE with the calibration's {gain.short()}: the intervals "
            f"do not overlap (the calibration: {gain.basis}; the re-measure: the file's "
            "original settings against the new ones, here and now)"
        )

    def to_json(self) -> JsonObject:
        return {**self.side_by_side.to_json(), "agrees": self.agrees}
