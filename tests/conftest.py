"""Fixtures shared by the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from _support import GIB, FakeSystem


@pytest.fixture
def fake_system(tmp_path: Path) -> FakeSystem:
    """A 4-CPU host with 16 GiB (12 GiB available) and no cgroup limits yet."""
    system = FakeSystem(tmp_path / "root")
    system.cpus("0-3")
    system.write("sys/devices/system/cpu/online", "0-7\n")
    system.write("proc/cpuinfo", "processor\t: 0\nmodel name\t: Fake CPU @ 3.0GHz\n")
    system.meminfo(16 * GIB, 12 * GIB)
    return system
