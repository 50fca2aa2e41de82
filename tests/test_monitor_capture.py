"""The step recorder on a fake clock: exact periods for known event sequences."""

from __future__ import annotations

import pytest

from trainperf.monitoring.capture import StepRecorder
from trainperf.monitoring.records import Period


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rec():
    clock = Clock()
    periods: list[Period] = []
    recorder = StepRecorder(clock=clock, emit=periods.append)
    return recorder, clock, periods


def fetch(recorder, clock, *, loader=1, iterator=10, wait=0.0, samples=8, then=0.0):
    start = clock.now
    clock.now += wait
    recorder.fetched(loader, iterator, start, clock.now, samples)
    clock.now += then


def step(recorder, clock, *, compute=0.0):
    clock.now += compute
    recorder.optimizer_step()


def test_steps_split_into_data_wait_and_compute(rec) -> None:
    recorder, clock, periods = rec
    clock.now += 1.0  # setup before the first fetch is not part of a step
    fetch(recorder, clock, wait=0.25)
    step(recorder, clock, compute=0.5)
    fetch(recorder, clock, wait=0.125)
    step(recorder, clock, compute=0.5)
    recorder.close()
    assert [(p.start_s, p.wall_s, p.data_wait_s, p.samples) for p in periods] == [
        (1.0, 0.75, 0.25, 8),
        (1.75, 0.625, 0.125, 8),
    ]
    assert periods[0].first_of_epoch
    assert not periods[1].first_of_epoch


def test_validation_between_steps_is_its_own_period(rec) -> None:
    recorder, clock, periods = rec
    fetch(recorder, clock, wait=0.25)
    step(recorder, clock, compute=0.25)  # step 0: 0.5 s
    clock.now += 0.125  # end-of-epoch bookkeeping
    fetch(recorder, clock, loader=2, iterator=20, wait=0.5, samples=4, then=0.25)
    fetch(recorder, clock, loader=2, iterator=20, wait=0.5, samples=4, then=0.25)
    fetch(recorder, clock, iterator=11, wait=0.25)  # the next epoch's training
    step(recorder, clock, compute=0.25)
    recorder.close()
    kinds = [(p.kind, p.wall_s, p.data_wait_s, p.samples, p.epoch) for p in periods]
    assert kinds == [
        ("train", 0.5, 0.25, 8, 0),
        ("val", 1.5, 1.0, 8, 0),
        ("train", 0.5, 0.25, 8, 1),  # validation is not counted in the step
    ]
    assert periods[2].first_of_epoch


def test_a_loader_rebuilt_every_epoch_stays_training(rec) -> None:
    recorder, clock, periods = rec
    fetch(recorder, clock, loader=1, iterator=10, wait=0.25)
    step(recorder, clock, compute=0.25)
    fetch(recorder, clock, loader=3, iterator=30, wait=0.5)  # a new DataLoader and dataset
    step(recorder, clock, compute=0.25)
    fetch(recorder, clock, loader=3, iterator=30, wait=0.25)
    step(recorder, clock, compute=0.25)
    recorder.close()
    assert [(p.kind, p.wall_s, p.data_wait_s, p.epoch) for p in periods] == [
        ("train", 0.5, 0.25, 0),
        ("train", 0.75, 0.5, 1),
        ("train", 0.5, 0.25, 1),
    ]


def test_backward_ends_steps_when_there_is_no_optimizer(rec) -> None:
    recorder, clock, periods = rec
    clock.now += 2.0  # still importing: not part of the first step
    for _ in range(3):
        recorder.backward_started()
        clock.now += 0.25
        recorder.backward()
    recorder.close()
    assert [(p.index, p.start_s, p.wall_s) for p in periods] == [
        (0, 2.0, 0.25),
        (1, 2.25, 0.25),
        (2, 2.5, 0.25),
    ]


def test_gradient_accumulation_counts_optimizer_steps(rec) -> None:
    recorder, clock, periods = rec
    for _ in range(2):  # two optimizer steps of four micro-batches each
        for _ in range(4):
            fetch(recorder, clock, wait=0.125, samples=2)
            clock.now += 0.125
            recorder.backward()
        step(recorder, clock)
    recorder.close()
    assert [(p.wall_s, p.data_wait_s, p.samples) for p in periods] == [
        (1.0, 0.5, 8),
        (1.0, 0.5, 8),
    ]


def test_explicit_steps(rec) -> None:
    recorder, clock, periods = rec
    clock.now += 0.5
    recorder.explicit_step()
    clock.now += 0.25
    recorder.explicit_step()
    recorder.close()
    assert [p.wall_s for p in periods] == [0.5, 0.25]


