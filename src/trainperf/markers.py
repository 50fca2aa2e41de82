"""Phase markers: ``trainperf.mark("config_validated")`` in a training script.

A marker costs one environment lookup when no trainperf command is listening. When a
command that measures start-up runs the script, it sets ``TRAINPERF_MARKERS`` to a
file, and each marker appends one JSON line to it: the name, the wall-clock time and
the process id, so markers from DataLoader workers or other ranks can be told apart.

    >>> mark("config_validated")  # a no-op unless TRAINPERF_MARKERS is set
"""

from __future__ import annotations

import os

# json, time and errors are imported where used: `import trainperf; trainperf.mark(...)`
# sits at the top of entry points that are timed for start-up, so it loads nothing.

__all__ = ["MARKERS_VARIABLE", "Marker", "mark", "read_markers"]

MARKERS_VARIABLE = "TRAINPERF_MARKERS"


def mark(name: str) -> None:
    """Record that the process reached the phase ``name`` (if anyone is listening)."""
    path = os.environ.get(MARKERS_VARIABLE)
    if not path:
        return
    import json
    import time

    line = json.dumps({"name": str(name), "time": time.time(), "pid": os.getpid()})
    # One write of a short line in append mode is atomic enough for concurrent writers.
    with open(path, "a", encoding="utf-8") as handle:  # noqa: PTH123 - hot path, no pathlib
        handle.write(line + "\n")


class Marker:
    __slots__ = ("name", "pid", "time")

    def __init__(self, name: str, time: float, pid: int) -> None:
        self.name = name
        self.time = time
        self.pid = pid

    def __repr__(self) -> str:
        return f"Marker({self.name!r}, time={self.time:.6f}, pid={self.pid})"


def read_markers(path: str | os.PathLike[str]) -> list[Marker]:
    """Markers written to ``path``, in order; a torn last line (a killed writer) is skipped."""
    import json

    from trainperf.errors import RecordError

    markers = []
    with open(path, encoding="utf-8") as handle:  # noqa: PTH123 - keeps pathlib unloaded
        lines = handle.read().splitlines()
    for number, line in enumerate(lines, start=1):
        try:
            data = json.loads(line)
            markers.append(Marker(str(data["name"]), float(data["time"]), int(data["pid"])))
        except (ValueError, KeyError, TypeError):
            if number == len(lines):
                break
            raise RecordError(
                f"{path}:{number}: not a trainperf marker line: {line[:60]!r}"
            ) from None
    return markers
