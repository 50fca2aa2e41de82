"""What an exporter is: a writer of named figures that never sees the training loop.

An exporter is called from its own thread (:mod:`.channel`), one call at a time:
``open`` before the first figure, ``write_step`` for every training step that
reached it, ``write_epoch`` when an epoch is over, and ``close`` once, at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Mapping

    from trainperf.monitoring.analyze import RunSummary

__all__ = ["Exporter", "RunEnd"]


@dataclass(frozen=True, kw_only=True)
class RunEnd:
    """A finished run, as exporters write it.

    ``step``: the training steps recorded, where the run's figures sit on the step axis.
    ``figures``: ``perf/run/...`` figures (seconds, shares in 0-1, samples/s).
    ``tags``: the verdict as text (``perf/verdict``: the step's bottleneck, e.g.
    ``input-bound``; ``perf/verdict_confidence``; ``perf/primary``: the run's answer).
    ``summary``: everything, for an exporter that wants more.
    """

    step: int
    figures: Mapping[str, float]
    tags: Mapping[str, str]
    summary: RunSummary


@runtime_checkable
class Exporter(Protocol):
    """A backend that writes trainperf's figures (TensorBoard, W&B, MLflow, your own).

    Figures are named like ``perf/step/data_wait_s`` and hold seconds, shares (0-1),
    samples/s or bytes, as their names say. Methods may block and may raise: they run
    on the exporter's own thread, and an exception stops that exporter only.
    """

    @property
    def name(self) -> str:
        """How messages name this exporter, e.g. ``tensorboard:/runs/tb``."""
        ...

    def open(self) -> None:
        """Start writing (create the run, the files); called before the first figure."""
        ...

    def write_step(self, step: int, figures: Mapping[str, float]) -> None:
        """One training step's figures; ``step`` counts training steps from 0."""
        ...

    def write_epoch(self, epoch: int, figures: Mapping[str, float]) -> None:
        """One finished epoch's figures."""
        ...

    def close(self, end: RunEnd | None) -> None:
        """Write the run's end (``None`` when the run has no summary) and release all."""
        ...
