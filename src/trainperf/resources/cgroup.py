"""CPU and memory limits from Linux control groups (v1, v2, and hybrid machines).

The process's own cgroup is found through ``/proc/self/cgroup`` and mapped onto the
mounted hierarchy through ``/proc/self/mountinfo`` (containers mount a sub-tree, so
the path in ``/proc/self/cgroup`` must be taken relative to the mount's root). Limits
are then read at that cgroup *and every ancestor up to the mount point*, and the
tightest one wins: Kubernetes nests a pod's limit above the container's, and a parent
limit binds a child whose own file says ``max``.

Rules, documented once here:

* CPU: v2 ``cpu.max`` is ``"$QUOTA $PERIOD"`` or ``"max ..."``; v1 uses
  ``cpu.cfs_quota_us`` (``-1`` = unlimited) over ``cpu.cfs_period_us``. The quota is
  kept as a fraction of CPUs (150000/100000 = 1.5); rounding to whole threads happens
  in :mod:`trainperf.resources.limits`.
* Memory: v2 ``memory.max`` and ``memory.high`` (the smaller binds: above ``high`` the
  kernel throttles and reclaims), v1 ``memory.limit_in_bytes`` (values near 2**63
  mean unlimited). Headroom under a limit is ``limit - (usage - inactive_file)`` taken
  at the same level: inactive page cache is reclaimable, so, like the kubelet's
  "working set", it does not count as used.
* On hybrid machines (v1 controllers plus an empty v2 ``unified`` mount) both are read
  and the minimum is taken.
* Throttling: ``cpu.stat`` at each level counts the CFS periods (``nr_periods``), those
  in which the quota ran out (``nr_throttled``) and the time the group's threads were
  held back (v2 ``throttled_usec``, v1 ``throttled_time`` in ns). The level with the
  most throttled periods is the quota that binds (kernel documentation,
  ``Documentation/scheduler/sched-bwc.rst`` and ``admin-guide/cgroup-v2.rst``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from trainperf.resources._reader import MAX_COUNTER

if TYPE_CHECKING:
    from pathlib import Path

    from trainperf.resources._reader import SystemReader

__all__ = ["CgroupLimits", "CpuStat", "cpu_stat_files", "read_cgroup_limits", "read_cpu_stat"]

CgroupVersion = Literal["v1", "v2", "hybrid"]

# v1 reports "no limit" as PAGE_COUNTER_MAX pages (9223372036854771712 on 4 KiB pages).
_V1_UNLIMITED = 1 << 62
_DEFAULT_PERIOD_US = 100_000
_FALLBACK = "treating it as unlimited"


@dataclass(frozen=True, kw_only=True)
class CgroupLimits:
    """What the cgroups allow this process; ``None`` means unlimited or unknown."""

    version: CgroupVersion | None
    cpu_quota: float | None
    memory_limit_bytes: int | None
    memory_headroom_bytes: int | None


@dataclass(frozen=True)
class _Mount:
    fs_root: str  # the path inside the cgroup filesystem that is mounted
    point: Path  # where it is mounted, under the reader's root
    controllers: frozenset[str]  # empty for cgroup2
    v2: bool


def read_cgroup_limits(reader: SystemReader) -> CgroupLimits:
    v2_path, v1_paths = _own_cgroups(reader)
    mounts = _mounts(reader)
    v2_mounts = [m for m in mounts if m.v2]
    v1_mounts = [m for m in mounts if not m.v2 and m.controllers & {"cpu", "memory"}]

    quotas: list[float] = []
    limits: list[int] = []
    headrooms: list[int] = []
    if v2_mounts:
        for level in _levels(reader, v2_mounts[0], v2_path or "/"):
            _add(quotas, _v2_cpu(reader, level))
            _memory_level(reader, level, "v2", limits, headrooms)
    for controller in ("cpu", "memory"):
        v1_mount = next((m for m in v1_mounts if controller in m.controllers), None)
        if v1_mount is None:
            continue
        for level in _levels(reader, v1_mount, v1_paths.get(controller, "/")):
            if controller == "cpu":
                _add(quotas, _v1_cpu(reader, level))
            else:
                _memory_level(reader, level, "v1", limits, headrooms)

    version: CgroupVersion | None = None
    if v2_mounts and v1_mounts:
        version = "hybrid"
    elif v2_mounts:
        version = "v2"
    elif v1_mounts:
        version = "v1"
    return CgroupLimits(
        version=version,
        cpu_quota=min(quotas, default=None),
        memory_limit_bytes=min(limits, default=None),
        memory_headroom_bytes=min(headrooms, default=None),
    )


def _add(values: list[float], value: float | None) -> None:
    if value is not None:
        values.append(value)


# --- where the process's cgroups are -------------------------------------------------


def _own_cgroups(reader: SystemReader) -> tuple[str | None, dict[str, str]]:
    """The v2 path and the v1 path of each controller, from ``/proc/self/cgroup``."""
    text = reader.text("proc/self/cgroup")
    v2_path: str | None = None
    v1_paths: dict[str, str] = {}
    if text is None:
        return v2_path, v1_paths
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[2].startswith("/"):
            if line.strip():
                reader.garbage(
                    reader.path("proc/self/cgroup"), line, "'ID:CONTROLLERS:/PATH'", "skipping it"
                )
            continue
        _, controllers, path = parts
        if controllers == "":
            v2_path = path
        for name in controllers.split(","):
            if name:
                v1_paths[name] = path
    return v2_path, v1_paths


def _mounts(reader: SystemReader) -> list[_Mount]:
    text = reader.text("proc/self/mountinfo")
    mounts = _parse_mountinfo(reader, text) if text is not None else []
    return mounts or _conventional_mounts(reader)


def _parse_mountinfo(reader: SystemReader, text: str) -> list[_Mount]:
    # "36 35 98:0 /fs-root /mount/point rw,opts [optional...] - fstype source superopts"
    mounts: list[_Mount] = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 5 or len(fields) < sep + 3:
            continue
        fstype, super_options = fields[sep + 1], fields[sep + 3] if len(fields) > sep + 3 else ""
        if fstype not in ("cgroup", "cgroup2"):
            continue
        point = reader.path(_unescape(fields[4]))
        controllers = frozenset() if fstype == "cgroup2" else frozenset(super_options.split(","))
        mounts.append(_Mount(_unescape(fields[3]), point, controllers, fstype == "cgroup2"))
    return [m for m in mounts if reader.is_dir(m.point)]


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \040, \011, \012, \134.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _conventional_mounts(reader: SystemReader) -> list[_Mount]:
    """The usual layout, where ``/proc/self/mountinfo`` is missing or lists no cgroup
    (some sandboxes, such as gVisor, and minimal containers)."""
    base = reader.path("sys/fs/cgroup")
    if reader.is_file(base / "cgroup.controllers"):
        return [_Mount("/", base, frozenset(), True)]
    mounts: list[_Mount] = []
    if reader.is_file(base / "unified" / "cgroup.controllers"):
        mounts.append(_Mount("/", base / "unified", frozenset(), True))
    for child in reader.children(base):
        if child.name not in ("unified", "systemd"):
            mounts.append(_Mount("/", child, frozenset(child.name.split(",")), False))
    return mounts


def _levels(reader: SystemReader, mount: _Mount, cgroup_path: str) -> list[Path]:
    """The process's cgroup directory, then each ancestor up to the mount point."""
    if ".." in cgroup_path.split("/"):
        # The kernel writes "/../x" for a process outside its cgroup namespace; that
        # cgroup is not visible here, and the path must not climb out of the mount.
        reader.warn(
            f"the process's cgroup {cgroup_path!r} lies outside the visible cgroup tree; "
            f"reading limits at {reader.show(mount.point)} only"
        )
        return [mount.point]
    relative = cgroup_path
    inside = relative == mount.fs_root or relative.startswith(mount.fs_root.rstrip("/") + "/")
    if mount.fs_root != "/" and inside:
        relative = relative[len(mount.fs_root) :]
    # When the process sits outside the mounted sub-tree (a cgroup namespace), the
    # path does not exist below the mount point and the walk below ends there.
    path = mount.point / relative.strip("/") if relative.strip("/") else mount.point
    levels: list[Path] = []
    while True:
        if reader.is_dir(path):
            levels.append(path)
        if path == mount.point or mount.point not in path.parents:
            break
        path = path.parent
    return levels


