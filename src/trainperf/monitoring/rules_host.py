"""Rules on the host's records: memory, threads against the CPU budget, the CPU quota.

Each is registered with :func:`trainperf.monitoring.rules.rule`; thresholds are the
module's constants.
"""

from __future__ import annotations

import itertools

from trainperf.monitoring.analyze import Finding, _gain
from trainperf.monitoring.rules import RunRecords, rule

__all__ = ["MEMORY_CREEP", "MIN_EPOCHS_FOR_CREEP", "cpu_throttled", "memory_creep"]

MEMORY_CREEP = 1.2  # peak memory grows every epoch, and the last is this many times the first
MIN_EPOCHS_FOR_CREEP = 3


@rule(
    "memory-creep",
    reads=("steps", "samples"),
    thresholds={"growth": MEMORY_CREEP, "epochs": MIN_EPOCHS_FOR_CREEP},
)
def memory_creep(records: RunRecords) -> list[Finding]:
    """Peak memory (process and workers) per epoch that only ever grows, by
    ``MEMORY_CREEP`` times over at least ``MIN_EPOCHS_FOR_CREEP`` epochs."""
    bounds: dict[int, tuple[float, float]] = {}
    for p in records.train:
        low, high = bounds.get(p.epoch, (p.start_s, p.start_s + p.wall_s))
        bounds[p.epoch] = (min(low, p.start_s), max(high, p.start_s + p.wall_s))
    peaks = []
    for epoch in sorted(bounds):
        low, high = bounds[epoch]
        inside = [s.rss_bytes + s.children_rss_bytes for s in records.host if low <= s.t_s <= high]
        if inside:
            peaks.append(max(inside))
    if len(peaks) < MIN_EPOCHS_FOR_CREEP:
        return []
    growing = all(b > a for a, b in itertools.pairwise(peaks))
    if not growing or peaks[-1] < MEMORY_CREEP * peaks[0]:
        return []
    return [
        Finding(
            "memory-creep",
            {"first_epoch_peak_mb": peaks[0] / 2**20, "last_epoch_peak_mb": peaks[-1] / 2**20},
            "something keeps references across epochs (losses kept with their graph, "
            "growing caches, metric lists); release them or detach",
            f"{(peaks[-1] - peaks[0]) / 2**20:.0f} MiB more over {len(peaks) - 1} "
            f"epochs, until the process is killed",
        )
    ]


@rule("thread-oversubscription", reads=("samples", "workers"))
def thread_oversubscription(records: RunRecords) -> list[Finding]:
    """More busy threads than CPUs: torch's intra-op threads (the most the run used)
    plus, per DataLoader worker, its widest BLAS/OpenMP pool read inside the worker
    (see :func:`trainperf.monitoring.workers.oversubscription`)."""
    from trainperf.monitoring.workers import oversubscription

    found = oversubscription(
        intra_op_threads=records.intra_op_threads,
        worker_processes=max((s.children for s in records.host), default=0),
        worker_pools=records.worker_pools,
        cpus=records.cpus,
    )
    return [] if found is None else [found]


@rule("cpu-throttled", reads=("samples", "conditions"))
def cpu_throttled(records: RunRecords) -> list[Finding]:
    """The container's CPU quota ran out in ``THROTTLED_SHARE`` of its periods: its
    threads were held back until the next period (CFS bandwidth control)."""
    from trainperf.monitoring.conditions import THROTTLED_SHARE

    conditions, cpus, train_s = records.conditions, records.cpus, records.train_s
    threads = records.intra_op_threads
    if conditions is None or (conditions.throttled_share or 0.0) < THROTTLED_SHARE:
        return []
    workers = max((s.children for s in records.host), default=0)
    held = conditions.throttled_s or 0.0
    evidence = {
        "throttled_share": conditions.throttled_share or 0.0,
        "throttled_s": held,
        "cpu_quota": cpus,
        "worker_processes": float(workers),
    }
    busy = f"{workers} worker processes"
    if threads is not None:
        evidence["intra_op_threads"] = float(threads)
        busy = f"{threads} intra-op threads and {busy}"
    share = min(held / train_s, 0.95) if train_s else 0.0
    return [
        Finding(
            "cpu-throttled",
            evidence,
            f"the cgroup's CPU quota ({cpus:g} CPUs) ran out in "
            f"{conditions.throttled_share or 0.0:.0%} of its periods with {busy}: "
            f"torch.set_num_threads({max(1, int(cpus) - workers)}) and fewer workers so "
            f"that threads and workers fit the quota (trainperf calibrate measures it)",
            f"the run's threads were held back {held:.1f} s during {train_s:.1f} s of "
            f"training; up to {_gain(share)} if none of it were (estimated)",
        )
    ]
