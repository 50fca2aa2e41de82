"""Data wait in a loop without a DataLoader: time in the user's own batch-making function.

Loops that cut batches from an array themselves (nanoGPT's ``get_batch``, pytorch/examples'
``word_language_model``) wait for their data inside a function of their own, where no
DataLoader hook sees it. The step anatomy's stack samples do: a sample whose innermost
user frame is a function named like a batch maker (:data:`BATCH_FUNCTION`: ``get_batch``,
``load_batch``, ``next_batch``, ``fetch_data``, ``sample_batch``, ``read_inputs``, ...)
is the loop waiting for its data.

The share of the steps' sampled time (outside DataLoader fetches) those samples take is
added to each training step's data wait, pooled over the steps (a step shorter than the
sampling interval holds no sample): ``data_wait += (wall - data_wait) * share``. The
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

__all__ = ["BATCH_FUNCTION", "MIN_SAMPLES", "count_batch_functions"]

BATCH_FUNCTION = re.compile(
    r"(^|_)(get|load|fetch|next|make|sample|read|prepare)_?(batch(es)?|data|inputs?|samples?)($|_)",
    re.IGNORECASE,
)
MIN_SAMPLES = 5  # fewer samples in such functions: too little to move time on


def count_batch_functions(
    periods: Sequence[Period], record: AnatomyRecord
) -> tuple[list[Period], AnatomyRecord, tuple[str, ...]]:
    """The periods with their batch-making time counted as data wait, the record with
    those samples labelled ``"data"``, and the functions (``"file:function"``); the
    inputs unchanged when there are fewer than ``MIN_SAMPLES`` such samples."""
    train = sorted((p for p in periods if p.kind == "train"), key=lambda p: p.start_s)
    starts = [p.start_s for p in train]

    def in_step(t_s: float) -> bool:
        at = bisect.bisect_right(starts, t_s) - 1
        return at >= 0 and t_s < train[at].start_s + train[at].wall_s

    moved: list[int] = []
    sampled = 0
    names: dict[str, None] = {}
    for i, sample in enumerate(record.samples):
        if sample.phase == "data" or not in_step(sample.t_s):
            continue
        sampled += 1
        if sample.function and BATCH_FUNCTION.search(sample.function):
            moved.append(i)
            names[f"{sample.file}:{sample.function}"] = None
    if len(moved) < MIN_SAMPLES or not sampled:
        return list(periods), record, ()
    share = len(moved) / sampled
    chosen = set(moved)
    relabelled = tuple(
        dataclasses.replace(s, phase="data") if i in chosen else s
        for i, s in enumerate(record.samples)
    )
    counted = [
        dataclasses.replace(p, data_wait_s=p.data_wait_s + (p.wall_s - p.data_wait_s) * share)
        if p.kind == "train"
        else p
        for p in periods
    ]
    return counted, dataclasses.replace(record, samples=relabelled), tuple(names)
