"""``trainperf doctor --scale``: argument errors, the report's arithmetic on fixed runs,
and real torchrun runs (two gloo ranks on CPU) where a planted input cost eats the
efficiency."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from _support import run_cli
from trainperf.doctor.scale import parse_counts
from trainperf.doctor.scale_render import render_scaling_html, render_scaling_text
from trainperf.doctor.scale_report import ScaleRun, assemble
from trainperf.errors import UsageError
from trainperf.monitoring.ranks import RankRow

TORCHRUN = (sys.executable, "-m", "torch.distributed.run", "--standalone")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--scale", "1"), "at least 2 rank counts"),
        (("--scale", "1,x"), "separated by commas"),
        (("--scale", "0,2"), "must be integers >= 1, got 0,2"),
        (("--scale", "2,1,2"), "lists a rank count twice"),
        (("--scale", "1,2", "--rounds", "0"), "--rounds must be >= 1, got 0"),
        (("--scale", "1,2", "--steps", "0"), "--steps must be >= 1, got 0"),
        (("--scale", "1,2", "--apply"), "--apply"),
        (("--rounds", "2"), "--rounds goes with --scale"),
    ],
)
def test_bad_scale_arguments_are_one_line_and_write_nothing(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    home = tmp_path / "home"
    done = run_cli(
        "doctor",
        *args,
        "--",
        *TORCHRUN,
        "--nproc-per-node={n}",
        "train.py",
        env={"TRAINPERF_HOME": str(home)},
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert not home.exists()


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ((sys.executable, "train.py"), "the command has no {n} for the rank count"),
        ((), "give the command to scale after --"),
    ],
)
def test_a_command_without_its_rank_count_is_refused(
    tmp_path: Path, command: tuple[str, ...], says: str
) -> None:
    home = tmp_path / "home"
    done = run_cli("doctor", "--scale", "1,2", "--", *command, env={"TRAINPERF_HOME": str(home)})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert not home.exists()


def test_counts_parse_in_their_order() -> None:
    assert parse_counts("2, 1,4") == (2, 1, 4)
    with pytest.raises(UsageError, match="got '1,,2'"):
        parse_counts("1,,2")


# -- the report's arithmetic, on fixed runs --------------------------------------------------


def _run(
    ranks: int,
    *,
    rate: float,
    wait: float = 0.0,
    forward: float = 0.004,
    sync: float = 0.006,
    straggler: float = 0.0,
    threads: int = 2,
    round_: int = 1,
) -> ScaleRun:
    step = wait + forward + sync
    rows = tuple(
        RankRow(r, 38, step, wait, forward, wait + forward, sync, 0.5, rate / ranks, threads)
        for r in range(ranks)
    )
    return ScaleRun(
        ranks,
        round_,
        f"/runs/n{ranks}-r{round_}",
        0,
        None,
        steps=40,
        samples_per_s=rate,
        step_s=step,
        data_wait_s=wait,
        forward_s=forward,
        sync_s=sync,
        straggler_s=straggler,
        threads_per_rank=threads,
        rank_rows=rows,
    )


def _assemble(runs: list[ScaleRun], counts: tuple[int, ...] = (1, 2)) -> Any:
    return assemble(
        runs,
        command=("torchrun", "--nproc-per-node", "{n}", "train.py"),
        counts=counts,
        rounds=2,
        steps=40,
        budget_s=None,
        folder="/runs",
        cpu_budget=2.0,
        elapsed_s=30.0,
    )


def test_efficiency_is_the_rate_ratio_over_the_rank_ratio_and_the_rounds_are_kept() -> None:
    report = _assemble(
        [
            _run(1, rate=1000.0, round_=1),
            _run(2, rate=1500.0, wait=0.004, straggler=0.001, round_=1),
            _run(1, rate=1100.0, round_=2),
            _run(2, rate=1300.0, wait=0.004, straggler=0.001, round_=2),
        ]
    )
    one, two = report.rows
    assert one.samples_per_s == pytest.approx(1050.0)  # the median of the rounds
    assert two.samples_per_s == pytest.approx(1400.0)
    assert [r.samples_per_s for r in two.runs] == [1500.0, 1300.0]
    assert one.efficiency == pytest.approx(1.0)
    assert two.efficiency == pytest.approx((1400.0 / 1050.0) / 2)
    (loss,) = report.losses
    parts = dict(loss.parts)
    assert parts["input"] == pytest.approx(0.004)
    assert parts["compute"] == pytest.approx(0.0)
    assert parts["collective"] == pytest.approx(-0.001)  # sync less the straggler wait
    assert parts["straggler"] == pytest.approx(0.001)
    assert loss.step_growth_s == pytest.approx(0.004)
    assert loss.cause == "input"
    assert "waits 4.0 ms more a step for its batches at 2 ranks than at 1" in loss.advice
    data = report.to_json()
    assert data["schema_version"] == 1
    assert data["losses"][0]["cause"] == "input"
    assert data["rows"][1]["runs"][0]["rank_rows"][1]["rank"] == 1


def test_oversubscribed_threads_are_named_with_the_cpu_budget() -> None:
    report = _assemble([_run(1, rate=1000.0), _run(2, rate=1200.0, forward=0.012, threads=2)])
    (loss,) = report.losses
    assert loss.cause == "compute"
    assert "2 ranks x 2 intra-op threads = 4 threads on 2 CPUs" in loss.advice
    assert "OMP_NUM_THREADS=1" in loss.advice


def test_fewer_threads_per_rank_are_named_as_the_compute_cost() -> None:
    report = _assemble(
        [_run(1, rate=1000.0, threads=2), _run(2, rate=1200.0, forward=0.012, threads=1)]
    )
    assert "each rank computes on 1 intra-op thread at 2 ranks against 2 at 1" in (
        report.losses[0].advice
    )


def test_a_step_that_does_not_grow_names_no_cause() -> None:
    report = _assemble([_run(1, rate=1000.0), _run(2, rate=2000.0)])
    assert report.rows[1].efficiency == pytest.approx(1.0)
    assert report.losses[0].cause is None
    assert "did not grow" in report.losses[0].advice


@pytest.mark.parametrize(
    ("sync", "straggler"),
    [(0.0115, 0.0005), (0.0115, 0.0012)],  # the collective largest; the straggler wait
)
def test_a_step_that_grew_within_the_noise_names_no_cause(sync: float, straggler: float) -> None:
    # 18.6 ms at one rank, 20.1 ms at two: 8% longer, whichever part grew most.
    base = _run(1, rate=1000.0, forward=0.0086, sync=0.01)
    report = _assemble([base, _run(2, rate=1820.0, forward=0.0086, sync=sync, straggler=straggler)])
    (loss,) = report.losses
    assert loss.step_growth_s == pytest.approx(0.0015)
    assert loss.cause is None
    assert loss.advice == (
        "the ranks scale well: the step grew 1.5 ms from 1 to 2 ranks, 8% of the 18.6 ms "
        "step, within run-to-run noise (under 10%): no part is worth a fix"
    )
    text = render_scaling_text(report)
    assert "cause:" not in text
    assert "all-reduce less often" not in text
    assert "balance the ranks' shards" not in text
    assert "  the ranks scale well: the step grew 1.5 ms" in text
    page = render_scaling_html(report)
    assert "cause:" not in page
    assert "the ranks scale well: the step grew 1.5 ms" in page


def test_a_step_that_shrinks_is_blamed_on_the_machine_not_called_scaling() -> None:
    slow_base = _run(1, rate=500.0, forward=0.02)  # measured while the machine was busy
    report = _assemble([slow_base, _run(2, rate=2000.0)])
    (loss,) = report.losses
    assert loss.cause is None
    assert "faster than linear" in loss.advice
    assert report.rows[1].steady_efficiency == pytest.approx(0.026 / 0.010)


def test_a_failed_count_is_reported_and_the_rest_kept() -> None:
    failed = ScaleRun(2, 1, "/runs/n2-r1", 1, "the command exited with code 1: RuntimeError: x")
    report = _assemble([_run(1, rate=1000.0), failed])
    assert report.failed
    assert report.rows[0].samples_per_s == 1000.0
    assert report.rows[1].failure == "the command exited with code 1: RuntimeError: x"
    assert report.rows[1].efficiency is None
    assert report.losses == ()
    text = render_scaling_text(report)
    assert "2  failed: the command exited with code 1: RuntimeError: x" in text
    assert "failed: 2 ranks, round 1" in text


def test_the_text_has_the_table_and_the_cause() -> None:
    report = _assemble([_run(1, rate=1000.0), _run(2, rate=1200.0, wait=0.01)])
    lines = render_scaling_text(report).splitlines()
    header = next(line for line in lines if line.lstrip().startswith("ranks"))
    for column in ("samples/s", "efficiency", "step ms", "data wait", "straggler", "threads"):
        assert column in header
    assert any(line.strip().startswith("cause: input (data wait)") for line in lines)


# -- real runs -------------------------------------------------------------------------------

# Two gloo ranks on CPU; the loader waits on a timer (never burns CPU) 60 ms a batch,
# but only when there are several ranks: a planted input cost of scaling.
PLANTED = textwrap.dedent(
    """
    import os
    import time

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, Dataset
    from torch.utils.data.distributed import DistributedSampler

    BATCH = 8
    WAIT_S = 0.06 if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0.0


    class Timed(Dataset):
        def __init__(self):
            self.calls = 0

        def __len__(self):
            return 4096

        def __getitem__(self, i):
            calls, self.calls = self.calls, self.calls + 1  # num_workers=0: in order
            if WAIT_S and calls % BATCH == 0:  # once a batch
                time.sleep(WAIT_S)
            return torch.full((16,), float(i % 5)), torch.tensor(float(i % 3))


    def main():
        dist.init_process_group("gloo")
        torch.manual_seed(0)
        data = Timed()
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


