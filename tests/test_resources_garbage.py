"""Garbage in the inspected files gives a warning naming the file and a safe fallback."""

from __future__ import annotations

import logging
import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _support import GIB, FakeSystem
from trainperf.errors import EnvironmentProbeError
from trainperf.resources import detect_resources


def test_garbage_cpu_max_warns_and_ignores_it(fake_system: FakeSystem, caplog) -> None:
    ctr = fake_system.cgroup_v2("/job")
    (ctr / "cpu.max").write_text("banana\n")
    (ctr.parent / "cpu.max").write_text("200000 100000\n")

    with caplog.at_level(logging.WARNING, logger="trainperf"):
        limits = detect_resources(root=fake_system.root, environ={})

    assert limits.cgroup_cpu_quota == 2.0  # the readable ancestor still counts
    assert len(limits.warnings) == 1
    assert "/sys/fs/cgroup/job/cpu.max" in limits.warnings[0]
    assert "'banana'" in limits.warnings[0]
    assert limits.warnings[0] in caplog.text


@pytest.mark.parametrize(
    ("relative", "content", "named"),
    [
        ("sys/fs/cgroup/job/memory.max", "lots\n", "memory.max"),
        ("sys/fs/cgroup/job/memory.max", "-5\n", "memory.max"),
        ("sys/fs/cgroup/job/cpu.max", "0 100000\n", "cpu.max"),
        ("sys/fs/cgroup/job/cpu.max", "100000 0\n", "cpu.max"),
        ("sys/fs/cgroup/job/cpu.max", "1 2 3\n", "cpu.max"),
        ("sys/fs/cgroup/job/memory.current", "\x00\x01\n", "memory.current"),
        ("proc/self/status", "Cpus_allowed_list:\tzero-three\n", "status"),
        ("proc/meminfo", "MemTotal: many kB\n", "meminfo"),
        ("sys/devices/system/cpu/online", "3-1\n", "online"),
    ],
)
def test_each_garbage_file_is_named(fake_system: FakeSystem, relative, content, named) -> None:
    ctr = fake_system.cgroup_v2("/job")
    (ctr / "memory.max").write_text(f"{GIB}\n")
    fake_system.write(relative, content)

    limits = detect_resources(root=fake_system.root, environ={})

    assert any(named in w for w in limits.warnings), limits.warnings
    assert limits.cpu_budget > 0
    assert limits.optimal_threads >= 1


def test_garbage_cgroup_line_is_skipped(fake_system: FakeSystem) -> None:
    fake_system.write("sys/fs/cgroup/cgroup.controllers", "cpu memory\n")
    fake_system.write("sys/fs/cgroup/job/cpu.max", "100000 100000\n")
    fake_system.write("proc/self/cgroup", "what is this\n0::/job\n")

    limits = detect_resources(root=fake_system.root, environ={})

    assert limits.cgroup_cpu_quota == 1.0
    assert any("/proc/self/cgroup" in w for w in limits.warnings)


def test_a_folder_where_a_file_should_be_is_a_warning(fake_system: FakeSystem) -> None:
    ctr = fake_system.cgroup_v2("/job")
    (ctr / "cpu.max").mkdir()

    limits = detect_resources(root=fake_system.root, environ={})

    assert limits.cgroup_cpu_quota is None
    assert any("cannot read /sys/fs/cgroup/job/cpu.max" in w for w in limits.warnings)


def test_bad_launcher_variable_is_a_warning(fake_system: FakeSystem) -> None:
    limits = detect_resources(root=fake_system.root, environ={"LOCAL_WORLD_SIZE": "two"})

    assert limits.local_world_size == 1
    assert any("LOCAL_WORLD_SIZE='two'" in w for w in limits.warnings)


@pytest.mark.parametrize("make", ["missing", "file", "empty"])
def test_unusable_root_is_an_error(tmp_path, make) -> None:
    root = tmp_path / "root"
    if make == "file":
        root.write_text("not a folder")
    elif make == "empty":
        root.mkdir()

    with pytest.raises(EnvironmentProbeError, match=r"root .* proc/"):
        detect_resources(root=root, environ={})


