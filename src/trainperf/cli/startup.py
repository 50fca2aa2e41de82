"""``trainperf startup -- CMD``: time to each phase marker, to the first step, and to exit."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from trainperf.cli import EXIT_FINDING, EXIT_OK, Command
from trainperf.cli._progress import Status
from trainperf.cli._render import emit_json

if TYPE_CHECKING:
    from trainperf.startup.phases import StartupSummary


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeat", type=int, default=3, metavar="N", help="runs (medians; 3)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="per run")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command to time")


def run(args: argparse.Namespace) -> int:
    from trainperf.startup.phases import time_command

    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    status = Status()
    try:
        summary = time_command(command, repeat=args.repeat, timeout=args.timeout, progress=status)
    finally:
        status.done()
    if args.json:
        from trainperf._schema import STARTUP

        emit_json(STARTUP.stamp(summary.to_json()))
    else:
        print(render(summary))
    return EXIT_FINDING if summary.returncode else EXIT_OK


def render(summary: StartupSummary) -> str:
    runs = len(summary.runs)
    out = [f"{' '.join(summary.command)}  (median of {runs} run{'s' if runs > 1 else ''})"]
    for name, seconds in sorted(summary.markers().items(), key=lambda kv: kv[1]):
        out.append(f"  {seconds:8.3f} s  {name}")
    exit_s = summary.median(lambda r: r.exit_s)
    out.append(f"  {summary.wall_s:8.3f} s  process gone")
    if exit_s is not None:
        out.append(f"  ({exit_s:.3f} s of it spent shutting the interpreter down)")
    if "first_step" not in summary.markers():
        out.append("  no optimizer step seen (not a torch training run, or it failed first)")
    if summary.returncode:
        last = summary.runs[-1]
        out.append(
            f"the command failed with exit code {summary.returncode} after {last.wall_s:.3f} s:"
        )
        out += [f"  | {line}" for line in last.output_tail.splitlines()]
    return "\n".join(out)


COMMAND = Command(configure, run)
