"""``trainperf doctor [-- CMD ...]``: diagnose a training command, prove the advice, report."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.cli import EXIT_FINDING, EXIT_OK, Command
from trainperf.cli._progress import Status
from trainperf.cli._render import emit_json
from trainperf.errors import UsageError

if TYPE_CHECKING:
    import argparse

    from trainperf._json import JsonObject
    from trainperf.doctor.report import DoctorReport


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--steps", type=int, metavar="N", help="stop the command after N training steps"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop the command this long after it started (default 120 without --steps)",
    )
    parser.add_argument(
        "--apply",
        action="store_true",
        help="store the calibration it measures, for calibrated_loader and data.calibrated=true; "
        "for a Hugging Face Trainer, write the TrainingArguments to change to training_args.json "
        "in the run folder",
    )
    parser.add_argument("--html", metavar="FILE", help="also write the report page here")
    parser.add_argument(
        "--no-startup", action="store_true", help="skip the import profile of the entry point"
    )
    parser.add_argument(
        "cmd", nargs="*", help="-- then the training command (default: the bundled OCR example)"
    )


def run(args: argparse.Namespace) -> int:
    from trainperf.doctor.diagnose import PAGE_FILE, diagnose

    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    html_to = Path(args.html) if args.html else None
    if html_to is not None and html_to.is_dir():
        raise UsageError(f"--html {html_to} is a folder; give a file name such as report.html")
    status = Status()
    try:
        report = diagnose(
            command or None,
            steps=args.steps,
            budget_s=args.budget,
            apply=args.apply,
            profile_startup=not args.no_startup,
            progress=status,
        )
    finally:
        status.done()
    written = Path(report.run) / PAGE_FILE
    page = written if written.is_file() else None
    if html_to is not None and page is not None:
        try:
            shutil.copyfile(page, html_to)
        except OSError as exc:
            raise UsageError(
                f"cannot write {html_to}: {exc.strerror or exc}; give a writable path"
            ) from None
    shown = str(html_to or page) if page is not None else None
    if args.json:
        emit_json(json_output(report, shown))
    else:
        from trainperf.doctor.render import render_text

        print(render_text(report, html_path=shown))
    return EXIT_FINDING if report.failed else EXIT_OK


def json_output(report: DoctorReport, html: str | None) -> JsonObject:
    """``--json``: ``doctor.json`` (its ``schema_version`` first) and the page's path."""
    data = report.to_json()
    data["html"] = html
    return data


COMMAND = Command(configure, run)
