"""``calibrate()`` and ``calibrated_loader()``: measured DataLoader settings, kept.

    calibration = trainperf.calibrate(dataset, batch_size=64)
    loader = calibration.loader(dataset, shuffle=True)
    with calibration.chosen.threads():       # the main process's measured thread count
        train(loader)

    loader = trainperf.calibrated_loader(dataset, batch_size=64, shuffle=True)

Every candidate is measured as its advice is written (see
:mod:`~trainperf.calibration.config`): torch's threads set in this process, worker
threads only through the ``worker_init_fn`` of ``loader_kwargs()``; the workers
otherwise see this process as the caller left it. ``Calibration.speedup`` is the
choice over the first candidate (workers=0, every CPU to the training process),
with a bootstrap interval from the chunks each was timed in (separate runs, so
within-run noise only); ``verify.measure_side_by_side`` measures advice against
the original interleaved, for a claim.

Without ``train_step`` only the input pipeline is timed (fetches per second): the
right question when the model is not at hand, and the seed of the search. With
``train_step(batch)``, each fetch is followed by the real step (host-to-device copy
included), the compute floor is measured by replaying cached batches, and the search
stops once a candidate is within a few percent of it.

A result is stored in ``.trainperf/calibration.json`` under the environment, the
dataset, the batch size and the mode, and reused while it is younger than ``ttl_s``
after a quick re-check (a few batches of the stored choice; more than
``RECHECK_DROP`` slower than stored and the search runs again). Overrides:
``calibrate=False`` never measures (a stored result, else the static choice of
``detect_resources``), ``force=True`` always measures, ``samples=K`` times K batches
per candidate; ``TRAINPERF_CALIBRATE=0|1|force`` sets the default of the first two.

Under ``torch.distributed`` every rank calls ``calibrate``; the CPU budget is the
rank's share of the node, rank 0 measures, and the others wait for its result.

Start-up and epochs: candidates are weighed over a run of ``epochs`` epochs of the
dataset (default ``DEFAULT_EPOCHS``, said as assumed), each epoch paying its workers'
start-up again unless they persist (:mod:`~trainperf.calibration.epochs`). The start
methods (``fork``, ``forkserver``, ``spawn``: what a worker's start costs) are tried
at the best worker count, and the choice names the one it was measured under --
Python 3.14 changed Linux's default to ``forkserver``, where each worker unpickles the
dataset and imports the main module. The choice keeps its workers between epochs
(``persistent_workers=True``) unless ``persistent_workers=False`` is passed (a dataset
whose state changes between epochs, memory held between them); its start-up per epoch
with new and with live workers is measured either way.

Without ``train_step``, the budget keeps one CPU for the step it cannot see: the
result states it (``budget``) and shows the loader-only optimum, the fastest loading
measured past the budget, beside the choice (``loader_only``); every configuration
not measured is listed with the reason (``skipped``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

from trainperf._json import as_object, opt_float, req_float, req_list, req_str
from trainperf.calibration.batchsize import find_max_batch_size
from trainperf.calibration.budget import CpuBudget, LoaderOnly
from trainperf.calibration.config import LoaderConfig, WorkerThreads
from trainperf.calibration.epochs import EpochPlan, Restart
from trainperf.calibration.search import STEP_CPUS, Budget, search
from trainperf.calibration.speedup import Speedup, speedup_interval
from trainperf.calibration.store import DEFAULT_TTL_S, CalibrationStore, store_key
from trainperf.calibration.trials import Trial, TrialPlan, run_trial
from trainperf.errors import RecordError, UsageError
from trainperf.kvlog import log_kv

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from torch.utils.data import DataLoader

    from trainperf._json import JsonObject
    from trainperf.resources import ResourceLimits

__all__ = [
    "DEFAULT_SAMPLES",
    "RECHECK_DROP",
    "Calibration",
    "calibrate",
    "calibrated_loader",
    "find_max_batch_size",
]

logger = logging.getLogger("trainperf.calibrate")

DEFAULT_SAMPLES = 16  # timed batches per candidate
RECHECK_DROP = 0.15
DEFAULT_TIMEOUT_S = 120.0  # one batch slower than this fails its candidate
Source = Literal["measured", "stored", "default"]
_T = TypeVar("_T")


@dataclass(frozen=True)
class Calibration:
    """A calibration's outcome: the chosen configuration and every candidate measured."""

    chosen: LoaderConfig
    samples_per_s: float | None
    elapsed_s: float
    candidates: tuple[Trial, ...]
    source: Source
    reason: str
    mode: Literal["loader", "end-to-end"] = "loader"
    floor_samples_per_s: float | None = None
    created_at: float = field(default_factory=time.time)
    dataset: JsonObject = field(default_factory=dict)
    # The choice over the first candidate (workers=0, every CPU to the training
    # process), from the timed chunks of the two runs; None when not measured.
    speedup: Speedup | None = None
    # The run candidates were weighed over, the choice's start-up per epoch (new and
    # live workers) and its rate over that run; None where not measured.
    epochs: EpochPlan | None = None
    restart: Restart | None = None
    run_samples_per_s: float | None = None
    budget: CpuBudget | None = None
    loader_only: LoaderOnly | None = None  # loader mode only
    skipped: tuple[str, ...] = ()  # "num_workers 8, 12, 16: why", what was not measured

    @property
    def headroom(self) -> float | None:
        """Compute floor / chosen throughput (end-to-end mode): 1.0 means input is free."""
        if self.floor_samples_per_s is None or not self.samples_per_s:
            return None
        return self.floor_samples_per_s / self.samples_per_s

    def loader(self, dataset: object, **overrides: object) -> DataLoader[object]:
        """A DataLoader with the chosen settings; ``overrides`` win (shuffle, sampler...)."""
        from torch.utils.data import DataLoader

        kwargs = self.chosen.loader_kwargs()
        theirs = overrides.pop("worker_init_fn", None)
        ours = kwargs.get("worker_init_fn")
        if callable(theirs):
            kwargs["worker_init_fn"] = (
                _Both(ours, theirs) if isinstance(ours, WorkerThreads) else theirs
            )
        kwargs.update(overrides)
        return DataLoader(dataset, **kwargs)  # type: ignore[arg-type]

    def to_json(self) -> JsonObject:
        return {
            "chosen": self.chosen.to_json(),
            "samples_per_s": self.samples_per_s,
            "elapsed_s": round(self.elapsed_s, 4),
            "source": self.source,
            "reason": self.reason,
            "mode": self.mode,
            "floor_samples_per_s": self.floor_samples_per_s,
            "headroom": self.headroom,
            "created_at": self.created_at,
            "dataset": self.dataset,
            "speedup": None if self.speedup is None else self.speedup.value,
            "speedup_low": None if self.speedup is None else self.speedup.low,
            "speedup_high": None if self.speedup is None else self.speedup.high,
            "epochs": self._epochs_json(),
            "budget": None if self.budget is None else self.budget.to_json(),
            "loader_only": None if self.loader_only is None else self.loader_only.to_json(),
            "skipped": list(self.skipped),
            "candidates": [t.to_json() for t in self.candidates],
        }

    def _epochs_json(self) -> JsonObject | None:
        """One object of a fixed shape: the plan, the restart (null values when not
        measured) and the rate over the run."""
        if self.epochs is None:
            return None
        restart: JsonObject = {
            "first_batch_new_workers_s": None,
            "startup_new_workers_s": None,
            "first_batch_live_workers_s": None,
            "startup_live_workers_s": None,
            "live_epochs": None,
        }
        if self.restart is not None:
            restart = self.restart.to_json()
        return {**self.epochs.to_json(), **restart, "samples_per_s": self.run_samples_per_s}

    @classmethod
    def from_json(cls, data: JsonObject) -> Calibration:
        data = as_object(data, "a calibration")
        mode = req_str(data, "mode")
        source = req_str(data, "source")
        if mode not in ("loader", "end-to-end") or source not in ("measured", "stored", "default"):
            raise RecordError(f"unknown calibration mode {mode!r} or source {source!r}")
        found = data.get("epochs")
        epochs = None if found is None else as_object(found, "epochs")
        return cls(
            chosen=LoaderConfig.from_json(as_object(data.get("chosen"), "chosen")),
            samples_per_s=opt_float(data, "samples_per_s"),
            elapsed_s=req_float(data, "elapsed_s"),
            candidates=tuple(
                Trial.from_json(as_object(c, "a candidate")) for c in req_list(data, "candidates")
            ),
            source=source,  # type: ignore[arg-type]  # checked above
            reason=req_str(data, "reason"),
            mode=mode,  # type: ignore[arg-type]
            floor_samples_per_s=opt_float(data, "floor_samples_per_s"),
            created_at=req_float(data, "created_at"),
            dataset=as_object(data.get("dataset", {}), "dataset"),
            speedup=_speedup_from_json(data),
            # Each absent (null) in records from before they were measured.
            epochs=None if epochs is None else EpochPlan.from_json(epochs),
            restart=None if epochs is None else Restart.from_json(epochs),
            run_samples_per_s=None if epochs is None else opt_float(epochs, "samples_per_s"),
            budget=_optional(data, "budget", CpuBudget.from_json),
            loader_only=_optional(data, "loader_only", LoaderOnly.from_json),
            skipped=tuple(str(s) for s in req_list(data, "skipped") if isinstance(s, str)),
        )


