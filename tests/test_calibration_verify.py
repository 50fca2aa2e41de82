"""measure_side_by_side: advice as written against the original, interleaved."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import IterableDataset, TensorDataset  # noqa: E402

from _datasets import Waits  # noqa: E402
from trainperf.calibration.config import LoaderConfig  # noqa: E402
from trainperf.calibration.verify import SideBySide, measure_side_by_side  # noqa: E402
from trainperf.errors import RecordError, UsageError  # noqa: E402

KEYS = {
    "speedup",
    "speedup_low",
    "speedup_high",
    "confidence",
    "rounds",
    "batches",
    "original",
    "advised",
    "original_samples_per_s",
    "advised_samples_per_s",
}


class FakeClock:
    """Seconds that pass only when a step says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def in_memory(n: int = 64) -> TensorDataset:
    return TensorDataset(torch.ones(n, 2))


def test_turns_alternate_and_rates_are_exact_under_a_fake_clock() -> None:
    clock = FakeClock()
    sizes: list[int] = []

    def step(batch: object) -> None:
        (x,) = batch  # type: ignore[misc]
        sizes.append(len(x))
        clock.now += 1.0  # one second per batch, whatever its size

    result = measure_side_by_side(
        in_memory(),
        LoaderConfig(batch_size=4),
        LoaderConfig(batch_size=8),
        train_step=step,
        rounds=3,
        batches=2,
        clock=clock,
    )
    # A turn: one warm-up batch, then 2 timed; the order alternates A B, B A, A B.
    assert sizes == [4] * 3 + [8] * 3 + [8] * 3 + [4] * 3 + [4] * 3 + [8] * 3
    assert result.original_samples_per_s == (4.0, 4.0, 4.0)
    assert result.advised_samples_per_s == (8.0, 8.0, 8.0)
    assert (result.speedup, result.speedup_low, result.speedup_high) == (2.0, 2.0, 2.0)
    assert result.rounds == 3
    assert result.describe() == (
        "2.00x the original (95% interval 2.00x-2.00x; 3 rounds of 2 batches, interleaved)"
    )


def test_an_a_a_pair_under_a_fake_clock_contains_one() -> None:
    clock = FakeClock()
    costs = iter([1.0, 1.5, 0.8, 1.2, 1.1, 0.9, 1.3, 0.7, 1.0, 1.4, 1.2, 0.6] * 2)

    def step(batch: object) -> None:
        clock.now += next(costs)

    config = LoaderConfig(batch_size=4)
    result = measure_side_by_side(
        in_memory(), config, config, train_step=step, rounds=6, batches=1, clock=clock
    )
    # A turn times its second step; turns 0, 3, 4, 7, 8, 11 are the original's (A B,
    # B A, ...): both sides get the same costs, in another order, paired differently.
    assert result.original_samples_per_s == pytest.approx(
        (4 / 1.5, 4 / 0.7, 4 / 1.4, 4 / 1.2, 4 / 0.9, 4 / 0.6)
    )
    assert result.advised_samples_per_s == pytest.approx(
        (4 / 1.2, 4 / 0.9, 4 / 0.6, 4 / 1.5, 4 / 0.7, 4 / 1.4)
    )
    assert result.speedup == pytest.approx(1.0)
    assert result.speedup_low < 1.0 < result.speedup_high


def test_the_record_round_trips_and_names_its_keys() -> None:
    clock = FakeClock()

    def step(batch: object) -> None:
        clock.now += 0.5

    result = measure_side_by_side(
        in_memory(),
        LoaderConfig(batch_size=4),
        LoaderConfig(batch_size=4, main_threads=1),
        train_step=step,
        rounds=2,
        batches=3,
        clock=clock,
    )
    data = result.to_json()
    assert set(data) == KEYS
    assert data["advised"] == LoaderConfig(batch_size=4, main_threads=1).to_json()
    assert data["original_samples_per_s"] == [8.0, 8.0]
    again = SideBySide.from_json(json.loads(json.dumps(data)))
    assert again == result
    with pytest.raises(RecordError, match="one rate per round"):
        SideBySide.from_json({**data, "rounds": 3})


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"rounds": 1}, "rounds must be an integer >= 2 (an interval needs repeated turns), got 1"),
        ({"rounds": True}, "rounds must be an integer >= 2"),
        ({"batches": 0}, "batches (timed per turn) must be an integer >= 1, got 0"),
        ({"batches": 40}, "the dataset has 64 samples; a turn of the original settings reads 164"),
        ({"train_step": "step"}, "train_step must be callable or None, got str"),
        ({"original": {"batch_size": 4}}, "original must be a LoaderConfig, got dict"),
    ],
)
def test_bad_arguments_name_the_value_and_the_fix(kwargs, fragment) -> None:
    arguments = {
        "original": LoaderConfig(batch_size=4),
        "advised": LoaderConfig(batch_size=4, num_workers=1),
        **kwargs,
    }
    with pytest.raises(UsageError) as caught:
        measure_side_by_side(in_memory(), **arguments)
    assert fragment in str(caught.value)


def test_a_stream_and_a_stopped_clock_are_refused() -> None:
    class Stream(IterableDataset):
        def __iter__(self):
            yield torch.ones(1)

    config = LoaderConfig(batch_size=2)
    with pytest.raises(UsageError, match="needs a map-style dataset"):
        measure_side_by_side(Stream(), config, config)
    with pytest.raises(UsageError, match="the clock did not advance over 2 batches"):
        measure_side_by_side(in_memory(), config, config, batches=2, clock=lambda: 0.0)


def _children() -> set[int]:
    import psutil

    return {child.pid for child in psutil.Process().children(recursive=True)}


@pytest.mark.slow
def test_a_planted_gain_is_measured_with_an_interval_above_one() -> None:
    # 10 ms of waiting per sample: two workers overlap the waits, on any CPU load.
    before = _children()
    result = measure_side_by_side(
        Waits(64, 0.01, width=8),
        LoaderConfig(batch_size=4),
        LoaderConfig(batch_size=4, num_workers=2, persistent_workers=True),
        rounds=5,
        batches=6,
    )
    assert result.speedup_low > 1.3
    assert result.speedup_low <= result.speedup <= result.speedup_high
    assert len(result.original_samples_per_s) == len(result.advised_samples_per_s) == 5
    assert _children() <= before  # persistent workers do not outlive their turn


@pytest.mark.slow
def test_an_a_a_pair_claims_no_gain() -> None:
    config = LoaderConfig(batch_size=4, num_workers=1)
    result = measure_side_by_side(Waits(64, 0.005, width=8), config, config, rounds=6, batches=6)
    # A 95% interval misses the truth 1 time in 20 by construction, so real timings
    # are held to what matters: no gain (or loss) worth a claim. The fake-clock test
    # above checks that the interval contains 1.
    assert result.speedup_low < 1.1
    assert result.speedup_high > 1 / 1.1
    assert 0.9 < result.speedup < 1.1


def test_a_turn_times_at_least_twice_what_the_workers_hold_in_flight() -> None:
    from trainperf.calibration.verify import _timed

    few = LoaderConfig(batch_size=4, num_workers=2, prefetch_factor=2)
    many = LoaderConfig(batch_size=4, num_workers=16, prefetch_factor=2)
    assert _timed(few, 16, 10_000) == 16  # 4 in flight: the asked 16 time past them
    assert _timed(many, 16, 10_000) == 64  # 32 in flight: twice that
    assert _timed(many, 16, 4 * (33 + 40)) == 40  # as far as the dataset reaches
    assert _timed(LoaderConfig(batch_size=4), 16, 10_000) == 16  # no workers, no burst
