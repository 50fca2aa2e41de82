"""``trainperf startup``: time a command to its phase markers, first step and exit.

Each run starts the command with ``TRAINPERF_MARKERS`` naming a fresh file and
:mod:`._bootstrap` on ``PYTHONPATH``, so markers are recorded with no code change:
``interpreter_ready``, whatever the program marks itself (``trainperf.mark``),
``first_step`` (first optimizer step), and ``exit_start`` (interpreter shutdown
begins; the process is gone ``exit_s`` later -- torch and Lightning often take
0.5 - 1.3 s there). Times are medians over runs, from the moment the process is
started.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.errors import UsageError
from trainperf.markers import MARKERS_VARIABLE, read_markers

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from trainperf._json import JsonObject

__all__ = ["BOOTSTRAP", "StartupRun", "StartupSummary", "bootstrap_env", "time_command"]

BOOTSTRAP = Path(__file__).with_name("_bootstrap")


@dataclass(frozen=True)
class StartupRun:
    wall_s: float
    returncode: int
    markers: dict[str, float]  # first time each marker was reached, from process start
    exit_s: float | None  # from "exit_start" to the process being gone
    output_tail: str


@dataclass(frozen=True)
class StartupSummary:
    command: tuple[str, ...]
    runs: tuple[StartupRun, ...]

    @property
    def returncode(self) -> int:
        return next((r.returncode for r in self.runs if r.returncode), 0)

    def median(self, pick: Callable[[StartupRun], float | None]) -> float | None:
        values = [v for v in (pick(r) for r in self.runs) if v is not None]
        return statistics.median(values) if values else None

    @property
    def wall_s(self) -> float:
        return statistics.median(r.wall_s for r in self.runs)

    def markers(self) -> dict[str, float]:
        names: list[str] = []
        for run in self.runs:
            names += [n for n in run.markers if n not in names]
        out = {}
        for name in names:
            value = self.median(lambda r, n=name: r.markers.get(n))  # type: ignore[misc]
            if value is not None:
                out[name] = value
        return out

    def to_json(self) -> JsonObject:
        markers = self.markers()
        return {
            "command": list(self.command),
            "runs": len(self.runs),
            "returncode": self.returncode,
            "wall_s": self.wall_s,
            "markers": dict(markers),
            "first_step_s": markers.get("first_step"),
            "exit_s": self.median(lambda r: r.exit_s),
            "per_run": [
                {"wall_s": r.wall_s, "returncode": r.returncode, "markers": dict(r.markers)}
                for r in self.runs
            ],
        }


def bootstrap_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment with ``extra`` set and the bootstrap first on
    PYTHONPATH, so that the command's interpreter loads it at start-up."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BOOTSTRAP), env.get("PYTHONPATH", "")) if p)
    return env


def time_command(
    command: Sequence[str],
    *,
    repeat: int = 3,
    timeout: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> StartupSummary:
    if not command:
        raise UsageError("give the command to time after --, e.g. trainperf startup -- python t.py")
    if repeat < 1:
        raise UsageError(f"--repeat must be >= 1, got {repeat}")
    runs = []
    for i in range(repeat):
        if progress is not None:
            progress(f"run {i + 1}/{repeat}: {' '.join(command)[:60]}")
        runs.append(_run_once(list(command), timeout))
        if runs[-1].returncode != 0:
            break  # a failing command fails the same way every time: report it now
    return StartupSummary(tuple(command), tuple(runs))


def _run_once(command: list[str], timeout: float | None) -> StartupRun:
    with tempfile.TemporaryDirectory(prefix="trainperf-startup-") as scratch:
        markers_file = Path(scratch) / "markers.jsonl"
        env = bootstrap_env({MARKERS_VARIABLE: str(markers_file)})
        start = time.time()
        try:
            proc = subprocess.run(
                command,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except OSError as exc:
            raise UsageError(
                f"cannot run {command[0]}: {exc.strerror or exc}; check the spelling or give "
                f"a full path to an executable"
            ) from None
        except subprocess.TimeoutExpired:
            raise UsageError(
                f"{command[0]} ran past --timeout {timeout:g} s; raise it or shorten the "
                f"run (for example trainer.max_steps=5)"
            ) from None
        end = time.time()
        found = read_markers(markers_file) if markers_file.exists() else []
    firsts: dict[str, float] = {}
    for marker in found:
        firsts.setdefault(marker.name, marker.time - start)
    exit_at = [m.time for m in found if m.name == "exit_start"]
    text = proc.stdout.decode("utf-8", errors="replace") if proc.stdout else ""
    return StartupRun(
        wall_s=end - start,
        returncode=proc.returncode,
        markers={k: v for k, v in firsts.items() if k not in ("exit_start", "exit_done")},
        exit_s=end - max(exit_at) if exit_at else None,
        output_tail="\n".join(text.strip().splitlines()[-5:]),
    )
