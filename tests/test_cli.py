"""The command line, run as users run it: a fresh interpreter, real exit codes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _support import GIB, FakeSystem, run_cli
from trainperf import __version__
from trainperf.cli import main

RESOURCES_KEYS = {
    "cpu_budget",
    "cpu_affinity",
    "cgroup_cpu_quota",
    "memory_limit_bytes",
    "memory_available_bytes",
    "shm_bytes",
    "gpus",
    "local_world_size",
    "optimal_workers",
    "optimal_threads",
}


def assert_one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("trainperf: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in proc.stderr


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"trainperf {__version__}"


def test_help_lists_only_working_commands() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    working = ("doctor", "imports", "lint-imports", "startup", "run", "report", "compare")
    for command in (*working, "calibrate", "cache", "resources"):
        assert command in proc.stdout


def test_no_command_prints_one_usage_line_and_exits_2() -> None:
    proc = run_cli()
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()  # one short line, not the whole help
    assert line.startswith("usage: trainperf COMMAND [options]; commands: doctor, imports, ")
    for command in ("run", "report", "resources"):
        assert f" {command}," in line or f" {command};" in line
    assert line.endswith("'trainperf --help' for details")


def test_unknown_command_suggests_the_closest() -> None:
    assert_one_line_error(run_cli("resorces"), "unknown command 'resorces'", "'resources'")


def test_unknown_flag_names_it_and_suggests() -> None:
    assert_one_line_error(
        run_cli("resources", "--jsn"), "--jsn", "did you mean '--json'", "resources --help"
    )


def test_command_option_before_the_command_says_where_it_goes() -> None:
    assert_one_line_error(run_cli("-v", "resources"), "-v belongs after the command")


def test_output_the_terminal_cannot_encode_is_escaped(fake_system: FakeSystem) -> None:
    fake_system.write("proc/cpuinfo", "model name\t: Prozessor \u00e9\u2122\n")
    proc = run_cli("resources", "--root", str(fake_system.root), env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stderr
    assert "Prozessor \\xe9\\u2122" in proc.stdout


def test_unknown_top_level_flag() -> None:
    assert_one_line_error(run_cli("--frobnicate"), "--frobnicate")


def test_resources_on_this_machine() -> None:
    proc = run_cli("resources", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) >= RESOURCES_KEYS
    assert 0 < data["cpu_budget"] <= len(os.sched_getaffinity(0))
    assert data["cpu_affinity"] == sorted(os.sched_getaffinity(0))
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < data["memory_available_bytes"] <= total
    assert data["local_world_size"] == 1


def test_resources_reads_a_fake_tree_exactly(fake_system: FakeSystem) -> None:
    ctr = fake_system.cgroup_v2("/kubepods/burstable/pod7/ctr")
    (ctr / "cpu.max").write_text("150000 100000\n")
    (ctr.parent / "memory.max").write_text(f"{2 * GIB}\n")

    proc = run_cli("resources", "--json", "--root", str(fake_system.root))

    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["cpu_budget"] == 1.5
    assert data["cgroup_cpu_quota"] == 1.5
    assert data["memory_limit_bytes"] == 2 * GIB
    assert data["optimal_threads"] == 1
    assert data["optimal_workers"] == 0


def test_resources_text_mentions_the_limits(fake_system: FakeSystem) -> None:
    ctr = fake_system.cgroup_v2("/job")
    (ctr / "cpu.max").write_text("150000 100000\n")
    (ctr / "memory.max").write_text(f"{2 * GIB}\n")
    (ctr / "memory.high").write_text("garbage\n")

    proc = run_cli("resources", "--root", str(fake_system.root))

    assert proc.returncode == 0
    assert "budget 1.5 of 8 host CPUs" in proc.stdout
    assert "cgroup quota 1.5" in proc.stdout
    assert "cgroup limit 2.0 GiB" in proc.stdout
    assert "memory.high" not in proc.stdout
    assert "trainperf: WARNING: ignoring /sys/fs/cgroup/job/memory.high" in proc.stderr


def test_unreadable_root_is_one_line(tmp_path) -> None:
    missing = tmp_path / "nope"
    assert_one_line_error(run_cli("resources", "--root", str(missing)), str(missing), "proc/")


def test_bad_environment_variable_is_one_line() -> None:
    assert_one_line_error(
        run_cli("resources", env={"TRAINPERF_CPUS": "lots"}), "TRAINPERF_CPUS", "'lots'"
    )


def test_verbose_logs_the_key_value_line(fake_system: FakeSystem) -> None:
    proc = run_cli("resources", "-v", "--root", str(fake_system.root))
    assert "INFO: resource_limits cpu_budget=4 " in proc.stderr


def test_main_restores_logging_state(fake_system: FakeSystem, capsys) -> None:
    package = logging.getLogger("trainperf")
    before = (list(package.handlers), package.level, package.propagate)

    assert main(["resources", "-v", "--root", str(fake_system.root), "--json"]) == 0

    assert (list(package.handlers), package.level, package.propagate) == before
    assert json.loads(capsys.readouterr().out)["cpu_budget"] == 4.0


def test_console_script_and_module_agree(fake_system: FakeSystem) -> None:
    script = Path(sys.executable).parent / "trainperf"
    if not script.exists():
        pytest.skip("the trainperf console script is not installed beside this interpreter")
    argv = ["resources", "--json", "--root", str(fake_system.root)]
    from_script = subprocess.run([script, *argv], capture_output=True, text=True, check=True)
    from_module = run_cli(*argv)
    assert from_module.returncode == 0
    assert json.loads(from_script.stdout) == json.loads(from_module.stdout)
