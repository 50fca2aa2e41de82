"""The rule registry, and the step-time rules run one at a time on planted periods."""

from __future__ import annotations

import random

import pytest

from trainperf.monitoring.analyze import summarize
from trainperf.monitoring.records import Period
from trainperf.monitoring.rules import apply_rules, registered, rule
from trainperf.monitoring.rules_steps import (
    DRIFT_RATIO,
    MIN_BLOCK_S,
    MIN_DRIFT_BLOCKS,
    MIN_RISE_S,
    trend,
)


def run_of(walls: list[float], *, wait: float = 0.0) -> list[Period]:
    periods, start = [], 0.0
    for i, wall in enumerate(walls):
        periods.append(Period("train", i, 0, start, wall, wait, 8, first_of_epoch=(i == 0)))
        start += wall
    return periods


def flushing(steps: int, *, growth: float) -> list[float]:
    """Every fifth step rewrites a file that grows with the run (case 05's logger)."""
    return [0.01 + (growth * i / steps if i % 5 == 4 else 0.0) for i in range(steps)]


def test_every_rule_is_registered_once_with_what_it_reads() -> None:
    rules = registered()
    names = [r.name for r in rules]
    assert len(names) == len(set(names))
    assert {"slow-steps", "step-drift", "memory-creep", "cpu-throttled"} <= set(names)
    assert all(r.reads for r in rules)
    assert dict(next(r for r in rules if r.name == "step-drift").thresholds)["ratio"] == DRIFT_RATIO


def test_a_second_rule_of_the_same_name_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @rule("step-drift", reads=("steps",))
        def impostor(records):  # pragma: no cover - never called
            return []


def test_one_rule_runs_alone_and_an_unknown_one_is_named() -> None:
    summary = summarize(run_of(flushing(200, growth=0.2)))
    assert "step-drift" in [f.kind for f in summary.findings]
    with pytest.raises(ValueError, match="unknown rule 'no-such-rule'"):
        apply_rules(_records(run_of(flushing(200, growth=0.2))), names=("no-such-rule",))
    only = apply_rules(_records(run_of(flushing(200, growth=0.2))), names=("step-drift",))
    assert [f.kind for f in only] == ["step-drift"]


def _records(periods: list[Period]):
    from trainperf.monitoring.analyze import Verdict
    from trainperf.monitoring.rules import RunRecords

    steady = [p for p in periods if not p.first_of_epoch]
    verdict = Verdict("compute-bound", "high")
    return RunRecords(
        periods=periods,
        train=periods,
        steady=steady,
        decided=steady,
        host=(),
        cpus=2.0,
        train_s=sum(p.wall_s for p in periods),
        step=verdict,
        run=verdict,
    )


def test_a_cost_that_grows_with_the_run_is_step_drift() -> None:
    (drift,) = [
        f for f in summarize(run_of(flushing(300, growth=0.3))).findings if f.kind == "step-drift"
    ]
    assert drift.evidence["growth"] >= DRIFT_RATIO
    assert drift.evidence["last_step_s"] > drift.evidence["first_step_s"]
    # The pace the gain is reckoned from is one the run measured: no step ran under 10 ms.
    assert drift.evidence["first_step_s"] >= 0.01
    assert "append instead of rewriting" in drift.fix
    assert drift.gain.endswith("(estimated)")


def test_noise_and_a_one_off_slow_stretch_are_not_drift() -> None:
    rng = random.Random(7)
    noisy = [0.01 * rng.uniform(0.5, 2.0) for _ in range(300)]
    assert "step-drift" not in [f.kind for f in summarize(run_of(noisy)).findings]
    # A slow start that settles (warm-up, a busy moment) falls instead of rising.
    settling = [0.05 if i < 40 else 0.01 for i in range(300)]
    assert "step-drift" not in [f.kind for f in summarize(run_of(settling)).findings]
    # A short run has too few blocks to call a trend.
    assert trend(run_of(flushing(20, growth=0.3))) is None


def test_a_rise_within_a_run_too_short_for_the_machines_fluctuations_is_no_trend() -> None:
    # The same rising shape, at 10 ms steps and at 0.2 ms steps (the whole run shorter
    # than the blocks a trend needs): the first is drift, the second is not judged.
    walls = flushing(300, growth=0.3)
    assert trend(run_of(walls)) is not None
    short = [w / 50 for w in walls]
    assert sum(short) < MIN_DRIFT_BLOCKS * MIN_BLOCK_S
    assert trend(run_of(short)) is None
    assert "step-drift" not in [f.kind for f in summarize(run_of(short)).findings]


def test_a_level_that_shifts_under_a_millisecond_is_not_drift() -> None:
    # Steps of 0.5 ms that settle at 0.8 ms for the last third (the machine, not the
    # loop): a fitted rise past 1.3x, but a fraction of a millisecond.
    walls = [0.0005 if i < 2000 else 0.0008 for i in range(3000)]
    found = trend(run_of(walls))
    assert found is not None
    assert found.ratio >= DRIFT_RATIO
    assert found.last_s - found.first_s < MIN_RISE_S
    assert not found.growing
    # The same shift at 10 ms steps is a rise of 6 ms: drift.
    assert trend(run_of([w * 20 for w in walls])).growing
