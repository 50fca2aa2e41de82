"""Evaluation without a DataLoader: grad-free regions that run a model are validation."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import trainperf  # noqa: E402
from trainperf.monitoring.records import read_periods  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from trainperf.monitoring.records import Period

PLANTED_S = 0.02  # slept per evaluation batch: the evaluation's known length
BATCHES = 10


def _model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
    x, y = torch.randn(32, 8), torch.randn(32, 1)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def _evaluate(model: torch.nn.Module) -> None:
    """nanoGPT's estimate_loss(), word_language_model's evaluate(): batch after batch of
    tensors, no DataLoader (to be called inside a grad-free region)."""
    x = torch.randn(32, 8)
    for _ in range(BATCHES):
        model(x)
        time.sleep(PLANTED_S)


def _periods(run_dir: Path) -> list[Period]:
    return read_periods(run_dir / "steps.jsonl")


def _apart(train: list[Period], val: Period) -> bool:
    """No training step overlaps the validation period."""
    end = val.start_s + val.wall_s
    return all(p.start_s + p.wall_s <= val.start_s + 1e-6 or p.start_s >= end - 1e-6 for p in train)


@pytest.mark.verdict
def test_an_evaluation_without_a_loader_is_a_validation_period(tmp_path: Path) -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with trainperf.monitor(out=tmp_path / "run"):
        _train(model, opt, 6)
        with torch.no_grad():
            _evaluate(model)
        _train(model, opt, 6)
    periods = _periods(tmp_path / "run")
    (val,) = [p for p in periods if p.kind == "val"]
    train = [p for p in periods if p.kind == "train"]
    assert len(train) == 12
    planted = BATCHES * PLANTED_S
    assert planted <= val.wall_s < planted + 1.0  # sleeps overshoot on a busy machine
    assert _apart(train, val)
    assert max(p.wall_s for p in train) < val.wall_s  # no step carries the evaluation


EVALUATIONS: dict[str, Callable[[torch.nn.Module], None]] = {}


def _form(name: str) -> Callable[[Callable[[torch.nn.Module], None]], None]:
    def register(function: Callable[[torch.nn.Module], None]) -> None:
        EVALUATIONS[name] = function

    return register


@_form("with no_grad")
def _with_no_grad(model: torch.nn.Module) -> None:
    with torch.no_grad():
        _evaluate(model)


@_form("@no_grad()")
@torch.no_grad()
def _decorated(model: torch.nn.Module) -> None:
    _evaluate(model)


@_form("@no_grad")
@torch.no_grad
def _decorated_bare(model: torch.nn.Module) -> None:
    _evaluate(model)


@_form("with inference_mode")
def _with_inference_mode(model: torch.nn.Module) -> None:
    with torch.inference_mode():
        _evaluate(model)


@_form("@inference_mode()")
@torch.inference_mode()
def _inference_decorated(model: torch.nn.Module) -> None:
    _evaluate(model)


@_form("nested")
def _nested(model: torch.nn.Module) -> None:
    with torch.no_grad(), torch.inference_mode():  # counted once
        _evaluate(model)
        with torch.no_grad():
            model(torch.randn(2, 8))


@pytest.mark.parametrize("form", list(EVALUATIONS))
def test_every_grad_free_form_of_an_evaluation_counts_once(tmp_path: Path, form: str) -> None:
    # The decorators were applied at import, before monitoring: they enter a new
    # instance of the same class on each call, which is what is watched.
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with trainperf.monitor(out=tmp_path / "run"):
        _train(model, opt, 3)
        EVALUATIONS[form](model)
        _train(model, opt, 3)
    periods = _periods(tmp_path / "run")
    assert [p.kind for p in periods] == ["train"] * 3 + ["val"] + ["train"] * 3
    assert periods[3].wall_s >= BATCHES * PLANTED_S


def test_clipping_and_an_ema_update_stay_inside_one_step(tmp_path: Path) -> None:
    model = _model()
    ema = _model()
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 8), torch.randn(32, 1)
    with trainperf.monitor(out=tmp_path / "run"):
        for _ in range(6):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # its own no_grad
            opt.step()
            with torch.no_grad():  # the EMA update, and the EMA model's loss as a metric
                for kept, live in zip(ema.parameters(), model.parameters(), strict=True):
                    kept.mul_(0.9).add_(live, alpha=0.1)
                torch.nn.functional.mse_loss(ema(x), y)
                time.sleep(PLANTED_S)
    periods = _periods(tmp_path / "run")
    assert [p.kind for p in periods] == ["train"] * 6
    # The update after each optimizer step is the next step's: it is not cut out.
    assert all(p.wall_s >= PLANTED_S for p in periods[1:])


def test_a_teacher_forward_under_no_grad_stays_inside_the_step(tmp_path: Path) -> None:
    student, teachers = _model(), [_model(), _model()]
    opt = torch.optim.SGD(student.parameters(), lr=0.01)
    x = torch.randn(32, 8)
    with trainperf.monitor(out=tmp_path / "run"):
        for step in range(6):
            opt.zero_grad()
            with torch.no_grad():
                # one teacher, then an ensemble of two: each runs once per step
                target = sum(t(x) for t in teachers[: 1 + step % 2])
                time.sleep(PLANTED_S)
            torch.nn.functional.mse_loss(student(x), target).backward()
            opt.step()
    periods = _periods(tmp_path / "run")
    assert [p.kind for p in periods] == ["train"] * 6
    assert all(p.wall_s >= PLANTED_S for p in periods[1:])


def test_an_evaluation_through_a_loader_is_counted_once(tmp_path: Path) -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    train_loader = DataLoader(TensorDataset(torch.randn(16, 8), torch.randn(16, 1)), batch_size=4)
    val_loader = DataLoader(TensorDataset(torch.randn(40, 8)), batch_size=4)
    with trainperf.monitor(out=tmp_path / "run"):
        for _ in range(2):
            for x, y in train_loader:
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                opt.step()
            with torch.no_grad():
                for (x,) in val_loader:
                    model(x)
    periods = _periods(tmp_path / "run")
    assert [p.kind for p in periods] == (["train"] * 4 + ["val"]) * 2
    assert [p.samples for p in periods if p.kind == "val"] == [40, 40]


def test_an_evaluation_over_the_training_loader_starts_no_epoch(tmp_path: Path) -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(TensorDataset(torch.randn(16, 8), torch.randn(16, 1)), batch_size=4)
    with trainperf.monitor(out=tmp_path / "run"):
        for _ in range(2):
            for x, y in loader:
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                opt.step()
            with torch.no_grad():  # the training set's accuracy, once an epoch
                for x, _ in loader:
                    model(x)
    periods = _periods(tmp_path / "run")
    assert [(p.kind, p.epoch) for p in periods] == (
        [("train", 0)] * 4 + [("val", 0)] + [("train", 1)] * 4 + [("val", 1)]
    )
    assert [p.samples for p in periods if p.kind == "val"] == [16, 16]


class Augmented(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Samples passed twice through a module under no_grad (augmentation on tensors)."""

    def __init__(self) -> None:
        self.augment = torch.nn.Dropout(0.1)

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return self.augment(self.augment(torch.ones(8))), torch.zeros(1)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_module_run_while_loading_a_batch_is_not_an_evaluation(
    tmp_path: Path, workers: int
) -> None:
    # In the training process (num_workers=0) the region is inside a fetch; in a
    # forked worker it is another process, which inherited the wrappers.
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with trainperf.monitor(out=tmp_path / "run"):
        with torch.no_grad():  # the workers fork inside a region
            batches = iter(DataLoader(Augmented(), batch_size=4, num_workers=workers))
        for x, y in batches:
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    assert [p.kind for p in _periods(tmp_path / "run")] == ["train"] * 4


