"""cgroup v1 / v2 / nested / hybrid detection on fake /proc + /sys trees."""

from __future__ import annotations

import os

import pytest

from _support import GIB, FakeSystem
from trainperf.resources import detect_resources


def detect(system: FakeSystem, **env: str):
    return detect_resources(root=system.root, environ=env)


def test_v2_quota_and_memory_limit(fake_system: FakeSystem) -> None:
    ctr = fake_system.cgroup_v2("/kubepods/pod1/ctr")
    (ctr / "cpu.max").write_text("150000 100000\n")
    (ctr / "memory.max").write_text(f"{2 * GIB}\n")

    limits = detect(fake_system)

    assert limits.cgroup_version == "v2"
    assert limits.cgroup_cpu_quota == 1.5
    assert limits.cpu_budget == 1.5
    assert limits.memory_limit_bytes == 2 * GIB
    assert limits.warnings == ()


def test_nested_v2_takes_the_tightest_ancestor(fake_system: FakeSystem) -> None:
    ctr = fake_system.cgroup_v2("/kubepods/pod1/ctr")
    pod = ctr.parent
    (ctr / "cpu.max").write_text("max 100000\n")
    (pod / "cpu.max").write_text("50000 100000\n")  # the pod allows half a CPU
    (pod.parent / "cpu.max").write_text("300000 100000\n")
    (ctr / "memory.max").write_text(f"{4 * GIB}\n")
    (pod / "memory.max").write_text(f"{3 * GIB}\n")
    (pod / "memory.high").write_text(f"{1 * GIB}\n")  # throttling starts here

    limits = detect(fake_system)

    assert limits.cgroup_cpu_quota == 0.5
    assert limits.cpu_budget == 0.5
    assert limits.memory_limit_bytes == 1 * GIB


def test_memory_headroom_discounts_reclaimable_page_cache(fake_system: FakeSystem) -> None:
    ctr = fake_system.cgroup_v2("/job")
    (ctr / "memory.max").write_text(f"{2 * GIB}\n")
    (ctr / "memory.current").write_text(f"{1536 << 20}\n")
    (ctr / "memory.stat").write_text(f"anon 1\ninactive_file {512 << 20}\nactive_file 7\n")

    limits = detect(fake_system)

    # 2 GiB - (1.5 GiB used - 0.5 GiB inactive cache) = 1 GiB, below the host's 12 GiB
    assert limits.memory_available_bytes == 1 * GIB


def test_host_memory_binds_when_cgroup_is_looser(fake_system: FakeSystem) -> None:
    ctr = fake_system.cgroup_v2("/job")
    (ctr / "memory.max").write_text(f"{64 * GIB}\n")
    (ctr / "memory.current").write_text("0\n")

    limits = detect(fake_system)

    assert limits.memory_limit_bytes == 64 * GIB
    assert limits.memory_available_bytes == 12 * GIB
    assert limits.memory_total_bytes == 16 * GIB


def test_unlimited_v2(fake_system: FakeSystem) -> None:
    ctr = fake_system.cgroup_v2("/user.slice")
    (ctr / "cpu.max").write_text("max 100000\n")
    (ctr / "memory.max").write_text("max\n")
    (ctr / "memory.high").write_text("max\n")

    limits = detect(fake_system)

    assert limits.cgroup_version == "v2"
    assert limits.cgroup_cpu_quota is None
    assert limits.memory_limit_bytes is None
    assert limits.cpu_budget == 4.0  # the affinity mask, 0-3
    assert limits.host_cpus == 8


def test_v1_quota_and_limit(fake_system: FakeSystem) -> None:
    fake_system.write(
        "proc/self/cgroup", "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n"
    )
    cpu = fake_system.root / "sys/fs/cgroup/cpu,cpuacct/docker/abc"
    mem = fake_system.root / "sys/fs/cgroup/memory/docker/abc"
    fake_system.write(str(cpu.relative_to(fake_system.root) / "cpu.cfs_quota_us"), "250000\n")
    fake_system.write(str(cpu.relative_to(fake_system.root) / "cpu.cfs_period_us"), "100000\n")
    fake_system.write(str(mem.relative_to(fake_system.root) / "memory.limit_in_bytes"), f"{GIB}\n")
    fake_system.write(
        str(mem.relative_to(fake_system.root) / "memory.usage_in_bytes"), f"{256 << 20}\n"
    )
    fake_system.write(
        str(mem.relative_to(fake_system.root) / "memory.stat"), "cache 5\ntotal_inactive_file 0\n"
    )

    limits = detect(fake_system)

    assert limits.cgroup_version == "v1"
    assert limits.cgroup_cpu_quota == 2.5
    assert limits.cpu_budget == 2.5
    assert limits.memory_limit_bytes == GIB
    assert limits.memory_available_bytes == GIB - (256 << 20)