def _optional(data: JsonObject, key: str, read: Callable[[JsonObject], _T]) -> _T | None:
    value = data.get(key)
    return None if value is None else read(as_object(value, key))


def _speedup_from_json(data: JsonObject) -> Speedup | None:
    value = opt_float(data, "speedup")
    low, high = opt_float(data, "speedup_low"), opt_float(data, "speedup_high")
    if value is None or low is None or high is None:
        return None  # not measured, or a record from before intervals were kept
    return Speedup(value, low, high)


@dataclass(frozen=True)
class _Both:
    """Our worker threads, then the caller's own ``worker_init_fn`` (picklable)."""

    ours: WorkerThreads
    theirs: Callable[[int], object]

    def __call__(self, worker_id: int) -> None:
        self.ours(worker_id)
        self.theirs(worker_id)


def calibrate(
    dataset: object,
    *,
    batch_size: int,
    collate_fn: Callable[..., object] | None = None,
    train_step: Callable[[object], object] | None = None,
    samples: int | None = None,
    calibrate: bool | None = None,
    force: bool | None = None,
    persist: bool = True,
    ttl_s: float = DEFAULT_TTL_S,
    max_workers: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    limits: ResourceLimits | None = None,
    home: Path | None = None,
    progress: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    epochs: int | None = None,
    persistent_workers: bool = True,
    start_methods: Sequence[str] | None = None,
) -> Calibration:
    """Measure (or reuse) the fastest DataLoader settings for ``dataset``; see the module.

    ``epochs``: how many epochs the loader will run for (start-up is weighed per epoch;
    default ``DEFAULT_EPOCHS``, assumed); ``persistent_workers=False``: the workers
    must start again every epoch (the choice is weighed, and advised, without them).
    ``start_methods``: the start methods that may be tried (default: every one this
    platform has); e.g. ``("fork",)`` where spawned workers could not import the main
    module (an interpreter shutting down). Raises ``UsageError`` when none is available.
    """
    _validate(dataset, batch_size, samples, max_workers, timeout_s, ttl_s, epochs)
    if not isinstance(persistent_workers, bool):
        raise UsageError(f"persistent_workers must be True or False, got {persistent_workers!r}")
    from trainperf.settings import Settings, calibrate_mode

    mode = calibrate_mode()
    if calibrate is None:
        calibrate = mode != "0"
    if force is None:
        force = mode == "force"
    store = None
    if persist:
        store = CalibrationStore((home or Settings.from_env().home()) / "calibration.json")
        store.check()  # a store that is not ours: say so before measuring anything

    def here() -> Calibration:
        return _calibrate_here(
            dataset,
            batch_size=batch_size,
            collate_fn=collate_fn,
            train_step=train_step,
            samples=samples or DEFAULT_SAMPLES,
            calibrate=calibrate,
            force=force,
            store=store,
            ttl_s=ttl_s,
            max_workers=max_workers,
            timeout_s=timeout_s,
            limits=limits,
            progress=progress or (lambda message: None),
            clock=clock,
            epochs=epochs,
            persistent=persistent_workers,
            start_methods=start_methods,
        )

    from trainperf.calibration.distributed import on_rank_zero

    return on_rank_zero(here)


