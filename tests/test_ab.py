"""ab: interleaved segments of two commands, their statistics, and the CLI."""

from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path

import pytest

from _support import run_cli
from trainperf.cli.ab import split_commands
from trainperf.errors import UsageError
from trainperf.monitoring.ab import MIN_STEPS, compare_rounds, job_samples, segment_steps
from trainperf.monitoring.interleave import order
from trainperf.monitoring.records import Period


def constant(a: float, b: float, n: int = 25) -> tuple[list[float], list[float]]:
    """A round whose segments take exactly ``a`` and ``b`` seconds a step."""
    return [a] * n, [b] * n


# -- statistics, from hand-made numbers ---------------------------------------------


def test_steady_steps_leave_out_warm_up_epoch_starts_and_steps_past_the_limit() -> None:
    periods = [Period("train", i, 0, float(i), 0.1 * i, 0.0, 4) for i in range(8)]
    periods[6] = Period("train", 6, 1, 6.0, 0.6, 0.0, 4, first_of_epoch=True)
    periods.insert(3, Period("val", 0, 0, 2.5, 9.0, 0.0, 4))
    assert segment_steps(periods, steps=7, warmup=2) == pytest.approx([0.2, 0.3, 0.4, 0.5])


def test_b_twice_as_fast_in_every_round() -> None:
    result = compare_rounds([constant(0.020, 0.010), constant(0.022, 0.011)])
    assert result.verdict == "faster"
    assert result.reason == "interval"
    assert result.ratio == pytest.approx(0.5)
    assert result.interval == pytest.approx((0.5, 0.5))
    # A/A: each side's second round is 10% slower than its first.
    assert result.noise_floor == pytest.approx(0.1)
    assert result.threshold == pytest.approx(0.2)
    assert [r.ratio for r in result.rounds] == pytest.approx([0.5, 0.5])
    assert [r.a_median_s for r in result.rounds] == [0.020, 0.022]
    data = result.to_json()
    assert data["verdict"] == "faster"
    assert data["min_steps"] == MIN_STEPS
    assert data["used_rounds"] == 2
    assert data["a_steady_steps"] == data["b_steady_steps"] == 50


def test_b_half_again_as_slow() -> None:
    result = compare_rounds([constant(0.02, 0.03)] * 3)
    assert result.verdict == "slower"
    assert result.ratio == pytest.approx(1.5)
    assert result.noise_floor == 0.0
    assert result.threshold == 0.05


def test_a_difference_below_the_smallest_effect_is_no_difference() -> None:
    result = compare_rounds([constant(0.0200, 0.0201)] * 4)
    assert result.verdict == "no-difference"
    assert result.reason == "within-effect"
    assert not result.inconclusive
    assert result.ratio == pytest.approx(1.005)


def test_rounds_that_disagree_are_too_wide_to_tell() -> None:
    # B is 30% faster in two rounds and 30% slower in the two others; odd and even
    # rounds look alike, so only the interval shows how little is known.
    rounds = [constant(0.02, b) for b in (0.014, 0.026, 0.026, 0.014)]
    result = compare_rounds(rounds)
    assert result.verdict == "no-difference"
    assert result.reason == "too-wide"
    assert result.inconclusive
    assert result.ratio == pytest.approx(math.sqrt(0.7 * 1.3))
    assert result.noise_floor == pytest.approx(0.0)
    assert result.interval is not None
    assert result.interval[0] == pytest.approx(0.7)
    assert result.interval[1] == pytest.approx(1.3)


def test_a_noisy_machine_cannot_say_no_difference() -> None:
    # Each side's even rounds are 40% slower than its odd ones: any difference under
    # 80% would be lost in that noise.
    result = compare_rounds([constant(0.02, 0.02), constant(0.028, 0.028)])
    assert result.noise_floor == pytest.approx(0.4)
    assert result.verdict == "no-difference"
    assert result.reason == "too-wide"
    assert result.inconclusive


@pytest.mark.parametrize(
    "rounds",
    [
        [constant(0.02, 0.01)],  # one round: nothing to pair
        [constant(0.02, 0.01, n=9)] * 2,  # 18 steady steps a side
        [constant(0.02, 0.01), ([0.02] * 25, [0.01, 0.01])],  # one usable round
    ],
)
def test_too_little_data_is_inconclusive(rounds: list[tuple[list[float], list[float]]]) -> None:
    result = compare_rounds(rounds)
    assert result.verdict == "no-difference"
    assert result.reason == "too-little-data"
    assert result.inconclusive
    assert result.ratio is None
    assert result.interval is None


def test_the_interval_keeps_the_pairing_and_is_reproducible() -> None:
    rounds = [
        ([0.020 + 0.001 * (i % 5) for i in range(25)], [0.015 + 0.001 * (i % 3) for i in range(25)])
        for _ in range(4)
    ]
    first, again = compare_rounds(rounds), compare_rounds(rounds)
    assert first == again
    assert first.interval is not None
    assert first.ratio is not None
    assert first.interval[0] <= first.ratio <= first.interval[1]


