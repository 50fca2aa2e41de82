"""Measurement conditions: was the machine busy while the run was measured?

A step time means little on a machine where other jobs took the CPUs, and a
container that keeps hitting its CPU quota is a cause of its own. The sampler reads
these counters every interval (:class:`SystemCounters`) and keeps, per sample, what
they say about that interval (:func:`interval_conditions`); :func:`summarize_conditions`
turns the samples of a run into its ``conditions``.

Sources, all read under an injectable root (a fake tree in tests):

* ``/proc/stat``: per-CPU busy, idle and steal time of the CPUs this process may run
  on (its affinity). Busy time not spent by the run's own process tree (psutil) is
  ``other_cpu``, in CPUs; steal is time a hypervisor gave to another guest.
* ``/proc/pressure/cpu`` (PSI, Linux 4.20+): ``some total=`` microseconds in which at
  least one runnable task waited for a CPU; ``pressure`` is its share of the interval.
  It counts the run's own threads too, so it is reported, not used to decide.
* ``/proc/loadavg``: the 1-minute load, the fallback where ``/proc/stat`` is missing.
* ``cpu.stat`` of the cgroup (v1 and v2, see :mod:`trainperf.resources.cgroup`):
  periods throttled out of periods, and the time held back.
* psutil: the process tree's involuntary context switches (preemptions).

Rules (thresholds are module constants):

* an interval is **contended** when CPU steal is at least ``STEAL_SHARE``, or other
  processes used at least ``max(OTHER_CPU_MIN, OTHER_CPU_SHARE x budget)`` CPUs of the
  process's CPUs while less than that much was left idle (a busy neighbour that leaves
  CPUs idle takes nothing from the run); without ``/proc/stat``, when the load minus
  the run's own CPU use is that high and the load is above the budget;
* a run is contended when at least ``CONTENDED_SAMPLES`` of its samples are.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trainperf._json import JsonObject
    from trainperf.monitoring.sampler import Sample
    from trainperf.resources._reader import SystemReader
    from trainperf.resources.cgroup import CgroupVersion

__all__ = [
    "CONTENDED_SAMPLES",
    "Conditions",
    "Counters",
    "SystemCounters",
    "contended_sample",
    "interval_conditions",
    "summarize_conditions",
]

STEAL_SHARE = 0.1
OTHER_CPU_MIN = 0.5
OTHER_CPU_SHARE = 0.25
CONTENDED_SAMPLES = 0.25
THROTTLED_SHARE = 0.1  # periods throttled: the cpu-throttled finding (analyze.py)


@dataclass(frozen=True)
class Counters:
    """Cumulative system counters at one moment; ``None`` where the source is missing."""

    busy_s: float | None  # CPU time spent working on this process's CPUs
    idle_s: float | None
    steal_s: float | None
    total_s: float | None
    pressure_us: int | None  # PSI "some" total
    load1: float | None
    periods: int | None  # cgroup CFS periods
    throttled_periods: int | None
    throttled_s: float | None


class SystemCounters:
    """Reads :class:`Counters` under ``root`` (``/`` on a real machine)."""

    def __init__(self, root: Path | None = None, *, cpus: Sequence[int] | None = None) -> None:
        from trainperf.resources._reader import SystemReader
        from trainperf.resources.cgroup import cpu_stat_files
        from trainperf.resources.host import read_host

        self.reader = SystemReader(root or Path("/"))
        self.cpus = frozenset(read_host(self.reader).cpu_affinity if cpus is None else cpus)
        self._stat_files: list[tuple[Path, CgroupVersion]] = cpu_stat_files(self.reader)
        try:
            self._tick = float(os.sysconf("SC_CLK_TCK"))
        except (ValueError, OSError, AttributeError):
            self._tick = 100.0

    def read(self) -> Counters:
        from trainperf.resources.cgroup import read_cpu_stat

        busy, idle, steal, total = self._cpu_times(self.reader)
        throttling = read_cpu_stat(self.reader, self._stat_files) if self._stat_files else None
        return Counters(
            busy_s=busy,
            idle_s=idle,
            steal_s=steal,
            total_s=total,
            pressure_us=_pressure(self.reader),
            load1=_load(self.reader),
            periods=None if throttling is None else throttling.periods,
            throttled_periods=None if throttling is None else throttling.throttled_periods,
            throttled_s=None if throttling is None else throttling.throttled_s,
        )

    def _cpu_times(
        self, reader: SystemReader
    ) -> tuple[float | None, float | None, float | None, float | None]:
        # "cpuN user nice system idle iowait irq softirq steal guest guest_nice", in ticks;
        # guest time is already counted in user.
        busy = idle = steal = total = 0
        seen = False
        for line in (reader.text("proc/stat") or "").splitlines():
            name, _, rest = line.partition(" ")
            if not name.startswith("cpu") or not name[3:].isdecimal():
                continue
            if int(name[3:]) not in self.cpus:
                continue
            fields = rest.split()
            if len(fields) < 8 or not all(f.isdecimal() for f in fields[:8]):
                continue
            user, nice, system, idle_t, iowait, irq, softirq, steal_t = map(int, fields[:8])
            busy += user + nice + system + irq + softirq
            idle += idle_t + iowait
            steal += steal_t
            total += user + nice + system + idle_t + iowait + irq + softirq + steal_t
            seen = True
        if not seen:
            return None, None, None, None
        return busy / self._tick, idle / self._tick, steal / self._tick, total / self._tick


def _pressure(reader: SystemReader) -> int | None:
    for line in (reader.text("proc/pressure/cpu") or "").splitlines():
        if line.startswith("some "):
            for field in line.split():
                key, _, value = field.partition("=")
                if key == "total" and value.isdecimal():
                    return int(value)
    return None


def _load(reader: SystemReader) -> float | None:
    raw = (reader.text("proc/loadavg") or "").split()
    try:
        return float(raw[0]) if raw else None
    except ValueError:
        return None


def _delta(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or after < before:
        return None  # missing, or a counter that was reset
    return after - before


def interval_conditions(
    before: Counters, after: Counters, *, wall_s: float, process_cpu: float
) -> dict[str, float | None]:
    """What the counters say about one interval of ``wall_s`` seconds, in which the
    run's process tree used ``process_cpu`` CPUs. Keys are :class:`Sample` fields:
    ``other_cpu`` and ``idle_cpu`` in CPUs, ``pressure``, ``steal`` and ``throttled``
    as shares (0-1), ``throttled_s`` in seconds, ``load`` (1-minute load average)."""
    out: dict[str, float | None] = {
        "other_cpu": None,
        "idle_cpu": None,
        "pressure": None,
        "steal": None,
        "throttled": None,
        "throttled_s": None,
        "load": after.load1,
    }
    if wall_s <= 0:
        return out
    busy, idle = _delta(before.busy_s, after.busy_s), _delta(before.idle_s, after.idle_s)
    if busy is not None and idle is not None:
        out["other_cpu"] = max(0.0, busy / wall_s - process_cpu)
        out["idle_cpu"] = idle / wall_s
    steal, total = _delta(before.steal_s, after.steal_s), _delta(before.total_s, after.total_s)
    if steal is not None and total:
        out["steal"] = steal / total
    stalled = _delta(before.pressure_us, after.pressure_us)
    if stalled is not None:
        out["pressure"] = min(1.0, stalled / 1e6 / wall_s)
    periods = _delta(before.periods, after.periods)
    throttled = _delta(before.throttled_periods, after.throttled_periods)
    if periods and throttled is not None:
        out["throttled"] = min(1.0, throttled / periods)
        out["throttled_s"] = _delta(before.throttled_s, after.throttled_s)
    elif periods == 0:
        out["throttled"], out["throttled_s"] = 0.0, 0.0
    return out


def contended_sample(sample: Sample, cpus: float) -> bool:
    """Was the interval ending at ``sample`` contended (see the module's rules)?"""
    if sample.steal is not None and sample.steal >= STEAL_SHARE:
        return True
    enough = max(OTHER_CPU_MIN, OTHER_CPU_SHARE * cpus)
    if sample.other_cpu is not None:
        return sample.other_cpu >= enough and (sample.idle_cpu or 0.0) < enough
    if sample.load is not None:
        own = (sample.cpu_percent + sample.children_cpu_percent) / 100
        return sample.load > cpus and sample.load - own >= enough
    return False


@dataclass(frozen=True)
class Conditions:
    """A run's measurement conditions: medians over its samples unless said otherwise."""

    contended: bool
    samples: int
    contended_samples: int
    cpu_budget: float
    other_cpu: float | None  # CPUs' worth used by other processes on the run's CPUs
    idle_cpu: float | None
    process_cpu: float | None  # CPUs' worth used by the run's process and its workers
    pressure: float | None  # share of time a runnable task waited for a CPU (PSI some)
    load: float | None  # 1-minute load average
    steal_share: float | None
    throttled_share: float | None  # CFS periods throttled, over all the run's periods
    throttled_s: float | None  # time held back by the quota, summed
    involuntary_switches_per_s: float | None  # preemptions of the run's processes

    @property
    def came_and_went(self) -> bool:
        """Some samples contended, others quiet."""
        return 0 < self.contended_samples < self.samples

    def describe(self) -> str:
        """One line: how busy the machine was (``"other processes used 1.9 of 2 CPUs"``)."""
        parts = []
        if self.other_cpu is not None:
            parts.append(f"other processes used {self.other_cpu:.1f} of {self.cpu_budget:g} CPUs")
        elif self.load is not None:
            parts.append(f"load {self.load:.1f} on {self.cpu_budget:g} CPUs")
        if self.pressure is not None:
            # PSI counts every task waiting for a CPU, the run's own threads included.
            parts.append(f"CPU pressure {self.pressure:.0%} (this run's threads included)")
        if self.steal_share is not None and self.steal_share >= 0.01:
            parts.append(f"steal {self.steal_share:.0%}")
        if self.throttled_share is not None and self.throttled_share >= 0.01:
            parts.append(f"{self.throttled_share:.0%} of quota periods throttled")
        if self.samples and self.contended_samples:
            parts.append(f"contended in {self.contended_samples} of {self.samples} samples")
        return "; ".join(parts) or "no system counters"

    def to_json(self) -> JsonObject:
        def rounded(value: float | None, digits: int = 3) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "contended": self.contended,
            "samples": self.samples,
            "contended_samples": self.contended_samples,
            "cpu_budget": self.cpu_budget,
            "other_cpu": rounded(self.other_cpu),
            "idle_cpu": rounded(self.idle_cpu),
            "process_cpu": rounded(self.process_cpu),
            "pressure": rounded(self.pressure),
            "load": rounded(self.load, 2),
            "steal_share": rounded(self.steal_share),
            "throttled_share": rounded(self.throttled_share),
            "throttled_s": rounded(self.throttled_s),
            "involuntary_switches_per_s": rounded(self.involuntary_switches_per_s, 1),
            "summary": self.describe(),
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> Conditions:
        from trainperf._json import opt_float, req_float, req_int

        return cls(
            contended=data.get("contended") is True,
            samples=req_int(data, "samples"),
            contended_samples=req_int(data, "contended_samples"),
            cpu_budget=req_float(data, "cpu_budget"),
            other_cpu=opt_float(data, "other_cpu"),
            idle_cpu=opt_float(data, "idle_cpu"),
            process_cpu=opt_float(data, "process_cpu"),
            pressure=opt_float(data, "pressure"),
            load=opt_float(data, "load"),
            steal_share=opt_float(data, "steal_share"),
            throttled_share=opt_float(data, "throttled_share"),
            throttled_s=opt_float(data, "throttled_s"),
            involuntary_switches_per_s=opt_float(data, "involuntary_switches_per_s"),
        )


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def summarize_conditions(samples: Sequence[Sample], *, cpus: float) -> Conditions:
    """The conditions of the intervals ``samples`` describe (those of the run's steps);
    ``cpus`` is the run's CPU budget."""
    flags = [contended_sample(s, cpus) for s in samples]
    throttled = [s for s in samples if s.throttled is not None]
    held = [s.throttled_s for s in throttled if s.throttled_s is not None]
    return Conditions(
        contended=bool(samples) and sum(flags) >= max(1.0, CONTENDED_SAMPLES * len(samples)),
        samples=len(samples),
        contended_samples=sum(flags),
        cpu_budget=cpus,
        other_cpu=_median([s.other_cpu for s in samples]),
        idle_cpu=_median([s.idle_cpu for s in samples]),
        process_cpu=_median([(s.cpu_percent + s.children_cpu_percent) / 100 for s in samples])
        if samples
        else None,
        pressure=_median([s.pressure for s in samples]),
        load=_median([s.load for s in samples]),
        steal_share=_median([s.steal for s in samples]),
        throttled_share=(
            statistics.fmean(s.throttled for s in throttled if s.throttled is not None)
            if throttled
            else None
        ),
        throttled_s=sum(held) if held else None,
        involuntary_switches_per_s=_median([s.involuntary_switches for s in samples]),
    )
