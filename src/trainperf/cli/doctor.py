"""``trainperf doctor [-- CMD ...]``: diagnose a training command, prove the advice, report.

``trainperf doctor --scale 1,2 -- torchrun --nproc-per-node {n} train.py``: its scaling
efficiency across rank counts instead (:mod:`trainperf.doctor.scale`)."""

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
        "--fix",
        action="store_true",
        help="also offer each finding's verified patch (imports moved, loader settings "
        "written in), as diffs in the report; nothing is written to your files",
    )
    parser.add_argument(
        "--no-startup", action="store_true", help="skip the import profile of the entry point"
    )
    parser.add_argument(
        "--scale",
        metavar="COUNTS",
        help="scaling efficiency instead of a diagnosis: run the command (which holds {n}) at "
        "each rank count, e.g. --scale 1,2 -- torchrun --nproc-per-node {n} train.py "
        "(default --steps 60 a run)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        metavar="R",
        help="with --scale: runs per rank count, interleaved (default 2)",
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
    if args.scale is not None:
        return _scale(args, command, html_to)
    if args.rounds is not None:
        raise UsageError("--rounds goes with --scale; e.g. --scale 1,2 --rounds 3")
    status = Status()
    try:
        report = diagnose(
            command or None,
            steps=args.steps,
            budget_s=args.budget,
            apply=args.apply,
            profile_startup=not args.no_startup,
            progress=status,
            fix=args.fix,
        )
    finally:
        status.done()
    written = Path(report.run) / PAGE_FILE
    page = written if written.is_file() else None
    if html_to is not None and page is not None:
        _copy_page(page, html_to)
    shown = str(html_to or page) if page is not None else None
    if args.json:
        emit_json(json_output(report, shown))
    else:
        from trainperf.doctor.render import render_text

        print(render_text(report, html_path=shown))
    return EXIT_FINDING if report.failed else EXIT_OK


def _copy_page(page: Path, html_to: Path) -> None:
    """``--html FILE``: the page written in the run folder, copied there."""
    try:
        shutil.copyfile(page, html_to)
    except OSError as exc:
        raise UsageError(
            f"cannot write {html_to}: {exc.strerror or exc}; give a writable path"
        ) from None


def _scale(args: argparse.Namespace, command: list[str], html_to: Path | None) -> int:
    """``--scale``: scaling efficiency across rank counts; no diagnosis."""
    from trainperf.doctor.scale import DEFAULT_ROUNDS, PAGE_FILE, measure_scaling, parse_counts
    from trainperf.doctor.scale_render import render_scaling_text

    counts = parse_counts(args.scale)
    if html_to is not None and not html_to.parent.is_dir():
        raise UsageError(f"--html {html_to}: no folder {html_to.parent}; give a writable path")
    if args.apply:
        raise UsageError("--apply proves advice, which --scale does not; drop one of them")
    status = Status()
    try:
        report = measure_scaling(
            command,
            counts,
            steps=args.steps,
            budget_s=args.budget,
            rounds=DEFAULT_ROUNDS if args.rounds is None else args.rounds,
            progress=status,
        )
    finally:
        status.done()
    page = Path(report.folder) / PAGE_FILE
    if html_to is not None:
        _copy_page(page, html_to)
    if args.json:
        emit_json(report.to_json())
    else:
        print(render_scaling_text(report, html_path=str(html_to or page)))
    return EXIT_FINDING if report.failed else EXIT_OK


def json_output(report: DoctorReport, html: str | None) -> JsonObject:
    """``--json``: ``doctor.json`` (its ``schema_version`` first) and the page's path."""
    data = report.to_json()
    data["html"] = html
    return data


COMMAND = Command(configure, run)