def _scale(tmp_path: Path, script: str, *args: str) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "train.py"
    path.write_text(script)
    done = run_cli(
        "doctor",
        "--json",
        "--scale",
        "1,2",
        "--rounds",
        "1",
        *args,
        env={"TRAINPERF_HOME": str(tmp_path / "home")},
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    data: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, data


@pytest.mark.slow
def test_a_planted_input_cost_is_named_as_what_eats_the_efficiency(tmp_path: Path) -> None:
    code, data = _scale(
        tmp_path,
        PLANTED,
        "--steps",
        "40",
        "--",
        *TORCHRUN,
        "--nproc-per-node={n}",
        str(tmp_path / "train.py"),
    )
    assert code == 0, data
    one, two = data["rows"]
    assert (one["ranks"], two["ranks"]) == (1, 2)
    assert one["samples_per_s"] > 0
    assert two["samples_per_s"] > 0
    assert two["efficiency"] == pytest.approx(
        (two["samples_per_s"] / one["samples_per_s"]) / 2, rel=1e-6
    )
    (run,) = two["runs"]
    assert run["failure"] is None
    assert [row["rank"] for row in run["rank_rows"]] == [0, 1]
    assert all(row["data_wait_s"] > 0.03 for row in run["rank_rows"])  # the timer's 60 ms
    (loss,) = data["losses"]
    parts = loss["parts"]
    assert loss["cause"] == "input"
    # Wide margins: the wait is a timer's, the other parts a tiny model's on CPU.
    assert parts["input"] > 0.03
    assert parts["input"] > 3 * max(parts["compute"], parts["collective"], parts["straggler"])
    folder = Path(data["folder"])
    assert sorted(p.name for p in folder.iterdir()) == [
        "n1-r1",
        "n2-r1",
        "scaling.html",
        "scaling.json",
    ]
    assert json.loads((folder / "scaling.json").read_text()) == data
    page = (folder / "scaling.html").read_text()
    assert "stacked bar chart" in page
    assert "input (data wait)" in page


# Trains alone (no torchrun); at 2 it fails before training, in its own words.
FAILS_AT_TWO = textwrap.dedent(
    """
    import sys

    if sys.argv[1] == "2":
        raise RuntimeError("planted: this script cannot run 2 ranks")

    import torch

    model = torch.nn.Linear(4, 1)
    x = torch.randn(8, 4)
    for _ in range(1000):
        model(x).sum().backward()
    """
)


@pytest.mark.slow
def test_a_failing_count_says_why_and_the_others_are_reported(tmp_path: Path) -> None:
    code, data = _scale(
        tmp_path,
        FAILS_AT_TWO,
        "--steps",
        "15",
        "--",
        sys.executable,
        str(tmp_path / "train.py"),
        "{n}",
    )
    assert code == 1
    one, two = data["rows"]
    assert one["failure"] is None
    assert one["samples_per_s"] is None or one["samples_per_s"] > 0
    assert one["step_s"] > 0
    assert two["failure"].startswith("the command exited with code 1: RuntimeError: planted")
    assert two["efficiency"] is None
    assert data["losses"] == []