_calibrate = calibrate  # calibrated_loader's own `calibrate` argument shadows the name


def _validate(
    dataset: object,
    batch_size: int,
    samples: int | None,
    max_workers: int | None,
    timeout_s: float,
    ttl_s: float,
    epochs: int | None = None,
) -> None:
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise UsageError(
            f"calibrate needs a map-style dataset (with __len__ and __getitem__), got "
            f"{type(dataset).__name__}; an IterableDataset has no indices to sample"
        )
    if len(dataset) == 0:
        raise UsageError("the dataset is empty: nothing to load, nothing to calibrate")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise UsageError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if samples is not None and (not isinstance(samples, int) or samples < 2):
        raise UsageError(f"samples (batches timed per candidate) must be >= 2, got {samples!r}")
    if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 0):
        raise UsageError(f"max_workers must be an integer >= 0, got {max_workers!r}")
    if not timeout_s > 0:
        raise UsageError(f"timeout_s must be > 0 seconds, got {timeout_s!r}")
    if not ttl_s >= 0:
        raise UsageError(f"ttl_s must be >= 0 seconds, got {ttl_s!r}")
    if epochs is not None and (
        not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1
    ):
        raise UsageError(f"epochs must be an integer >= 1, got {epochs!r}")


def _calibrate_here(
    dataset: object,
    *,
    batch_size: int,
    collate_fn: Callable[..., object] | None,
    train_step: Callable[[object], object] | None,
    samples: int,
    calibrate: bool,
    force: bool,
    store: CalibrationStore | None,
    ttl_s: float,
    max_workers: int | None,
    timeout_s: float,
    limits: ResourceLimits | None,
    progress: Callable[[str], None],
    clock: Callable[[], float],
    epochs: int | None,
    persistent: bool,
    start_methods: Sequence[str] | None = None,
) -> Calibration:
    from trainperf.calibration.dataset import dataset_fingerprint
    from trainperf.calibration.startmethod import available_start_methods, default_start_method
    from trainperf.fingerprint import environment_fingerprint
    from trainperf.resources import detect_resources

    began = clock()
    limits = limits or detect_resources()
    run_mode: Literal["loader", "end-to-end"] = "loader" if train_step is None else "end-to-end"
    digest, described = dataset_fingerprint(dataset, collate_fn)
    environment = environment_fingerprint(limits).digest
    # A run of other epochs, or without persistent workers, may want another choice.
    variant = ("" if epochs is None else f"/epochs={epochs}") + (
        "" if persistent else "/restarting"
    )
    key = store_key(environment, digest, batch_size, run_mode) + variant
    plan = TrialPlan(batches=samples, chunk=max(2, samples // 4), timeout_s=timeout_s)
    stored = _stored(store, key, ttl_s) if store is not None and not force else None
    if stored is None and store is not None and not force and train_step is None:
        # Measured end to end (trainperf doctor --apply, a train_step given), a result
        # answers the loader's question too, and better: it saw the step compete.
        stored = _stored(
            store, store_key(environment, digest, batch_size, "end-to-end") + variant, ttl_s
        )
    if stored is not None:
        if not calibrate:
            return stored
        progress(f"re-checking the stored choice ({stored.chosen.describe()})")
        again = _recheck(dataset, stored, plan, collate_fn, train_step, clock)
        if again is not None:
            return again
    elif not calibrate:
        return _default(limits, batch_size, described, clock() - began)
    budget = Budget(
        batch_size=batch_size,
        cpus=limits.usable_cpus,
        max_workers=16 if max_workers is None else max_workers,
        memory_bytes=limits.memory_per_rank_bytes,
        shm_free_bytes=limits.shm_free_bytes,
        local_world_size=limits.local_world_size,
        pin_memory=train_step is not None and bool(limits.gpus),
    )

    def report(trial: Trial) -> None:
        progress(f"measured {trial.config.describe()}: {trial.status}")
        rate = trial.samples_per_s
        log_kv(
            logger,
            "calibration_candidate",
            {
                **{
                    k: v
                    for k, v in trial.config.to_json().items()
                    if v is None or isinstance(v, str | int | float)
                },
                "status": trial.status,
                "samples_per_s": None if rate is None else round(rate, 2),
                "p95_s": None if trial.p95_s is None else round(trial.p95_s, 5),
                "reason": trial.reason or None,
            },
        )

    floor = None
    if train_step is not None:
        from trainperf.monitoring.probe import replay

        def floor(batches: list[object]) -> float:
            progress("measuring the compute floor (cached batches)")
            with LoaderConfig(batch_size=batch_size, main_threads=limits.usable_cpus).threads():
                return replay(train_step, batches, repeats=1).step_s

    def worker_pool_threads() -> int:
        from trainperf.calibration.pools import plain_worker_pools

        pools = plain_worker_pools()
        log_kv(logger, "worker_pools", dict(pools or {}))
        return max((pools or {}).values(), default=1)

    plan_epochs = EpochPlan.of(
        len(dataset),  # type: ignore[arg-type]  # checked by _validate
        batch_size,
        epochs=epochs,
        persistent=persistent,
        ranks=_ranks(),
    )
    allowed = [m for m in available_start_methods() if start_methods is None or m in start_methods]
    if not allowed:
        raise UsageError(
            f"none of the start methods {', '.join(start_methods or ())} is available here; "
            f"available: {', '.join(available_start_methods())}"
        )
    method = default_start_method()
    if method not in allowed:
        method = allowed[0]
    progress("measuring workers=0")
    result = search(
        dataset,
        budget,
        plan,
        collate_fn=collate_fn,
        step=train_step,
        floor=floor,
        clock=clock,
        report=report,
        worker_pool_threads=worker_pool_threads,
        epochs=plan_epochs,
        start_method=method,
        start_methods=[m for m in allowed if m != method],
    )
    cpu_budget = CpuBudget(
        cpus=limits.usable_cpus,
        step_cpus=STEP_CPUS,
        cpu_share=result.cpu_share,
        step_measured=train_step is not None,
    )
    loader_only = None
    if result.loader_only is not None and result.winner is not None:
        best = result.loader_only
        config = best.config  # as the choice would be advised
        if config.num_workers and persistent:
            config = config.replace(persistent_workers=True)
        loader_only = LoaderOnly(
            config=config,
            samples_per_s=best.samples_per_s,
            run_samples_per_s=result.score(best),
            is_choice=best.config == result.winner.config,  # both as measured
            searched=result.loader_only_searched,
            note=result.loader_only_note,
        )
    winner = result.winner
    if winner is None:
        calibration = dataclasses.replace(
            _default(limits, batch_size, described, clock() - began),
            candidates=tuple(result.trials),
            reason="every candidate failed; the static choice of detect_resources stands",
            mode=run_mode,
            epochs=plan_epochs,
            budget=cpu_budget,
            skipped=tuple(result.skipped),
        )
    else:
        chosen = winner.config
        if chosen.num_workers and persistent:
            chosen = chosen.replace(persistent_workers=True)  # no new workers at each epoch
        calibration = Calibration(
            chosen,
            winner.samples_per_s,
            clock() - began,
            tuple(result.trials),
            "measured",
            result.why,
            run_mode,
            floor_samples_per_s=result.floor_samples_per_s,
            dataset=described,
            speedup=_gain(result.baseline, winner),
            epochs=plan_epochs,
            restart=result.restart,
            run_samples_per_s=result.run_samples_per_s,
            budget=cpu_budget,
            loader_only=loader_only,
            skipped=tuple(result.skipped),
        )
    log_kv(
        logger,
        "calibration_chosen",
        {
            "config": calibration.chosen.describe(),
            "samples_per_s": calibration.samples_per_s,
            "reason": calibration.reason,
            "elapsed_s": round(calibration.elapsed_s, 2),
            "mode": run_mode,
        },
    )
    if store is not None and winner is not None:
        entry = dict(calibration.to_json())
        entry["ttl_s"] = ttl_s
        store.put(key, {"created_at": calibration.created_at, "ttl_s": ttl_s, "result": entry})
        _index(store, key, calibration, batch_size, digest)
    return calibration


def _ranks() -> int:
    """Ranks sharing the dataset (each reads its share of an epoch), 1 outside
    ``torch.distributed``."""
    import sys

    if "torch" not in sys.modules:
        return 1
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    return 1


def _gain(baseline: Trial | None, chosen: Trial) -> Speedup | None:
    """``chosen`` over ``baseline`` from their chunk rates (separate runs: unpaired), as
    the ratio of their throughputs (the chunks' harmonic means: bursts of prefetched
    batches do not count more than the time they took)."""
    if baseline is None:
        return None
    if baseline.config == chosen.config:
        return Speedup(1.0, 1.0, 1.0)
    if len(baseline.chunk_rates) < 2 or len(chosen.chunk_rates) < 2:
        return None
    return speedup_interval(baseline.chunk_rates, chosen.chunk_rates, paired=False, throughput=True)


def _index(
    store: CalibrationStore, key: str, calibration: Calibration, batch_size: int, dataset: str
) -> None:
    """A row in ``history.sqlite`` beside the store, for trends across calibrations."""
    from trainperf.monitoring.history import IndexedCalibration, index_calibration

    index_calibration(
        store.path.parent / "history.sqlite",
        IndexedCalibration(
            key=key,
            created_at=calibration.created_at,
            fingerprint=key.split("/", 1)[0],
            dataset=dataset,
            batch_size=batch_size,
            mode=calibration.mode,
            chosen=json.dumps(calibration.chosen.to_json()),
            samples_per_s=calibration.samples_per_s,
        ),
    )


def _stored(store: CalibrationStore, key: str, ttl_s: float) -> Calibration | None:
    entry = store.get(key, ttl_s=ttl_s)
    if entry is None:
        return None
    try:
        stored = Calibration.from_json(as_object(entry.get("result"), "result"))
    except RecordError as exc:
        logger.warning("ignoring a stored calibration this version cannot read: %s", exc)
        return None
    return dataclasses.replace(
        stored,
        elapsed_s=0.0,
        source="stored",
        reason=f"stored {time.strftime('%Y-%m-%d %H:%M', time.localtime(stored.created_at))}: "
        f"{stored.reason}",
    )


def _recheck(
    dataset: object,
    stored: Calibration,
    plan: TrialPlan,
    collate_fn: Callable[..., object] | None,
    train_step: Callable[[object], object] | None,
    clock: Callable[[], float],
) -> Calibration | None:
    """The stored choice if it still runs at its stored speed, else ``None``. A drop is
    confirmed by a second measurement before it counts: one slow pass is noise as often
    as not, and a new search costs far more than a second look."""
    quick = TrialPlan(batches=plan.batches, chunk=plan.batches, timeout_s=plan.timeout_s)
    was = stored.samples_per_s
    now = None
    for _ in range(2):
        trial = run_trial(
            dataset,
            stored.chosen.replace(persistent_workers=False),
            quick,
            start=0,
            collate_fn=collate_fn,
            step=train_step,
            judge=lambda rate, batches: None,
            clock=clock,
        )
        if trial.status == "measured" and trial.samples_per_s is not None:
            now = max(now or 0.0, trial.samples_per_s)
        if was is None or (now is not None and now >= (1 - RECHECK_DROP) * was):
            log_kv(
                logger, "calibration_reused", {"samples_per_s": now, "stored_samples_per_s": was}
            )
            return stored
    logger.info(
        "calibration_stale stored_samples_per_s=%s samples_per_s=%s: searching again", was, now
    )
    return None


def _default(
    limits: ResourceLimits, batch_size: int, described: JsonObject, elapsed: float
) -> Calibration:
    workers = limits.optimal_workers
    chosen = LoaderConfig(
        batch_size=batch_size,
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers else None,
        main_threads=limits.optimal_threads,
    )
    return Calibration(
        chosen,
        None,
        elapsed,
        (),
        "default",
        "not measured (calibrate=False and nothing stored): detect_resources' static choice",
        dataset=described,
    )


def calibrated_loader(
    dataset: object,
    *,
    batch_size: int,
    collate_fn: Callable[..., object] | None = None,
    train_step: Callable[[object], object] | None = None,
    calibrate: bool | None = None,
    force: bool | None = None,
    samples: int | None = None,
    epochs: int | None = None,
    **overrides: object,
) -> DataLoader[object]:
    """A DataLoader with the stored or freshly measured settings for ``dataset``;
    ``overrides`` (``shuffle=True``, ``drop_last``, a ``sampler``...) pass through,
    ``persistent_workers=False`` among them also to the calibration (see ``calibrate``)."""
    found = _calibrate(
        dataset,
        batch_size=batch_size,
        collate_fn=collate_fn,
        train_step=train_step,
        calibrate=calibrate,
        force=force,
        samples=samples,
        epochs=epochs,
        persistent_workers=overrides.get("persistent_workers") is not False,
    )
    if collate_fn is not None:
        overrides.setdefault("collate_fn", collate_fn)
    return found.loader(dataset, **overrides)
