"""``trainperf report RUN``: a monitored run's verdict, re-analysed from its records."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.cli import EXIT_OK, Command
from trainperf.cli._render import emit_json
from trainperf.errors import UsageError

if TYPE_CHECKING:
    from trainperf.monitoring.analyze import RunSummary

if TYPE_CHECKING:
    import argparse
from typing import TYPE_CHECKING


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", help="a run folder, a run id under .trainperf/runs, or 'last' for the newest"
    )
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    parser.add_argument("--trace", metavar="FILE", help="also write a Chrome/Perfetto trace")


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
    if args.html or args.trace:
        _write_views(folder, summary, html_to=args.html, trace_to=args.trace)
    if args.json:
        data = summary.to_json()
        data["run"] = str(folder)
        data["finished"] = finished
        emit_json(data)
    else:
        print(render_summary(summary, title=f"run {folder}", finished=finished))
    return EXIT_OK


def _write_views(
    folder: Path, summary: RunSummary, *, html_to: str | None, trace_to: str | None
) -> None:
    import json

    from trainperf.monitoring.records import rank_folders, read_periods
    from trainperf.monitoring.sampler import read_samples

    first = rank_folders(folder)[0]
    periods = read_periods(first / "steps.jsonl")
    if html_to:
        from trainperf.monitoring.html import render_run_html

        samples = read_samples(first / "samples.jsonl")
        page = render_run_html(f"run {folder.name}", summary, periods, samples)
        _write(Path(html_to), page)
    if trace_to:
        from trainperf.monitoring.trace import chrome_trace

        events: list[object] = []
        for rank, path in enumerate(rank_folders(folder)):
            trace = chrome_trace(read_periods(path / "steps.jsonl"), rank=rank)
            listed = trace["traceEvents"]
            if isinstance(listed, list):
                events.extend(listed)
        _write(Path(trace_to), json.dumps({"traceEvents": events}))


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot write {path}: {exc.strerror or exc}; give a writable path"
        ) from None


COMMAND = Command(configure, run)
