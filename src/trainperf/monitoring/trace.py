"""A Chrome / Perfetto trace of a run: one slice per step and validation period."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trainperf._json import Json, JsonObject
    from trainperf.monitoring.records import Period

__all__ = ["chrome_trace"]


def chrome_trace(periods: Sequence[Period], *, rank: int = 0) -> JsonObject:
    """Trace Event Format: open in chrome://tracing or ui.perfetto.dev."""
    events: list[Json] = [
        {"name": "thread_name", "ph": "M", "pid": rank, "tid": 1, "args": {"name": "training"}},
        {"name": "thread_name", "ph": "M", "pid": rank, "tid": 2, "args": {"name": "validation"}},
    ]
    for p in periods:
        tid = 1 if p.kind == "train" else 2
        start = p.start_s * 1e6
        events.append(
            {
                "name": f"{p.kind} {p.index}",
                "ph": "X",
                "pid": rank,
                "tid": tid,
                "ts": start,
                "dur": p.wall_s * 1e6,
                "args": {"epoch": p.epoch, "samples": p.samples},
            }
        )
        if p.data_wait_s > 0:
            events.append(
                {
                    "name": "data wait",
                    "ph": "X",
                    "pid": rank,
                    "tid": tid,
                    "ts": start,
                    "dur": p.data_wait_s * 1e6,
                }
            )
    return {"traceEvents": events, "displayTimeUnit": "ms"}
