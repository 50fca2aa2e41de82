"""Step anatomy, the record: stack samples and GC pauses, ``anatomy.jsonl`` both ways.

Captured by :mod:`trainperf.monitoring.anatomy`, analysed by
:mod:`trainperf.monitoring.anatomy_analysis`. The file, in a run's folder, is one JSON
object a line: a header first, then the source text of each user line sampled, then one
line per stack sample and one per GC pause::

    {"schema_version": 1, "interval_s": 0.01, "stride": 1, "gc_dropped": 0}
    {"file": "train.py", "line": 88, "code": "pbar.set_postfix(loss=loss.item())"}
    {"t_s": 12.345678, "late_s": 0.000012, "phase": "loop", "file": "train.py", "line": 88,
     "function": "main"}
    {"gc_s": 0.0012345, "t_s": 12.5, "generation": 2}

Times are seconds from the monitoring origin (the base of ``Period.start_s``); files
are relative to the directory the record was written from, where they were under it.
It is written whole at the end of a run (through a temporary file), so a malformed one is
not a torn write but a foreign or damaged file: reading it raises ``RecordError``.
The header's ``schema_version`` is :data:`trainperf._schema.ANATOMY`; the release before
it wrote ``"anatomy": 1`` there, read as version 1.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from trainperf._json import (
    as_object,
    opt_float,
    opt_int,
    opt_str,
    req_float,
    req_int,
    req_str,
)
from trainperf._schema import ANATOMY as ANATOMY_SCHEMA
from trainperf.errors import RecordError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from trainperf._json import JsonObject

__all__ = [
    "ANATOMY",
    "PHASES",
    "AnatomyRecord",
    "GcPause",
    "Phase",
    "StackSample",
    "parse_phase",
    "read_anatomy",
    "write_anatomy",
]

ANATOMY = "anatomy.jsonl"
# A sample's line, formatted directly: a long run has hundreds of thousands of them.
_SAMPLE_LINE = '{"t_s": %.6f, "late_s": %.6f, "phase": "%s", %s}'
# What the training thread was doing: inside the DataLoader's fetch, the backward pass,
# the optimizer, torch.save/load, other torch code (the forward pass), trainperf's own
# hooks, or none of those -- the user's own per-step work ("loop").
Phase = Literal["data", "backward", "optimizer", "checkpoint", "forward", "monitor", "loop"]
PHASES: tuple[Phase, ...] = (
    "data",
    "forward",
    "backward",
    "optimizer",
    "checkpoint",
    "loop",
    "monitor",
)


@dataclass(frozen=True, slots=True)
class StackSample:
    """Where the training thread was at ``t_s`` (seconds from the monitoring origin).

    ``file``/``line``/``function`` name the innermost user frame; ``None`` when the stack
    held no user code. ``late_s``: how long after it was due the sample was taken -- the
    sampler waits for the GIL, so a late sample shows where the training thread let go of
    it (a blocking call such as ``.item()``, a sleep, a long kernel), not where it was when
    the sample was due.
    """

    t_s: float
    phase: Phase
    file: str | None
    line: int | None
    function: str | None
    late_s: float = 0.0

    def to_json(self) -> JsonObject:
        return {
            "t_s": round(self.t_s, 6),
            "late_s": round(self.late_s, 6),
            "phase": self.phase,
            "file": self.file,
            "line": self.line,
            "function": self.function,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> StackSample:
        return cls(
            t_s=req_float(data, "t_s"),
            phase=parse_phase(req_str(data, "phase")),
            file=opt_str(data, "file"),
            line=opt_int(data, "line"),
            function=opt_str(data, "function"),
            late_s=opt_float(data, "late_s") or 0.0,
        )


@dataclass(frozen=True, slots=True)
class GcPause:
    """One garbage collection: it began at ``t_s`` (from the origin) and took ``gc_s``."""

    t_s: float
    gc_s: float
    generation: int

    def to_json(self) -> JsonObject:
        return {
            "gc_s": round(self.gc_s, 7),
            "t_s": round(self.t_s, 6),
            "generation": self.generation,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> GcPause:
        return cls(req_float(data, "t_s"), req_float(data, "gc_s"), req_int(data, "generation"))


@dataclass(frozen=True)
class AnatomyRecord:
    """A run's stack samples and GC pauses.

    ``interval_s`` is the sampling interval asked for; ``stride`` > 1 when the sample cap
    was reached and only every ``stride``-th sample was kept (see :attr:`sample_interval_s`).
    ``sources`` holds the source text of user lines, by (file, line), once written.
    """

    interval_s: float
    samples: tuple[StackSample, ...]
    gc_pauses: tuple[GcPause, ...]
    stride: int = 1
    gc_dropped: int = 0  # pauses past MAX_GC_PAUSES, not recorded
    sources: Mapping[tuple[str, int], str] = field(default_factory=dict)

    @property
    def sample_interval_s(self) -> float:
        """Seconds between two kept samples."""
        return self.interval_s * self.stride

    def source(self, file: str, line: int) -> str:
        """The stripped source text of ``file:line`` ("" when unknown)."""
        known = self.sources.get((file, line))
        if known is not None:
            return known
        import linecache

        return linecache.getline(file, line).strip()


def write_anatomy(folder: Path, record: AnatomyRecord) -> Path:
    """Write ``anatomy.jsonl`` into ``folder``, user files relative to the current
    directory where they are under it, with their lines' source text; returns its path."""
    cwd = os.path.join(os.getcwd(), "")  # noqa: PTH109, PTH118  # a str prefix to strip
    names: dict[str, str] = {}
    for file in {s.file for s in record.samples if s.file is not None}:
        names[file] = file[len(cwd) :] if file.startswith(cwd) else file
    header = {
        "schema_version": ANATOMY_SCHEMA.version,
        "interval_s": record.interval_s,
        "stride": record.stride,
        "gc_dropped": record.gc_dropped,
    }
    lines = [json.dumps(header)]
    fields: dict[tuple[str | None, int | None, str | None], str] = {}
    for s in record.samples:
        key = (s.file, s.line, s.function)
        if key in fields:
            continue
        if s.file is None or s.line is None:
            fields[key] = '"file": null, "line": null, "function": null'
            continue
        name, function = json.dumps(names[s.file]), json.dumps(s.function)
        fields[key] = f'"file": {name}, "line": {s.line}, "function": {function}'
    for file, line in sorted({(f, n) for f, n, _ in fields if f is not None and n is not None}):
        code = record.source(file, line)
        lines.append(json.dumps({"file": names[file], "line": line, "code": code}))
    lines += [
        _SAMPLE_LINE % (s.t_s, s.late_s, s.phase, fields[(s.file, s.line, s.function)])
        for s in record.samples
    ]
    lines += [json.dumps(p.to_json()) for p in record.gc_pauses]
    path = folder / ANATOMY
    scratch = folder / f"{ANATOMY}.tmp"
    scratch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    scratch.replace(path)  # a reader never sees half a record
    return path


