"""Which statements --verify re-times: the largest predicted savings, never a free one."""

from __future__ import annotations

from trainperf.startup.report import LineCost
from trainperf.startup.verify import MIN_PREDICTED_S, worth_verifying


def line(number: int, exclusive_s: float) -> LineCost:
    return LineCost("train.py", number, f"import m{number}", exclusive_s, exclusive_s + 1.0)


def test_the_largest_predicted_savings_come_first_and_free_lines_never() -> None:
    lines = [line(1, 0.0), line(2, 0.2), line(3, MIN_PREDICTED_S / 2), line(4, 1.5), line(5, 0.2)]
    assert [c.line for c in worth_verifying(lines)] == [4, 2, 5]
    assert [c.line for c in worth_verifying(lines, 2)] == [4, 2]
    assert worth_verifying([line(1, 0.0), line(2, 0.001)], 3) == []
