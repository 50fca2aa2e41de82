"""compare: per-step statistics, verdicts, and the CLI gate."""

from __future__ import annotations

import json
import random
import sys
import textwrap
from pathlib import Path

import pytest

from _support import run_cli
from trainperf.monitoring.compare import MIN_STEPS, compare_steps
from trainperf.monitoring.records import Period


def noisy(n: int, centre: float, *, seed: int, spread: float = 0.03) -> list[float]:
    rng = random.Random(seed)
    return [centre * (1 + rng.gauss(0, spread)) for _ in range(n)]


def test_same_distribution_is_no_change() -> None:
    result = compare_steps(noisy(200, 0.1, seed=1), noisy(200, 0.1, seed=2))
    assert result.verdict == "no-change"
    assert result.interval is not None
    assert result.interval[0] < 1 < result.interval[1]


def test_a_planted_20_percent_slowdown_is_a_regression() -> None:
    result = compare_steps(noisy(200, 0.1, seed=1), noisy(200, 0.12, seed=2))
    assert result.verdict == "regression"
    assert result.ratio == pytest.approx(1.2, rel=0.02)


def test_getting_faster_is_not_a_regression() -> None:
    assert compare_steps(noisy(200, 0.1, seed=1), noisy(200, 0.08, seed=2)).verdict == "no-change"


def test_real_but_smaller_than_the_smallest_effect_is_no_change() -> None:
    result = compare_steps(noisy(400, 0.1, seed=1, spread=0.005), noisy(400, 0.104, seed=2))
    assert result.interval is not None
    assert result.interval[0] > 1  # real...
    assert result.verdict == "no-change"  # ...but below what is worth a failed build


def test_large_but_uncertain_is_suspicious() -> None:
    result = compare_steps(
        noisy(24, 0.1, seed=1, spread=0.5), noisy(24, 0.125, seed=101, spread=0.5)
    )
    assert result.ratio is not None
    assert result.ratio > 1 + result.threshold
    assert result.interval is not None
    assert result.interval[0] <= 1
    assert result.verdict == "suspicious"


def test_a_noisy_baseline_raises_the_bar() -> None:
    # The baseline's own halves differ by 20% (A/A): a 15% change is within its noise.
    base = [0.1 if i % 2 else 0.12 for i in range(100)]
    result = compare_steps(base, noisy(100, 0.127, seed=4, spread=0.01))
    assert result.noise_floor == pytest.approx(0.2 / 1.2, rel=0.01)
    assert result.threshold > 0.3
    assert result.verdict == "no-change"


def test_too_few_steps() -> None:
    result = compare_steps([0.1] * (MIN_STEPS - 1), [0.2] * 100)
    assert result.verdict == "insufficient-data"
    assert result.ratio is None


def test_deterministic() -> None:
    a, b = noisy(100, 0.1, seed=1), noisy(100, 0.11, seed=2)
    assert compare_steps(a, b) == compare_steps(a, b)


def write_run(folder, walls, *, cpu_budget=2.0) -> None:
    folder.mkdir(parents=True)
    periods = [Period("train", i, 0, float(i), w, 0.0, 8) for i, w in enumerate(walls)]
    (folder / "steps.jsonl").write_text("".join(json.dumps(p.to_json()) + "\n" for p in periods))
    fingerprint = {"digest": "x", "schema": 1, "components": {"cpu_budget": cpu_budget}}
    (folder / "meta.json").write_text(json.dumps({"fingerprint": fingerprint}))


def test_cli_gate(tmp_path) -> None:
    write_run(tmp_path / "base", noisy(100, 0.1, seed=1))
    write_run(tmp_path / "same", noisy(100, 0.1, seed=2))
    write_run(tmp_path / "slow", noisy(100, 0.12, seed=3))
    same = run_cli("compare", str(tmp_path / "base"), str(tmp_path / "same"))
    assert same.returncode == 0
    assert ": no-change" in same.stdout
    slow = run_cli("compare", str(tmp_path / "base"), str(tmp_path / "slow"), "--json")
    assert slow.returncode == 1
    assert json.loads(slow.stdout)["verdict"] == "regression"


def test_cli_refuses_different_environments(tmp_path) -> None:
    write_run(tmp_path / "base", noisy(100, 0.1, seed=1))
    write_run(tmp_path / "other", noisy(100, 0.1, seed=2), cpu_budget=1.0)
    refused = run_cli("compare", str(tmp_path / "base"), str(tmp_path / "other"))
    assert refused.returncode == 2
    assert "cpu_budget 2.0 -> 1.0" in refused.stderr
    assert "--force" in refused.stderr
    forced = run_cli("compare", str(tmp_path / "base"), str(tmp_path / "other"), "--force")
    assert forced.returncode == 0


