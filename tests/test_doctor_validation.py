"""Validation's data wait told apart: workers starting at each pass, or batches built."""

from __future__ import annotations

import time

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, Dataset, TensorDataset  # noqa: E402

import trainperf  # noqa: E402
from trainperf.doctor.findings import validation_finding  # noqa: E402

pytestmark = pytest.mark.slow  # real worker processes


def _slow_start(_: int) -> None:
    time.sleep(0.6)  # a worker that takes long to start (imports, opening files)


class Built(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Each sample waits ``cost`` seconds to be built (decoding, augmenting)."""

    def __init__(self, n: int, cost: float) -> None:
        self.n, self.cost = n, cost

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(self.cost)
        return torch.ones(4), torch.zeros(1)


def _run(tmp_path, val_loader: DataLoader) -> tuple[list, object]:
    train = DataLoader(TensorDataset(torch.randn(64, 4), torch.randn(64, 1)), batch_size=8)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with trainperf.monitor(out=tmp_path / "run") as run:
        for _ in range(3):
            for x, y in train:
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                opt.step()
            with torch.no_grad():
                for x, _ in val_loader:
                    model(x)
    return run.periods, run.summary


def test_workers_started_at_every_pass_are_not_called_preprocessing(tmp_path) -> None:
    val = DataLoader(
        Built(32, 0.0), batch_size=8, num_workers=2, worker_init_fn=_slow_start
    )  # not persistent: its workers start again at every pass
    periods, summary = _run(tmp_path, val)
    passes = [p for p in periods if p.kind == "val"]
    assert len(passes) == 3
    assert all(p.batches == 4 and p.first_wait_s is not None for p in passes)
    assert all(p.first_wait_s > 0.5 * p.data_wait_s for p in passes)
    finding = validation_finding(periods, summary, [], bundled=False)
    assert finding is not None
    assert finding.kind == "validation-worker-startup"
    assert "persistent_workers=True" in finding.fix
    assert "3 passes" in finding.evidence[1]


def test_batches_that_take_long_to_build_stay_preprocessing(tmp_path) -> None:
    val = DataLoader(Built(96, 0.02), batch_size=8, num_workers=0)
    periods, summary = _run(tmp_path, val)
    finding = validation_finding(periods, summary, [], bundled=False)
    assert finding is not None
    assert finding.kind == "validation-preprocessing"
