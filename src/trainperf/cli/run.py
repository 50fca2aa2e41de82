"""``trainperf run -- CMD``: monitor any training command, with no change to its code."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from trainperf.cli import Command
from trainperf.errors import UsageError

TYPE_CHECKING = False  # see trainperf/cli/__init__.py
if TYPE_CHECKING:
    from trainperf.exporters.spec import ExportSpec


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", help="run folder (default .trainperf/runs/ID)")
    parser.add_argument(
        "--export",
        metavar="KIND:DIR",
        action="append",
        default=[],
        type=_export_spec,
        help="also send the figures to tensorboard:DIR, wandb:DIR (an offline run) or "
        "mlflow:DIR (a local file store), as the command trains; repeatable",
    )
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the training command")


def run(args: argparse.Namespace) -> int:
    from trainperf.monitoring.analyze import summarize_folder
    from trainperf.monitoring.render import render_summary
    from trainperf.settings import Settings
    from trainperf.startup.phases import bootstrap_env

    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        raise UsageError("give the command to monitor after --, e.g. trainperf run -- python t.py")
    from trainperf._command import refuse_missing_script

    refuse_missing_script(command)
    from trainperf.monitoring.records import is_run
    from trainperf.monitoring.session import new_run_id

    folder = Path(args.out) if args.out else Settings.from_env().home() / "runs" / new_run_id()
    if is_run(folder):
        raise UsageError(
            f"{folder} already holds a recorded run; choose another --out (or remove that run)"
        )
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file; give a folder for the run's records")
    extra = {"TRAINPERF_RUN_DIR": str(folder.resolve())}
    if args.export:
        from trainperf.exporters.spec import join_specs
        from trainperf.settings import EXPORT_VARIABLE

        extra[EXPORT_VARIABLE] = join_specs(args.export)
    env = bootstrap_env(extra)
    try:
        # The command's own output and exit code pass through untouched.
        returncode = subprocess.run(command, env=env, check=False).returncode
    except OSError as exc:
        raise UsageError(
            f"cannot run {command[0]}: {exc.strerror or exc}; check the spelling or give a "
            f"full path to an executable"
        ) from None
    if not is_run(folder):
        print(
            "trainperf: no training step was seen (no torch optimizer or DataLoader was "
            "used, or the command failed before training)",
            file=sys.stderr,
        )
        return returncode
    summary, finished = summarize_folder(folder)
    if summary.steps == 0:
        print(
            "trainperf: no training step was seen (no optimizer step and no backward()); "
            "only the DataLoader batches were recorded, as reading time",
            file=sys.stderr,
        )
    if args.json:
        # stdout belongs to the command: the summary goes to stderr, as one JSON object.
        data = summary.to_json()
        data.update(run=str(folder), finished=finished, returncode=returncode)
        print(json.dumps(data), file=sys.stderr)
    else:
        title = f"trainperf: run recorded in {folder} (trainperf report {folder})"
        print(render_summary(summary, title=title, finished=finished), file=sys.stderr)
    return returncode


def _export_spec(text: str) -> ExportSpec:
    """``--export`` checked as it is parsed: a bad spec stops the command before it runs."""
    from trainperf.exporters.spec import parse_spec

    return parse_spec(text)


COMMAND = Command(configure, run)