def test_an_evaluation_on_another_thread_is_not_validation(tmp_path: Path) -> None:
    model, watcher = _model(), _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def evaluate_aside() -> None:
        with torch.no_grad():
            _evaluate(watcher)

    with trainperf.monitor(out=tmp_path / "run"):
        aside = threading.Thread(target=evaluate_aside)
        aside.start()
        _train(model, opt, 20)
        aside.join()
    assert [p.kind for p in _periods(tmp_path / "run")] == ["train"] * 20


def _torch_state() -> tuple[object, ...]:
    from torch.nn.modules import module

    return (
        torch.no_grad.__dict__["__enter__"],
        torch.no_grad.__dict__["__exit__"],
        torch.inference_mode.__dict__["__enter__"],
        torch.inference_mode.__dict__["__exit__"],
        torch.nn.Module.__dict__["_call_impl"],
        dict(module._global_forward_pre_hooks),
        dict(module._global_forward_hooks),
        torch.is_grad_enabled(),
        torch.is_inference_mode_enabled(),
    )


def test_torch_is_restored_and_steps_run_unwatched(tmp_path: Path) -> None:
    before = _torch_state()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    during: list[tuple[object, ...]] = []

    def fails() -> None:
        _train(model, opt, 2)
        during.append(_torch_state()[4:])  # between regions, steps run torch's own code
        with torch.no_grad():
            _evaluate(model)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), trainperf.monitor(out=tmp_path / "a"):
        fails()
    assert during == [before[4:]]
    assert _torch_state() == before
    # Monitoring begun inside a region: that region is not watched, and leaving it after
    # monitoring has ended is torch's own business.
    with torch.no_grad(), trainperf.monitor(out=tmp_path / "b"):
        _evaluate(model)
    assert _torch_state() == before
    # A run that ends in the middle of an evaluation (the doctor stopping a command):
    # what ran of it is validation.
    run = trainperf.monitor(out=tmp_path / "c")
    region = torch.no_grad()
    with run:
        region.__enter__()
        _evaluate(model)
    region.__exit__(None, None, None)
    assert _torch_state() == before
    assert [p.kind for p in _periods(tmp_path / "c")] == ["val"]
