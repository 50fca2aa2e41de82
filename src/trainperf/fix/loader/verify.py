"""Checking and writing: the settings as written timed against the file's original ones,
in turns (:func:`remeasure`), and the edited files written with their originals kept
(:func:`write_fix`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from trainperf.errors import UsageError
from trainperf.fix.loader.values import Remeasured

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from trainperf.fix.loader.values import LoaderFix


VERIFY_ROUNDS = 5  # turns per side when re-measuring, as the doctor times its advice
VERIFY_BATCHES = 8


def remeasure(
    fix: LoaderFix,
    dataset: object,
    *,
    collate_fn: Callable[..., object] | None = None,
    train_step: Callable[[object], object] | None = None,
    rounds: int = VERIFY_ROUNDS,
    batches: int = VERIFY_BATCHES,
    clock: Callable[[], float] = time.perf_counter,
) -> Remeasured:
    """Time the loader as written (``fix.written``) against the file's original settings
    (``fix.original``) on ``dataset``, in ``rounds`` alternating turns of ``batches``
    batches each (more for a side whose workers hold more in flight: see
    :func:`~trainperf.calibration.verify.measure_side_by_side`; fewer when the dataset
    is small), and compare the speed-up's interval with the calibration's. ``clock``:
    seconds.

    Raises :class:`UsageError` for a dataset too small to time one batch after each
    side's warm-up, or a bad ``rounds``/``batches``; whatever the dataset raises
    propagates.
    """
    from trainperf.calibration.trials import warmup_batches
    from trainperf.calibration.verify import measure_side_by_side

    try:
        length = len(dataset)  # type: ignore[arg-type]  # a map-style dataset, checked here
    except TypeError:
        raise UsageError(
            f"re-measuring needs a map-style dataset (with __len__), got "
            f"{type(dataset).__name__}; pass --no-verify"
        ) from None
    size = fix.written.batch_size
    warmup = max(warmup_batches(fix.original), warmup_batches(fix.written))
    room = length // size - warmup
    if room < 1:
        raise UsageError(
            f"the dataset has {length} samples; re-measuring reads at least "
            f"{(warmup + 1) * size} (warm-up {warmup} + 1 batches of {size}): give a larger "
            "dataset, or --no-verify"
        )
    found = measure_side_by_side(
        dataset,
        fix.original,
        fix.written,
        collate_fn=collate_fn,
        train_step=train_step,
        rounds=rounds,
        batches=min(batches, room),
        clock=clock,
    )
    gain = fix.calibrated.gain
    agrees = None if gain is None else gain.overlaps(found.speedup_low, found.speedup_high)
    return Remeasured(found, agrees)


def not_shown_faster(fix: LoaderFix, remeasured: Remeasured | None) -> str | None:
    """Why ``fix`` is not to be offered: the latest measurement of it (``remeasured``,
    else the calibration's gain) does not show it faster, its interval reaching 1x or
    lying below (a gain estimated without an interval: under ``1 + TIE``). None when it
    is shown faster, changes nothing, or was never measured."""
    from trainperf._stats import format_speedup
    from trainperf.calibration.search import TIE

    if not fix.changed:
        return None
    if remeasured is not None:
        found = remeasured.side_by_side
        if found.speedup_low > 1.0:
            return None
        shown = format_speedup(found.speedup, found.speedup_low, found.speedup_high)
        return f"re-measured {shown}: its interval reaches 1x, the change is not shown faster"
    gain = fix.calibrated.gain
    if gain is None:
        return None
    if gain.low is not None and gain.high is not None:
        if gain.low > 1.0:
            return None
        return f"the calibration's gain, {gain.short()}, reaches 1x: not shown faster"
    if gain.value >= 1.0 + TIE:
        return None
    return f"the calibration's gain, {gain.short()}, is under {1 + TIE:.2f}x: not shown faster"


def write_fix(fix: LoaderFix) -> tuple[tuple[Path, Path], ...]:
    """Write each edited file, its original kept beside it as ``FILE.orig`` (``.orig.1``,
    ... when that exists). Returns (file, copy of the original) pairs.

    Raises :class:`UsageError` when a file changed since :func:`plan` read it (nothing
    of that file is written).
    """
    from trainperf.fix.patch import write_keeping_original

    return tuple((e.path, write_keeping_original(e.path, e.before, e.after)) for e in fix.edits)