# --- CPU ------------------------------------------------------------------------------


def _v2_cpu(reader: SystemReader, level: Path) -> float | None:
    path = level / "cpu.max"
    raw = reader.text(path)
    if raw is None:
        return None
    parts = raw.split()
    try:
        if not parts or len(parts) > 2:
            raise ValueError
        period = int(parts[1]) if len(parts) == 2 else _DEFAULT_PERIOD_US
        if period <= 0:
            raise ValueError
        if parts[0] == "max":
            return None
        quota = int(parts[0])
        if quota <= 0:
            raise ValueError
        return quota / period
    except (ValueError, OverflowError):
        reader.garbage(path, raw, "'max PERIOD' or 'QUOTA PERIOD'", _FALLBACK)
        return None


def _v1_cpu(reader: SystemReader, level: Path) -> float | None:
    quota = reader.integer(level / "cpu.cfs_quota_us", fallback=_FALLBACK)
    if quota is None or quota == -1:
        return None
    period = reader.integer(level / "cpu.cfs_period_us", fallback=_FALLBACK)
    if quota <= 0 or (period is not None and period <= 0):
        shown = f"quota {quota}, period {period}"
        reader.garbage(level / "cpu.cfs_quota_us", shown, "a positive quota and period", _FALLBACK)
        return None
    try:
        return quota / (period or _DEFAULT_PERIOD_US)
    except OverflowError:
        reader.garbage(level / "cpu.cfs_quota_us", str(quota), "a CPU quota", _FALLBACK)
        return None


