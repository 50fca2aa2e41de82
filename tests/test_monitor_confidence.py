"""Verdicts that say how sure they are: intervals, short runs, slow phases, busy
machines, the tail the median hides, and a CPU quota that runs out."""

from __future__ import annotations

import pytest

from trainperf.monitoring.analyze import CONFIDENT_STEPS, summarize
from trainperf.monitoring.records import Period
from trainperf.monitoring.sampler import Sample

pytestmark = pytest.mark.verdict


def loop(walls_waits: list[tuple[float, float]], *, start: float = 0.0) -> list[Period]:
    out, t = [], start
    for i, (wall, wait) in enumerate(walls_waits):
        out.append(Period("train", i, 0, t, wall, wait, 8, first_of_epoch=(i == 0)))
        t += wall
    return out


def quiet(t: float) -> Sample:
    return Sample(t, 2**28, 0, 100.0, 0.0, 0, other_cpu=0.05, idle_cpu=0.9, load=1.0)


def busy(t: float) -> Sample:
    return Sample(t, 2**28, 0, 100.0, 0.0, 0, other_cpu=1.9, idle_cpu=0.0, load=4.0)


def test_a_clear_input_bound_step_is_high_confidence_with_its_interval() -> None:
    summary = summarize(loop([(0.1, 0.06)] * 40), cpus=2.0)
    assert summary.step.kind == "input-bound"
    assert summary.step.confidence == "high"
    assert summary.step.share_low == pytest.approx(0.6)
    assert summary.step.share_high == pytest.approx(0.6)
    data = summary.to_json()["verdict"]
    assert data["step"]["kind"] == "input-bound"
    assert data["confidence"] == "high"


def test_an_interval_across_the_threshold_lowers_confidence() -> None:
    # Half the steps wait 20%, half 40%: the median sits on the 30% line.
    summary = summarize(loop([(0.1, 0.02), (0.1, 0.04)] * 20), cpus=2.0)
    assert summary.step.confidence == "low"
    assert any("straddles the 30% threshold" in r for r in summary.step.reasons)
    assert summary.step.share_low < 0.3 <= summary.step.share_high


def test_few_steps_are_low_confidence() -> None:
    summary = summarize(loop([(0.1, 0.06)] * 8), cpus=2.0)
    assert summary.step.kind == "input-bound"
    assert summary.step.confidence == "low"
    assert any(f"at least {CONFIDENT_STEPS} wanted" in r for r in summary.step.reasons)


def test_a_short_run_reports_the_step_apart_from_its_start_up() -> None:
    # 40 steps of 0.1 s, each waiting 60% for data, after 10 s of start-up.
    summary = summarize(loop([(0.1, 0.06)] * 40, start=10.0), startup_s=10.0, cpus=2.0)
    assert summary.run.kind == "startup-bound"
    assert summary.step.kind == "input-bound"
    assert summary.primary == "startup-bound"
    kinds = [f.kind for f in summary.findings]
    assert "startup-bound" in kinds
    assert "input-bound" in kinds  # the step's own cause is not hidden by start-up
    stopped = summarize(
        loop([(0.1, 0.06)] * 40, start=10.0), startup_s=10.0, cpus=2.0, stopped_early=True
    )
    assert stopped.run.confidence == "low"
    assert any("short run" in r for r in stopped.run.reasons)


def test_a_slow_phase_is_named_and_lowers_confidence() -> None:
    summary = summarize(loop([(4.0, 0.1)] * 10 + [(0.4, 0.01)] * 30), cpus=2.0)
    assert summary.step.confidence == "low"
    (phase,) = [r for r in summary.step.reasons if "much slower" in r]
    assert phase.startswith("steps 1-9 took 4.0 s each, steps 10-39 400 ms")


def test_a_contended_run_says_so_and_is_not_confident() -> None:
    periods = loop([(0.1, 0.06)] * 40)
    host = [busy(t + 0.5) for t in range(5)]
    summary = summarize(periods, host=host, cpus=2.0)
    assert summary.conditions is not None
    assert summary.conditions.contended
    assert summary.conditions.other_cpu == pytest.approx(1.9)
    assert summary.step.confidence == "low"
    assert any("the machine was busy" in r for r in summary.step.reasons)
    data = summary.to_json()["conditions"]
    assert data["contended"] is True
    assert data["other_cpu"] == pytest.approx(1.9)