def test_rounds_alternate_which_side_goes_first() -> None:
    assert order(3) == [(1, "A"), (1, "B"), (2, "B"), (2, "A"), (3, "A"), (3, "B")]


def test_split_commands() -> None:
    assert split_commands(["--", "python", "a.py", "--", "python", "b.py", "-x"]) == (
        ["python", "a.py"],
        ["python", "b.py", "-x"],
    )
    with pytest.raises(UsageError, match="give two commands"):
        split_commands(["--", "python", "a.py"])
    with pytest.raises(UsageError, match="command B is empty"):
        split_commands(["--", "python", "a.py", "--"])


# -- the command line, with real processes -------------------------------------------


def test_the_job_s_samples_are_summed_over_ranks_step_by_step() -> None:
    def steps(samples: list[int | None], first: tuple[int, ...] = ()) -> list[Period]:
        return [
            Period("train", i, 0, float(i), 0.1, 0.0, n, first_of_epoch=i in first)
            for i, n in enumerate(samples)
        ]

    one, other = steps([8] * 6, first=(4,)), steps([8, 8, 8, 8, 8, 3])
    assert job_samples([one], steps=6, warmup=2) == [8, 8, 8]  # step 4 starts an epoch
    assert job_samples([one, other], steps=6, warmup=2) == [16, 16, 11]
    assert job_samples([one, other], steps=4, warmup=2) == [16, 16]
    # A rank that did not record the step, or a batch of unknown size: not known.
    assert job_samples([one, steps([8] * 4)], steps=6, warmup=2) is None
    assert job_samples([one, steps([8, 8, 8, None, 8, 8])], steps=6, warmup=2) is None


TRAIN = textwrap.dedent(
    """
    import sys, time
    import torch
    from torch.utils.data import DataLoader, Dataset

    PAUSE_S = float(sys.argv[1])  # a timer, not CPU work: it holds on a busy machine

    class Slow(Dataset):
        def __len__(self):
            return 256
        def __getitem__(self, i):
            time.sleep(PAUSE_S)
            return torch.ones(8), torch.zeros(1)

    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    BATCH = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    for x, y in DataLoader(Slow(), batch_size=BATCH):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    """
)


@pytest.fixture
def train(tmp_path: Path) -> Path:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    return script


