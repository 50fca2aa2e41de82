"""Pure functions from a run's periods to shares, throughput and a verdict.

Rules, with their thresholds (a verdict needs at least ``MIN_STEPS`` training steps;
the first step of each epoch is left out of the shares, as worker start-up and
warm-up are reported on their own):

* ``validation-bound``: validation takes at least ``VALIDATION_SHARE`` of the time.
* ``startup-bound``: the time before the first step is at least ``STARTUP_SHARE``.
* ``input-bound``: the median step waits for data at least ``INPUT_SHARE`` of its time.
* ``host-sync-bound``: a GPU is in use (NVML samples during training) but busy
  less than ``HOST_SYNC_UTIL`` % of the time although the loop hardly waits for
  data: the host keeps it idle (per-step synchronisations such as ``.item()``,
  launch overhead). Without NVML this rule cannot fire; ``device_s`` per step
  (CUDA events) is still reported.
* ``compute-bound``: the median step waits for data at most ``COMPUTE_SHARE``.
* ``balanced``: none of the above.

Each finding states its evidence, the fix, and the gain if the cause were removed
(e.g. input-bound with a data-wait share ``w`` gains at most ``1 / (1 - w) - 1``).
When a probe replayed cached batches (:mod:`.probe`), the input-bound gain is the
measured one, and a replay not at least ``1 - CONFIRM_RATIO`` faster than the
measured step says the verdict is not confirmed.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from trainperf._json import JsonObject
    from trainperf.monitoring.probe import Replay
    from trainperf.monitoring.records import Period
    from trainperf.monitoring.sampler import Sample

__all__ = [
    "EpochStats",
    "Finding",
    "RunSummary",
    "epoch_stats",
    "step_data_share",
    "summarize",
    "summarize_folder",
]

MIN_STEPS = 5
VALIDATION_SHARE = 0.5
STARTUP_SHARE = 0.5
INPUT_SHARE = 0.3
COMPUTE_SHARE = 0.1
HOST_SYNC_UTIL = 50.0  # median GPU utilisation (%) during training below this
# A replay of cached batches (the probe) confirms input-bound when a step is this much
# faster than the measured median step.
CONFIRM_RATIO = 0.9
EPOCH_START_SPIKE = 5.0  # first batch of an epoch waits this many times the median
MEMORY_CREEP = 1.2  # peak memory grows every epoch, and the last is this many times the first
MIN_EPOCHS_FOR_CREEP = 3


@dataclass(frozen=True)
class Finding:
    kind: str
    evidence: dict[str, float]
    fix: str
    gain: str

    def to_json(self) -> JsonObject:
        return {
            "kind": self.kind,
            "evidence": dict(self.evidence),
            "fix": self.fix,
            "gain": self.gain,
        }


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    steps: int
    train_s: float
    val_s: float
    val_data_wait_s: float
    first_batch_wait_s: float | None  # the first fetch of the epoch: worker start-up
    peak_memory_bytes: int | None  # process and workers, from the sampler
    device_allocated_peak_bytes: int | None = None  # CUDA, reset every epoch
    device_reserved_peak_bytes: int | None = None

    def to_json(self) -> JsonObject:
        return {
            "epoch": self.epoch,
            "steps": self.steps,
            "train_s": self.train_s,
            "val_s": self.val_s,
            "val_data_wait_s": self.val_data_wait_s,
            "first_batch_wait_s": self.first_batch_wait_s,
            "peak_memory_bytes": self.peak_memory_bytes,
            "device_allocated_peak_bytes": self.device_allocated_peak_bytes,
            "device_reserved_peak_bytes": self.device_reserved_peak_bytes,
        }


def epoch_stats(
    periods: Sequence[Period],
    host: Sequence[Sample] = (),
    device_memory: Mapping[int, tuple[int, int]] | None = None,
) -> list[EpochStats]:
    """Per epoch: training and validation time, first-batch wait, peak memory."""
    device_memory = device_memory or {}
    out = []
    for epoch in sorted({p.epoch for p in periods}):
        train = [p for p in periods if p.epoch == epoch and p.kind == "train"]
        val = [p for p in periods if p.epoch == epoch and p.kind == "val"]
        inside = [p for p in periods if p.epoch == epoch]
        low = min(p.start_s for p in inside)
        high = max(p.start_s + p.wall_s for p in inside)
        memory = [s.rss_bytes + s.children_rss_bytes for s in host if low <= s.t_s <= high]
        first = next((p.data_wait_s for p in train if p.first_of_epoch), None)
        allocated, reserved = device_memory.get(epoch, (None, None))
        out.append(
            EpochStats(
                epoch=epoch,
                steps=len(train),
                train_s=sum(p.wall_s for p in train),
                val_s=sum(p.wall_s for p in val),
                val_data_wait_s=sum(p.data_wait_s for p in val),
                first_batch_wait_s=first,
                peak_memory_bytes=max(memory) if memory else None,
                device_allocated_peak_bytes=allocated,
                device_reserved_peak_bytes=reserved,
            )
        )
    return out


@dataclass(frozen=True)
class RunSummary:
    steps: int
    samples: int | None
    train_s: float
    val_s: float
    startup_s: float
    samples_per_s: float | None
    step_median_s: float | None
    shares: dict[str, float]
    primary: str
    findings: tuple[Finding, ...]
    ranks: int = 1
    epochs: tuple[EpochStats, ...] = ()
    device_step_median_s: float | None = None  # CUDA events, steady steps
    gpu_util_percent: float | None = None  # NVML, median over training

    def to_json(self) -> JsonObject:
        return {
            "steps": self.steps,
            "samples": self.samples,
            "train_s": self.train_s,
            "val_s": self.val_s,
            "startup_s": self.startup_s,
            "samples_per_s": self.samples_per_s,
            "step_median_s": self.step_median_s,
            "shares": dict(self.shares),
            "ranks": self.ranks,
            "epochs": [e.to_json() for e in self.epochs],
            "device": {
                "step_median_s": self.device_step_median_s,
                "gpu_util_percent": self.gpu_util_percent,
            },
            "verdict": {
                "primary": self.primary,
                "findings": [f.to_json() for f in self.findings],
            },
        }


def summarize(
    periods: Sequence[Period],
    *,
    startup_s: float = 0.0,
    host: Sequence[Sample] = (),
    threads: int | None = None,
    cpus: float | None = None,
    device_memory: Mapping[int, tuple[int, int]] | None = None,
    replayed: Replay | None = None,
) -> RunSummary:
    train = [p for p in periods if p.kind == "train"]
    val = [p for p in periods if p.kind == "val"]
    train_s = sum(p.wall_s for p in train)
    val_s = sum(p.wall_s for p in val)
    steady = _steady(train)
    counted = [p.samples for p in train if p.samples is not None]
    samples = sum(counted) if counted else None
    total = train_s + val_s + startup_s
    data_share = step_data_share(periods)
    shares = {
        "data_wait": data_share * train_s / total if total else 0.0,
        "compute": (1 - data_share) * train_s / total if total else 0.0,
        "validation": val_s / total if total else 0.0,
        "startup": startup_s / total if total else 0.0,
    }
    device = [p.device_s for p in steady if p.device_s is not None]
    gpu_util = _gpu_util(train, val, host)
    findings: list[Finding] = []
    primary = "insufficient-data"
    if len(train) >= MIN_STEPS:
        primary = _primary(shares, data_share, gpu_util, findings)
        step_median = statistics.median(p.wall_s for p in steady)
        if primary == "input-bound" and replayed is not None:
            findings[-1] = _confirmed(findings[-1], replayed, step_median)
        _epoch_spikes(train, findings)
        _memory_creep(train, host, findings)
        _oversubscription(threads, host, cpus, findings)
    return RunSummary(
        steps=len(train),
        samples=samples,
        train_s=train_s,
        val_s=val_s,
        startup_s=startup_s,
        samples_per_s=samples / train_s if samples and train_s else None,
        step_median_s=statistics.median(p.wall_s for p in steady) if steady else None,
        shares=shares,
        primary=primary,
        findings=tuple(findings),
        epochs=tuple(epoch_stats(periods, host, device_memory)) if periods else (),
        device_step_median_s=statistics.median(device) if device else None,
        gpu_util_percent=gpu_util,
    )


def _steady(train: Sequence[Period]) -> list[Period]:
    """Training steps other than each epoch's first (worker start-up, warm-up)."""
    return [p for p in train if not p.first_of_epoch and p.wall_s > 0] or list(train)


