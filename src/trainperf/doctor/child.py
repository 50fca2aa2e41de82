"""The part of ``trainperf doctor`` that runs inside the diagnosed command.

Loaded by the start-up bootstrap when ``TRAINPERF_DOCTOR`` is set. It bounds the
run (``TRAINPERF_DOCTOR_STEPS`` training steps or ``TRAINPERF_DOCTOR_BUDGET_S``
seconds from the process start) and, before the command ends, proves the advice
on the objects only this process holds: the DataLoaders its hooks saw.

* **input-bound** training: the training loader is calibrated (end to end through
  the real training step where the Lightning callback can give one, else the loader
  alone), and the gain over the loader's own settings is measured side by side;
* **input-bound** training or **validation** spending its time in the loader: a few
  batches are built twice (is the work deterministic?), profiled (which functions
  take the time?) and written to a scratch trainperf cache, whose reads are timed:
  the cached-against-uncached ratio is measured, not assumed.

A Lightning fit stops through ``trainer.should_stop`` (the callback polls
:attr:`Run.limit_reached`) and is proved at ``on_train_end``; a plain loop is proved
at its limit and then ended (``os._exit(0)``: its own loop cannot be stopped
politely), or at exit when it ends first. Results go to ``proofs.json`` in the
run folder; a proof that fails records its error instead.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainperf._schema import PROOFS
from trainperf.monitoring.analyze import INPUT_SHARE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from trainperf._json import Json, JsonObject
    from trainperf.calibration.config import LoaderConfig
    from trainperf.monitoring.hooks import LoaderSeen
    from trainperf.monitoring.records import Period
    from trainperf.monitoring.session import Run

__all__ = [
    "APPLY_VARIABLE",
    "BUDGET_VARIABLE",
    "CACHE_BATCHES",
    "DOCTOR_VARIABLE",
    "PROOFS_FILE",
    "PROOFS_VARIABLE",
    "STEPS_VARIABLE",
    "VALIDATION_SHARE",
    "arm",
    "cache_proof",
    "prove",
    "prover",
    "proving",
    "validation_time",
    "wants_validation_proof",
]

DOCTOR_VARIABLE = "TRAINPERF_DOCTOR"
STEPS_VARIABLE = "TRAINPERF_DOCTOR_STEPS"
BUDGET_VARIABLE = "TRAINPERF_DOCTOR_BUDGET_S"
APPLY_VARIABLE = "TRAINPERF_DOCTOR_APPLY"
# "0": the run is bounded and recorded, nothing is proved (``trainperf doctor --scale``).
PROOFS_VARIABLE = "TRAINPERF_DOCTOR_PROOFS"
PROOFS_FILE = "proofs.json"
CACHE_BATCHES = 4  # batches built, profiled and cached per loader
HOT_SHARE = 0.15  # a function taking this share of building a batch is named
# Validation is looked into once it takes this share of the run and its loader at
# least INPUT_SHARE of validation time (the monitor's own verdict needs 50%).
VALIDATION_SHARE = 0.1
# Calibrated settings the search found this much faster are timed as written, side by
# side with the loader's own, in VERIFY_ROUNDS turns of VERIFY_BATCHES batches each.
ADVICE_WORTH = 1.05
VERIFY_ROUNDS = 5
VERIFY_BATCHES = 8
_PROVED: set[int] = set()


def say(message: str) -> None:
    """A progress line the doctor shows while the command runs."""
    sys.stderr.write(f"trainperf doctor: {message}\n")
    sys.stderr.flush()


def arm(run: Run) -> None:
    """Make ``run`` (injected by ``trainperf run``'s bootstrap) the doctor's run.

    Under torch.distributed with several ranks the limit is agreed by all ranks
    (:mod:`trainperf.monitoring.agreement`), so that every rank stops after the same
    step; one rank then proves while the others wait at a barrier (:func:`_stop_ranks`).
    """
    from trainperf.monitoring.agreement import agree, world_size

    run.keep_loaders = True  # any rank may prove (see prover)
    steps = os.environ.get(STEPS_VARIABLE, "")
    budget = os.environ.get(BUDGET_VARIABLE, "")
    run.stop_steps = int(steps) if steps.isdecimal() and int(steps) > 0 else None
    with contextlib.suppress(ValueError):
        run.stop_after_s = float(budget) if budget else None
    if world_size() > 1:
        run.agree = agree
        run.on_limit = lambda: _stop_ranks(run)
    else:
        run.on_limit = lambda: _stop(run)


def _rank() -> int:
    """This process's rank under torch.distributed (``RANK``), else 0."""
    rank = os.environ.get("RANK", "")
    return int(rank) if rank.isdecimal() else 0


# The rank that proves: 0, or the rank the others wait for on data (agreed at the stop).
_PROVER = [0]


def proving() -> bool:
    """Whether this process proves: the doctor asked for proofs (``doctor --scale``
    asks for none) and this is the proving rank (rank 0 unless, at an agreed stop, one
    rank waited for its data much longer than the others: :func:`prover`)."""
    return os.environ.get(PROOFS_VARIABLE) != "0" and _rank() == _PROVER[0]


def prover(ranks: Sequence[tuple[float, ...]]) -> int:
    """The rank whose loader the proofs are about, from every rank's (median data wait,
    median step) in seconds: the one that waits longest for its data when that wait is
    a straggler's (:data:`~trainperf.monitoring.ranks.STRAGGLER_FACTOR` times the
    others' median and :data:`~trainperf.monitoring.ranks.STRAGGLER_STEP_SHARE` of a
    step longer), else rank 0."""
    from trainperf.monitoring.ranks import STRAGGLER_FACTOR, STRAGGLER_STEP_SHARE

    if len(ranks) < 2:
        return 0
    slow = max(range(len(ranks)), key=lambda r: ranks[r][0])
    others = statistics.median(v[0] for r, v in enumerate(ranks) if r != slow)
    wait, step = ranks[slow]
    if wait > STRAGGLER_FACTOR * others and wait - others > STRAGGLER_STEP_SHARE * step:
        return slow
    return 0


def _own_medians(run: Run) -> tuple[float, float]:
    """This rank's median data wait and median step over its steady training steps."""
    steady = [p for p in run.periods if p.kind == "train" and not p.first_of_epoch]
    if not steady:
        return 0.0, 0.0
    return (
        statistics.median(p.data_wait_s for p in steady),
        statistics.median(p.wall_s for p in steady),
    )


def _stop(run: Run) -> None:
    """A plain loop at its limit: prove, write the record, end the process."""
    try:
        steps = sum(p.kind == "train" for p in run.periods)
        say(f"stopping the command at its limit, after {steps} steps")
        run.__exit__(None, None, None)  # the record first: the step in hand is written too
        prove(run, stopped=True)
    except BaseException as exc:  # whatever happens, the program ends here, as promised
        say(f"proofs stopped: {type(exc).__name__}: {exc}")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _stop_ranks(run: Run) -> None:
    """Every rank at the agreed limit: the ranks choose the one that proves (:func:`prover`:
    rank 0, or a rank that keeps the others waiting for its data), each writes its
    record, the prover proves while the others wait at the doctor's barrier, then every
    rank ends (``os._exit(0)``)."""
    try:
        from trainperf.monitoring.agreement import gather

        gathered = gather(_own_medians(run))  # every rank is here, at the same step
        _PROVER[0] = prover(gathered) if gathered else 0
        if _rank() == _PROVER[0]:
            steps = sum(p.kind == "train" for p in run.periods)
            who = (
                ""
                if _PROVER[0] == 0
                else f"; rank {_PROVER[0]}, which waits longest for its data, proves"
            )
            say(f"stopping every rank at the limit they agreed on, after {steps} steps{who}")
        run.__exit__(None, None, None)
        prove(run, stopped=True)
    except BaseException as exc:  # whatever happens, every rank ends here, as promised
        say(f"proofs stopped: {type(exc).__name__}: {exc}")
    finally:
        _barrier()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _barrier() -> None:
    """Wait for every rank (its proofs done, rank 0 comes last). A rank whose group is
    gone, or whose wait times out, ends anyway: the others then end as they reach it."""
    torch = sys.modules.get("torch")
    dist = getattr(torch, "distributed", None)
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    with contextlib.suppress(Exception):
        dist.barrier()


def wants_validation_proof(share: float, val_s: float, val_wait_s: float) -> bool:
    """Validation takes VALIDATION_SHARE of the run and its loader INPUT_SHARE of it:
    the rule for the validation proof, and for the finding that reports it."""
    return val_s > 0 and share >= VALIDATION_SHARE and val_wait_s >= INPUT_SHARE * val_s


def validation_time(periods: Sequence[Period]) -> tuple[float, float]:
    """Seconds of validation, and of those the seconds waiting for its loader."""
    val = [p for p in periods if p.kind == "val"]
    return sum(p.wall_s for p in val), sum(p.data_wait_s for p in val)


def validation_worker_start(periods: Sequence[Period]) -> tuple[float, int]:
    """Seconds of validation's data wait spent before each pass's first batch, beyond the
    pass's typical batch wait (workers starting, when they are not persistent), and the
    number of passes that paid it."""
    paid, passes = 0.0, 0
    for p in periods:
        if p.kind != "val" or p.first_wait_s is None or not p.batches or p.batches < 2:
            continue
        typical = (p.data_wait_s - p.first_wait_s) / (p.batches - 1)
        if p.first_wait_s > typical:
            paid += p.first_wait_s - typical
            passes += 1
    return paid, passes


def prove(
    run: Run,
    *,
    train_step: Callable[[object], object] | None = None,
    stopped: bool = False,
    framework: str | None = None,
    at_exit: bool = False,
) -> None:
    """Run the proofs the run so far calls for, once, writing ``proofs.json`` after
    each (a command stopped meanwhile keeps those done). ``framework`` names the
    trainer whose settings the advice is written in (``"transformers"``:
    ``TrainingArguments``). ``at_exit``: the command ended before its limit and this
    runs as the interpreter shuts down, when spawned workers can no longer import the
    main module: no proof starts them. Never raises: trainperf must not break the
    program it watches."""
    if id(run) in _PROVED or not run.entered or not proving():
        return
    _PROVED.add(id(run))
    from trainperf.calibration.distributed import this_rank_only

    try:
        with this_rank_only():  # the other ranks are waiting, not calibrating with it
            _prove(run, train_step, stopped, framework, at_exit)
    except BaseException as exc:
        say(f"proofs stopped: {type(exc).__name__}: {exc}")
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt, SystemExit: the program's to handle


def _prove(
    run: Run,
    train_step: Callable[[object], object] | None,
    stopped: bool,
    framework: str | None,
    at_exit: bool = False,
) -> None:
    # The cut: the proofs are decided on the periods recorded so far, summarised as the
    # report will summarise them; the report takes the same periods (``cut_periods``)
    # and shows whatever ran after them apart.
    periods = run.periods
    summary = run.summarize(stopped_early=stopped)
    loaders = run.loaders
    train_id = run.train_loader
    proofs: list[Json] = []
    record: JsonObject = {
        "schema_version": PROOFS.version,
        "stopped_at_step": summary.steps if stopped else None,
        "framework": framework,
        "cut_periods": len(periods),
        "data_wait_share_of_step": summary.step.share,
        "step_verdict": summary.step.kind,
        "validation_share": summary.shares["validation"],
        "loaders": [
            {"role": "training" if key == train_id else "validation", **_describe(seen)}
            for key, seen in loaders.items()
        ],
        "proofs": proofs,
    }

    def write() -> None:
        text = json.dumps(record, indent=1, default=str)
        (run.path / PROOFS_FILE).write_text(text, encoding="utf-8")

    write()
    train = loaders.get(train_id) if train_id is not None else None
    val_s, val_wait_s = validation_time(periods)
    wanted: list[tuple[str, Callable[[], JsonObject]]] = []
    # Workers' threads are what the calibration's axes reach (workers, threads in them,
    # the training process's threads beside them); a step's own threads alone are not.
    oversubscribed = (
        train is not None
        and train.num_workers > 0
        and any(f.kind == "thread-oversubscription" for f in summary.findings)
    )
    if train is not None and (summary.step.kind == "input-bound" or oversubscribed):
        # Workers and threads are the calibration's axes: it measures either advice.
        wanted.append(
            (
                "calibration",
                functools.partial(calibration_proof, train, train_step, at_exit=at_exit),
            )
        )
    if train is not None and summary.step.kind == "input-bound":
        stages = None if summary.workers is None else summary.workers.stages
        slow = [index for index, _ in stages.slowest] if stages is not None else []
        wanted.append(("cache", functools.partial(cache_proof, train, role="training", slow=slow)))
    if train is not None and wants_persistence_proof(summary, train):
        if at_exit and train.start_method in ("spawn", "forkserver"):
            proofs.append(
                {
                    "kind": "persistence",
                    "role": "training",
                    "skipped": (
                        f"the command ended before the doctor's limit, so its proofs ran as "
                        f"it exited, when {train.start_method} workers can no longer import "
                        "its main module; a smaller --steps or --budget stops it inside its "
                        "loop"
                    ),
                }
            )
        else:
            wanted.append(("persistence", functools.partial(persistence_proof, train)))
    if train is not None and train.num_workers > 0:
        from trainperf.doctor.memory import large_lists, memory_proof

        if large_lists(train.dataset):  # copy-on-read is possible: measure it
            wanted.append(("memory", functools.partial(memory_proof, train)))
    if wants_validation_proof(summary.shares["validation"], val_s, val_wait_s):
        for key, seen in loaders.items():
            if key != train_id:
                wanted.append(("cache", functools.partial(cache_proof, seen, role="validation")))
    with run.unrecorded():  # nothing below is the program's own work
        for kind, action in wanted:
            proofs.append(_guard(kind, action))
            write()


def _guard(kind: str, action: Callable[[], JsonObject]) -> JsonObject:
    """A proof that fails is reported as such; the command goes on."""
    try:
        return action()
    except Exception as exc:
        say(f"{kind} proof failed: {type(exc).__name__}: {exc}")
        return {"kind": kind, "error": f"{type(exc).__name__}: {exc}"}
    except KeyboardInterrupt:
        say(f"{kind} proof interrupted")
        raise


def _describe(seen: LoaderSeen) -> JsonObject:
    dataset = seen.dataset
    try:
        length: int | None = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        length = None
    return {
        "dataset": f"{type(dataset).__module__}.{type(dataset).__qualname__}",
        "length": length,
        "batch_size": seen.batch_size,
        "num_workers": seen.num_workers,
        "prefetch_factor": seen.prefetch_factor,
        "pin_memory": seen.pin_memory,
    }


PERSISTENCE_EPOCHS = 3  # epoch starts timed per variant, after one of each to warm up


def wants_persistence_proof(summary: Any, seen: LoaderSeen) -> bool:
    """The run's worker starts are a finding, and its training loader starts its
    workers every epoch."""
    return (
        seen.num_workers > 0
        and not seen.persistent_workers
        and any(
            f.kind == "worker-startup" and f.evidence.get("avoidable_s", 0.0) > 0
            for f in summary.findings
        )
    )


def _rebuilt(seen: LoaderSeen, *, persistent: bool, start_method: str | None = None) -> Any:
    """The training loader as the user would write it, with ``persistent_workers`` (and
    another ``multiprocessing_context``, when given)."""
    from torch.utils.data import DataLoader

    return DataLoader(
        seen.dataset,  # type: ignore[arg-type]
        batch_size=seen.batch_size,
        collate_fn=seen.collate_fn,
        drop_last=seen.drop_last,
        num_workers=seen.num_workers,
        prefetch_factor=seen.prefetch_factor,
        pin_memory=seen.pin_memory,
        worker_init_fn=seen.worker_init_fn,
        multiprocessing_context=start_method or seen.start_method,
        persistent_workers=persistent,
    )


def _fork_is_safe() -> bool:
    """``fork`` copies the process: unsafe once CUDA is initialised (its state does not
    survive a fork), and not where the calibration never advises it (macOS)."""
    from trainperf.calibration.startmethod import available_start_methods

    if "fork" not in available_start_methods():
        return False
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    return not (cuda is not None and cuda.is_initialized())


def persistence_proof(seen: LoaderSeen, *, epochs: int = PERSISTENCE_EPOCHS) -> JsonObject:
    """Time epoch starts of the training loader as it is and with
    ``persistent_workers=True``, interleaved: from ``iter(loader)`` to its workers'
    first round of batches (one a worker), and, for the loader as it is, its workers'
    shutdown at the epoch's end, which persistent workers skip too. A loader whose
    workers are spawned (``spawn``, ``forkserver``) is also timed with
    ``multiprocessing_context="fork"`` where forking is safe. Each variant starts once
    before the timed epochs (the persistent loader's first start is the one it keeps)."""
    out: JsonObject = {"kind": "persistence", "role": "training", **_describe(seen)}
    out["start_method"] = seen.start_method
    say(f"timing {epochs} epoch starts with persistent_workers=True against without")
    variants: dict[str, Any] = {
        "original": _rebuilt(seen, persistent=False),
        "persistent": _rebuilt(seen, persistent=True),
    }
    if seen.start_method in ("spawn", "forkserver") and _fork_is_safe():
        variants["fork"] = _rebuilt(seen, persistent=False, start_method="fork")
    try:
        length = len(variants["original"])
    except TypeError:
        length = seen.num_workers
    batches = max(1, min(seen.num_workers, length))

    def start(loader: Any) -> float:
        began = time.perf_counter()
        iterator = iter(loader)
        for _ in range(batches):
            next(iterator)
        if not loader.persistent_workers:
            iterator._shutdown_workers()  # what the end of its epoch costs it
        del iterator
        return time.perf_counter() - began

    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for loader in variants.values():
            start(loader)
        for _ in range(epochs):
            for name, loader in variants.items():
                times[name].append(start(loader))
    finally:
        iterator = getattr(variants["persistent"], "_iterator", None)
        if iterator is not None:
            iterator._shutdown_workers()
    out.update(epochs=epochs, batches=batches)
    for name, taken in times.items():
        out[f"{name}_times"] = [round(t, 6) for t in taken]
        out[f"{name}_s"] = statistics.median(taken)
    return out


def calibration_proof(
    seen: LoaderSeen, train_step: Callable[[object], object] | None, *, at_exit: bool = False
) -> JsonObject:
    """Calibrate the training loader and measure its own settings against the choice.
    ``at_exit``: fork only (spawned workers could not import the main module)."""
    from trainperf.calibration.api import calibrate

    out: JsonObject = {"kind": "calibration", "role": "training", **_describe(seen)}
    if seen.batch_size is None or not _map_style(seen.dataset):
        out["skipped"] = "the loader is not a map-style dataset batched by batch_size"
        return out
    say(
        "calibrating the training loader "
        + ("end to end (the real training step)" if train_step else "(loading only)")
    )
    apply = os.environ.get(APPLY_VARIABLE) == "1"
    calibration = calibrate(
        seen.dataset,
        batch_size=seen.batch_size,
        collate_fn=seen.collate_fn,
        train_step=train_step,
        force=True,
        persist=apply,
        progress=say,
        start_methods=("fork",) if at_exit and _fork_is_safe() else None,
    )
    current = [
        t
        for t in calibration.candidates
        if t.config.num_workers == seen.num_workers
        and t.config.worker_threads is None  # the loader's own workers set no limit
        and t.samples_per_s
        and (seen.num_workers == 0 or t.config.prefetch_factor in (None, seen.prefetch_factor))
        and (seen.num_workers == 0 or t.config.multiprocessing_context in (None, seen.start_method))
    ]
    baseline = max((t.samples_per_s or 0.0 for t in current), default=None)
    if not baseline:
        baseline = _own_settings(seen, train_step)
    gain = calibration.samples_per_s / baseline if baseline and calibration.samples_per_s else None
    out.update(
        calibration=calibration.to_json(),
        applied=apply,
        baseline_samples_per_s=baseline,
        chosen_samples_per_s=calibration.samples_per_s,
        gain=gain,
    )
    own = _own_config(seen)
    if gain is not None and gain >= ADVICE_WORTH and calibration.chosen != own:
        # The search's figure is not the advice: time the advice as the user would
        # write it against the loader's own settings, in turns, before calling it measured.
        from trainperf.calibration.verify import measure_side_by_side

        say("timing the advice as written against the loader's own settings, in turns")
        try:
            checked = measure_side_by_side(
                seen.dataset,
                own,
                calibration.chosen,
                collate_fn=seen.collate_fn,
                train_step=train_step,
                rounds=VERIFY_ROUNDS,
                batches=VERIFY_BATCHES,
            )
        except Exception as exc:  # the search's figure stays, marked as an estimate
            out["verify_error"] = f"{type(exc).__name__}: {exc}"
        else:
            out["verified"] = checked.to_json()
    return out


def _own_config(seen: LoaderSeen) -> LoaderConfig:
    from trainperf.calibration.config import LoaderConfig

    assert seen.batch_size is not None
    workers = seen.num_workers
    return LoaderConfig(
        batch_size=seen.batch_size,
        num_workers=workers,
        prefetch_factor=seen.prefetch_factor if workers else None,
        pin_memory=seen.pin_memory,
    )


def _own_settings(seen: LoaderSeen, train_step: Callable[[object], object] | None) -> float | None:
    """The loader's own settings, timed like a candidate, when the search skipped them."""
    from trainperf.calibration.api import DEFAULT_SAMPLES, DEFAULT_TIMEOUT_S
    from trainperf.calibration.trials import TrialPlan, run_trial

    config = _own_config(seen)
    say(f"measuring the loader's own settings ({config.describe()})")
    plan = TrialPlan(batches=DEFAULT_SAMPLES, chunk=4, timeout_s=DEFAULT_TIMEOUT_S)
    trial = run_trial(
        seen.dataset,
        config,
        plan,
        start=0,
        collate_fn=seen.collate_fn,
        step=train_step,
        judge=lambda rate, batches: None,
        clock=time.perf_counter,
    )
    return trial.samples_per_s


def _map_style(dataset: object) -> bool:
    return hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")


def cache_proof(
    seen: LoaderSeen, *, role: str, batches: int = CACHE_BATCHES, slow: Sequence[int] = ()
) -> JsonObject:
    """Build a few batches twice, profile one, cache them and time the reads. ``slow``:
    the slowest samples the workers timed; the first batch built is made of them, so
    the proof sees the costly tail and not only the loader's first samples."""
    out: JsonObject = {"kind": "cache", "role": role, **_describe(seen)}
    if not _map_style(seen.dataset):
        out["skipped"] = "an iterable dataset: its samples have no index to cache by"
        return out
    say(f"measuring the {role} loader's work cached against uncached")
    dataset: Any = seen.dataset
    size = seen.batch_size or 1
    count = min(batches, max(1, len(dataset) // size))
    groups = [list(range(i * size, min((i + 1) * size, len(dataset)))) for i in range(count)]
    named = [i for i in slow if 0 <= i < len(dataset)][:size]
    if named:
        groups = [named, *groups[: max(count - 1, 1)]]
        out["slow_indices"] = list(named)

    collating: list[float] = []

    def build(indices: list[int]) -> object:
        samples = [dataset[i] for i in indices]
        started = time.perf_counter()
        try:
            if seen.batch_size is None:  # batching off: the collate function converts one
                return samples[0] if seen.collate_fn is None else seen.collate_fn(samples[0])
            if seen.collate_fn is None:
                from torch.utils.data import default_collate

                return default_collate(samples)
            return seen.collate_fn(samples)
        finally:
            collating.append(time.perf_counter() - started)

    reference = build(groups[0])  # also the warm-up
    built: list[object] = []
    uncached: list[float] = []
    collating.clear()
    for indices in groups:
        started = time.perf_counter()
        built.append(build(indices))
        uncached.append(time.perf_counter() - started)
    same = _same(flatten(reference), flatten(built[0]))
    out.update(
        batches=count,
        samples_per_batch=size,
        deterministic=same,
        uncached_s=statistics.median(uncached),
        # Of that, the collate function's part: a sample cache (CachedDataset) keeps the
        # samples, and the batch is still collated from them every time.
        collate_s=statistics.median(collating),
        hot=_hot_functions(build, groups[-1]),
    )
    if not same:
        out["reason"] = (
            "the same batch built twice differs (random augmentation?): cache what comes "
            "before the random part"
        )
        return out
    reads, nbytes = _cached_reads(built)
    cached = statistics.median(reads)
    speedup = statistics.median(uncached) / cached if cached > 0 else None
    out.update(
        cached_s=cached,
        bytes_per_batch=nbytes,
        speedup=speedup,
        # Every timing, for the interval of the ratio (built against read).
        uncached_times=[round(t, 7) for t in uncached],
        cached_times=[round(t, 7) for t in reads],
    )
    return out


def flatten(value: object, prefix: str = "v", depth: int = 0) -> dict[str, object]:
    """A batch as named leaves: arrays (tensors as numpy) and JSON scalars."""
    import numpy as np

    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return {prefix: value.detach().cpu().numpy()}
    if isinstance(value, np.ndarray):
        return {prefix: value}
    if value is None or isinstance(value, bool | int | float | str):
        return {prefix: value}
    if depth > 8:
        raise TypeError(f"batch nested deeper than 8 levels at {prefix}")
    items: Iterator[tuple[object, object]]
    if isinstance(value, dict):
        items = iter(value.items())
    elif isinstance(value, list | tuple):
        items = iter(enumerate(value))
    elif hasattr(value, "__dict__"):
        items = iter(vars(value).items())
    else:
        raise TypeError(f"cannot cache a {type(value).__name__} (at {prefix})")
    out: dict[str, object] = {}
    for key, item in items:
        out.update(flatten(item, f"{prefix}.{key}", depth + 1))
    return out


def _same(a: dict[str, object], b: dict[str, object]) -> bool:
    import numpy as np

    if a.keys() != b.keys():
        return False
    for key, left in a.items():
        right = b[key]
        if isinstance(left, np.ndarray):
            if not isinstance(right, np.ndarray) or not np.array_equal(left, right, equal_nan=True):
                return False
        elif left != right:
            return False
    return True


def _cached_reads(built: list[object]) -> tuple[list[float], int]:
    """Times to read each batch back from a trainperf cache entry, as tensors (three
    reads of each), and the largest entry's size in bytes."""
    import torch

    from trainperf.cache.entry import read_entry, write_entry

    times = []
    nbytes = 0
    with tempfile.TemporaryDirectory(prefix="trainperf-doctor-") as scratch:
        paths = []
        for i, batch in enumerate(built):
            path = Path(scratch) / f"{i}.entry"
            nbytes = max(nbytes, write_entry(path, flatten(batch), {}, {}))
            paths.append(path)
        for path in paths:
            read_entry(path, check=True)  # the first read of an entry checks it
        for _ in range(3):
            for path in paths:
                started = time.perf_counter()
                _, value = read_entry(path, check=False)
                assert isinstance(value, dict)
                for leaf in value.values():
                    if hasattr(leaf, "dtype"):
                        torch.from_numpy(leaf)
                times.append(time.perf_counter() - started)
    return times, nbytes


def _hot_functions(
    action: Callable[[list[int]], object], indices: list[int], top: int = 4
) -> list[Json]:
    """Where building a batch spends its time: call paths from the batch down to the
    deepest functions that still take ``HOT_SHARE`` of it (cProfile, one batch), e.g.
    ``_Collate.__call__ > collate_pages > make_label_maps 54%``."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(action, indices)
    stats: Any = pstats.Stats(profiler)
    children: dict[tuple[str, int, str], dict[tuple[str, int, str], float]] = {}
    for function, (_, _, _, _, callers) in stats.stats.items():
        for caller, (_, _, _, cumulative) in callers.items():
            children.setdefault(caller, {})[function] = cumulative
    code = action.__code__
    root = (code.co_filename, code.co_firstlineno, code.co_name)
    if root not in stats.stats:
        return []
    total = stats.stats[root][3] or 1e-12
    paths: list[tuple[float, list[tuple[str, int, str]]]] = []

    def descend(node: tuple[str, int, str], path: list[tuple[str, int, str]], share: float) -> None:
        # A path's share is its last call's time from its caller (cProfile keeps it per
        # caller), bounded by the path above it: a function called from two places
        # gives each path its own part, never its total twice.
        heavy = [
            (min(seconds / total, share), child)
            for child, seconds in children.get(node, {}).items()
            if seconds / total >= HOT_SHARE and child not in path and child != root
        ]
        heavy = [(part, child) for part, child in heavy if part >= HOT_SHARE]
        if not heavy or len(path) > 12:
            if path:
                paths.append((share, path))
            return
        below = 0.0
        for part, child in sorted(heavy, reverse=True):
            part = min(part, share - below)  # the children share their parent's time
            if part >= HOT_SHARE:
                descend(child, [*path, child], part)
                below += part

    descend(root, [], 1.0)
    paths.sort(key=lambda item: item[0], reverse=True)
    return [
        {
            "function": " > ".join(_name(f) for f in path if not _plumbing(f)) or _name(path[-1]),
            "file": path[-1][0],
            "share": share,
        }
        for share, path in paths[:top]
    ]


def _name(function: tuple[str, int, str]) -> str:
    file, _, name = function
    return name if file == "~" else f"{Path(file).stem}.{name}"


def _plumbing(function: tuple[str, int, str]) -> bool:
    """Frames that only pass the batch along: comprehensions, lambdas, built-ins."""
    file, _, name = function
    return name.startswith("<") or file == "~"
