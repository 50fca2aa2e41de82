"""The figures exporters write, computed from a run's periods: pure functions.

Names follow the records' fields, under ``perf/`` like the Lightning callback's:

* per training step (x: the step's index): ``perf/step/step_s``,
  ``perf/step/data_wait_s``, ``perf/step/data_wait_share`` and, when the batches'
  sizes are known, ``perf/step/samples_per_s`` (``perf/step/tokens_per_s`` for
  language-model batches);
* per epoch (x: the epoch): ``perf/epoch/data_wait_share``, ``perf/epoch/samples_per_s``,
  ``perf/epoch/step_median_s`` (steps other than the epoch's first),
  ``perf/epoch/validation_share`` (of the epoch's training and validation time) and
  ``perf/epoch/rss_bytes`` (the process's resident memory when the epoch was written);
* at the end (x: the number of steps): ``perf/run/...`` from the run's summary, and
  its verdict as text (:class:`~trainperf.exporters.protocol.RunEnd`).
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from trainperf.exporters.protocol import RunEnd

if TYPE_CHECKING:
    from trainperf.monitoring.analyze import RunSummary
    from trainperf.monitoring.records import Period

__all__ = ["EpochTally", "run_end", "step_figures"]


def step_figures(period: Period) -> dict[str, float]:
    """A training step's figures: seconds, the data wait's share (0-1), per-second rates."""
    figures = {"perf/step/step_s": period.wall_s, "perf/step/data_wait_s": period.data_wait_s}
    if period.wall_s > 0:
        figures["perf/step/data_wait_share"] = period.data_wait_s / period.wall_s
        if period.samples is not None:
            figures["perf/step/samples_per_s"] = period.samples / period.wall_s
        tokens = _tokens(period)
        if tokens is not None:
            figures["perf/step/tokens_per_s"] = tokens / period.wall_s
    return figures


class EpochTally:
    """The periods of the epoch being exported, summed as they come (one thread only)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.steps = 0
        self.train_s = 0.0
        self.val_s = 0.0
        self.data_wait_s = 0.0
        self.samples: int | None = None
        self.tokens: int | None = None
        self._steady: list[float] = []  # step times, the epoch's first step aside
        self._first: list[float] = []

    def add(self, period: Period) -> None:
        if period.kind == "val":
            self.val_s += period.wall_s
            return
        self.steps += 1
        self.train_s += period.wall_s
        self.data_wait_s += period.data_wait_s
        if period.samples is not None:
            self.samples = (self.samples or 0) + period.samples
        tokens = _tokens(period)
        if tokens is not None:
            self.tokens = (self.tokens or 0) + tokens
        (self._first if period.first_of_epoch else self._steady).append(period.wall_s)

    def figures(self, *, rss_bytes: int | None) -> dict[str, float]:
        """The epoch's figures; none for an epoch without a training step."""
        if not self.steps:
            return {}
        figures: dict[str, float] = {
            "perf/epoch/step_median_s": statistics.median(self._steady or self._first),
            "perf/epoch/validation_share": self.val_s / (self.train_s + self.val_s)
            if self.train_s + self.val_s > 0
            else 0.0,
        }
        if self.train_s > 0:
            figures["perf/epoch/data_wait_share"] = self.data_wait_s / self.train_s
            if self.samples is not None:
                figures["perf/epoch/samples_per_s"] = self.samples / self.train_s
            if self.tokens is not None:
                figures["perf/epoch/tokens_per_s"] = self.tokens / self.train_s
        if rss_bytes is not None:
            figures["perf/epoch/rss_bytes"] = float(rss_bytes)
        return figures


def run_end(summary: RunSummary) -> RunEnd:
    """The run's figures and verdict, from its summary (seconds, shares 0-1, rates)."""
    figures = {
        "perf/run/steps": float(summary.steps),
        "perf/run/train_s": summary.train_s,
        "perf/run/data_wait_share": summary.shares.get("data_wait", 0.0),
        "perf/run/validation_share": summary.shares.get("validation", 0.0),
        "perf/run/startup_share": summary.shares.get("startup", 0.0),
    }
    optional = {
        "perf/run/samples_per_s": summary.samples_per_s,
        "perf/run/step_median_s": summary.step_median_s,
        "perf/run/tokens_per_s": getattr(summary, "tokens_per_s", None),
    }
    figures.update({k: float(v) for k, v in optional.items() if isinstance(v, int | float)})
    tags = {
        "perf/verdict": summary.step.kind,
        "perf/verdict_confidence": summary.step.confidence,
        "perf/primary": summary.primary,
    }
    return RunEnd(step=summary.steps, figures=figures, tags=tags, summary=summary)


def _tokens(period: Period) -> int | None:
    # Language-model batches count tokens where the records have them.
    tokens = getattr(period, "tokens", None)
    return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None
