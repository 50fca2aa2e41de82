"""Measurement conditions from fake /proc and cgroup trees, exact to the tick, and one
real busy machine: two busy loops beside a monitored loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from _support import FakeSystem
from trainperf.monitoring.analyze import summarize
from trainperf.monitoring.conditions import SystemCounters, interval_conditions
from trainperf.monitoring.records import Period
from trainperf.monitoring.sampler import Sampler
from trainperf.resources._reader import SystemReader
from trainperf.resources.cgroup import read_cpu_stat

pytestmark = pytest.mark.verdict

TICK = os.sysconf("SC_CLK_TCK")


def proc_stat(system: FakeSystem, busy: tuple[int, int], idle: tuple[int, int], steal: int) -> None:
    # cpu2 is not this process's (affinity 0-1): its ticks must not count.
    lines = ["cpu  1 1 1 1 1 1 1 1 0 0"]
    for cpu in (0, 1):
        lines.append(f"cpu{cpu} {busy[cpu]} 0 0 {idle[cpu]} 0 0 0 {steal} 0 0")
    lines.append("cpu2 999999 0 0 0 0 0 0 0 0 0")
    system.write("proc/stat", "\n".join(lines) + "\n")


def pressure(system: FakeSystem, total_us: int) -> None:
    system.write(
        "proc/pressure/cpu",
        f"some avg10=1.00 avg60=0.50 avg300=0.10 total={total_us}\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    )


def v2_throttling(system: FakeSystem, periods: int, throttled: int, usec: int) -> None:
    box = system.cgroup_v2("/box")
    (box / "cpu.max").write_text("150000 100000\n")
    (box / "cpu.stat").write_text(
        f"usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods {periods}\n"
        f"nr_throttled {throttled}\nthrottled_usec {usec}\n"
    )


def test_counters_of_one_interval_are_exact(fake_system: FakeSystem) -> None:
    fake_system.cpus("0-1")
    fake_system.write("proc/loadavg", "3.50 2.00 1.00 3/200 4242\n")
    proc_stat(fake_system, busy=(0, 0), idle=(0, 0), steal=0)
    pressure(fake_system, 1_000_000)
    v2_throttling(fake_system, 100, 10, 50_000)
    counters = SystemCounters(fake_system.root)
    before = counters.read()
    # One second later: the two CPUs were busy 1.5 CPU-s, idle 0.3, stolen 0.2 in all.
    proc_stat(fake_system, busy=(TICK, TICK // 2), idle=(0, TICK * 3 // 10), steal=TICK // 10)
    pressure(fake_system, 1_400_000)
    v2_throttling(fake_system, 110, 16, 350_000)
    after = counters.read()

    got = interval_conditions(before, after, wall_s=1.0, process_cpu=0.5)

    assert got["other_cpu"] == pytest.approx(1.0)  # 1.5 busy - 0.5 of our own
    assert got["idle_cpu"] == pytest.approx(0.3)
    assert got["steal"] == pytest.approx(0.2 / 2.0)
    assert got["pressure"] == pytest.approx(0.4)
    assert got["throttled"] == pytest.approx(0.6)
    assert got["throttled_s"] == pytest.approx(0.3)
    assert got["load"] == 3.5


def test_v1_throttling_counters_in_nanoseconds(fake_system: FakeSystem) -> None:
    fake_system.write("proc/self/cgroup", "3:cpu,cpuacct:/docker/abc\n")
    fake_system.write(
        "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.stat",
        "nr_periods 40\nnr_throttled 30\nthrottled_time 2500000000\n",
    )
    stat = read_cpu_stat(SystemReader(fake_system.root))
    assert stat is not None
    assert (stat.periods, stat.throttled_periods, stat.throttled_s) == (40, 30, 2.5)


def test_no_quota_no_throttling(fake_system: FakeSystem) -> None:
    box = fake_system.cgroup_v2("/box")
    (box / "cpu.stat").write_text("usage_usec 5\nuser_usec 3\nsystem_usec 2\n")
    assert read_cpu_stat(SystemReader(fake_system.root)) is None


def test_missing_sources_read_as_unknown(fake_system: FakeSystem) -> None:
    counters = SystemCounters(fake_system.root)
    got = interval_conditions(counters.read(), counters.read(), wall_s=1.0, process_cpu=0.5)
    assert set(got.values()) == {None}


def test_a_container_hitting_its_quota_gets_the_cpu_throttled_finding(
    fake_system: FakeSystem,
) -> None:
    """The sampler reads a container-style tree while a run trains; the summary names
    the throttling with the quota and the fix."""
    fake_system.cpus("0-1")
    proc_stat(fake_system, busy=(0, 0), idle=(0, 0), steal=0)
    v2_throttling(fake_system, 0, 0, 0)
    now = [0.0]
    sampler = Sampler(clock=lambda: now[0], origin=0.0, counters=SystemCounters(fake_system.root))
    for second in range(1, 5):
        now[0] = float(second)
        proc_stat(fake_system, busy=(TICK * second, TICK * second // 2), idle=(0, 0), steal=0)
        v2_throttling(fake_system, 10 * second, 5 * second, 40_000 * second)
        sampler.sample()
    assert [s.throttled for s in sampler.samples] == [0.5] * 4
    periods = [
        Period("train", i, 0, i * 0.1, 0.1, 0.0, 8, first_of_epoch=i == 0) for i in range(40)
    ]

    summary = summarize(periods, host=sampler.samples, cpus=1.5, threads=2)

    (finding,) = [f for f in summary.findings if f.kind == "cpu-throttled"]
    assert finding.evidence["throttled_share"] == pytest.approx(0.5)
    assert "quota (1.5 CPUs)" in finding.fix
    assert summary.conditions is not None
    assert summary.conditions.throttled_share == pytest.approx(0.5)
    assert summary.to_json()["conditions"]["throttled_share"] == pytest.approx(0.5)


BUSY_LOOP = (
    "import os, sys\n"
    "os.sched_setaffinity(0, {int(c) for c in sys.argv[1].split(',')})\n"
    "while True: pass\n"
)

TRAIN = textwrap.dedent(
    """
    import time, torch
    from torch.utils.data import DataLoader, Dataset

    class Slow(Dataset):
        def __len__(self): return 400
        def __getitem__(self, i):
            time.sleep(0.01)  # a timer: the loader waits whatever the CPU is doing
            return torch.randn(8), torch.randn(1)

    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    end = time.perf_counter() + 6
    for x, y in DataLoader(Slow(), batch_size=4):
        opt.zero_grad(); torch.nn.functional.mse_loss(model(x), y).backward(); opt.step()
        if time.perf_counter() > end: break
    """
)


@pytest.mark.slow
def test_a_run_beside_two_busy_loops_is_reported_contended(tmp_path) -> None:
    cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP, cpus]) for _ in range(2)]
    try:
        (tmp_path / "train.py").write_text(TRAIN)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINPERF_")}
        env["TRAINPERF_HOME"] = str(tmp_path / "home")
        done = subprocess.run(
            [sys.executable, "-m", "trainperf", "run", "--json", "--", sys.executable, "train.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    assert done.returncode == 0, done.stderr
    # run --json leaves stdout to the command: the summary is the last line of stderr.
    report = json.loads(done.stderr.strip().splitlines()[-1])
    conditions = report["conditions"]
    assert conditions["contended"] is True
    assert conditions["other_cpu"] >= 1.0
    assert report["verdict"]["step"]["kind"] == "input-bound"  # the sleep still dominates
    assert report["verdict"]["step"]["confidence"] != "high"


def test_the_other_ranks_of_a_job_are_its_own_cpu_not_contention(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    import psutil

    # This test process plays the launcher: its children running the same program are
    # the other ranks of the job (one of them busy), another program is not.
    monkeypatch.setenv("WORLD_SIZE", "2")
    sampler = Sampler(clock=time.perf_counter, origin=0.0)
    assert sampler._launcher is not None  # the test runner's parent, outside a launcher
    sampler._launcher = psutil.Process()
    rank = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    other = subprocess.Popen(["sleep", "30"])
    try:
        sampler._siblings_cpu()  # the first reading starts the measurement
        time.sleep(1.0)
        busy = sampler._siblings_cpu()
        assert busy > 10  # a spinning rank: percent of one CPU, whatever the machine's load
        assert set(sampler._siblings) == {rank.pid}  # `sleep` is another program
    finally:
        rank.kill()
        other.kill()
        rank.wait()
        other.wait()
    monkeypatch.delenv("WORLD_SIZE")
    assert Sampler(clock=time.perf_counter, origin=0.0)._launcher is None
