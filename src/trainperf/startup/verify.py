"""Measure what deferring a statement really saves, to check the prediction.

For each chosen statement, the target is loaded repeatedly in fresh interpreters,
alternating the original and a variant in which that one statement binds lazy
proxies instead of importing (:mod:`._defer`); the saving is the difference of the
median load times. Statements are taken largest predicted saving first, and one
predicted to save less than ``MIN_PREDICTED_S`` is not re-timed: its saving would be
lost in the noise of starting an interpreter, and a "measured" figure for it would
mean nothing.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from trainperf.errors import UsageError
from trainperf.startup.probe import run_probe
from trainperf.startup.report import Verification

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from trainperf.startup.probe import Target
    from trainperf.startup.report import LineCost

__all__ = ["MIN_PREDICTED_S", "measure_saving", "verify_lines", "worth_verifying"]

MIN_PREDICTED_S = 0.01

# Loads the deferral machinery without deferring anything, so that the baseline
# pays the same fixed cost as the variants.
_NOTHING = (("", 0),)


def measure_saving(
    target: Target,
    defer: tuple[tuple[str, int], ...],
    *,
    repeat: int,
    progress: Callable[[str], None] | None = None,
) -> float:
    """Median load time of the target minus that with the ``defer`` statements lazy."""
    base: list[float] = []
    deferred: list[float] = []
    for i in range(repeat):
        if progress is not None:
            progress(f"verifying {len(defer)} statement(s) ({i + 1}/{repeat})")
        base.append(run_probe(target, trace=False, defer=_NOTHING).elapsed_s)
        variant = run_probe(target, trace=False, defer=defer)
        if variant.error:
            # A variant that stopped early would look like a saving.
            raise UsageError(
                f"{target.label} fails to load with those statements deferred "
                f"({variant.error}): a name they bind is used at import time"
            )
        deferred.append(variant.elapsed_s)
    return statistics.median(base) - statistics.median(deferred)


def worth_verifying(lines: Sequence[LineCost], limit: int | None = None) -> list[LineCost]:
    """The statements to re-time: largest predicted (exclusive) saving first, none
    predicted under ``MIN_PREDICTED_S``, at most ``limit``."""
    chosen = sorted(
        (c for c in lines if c.exclusive_s >= MIN_PREDICTED_S),
        key=lambda c: (-c.exclusive_s, c.file, c.line),
    )
    return chosen if limit is None else chosen[:limit]


def verify_lines(
    target: Target,
    lines: Sequence[LineCost],
    *,
    repeat: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[Verification, ...]:
    """Measure the saving of each of ``lines`` worth verifying (see :func:`worth_verifying`)."""
    return tuple(
        Verification(
            cost.file,
            cost.line,
            cost.exclusive_s,
            measure_saving(target, ((cost.file, cost.line),), repeat=repeat, progress=progress),
        )
        for cost in worth_verifying(lines)
    )