def test_a_long_run_of_backward_calls_is_a_manual_loop_written_as_it_goes(rec) -> None:
    from trainperf.monitoring.capture import TENTATIVE_LIMIT

    recorder, clock, periods = rec
    for _ in range(TENTATIVE_LIMIT - 1):
        clock.now += 0.25
        recorder.backward()
    assert periods == []  # could still be gradient accumulation
    clock.now += 0.25
    recorder.backward()
    assert len(periods) == TENTATIVE_LIMIT
    for _ in range(2):
        clock.now += 0.25
        recorder.backward()
    # written as they come from now on (each one once the next has ended)
    assert len(periods) == TENTATIVE_LIMIT + 1


def test_fast_lines_are_the_same_json() -> None:
    import json

    for period in (
        Period("train", 3, 1, 0.1234567891, 2.5, 0.0, None, first_of_epoch=True),
        Period("val", 0, 0, 12.0, 0.25, 0.125, 64),
        Period("train", 4, 1, 1.0, 0.5, 0.125, 8, before_backward_s=0.25, device_s=0.375),
    ):
        back = Period.from_json(json.loads(period.to_line()))
        assert back.to_json() == period.to_json()


def test_two_optimizers_on_one_batch_are_one_step(rec) -> None:
    recorder, clock, periods = rec
    for _ in range(3):  # a GAN: discriminator and generator step on every batch
        fetch(recorder, clock, wait=0.25)
        step(recorder, clock, compute=0.25)
        step(recorder, clock, compute=0.25)
    recorder.close()
    assert [(p.wall_s, p.data_wait_s) for p in periods] == [(0.75, 0.25)] * 3


def test_sanity_check_validation_before_the_first_step(rec) -> None:
    recorder, clock, periods = rec
    fetch(recorder, clock, loader=2, iterator=20, wait=0.5, samples=4)  # Lightning's sanity check
    fetch(recorder, clock, loader=2, iterator=20, wait=0.5, samples=4)
    fetch(recorder, clock, loader=1, iterator=10, wait=0.25)
    step(recorder, clock, compute=0.25)
    recorder.close()
    assert [(p.kind, p.wall_s, p.data_wait_s, p.samples) for p in periods] == [
        ("val", 1.0, 1.0, 8),
        ("train", 0.5, 0.25, 8),
    ]


def test_explicit_validation_over_the_training_dataset(rec) -> None:
    recorder, clock, periods = rec
    for _ in range(2):
        fetch(recorder, clock, wait=0.25)
        step(recorder, clock, compute=0.25)
    recorder.begin_validation()  # the same loader, told apart only by the caller
    fetch(recorder, clock, iterator=11, wait=0.5, samples=4)
    clock.now += 0.5
    recorder.end_validation()
    clock.now += 1.0  # between validation and the next fetch: the next step's
    fetch(recorder, clock, wait=0.25)
    step(recorder, clock, compute=0.25)
    recorder.close()
    assert [(p.kind, p.wall_s, p.data_wait_s, p.samples) for p in periods] == [
        ("train", 0.5, 0.25, 8),
        ("train", 0.5, 0.25, 8),
        ("val", 1.0, 0.5, 4),
        ("train", 1.5, 0.25, 8),
    ]
    assert [p.epoch for p in periods if p.kind == "train"] == [0, 0, 0]


class Timeline:
    """A device that runs ``lag`` marks behind the host (a fake of CUDA events' timing)."""

    def __init__(self, clock, lag: int) -> None:
        self.clock = clock
        self.lag = lag
        self.marks: list[float] = []
        self.waits = 0

    def mark(self):
        self.marks.append(self.clock.now)
        return len(self.marks) - 1

    def elapsed(self, start, end):
        if end > len(self.marks) - 1 - self.lag:
            return None  # not reached yet: never waited for
        return self.marks[end] - self.marks[start]

    def wait(self, end) -> None:
        self.waits += 1
        self.lag = 0


def test_device_time_is_read_back_late_and_written_in_order(rec) -> None:
    from trainperf.monitoring.capture import DEVICE_LAG

    recorder, clock, periods = rec
    timeline = recorder.device = Timeline(clock, lag=6)
    for i in range(10):
        fetch(recorder, clock, wait=0.25)
        step(recorder, clock, compute=0.5)
        if i == 4:
            fetch(recorder, clock, loader=2, iterator=20, wait=0.125, samples=4)
    # The device is 6 marks (3 steps) behind: those steps wait in the queue.
    assert len(periods) == 8
    recorder.close()
    assert timeline.waits == 1  # once, at the end
    assert [p.kind for p in periods] == ["train"] * 5 + ["val"] + ["train"] * 5
    assert [p.device_s for p in periods if p.kind == "train"] == [0.5] * 10
    assert periods[5].device_s is None
    # A device that never catches up: steps are written without it, not waited for.
    clock = Clock()
    out: list[Period] = []
    recorder = StepRecorder(clock=clock, emit=out.append)
    recorder.device = Timeline(clock, lag=10**6)
    for _ in range(DEVICE_LAG + 10):
        fetch(recorder, clock, wait=0.25)
        step(recorder, clock, compute=0.5)
    assert len(out) >= 9
    assert all(p.device_s is None for p in out)
