"""Rules on the DataLoader workers' own records (:mod:`.worker_timing`): how long
their starts took and where a batch's time goes inside a worker.

* ``worker-startup``: the time from each ``iter(loader)`` that started workers to
  its first batch, beyond a warm worker's batch, summed over the run, takes
  ``STARTUP_SHARE`` of the run (and at least ``STARTUP_MIN_S``). The fix follows the
  start's largest phase: ``persistent_workers=True`` for starts repeated every epoch
  or pass; ``fork``, a forkserver preload list or a lighter main module for the
  imports a ``spawn``/``forkserver`` worker repeats; a smaller dataset object for a
  large pickled state (sent to one worker after another through a pipe); the
  ``worker_init_fn``.
* ``worker-memory``: a worker's private memory or ``/dev/shm`` grows through the run
  (copy-on-read, a leak, a pile-up of batches: :mod:`.worker_memory`'s rules), with
  the estimated time to the memory limit.
* ``collate-heavy`` and ``getitem-heavy``: the steps are input-bound, and
  ``collate_fn`` takes at least ``STAGE_SHARE`` of the workers' fetch time (or the
  samples' ``__getitem__`` does), with the slowest samples named.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from trainperf.monitoring.analyze import Finding, _gain
from trainperf.monitoring.rules import RunRecords, rule

if TYPE_CHECKING:
    from trainperf.monitoring.worker_timing import StageTimes, WorkerStartup

__all__ = [
    "PIPE_BYTES",
    "STAGE_SHARE",
    "STARTUP_MIN_S",
    "STARTUP_SHARE",
    "collate_heavy",
    "getitem_heavy",
    "startup_matters",
    "worker_memory",
    "worker_startup",
]

STARTUP_SHARE = 0.10  # of the run's wall time
STARTUP_MIN_S = 0.5  # below this, worker starts are not worth a change
PHASE_SHARE = 0.3  # a phase that takes this share of a start gets its own fix
STAGE_SHARE = 0.5  # of the workers' fetch time
# A pipe's buffer on Linux (pipe(7)): a worker's pickled state larger than this is
# written while the worker reads it, so the next worker is not started before.
PIPE_BYTES = 64 * 1024


def run_s(records: RunRecords) -> float:
    """The run's wall time: its periods' span from the start of monitoring (which
    counts the time inside ``iter(loader)``, in no step), or its parts' sum."""
    span = max((p.start_s + p.wall_s for p in records.periods), default=0.0)
    return max(span, records.total_s, records.train_s)


def startup_matters(records: RunRecords) -> WorkerStartup | None:
    """The run's worker starts when they are worth a finding, else ``None``."""
    startup = None if records.workers is None else records.workers.startup
    if startup is None or startup.paid_s < STARTUP_MIN_S:
        return None
    if startup.paid_s < STARTUP_SHARE * run_s(records):
        return None
    return startup


