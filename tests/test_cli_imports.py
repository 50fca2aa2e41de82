"""`trainperf imports` from the command line: output, gates, errors."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys

import pytest

from _support import run_cli, write_startup_project


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return write_startup_project(tmp_path_factory.mktemp("cli-imports"))


def imports(*args: str, project=None):
    env = {}
    if project is not None:
        env["PYTHONPATH"] = str(project[1])
    return run_cli("imports", *args, env=env)


def test_json_has_the_documented_keys(project) -> None:
    entry, _ = project
    proc = imports(str(entry), "--repeat", "1", "--json", project=project)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert {"total_s", "modules", "lines", "packages"} <= set(data)
    top = data["lines"][0]
    assert {"file", "line", "statement", "exclusive_s", "cumulative_s"} <= set(top)
    assert (top["line"], top["statement"]) == (2, "import heavy_a")
    assert {"name", "cumulative_s"} <= set(data["packages"][0])
    assert data["over_budget"] == []


def test_text_names_the_lines_and_writes_html(project, tmp_path) -> None:
    entry, _ = project
    page = tmp_path / "imports.html"
    proc = imports(str(entry), "--repeat", "1", "--html", str(page), project=project)
    assert proc.returncode == 0, proc.stderr
    assert "train.py:2  import heavy_a" in proc.stdout
    assert "deferred together" in proc.stdout
    html = page.read_text()
    assert html.startswith("<!doctype html>")
    assert "import heavy_a" in html
    assert "http" not in html.replace("http-equiv", "")  # self-contained: no links out


def test_budget_gate_exits_1_and_names_the_chain(project) -> None:
    entry, _ = project
    proc = imports(str(entry), "--repeat", "1", "--budget", "0.2", project=project)
    assert proc.returncode == 1
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("over budget:"))
    assert "> 0.2 s" in line
    assert "heaviest: " in line


def test_module_count_gate(project) -> None:
    entry, _ = project
    proc = imports(str(entry), "--repeat", "1", "--max-modules", "2", "--json", project=project)
    assert proc.returncode == 1
    (reason,) = json.loads(proc.stdout)["over_budget"]
    assert re.match(r"\d+ modules > 2; heaviest: ", reason)


def test_code_target() -> None:
    proc = imports("-c", "import json", "--repeat", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["target"] == "-c CODE"
    assert any(p["name"] == "json" for p in data["packages"])


def test_a_script_that_raises_is_a_finding(tmp_path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("import json\nraise RuntimeError('config missing')\n")
    proc = imports(str(script), "--repeat", "1")
    assert proc.returncode == 1
    assert "RuntimeError: config missing" in proc.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["no_such_module_xyz", "--repeat", "1"], "no module named 'no_such_module_xyz'"),
        (["missing/script.py"], "no such script: missing/script.py"),
        (["not a module"], "neither a script path nor a module name"),
        (["json", "-c", "pass"], "either TARGET or -c CODE"),
        (["json", "--repeat", "0"], "--repeat must be >= 1, got 0"),
        (["json", "--budget", "-1", "--repeat", "1"], "--budget must be > 0 seconds"),
        ([], "give a module name, a script path, or -c CODE"),
        (["-c", "def broken(:", "--repeat", "1"], "is not valid Python"),
    ],
)
def test_bad_input_is_one_line(args, fragment) -> None:
    proc = imports(*args)
    assert proc.returncode == 2, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert fragment in lines[0]


@pytest.mark.slow
@pytest.mark.timeout(600)  # six imports of Lightning and three traced: minutes on busy CPUs
def test_lightning_total_matches_plain_importtime() -> None:
    """The reported total against plain ``-X importtime``, timed in turns (A B, B A, A B)
    and compared pair by pair: a change in the machine's load between two timings
    falls on both sides of a pair alike, and the median pair ignores one that it split."""
    from trainperf.startup.importtime import parse_importtime

    def reported() -> float:
        proc = imports("lightning", "--repeat", "1", "--json")
        assert proc.returncode == 0, proc.stderr
        return float(json.loads(proc.stdout)["total_s"])

    def plain() -> float:
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import lightning"],
            capture_output=True,
            text=True,
            check=True,
            env={k: v for k, v in os.environ.items() if k != "PYTHONIMPORTTIME"},
        )
        tree = parse_importtime(done.stderr)
        return next(r for r in tree.roots if r.name == "lightning").cumulative_us / 1e6

    ratios = []  # plain / reported, one per round
    for round_ in range(3):
        if round_ % 2 == 0:
            ours = reported()
            theirs = plain()
        else:
            theirs = plain()
            ours = reported()
        ratios.append(theirs / ours)
    assert abs(1 - statistics.median(ratios)) < 0.25, ratios


SLEEPER = "import time\ntime.sleep({seconds})  # costs {seconds} s to import, whatever the CPU\n"


@pytest.fixture(scope="module")
def sleepers(tmp_path_factory):
    """An entry point whose free statements come first and whose dearest comes last."""
    base = tmp_path_factory.mktemp("verify")
    for name, seconds in (("slow_small", 0.05), ("slow_big", 0.3)):
        (base / f"{name}.py").write_text(SLEEPER.format(seconds=seconds))
    (base / "free.py").write_text("VALUE = 1\n")
    entry = base / "train.py"
    entry.write_text(
        "import free\n"  # 1: predicted ~0
        "import os\n"  # 2: predicted 0 (loaded by the interpreter's own start-up)
        "import slow_small\n"  # 3
        "import slow_big\n"  # 4
        "\nif __name__ == '__main__':\n    pass\n"
    )
    return entry


def verify(entry, *args: str):
    env = {"PYTHONPATH": str(entry.parent)}
    return run_cli("imports", str(entry), "--repeat", "1", "--verify", *args, env=env)


@pytest.mark.parametrize(("asked", "expected"), [(1, [4]), (4, [4, 3])])
def test_verify_takes_the_largest_predicted_savings_and_never_a_free_line(
    sleepers, asked, expected
) -> None:
    proc = verify(sleepers, str(asked), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    predicted = {line["line"]: line["exclusive_s"] for line in data["lines"]}
    assert predicted[4] > predicted[3] >= 0.01 > max(predicted.get(1, 0.0), predicted.get(2, 0.0))
    verified = [v["line"] for v in data["verified"]]
    assert verified == expected  # largest predicted saving first; lines 1 and 2 never
    assert [v["predicted_s"] for v in data["verified"]] == [predicted[n] for n in expected]


def test_verify_says_why_fewer_lines_were_re_timed(sleepers) -> None:
    proc = verify(sleepers, "4")
    assert proc.returncode == 0, proc.stderr
    verified = proc.stdout.split("verified (deferring the statement, measured):", 1)[1]
    assert "train.py:4: predicted" in verified
    assert "train.py:1:" not in verified
    assert "--verify 4: 2 statement(s) re-timed; the others are predicted to save under" in (
        proc.stdout
    )
