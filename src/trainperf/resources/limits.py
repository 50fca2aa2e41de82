"""``ResourceLimits``: the budget a training process really has, and what follows from it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trainperf._json import (
    JsonObject,
    as_object,
    opt_float,
    opt_int,
    opt_str,
    req_float,
    req_int,
    req_list,
    req_str,
)
from trainperf.errors import RecordError, UsageError
from trainperf.resources.gpu import GpuInfo

if TYPE_CHECKING:
    from trainperf.kvlog import Scalar

__all__ = [
    "BATCH_MEMORY_SHARE",
    "DEFAULT_PREFETCH_FACTOR",
    "SMALL_SHM_BYTES",
    "ResourceLimits",
]

# Batches in flight may take 1/BATCH_MEMORY_SHARE of a rank's available memory; the
# rest is left to the model, activations, optimizer state and the workers' own heaps.
BATCH_MEMORY_SHARE = 4
# torch.utils.data.DataLoader's default: batches each worker prepares ahead.
DEFAULT_PREFETCH_FACTOR = 2
# Below this, DataLoader workers passing image batches through /dev/shm die with
# "Bus error" (Docker's default is 64 MiB).
SMALL_SHM_BYTES = 1 << 30
# A fraction of a CPU this close to a whole one counts as whole (1.9999 -> 2).
_WHOLE_CPU_SLACK = 1e-6


@dataclass(frozen=True, kw_only=True)
class ResourceLimits:
    """What this process may use, from affinity, cgroups, the host and the launcher.

    ``cpu_budget`` is the minimum of the affinity mask, the cgroup CPU quota (the
    tightest over all ancestor cgroups) and ``TRAINPERF_CPUS``; it may be fractional
    (a 150000/100000 quota is 1.5). Memory figures are bytes; ``None`` means unlimited.

    Derived values, per rank (budgets are divided by ``local_world_size``):

    * ``usable_cpus`` = ``floor(cpu_budget / local_world_size)``, at least 1. Rounding
      *down* is deliberate: more runnable threads than the quota allows get throttled
      for the rest of each CFS period, and a thread pool that waits for its slowest
      thread stalls with it. A quota below one CPU still gets one thread.
    * ``optimal_workers`` = 0 when ``usable_cpus <= 2`` (a worker process would compete
      with the training loop for the only other core), else ``usable_cpus // 2``.
    * ``optimal_threads`` = ``usable_cpus - optimal_workers``: intra-op threads of the
      main process, each worker keeping one, so threads + workers never exceed the
      budget.
    * ``max_batch_bytes`` = ``1 / BATCH_MEMORY_SHARE`` of the rank's available memory,
      shared by the batches alive at once (``workers * DEFAULT_PREFETCH_FACTOR`` queued
      plus the one in the step); with workers it is also capped by free ``/dev/shm``
      divided by the batches queued in it on this node.

    These are static starting points; ``trainperf calibrate`` measures instead.
    """

    cpu_budget: float
    cpu_affinity: tuple[int, ...]
    host_cpus: int
    cpu_model: str
    cgroup_version: str | None = None
    cgroup_cpu_quota: float | None = None
    cpu_override: float | None = None
    memory_total_bytes: int | None = None
    memory_limit_bytes: int | None = None
    memory_available_bytes: int | None = None
    shm_bytes: int | None = None
    shm_free_bytes: int | None = None
    gpus: tuple[GpuInfo, ...] = ()
    local_world_size: int = 1
    world_size: int = 1
    local_rank: int | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cpu_budget) and self.cpu_budget > 0):
            raise UsageError(f"cpu_budget must be a positive number, got {self.cpu_budget}")
        if self.local_world_size < 1 or self.world_size < self.local_world_size:
            raise UsageError(
                f"need 1 <= local_world_size <= world_size, got {self.local_world_size} "
                f"and {self.world_size}"
            )
        for name in ("memory_total_bytes", "memory_limit_bytes", "memory_available_bytes"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"{name} must be >= 0 bytes, got {value}")

    # --- derived, per rank -------------------------------------------------------------

    @property
    def cpus_per_rank(self) -> float:
        return self.cpu_budget / self.local_world_size

    @property
    def usable_cpus(self) -> int:
        return max(1, math.floor(self.cpus_per_rank + _WHOLE_CPU_SLACK))

    @property
    def optimal_workers(self) -> int:
        return 0 if self.usable_cpus <= 2 else self.usable_cpus // 2

    @property
    def optimal_threads(self) -> int:
        return self.usable_cpus - self.optimal_workers

    @property
    def memory_per_rank_bytes(self) -> int | None:
        if self.memory_available_bytes is None:
            return None
        return self.memory_available_bytes // self.local_world_size

    @property
    def max_batch_bytes(self) -> int | None:
        memory = self.memory_per_rank_bytes
        if memory is None:
            return None
        queued = self.optimal_workers * DEFAULT_PREFETCH_FACTOR
        cap = memory // BATCH_MEMORY_SHARE // (queued + 1)
        if queued and self.shm_free_bytes is not None:
            cap = min(cap, self.shm_free_bytes // (queued * self.local_world_size))
        return cap

    # --- records -----------------------------------------------------------------------

    def to_json(self) -> JsonObject:
        """Plain JSON; the keys below are a contract other commands and scripts rely on."""
        return {
            "cpu_budget": self.cpu_budget,
            "cpu_affinity": list(self.cpu_affinity),
            "host_cpus": self.host_cpus,
            "cpu_model": self.cpu_model,
            "cgroup_version": self.cgroup_version,
            "cgroup_cpu_quota": self.cgroup_cpu_quota,
            "cpu_override": self.cpu_override,
            "memory_total_bytes": self.memory_total_bytes,
            "memory_limit_bytes": self.memory_limit_bytes,
            "memory_available_bytes": self.memory_available_bytes,
            "shm_bytes": self.shm_bytes,
            "shm_free_bytes": self.shm_free_bytes,
            "gpus": [gpu.to_json() for gpu in self.gpus],
            "local_world_size": self.local_world_size,
            "world_size": self.world_size,
            "local_rank": self.local_rank,
            "cpus_per_rank": self.cpus_per_rank,
            "usable_cpus": self.usable_cpus,
            "optimal_threads": self.optimal_threads,
            "optimal_workers": self.optimal_workers,
            "max_batch_bytes": self.max_batch_bytes,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> ResourceLimits:
        """Rebuild from :meth:`to_json` output; derived keys are recomputed, not trusted."""
        gpus = []
        for item in req_list(data, "gpus"):
            gpu = as_object(item, "a GPU")
            gpus.append(
                GpuInfo(
                    index=req_int(gpu, "index"),
                    name=req_str(gpu, "name"),
                    memory_total_bytes=req_int(gpu, "memory_total_bytes"),
                    uuid=opt_str(gpu, "uuid"),
                )
            )
        affinity = req_list(data, "cpu_affinity")
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in affinity):
            raise RecordError(f"expected CPU ids for 'cpu_affinity', got {affinity!r}")
        local_world_size = opt_int(data, "local_world_size")
        world_size = opt_int(data, "world_size")
        try:
            return cls(
                cpu_budget=req_float(data, "cpu_budget"),
                cpu_affinity=tuple(c for c in affinity if isinstance(c, int)),
                host_cpus=req_int(data, "host_cpus"),
                cpu_model=req_str(data, "cpu_model"),
                cgroup_version=opt_str(data, "cgroup_version"),
                cgroup_cpu_quota=opt_float(data, "cgroup_cpu_quota"),
                cpu_override=opt_float(data, "cpu_override"),
                memory_total_bytes=opt_int(data, "memory_total_bytes"),
                memory_limit_bytes=opt_int(data, "memory_limit_bytes"),
                memory_available_bytes=opt_int(data, "memory_available_bytes"),
                shm_bytes=opt_int(data, "shm_bytes"),
                shm_free_bytes=opt_int(data, "shm_free_bytes"),
                gpus=tuple(gpus),
                local_world_size=1 if local_world_size is None else local_world_size,
                world_size=1 if world_size is None else world_size,
                local_rank=opt_int(data, "local_rank"),
                warnings=tuple(str(w) for w in req_list(data, "warnings")),
            )
        except UsageError as exc:
            raise RecordError(f"not a valid resources record: {exc}") from None

    def log_fields(self) -> dict[str, Scalar]:
        """The one ``key=value`` line logged at detection."""
        return {
            "cpu_budget": self.cpu_budget,
            "cpus": len(self.cpu_affinity),
            "cgroup": self.cgroup_version,
            "cpu_quota": self.cgroup_cpu_quota,
            "memory_limit_mb": _mib(self.memory_limit_bytes),
            "memory_available_mb": _mib(self.memory_available_bytes),
            "shm_mb": _mib(self.shm_bytes),
            "gpus": len(self.gpus),
            "local_world_size": self.local_world_size,
            "optimal_threads": self.optimal_threads,
            "optimal_workers": self.optimal_workers,
            "max_batch_mb": _mib(self.max_batch_bytes),
        }


def _mib(value: int | None) -> int | None:
    return None if value is None else value >> 20
