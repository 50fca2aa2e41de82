"""`trainperf startup -- CMD`: markers, first optimizer step, shutdown, failures."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from _support import run_cli

TRAINS = textwrap.dedent(
    """
    import trainperf
    trainperf.mark("config_validated")
    import torch
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        model(torch.ones(2, 4)).sum().backward()
        opt.step()
    print("trained")
    """
)


@pytest.fixture
def script(tmp_path):
    def write(text: str):
        path = tmp_path / "job.py"
        path.write_text(text)
        return str(path)

    return write


def startup(*command: str, repeat: str = "1"):
    return run_cli("startup", "--repeat", repeat, "--json", "--", *command)


def test_markers_first_step_and_exit(script) -> None:
    proc = startup(sys.executable, script(TRAINS), repeat="2")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    markers = data["markers"]
    assert list(markers)[:2] == ["interpreter_ready", "config_validated"]
    assert markers["interpreter_ready"] < markers["config_validated"] < data["first_step_s"]
    assert data["first_step_s"] < data["wall_s"]
    assert 0 < data["exit_s"] < data["wall_s"]
    assert data["runs"] == 2
    assert data["returncode"] == 0


def test_a_script_without_an_optimizer_has_no_first_step(script) -> None:
    proc = startup(sys.executable, script("import json\nprint(json.dumps(1))\n"))
    data = json.loads(proc.stdout)
    assert data["first_step_s"] is None
    assert "interpreter_ready" in data["markers"]


def test_a_failing_command_reports_time_to_error_and_its_code(script) -> None:
    job = script("import trainperf\ntrainperf.mark('started')\nraise SystemExit(7)\n")
    proc = run_cli("startup", "--repeat", "3", "--", sys.executable, job)
    assert proc.returncode == 1
    assert "failed with exit code 7" in proc.stdout
    assert "started" in proc.stdout
    json_proc = startup(sys.executable, job)
    data = json.loads(json_proc.stdout)
    assert data["returncode"] == 7
    assert data["runs"] == 1  # it stops after the first failure


def test_the_environments_own_sitecustomize_still_runs(script, tmp_path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import builtins\nbuiltins.SITE_RAN = True\n")
    job = script("import builtins\nprint(getattr(builtins, 'SITE_RAN', False))\n")
    proc = run_cli(
        "startup",
        "--repeat",
        "1",
        "--json",
        "--",
        sys.executable,
        job,
        env={"PYTHONPATH": str(site)},
    )
    assert proc.returncode == 0, proc.stderr
    # the bootstrap chained to the shadowed sitecustomize: the job saw its effect
    assert json.loads(proc.stdout)["returncode"] == 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "give the command to time after --"),
        (["--", "no-such-command-here"], "cannot run no-such-command-here"),
        (["--repeat", "0", "--", "true"], "--repeat must be >= 1, got 0"),
    ],
)
def test_bad_input_is_one_line(args, fragment) -> None:
    proc = run_cli("startup", *args)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"trainperf: error: {proc.stderr.strip()[18:]}"]
    assert fragment in proc.stderr
