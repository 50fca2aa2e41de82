"""Data wait in a loop without a DataLoader: time in the user's own batch-making function.

Loops that cut batches from an array themselves (nanoGPT's ``get_batch``, pytorch/examples'
``word_language_model``) wait for their data inside a function of their own, where no
DataLoader hook sees it. The step anatomy's stack samples do: a sample whose innermost
user frame is a function named like a batch maker (:data:`BATCH_FUNCTION`: ``get_batch``,
``load_batch``, ``next_batch``, ``fetch_data``, ``sample_batch``, ``read_inputs``, ...)
is the loop waiting for its data.

The share of a step's sampled time (outside DataLoader fetches) those samples take is
added to its data wait: ``data_wait += (wall - data_wait) * share``, with the step's own
share where at least ``STEP_SAMPLES`` samples fell in it, else the share pooled over all
steps (a step shorter than a few sampling intervals holds too few samples). The
samples are then labelled ``"data"``, so that the anatomy counts them as data wait and
not as the loop's own work. An estimate, from samples; the summary names the functions
(``data_wait_functions``).
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trainperf.monitoring.anatomy_record import AnatomyRecord
    from trainperf.monitoring.records import Period

__all__ = ["BATCH_FUNCTION", "MIN_SAMPLES", "STEP_SAMPLES", "count_batch_functions"]

BATCH_FUNCTION = re.compile(
    r"(^|_)(get|load|fetch|next|make|sample|read|prepare)_?(batch(es)?|data|inputs?|samples?)($|_)",
    re.IGNORECASE,
)
MIN_SAMPLES = 5  # fewer samples in such functions: too little to move time on
STEP_SAMPLES = 4  # a step with this many samples has a share of its own


def count_batch_functions(
    periods: Sequence[Period], record: AnatomyRecord
) -> tuple[list[Period], AnatomyRecord, tuple[str, ...]]:
    """The periods with their batch-making time counted as data wait, the record with
    those samples labelled ``"data"``, and the functions (``"file:function"``); the
    inputs unchanged when there are fewer than ``MIN_SAMPLES`` such samples."""
    train = sorted((p for p in periods if p.kind == "train"), key=lambda p: p.start_s)
    starts = [p.start_s for p in train]

    def step_of(t_s: float) -> int | None:
        at = bisect.bisect_right(starts, t_s) - 1
        if at >= 0 and t_s < train[at].start_s + train[at].wall_s:
            return train[at].index
        return None

    moved: list[int] = []
    names: dict[str, None] = {}
    # Per step: (samples outside DataLoader fetches, of them in a batch function).
    per_step: dict[int, list[int]] = {}
    for i, sample in enumerate(record.samples):
        index = None if sample.phase == "data" else step_of(sample.t_s)
        if index is None:
            continue
        counts = per_step.setdefault(index, [0, 0])
        counts[0] += 1
        if sample.function and BATCH_FUNCTION.search(sample.function):
            moved.append(i)
            counts[1] += 1
            names[f"{sample.file}:{sample.function}"] = None
    sampled = sum(c[0] for c in per_step.values())
    if len(moved) < MIN_SAMPLES or not sampled:
        return list(periods), record, ()
    pooled = len(moved) / sampled
    chosen = set(moved)
    relabelled = tuple(
        dataclasses.replace(s, phase="data") if i in chosen else s
        for i, s in enumerate(record.samples)
    )

    def share(p: Period) -> float:
        counts = per_step.get(p.index)
        return counts[1] / counts[0] if counts and counts[0] >= STEP_SAMPLES else pooled

    counted = [
        dataclasses.replace(p, data_wait_s=p.data_wait_s + (p.wall_s - p.data_wait_s) * share(p))
        if p.kind == "train"
        else p
        for p in periods
    ]
    return counted, dataclasses.replace(record, samples=relabelled), tuple(names)
