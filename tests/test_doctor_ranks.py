"""The doctor across torch.distributed ranks: real torchrun, two gloo ranks on CPU.

The limit is agreed by the ranks (both stop after the same step), rank 0 proves its
advice while the other waits, the command exits 0; the per-rank breakdown names a
straggler planted in one rank's loader (fixed) or in every rank's in turn (rotating).
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from _support import run_cli

# A loader that waits on a timer (never burns CPU); SLOW_RANK: "fixed" sleeps on
# rank 1's batches only, "rotating" on the batches whose number picks each rank in
# turn, "none" nowhere beyond the base wait.
SCRIPT = textwrap.dedent(
    """
    import os
    import sys
    import time

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, Dataset
    from torch.utils.data.distributed import DistributedSampler

    MODE = sys.argv[1]
    BASE_S = float(sys.argv[2])
    BATCH = 8


    class Timed(Dataset):
        def __init__(self, rank, world):
            self.rank, self.world, self.calls = rank, world, 0

        def __len__(self):
            return 8192

        def __getitem__(self, i):
            calls, self.calls = self.calls, self.calls + 1  # num_workers=0: in order
            if calls % BATCH == 0:  # once a batch
                time.sleep(BASE_S)
                local = calls // BATCH  # this rank's batch number
                if MODE == "fixed" and self.rank == 1:
                    time.sleep(0.05)
                if MODE == "rotating" and local % self.world == self.rank:
                    time.sleep(0.05)
            return torch.full((16,), float(i % 5)), torch.tensor(float(i % 3))


    def main():
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        torch.manual_seed(0)
        data = Timed(rank, world)
        sampler = DistributedSampler(data, shuffle=False)
        loader = DataLoader(data, batch_size=BATCH, sampler=sampler)
        model = DistributedDataParallel(torch.nn.Linear(16, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        for epoch in range(1000):
            sampler.set_epoch(epoch)
            for x, y in loader:
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(x).squeeze(1), y).backward()
                opt.step()
        dist.destroy_process_group()


    if __name__ == "__main__":
        main()
    """
)


def _doctor(tmp_path: Path, *args: str, mode: str, base_s: float) -> dict[str, Any]:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    proc = run_cli(
        "doctor",
        "--json",
        "--no-startup",
        *args,
        "--",
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        str(script),
        mode,
        str(base_s),
        env={"TRAINPERF_HOME": str(tmp_path / "home")},
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _train_steps(rank: Path) -> int:
    lines = (rank / "steps.jsonl").read_text().splitlines()
    return sum(json.loads(line)["kind"] == "train" for line in lines)


@pytest.mark.slow
def test_both_ranks_stop_at_the_agreed_step_and_rank_zero_proves(tmp_path: Path) -> None:
    data = _doctor(tmp_path, "--steps", "23", mode="none", base_s=0.02)
    run = Path(data["run"])
    assert data["failure"] is None
    assert data["returncode"] == 0
    # The step limit is agreed at step 23 itself; the step in hand is recorded too.
    steps = [_train_steps(run / "rank0"), _train_steps(run / "rank1")]
    assert steps[0] == steps[1] == 24, steps
    assert data["stopped_at_step"] == 24
    # Rank 0 proved (it alone: the other rank's folder has no proofs), and the
    # proofs' measurements reached the report.
    assert (run / "rank0" / "proofs.json").is_file()
    assert not (run / "rank1" / "proofs.json").exists()
    kinds = {p["kind"] for p in data["proofs"]}
    assert "calibration" in kinds, data["proofs"]
    calibration = next(p for p in data["proofs"] if p["kind"] == "calibration")
    assert calibration.get("error") is None
    assert calibration["chosen_samples_per_s"] > 0
    found = next(f for f in data["findings"] if f["kind"] == "input-bound")
    assert any("calibration" in line for line in found["evidence"])
    rows = data["rank_breakdown"]["rows"]
    assert [r["rank"] for r in rows] == [0, 1]
    assert all(r["data_wait_s"] > 0.015 for r in rows)  # the planted wait, each rank
    # The page and the report show each rank's row.
    page = (run / "doctor.html").read_text()
    assert "<h3>Ranks</h3>" in page
    assert "<td>1</td>" in page
    report = run_cli("report", str(run))
    assert report.returncode == 0, report.stderr
    table = report.stdout[report.stdout.index("rank  steady") :].splitlines()
    assert [line.split()[0] for line in table[1:3]] == ["0", "1"]


@pytest.mark.slow
@pytest.mark.verdict
@pytest.mark.parametrize("mode", ["fixed", "rotating"])
def test_a_rank_sleeping_in_its_loader_is_named_with_its_pattern(tmp_path: Path, mode: str) -> None:
    # A time budget, not a step count: the ranks agree on it from their own clocks.
    data = _doctor(tmp_path, "--budget", "15", mode=mode, base_s=0.005)
    run = Path(data["run"])
    assert _train_steps(run / "rank0") == _train_steps(run / "rank1")
    breakdown = data["rank_breakdown"]
    assert breakdown["pattern"] == mode
    assert breakdown["cause"] == "data"
    straggler = next(f for f in data["findings"] if f["kind"] == "straggler-rank")
    text = " ".join([straggler["title"], straggler["fix"], *straggler["evidence"]])
    if mode == "fixed":
        assert "rank 1" in text
        rows = breakdown["rows"]
        assert rows[1]["slowest_share"] > rows[0]["slowest_share"]
        assert rows[1]["data_wait_s"] > rows[0]["data_wait_s"] + 0.02  # 50 ms planted
        # The verdict is the waited-for rank's (rank 0's backward only waits for it), and
        # that rank proved: its loader is the one to fix.
        assert breakdown["verdict_rank"] == 1
        assert data["verdict"]["step"]["kind"] == "input-bound"
        assert (run / "rank1" / "proofs.json").is_file()
        assert not (run / "rank0" / "proofs.json").exists()
    else:
        assert breakdown["verdict_rank"] == 0
    if mode == "rotating":
        assert "different rank" in text
        assert breakdown["wait_s"] > 0.01  # 50 ms planted every other step


@pytest.mark.slow
def test_ranks_that_keep_pace_get_no_straggler(tmp_path: Path) -> None:
    data = _doctor(tmp_path, "--steps", "30", mode="none", base_s=0.005)
    assert not [f for f in data["findings"] if f["kind"] == "straggler-rank"]
