"""Epochs: what worker start-up costs over a run, measured and weighed.

A DataLoader without ``persistent_workers`` starts its workers again at every
epoch, and an epoch waits for them: under ``spawn`` or ``forkserver`` each worker
imports the main module and torch and unpickles the dataset, seconds on a small
machine. With persistent workers the start is paid once; a later epoch only refills
the pipeline. Short epochs (a small dataset, a validation loader) make this matter.

What is measured (seconds):

* every candidate's warm-up (:mod:`~trainperf.calibration.trials`): from
  ``iter(loader)`` to the first batch, and to the end of its warm-up batches, with
  new workers;
* for the choice, :func:`measure_restart`: the same with its workers kept alive
  between short epochs (``persistent_workers=True``).

An epoch's *start-up* is the time its warm-up batches took beyond as many batches at
the candidate's steady rate (:func:`startup_s`). A candidate is weighed by its rate
over a run (:func:`run_samples_per_s`): ``count`` epochs of ``batches`` batches at the
steady rate, plus one start-up, plus one start-up per later epoch -- a new one
without persistent workers, a refill with them (taken as free until measured, then
as measured). ``workers=0`` loads in the training process, which never restarts.

The number of epochs is the caller's (``calibrate(epochs=...)``), else
``DEFAULT_EPOCHS``, said as assumed wherever the result is shown; the batches of an
epoch are the dataset's length over the batch size (and the ranks, under
``torch.distributed``).
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainperf._json import as_object, opt_float, req_int
from trainperf.calibration.trials import _TOO_MANY, shut_down, stop_workers, warmup_batches
from trainperf.errors import RecordError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from torch.utils.data import DataLoader

    from trainperf._json import JsonObject
    from trainperf.calibration.config import LoaderConfig
    from trainperf.calibration.trials import Trial

__all__ = [
    "DEFAULT_EPOCHS",
    "EpochPlan",
    "Restart",
    "measure_restart",
    "run_samples_per_s",
    "startup_s",
    "time_epochs",
]

DEFAULT_EPOCHS = 10  # a run's epochs when the caller does not say
LIVE_EPOCHS = 2  # epochs timed with live workers by measure_restart


@dataclass(frozen=True)
class EpochPlan:
    """The run a choice is weighed over: ``count`` epochs of ``batches`` batches;
    ``persistent``: whether the choice may keep its workers between epochs."""

    count: int
    batches: int
    count_given: bool = True  # False: DEFAULT_EPOCHS, an assumption
    persistent: bool = True

    def __post_init__(self) -> None:
        for name in ("count", "batches"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"epochs: {name} must be an integer >= 1, got {value!r}")

    @classmethod
    def of(
        cls,
        length: int,
        batch_size: int,
        *,
        epochs: int | None,
        persistent: bool,
        ranks: int = 1,
    ) -> EpochPlan:
        """The plan for a dataset of ``length`` samples read by ``ranks`` ranks."""
        batches = max(1, math.ceil(length / (batch_size * max(1, ranks))))
        if epochs is None:
            return cls(DEFAULT_EPOCHS, batches, count_given=False, persistent=persistent)
        return cls(epochs, batches, count_given=True, persistent=persistent)

    def describe(self) -> str:
        assumed = "" if self.count_given else " (assumed)"  # the calibration's text says how
        return f"{self.count} epochs{assumed} of {self.batches} batches"

    def to_json(self) -> JsonObject:
        return {
            "count": self.count,
            "count_given": self.count_given,
            "batches": self.batches,
            "persistent_allowed": self.persistent,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> EpochPlan:
        data = as_object(data, "epochs")
        try:
            return cls(
                req_int(data, "count"),
                req_int(data, "batches"),
                count_given=data.get("count_given") is True,
                persistent=data.get("persistent_allowed") is not False,
            )
        except UsageError as exc:
            raise RecordError(f"invalid epochs record: {exc}") from None


def startup_s(
    config: LoaderConfig, warmup_s: float | None, samples_per_s: float | None
) -> float | None:
    """Seconds an epoch's warm-up batches took beyond as many at ``samples_per_s``.

    >>> from trainperf.calibration.config import LoaderConfig
    >>> config = LoaderConfig(batch_size=10, num_workers=2, prefetch_factor=2)
    >>> round(startup_s(config, 1.5, 100.0), 6)  # 5 batches of 0.1 s, in 1.5 s
    1.0
    """
    if warmup_s is None or not samples_per_s or not math.isfinite(samples_per_s):
        return None
    steady = warmup_batches(config) * config.batch_size / samples_per_s
    return max(0.0, warmup_s - steady)


def run_samples_per_s(
    trial: Trial, plan: EpochPlan, *, live_startup_s: float | None = None
) -> float | None:
    """``trial``'s samples per second over ``plan``'s run, start-ups included (see the
    module); ``live_startup_s``: an epoch's start-up with live workers, measured."""
    rate = trial.samples_per_s
    if not rate or not math.isfinite(rate):
        return rate
    config = trial.config
    samples = plan.count * plan.batches * config.batch_size
    first = startup_s(config, trial.warmup_s, rate) or 0.0
    if config.num_workers == 0:
        later = 0.0  # the training process loads: nothing to start again
    elif plan.persistent:
        later = live_startup_s or 0.0
    else:
        later = first
    return samples / (samples / rate + first + (plan.count - 1) * later)


