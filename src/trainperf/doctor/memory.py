"""The doctor's copy-on-read proof: a dataset's large Python lists, read by forked
DataLoader workers, against the same data in numpy arrays.

A forked worker shares the training process's pages until it writes to them; reading a
Python object writes its reference count, so every page of a list's items that a
worker reads becomes its own (PyTorch issue pytorch/pytorch#13246). The proof finds the
dataset's attributes that are Python lists of at least ``MIN_ITEMS`` items which numpy
can hold as a plain (not ``object``) array, checks that the dataset's samples stay the
same with them converted, then runs two persistent 2-worker loaders, one on the
dataset as it is and one on its converted copy, over the same shuffled batches (at most
``PROOF_BATCHES``, or ``PROOF_S`` seconds), and reads each worker's private memory
(USS) from ``/proc/<pid>/smaps_rollup`` before and after. ``fork`` only: the other
start methods copy the dataset into every worker anyway.
"""

from __future__ import annotations

import copy
import statistics
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainperf._json import JsonObject
    from trainperf.monitoring.hooks import LoaderSeen

__all__ = ["MIN_ITEMS", "PROOF_BATCHES", "PROOF_S", "large_lists", "memory_proof"]

MIN_ITEMS = 10_000  # a list this long spans enough pages to matter
PROOF_BATCHES = 200  # batches read by each loader at most
PROOF_S = 15.0  # ... or for this long, the first loader; the second reads as many
WORKERS = 2
MAX_ARRAY_BYTES = 2**30  # fixed-width strings can take more as an array than as a list
CHECKED = 3  # samples compared, converted against as they are


def large_lists(dataset: object) -> list[str]:
    """The attributes of ``dataset`` that are Python lists of at least ``MIN_ITEMS``
    items numpy holds as a plain array (numbers, strings, bytes, booleans)."""
    import numpy as np

    found = []
    for name, value in vars(dataset).items() if hasattr(dataset, "__dict__") else ():
        if isinstance(value, list) and len(value) >= MIN_ITEMS:
            try:
                kind = np.asarray(value[:1000]).dtype.kind
            except (ValueError, TypeError):
                continue
            if kind in "biufSUb":
                found.append(name)
    return found


def _converted(dataset: object, names: list[str]) -> object:
    import numpy as np

    twin = copy.copy(dataset)
    for name in names:
        setattr(twin, name, np.asarray(getattr(dataset, name)))
    return twin


def _private(pid: int) -> int | None:
    from trainperf.monitoring.worker_memory import read_smaps_rollup

    memory = read_smaps_rollup(pid)
    return None if memory is None else memory.uss


def _grown(dataset: object, seen: LoaderSeen, batches: int | None) -> tuple[list[int], int]:
    """Each worker's USS gained reading ``batches`` batches (all it can in ``PROOF_S``
    when ``None``), and the batches read."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    # Shuffled, as training reads: random items touch pages all over the lists, where
    # a sequential read would pack them into few. The same order for both loaders.
    order = RandomSampler(dataset, generator=torch.Generator().manual_seed(0))  # type: ignore[arg-type]
    loader: Any = DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=seen.batch_size,
        sampler=order,
        collate_fn=seen.collate_fn,
        num_workers=WORKERS,
        multiprocessing_context="fork",
        persistent_workers=True,
    )
    iterator: Any = iter(loader)
    try:
        next(iterator)
        pids = [w.pid for w in iterator._workers]
        before = [_private(pid) for pid in pids]
        began, read = time.perf_counter(), 1
        limit = PROOF_BATCHES if batches is None else batches
        for _ in iterator:
            read += 1
            if read >= limit or (batches is None and time.perf_counter() - began > PROOF_S):
                break
        after = [_private(pid) for pid in pids]
    finally:
        iterator._shutdown_workers()
    gained = [b - a for a, b in zip(before, after, strict=True) if a is not None and b is not None]
    return gained, read


def memory_proof(seen: LoaderSeen) -> JsonObject:
    """Workers' private memory gained reading the dataset as it is against with its
    large lists as numpy arrays (see the module); ``skipped`` says why it did not run."""
    import multiprocessing

    from trainperf.doctor.child import _same, flatten, say

    out: JsonObject = {"kind": "memory", "role": "training"}
    dataset: Any = seen.dataset
    names = large_lists(dataset)
    if not names:
        out["skipped"] = f"no Python list of {MIN_ITEMS:,}+ numbers or strings in the dataset"
        return out
    if "fork" not in multiprocessing.get_all_start_methods():
        out["skipped"] = "copy-on-read is a forked worker's: fork is not available here"
        return out
    out["attributes"] = list(names)
    twin: Any = _converted(dataset, names)
    size = sum(getattr(twin, name).nbytes for name in names)
    if size > MAX_ARRAY_BYTES:
        out["skipped"] = f"as arrays, {', '.join(names)} would take {size / 2**30:.1f} GiB"
        return out
    length = len(dataset)
    for index in sorted({0, length // 2, length - 1})[:CHECKED]:
        if not _same(flatten(dataset[index]), flatten(twin[index])):
            out["skipped"] = (
                f"sample {index} differs with {', '.join(names)} as numpy arrays: "
                "the conversion is not a drop-in change for this dataset"
            )
            return out
    say(f"measuring workers' private memory with {', '.join(names)} as lists and as arrays")
    lists, batches = _grown(dataset, seen, None)
    arrays, _ = _grown(twin, seen, batches)
    if not lists or not arrays:
        out["skipped"] = "the workers' memory could not be read (/proc/<pid>/smaps_rollup)"
        return out
    per_epoch = len(dataset) / (seen.batch_size or 1)
    out.update(
        batches=batches,
        batches_per_epoch=per_epoch,
        list_uss_gain_bytes=[int(v) for v in lists],
        array_uss_gain_bytes=[int(v) for v in arrays],
        list_gain_bytes=statistics.fmean(lists),
        array_gain_bytes=statistics.fmean(arrays),
    )
    return out
