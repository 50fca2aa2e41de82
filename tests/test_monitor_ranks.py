"""Each rank's arrival at backward, and the straggler it names, on recorded periods.

The periods are written as a rank's records would hold them; the real torchrun runs
are in test_doctor_ranks.py and test_monitor_ddp.py.
"""

from __future__ import annotations

import pytest

from trainperf.doctor.child import prover
from trainperf.monitoring.agreement import AGREE_EVERY, due
from trainperf.monitoring.ranks import rank_breakdown, straggler_finding
from trainperf.monitoring.records import Period


def _rank(waits: list[float], forward: float = 0.004, step: float = 0.1) -> list[Period]:
    """A rank's steps: the data wait of each, the same forward pass, steps of ``step``."""
    return [
        Period(
            kind="train",
            index=i,
            epoch=0,
            start_s=i * step,
            wall_s=step,
            data_wait_s=wait,
            samples=16,
            first_of_epoch=i == 0,
            before_backward_s=wait + forward,
        )
        for i, wait in enumerate(waits)
    ]


def test_a_rank_slow_every_step_is_a_fixed_data_straggler() -> None:
    fast, slow = _rank([0.001] * 40), _rank([0.051] * 40)
    view = rank_breakdown([fast, slow])
    assert view.pattern == "fixed"
    assert view.slowest == 1
    assert view.cause == "data"
    assert view.rows[1].slowest_share == 1.0
    assert view.wait_s == pytest.approx(0.05)
    assert view.aligned_steps == 39  # each epoch's first step left out
    finding = straggler_finding(view, step_s=0.1)
    assert finding is not None
    assert finding.evidence["rank"] == 1
    assert "rank 1 waits longer for its batches" in finding.fix


def test_a_slow_forward_on_one_rank_is_a_compute_straggler() -> None:
    view = rank_breakdown([_rank([0.001] * 40), _rank([0.001] * 40, forward=0.05)])
    assert view.cause == "compute"
    finding = straggler_finding(view, step_s=0.1)
    assert finding is not None
    assert "forward pass" in finding.fix


def test_slow_batches_taking_turns_are_a_rotating_data_straggler() -> None:
    a = [0.051 if i % 2 else 0.001 for i in range(40)]
    b = [0.001 if i % 2 else 0.051 for i in range(40)]
    view = rank_breakdown([_rank(a), _rank(b)])
    assert view.pattern == "rotating"
    assert view.cause == "data"
    assert view.rows[0].slowest_share == pytest.approx(0.5, abs=0.05)
    # Each rank's median arrival is the same: only the per-step view sees the wait.
    assert view.wait_s == pytest.approx(0.05)
    finding = straggler_finding(view, step_s=0.1)
    assert finding is not None
    assert finding.evidence["rotating"] == 1.0
    assert "different rank" in finding.fix


def test_compute_jitter_taking_turns_is_no_finding() -> None:
    a = _rank([0.001] * 40, forward=0.004)
    b = _rank([0.001] * 40, forward=0.004)
    # Each step one rank's forward pass is 30 ms longer, in turn: jitter, not data.
    for i in range(40):
        slow = a if i % 2 else b
        slow[i] = Period(**{**vars(slow[i]), "before_backward_s": 0.035})
    view = rank_breakdown([a, b])
    assert view.pattern == "rotating"
    assert view.cause == "compute"
    assert straggler_finding(view, step_s=0.1) is None


def test_ranks_in_step_get_no_finding_and_one_rank_no_breakdown() -> None:
    same = _rank([0.001] * 40)
    assert straggler_finding(rank_breakdown([same, same]), step_s=0.1) is None
    single = rank_breakdown([same])
    assert single.pattern is None
    assert straggler_finding(single, step_s=0.1) is None


def test_the_ranks_agree_at_the_same_steps_whatever_their_clocks() -> None:
    assert [s for s in range(1, 31) if due(s, None)] == [AGREE_EVERY, 2 * AGREE_EVERY, 30]
    assert due(7, 7)
    assert not due(8, 7)


def test_the_rank_the_others_wait_for_on_data_proves_else_rank_zero() -> None:
    # (median data wait, median step) per rank, as gathered at the agreed stop.
    assert prover([(0.001, 0.1), (0.051, 0.1)]) == 1
    assert prover([(0.011, 0.1), (0.010, 0.1)]) == 0  # noise: no straggler
    assert prover([(0.030, 0.1), (0.001, 0.1), (0.001, 0.1)]) == 0
    assert prover([(0.001, 0.1)]) == 0
