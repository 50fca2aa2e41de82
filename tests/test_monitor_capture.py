"""The step recorder on a fake clock: exact periods for known event sequences; and, on
real DataLoaders, the epochs the hooks tell it about."""

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
        if i == 4:  # a validation pass: one batch, then its StopIteration
            fetch(recorder, clock, loader=2, iterator=20, wait=0.125, samples=4)
            fetch(recorder, clock, loader=2, iterator=20, samples=None)
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


def tick(clock, seconds) -> None:
    clock.now += seconds


def region(recorder, clock, *, seconds, evaluated=True, inside=()):
    """A torch.no_grad() region on the training thread; ``evaluated``: it ran one module
    at least twice (what :mod:`trainperf.monitoring.regions` tells the recorder)."""
    recorder.region_started()
    for event in inside:
        event()
    clock.now += seconds
    recorder.region_ended(evaluated=evaluated)


def test_an_evaluation_without_a_loader_is_validation_cut_from_the_step(rec) -> None:
    recorder, clock, periods = rec
    fetch(recorder, clock, wait=0.25)
    step(recorder, clock, compute=0.25)
    clock.now += 0.125  # end-of-epoch bookkeeping
    region(recorder, clock, seconds=1.0)  # estimate_loss() over tensors
    clock.now += 0.125  # after the evaluation: the next step's
    fetch(recorder, clock, wait=0.25)
    step(recorder, clock, compute=0.25)
    recorder.close()
    assert [(p.kind, p.start_s, p.wall_s, p.data_wait_s, p.samples) for p in periods] == [
        ("train", 0.0, 0.5, 0.25, 8),
        ("val", 0.625, 1.0, 0.0, None),
        ("train", 1.625, 0.625, 0.25, 8),
    ]


def test_grad_free_regions_inside_steps_change_nothing(rec) -> None:
    recorder, clock, periods = rec
    for _ in range(2):
        fetch(recorder, clock, wait=0.25)
        region(recorder, clock, seconds=0.25, evaluated=False)  # a teacher's one forward
        trained = (recorder.backward_started, recorder.backward)
        region(recorder, clock, seconds=0.25, inside=trained)  # backward() inside: training
        step(recorder, clock, compute=0.25)
        region(recorder, clock, seconds=0.25, evaluated=False)  # an EMA update, a metric
    recorder.close()
    assert [(p.kind, p.wall_s, p.data_wait_s) for p in periods] == [
        ("train", 1.0, 0.25),
        ("train", 1.25, 0.25),  # the EMA update after the step is the next step's
    ]


def test_an_evaluation_after_the_batch_arrived_keeps_the_wait_not_the_time(rec) -> None:
    recorder, clock, periods = rec
    fetch(recorder, clock, wait=0.25)
    region(recorder, clock, seconds=1.0)  # `if i % 100 == 0: evaluate()` inside the loop
    step(recorder, clock, compute=0.25)
    recorder.close()
    assert [(p.kind, p.start_s, p.wall_s, p.data_wait_s) for p in periods] == [
        ("val", 0.25, 1.0, 0.0),
        ("train", 1.0, 0.5, 0.25),
    ]


def test_an_evaluation_over_the_training_loader_starts_no_epoch(rec) -> None:
    recorder, clock, periods = rec
    fetch(recorder, clock, iterator=10, wait=0.25)
    step(recorder, clock, compute=0.25)
    over_training_set = (
        lambda: fetch(recorder, clock, iterator=11, wait=0.5, samples=4),
        lambda: fetch(recorder, clock, iterator=11, samples=None),  # its StopIteration
    )
    region(recorder, clock, seconds=0.5, inside=over_training_set)
    fetch(recorder, clock, iterator=12, wait=0.25)
    step(recorder, clock, compute=0.25)
    recorder.close()
    assert [(p.kind, p.epoch, p.wall_s, p.data_wait_s, p.samples) for p in periods] == [
        ("train", 0, 0.5, 0.25, 8),
        ("val", 0, 1.0, 0.5, 4),
        ("train", 1, 0.5, 0.25, 8),
    ]
    assert periods[2].first_of_epoch


def test_validation_a_loader_or_a_callback_counted_is_not_counted_twice(rec) -> None:
    recorder, clock, periods = rec
    fetch(recorder, clock, wait=0.25)
    step(recorder, clock, compute=0.25)
    val_loader = (
        lambda: fetch(recorder, clock, loader=2, iterator=20, wait=0.5, samples=4),
        lambda: fetch(recorder, clock, loader=2, iterator=20, samples=None),
    )
    region(recorder, clock, seconds=0.5, inside=val_loader)
    fetch(recorder, clock, wait=0.25)
    step(recorder, clock, compute=0.25)
    # Lightning enters inference_mode, then calls on_validation_start / _end inside it.
    callback = (recorder.begin_validation, lambda: tick(clock, 0.5), recorder.end_validation)
    region(recorder, clock, seconds=0.0, inside=callback)
    fetch(recorder, clock, wait=0.25)
    step(recorder, clock, compute=0.25)
    recorder.close()
    assert [(p.kind, p.wall_s) for p in periods] == [
        ("train", 0.5),
        ("val", 1.0),  # the loader's: from its first fetch to the training loader's
        ("train", 0.5),
        ("val", 0.5),  # the callback's
        ("train", 0.5),
    ]