def _s(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


@rule(
    "worker-startup",
    reads=("workers",),
    thresholds={"share": STARTUP_SHARE, "min_s": STARTUP_MIN_S, "phase_share": PHASE_SHARE},
)
def worker_startup(records: RunRecords) -> list[Finding]:
    """Worker starts that take ``STARTUP_SHARE`` of the run: what each start spent its
    time on, how many starts there were, and the fix for the largest part."""
    startup = startup_matters(records)
    if startup is None:
        return []
    phases = startup.phase_means()
    start_s = sum(phases.values())
    first = startup.costs[0].start
    method = first.start_method
    starts = len(startup.costs)
    fixes: list[str] = []
    if startup.avoidable_s >= 0.5 * startup.paid_s:
        fixes.append(
            f"persistent_workers=True: the {first.dataset} DataLoader's workers started "
            f"{starts} times (every epoch or pass); kept, they start once"
        )
    imports = phases.get("imports", 0.0) + phases.get("unpickle", 0.0)
    slowest = startup.costs[0].slowest
    timed = () if slowest is None else slowest.imports
    total = sum(seconds for _, seconds in timed)
    packages = [  # the user's heavy imports: not trainperf's own, in the worker to time it
        name for name, seconds in timed if name != "trainperf" and seconds >= 0.1 * total
    ][:4]
    if method in ("spawn", "forkserver") and imports >= PHASE_SHARE * start_s:
        heavy = f" ({', '.join(packages)})" if packages else ""
        preload = ", ".join(repr(p) for p in packages) or "'torch'"
        fixes.append(
            f"each {method!r} worker imports the main module and its packages again{heavy}: "
            f"{_s(imports)} a start; multiprocessing_context='fork' where safe (Linux, no "
            "threads or CUDA started before the DataLoader), or "
            f"torch.multiprocessing.set_forkserver_preload([{preload}]) with "
            "multiprocessing_context='forkserver', or move the main module's heavy imports "
            "under `if __name__ == '__main__':`"
        )
    per_worker = (first.pickled_bytes or 0) / max(first.num_workers, 1)
    if (
        method == "spawn"
        and per_worker > PIPE_BYTES
        and phases.get("launch", 0.0) >= (PHASE_SHARE * start_s)
    ):
        fixes.append(
            f"each worker is sent {per_worker / 2**20:.1f} MiB of pickled dataset through a "
            "pipe, and the next worker starts only once it has been read: workers start one "
            "after another; keep large data out of the dataset object (open or memory-map "
            "it in the worker, on first use)"
        )
    if phases.get("worker_init_fn", 0.0) >= PHASE_SHARE * start_s:
        fixes.append(f"worker_init_fn takes {_s(phases['worker_init_fn'])} in every worker start")
    if not fixes:
        fixes.append(
            "persistent_workers=True, and a lighter worker start (fewer imports in the main "
            "module, a smaller dataset object)"
        )
    evidence = {
        "starts": float(starts),
        "start_s": start_s,
        "paid_s": startup.paid_s,
        "avoidable_s": startup.avoidable_s,
        "share_of_run": startup.paid_s / run_s(records),
        **{f"{name}_s": value for name, value in phases.items()},
    }
    if first.pickled_bytes is not None:
        evidence["pickled_bytes_per_worker"] = per_worker
    saved = startup.avoidable_s if startup.avoidable_s > 0 else startup.paid_s
    share = saved / run_s(records)
    return [
        Finding(
            "worker-startup",
            evidence,
            "; ".join(fixes),
            f"about {saved:.1f} s of this run, {_gain(share)} (estimated)",
        )
    ]


@rule("worker-memory", reads=("workers", "steps"))
def worker_memory(records: RunRecords) -> list[Finding]:
    """Growth of the workers' memory (see :func:`.worker_memory.worker_memory_finding`),
    said in epochs too (the median epoch's training time)."""
    if records.workers is None or not records.workers.memory:
        return []
    from trainperf.monitoring.worker_memory import worker_memory_finding

    epochs: dict[int, float] = {}
    for period in records.train:
        epochs[period.epoch] = epochs.get(period.epoch, 0.0) + period.wall_s
    epoch_s = statistics.median(epochs.values()) if len(epochs) > 1 else None
    finding = worker_memory_finding(records.workers.memory, epoch_s=epoch_s or None)
    return [] if finding is None else [finding]


def _slowest(stages: StageTimes) -> str:
    if not stages.slowest:
        return ""
    named = ", ".join(f"{index} ({_s(seconds)})" for index, seconds in stages.slowest)
    return f"; slowest samples: {named}"


def _input_bound(records: RunRecords) -> StageTimes | None:
    stages = None if records.workers is None else records.workers.stages
    if stages is None or records.step.kind != "input-bound":
        return None
    return stages


@rule("collate-heavy", reads=("workers", "steps"), thresholds={"share": STAGE_SHARE})
def collate_heavy(records: RunRecords) -> list[Finding]:
    """Input-bound steps whose workers spend ``STAGE_SHARE`` of a batch in
    ``collate_fn``: per-sample work done per batch, in one process."""
    stages = _input_bound(records)
    if stages is None or stages.collate_share < STAGE_SHARE:
        return []
    return [
        Finding(
            "collate-heavy",
            {
                "collate_share": stages.collate_share,
                "collate_s": stages.collate_s,
                "fetch_s": stages.fetch_s,
                "p95_fetch_s": stages.p95_s,
            },
            f"collate_fn takes {stages.collate_share:.0%} of each batch the workers build "
            f"({_s(stages.collate_s)} of {_s(stages.fetch_s)}): do its per-sample work "
            "(tokenising, decoding, augmenting) in the dataset's __getitem__ or once ahead "
            "(a cache), and keep collate_fn to stacking and padding",
            f"collate_fn is {stages.collate_share:.0%} of the workers' time: the share of the "
            "loader's work that moves to where it can be shared or cached (estimated)",
            records.step.confidence,
            records.step.reasons,
        )
    ]


@rule("getitem-heavy", reads=("workers", "steps"), thresholds={"share": STAGE_SHARE})
def getitem_heavy(records: RunRecords) -> list[Finding]:
    """Input-bound steps whose workers spend more than ``1 - STAGE_SHARE`` of a batch
    reading and transforming samples: name the sample's time and the slowest ones."""
    stages = _input_bound(records)
    if stages is None or stages.collate_share >= 1 - STAGE_SHARE:
        return []
    per_sample = f" ({_s(stages.sample_s)} a sample)" if stages.sample_s is not None else ""
    evidence = {
        "getitem_share": 1 - stages.collate_share,
        "getitem_s": stages.getitem_s,
        "fetch_s": stages.fetch_s,
        "p95_fetch_s": stages.p95_s,
        "p99_fetch_s": stages.p99_s,
    }
    if stages.sample_s is not None:
        evidence["sample_s"] = stages.sample_s
    return [
        Finding(
            "getitem-heavy",
            evidence,
            f"the dataset's __getitem__ takes {1 - stages.collate_share:.0%} of each batch "
            f"the workers build ({_s(stages.getitem_s)} of {_s(stages.fetch_s)}{per_sample}"
            f"{_slowest(stages)}): cache what it computes the same every epoch "
            "(trainperf cache), or give the loader more workers",
            "see the input-bound finding (estimated)",
            records.step.confidence,
            records.step.reasons,
        )
    ]
