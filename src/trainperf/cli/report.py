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
    from trainperf.settings import Settings

    runs = Settings.from_env().home() / "runs"
    if name == "last":
        found = (
            sorted(p for p in runs.glob("*") if (p / "steps.jsonl").is_file())
            if runs.is_dir()
            else []
        )
        if not found:
            raise UsageError(f"no monitored runs under {runs}; record one with trainperf.monitor()")
        return found[-1]
    for candidate in (Path(name), runs / name):
        if (candidate / "steps.jsonl").is_file():
            return candidate
    raise UsageError(
        f"no run at {name!r}: give a run folder (holding steps.jsonl), a run id under "
        f"{runs}, or 'last'"
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
