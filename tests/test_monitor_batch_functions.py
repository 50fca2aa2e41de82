"""A loop without a DataLoader: its own batch function is data wait, its no_grad
evaluation is validation, in the proportions planted."""

from __future__ import annotations

import time

import pytest

torch = pytest.importorskip("torch")

import trainperf  # noqa: E402
from trainperf.monitoring.anatomy_record import AnatomyRecord, StackSample  # noqa: E402
from trainperf.monitoring.batch_functions import BATCH_FUNCTION, count_batch_functions  # noqa: E402
from trainperf.monitoring.records import Period  # noqa: E402

LOAD_S = 0.012  # planted: cutting a batch out of a memory-mapped array
WORK_S = 0.012  # planted: the rest of the step's work
EVAL_S = 0.03  # planted: one evaluation batch


def get_batch(data: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    time.sleep(LOAD_S)
    rows = data[i % 8 * 16 : i % 8 * 16 + 16]
    return rows[:, :4], rows[:, 4:]


@pytest.mark.slow
def test_planted_proportions_without_a_dataloader(tmp_path) -> None:
    data = torch.randn(128, 5)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    steps, evals = 120, 10
    with trainperf.monitor(out=tmp_path / "run") as run:
        for i in range(steps):
            x, y = get_batch(data, i)
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            time.sleep(WORK_S)
            opt.step()
        with torch.no_grad():
            for i in range(evals):
                x, _ = get_batch(data, i)
                model(x)
                time.sleep(EVAL_S - LOAD_S)
    summary = run.summary
    assert summary is not None
    assert summary.steps == steps
    # Half of each step waits in get_batch: counted as data wait (the stack samples).
    assert any(name.endswith(":get_batch") for name in summary.data_wait_functions)
    share = summary.shares["data_wait"] / (summary.shares["data_wait"] + summary.shares["compute"])
    assert 0.3 < share < 0.7, share
    # The evaluation is validation, about evals x EVAL_S long, and no step holds it.
    assert summary.val_s == pytest.approx(evals * EVAL_S, rel=0.5)
    assert max(p.wall_s for p in run.periods if p.kind == "train") < evals * EVAL_S / 2
    assert summary.anatomy is not None
    assert not [line for line in summary.anatomy.loop_lines if line.function == "get_batch"]


def test_only_batch_making_functions_are_counted() -> None:
    for name in (
        "get_batch",
        "load_batch",
        "next_batch",
        "fetch_data",
        "sample_batch",
        "_get_batch",
    ):
        assert BATCH_FUNCTION.search(name), name
    for name in ("train_step", "batchnorm_update", "log_metrics", "evaluate", "forward"):
        assert not BATCH_FUNCTION.search(name), name


def test_the_batch_functions_share_moves_to_data_wait_exactly() -> None:
    periods = [Period("train", i, 0, float(i), 1.0, 0.0, 8) for i in range(4)]
    samples = [
        StackSample(i + k / 10, "loop", "train.py", 10, "get_batch" if k < 3 else "main")
        for i in range(4)
        for k in range(10)
    ]
    record = AnatomyRecord(interval_s=0.1, samples=tuple(samples), gc_pauses=())
    counted, relabelled, names = count_batch_functions(periods, record)
    assert names == ("train.py:get_batch",)
    assert [p.data_wait_s for p in counted] == pytest.approx([0.3] * 4)
    assert sum(s.phase == "data" for s in relabelled.samples) == 12
    # Too few samples in such functions: nothing moves.
    few = AnatomyRecord(interval_s=0.1, samples=tuple(samples[:2]), gc_pauses=())
    assert count_batch_functions(periods, few)[2] == ()


def test_each_step_with_enough_samples_gets_its_own_share() -> None:
    """Steps that wait differently keep their difference (the step verdict's interval is
    taken over them); a step with too few samples takes the pooled share."""
    periods = [Period("train", i, 0, float(i), 1.0, 0.0, 8) for i in range(3)]
    in_batch = {0: 2, 1: 6}  # of ten samples in steps 0 and 1; step 2 holds two samples
    samples = [
        StackSample(i + k / 10, "loop", "train.py", 10, "get_batch" if k < in_batch[i] else "main")
        for i in (0, 1)
        for k in range(10)
    ]
    samples += [StackSample(2.1, "loop", "train.py", 10, "get_batch")]
    samples += [StackSample(2.2, "forward", "train.py", 12, "main")]
    record = AnatomyRecord(interval_s=0.1, samples=tuple(samples), gc_pauses=())
    counted, _, _ = count_batch_functions(periods, record)
    pooled = (2 + 6 + 1) / 22
    assert [p.data_wait_s for p in counted] == pytest.approx([0.2, 0.6, pooled])