_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
_files = st.sampled_from(
    [
        "proc/self/cgroup",
        "proc/self/mountinfo",
        "proc/self/status",
        "proc/meminfo",
        "proc/cpuinfo",
        "sys/devices/system/cpu/online",
        "sys/fs/cgroup/job/cpu.max",
        "sys/fs/cgroup/job/memory.max",
        "sys/fs/cgroup/job/memory.high",
        "sys/fs/cgroup/job/memory.current",
        "sys/fs/cgroup/job/memory.stat",
        "sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        "sys/fs/cgroup/cpu/cpu.cfs_period_us",
        "sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(writes=st.lists(st.tuples(_files, _text), min_size=1, max_size=6))
def test_no_contents_crash_detection(tmp_path_factory, writes) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    system = FakeSystem(root)
    system.cgroup_v2("/job")
    for relative, text in writes:
        system.write(relative, text)

    limits = detect_resources(root=root, environ={})

    assert limits.cpu_budget > 0
    assert 1 <= limits.optimal_threads + limits.optimal_workers <= max(1, len(limits.cpu_affinity))
    shutil.rmtree(root)


@pytest.mark.parametrize(
    ("relative", "content", "named"),
    [
        ("sys/fs/cgroup/job/cpu.max", "9" * 400 + " 100000\n", "cpu.max"),
        ("proc/meminfo", "MemTotal: " + "9" * 320 + " kB\n", "meminfo"),
        ("proc/meminfo", "MemTotal: -5 kB\nMemAvailable: -1 kB\n", "meminfo"),
        ("proc/self/status", "Cpus_allowed_list:\t0-30000000\n", "status"),
    ],
)
def test_absurd_numbers_are_garbage_not_crashes(fake_system, relative, content, named) -> None:
    fake_system.cgroup_v2("/job")
    fake_system.write(relative, content)

    limits = detect_resources(root=fake_system.root, environ={})

    assert any(named in w for w in limits.warnings), limits.warnings
    assert limits.optimal_threads <= len(os.sched_getaffinity(0)) or limits.optimal_threads <= 4


@pytest.mark.parametrize(
    "env",
    [
        {"LOCAL_WORLD_SIZE": "²"},
        {"WORLD_SIZE": "٣"},
        {"SLURM_LOCALID": "0", "SLURM_NODEID": "²", "SLURM_TASKS_PER_NODE": "2(x2)"},
        {"CUDA_VISIBLE_DEVICES": "²"},
    ],
)
def test_unicode_digits_in_launcher_variables(fake_system, env) -> None:
    limits = detect_resources(root=fake_system.root, environ=env)
    assert limits.local_world_size >= 1


_env_value = st.one_of(_text, st.integers(min_value=-(10**30), max_value=10**30).map(str))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    env=st.dictionaries(
        st.sampled_from(
            [
                "LOCAL_WORLD_SIZE",
                "WORLD_SIZE",
                "LOCAL_RANK",
                "OMPI_COMM_WORLD_LOCAL_SIZE",
                "SLURM_LOCALID",
                "SLURM_NODEID",
                "SLURM_TASKS_PER_NODE",
                "SLURM_STEP_TASKS_PER_NODE",
                "SLURM_NTASKS_PER_NODE",
                "CUDA_VISIBLE_DEVICES",
            ]
        ),
        _env_value,
        max_size=5,
    ),
    big=st.integers(min_value=0, max_value=10**400).map(str),
)
def test_no_environment_or_huge_number_crashes_detection(fake_system, env, big) -> None:
    ctr = fake_system.root / "sys/fs/cgroup/job"
    fake_system.cgroup_v2("/job")
    (ctr / "memory.max").write_text(big)
    (ctr / "memory.current").write_text(big)
    (ctr / "cpu.max").write_text(f"{big} {big}")

    limits = detect_resources(root=fake_system.root, environ=env)

    assert limits.cpu_budget > 0
    assert limits.local_world_size >= 1
    assert limits.max_batch_bytes is None or limits.max_batch_bytes >= 0