def read_anatomy(folder: Path) -> AnatomyRecord | None:
    """The record in ``folder/anatomy.jsonl``; ``None`` without one. A file that is not
    one raises :class:`~trainperf.errors.RecordError` naming it (and the line)."""
    path = folder / ANATOMY
    if not path.is_file():
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise RecordError(f"{path} is not text; it is not a trainperf anatomy record") from None
    if not lines:
        raise RecordError(f"{path} is empty; it is not a trainperf anatomy record")
    try:
        first = as_object(json.loads(lines[0]), "a line")
    except (ValueError, RecordError) as exc:
        raise RecordError(f"{path}:1: not a trainperf anatomy record ({exc})") from None
    # A header of another version is one line naming the version, not a malformed line.
    ANATOMY_SCHEMA.check(first, source=str(path))
    header = _Header(0.0, 1, 0)  # replaced by line 1
    samples: list[StackSample] = []
    pauses: list[GcPause] = []
    sources: dict[tuple[str, int], str] = {}
    for number, line in enumerate(lines, start=1):
        try:
            data = as_object(json.loads(line), "a line")
            if number == 1:
                header = _header(data)
            elif "phase" in data:
                samples.append(StackSample.from_json(data))
            elif "gc_s" in data:
                pauses.append(GcPause.from_json(data))
            elif "code" in data:
                sources[(req_str(data, "file"), req_int(data, "line"))] = req_str(data, "code")
            else:
                raise RecordError("neither a sample, a GC pause nor a source line")
        except (ValueError, RecordError) as exc:
            raise RecordError(f"{path}:{number}: not a trainperf anatomy record ({exc})") from None
    return AnatomyRecord(
        interval_s=header.interval_s,
        samples=tuple(samples),
        gc_pauses=tuple(pauses),
        stride=header.stride,
        gc_dropped=header.gc_dropped,
        sources=sources,
    )


@dataclass(frozen=True)
class _Header:
    interval_s: float
    stride: int
    gc_dropped: int


def _header(data: JsonObject) -> _Header:
    interval_s = req_float(data, "interval_s")
    stride = opt_int(data, "stride") or 1
    if interval_s <= 0 or stride < 1:
        raise RecordError(f"interval_s must be > 0 and stride >= 1, got {interval_s}, {stride}")
    return _Header(interval_s, stride, opt_int(data, "gc_dropped") or 0)


def parse_phase(value: str) -> Phase:
    """``value`` as a :data:`Phase`; anything else is a ``RecordError``."""
    for phase in PHASES:
        if value == phase:
            return phase
    raise RecordError(f"unknown phase {value!r}; expected one of {', '.join(PHASES)}")