# --- memory ---------------------------------------------------------------------------


def _memory_level(
    reader: SystemReader,
    level: Path,
    version: Literal["v1", "v2"],
    limits: list[int],
    headrooms: list[int],
) -> None:
    if version == "v2":
        candidates = [_v2_bytes(reader, level / name) for name in ("memory.max", "memory.high")]
        usage = reader.integer(level / "memory.current", fallback="ignoring usage")
        inactive_key = "inactive_file"
    else:
        value = reader.integer(level / "memory.limit_in_bytes", fallback=_FALLBACK)
        candidates = [value if value is not None and 0 <= value < _V1_UNLIMITED else None]
        usage = reader.integer(level / "memory.usage_in_bytes", fallback="ignoring usage")
        inactive_key = "total_inactive_file"
    limit = min((c for c in candidates if c is not None), default=None)
    if limit is None:
        return
    limits.append(limit)
    if usage is None:
        headrooms.append(limit)  # usage unknown: at most the limit is left
    else:
        working_set = max(0, usage - _stat(reader, level / "memory.stat", inactive_key))
        headrooms.append(max(0, limit - working_set))


def _v2_bytes(reader: SystemReader, path: Path) -> int | None:
    raw = reader.text(path)
    if raw is None or raw.strip() == "max":
        return None
    try:
        value = int(raw.strip())
        if not 0 <= value < MAX_COUNTER:
            raise ValueError
    except ValueError:
        reader.garbage(path, raw, "'max' or a number of bytes", _FALLBACK)
        return None
    return value


def _stat(reader: SystemReader, path: Path, key: str) -> int:
    raw = reader.text(path)
    for line in (raw or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            try:
                return max(0, int(value))
            except ValueError:
                reader.garbage(path, line, f"'{key} BYTES'", "counting all usage as in use")
                return 0
    return 0


# --- CPU throttling -------------------------------------------------------------------


@dataclass(frozen=True)
class CpuStat:
    """Cumulative CFS bandwidth counters of one cgroup level (``cpu.stat``)."""

    periods: int  # enforcement periods in which the group had runnable threads
    throttled_periods: int  # of those, the periods in which its quota ran out
    throttled_s: float  # total time its threads were held back, seconds


def cpu_stat_files(reader: SystemReader) -> list[tuple[Path, CgroupVersion]]:
    """The ``cpu.stat`` files of the process's cgroup and its ancestors (v2, then v1)."""
    v2_path, v1_paths = _own_cgroups(reader)
    mounts = _mounts(reader)
    found: list[tuple[Path, CgroupVersion]] = []
    v2 = next((m for m in mounts if m.v2), None)
    if v2 is not None:
        found += [(level / "cpu.stat", "v2") for level in _levels(reader, v2, v2_path or "/")]
    v1 = next((m for m in mounts if not m.v2 and "cpu" in m.controllers), None)
    if v1 is not None:
        levels = _levels(reader, v1, v1_paths.get("cpu", "/"))
        found += [(level / "cpu.stat", "v1") for level in levels]
    return [(path, version) for path, version in found if reader.is_file(path)]


def read_cpu_stat(
    reader: SystemReader, files: list[tuple[Path, CgroupVersion]] | None = None
) -> CpuStat | None:
    """The binding level's throttling counters; ``None`` where no level has a quota
    (no ``nr_periods``: the kernel counts periods only under a quota)."""
    best: CpuStat | None = None
    for path, version in cpu_stat_files(reader) if files is None else files:
        fields = _fields(reader.text(path) or "")
        if "nr_periods" not in fields or "nr_throttled" not in fields:
            continue
        if version == "v1":
            held = fields.get("throttled_time", 0) / 1e9
        else:
            held = fields.get("throttled_usec", 0) / 1e6
        stat = CpuStat(fields["nr_periods"], fields["nr_throttled"], held)
        if best is None or stat.throttled_periods > best.throttled_periods:
            best = stat
    return best


def _fields(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if value.strip().isdecimal():
            out[name] = int(value)
    return out