def test_contended_and_doubtful_is_inconclusive() -> None:
    periods = loop([(0.1, 0.02), (0.1, 0.04)] * 20)
    summary = summarize(periods, host=[busy(t + 0.5) for t in range(5)], cpus=2.0)
    assert summary.step.confidence == "inconclusive"


def test_when_contention_comes_and_goes_the_quiet_steps_decide() -> None:
    # Busy for the first 4 s (slow steps, waiting little), quiet afterwards.
    periods = loop([(0.4, 0.04)] * 10 + [(0.1, 0.06)] * 30)
    host = [busy(t) for t in (1.0, 2.0, 3.0, 4.0)] + [quiet(t) for t in (5.0, 6.0, 7.0)]
    summary = summarize(periods, host=host, cpus=2.0)
    assert summary.conditions is not None
    assert summary.conditions.came_and_went
    assert summary.step.kind == "input-bound"
    assert summary.step.steps < 39
    assert any("while the machine was quiet" in r for r in summary.step.reasons)


def test_the_tail_the_median_hides_is_a_finding() -> None:
    # Every 10th step writes something slow: the median step looks fine.
    walls = [(1.0 if i % 10 == 9 else 0.05, 0.0) for i in range(60)]
    summary = summarize(loop(walls), cpus=2.0)
    assert summary.step.kind == "compute-bound"
    assert summary.tail is not None
    assert summary.tail.every == 10
    assert summary.tail.mean_s > 2 * summary.tail.median_s
    (finding,) = [f for f in summary.findings if f.kind == "slow-steps"]
    assert "every 10 steps" in finding.fix
    assert "not waiting for data" in finding.fix
    assert finding.evidence["slow_steps"] == 6  # steps 9, 19, ..., 59
    assert summary.to_json()["verdict"]["tail"]["every"] == 10


def test_a_warm_up_is_not_a_slow_steps_finding_but_a_slow_stretch_is() -> None:
    # The first 12 of 60 steps take four times the rest: lazy initialisation, caches
    # filling. A stopped or short run over-weighs them; a longer one amortises them.
    warm = [(0.2 if i < 12 else 0.05, 0.0) for i in range(60)]
    summary = summarize(loop(warm), cpus=2.0)
    assert summary.tail is not None
    assert summary.tail.slow_share > 0.3  # the tail is there...
    assert all(f.kind != "slow-steps" for f in summary.findings)  # ...and is no finding
    # The same 12 slow steps in the middle of the run: a slow stretch, named, and not
    # as a period of one step.
    middle = [(0.2 if 30 <= i < 42 else 0.05, 0.0) for i in range(60)]
    summary = summarize(loop(middle), cpus=2.0)
    assert summary.tail is not None
    assert summary.tail.every is None
    (finding,) = [f for f in summary.findings if f.kind == "slow-steps"]
    assert "at irregular steps" in finding.fix
    assert "every 1 steps" not in finding.fix


def test_an_even_run_has_no_slow_steps_finding() -> None:
    summary = summarize(loop([(0.05, 0.0)] * 60), cpus=2.0)
    assert all(f.kind != "slow-steps" for f in summary.findings)


def test_a_cpu_quota_that_runs_out_is_a_finding() -> None:
    host = [
        Sample(t + 0.5, 2**28, 0, 190.0, 0.0, 2, throttled=0.6, throttled_s=0.3) for t in range(4)
    ]
    summary = summarize(loop([(0.1, 0.0)] * 40), host=host, cpus=1.5, threads=4)
    (finding,) = [f for f in summary.findings if f.kind == "cpu-throttled"]
    assert finding.evidence["throttled_share"] == pytest.approx(0.6)
    assert finding.evidence["throttled_s"] == pytest.approx(1.2)
    assert finding.evidence["intra_op_threads"] == 4
    assert "torch.set_num_threads(1)" in finding.fix
    assert "1.5 CPUs" in finding.fix