def step_data_share(periods: Sequence[Period]) -> float:
    """Median share of a steady training step spent waiting for data."""
    steady = _steady([p for p in periods if p.kind == "train"])
    shares = [p.data_wait_s / p.wall_s for p in steady if p.wall_s > 0]
    return statistics.median(shares) if shares else 0.0


def _gpu_util(
    train: Sequence[Period], val: Sequence[Period], host: Sequence[Sample]
) -> float | None:
    """Median NVML utilisation over the samples taken while training (not validating)."""
    if not train:
        return None
    low = train[0].start_s
    high = max(p.start_s + p.wall_s for p in train)
    values = [
        s.gpu_util_percent
        for s in host
        if s.gpu_util_percent is not None
        and low <= s.t_s <= high
        and not any(v.start_s <= s.t_s <= v.start_s + v.wall_s for v in val)
    ]
    return statistics.median(values) if values else None


def _gain(share: float) -> str:
    """What removing a cost that takes ``share`` of the time gains, at most."""
    if share >= 1:
        return "unbounded"
    factor = 1 / (1 - share)
    return f"+{factor - 1:.0%}" if factor < 2 else f"up to {factor:.1f}x"


def _primary(
    shares: dict[str, float], data_share: float, gpu_util: float | None, findings: list[Finding]
) -> str:
    if shares["validation"] >= VALIDATION_SHARE:
        findings.append(
            Finding(
                "validation-bound",
                {"validation_share": shares["validation"]},
                "validate less often, on fewer batches, or cache its deterministic "
                "preprocessing (label maps, decoded images)",
                f"if validation were free: {_gain(shares['validation'])} wall time saved",
            )
        )
        return "validation-bound"
    if shares["startup"] >= STARTUP_SHARE:
        findings.append(
            Finding(
                "startup-bound",
                {"startup_share": shares["startup"]},
                "defer heavy imports behind config validation (trainperf imports)",
                f"if start-up were free: {_gain(shares['startup'])}",
            )
        )
        return "startup-bound"
    if data_share >= INPUT_SHARE:
        findings.append(
            Finding(
                "input-bound",
                {"data_wait_share_of_step": data_share},
                "more DataLoader workers, cheaper per-sample work, or cache it "
                "(trainperf calibrate measures the loader settings)",
                f"if input were free: {_gain(data_share)} samples/s",
            )
        )
        return "input-bound"
    if gpu_util is not None and gpu_util < HOST_SYNC_UTIL:
        findings.append(
            Finding(
                "host-sync-bound",
                {"gpu_util_percent": gpu_util, "data_wait_share_of_step": data_share},
                "the GPU idles while the host works: find per-step synchronisations "
                "(.item(), .cpu(), printing or logging tensors, torch.cuda.synchronize) with "
                "torch.cuda.set_sync_debug_mode('warn') and move them out of the step or "
                "every N steps; larger batches, torch.compile or CUDA graphs cut launch "
                "overhead",
                f"if the GPU were kept busy: up to {100 / max(gpu_util, 1.0):.1f}x samples/s",
            )
        )
        return "host-sync-bound"
    if data_share <= COMPUTE_SHARE:
        return "compute-bound"
    return "balanced"