JOB = textwrap.dedent(
    """
    import sys, time, torch
    w = torch.zeros(4, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.01)
    cost = 0.004 * float(sys.argv[1])
    for _ in range(150):
        opt.zero_grad()
        (w ** 2).sum().backward()
        end = time.perf_counter() + cost
        while time.perf_counter() < end:
            pass
        opt.step()
    """
)


@pytest.mark.slow
def test_real_runs_of_the_same_command_and_a_planted_slowdown(tmp_path) -> None:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    env = {"TRAINPERF_HOME": str(tmp_path / "home")}
    for name, factor in (("a", "1"), ("b", "1"), ("c", "1.2")):
        proc = run_cli(
            "run",
            "--out",
            str(tmp_path / name),
            "--",
            sys.executable,
            str(script),
            factor,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
    same = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json", env=env)
    assert json.loads(same.stdout)["verdict"] == "no-change"
    slower = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "c"), "--json", env=env)
    assert slower.returncode == 1
    assert json.loads(slower.stdout)["verdict"] == "regression"


def test_long_runs_are_thinned_not_held_in_full() -> None:
    base, new = noisy(200_000, 0.1, seed=7), noisy(200_000, 0.1, seed=8)
    result = compare_steps(base, new)
    assert result.verdict == "no-change"
    assert result.base_steps == 200_000


def test_too_few_steps_says_how_many_are_needed(tmp_path) -> None:
    write_run(tmp_path / "base", noisy(100, 0.1, seed=1))
    write_run(tmp_path / "short", noisy(12, 0.1, seed=2))
    text = run_cli("compare", str(tmp_path / "base"), str(tmp_path / "short"))
    assert text.returncode == 0
    assert (
        f"100 and 12 steady steps: too few to judge; compare needs at least {MIN_STEPS} "
        f"steady steps per run"
    ) in text.stdout
    assert "run longer, e.g. trainperf doctor --steps 40" in text.stdout
    data = json.loads(
        run_cli("compare", str(tmp_path / "base"), str(tmp_path / "short"), "--json").stdout
    )
    assert data["verdict"] == "insufficient-data"
    assert data["min_steps"] == MIN_STEPS
    assert f"at least {MIN_STEPS} steady steps" in data["reason"]


DOCTORED = textwrap.dedent(
    """
    import time, torch
    from torch.utils.data import DataLoader, TensorDataset

    data = TensorDataset(torch.ones(400, 8), torch.zeros(400, 1))
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for x, y in DataLoader(data, batch_size=4):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        end = time.perf_counter() + 0.004  # compute-bound: the doctor has nothing to prove
        while time.perf_counter() < end:
            pass
        opt.step()
    """
)


@pytest.mark.slow
def test_doctor_run_folders_are_compared_like_any_run(tmp_path) -> None:
    script = tmp_path / "job.py"
    script.write_text(DOCTORED)
    env = {"TRAINPERF_HOME": str(tmp_path / "home")}
    folders = []
    for steps in ("30", "10"):
        proc = run_cli(
            "doctor", "--no-startup", "--steps", steps, "--json", "--", sys.executable,
            str(script), env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        folders.append(Path(json.loads(proc.stdout)["run"]))
    long, short = folders
    assert (long / "doctor.json").is_file()
    # By folder, and by run id: a run against itself is the same to the step.
    same = run_cli("compare", str(long), long.name, "--json", env=env)
    assert same.returncode == 0, same.stderr
    data = json.loads(same.stdout)
    assert data["verdict"] == "no-change"
    assert data["ratio"] == 1.0
    assert data["base_steps"] >= MIN_STEPS
    # By name: 'previous' is the 30-step run, 'last' the 10-step one.
    few = run_cli("compare", "previous", "last", env=env)
    assert few.returncode == 0, few.stderr
    assert f"{long} against" not in few.stdout
    assert f"{short} against {long}: insufficient-data" in few.stdout
    assert f"compare needs at least {MIN_STEPS} steady steps per run" in few.stdout


def test_a_run_that_recorded_no_step_is_one_line(tmp_path) -> None:
    """A doctor run whose command failed before training holds only the doctor's
    report: compare names it, rather than failing on its missing steps."""
    write_run(tmp_path / "base", noisy(100, 0.1, seed=1))
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / "doctor.json").write_text(json.dumps({"schema_version": 5, "findings": []}))
    for args in ((failed, tmp_path / "base"), (tmp_path / "base", failed)):
        proc = run_cli("compare", *map(str, args))
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert f"the run {failed} recorded no training step" in proc.stderr
