"""Advice as written, measured side by side with what it replaces.

    result = measure_side_by_side(dataset, original, advised, train_step=step)
    if result.speedup_low > 1.05:
        print(f"advised settings: {result.describe()}")

The sides take turns, the order alternating from round to round (A B, B A, A B ...)
so that neither always goes first. A turn builds its loader exactly as a user
builds it from the advice, ``DataLoader(dataset, collate_fn=collate_fn,
**config.loader_kwargs())``, and iterates it inside ``with config.threads():`` (the
main-process thread setting the advice makes, restored after):
``warmup_batches(config)`` batches not timed (the first, which pays the workers'
start-up, and those they queued meanwhile), then ``batches`` batches timed, each
followed by ``train_step(batch)`` when given. The loader is dropped at the end of
its turn, persistent workers included: workers left alive would go on filling
their queues during the other side's turn and slow it. Every turn reads the same
samples, from the start of the dataset, in order.

The speed-up is the ratio of the sides' median rates; its interval is a paired
bootstrap over rounds (:mod:`~trainperf.calibration.speedup`): a round's two turns
are resampled together, so a slow spell that hits both cancels.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainperf._json import as_object, req_float, req_int, req_list
from trainperf.calibration.config import LoaderConfig
from trainperf.calibration.speedup import CONFIDENCE, speedup_interval
from trainperf.calibration.trials import _TOO_MANY, shut_down, warmup_batches
from trainperf.errors import RecordError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from torch.utils.data import DataLoader

    from trainperf._json import Json, JsonObject

__all__ = ["DEFAULT_BATCHES", "DEFAULT_ROUNDS", "SideBySide", "measure_side_by_side"]

DEFAULT_ROUNDS = 5
DEFAULT_BATCHES = 16


@dataclass(frozen=True)
class SideBySide:
    """Two loader configurations measured in turns; rates in samples per second."""

    original: LoaderConfig
    advised: LoaderConfig
    original_samples_per_s: tuple[float, ...]  # one per round
    advised_samples_per_s: tuple[float, ...]
    batches: int  # timed per turn
    speedup: float  # median advised rate / median original rate
    speedup_low: float
    speedup_high: float
    confidence: float = CONFIDENCE

    @property
    def rounds(self) -> int:
        return len(self.original_samples_per_s)

    def describe(self) -> str:
        return (
            f"{self.speedup:.2f}x the original ({self.confidence:.0%} interval "
            f"{self.speedup_low:.2f}x-{self.speedup_high:.2f}x; {self.rounds} rounds of "
            f"{self.batches} batches, interleaved)"
        )

    def to_json(self) -> JsonObject:
        return {
            "speedup": self.speedup,
            "speedup_low": self.speedup_low,
            "speedup_high": self.speedup_high,
            "confidence": self.confidence,
            "rounds": self.rounds,
            "batches": self.batches,
            "original": self.original.to_json(),
            "advised": self.advised.to_json(),
            "original_samples_per_s": list(self.original_samples_per_s),
            "advised_samples_per_s": list(self.advised_samples_per_s),
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> SideBySide:
        """Raises ``RecordError`` for a record that is not a side-by-side measurement."""
        data = as_object(data, "a side-by-side measurement")
        original = _rates(req_list(data, "original_samples_per_s"))
        advised = _rates(req_list(data, "advised_samples_per_s"))
        if len(original) != len(advised) or len(original) != req_int(data, "rounds"):
            raise RecordError("a side-by-side record needs one rate per round for each side")
        return cls(
            original=LoaderConfig.from_json(as_object(data.get("original"), "original")),
            advised=LoaderConfig.from_json(as_object(data.get("advised"), "advised")),
            original_samples_per_s=original,
            advised_samples_per_s=advised,
            batches=req_int(data, "batches"),
            speedup=req_float(data, "speedup"),
            speedup_low=req_float(data, "speedup_low"),
            speedup_high=req_float(data, "speedup_high"),
            confidence=req_float(data, "confidence"),
        )


def _rates(values: list[Json]) -> tuple[float, ...]:
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise RecordError(f"rates must be numbers, got {values!r}")
    return tuple(float(v) for v in values)  # type: ignore[arg-type]  # checked above


def measure_side_by_side(
    dataset: object,
    original: LoaderConfig,
    advised: LoaderConfig,
    *,
    collate_fn: Callable[..., object] | None = None,
    train_step: Callable[[object], object] | None = None,
    rounds: int = DEFAULT_ROUNDS,
    batches: int = DEFAULT_BATCHES,
    clock: Callable[[], float] = time.perf_counter,
) -> SideBySide:
    """Time ``original`` and ``advised`` in alternating turns (see the module).

    ``rounds``: turns per side (>= 2; 5 or more for an interval worth quoting);
    ``batches``: batches timed per turn (>= 1; a side with workers times at least twice
    the batches they hold in flight, where the dataset has them: :func:`_timed`);
    ``clock``: seconds. The dataset needs ``(warmup_batches(config) + batches) *
    batch_size`` samples for either side.

    Raises ``UsageError`` for a bad argument or a clock that does not advance.
    Whatever the dataset, ``collate_fn`` or ``train_step`` raise propagates, after
    the workers are shut down.
    """
    _validate(dataset, original, advised, collate_fn, train_step, rounds, batches)
    sides = (original, advised)
    length = len(dataset)  # type: ignore[arg-type]  # map-style: checked by _validate
    counts = tuple(_timed(config, batches, length) for config in sides)
    rates: tuple[list[float], list[float]] = ([], [])
    for turn in range(rounds):
        for side in (0, 1) if turn % 2 == 0 else (1, 0):
            seconds = _turn(dataset, sides[side], collate_fn, counts[side], train_step, clock)
            rates[side].append(counts[side] * sides[side].batch_size / seconds)
    found = speedup_interval(rates[0], rates[1], paired=True)
    return SideBySide(
        original=original,
        advised=advised,
        original_samples_per_s=tuple(rates[0]),
        advised_samples_per_s=tuple(rates[1]),
        batches=batches,
        speedup=found.value,
        speedup_low=found.low,
        speedup_high=found.high,
        confidence=found.confidence,
    )


def _timed(config: LoaderConfig, batches: int, length: int) -> int:
    """Batches a turn of ``config`` times: ``batches``, or twice what its workers hold in
    flight (``num_workers`` x ``prefetch_factor``) when that is more, as far as the
    dataset's ``length`` samples reach. After the warm-up the workers' queues are
    full again: a turn shorter than that times their burst, not what they sustain."""
    in_flight = config.num_workers * (config.prefetch_factor or 2)
    room = length // config.batch_size - warmup_batches(config)
    return max(batches, min(2 * in_flight, room))


def _turn(
    dataset: object,
    config: LoaderConfig,
    collate_fn: Callable[..., object] | None,
    batches: int,
    step: Callable[[object], object] | None,
    clock: Callable[[], float],
) -> float:
    """Seconds for ``batches`` batches (and steps) after the warm-up."""
    from torch.utils.data import DataLoader

    loader: DataLoader[object] | None = None
    iterator: Iterator[object] | None = None
    with config.threads(), warnings.catch_warnings():
        # More workers than CPUs may be the advice (a loader that waits on storage).
        warnings.filterwarnings("ignore", message=_TOO_MANY)
        try:
            loader = DataLoader(dataset, collate_fn=collate_fn, **config.loader_kwargs())  # type: ignore[arg-type]  # kwargs of DataLoader
            iterator = iter(loader)
            for _ in range(warmup_batches(config)):
                batch = next(iterator)
                if step is not None:
                    step(batch)
            started = clock()
            for _ in range(batches):
                batch = next(iterator)
                if step is not None:
                    step(batch)
            seconds = clock() - started
        finally:
            shut_down(iterator)  # the workers stop here, persistent ones too, untimed
            del iterator, loader
    if not seconds > 0:
        raise UsageError(
            f"the clock did not advance over {batches} batches ({seconds!r} s); pass a "
            f"clock that counts seconds, such as time.perf_counter"
        )
    return seconds


def _validate(
    dataset: object,
    original: LoaderConfig,
    advised: LoaderConfig,
    collate_fn: object,
    train_step: object,
    rounds: int,
    batches: int,
) -> None:
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 2:
        raise UsageError(
            f"rounds must be an integer >= 2 (an interval needs repeated turns), got "
            f"{rounds!r}; 5 or more gives an interval worth quoting"
        )
    if not isinstance(batches, int) or isinstance(batches, bool) or batches < 1:
        raise UsageError(f"batches (timed per turn) must be an integer >= 1, got {batches!r}")
    for name, config in (("original", original), ("advised", advised)):
        if not isinstance(config, LoaderConfig):
            raise UsageError(
                f"{name} must be a LoaderConfig, got {type(config).__name__}; build one "
                f"with LoaderConfig(batch_size=..., num_workers=...)"
            )
    for name, function in (("collate_fn", collate_fn), ("train_step", train_step)):
        if function is not None and not callable(function):
            raise UsageError(f"{name} must be callable or None, got {type(function).__name__}")
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise UsageError(
            f"measure_side_by_side needs a map-style dataset (with __len__ and "
            f"__getitem__), got {type(dataset).__name__}"
        )
    length = len(dataset)
    for name, config in (("original", original), ("advised", advised)):
        need = (warmup_batches(config) + batches) * config.batch_size
        if length < need:
            raise UsageError(
                f"the dataset has {length} samples; a turn of the {name} settings reads "
                f"{need} ((warm-up {warmup_batches(config)} + batches {batches}) x "
                f"batch_size {config.batch_size}); lower batches"
            )