def _confirmed(finding: Finding, replayed: Replay, step_s: float) -> Finding:
    """The input-bound finding with the probe's measurement in place of the estimate."""
    evidence = {**finding.evidence, "step_s": step_s, "replay_step_s": replayed.step_s}
    if replayed.step_s >= CONFIRM_RATIO * step_s:
        gain = (
            f"not confirmed: with batches already in memory a step still took "
            f"{replayed.step_s * 1e3:.1f} ms against {step_s * 1e3:.1f} ms; the wait is "
            f"contention (threads, CPU) more than the loader"
        )
    else:
        gain = (
            f"measured by replaying {replayed.steps} cached batches: "
            f"{_gain(1 - replayed.step_s / step_s)} samples/s if input were free"
        )
    return Finding(finding.kind, evidence, finding.fix, gain)


def _epoch_spikes(train: Sequence[Period], findings: list[Finding]) -> None:
    firsts = [p.data_wait_s for p in train if p.first_of_epoch and p.index > 0]
    others = [p.data_wait_s for p in train if not p.first_of_epoch]
    if not firsts or not others:
        return
    typical = statistics.median(others)
    spike = statistics.median(firsts)
    if spike > EPOCH_START_SPIKE * max(typical, 1e-4):
        findings.append(
            Finding(
                "epoch-start-spike",
                {"first_batch_wait_s": spike, "median_batch_wait_s": typical},
                "keep workers alive between epochs (persistent_workers=True)",
                f"{spike - typical:.3f} s per epoch",
            )
        )


def _memory_creep(
    train: Sequence[Period], samples: Sequence[Sample], findings: list[Finding]
) -> None:
    """Peak memory (process and workers) per epoch that only ever grows."""
    bounds: dict[int, tuple[float, float]] = {}
    for p in train:
        low, high = bounds.get(p.epoch, (p.start_s, p.start_s + p.wall_s))
        bounds[p.epoch] = (min(low, p.start_s), max(high, p.start_s + p.wall_s))
    peaks = []
    for epoch in sorted(bounds):
        low, high = bounds[epoch]
        inside = [s.rss_bytes + s.children_rss_bytes for s in samples if low <= s.t_s <= high]
        if inside:
            peaks.append(max(inside))
    if len(peaks) < MIN_EPOCHS_FOR_CREEP:
        return
    growing = all(b > a for a, b in itertools.pairwise(peaks))
    if growing and peaks[-1] >= MEMORY_CREEP * peaks[0]:
        findings.append(
            Finding(
                "memory-creep",
                {"first_epoch_peak_mb": peaks[0] / 2**20, "last_epoch_peak_mb": peaks[-1] / 2**20},
                "something keeps references across epochs (losses kept with their graph, "
                "growing caches, metric lists); release them or detach",
                f"{(peaks[-1] - peaks[0]) / 2**20:.0f} MiB more over {len(peaks) - 1} "
                f"epochs, until the process is killed",
            )
        )