def test_an_evaluation_before_training_is_no_part_of_the_first_step(rec) -> None:
    recorder, clock, periods = rec
    clock.now += 2.0  # importing
    region(recorder, clock, seconds=1.0)  # nanoGPT evaluates at iteration 0
    clock.now += 0.25
    recorder.explicit_step()
    recorder.close()
    assert [(p.kind, p.start_s, p.wall_s) for p in periods] == [
        ("val", 2.0, 1.0),
        ("train", 3.0, 0.25),
    ]


def test_backward_steps_then_an_evaluation_are_a_manual_loop(rec) -> None:
    recorder, clock, periods = rec
    for _ in range(3):  # word_language_model: no optimizer, a short epoch
        recorder.backward_started()
        clock.now += 0.25
        recorder.backward()
    assert periods == []  # could still be gradient accumulation
    region(recorder, clock, seconds=1.0)
    assert [(p.kind, p.wall_s) for p in periods] == [("train", 0.25)] * 3 + [("val", 1.0)]
    assert recorder.manual_loop


def test_a_loader_zipped_with_the_training_loader_feeds_its_steps(rec) -> None:
    recorder, clock, periods = rec
    for epoch in range(2):  # for (x, y), (u,) in zip(labelled, unlabelled)
        for _ in range(2):
            fetch(recorder, clock, loader=2, iterator=20 + epoch, wait=0.125, samples=16)
            fetch(recorder, clock, loader=1, iterator=10 + epoch, wait=0.125)
            step(recorder, clock, compute=0.25)
        fetch(recorder, clock, loader=2, iterator=20 + epoch, samples=None)  # ends the zip
        if epoch == 0:
            fetch(recorder, clock, loader=3, iterator=30, wait=0.5, samples=4)  # validation
            fetch(recorder, clock, loader=3, iterator=30, samples=None)
    recorder.close()
    assert [(p.kind, p.epoch, p.wall_s, p.data_wait_s, p.samples) for p in periods] == [
        ("train", 0, 0.5, 0.25, 8),
        ("train", 0, 0.5, 0.25, 8),
        ("val", 0, 0.5, 0.5, 4),
        ("train", 1, 0.5, 0.25, 8),
        ("train", 1, 0.5, 0.25, 8),
    ]
    assert [p.first_of_epoch for p in periods if p.kind == "train"] == [True, False] * 2


def _wrapped(name: str, loader, other):
    """The loop's iterable over ``loader`` under a wrapper, and how to take (x, y) from
    one of its items."""
    import io
    import itertools

    if name == "tqdm":
        tqdm = pytest.importorskip("tqdm").tqdm
        return tqdm(loader, file=io.StringIO()), lambda item: item
    if name == "enumerate":
        return enumerate(loader), lambda item: item[1]
    if name == "zip":
        return zip(loader, itertools.count()), lambda item: item[0]
    if name == "zip-two-loaders":  # a labelled and an unlabelled loader, side by side
        return zip(loader, other, strict=True), lambda item: item[0]
    return itertools.islice(loader, 3), lambda item: item


@pytest.mark.parametrize("wrapper", ["tqdm", "enumerate", "zip", "zip-two-loaders", "islice"])
def test_epochs_over_persistent_workers_through_wrappers(tmp_path, wrapper) -> None:
    # With persistent_workers=True, iter(loader) hands back the same iterator, reset.
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    import trainperf
    from trainperf.monitoring.records import read_periods

    def loader(*tensors):
        data = TensorDataset(*tensors)
        return DataLoader(data, batch_size=4, num_workers=2, persistent_workers=True)

    labelled = loader(torch.randn(16, 4), torch.randn(16, 1))
    unlabelled = loader(torch.randn(16, 4))
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with trainperf.monitor(out=tmp_path / "run"):
        for _ in range(3):
            items, take = _wrapped(wrapper, labelled, unlabelled)
            for item in items:
                x, y = take(item)
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                opt.step()
    periods = read_periods(tmp_path / "run" / "steps.jsonl")
    per_epoch = 3 if wrapper == "islice" else 4
    assert [p.kind for p in periods] == ["train"] * 3 * per_epoch
    assert [p.epoch for p in periods] == [e for e in range(3) for _ in range(per_epoch)]
    assert [p.first_of_epoch for p in periods] == ([True] + [False] * (per_epoch - 1)) * 3


def test_batches_taken_on_from_one_iterator_are_one_epoch(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    import itertools

    from torch.utils.data import DataLoader, TensorDataset

    import trainperf
    from trainperf.monitoring.records import read_periods

    data = TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
    batches = iter(DataLoader(data, batch_size=4, num_workers=2, persistent_workers=True))
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with trainperf.monitor(out=tmp_path / "run"):
        for _ in range(2):  # "epochs" of two steps each, one pass over the data
            for x, y in itertools.islice(batches, 2):
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                opt.step()
    periods = read_periods(tmp_path / "run" / "steps.jsonl")
    assert [(p.epoch, p.first_of_epoch) for p in periods] == [(0, True)] + [(0, False)] * 3
