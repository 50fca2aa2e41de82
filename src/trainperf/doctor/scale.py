"""``trainperf doctor --scale 1,2``: what going from 1 to N ranks bought, and what ate the rest.

    report = measure_scaling(["torchrun", "--nproc-per-node", "{n}", "train.py"], [1, 2])
    report.rows[-1].efficiency, report.losses[-1].cause

The command holds ``{n}``, replaced by each rank count. In each round (interleaved:
1, 2, 1, 2, so that the machine's drift hits every count alike) the command runs
once per count through the doctor's monitored run, bounded by ``steps`` or
``budget_s`` and with no proofs (``TRAINPERF_DOCTOR_PROOFS=0``), each into its own
run folder ``<home>/runs/<id>-scale/n<count>-r<round>``. Every run is summarised
(:func:`~trainperf.monitoring.analyze.summarize_folder`) and its ranks' medians taken
(:mod:`trainperf.monitoring.ranks`): data wait, forward pass, sync (backward with the
gradient all-reduce, and the optimizer step), and the straggler wait inside sync.
:func:`~trainperf.doctor.scale_report.assemble` makes the report from them (the
efficiency and what ate it); it is written as ``scaling.json``
(:data:`trainperf._schema.SCALING`) and ``scaling.html`` in the parent folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import statistics
import time
from typing import TYPE_CHECKING

from trainperf.doctor.scale_report import ScaleRun, ScalingReport, assemble
from trainperf.errors import RecordError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from trainperf.monitoring.analyze import RunSummary
    from trainperf.monitoring.ranks import RankRow
    from trainperf.monitoring.records import Period

__all__ = [
    "DEFAULT_ROUNDS",
    "DEFAULT_STEPS",
    "JSON_FILE",
    "PAGE_FILE",
    "PLACEHOLDER",
    "measure_scaling",
    "parse_counts",
]

PLACEHOLDER = "{n}"
DEFAULT_STEPS = 60  # per run, when neither steps nor a budget is given
DEFAULT_ROUNDS = 2
JSON_FILE = "scaling.json"
PAGE_FILE = "scaling.html"
_EXAMPLE = "trainperf doctor --scale 1,2 -- torchrun --nproc-per-node {n} train.py"


def parse_counts(text: str) -> tuple[int, ...]:
    """``"1,2,4"`` -> ``(1, 2, 4)``; a :class:`UsageError` naming the bad value."""
    words = [w.strip() for w in text.split(",")]
    if not all(w.isdecimal() for w in words):
        raise UsageError(
            f"--scale takes rank counts separated by commas, such as 1,2 or 1,2,4; got {text!r}"
        )
    counts = tuple(int(w) for w in words)
    _check_counts(counts)
    return counts


def _check_counts(counts: Sequence[int]) -> None:
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in counts):
        shown = ",".join(str(n) for n in counts)
        raise UsageError(f"--scale rank counts must be integers >= 1, got {shown}; e.g. 1,2")
    if len(counts) < 2:
        raise UsageError(
            f"--scale needs at least 2 rank counts to compare, got {len(counts)}; e.g. 1,2"
        )
    if len(set(counts)) != len(counts):
        shown = ",".join(str(n) for n in counts)
        raise UsageError(f"--scale lists a rank count twice ({shown}); give each once, e.g. 1,2")


def measure_scaling(
    command: Sequence[str],
    counts: Sequence[int],
    *,
    steps: int | None = None,
    budget_s: float | None = None,
    rounds: int = DEFAULT_ROUNDS,
    progress: Callable[[str], None] | None = None,
    home: Path | None = None,
) -> ScalingReport:
    """Run ``command`` at each rank count, ``rounds`` times interleaved; see the module."""
    from trainperf._command import refuse_missing_script
    from trainperf.monitoring.session import new_run_id
    from trainperf.settings import Settings

    say = progress or (lambda message: None)
    if not command:
        raise UsageError(f"give the command to scale after --, e.g. {_EXAMPLE}")
    if not any(PLACEHOLDER in word for word in command):
        raise UsageError(
            f"the command has no {PLACEHOLDER} for the rank count; put it where the ranks "
            f"go, e.g. {_EXAMPLE}"
        )
    _check_counts(counts)
    if steps is not None and steps < 1:
        raise UsageError(f"--steps must be >= 1, got {steps}")
    if budget_s is not None and not budget_s > 0:
        raise UsageError(f"--budget must be > 0 seconds, got {budget_s:g}")
    if rounds < 1:
        raise UsageError(f"--rounds must be >= 1, got {rounds}")
    if steps is None and budget_s is None:
        steps = DEFAULT_STEPS
    refuse_missing_script(_filled(command, counts[0]))
    began = time.perf_counter()
    parent = (home or Settings.from_env().home()) / "runs" / f"{new_run_id()}-scale"
    runs: list[ScaleRun] = []
    total = rounds * len(counts)
    for r in range(1, rounds + 1):
        for n in counts:
            label = f"run {len(runs) + 1}/{total}, {n} rank{'s' if n > 1 else ''}, round {r}"
            say(label)
            folder = parent / f"n{n}-r{r}"
            try:
                run = _one_run(
                    _filled(command, n), n, r, folder, steps, budget_s, _prefixed(say, label)
                )
            except UsageError:  # the command cannot start: nothing ran, nothing is left
                with contextlib.suppress(OSError):
                    parent.rmdir()
                raise
            runs.append(run)
    report = assemble(
        runs,
        command=tuple(command),
        counts=tuple(counts),
        rounds=rounds,
        steps=steps,
        budget_s=budget_s,
        folder=str(parent),
        cpu_budget=_cpu_budget(),
        elapsed_s=time.perf_counter() - began,
    )
    from trainperf.doctor.scale_render import render_scaling_html

    say("report: writing scaling.json and the page")
    (parent / JSON_FILE).write_text(json.dumps(report.to_json(), indent=1) + "\n", "utf-8")
    (parent / PAGE_FILE).write_text(render_scaling_html(report), "utf-8")
    return report


def _filled(command: Sequence[str], n: int) -> list[str]:
    return [word.replace(PLACEHOLDER, str(n)) for word in command]


def _prefixed(say: Callable[[str], None], label: str) -> Callable[[str], None]:
    return lambda message: say(f"{label}: {message}")


def _cpu_budget() -> float | None:
    from trainperf.resources import detect_resources

    try:
        return detect_resources(gpus=False).cpu_budget
    except Exception:  # the report goes on without it; the advice names no budget
        return None


def _one_run(
    argv: list[str],
    n: int,
    r: int,
    folder: Path,
    steps: int | None,
    budget_s: float | None,
    say: Callable[[str], None],
) -> ScaleRun:
    """The command at ``n`` ranks, bounded and recorded, and its medians."""
    from trainperf.doctor.diagnose import (
        _deadline,
        _last_error,
        _monitored_run,
        _no_bootstrap,
        _tail,
    )
    from trainperf.monitoring.analyze import summarize_folder

    returncode, timed_out, _ = _monitored_run(
        argv, folder, steps, budget_s, False, say, proofs=False
    )
    tail = _tail(folder / "output.log")
    base = ScaleRun(n, r, str(folder), None if timed_out else returncode, None)
    failure = None
    if timed_out:
        failure = (
            f"stopped by the doctor: still running {_deadline(budget_s):.0f} s after it "
            "started; give a smaller --steps or --budget"
        )
    elif _no_bootstrap(tail):
        failure = (
            "the command's Python cannot import trainperf, so nothing was monitored; run it "
            "with the interpreter of the environment trainperf is installed in"
        )
    elif returncode != 0:
        failure = f"the command exited with code {returncode}: {_last_error(tail)}"
    try:
        summary, _ = summarize_folder(folder)
    except RecordError as exc:
        unread = f"its records could not be read: {exc}"
        return dataclasses.replace(base, failure=failure or unread)
    if summary.steps == 0:
        said = failure or (
            "no training step was recorded (no torch optimizer step or backward() seen); "
            f"its last output line: {_last_error(tail)}"
        )
        return dataclasses.replace(base, failure=said)
    rows = _rank_rows(folder, summary)
    breakdown = summary.rank_breakdown
    straggler = 0.0 if len(rows) < 2 else breakdown.wait_s if breakdown else None
    threads = [row.intra_op_threads for row in rows if row.intra_op_threads is not None]
    return ScaleRun(
        ranks=n,
        round=r,
        run=str(folder),
        returncode=base.returncode,
        failure=failure,
        steps=summary.steps,
        samples_per_s=summary.samples_per_s,
        samples_per_step=summary.samples / summary.steps if summary.samples else None,
        step_s=_median([row.step_s for row in rows]),
        data_wait_s=_median([row.data_wait_s for row in rows]),
        forward_s=_median([row.forward_s for row in rows]),
        sync_s=_median([row.sync_s for row in rows]),
        straggler_s=straggler,
        threads_per_rank=statistics.median_low(threads) if threads else None,
        rank_rows=rows,
    )


def _rank_rows(folder: Path, summary: RunSummary) -> tuple[RankRow, ...]:
    """Each rank's medians: the multi-rank breakdown's rows, or for one process the
    same medians from its own steady steps."""
    from trainperf.monitoring.records import rank_folders, read_periods

    if summary.rank_breakdown is not None:
        return summary.rank_breakdown.rows
    ranks = rank_folders(folder)
    periods = read_periods(ranks[0] / "steps.jsonl")
    return (_single_row(periods, summary.samples_per_s, _threads(ranks[0])),)


def _single_row(periods: Sequence[Period], rate: float | None, threads: int | None) -> RankRow:
    from trainperf.monitoring.ranks import RankRow

    steady = [p for p in periods if p.kind == "train" and not p.first_of_epoch]
    arrival = [
        p.data_wait_s if p.before_backward_s is None else p.before_backward_s for p in steady
    ]
    forwards = [
        p.before_backward_s - p.data_wait_s for p in steady if p.before_backward_s is not None
    ]
    return RankRow(
        rank=0,
        steps=len(steady),
        step_s=_median([p.wall_s for p in steady]),
        data_wait_s=_median([p.data_wait_s for p in steady]),
        forward_s=_median(forwards),
        arrival_s=_median(arrival),
        sync_s=_median([p.wall_s - a for p, a in zip(steady, arrival, strict=True)]),
        slowest_share=0.0,
        samples_per_s=rate,
        intra_op_threads=threads,
    )


def _threads(folder: Path) -> int | None:
    from trainperf.monitoring.records import RunMeta

    try:
        meta = RunMeta.from_json(json.loads((folder / "meta.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, RecordError):
        return None
    return meta.intra_op_threads


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None
