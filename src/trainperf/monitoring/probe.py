"""A counterfactual probe: the training step timed with its batches already in memory.

An input-bound verdict says the loop waits for data; replaying a few batches that
were already loaded shows what a step costs when it does not, so the gain "if input
were free" is measured rather than inferred from shares. The probe runs the user's
own step (forward, backward, optimizer step) on cached batches, with monitoring
suspended, and the caller restores any state the step changed.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainperf._json import as_object, req_float, req_int

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from trainperf._json import JsonObject

__all__ = ["PROBE_FILE", "Replay", "read_replay", "replay"]

PROBE_FILE = "probe.json"


@dataclass(frozen=True)
class Replay:
    """Median time of a training step over ``steps`` replays of cached batches."""

    steps: int
    step_s: float

    def to_json(self) -> JsonObject:
        """``probe.json``: it carries the run folder's version (``RUN_RECORDS``)."""
        from trainperf._schema import RUN_RECORDS

        return RUN_RECORDS.stamp({"steps": self.steps, "step_s": self.step_s})

    @classmethod
    def from_json(cls, data: JsonObject) -> Replay:
        return cls(steps=req_int(data, "steps"), step_s=req_float(data, "step_s"))


def replay(
    step: Callable[[object], object],
    batches: Sequence[object],
    *,
    repeats: int = 2,
    sync: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.perf_counter,
) -> Replay:
    """Time ``step(batch)`` over ``batches`` (``repeats`` times) after one untimed warm-up.

    ``sync`` waits for the device (``torch.cuda.synchronize``) so a step's time
    includes its device work; the probe may synchronise, monitoring never does.
    """
    from trainperf.errors import UsageError

    if not batches:
        raise UsageError("the probe needs at least one cached batch")
    if repeats < 1:
        raise UsageError(f"repeats must be >= 1, got {repeats}")
    step(batches[0])
    sync()
    times = []
    for _ in range(repeats):
        for batch in batches:
            started = clock()
            step(batch)
            sync()
            times.append(clock() - started)
    return Replay(steps=len(times), step_s=statistics.median(times))


def read_replay(path: Path) -> Replay | None:
    """The probe a run recorded, if any; a file that is not one is a RecordError."""
    import json

    from trainperf._schema import RUN_RECORDS
    from trainperf.errors import RecordError

    if not path.is_file():
        return None
    try:
        data = as_object(json.loads(path.read_text("utf-8")), "a probe")
    except (ValueError, RecordError) as exc:
        raise RecordError(f"{path} is not a trainperf probe record ({exc})") from None
    # The release before schema_version wrote this file unmarked.
    RUN_RECORDS.check(data, source=str(path), unmarked=1)
    try:
        return Replay.from_json(data)
    except RecordError as exc:
        raise RecordError(f"{path} is not a trainperf probe record ({exc})") from None