def _oversubscription(
    threads: int | None, samples: Sequence[Sample], cpus: float | None, findings: list[Finding]
) -> None:
    """More busy threads than CPUs: torch's intra-op pool plus one per worker process."""
    if threads is None:
        return
    if cpus is None:
        from trainperf.resources import detect_resources

        cpus = detect_resources(gpus=False).cpus_per_rank
    workers = max((s.children for s in samples), default=0)
    if threads + workers > cpus + 0.5:
        findings.append(
            Finding(
                "thread-oversubscription",
                {"intra_op_threads": threads, "worker_processes": workers, "cpu_budget": cpus},
                f"torch.set_num_threads({max(1, int(cpus) - workers)}), or fewer workers, so "
                f"threads and workers fit the CPU budget",
                "fewer context switches and less throttling; measure it with trainperf calibrate",
            )
        )


def summarize_folder(folder: Path) -> tuple[RunSummary, bool]:
    """A run folder's summary, recomputed from its records, and whether the run ended.

    A run of several ranks (``rank<N>`` folders) is summarised as rank 0, with the
    throughput of all ranks and a straggler finding when one rank's own share of a
    step (data wait and forward pass, before the gradients are synchronised) is
    ``STRAGGLER_FACTOR`` times the others'. Raises
    :class:`~trainperf.errors.RecordError` for records that are not trainperf's.
    """
    import dataclasses
    import json

    from trainperf.errors import RecordError
    from trainperf.monitoring.probe import PROBE_FILE, read_replay
    from trainperf.monitoring.records import (
        DEVICE_MEMORY,
        RunMeta,
        rank_folders,
        read_device_memory,
        read_periods,
    )
    from trainperf.monitoring.sampler import read_samples

    folders = rank_folders(folder)
    if not folders:
        raise RecordError(f"no run records in {folder}")
    summaries, own, finished = [], [], True
    for path in folders:
        try:
            periods = read_periods(path / "steps.jsonl")
            meta_file = path / "meta.json"
            meta = None
            if meta_file.is_file():
                meta = RunMeta.from_json(json.loads(meta_file.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:  # JSON and text decoding errors included
            raise RecordError(f"cannot read the run at {path}: {exc}") from None
        startup = 0.0
        if meta is not None and meta.from_process_start:
            startup = next((p.start_s for p in periods if p.kind == "train"), 0.0)
        host = read_samples(path / "samples.jsonl")
        device_memory = read_device_memory(path / DEVICE_MEMORY)
        replayed = read_replay(path / PROBE_FILE)
        summaries.append(
            summarize(
                periods,
                startup_s=startup,
                host=host,
                device_memory=device_memory,
                replayed=replayed,
            )
        )
        own.append(_own_time(periods))
        finished = finished and (path / "summary.json").is_file()
    first = summaries[0]
    if len(summaries) == 1:
        return first, finished
    rates = [s.samples_per_s for s in summaries if s.samples_per_s is not None]
    findings = list(first.findings)
    _straggler(own, first.step_median_s, findings)
    merged = dataclasses.replace(
        first,
        samples_per_s=sum(rates) if rates else None,
        ranks=len(summaries),
        findings=tuple(findings),
    )
    return merged, finished


STRAGGLER_FACTOR = 1.2


def _own_time(periods: Sequence[Period]) -> float | None:
    values = [
        p.before_backward_s if p.before_backward_s is not None else p.data_wait_s
        for p in periods
        if p.kind == "train" and not p.first_of_epoch
    ]
    return statistics.median(values) if values else None


def _straggler(own: list[float | None], step_s: float | None, findings: list[Finding]) -> None:
    known = [(rank, t) for rank, t in enumerate(own) if t is not None]
    if len(known) < 2 or step_s is None:
        return
    rank, slowest = max(known, key=lambda rt: rt[1])
    others = statistics.median(t for r, t in known if r != rank)
    if slowest > STRAGGLER_FACTOR * others and slowest - others > 0.05 * step_s:
        findings.append(
            Finding(
                "straggler-rank",
                {"rank": rank, "own_s": slowest, "other_ranks_own_s": others},
                f"rank {rank} spends longer on its own part of each step (data and forward "
                f"pass) than the others: check its data shard, its host and its device",
                f"the other ranks wait about {slowest - others:.3f} s per step for it",
            )
        )
