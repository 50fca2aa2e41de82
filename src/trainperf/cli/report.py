"""``trainperf report RUN``: a monitored run's verdict, re-analysed from its records."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.cli import EXIT_OK, Command
from trainperf.cli._render import emit_json
from trainperf.errors import UsageError

if TYPE_CHECKING:
    import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", help="a run folder, a run id under .trainperf/runs, or 'last' for the newest"
    )


def find_run(name: str) -> Path:
    """A run folder from a path, a run id, or ``last`` / ``previous`` (by start time)."""
    from trainperf.monitoring.records import is_run
    from trainperf.settings import Settings

    runs = Settings.from_env().home() / "runs"
    if name in ("last", "previous"):
        found = sorted(p for p in runs.glob("*") if is_run(p))
        wanted = 1 if name == "last" else 2
        if len(found) < wanted:
            raise UsageError(
                f"no {name} run under {runs} ({len(found)} recorded); record runs with "
                f"trainperf run or trainperf.monitor()"
            )
        return found[-wanted]
    for candidate in (Path(name), runs / name):
        if is_run(candidate):
            return candidate
    raise UsageError(
        f"no run at {name!r}: give a run folder (holding steps.jsonl), a run id under "
        f"{runs}, 'last' or 'previous'"
    )


def run(args: argparse.Namespace) -> int:
    from trainperf.monitoring.analyze import summarize_folder
    from trainperf.monitoring.render import render_summary

    folder = find_run(args.run)
    summary, finished = summarize_folder(folder)
    if args.json:
        data = summary.to_json()
        data["run"] = str(folder)
        data["finished"] = finished
        emit_json(data)
    else:
        print(render_summary(summary, title=f"run {folder}", finished=finished))
    return EXIT_OK


COMMAND = Command(configure, run)