@dataclass(frozen=True)
class Restart:
    """An epoch's start with new workers and with live ones (``persistent_workers``)."""

    first_batch_s: float  # iter(loader) to the first batch, workers started anew
    startup_s: float  # the epoch's start-up (see the module), workers started anew
    live_first_batch_s: float  # the same with the workers kept (median of the epochs)
    live_startup_s: float
    live_epochs: int

    def to_json(self) -> JsonObject:
        return {
            "first_batch_new_workers_s": round(self.first_batch_s, 5),
            "startup_new_workers_s": round(self.startup_s, 5),
            "first_batch_live_workers_s": round(self.live_first_batch_s, 5),
            "startup_live_workers_s": round(self.live_startup_s, 5),
            "live_epochs": self.live_epochs,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> Restart | None:
        """``None`` for a record without a restart measurement (its values null)."""
        data = as_object(data, "a restart measurement")
        values = [
            opt_float(data, key)
            for key in (
                "first_batch_new_workers_s",
                "startup_new_workers_s",
                "first_batch_live_workers_s",
                "startup_live_workers_s",
            )
        ]
        live = data.get("live_epochs")
        if any(v is None for v in values) or not isinstance(live, int):
            return None
        first, start, live_first, live_start = (float(v or 0.0) for v in values)
        return cls(first, start, live_first, live_start, live)


def measure_restart(
    dataset: object,
    config: LoaderConfig,
    *,
    samples_per_s: float,
    collate_fn: Callable[..., object] | None,
    step: Callable[[object], object] | None,
    timeout_s: float,
    clock: Callable[[], float],
    live_epochs: int = LIVE_EPOCHS,
) -> Restart:
    """Time ``config`` with ``persistent_workers=True`` over ``1 + live_epochs`` short
    epochs (its warm-up batches each, the same samples): the first starts the workers,
    the others find them alive. ``samples_per_s``: the steady rate of ``config``, which
    start-up is measured against. Whatever the loader raises propagates, after its
    workers are shut down."""
    from torch.utils.data import DataLoader

    if config.num_workers == 0:
        raise UsageError("measure_restart needs worker processes; num_workers is 0")
    length = len(dataset)  # type: ignore[arg-type]
    count = warmup_batches(config)
    indices = [i % length for i in range(count * config.batch_size)]
    kwargs = config.replace(persistent_workers=True).loader_kwargs()
    kwargs["timeout"] = timeout_s
    if collate_fn is not None:
        kwargs["collate_fn"] = collate_fn
    firsts: list[float] = []
    whole: list[float] = []
    loader: DataLoader[object] | None = None
    iterator: Iterator[object] | None = None
    with config.threads(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_TOO_MANY)
        try:
            loader = DataLoader(dataset, sampler=indices, **kwargs)  # type: ignore[arg-type]  # kwargs of DataLoader
            for _ in range(1 + live_epochs):
                began = clock()
                first = None
                iterator = iter(loader)
                for batch in iterator:
                    if first is None:
                        first = clock() - began
                    if step is not None:
                        step(batch)
                firsts.append(first or 0.0)
                whole.append(clock() - began)
        finally:
            shut_down(iterator)  # the persistent workers stop here
            del iterator, loader
    steady = count * config.batch_size / samples_per_s
    return Restart(
        first_batch_s=firsts[0],
        startup_s=max(0.0, whole[0] - steady),
        live_first_batch_s=statistics.median(firsts[1:]),
        live_startup_s=max(0.0, statistics.median(whole[1:]) - steady),
        live_epochs=live_epochs,
    )


def time_epochs(
    dataset: object,
    config: LoaderConfig,
    *,
    epochs: int,
    collate_fn: Callable[..., object] | None = None,
    train_step: Callable[[object], object] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    limit_s: float | None = None,
) -> float:
    """Seconds ``epochs`` whole epochs of ``DataLoader(dataset, collate_fn=collate_fn,
    **config.loader_kwargs())`` take, the advice as written (inside ``config.threads()``),
    from building the loader to the last batch (and step): every worker start and
    restart included, the final shutdown not. ``limit_s``: past this (no batch within
    it, or the epochs not done), stop and return ``math.inf``: for comparing many
    configurations, where one clearly slower need not run to its end.

        for config in (advised, original):
            print(config.describe(), time_epochs(dataset, config, epochs=3))
    """
    from torch.utils.data import DataLoader

    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise UsageError(f"epochs must be an integer >= 1, got {epochs!r}")
    if limit_s is not None and not limit_s > 0:
        raise UsageError(f"limit_s must be > 0 seconds, got {limit_s!r}")
    kwargs = config.loader_kwargs()
    if limit_s is not None and config.num_workers:
        kwargs["timeout"] = limit_s  # a first batch later than that: over the limit
    loader: DataLoader[object] | None = None
    iterator: Iterator[object] | None = None
    with config.threads(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_TOO_MANY)
        began = clock()
        try:
            loader = DataLoader(dataset, collate_fn=collate_fn, **kwargs)  # type: ignore[arg-type]  # kwargs of DataLoader
            for _ in range(epochs):
                iterator = iter(loader)
                for batch in iterator:
                    if train_step is not None:
                        train_step(batch)
                    if limit_s is not None and clock() - began > limit_s:
                        stop_workers(iterator)
                        return math.inf
            return clock() - began
        except RuntimeError as exc:
            if limit_s is not None and "timed out" in str(exc):
                stop_workers(iterator)
                return math.inf
            raise
        finally:
            shut_down(iterator)  # persistent workers stop here, untimed
            del iterator, loader