def test_v1_unlimited_values(fake_system: FakeSystem) -> None:
    fake_system.write("proc/self/cgroup", "4:memory:/\n3:cpu,cpuacct:/\n")
    fake_system.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    fake_system.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    fake_system.write("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")

    limits = detect(fake_system)

    assert limits.cgroup_version == "v1"
    assert limits.cgroup_cpu_quota is None
    assert limits.memory_limit_bytes is None
    assert limits.warnings == ()


def test_v1_container_mount_root_maps_to_mount_point(fake_system: FakeSystem) -> None:
    # Docker without a cgroup namespace: /proc/self/cgroup shows the host path, but
    # only that sub-tree is mounted, at the usual place.
    fake_system.write("proc/self/cgroup", "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n")
    fake_system.write(
        "proc/self/mountinfo",
        "30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
        "31 30 0:27 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup "
        "rw,cpu,cpuacct\n"
        "32 30 0:28 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
    )
    fake_system.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "150000\n")
    fake_system.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    fake_system.write("sys/fs/cgroup/memory/memory.limit_in_bytes", f"{2 * GIB}\n")

    limits = detect(fake_system)

    assert limits.cgroup_cpu_quota == 1.5
    assert limits.memory_limit_bytes == 2 * GIB


def test_v2_mounted_elsewhere_is_found_through_mountinfo(fake_system: FakeSystem) -> None:
    fake_system.write("proc/self/cgroup", "0::/jobs/7\n")
    fake_system.write(
        "proc/self/mountinfo",
        "40 1 0:38 / /mnt/cg\\040two rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n",
    )
    fake_system.write("mnt/cg two/jobs/7/cpu.max", "100000 100000\n")

    limits = detect(fake_system)

    assert limits.cgroup_version == "v2"
    assert limits.cgroup_cpu_quota == 1.0


