"""Resource detection: the CPU, memory, ``/dev/shm`` and GPU budget this process has.

    >>> limits = detect_resources()
    >>> limits.cpu_budget <= len(limits.cpu_affinity)
    True

Everything is read under ``root`` (``/`` by default; a fake tree in tests) and from
``environ`` (``os.environ`` by default), so detection is exact and testable.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.errors import EnvironmentProbeError
from trainperf.kvlog import log_kv
from trainperf.resources._reader import SystemReader
from trainperf.resources.cgroup import CgroupLimits, read_cgroup_limits
from trainperf.resources.distributed import RankLayout, read_rank_layout
from trainperf.resources.gpu import GpuInfo, detect_gpus
from trainperf.resources.host import HostFacts, read_host
from trainperf.resources.limits import SMALL_SHM_BYTES, ResourceLimits
from trainperf.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "CgroupLimits",
    "GpuInfo",
    "HostFacts",
    "RankLayout",
    "ResourceLimits",
    "detect_resources",
    "shm_advice",
]

logger = logging.getLogger("trainperf.resources")


def detect_resources(
    *,
    root: str | os.PathLike[str] = "/",
    environ: Mapping[str, str] | None = None,
    gpus: bool = True,
) -> ResourceLimits:
    """Detect this process's resource budget and log it as one ``key=value`` line.

    ``root`` is the folder holding ``proc/`` and ``sys/``. GPUs are probed through
    NVML or torch, which see the real machine, so they are only looked for when
    ``root`` is ``/`` and ``gpus`` is true. Unreadable or garbled files give a
    warning (kept in ``ResourceLimits.warnings``) and a safe fallback, never an error.
    """
    base = Path(root)
    _check_root(base)
    env = os.environ if environ is None else environ
    settings = Settings.from_env(env)
    reader = SystemReader(base)

    host = read_host(reader)
    cgroup = read_cgroup_limits(reader)
    ranks = read_rank_layout(env, reader.warn)
    real_machine = os.path.realpath(base) == "/"
    found_gpus = detect_gpus(base, env, reader.warn) if gpus and real_machine else ()

    cpu_budget = float(len(host.cpu_affinity))
    for bound in (cgroup.cpu_quota, settings.cpus):
        if bound is not None:
            cpu_budget = min(cpu_budget, bound)

    available_sources = [host.memory_available_bytes, cgroup.memory_headroom_bytes]
    available = min((v for v in available_sources if v is not None), default=None)
    advice = shm_advice(host.shm_bytes)
    if advice:
        reader.warn(advice)

    limits = ResourceLimits(
        cpu_budget=cpu_budget,
        cpu_affinity=host.cpu_affinity,
        host_cpus=host.host_cpus,
        cpu_model=host.cpu_model,
        cgroup_version=cgroup.version,
        cgroup_cpu_quota=cgroup.cpu_quota,
        cpu_override=settings.cpus,
        memory_total_bytes=host.memory_total_bytes,
        memory_limit_bytes=cgroup.memory_limit_bytes,
        memory_available_bytes=available,
        shm_bytes=host.shm_bytes,
        shm_free_bytes=host.shm_free_bytes,
        gpus=found_gpus,
        local_world_size=ranks.local_world_size,
        world_size=ranks.world_size,
        local_rank=ranks.local_rank,
        warnings=tuple(reader.warnings),
    )
    log_kv(logger, "resource_limits", limits.log_fields())
    return limits


def shm_advice(shm_bytes: int | None) -> str | None:
    """A warning when ``/dev/shm`` is too small for DataLoader workers, else ``None``."""
    if shm_bytes is None or shm_bytes >= SMALL_SHM_BYTES:
        return None
    return (
        f"/dev/shm is only {shm_bytes >> 20} MiB: DataLoader workers may die with "
        f"'Bus error'; give the container more (docker run --shm-size=8g, or a "
        f"memory-backed emptyDir on Kubernetes)"
    )


def _check_root(base: Path) -> None:
    try:
        entries = set(os.listdir(base))
    except FileNotFoundError:
        raise EnvironmentProbeError(
            f"root {str(base)!r} does not exist; pass the folder that holds proc/ and "
            f"sys/ (the default is /)"
        ) from None
    except NotADirectoryError:
        raise EnvironmentProbeError(
            f"root {str(base)!r} is a file, not a folder; pass the folder that holds "
            f"proc/ and sys/ (the default is /)"
        ) from None
    except OSError as exc:
        raise EnvironmentProbeError(
            f"root {str(base)!r} cannot be read ({exc.strerror or exc}); check its "
            f"permissions, or pass another folder that holds proc/ and sys/"
        ) from None
    if not entries & {"proc", "sys"}:
        raise EnvironmentProbeError(
            f"root {str(base)!r} holds neither proc/ nor sys/; pass the folder that "
            f"holds them (the default is /)"
        )
