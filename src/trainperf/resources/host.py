"""What the host offers before any cgroup: CPUs this process may run on, RAM, /dev/shm."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainperf.resources._reader import MAX_COUNTER

if TYPE_CHECKING:
    from trainperf.resources._reader import SystemReader

__all__ = ["MAX_CPU_ID", "HostFacts", "parse_cpu_list", "read_host"]

# Linux's CONFIG_NR_CPUS tops out at 8192; a list naming ids far past that is garbage,
# and expanding it would take seconds and gigabytes.
MAX_CPU_ID = 1 << 16


@dataclass(frozen=True, kw_only=True)
class HostFacts:
    cpu_model: str
    host_cpus: int
    cpu_affinity: tuple[int, ...]
    memory_total_bytes: int | None
    memory_available_bytes: int | None
    shm_bytes: int | None
    shm_free_bytes: int | None


def read_host(reader: SystemReader) -> HostFacts:
    total, available = _meminfo(reader)
    shm_bytes, shm_free = _shm(reader)
    affinity = _affinity(reader)
    return HostFacts(
        cpu_model=_cpu_model(reader),
        host_cpus=max(_online_cpus(reader) or 0, len(affinity)),
        cpu_affinity=affinity,
        memory_total_bytes=total,
        memory_available_bytes=available,
        shm_bytes=shm_bytes,
        shm_free_bytes=shm_free,
    )


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """``"0-3,8,10-11"`` -> ``(0, 1, 2, 3, 8, 10, 11)``; raises ``ValueError`` on garbage."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        first, dash, last = part.partition("-")
        start, stop = int(first), int(last) if dash else int(first)
        if start < 0 or stop < start or stop >= MAX_CPU_ID:
            raise ValueError(part)
        cpus.update(range(start, stop + 1))
    return tuple(sorted(cpus))


def _affinity(reader: SystemReader) -> tuple[int, ...]:
    # /proc/self/status is what sched_getaffinity reports, and it can be faked in tests.
    path = reader.path("proc/self/status")
    for line in (reader.text(path) or "").splitlines():
        if line.startswith("Cpus_allowed_list:"):
            raw = line.partition(":")[2]
            try:
                return parse_cpu_list(raw)
            except ValueError:
                reader.garbage(path, raw, "a CPU list such as '0-3,6'", "asking the kernel")
            break
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def _online_cpus(reader: SystemReader) -> int | None:
    path = reader.path("sys/devices/system/cpu/online")
    raw = reader.text(path)
    if raw is None:
        return None
    try:
        return len(parse_cpu_list(raw))
    except ValueError:
        reader.garbage(path, raw, "a CPU list such as '0-3'", "using the affinity mask")
        return None


def _cpu_model(reader: SystemReader) -> str:
    keys = ("model name", "Model", "Hardware", "cpu model", "cpu")
    found: dict[str, str] = {}
    for line in (reader.text("proc/cpuinfo") or "").splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key in keys and key not in found and value.strip():
            found[key] = value.strip()
    for key in keys:
        if key in found:
            return found[key]
    return platform.processor() or platform.machine() or "unknown"


def _meminfo(reader: SystemReader) -> tuple[int | None, int | None]:
    path = reader.path("proc/meminfo")
    values: dict[str, int] = {}
    for line in (reader.text(path) or "").splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            number, _, unit = rest.strip().partition(" ")
            try:
                value = int(number) * (1024 if unit.strip() == "kB" else 1)
                if not 0 <= value < MAX_COUNTER:
                    raise ValueError
                values[key] = value
            except ValueError:
                reader.garbage(path, line, "'MemTotal: N kB'", "ignoring that line")
    return values.get("MemTotal"), values.get("MemAvailable")


def _shm(reader: SystemReader) -> tuple[int | None, int | None]:
    if not hasattr(os, "statvfs"):
        return None, None
    try:
        stat = os.statvfs(reader.path("dev/shm"))
    except OSError:
        return None, None
    return stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize
