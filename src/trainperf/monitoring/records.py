"""The records of a monitored run: plain data, JSON both ways, one folder per run.

``runs/<id>/meta.json`` (what ran, where), ``steps.jsonl`` (one line per training
step or validation period, appended and flushed as the run goes, so a killed run
is still readable), ``samples.jsonl`` (the host sampler's), ``device_memory.json``
(CUDA memory peaks per epoch, when CUDA was used) and ``summary.json`` (written at
the end).

``meta.json`` carries the folder's ``schema_version`` (:data:`trainperf._schema.RUN_RECORDS`):
the version of every record in it, the JSON Lines files included, which carry none of
their own; ``device_memory.json`` and ``probe.json`` carry it too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from trainperf._json import as_object, opt_float, opt_int, req_float, req_int, req_str
from trainperf._schema import RUN_RECORDS
from trainperf.errors import RecordError

if TYPE_CHECKING:
    from pathlib import Path

    from trainperf._json import JsonObject

__all__ = [
    "DEVICE_MEMORY",
    "Period",
    "RunMeta",
    "is_run",
    "rank_folders",
    "read_device_memory",
    "read_meta",
    "read_periods",
    "write_device_memory",
]

# Per epoch, the peaks of CUDA memory allocated and reserved (written at the end).
DEVICE_MEMORY = "device_memory.json"
PeriodKind = Literal["train", "val"]
_LINE = (
    '{"kind": "%s", "index": %d, "epoch": %d, "start_s": %.7f, "wall_s": %.7f, '
    '"data_wait_s": %.7f, "samples": %s, "first_of_epoch": %s, "before_backward_s": %s, '
    '"device_s": %s, "batches": %s, "first_wait_s": %s, "tokens": %s}'
)


@dataclass(frozen=True)
class Period:
    """One training step, or one stretch of validation between training steps.

    Times are seconds from the start of monitoring. ``data_wait_s`` is the time the
    loop was blocked waiting for batches (what prefetching did not hide).
    """

    kind: PeriodKind
    index: int
    epoch: int
    start_s: float
    wall_s: float
    data_wait_s: float
    samples: int | None
    first_of_epoch: bool = False
    # From the step's start to its first backward(): data wait plus the forward pass,
    # the part of a step no other rank waits inside (what tells a straggler).
    before_backward_s: float | None = None
    # GPU time between the step's last batch arriving and its end, from CUDA events
    # read back later (never a synchronisation per step); None without CUDA.
    device_s: float | None = None
    # Validation periods: the batches read, and the first one's wait (a pass without
    # persistent workers starts its workers there, before any batch is built).
    batches: int | None = None
    first_wait_s: float | None = None
    # Tokens read: the non-padding positions of a batch's ``attention_mask``, else the
    # size of its ``input_ids`` (language-model batches); None for other batches.
    tokens: int | None = None

    def to_json(self) -> JsonObject:
        return {
            "kind": self.kind,
            "index": self.index,
            "epoch": self.epoch,
            "start_s": round(self.start_s, 7),
            "wall_s": round(self.wall_s, 7),
            "data_wait_s": round(self.data_wait_s, 7),
            "samples": self.samples,
            "first_of_epoch": self.first_of_epoch,
            "before_backward_s": (
                None if self.before_backward_s is None else round(self.before_backward_s, 7)
            ),
            "device_s": None if self.device_s is None else round(self.device_s, 7),
            "batches": self.batches,
            "first_wait_s": None if self.first_wait_s is None else round(self.first_wait_s, 7),
            "tokens": self.tokens,
        }

    def to_line(self) -> str:
        """:meth:`to_json` as one JSON line, formatted directly: this runs for every
        step of a monitored run, and ``json.dumps`` costs several times more."""
        samples = "null" if self.samples is None else str(self.samples)
        before = "null" if self.before_backward_s is None else f"{self.before_backward_s:.7f}"
        device = "null" if self.device_s is None else f"{self.device_s:.7f}"
        batches = "null" if self.batches is None else str(self.batches)
        first = "null" if self.first_wait_s is None else f"{self.first_wait_s:.7f}"
        tokens = "null" if self.tokens is None else str(self.tokens)
        return _LINE % (
            self.kind,
            self.index,
            self.epoch,
            self.start_s,
            self.wall_s,
            self.data_wait_s,
            samples,
            "true" if self.first_of_epoch else "false",
            before,
            device,
            batches,
            first,
            tokens,
        )

    @classmethod
    def from_json(cls, data: JsonObject) -> Period:
        kind = req_str(data, "kind")
        if kind not in ("train", "val"):
            raise RecordError(f"unknown period kind {kind!r}")
        return cls(
            kind="train" if kind == "train" else "val",
            index=req_int(data, "index"),
            epoch=req_int(data, "epoch"),
            start_s=req_float(data, "start_s"),
            wall_s=req_float(data, "wall_s"),
            data_wait_s=req_float(data, "data_wait_s"),
            samples=opt_int(data, "samples"),
            first_of_epoch=bool(data.get("first_of_epoch", False)),
            before_backward_s=opt_float(data, "before_backward_s"),
            device_s=opt_float(data, "device_s"),
            batches=opt_int(data, "batches"),
            first_wait_s=opt_float(data, "first_wait_s"),
            tokens=opt_int(data, "tokens"),
        )


@dataclass(frozen=True)
class RunMeta:
    run_id: str
    command: str
    started_at: float  # wall-clock seconds since the epoch
    pid: int
    rank: int | None
    fingerprint: JsonObject
    # True when monitoring started with the process (``trainperf run``): the time
    # before the first step is then start-up.
    from_process_start: bool = False
    # torch's intra-op threads: the most seen at the start and at the end of the run (a
    # script may set them after monitoring began); written again when the run ends.
    intra_op_threads: int | None = None

    def to_json(self) -> JsonObject:
        return {
            "schema_version": RUN_RECORDS.version,
            "run_id": self.run_id,
            "command": self.command,
            "started_at": self.started_at,
            "pid": self.pid,
            "rank": self.rank,
            "fingerprint": self.fingerprint,
            "from_process_start": self.from_process_start,
            "intra_op_threads": self.intra_op_threads,
        }

    @classmethod
    def from_json(cls, data: JsonObject, *, source: str = "a run's meta.json") -> RunMeta:
        """The meta record, if this trainperf reads its version (see :func:`read_meta`);
        ``source`` names the file in the error."""
        if not isinstance(data, dict):
            raise RecordError(f"{source} must hold an object")
        RUN_RECORDS.check(data, source=source)
        return cls(
            run_id=req_str(data, "run_id"),
            command=req_str(data, "command"),
            started_at=req_float(data, "started_at"),
            pid=req_int(data, "pid"),
            rank=opt_int(data, "rank"),
            fingerprint=as_object(data.get("fingerprint"), "fingerprint"),
            from_process_start=data.get("from_process_start") is True,
            intra_op_threads=opt_int(data, "intra_op_threads"),
        )


def read_meta(path: Path) -> RunMeta:
    """A run's ``meta.json``; a malformed, foreign or newer one is a ``RecordError``
    naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSON and text decoding errors included
        raise RecordError(f"cannot read {path}: {exc}; {RUN_RECORDS.fix}") from None
    return RunMeta.from_json(data, source=str(path))