def test_no_throttling_no_finding() -> None:
    host = [
        Sample(t + 0.5, 2**28, 0, 90.0, 0.0, 0, throttled=0.0, throttled_s=0.0) for t in range(4)
    ]
    summary = summarize(loop([(0.1, 0.0)] * 40), host=host, cpus=2.0)
    assert all(f.kind != "cpu-throttled" for f in summary.findings)


def test_a_busy_run_says_so_first_in_text_and_on_its_page() -> None:
    from trainperf.monitoring.html import render_run_html
    from trainperf.monitoring.render import render_summary

    periods = loop([(0.1, 0.06)] * 40)
    host = [busy(t + 0.5) for t in range(5)]
    summary = summarize(periods, host=host, cpus=2.0)
    text = render_summary(summary, title="run").splitlines()
    assert text[1].startswith("the machine was busy while this run was measured")
    assert "low-confidence" in text[1]
    assert any(line.startswith("verdict: step input-bound (low confidence") for line in text)
    page = render_run_html("run", summary, periods, host)
    assert "The machine was busy while this run was measured" in page
    calm = summarize(periods, host=[quiet(t + 0.5) for t in range(5)], cpus=2.0)
    assert "busy" not in render_summary(calm, title="run")


def test_a_replay_no_faster_than_the_step_is_no_finding_but_a_reason() -> None:
    from trainperf.doctor.findings import compose
    from trainperf.monitoring.probe import Replay

    periods = loop([(0.1, 0.06)] * 40)
    summary = summarize(periods, cpus=2.0, replayed=Replay(steps=16, step_s=0.098))
    assert summary.step.kind == "input-bound"
    assert summary.step.confidence == "low"
    assert any("already in memory" in r for r in summary.step.reasons)
    assert all(f.kind != "input-bound" for f in summary.findings)
    findings, aside = compose(
        startup={},
        periods=periods,
        summary=summary,
        proofs=(),
        loaders=(),
        cpus=2.0,
        bundled=False,
    )
    assert all(f.kind != "input-bound" for f in findings)
    assert any(a.startswith("input: the step waits for data, but with its batches") for a in aside)
    confirmed = summarize(periods, cpus=2.0, replayed=Replay(steps=16, step_s=0.04))
    (finding,) = [f for f in confirmed.findings if f.kind == "input-bound"]
    assert finding.gain.startswith("measured by replaying 16 cached batches")


def test_a_replay_slower_than_the_step_it_would_free_keeps_the_estimate() -> None:
    from trainperf.doctor.findings import compose
    from trainperf.monitoring.probe import Replay

    # Steps of 100 ms waiting 60 ms for data, replayed at 232 ms a step: slower than the
    # step that waited, which in-memory batches cannot make (seen beside busy loops).
    periods = loop([(0.1, 0.06)] * 40)
    summary = summarize(periods, cpus=2.0, replayed=Replay(steps=16, step_s=0.232))
    assert summary.step.kind == "input-bound"
    assert summary.step.confidence == "low"
    (reason,) = [r for r in summary.step.reasons if "replay" in r]
    assert "232.0 ms a step, longer than the run's 100.0 ms steps" in reason
    assert "estimated" in reason
    (finding,) = [f for f in summary.findings if f.kind == "input-bound"]
    assert finding.gain.startswith("if input were free")  # the estimate, not a measure
    assert "replay_step_s" not in finding.evidence
    findings, aside = compose(
        startup={},
        periods=periods,
        summary=summary,
        proofs=(),
        loaders=(),
        cpus=2.0,
        bundled=False,
    )
    assert not [a for a in aside if a.startswith("input: ")]
    (doctor,) = [f for f in findings if f.kind == "input-bound"]
    assert doctor.gain_source == "estimated"
    # At the step's own time the replay neither confirms nor is disturbed: unconfirmed.
    same = summarize(periods, cpus=2.0, replayed=Replay(steps=16, step_s=0.105))
    assert all(f.kind != "input-bound" for f in same.findings)
