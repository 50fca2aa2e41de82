"""Two real torch.distributed ranks (gloo), monitored with no code change."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from _support import run_cli

DDP = textwrap.dedent(
    """
    import time
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(64, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(16, 64)
    for _ in range(40):
        if rank == 1:  # a slow data shard on one rank
            end = time.perf_counter() + 0.03
            while time.perf_counter() < end:
                pass
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
def test_ranks_are_recorded_merged_and_the_straggler_named(tmp_path) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(DDP)
    out = tmp_path / "run"
    proc = run_cli(
        "run",
        "--out",
        str(out),
        "--",
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        str(script),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["rank0", "rank1"]  # no launcher record
    report = run_cli("report", str(out), "--json")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["ranks"] == 2
    assert data["steps"] == 40
    straggler = next(f for f in data["verdict"]["findings"] if f["kind"] == "straggler-rank")
    assert straggler["evidence"]["rank"] == 1
    assert straggler["evidence"]["own_s"] > 0.025