def check_run_version(folder: Path) -> None:
    """Raise ``RecordError`` in one line, naming the file, when a rank of the run in
    ``folder`` was recorded by a trainperf whose records this one does not read. Only
    the version: a ``meta.json`` unreadable or without one is left to the reader that
    needs it (``compare`` reads only its fingerprint)."""
    for path in rank_folders(folder):
        try:
            data = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and RUN_RECORDS.found(data) is not None:
            RUN_RECORDS.check(data, source=str(path / "meta.json"))


def read_periods(path: Path) -> list[Period]:
    """Periods from a ``steps.jsonl``; a torn last line (a killed writer) is skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise RecordError(f"{path} is not text; it is not a trainperf step record") from None
    periods = []
    for number, line in enumerate(lines, start=1):
        try:
            periods.append(Period.from_json(as_object(json.loads(line), "a period")))
        except (ValueError, RecordError) as exc:
            if number == len(lines):
                break
            raise RecordError(f"{path}:{number}: not a trainperf step record ({exc})") from None
    return periods


def rank_folders(folder: Path) -> list[Path]:
    """The folders holding a run's records: the folder itself, or one per rank."""
    if (folder / "steps.jsonl").is_file():
        return [folder]
    ranks = [p.parent for p in folder.glob("rank*/steps.jsonl")]
    return sorted(ranks, key=lambda p: int(p.name[4:]) if p.name[4:].isdecimal() else 0)


def is_run(folder: Path) -> bool:
    return bool(rank_folders(folder))


def write_device_memory(peaks: dict[int, tuple[int, int]]) -> JsonObject:
    return {
        "schema_version": RUN_RECORDS.version,
        "epochs": [
            {"epoch": e, "allocated_peak_bytes": a, "reserved_peak_bytes": r}
            for e, (a, r) in sorted(peaks.items())
        ],
    }


def read_device_memory(path: Path) -> dict[int, tuple[int, int]]:
    """Peaks per epoch from a ``device_memory.json``; none when the file is absent."""
    if not path.is_file():
        return {}
    try:
        data = as_object(json.loads(path.read_text(encoding="utf-8")), "device memory")
    except (ValueError, RecordError) as exc:
        raise RecordError(f"{path} is not a trainperf device memory record ({exc})") from None
    # The release before schema_version wrote this file unmarked.
    RUN_RECORDS.check(data, source=str(path), unmarked=1)
    try:
        epochs = data.get("epochs")
        if not isinstance(epochs, list):
            raise RecordError("no list of epochs")
        out = {}
        for raw in epochs:
            entry = as_object(raw, "an epoch")
            out[req_int(entry, "epoch")] = (
                req_int(entry, "allocated_peak_bytes"),
                req_int(entry, "reserved_peak_bytes"),
            )
    except (ValueError, RecordError) as exc:
        raise RecordError(f"{path} is not a trainperf device memory record ({exc})") from None
    return out
