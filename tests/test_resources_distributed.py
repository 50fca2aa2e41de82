"""Ranks per node from launcher variables, and budgets divided per rank."""

from __future__ import annotations

import json
import textwrap

import pytest

from _support import run_ranks
from trainperf.resources.distributed import RankLayout, read_rank_layout


def layout(env: dict[str, str]) -> tuple[RankLayout, list[str]]:
    warnings: list[str] = []
    return read_rank_layout(env, warnings.append), warnings


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, RankLayout()),
        (
            {"LOCAL_WORLD_SIZE": "4", "WORLD_SIZE": "8", "LOCAL_RANK": "3"},
            RankLayout(local_world_size=4, world_size=8, local_rank=3),
        ),
        (
            {
                "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
                "OMPI_COMM_WORLD_SIZE": "6",
                "OMPI_COMM_WORLD_LOCAL_RANK": "1",
            },
            RankLayout(local_world_size=2, world_size=6, local_rank=1),
        ),
        (
            {"SLURM_LOCALID": "1", "SLURM_NTASKS_PER_NODE": "4", "SLURM_NTASKS": "8"},
            RankLayout(local_world_size=4, world_size=8, local_rank=1),
        ),
        (
            {"SLURM_LOCALID": "0", "SLURM_TASKS_PER_NODE": "2(x3),1", "SLURM_NODEID": "3"},
            RankLayout(local_world_size=1, world_size=1, local_rank=0),
        ),
        (
            {
                "SLURM_LOCALID": "0",
                "SLURM_TASKS_PER_NODE": "2(x3),1",
                "SLURM_NODEID": "2",
                "SLURM_NTASKS": "7",
            },
            RankLayout(local_world_size=2, world_size=7, local_rank=0),
        ),
        # A batch script (no srun task) that will start torchrun itself is one process.
        ({"SLURM_NTASKS_PER_NODE": "4", "SLURM_JOB_ID": "9"}, RankLayout()),
    ],
)
def test_launchers(env, expected) -> None:
    found, warnings = layout(env)
    assert found == expected
    assert warnings == []


def test_garbage_slurm_layout_warns() -> None:
    found, warnings = layout({"SLURM_LOCALID": "0", "SLURM_TASKS_PER_NODE": "two"})
    assert found.local_world_size == 1
    assert len(warnings) == 1
    assert "SLURM_TASKS_PER_NODE='two'" in warnings[0]


RANK_SCRIPT = textwrap.dedent(
    """
    import json, os
    import torch.distributed as dist
    from trainperf import detect_resources

    dist.init_process_group("gloo")
    limits = detect_resources(environ={**os.environ, "TRAINPERF_CPUS": "2"})
    mine = {"rank": dist.get_rank(), "local_world_size": limits.local_world_size,
            "cpus_per_rank": limits.cpus_per_rank, "local_rank": limits.local_rank,
            "world_size": limits.world_size}
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    if dist.get_rank() == 0:
        print("RESULT " + json.dumps(everyone))
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
def test_two_gloo_ranks_under_torchrun_split_the_budget(tmp_path) -> None:
    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT)
    proc = run_ranks(script, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    ranks = sorted(json.loads(line.removeprefix("RESULT ")), key=lambda r: r["rank"])

    assert [r["local_rank"] for r in ranks] == [0, 1]
    for rank in ranks:
        assert rank["local_world_size"] == 2
        assert rank["world_size"] == 2
        assert rank["cpus_per_rank"] == 1.0
