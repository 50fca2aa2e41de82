"""Verdicts from periods: each rule at its threshold, with evidence and gain."""

from __future__ import annotations

import pytest

from trainperf.monitoring.analyze import MIN_STEPS, summarize
from trainperf.monitoring.records import Period


def steps(n: int, wall: float, wait: float, *, samples: int = 8) -> list[Period]:
    return [
        Period("train", i, 0, i * wall, wall, wait, samples, first_of_epoch=(i == 0))
        for i in range(n)
    ]


def test_input_bound_with_its_gain() -> None:
    summary = summarize(steps(10, 1.0, 0.6))
    assert summary.primary == "input-bound"
    (finding,) = summary.findings
    assert finding.evidence == {"data_wait_share_of_step": 0.6}
    assert finding.gain == "if input were free: up to 2.5x samples/s"
    assert summary.samples_per_s == pytest.approx(8.0)


@pytest.mark.parametrize(("wait", "verdict"), [(0.05, "compute-bound"), (0.2, "balanced")])
def test_compute_bound_and_balanced(wait, verdict) -> None:
    assert summarize(steps(10, 1.0, wait)).primary == verdict


def test_validation_bound() -> None:
    periods = [*steps(10, 1.0, 0.0), Period("val", 0, 0, 10.0, 12.0, 1.0, 64)]
    summary = summarize(periods)
    assert summary.primary == "validation-bound"
    assert summary.shares["validation"] == pytest.approx(12 / 22)


def test_startup_bound() -> None:
    assert summarize(steps(10, 1.0, 0.0), startup_s=20.0).primary == "startup-bound"


def test_too_few_steps() -> None:
    summary = summarize(steps(MIN_STEPS - 1, 1.0, 0.9))
    assert summary.primary == "insufficient-data"
    assert summary.findings == ()


def test_epoch_start_spikes() -> None:
    periods = steps(10, 1.0, 0.01)
    periods[5] = Period("train", 5, 1, 5.0, 1.0, 0.8, 8, first_of_epoch=True)
    kinds = [f.kind for f in summarize(periods).findings]
    assert "epoch-start-spike" in kinds


def test_shares_add_up() -> None:
    periods = [*steps(10, 1.0, 0.5), Period("val", 0, 0, 10.0, 5.0, 1.0, 64)]
    shares = summarize(periods, startup_s=5.0).shares
    assert sum(shares.values()) == pytest.approx(1.0)


def test_large_gains_read_as_factors() -> None:
    summary = summarize(steps(10, 1.0, 0.9))
    assert summary.findings[0].gain == "if input were free: up to 10.0x samples/s"
