"""Speed-ups with bootstrap intervals, and the chunk rates a trial keeps for them."""

from __future__ import annotations

import json

import pytest

from trainperf.calibration.speedup import Speedup, speedup_interval
from trainperf.errors import UsageError


def test_the_estimate_is_the_ratio_of_medians_and_the_interval_is_seeded() -> None:
    before = [10.0, 11.0, 9.0, 10.5, 9.5]
    after = [20.0, 23.0, 19.0, 21.0, 18.0]
    found = speedup_interval(before, after, paired=True)
    assert found.value == 20.0 / 10.0
    assert found.low < 2.0 < found.high
    assert speedup_interval(before, after, paired=True) == found  # same data, same answer
    assert found.describe().startswith("2.00x (95% interval ")


def test_pairing_cancels_a_slow_spell_that_hits_both_sides() -> None:
    # Every round twice as fast as the original, in rounds of very different speeds.
    before = [10.0, 40.0, 20.0, 80.0, 15.0, 60.0]
    after = [2 * v for v in before]
    paired = speedup_interval(before, after, paired=True)
    separate = speedup_interval(before, after, paired=False)
    assert (paired.value, paired.low, paired.high) == (2.0, 2.0, 2.0)
    assert separate.low < 1.0 < 4.0 < separate.high


def test_identical_sides_give_exactly_one() -> None:
    found = speedup_interval([5.0, 5.0, 5.0], [5.0, 5.0, 5.0], paired=False)
    assert found == Speedup(1.0, 1.0, 1.0)


@pytest.mark.parametrize(
    ("before", "after", "paired", "fragment"),
    [
        ([1.0], [1.0, 2.0], False, "before needs at least 2 measurements for an interval, got 1"),
        ([1.0, 2.0], [1.0, 0.0], False, "after rates must be finite and > 0, got 0.0"),
        ([1.0, 2.0], [1.0, float("inf")], False, "after rates must be finite and > 0, got inf"),
        ([1.0, 2.0], [1.0, 2.0, 3.0], True, "pass paired=False for separate runs"),
    ],
)
def test_bad_measurements_are_refused(before, after, paired, fragment) -> None:
    with pytest.raises(UsageError) as caught:
        speedup_interval(before, after, paired=paired)
    assert fragment in str(caught.value)
    with pytest.raises(UsageError, match=r"confidence must be between 0 and 1, got 1\.5"):
        speedup_interval([1.0, 2.0], [1.0, 2.0], paired=True, confidence=1.5)


def test_a_trial_keeps_the_rate_of_each_chunk() -> None:
    torch = pytest.importorskip("torch")
    from trainperf.calibration.config import LoaderConfig
    from trainperf.calibration.trials import Trial, TrialPlan, run_trial

    now = [0.0]
    costs = iter([0.0, 0.5, 0.5, 1.0, 1.0, 0.25, 0.25])  # a warm-up, then three chunks

    def step(batch: object) -> None:
        now[0] += next(costs)

    trial = run_trial(
        torch.utils.data.TensorDataset(torch.ones(64, 2)),
        LoaderConfig(batch_size=4),
        TrialPlan(batches=6, chunk=2, timeout_s=10, min_time_s=0.0),
        start=0,
        collate_fn=None,
        step=step,
        judge=lambda rate, batches: None,
        clock=lambda: now[0],
    )
    assert trial.chunk_rates == (8.0, 4.0, 16.0)  # 8 samples a chunk over 1, 2, 0.5 s
    data = json.loads(json.dumps(trial.to_json()))
    assert data["chunk_samples_per_s"] == [8.0, 4.0, 16.0]
    assert Trial.from_json(data).chunk_rates == trial.chunk_rates
    del data["chunk_samples_per_s"]  # a record from before chunks were kept
    assert Trial.from_json(data).chunk_rates == ()


def test_a_calibration_carries_its_speedup_through_json() -> None:
    pytest.importorskip("torch")
    from trainperf.calibration.api import Calibration
    from trainperf.calibration.config import LoaderConfig

    result = Calibration(
        LoaderConfig(batch_size=4, num_workers=1, worker_threads=1),
        100.0,
        1.0,
        (),
        "measured",
        "fastest measured",
        speedup=Speedup(3.0, 2.5, 3.5),
    )
    data = json.loads(json.dumps(result.to_json()))
    assert (data["speedup"], data["speedup_low"], data["speedup_high"]) == (3.0, 2.5, 3.5)
    assert Calibration.from_json(data) == result
    for key in ("speedup", "speedup_low", "speedup_high"):
        del data[key]  # a record from before intervals were kept
    assert Calibration.from_json(data).speedup is None


def test_a_throughput_ratio_is_not_inflated_by_bursts_of_prefetched_batches() -> None:
    # Equal chunks of work: the workers' prefetched batches arrive in bursts (fast
    # chunks) between chunks that wait on the workers (slow ones).
    before = [100.0] * 8
    after = [10_000.0, 10_000.0, 10_000.0, 10_000.0, 10_000.0, 500.0, 500.0, 500.0]
    by_median = speedup_interval(before, after, paired=False)
    by_throughput = speedup_interval(before, after, paired=False, throughput=True)
    assert by_median.value == pytest.approx(100.0)  # what the bursts make it look like
    # Total work over total time: 8 chunks in 5/10000 + 3/500 of the time one took.
    assert by_throughput.value == pytest.approx(8 / (5 / 10_000 + 3 / 500) / 100.0)
    assert by_throughput.value < 13
    assert by_throughput.low <= by_throughput.value <= by_throughput.high


def test_an_interval_reaching_past_100x_is_written_as_such() -> None:
    from trainperf._stats import format_speedup

    assert format_speedup(93.0, 43.6, 217.2) == "93x (44x to > 100x)"
    assert format_speedup(3.1, 2.7, 3.6) == "3.1x (2.7x-3.6x)"