def test_hybrid_reads_v1_controllers(fake_system: FakeSystem) -> None:
    fake_system.write("proc/self/cgroup", "3:cpu:/\n2:memory:/svc\n0::/\n")
    fake_system.write("sys/fs/cgroup/unified/cgroup.controllers", "\n")
    fake_system.write("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "300000\n")
    fake_system.write("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n")
    fake_system.write("sys/fs/cgroup/memory/svc/memory.limit_in_bytes", "9223372036854771712\n")
    fake_system.write("sys/fs/cgroup/memory/memory.limit_in_bytes", f"{5 * GIB}\n")

    limits = detect(fake_system)

    assert limits.cgroup_version == "hybrid"
    assert limits.cgroup_cpu_quota == 3.0
    assert limits.cpu_budget == 3.0
    assert limits.memory_limit_bytes == 5 * GIB  # bound by the parent of /svc


def test_no_cgroup_files_at_all(fake_system: FakeSystem) -> None:
    limits = detect(fake_system)

    assert limits.cgroup_version is None
    assert limits.cgroup_cpu_quota is None
    assert limits.memory_limit_bytes is None
    assert limits.cpu_budget == 4.0
    assert limits.memory_available_bytes == 12 * GIB
    assert limits.warnings == ()


def test_missing_proc_files_fall_back(tmp_path) -> None:
    root = tmp_path / "bare"
    (root / "sys").mkdir(parents=True)

    limits = detect_resources(root=root, environ={})

    assert limits.cpu_budget == len(os.sched_getaffinity(0))  # the kernel's own mask
    assert limits.memory_total_bytes is None
    assert limits.memory_available_bytes is None
    assert limits.max_batch_bytes is None


def test_trainperf_cpus_only_lowers_the_budget(fake_system: FakeSystem) -> None:
    ctr = fake_system.cgroup_v2("/job")
    (ctr / "cpu.max").write_text("200000 100000\n")

    assert detect(fake_system, TRAINPERF_CPUS="1.25").cpu_budget == 1.25
    assert detect(fake_system, TRAINPERF_CPUS="64").cpu_budget == 2.0
    assert detect(fake_system, TRAINPERF_CPUS="64").cpu_override == 64.0


def test_headroom_is_the_smallest_over_ancestors(fake_system: FakeSystem) -> None:
    ctr = fake_system.cgroup_v2("/pod/ctr")
    (ctr / "memory.max").write_text(f"{4 * GIB}\n")
    (ctr / "memory.current").write_text(f"{1 * GIB}\n")  # 3 GiB left here
    (ctr.parent / "memory.max").write_text(f"{3 * GIB}\n")
    (ctr.parent / "memory.current").write_text(f"{2560 << 20}\n")  # 0.5 GiB left here

    limits = detect(fake_system)

    assert limits.memory_limit_bytes == 3 * GIB
    assert limits.memory_available_bytes == 512 << 20


def test_a_limit_without_usage_still_caps_available_memory(fake_system: FakeSystem) -> None:
    ctr = fake_system.cgroup_v2("/job")
    (ctr / "memory.max").write_text(f"{2 * GIB}\n")  # no memory.current at all

    assert detect(fake_system).memory_available_bytes == 2 * GIB


def test_v1_headroom_discounts_total_inactive_file(fake_system: FakeSystem) -> None:
    fake_system.write("proc/self/cgroup", "4:memory:/\n")
    fake_system.write("sys/fs/cgroup/memory/memory.limit_in_bytes", f"{2 * GIB}\n")
    fake_system.write("sys/fs/cgroup/memory/memory.usage_in_bytes", f"{1 * GIB}\n")
    fake_system.write("sys/fs/cgroup/memory/memory.stat", f"total_inactive_file {256 << 20}\n")

    assert detect(fake_system).memory_available_bytes == 2 * GIB - (768 << 20)


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "25000"}, 2.0),
        ({"cpu.cfs_quota_us": "50000"}, 0.5),  # period missing: the kernel default 100 ms
    ],
)
def test_v1_period(fake_system: FakeSystem, files, quota) -> None:
    fake_system.write("proc/self/cgroup", "3:cpu:/\n")
    for name, value in files.items():
        fake_system.write(f"sys/fs/cgroup/cpu/{name}", value + "\n")

    assert detect(fake_system).cgroup_cpu_quota == quota


def test_v2_cpu_max_without_period_uses_the_default(fake_system: FakeSystem) -> None:
    ctr = fake_system.cgroup_v2("/job")
    (ctr / "cpu.max").write_text("50000\n")

    assert detect(fake_system).cgroup_cpu_quota == 0.5


def test_sub_tree_mount_maps_the_process_path_below_it(fake_system: FakeSystem) -> None:
    # The mount shows /kubepods/pod1 at /sys/fs/cgroup; the process is in its child ctr,
    # whose own quota is tighter than the pod's.
    fake_system.write("proc/self/cgroup", "0::/kubepods/pod1/ctr\n")
    fake_system.write(
        "proc/self/mountinfo",
        "30 25 0:26 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
    )
    fake_system.write("sys/fs/cgroup/cpu.max", "200000 100000\n")
    fake_system.write("sys/fs/cgroup/ctr/cpu.max", "50000 100000\n")

    assert detect(fake_system).cgroup_cpu_quota == 0.5


def test_mountinfo_escapes_are_decoded(fake_system: FakeSystem) -> None:
    fake_system.write("proc/self/cgroup", "0::/\n")
    fake_system.write(
        "proc/self/mountinfo", "40 1 0:38 / /mnt/a\\134b\\011c rw - cgroup2 cgroup2 rw\n"
    )
    fake_system.write("mnt/a\\b\tc/cpu.max", "300000 100000\n")

    assert detect(fake_system).cgroup_cpu_quota == 3.0


def test_a_path_outside_the_namespace_never_climbs_out_of_the_mount(fake_system) -> None:
    fake_system.cgroup_v2("/")
    fake_system.write("proc/self/cgroup", "0::/../../../etc\n")
    fake_system.write("etc/cpu.max", "50000 100000\n")  # must not be read

    limits = detect(fake_system)

    assert limits.cgroup_cpu_quota is None
    assert any("outside the visible cgroup tree" in w for w in limits.warnings)
