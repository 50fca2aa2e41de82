"""Two commands run in interleaved, bounded, monitored segments (``trainperf ab``).

Each segment is one run of a command, monitored as ``trainperf run`` monitors it and
ended after a number of training steps (:mod:`trainperf.monitoring.bounded`) or at
its own end, recorded in its own run folder (``a1``, ``b1``, ``a2``, ...) under one
folder. Rounds alternate which side goes first (A B, B A, A B, ...): each side runs
first equally often, so a machine steadily warming up or filling its caches favours
neither. A command's output goes to ``output.log`` in its segment's folder.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from trainperf.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    from trainperf._json import JsonObject

__all__ = ["LOG_FILE", "Segment", "Side", "order", "run_segments"]

LOG_FILE = "output.log"
Side = Literal["A", "B"]


@dataclass(frozen=True)
class Segment:
    """One segment: its steady step times (seconds, see ``segment_steps``), the samples
    the whole job trained in each (``job_samples``; None when not known), and record."""

    side: Side
    round: int  # from 1
    folder: Path  # the run folder (rank 0's, under torch.distributed)
    steady: tuple[float, ...]
    recorded_steps: int  # training steps in the record, warm-up included
    samples: tuple[int, ...] | None = None
    ranks: int = 1

    def per_sample(self) -> tuple[float, ...] | None:
        """Seconds per sample of the job, step by step; None when samples are unknown."""
        if self.samples is None:
            return None
        return tuple(s / n for s, n in zip(self.steady, self.samples, strict=True))

    def to_json(self) -> JsonObject:
        import statistics

        return {
            "side": self.side,
            "round": self.round,
            "run": str(self.folder),
            "ranks": self.ranks,
            "recorded_steps": self.recorded_steps,
            "steady_steps": len(self.steady),
            "median_s": statistics.median(self.steady) if self.steady else None,
            "samples_per_step": statistics.median(self.samples) if self.samples else None,
        }


def order(rounds: int) -> list[tuple[int, Side]]:
    """``(round, side)`` in running order: A B, B A, A B, ...

    >>> order(2)
    [(1, 'A'), (1, 'B'), (2, 'B'), (2, 'A')]
    """
    pairs: list[tuple[int, Side]] = []
    for number in range(1, rounds + 1):
        first: Side = "A" if number % 2 else "B"
        second: Side = "B" if first == "A" else "A"
        pairs += [(number, first), (number, second)]
    return pairs


def run_segments(
    commands: Mapping[Side, Sequence[str]],
    *,
    folder: Path,
    rounds: int,
    steps: int,
    progress: Callable[[str], None],
) -> list[Segment]:
    """Run ``rounds`` segments of each command under ``folder``, each stopped after
    ``steps`` training steps (or at its own end), in :func:`order`.

    Raises :class:`UsageError` when a command cannot be started, exits with a non-zero
    code, or records no training step: one line naming the command, the round, the
    exit code and its last output line.
    """
    from trainperf.monitoring.ab import job_samples, segment_steps
    from trainperf.monitoring.records import rank_folders, read_periods

    for side, command in commands.items():
        if shutil.which(command[0]) is None:  # before anything runs, not minutes later
            raise UsageError(
                f"cannot run command {side} ({command[0]}): not found, or not an executable; "
                f"check the spelling or give a full path to an executable"
            )
    segments = []
    plan = order(rounds)
    for done, (number, side) in enumerate(plan):
        progress(f"segment {done + 1}/{len(plan)}: command {side}, round {number}")
        where = folder / f"{side.lower()}{number}"
        _run_one(side, number, list(commands[side]), where, steps)
        ranks = rank_folders(where)
        if not ranks:
            raise UsageError(
                f"command {side} recorded no training step in round {number} (it used no "
                f"torch optimizer or DataLoader, or its Python cannot import trainperf); "
                f"its output is in {where / LOG_FILE}"
            )
        every = [read_periods(rank / "steps.jsonl") for rank in ranks]
        periods = every[0]
        samples = job_samples(every, steps=steps)
        segments.append(
            Segment(
                side=side,
                round=number,
                folder=ranks[0],
                steady=tuple(segment_steps(periods, steps=steps)),
                recorded_steps=sum(p.kind == "train" for p in periods),
                samples=None if samples is None else tuple(samples),
                ranks=len(ranks),
            )
        )
    return segments


def _run_one(side: Side, number: int, command: list[str], where: Path, steps: int) -> None:
    from trainperf.monitoring.bounded import STOP_STEPS_VARIABLE
    from trainperf.startup.phases import bootstrap_env

    try:
        where.mkdir(parents=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the run folder {where}: {exc.strerror or exc}; set TRAINPERF_HOME "
            f"to a writable folder"
        ) from None
    env = bootstrap_env(
        {"TRAINPERF_RUN_DIR": str(where.resolve()), STOP_STEPS_VARIABLE: str(steps)}
    )
    log = where / LOG_FILE
    with log.open("wb") as out:
        try:
            returncode = subprocess.run(
                command,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            ).returncode
        except OSError as exc:
            _remove_empty(where)
            raise UsageError(
                f"cannot run command {side} ({command[0]}): {exc.strerror or exc}; check the "
                f"spelling or give a full path to an executable"
            ) from None
    if returncode != 0:
        raise UsageError(
            f"command {side} failed in round {number} with exit code {returncode}: "
            f"{_last_line(log)} (its output is in {log})"
        )


def _remove_empty(where: Path) -> None:
    """A segment that never started leaves no folder behind (nor an empty parent)."""
    (where / LOG_FILE).unlink(missing_ok=True)
    for folder in (where, where.parent):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _last_line(log: Path, limit: int = 200) -> str:
    """The last non-blank line a command wrote, shortened to ``limit`` characters."""
    try:
        text = log.read_bytes()[-8192:].decode("utf-8", errors="replace")
    except OSError:
        return "(its output could not be read)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "(no output)"
    last = lines[-1]
    return last if len(last) <= limit else last[: limit - 3] + "..."