def ab(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    proc = run_cli("ab", *args, env={"TRAINPERF_HOME": str(tmp_path / "home")})
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.slow
def test_a_loader_that_waits_less_is_faster(tmp_path: Path, train: Path) -> None:
    py, script = sys.executable, str(train)
    code, out, err = ab(
        tmp_path, "--rounds", "2", "--steps", "15", "--json",
        "--", py, script, "0.02", "--", py, script, "0.002",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["verdict"] == "faster", data
    assert data["ratio"] < 0.5
    assert data["interval"][1] < 1 - data["threshold"]
    assert len(data["rounds"]) == 2
    folder = Path(data["folder"])
    assert json.loads((folder / "ab.json").read_text()) == data
    runs = {s["run"]: s for r in data["rounds"] for s in r["segments"]}
    assert sorted(Path(run).name for run in runs) == ["a1", "a2", "b1", "b2"]
    for segment in runs.values():
        # Stopped at the limit (the step in hand is recorded too), warm-up left out.
        assert segment["recorded_steps"] in (15, 16)
        assert segment["steady_steps"] == 10
        assert (Path(segment["run"]) / "steps.jsonl").is_file()
    assert data["commands"] == {"a": [py, script, "0.02"], "b": [py, script, "0.002"]}


@pytest.mark.slow
def test_the_same_command_on_both_sides_is_no_faster(tmp_path: Path, train: Path) -> None:
    py, script = sys.executable, str(train)
    code, out, err = ab(
        tmp_path, "--rounds", "2", "--steps", "15",
        "--", py, script, "0.02", "--", py, script, "0.02",
    )  # fmt: skip
    assert code == 0, err
    headline, *rest = out.splitlines()
    assert headline.startswith(("no difference: ", "inconclusive: ")), out
    assert "2 rounds of 15 steps" in headline
    # Both sides know their samples: compared by throughput, per round in samples/s.
    assert rest[0].split() == ["round", "A", "samples/s", "B", "samples/s", "B/A", "(time)"]
    assert rest[1].split()[0] == "1"
    assert rest[2].split()[0] == "2"


@pytest.mark.slow
def test_a_larger_batch_is_compared_by_its_throughput(tmp_path: Path, train: Path) -> None:
    """B's step takes twice A's (4 samples of 10 ms against 1 of 20 ms) and trains
    twice the samples a second: B is faster, not slower."""
    py, script = sys.executable, str(train)
    code, out, err = ab(
        tmp_path, "--rounds", "2", "--steps", "15",
        "--", py, script, "0.02", "1", "--", py, script, "0.01", "4",
    )  # fmt: skip
    assert code == 0, err
    headline = out.splitlines()[0]
    assert headline.startswith("B is "), out
    assert " faster than A in samples/s (95% interval " in headline
    assert "the sides differ (A 1 rank, 1 sample a step; B 1 rank, 4 samples a step)" in out
    code, out, err = ab(
        tmp_path, "--rounds", "2", "--steps", "15", "--json",
        "--", py, script, "0.02", "1", "--", py, script, "0.01", "4",
    )  # fmt: skip
    data = json.loads(out)
    assert (data["unit"], data["verdict"]) == ("sample", "faster")
    assert data["interval"][1] < 0.8  # B takes at most 0.8 of A's time a sample
    segments = [s for r in data["rounds"] for s in r["segments"]]
    per_step = {s["side"]: s["samples_per_step"] for s in segments}
    assert per_step == {"A": 1, "B": 4}
    # Its step itself is slower: what a comparison of step times would have called it.
    a_step = [s["median_s"] for s in segments if s["side"] == "A"]
    b_step = [s["median_s"] for s in segments if s["side"] == "B"]
    assert min(b_step) > max(a_step)


DDP_TRAIN = textwrap.dedent(
    """
    import time
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, Dataset
    from torch.utils.data.distributed import DistributedSampler

    class Slow(Dataset):
        def __len__(self):
            return 4096
        def __getitem__(self, i):
            time.sleep(0.005)  # a timer: every rank waits on its own
            return torch.ones(8), torch.zeros(1)

    def main():
        dist.init_process_group("gloo")
        data = Slow()
        sampler = DistributedSampler(data)
        model = DistributedDataParallel(torch.nn.Linear(8, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        for x, y in DataLoader(data, batch_size=4, sampler=sampler):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        dist.destroy_process_group()

    if __name__ == "__main__":
        main()
    """
)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_ranks_are_compared_with_one_by_the_whole_job_s_throughput(tmp_path: Path) -> None:
    """Two gloo ranks each wait on their own loader as long as one rank does: the
    step takes as long, the job trains twice the samples a second."""
    script = tmp_path / "ddp.py"
    script.write_text(DDP_TRAIN)
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    code, out, err = ab(
        tmp_path, "--rounds", "2", "--steps", "20", "--json",
        "--", *run, "--nproc-per-node=1", str(script),
        "--", *run, "--nproc-per-node=2", str(script),
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    segments = [s for r in data["rounds"] for s in r["segments"]]
    assert {(s["side"], s["ranks"], s["samples_per_step"]) for s in segments} == {
        ("A", 1, 4),
        ("B", 2, 8),
    }
    assert (data["unit"], data["verdict"]) == ("sample", "faster"), data
    assert data["interval"][1] < 0.8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give two commands, each after --"),
        (("--", "python", "a.py"), "give two commands, each after -- (got one command"),
        (("--", "--", "python", "b.py"), "command A is empty"),
        (("--", "python", "a.py", "--"), "command B is empty"),
        (("--rounds", "1", "--", "a", "--", "b"), "--rounds must be between 2 and 100, got 1"),
        (("--steps", "3", "--", "a", "--", "b"), "--steps must be between 8 and 100000, got 3"),
        (("--", sys.executable, "--", "no-such-command-x"), "cannot run command B (no-such-"),
    ],
)
def test_usage_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    code, out, err = ab(tmp_path, *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err
    runs = tmp_path / "home" / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # nothing ran, nothing is left


@pytest.mark.slow
def test_a_failing_segment_names_the_command_its_code_and_last_line(tmp_path: Path) -> None:
    failing = tmp_path / "fail.py"
    failing.write_text("print('loading')\nprint('ValueError: bad config')\nraise SystemExit(3)\n")
    py = sys.executable
    code, _, err = ab(tmp_path, "--", py, "-c", "pass", "--", py, str(failing))
    assert code == 2
    # A runs first and trains nothing: that is reported before B ever runs.
    assert err.count("\n") == 1, err
    assert "command A recorded no training step in round 1" in err
    code, _, err = ab(tmp_path, "--", py, str(failing), "--", py, "-c", "pass")
    assert code == 2
    assert err.count("\n") == 1, err
    assert "command A failed in round 1 with exit code 3: ValueError: bad config" in err
    assert "Traceback" not in err


def test_a_clear_speedup_is_found_on_a_machine_whose_pace_swings_between_rounds() -> None:
    from trainperf.monitoring.ab import compare_rounds

    # Every other round the machine is three times slower; B is three times faster than A
    # in every round. The A/A noise floor is huge, the paired ratio is not.
    rounds = []
    for i in range(6):
        pace = 3.0 if i % 2 else 1.0
        rounds.append(([0.03 * pace] * 25, [0.01 * pace] * 25))
    result = compare_rounds(rounds)
    assert result.noise_floor is not None
    assert result.noise_floor > 1.0
    assert result.verdict == "faster"
    assert result.ratio is not None
    assert abs(result.ratio - 1 / 3) < 1e-9
