"""``trainperf calibrate TARGET``: measure the fastest DataLoader settings for a dataset."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainperf.cli import Command
from trainperf.errors import UsageError

if TYPE_CHECKING:
    import argparse

DEFAULT_BATCH_SIZE = 32


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="TARGET",
        help="pkg.module:factory or file.py:factory returning a dataset (or a dict with "
        "dataset, collate_fn, train_step, batch_size)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help=f"batch size (default: the target's, else {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument("--samples", type=int, metavar="K", help="batches timed per candidate")
    parser.add_argument("--max-workers", type=int, metavar="N", help="try at most N workers")
    parser.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="epochs the loader runs for: worker start-up is weighed per epoch "
        "(default: 10, assumed)",
    )
    parser.add_argument(
        "--no-persistent-workers",
        action="store_true",
        help="workers must start again every epoch (a dataset whose state changes "
        "between epochs): choose, and advise, without persistent_workers",
    )
    parser.add_argument("--force", action="store_true", help="measure even if a result is stored")
    parser.add_argument(
        "--no-calibrate",
        action="store_true",
        help="measure nothing: show the stored result, else the static choice",
    )
    parser.add_argument(
        "--no-store", action="store_true", help="neither read nor write .trainperf/calibration.json"
    )


def run(args: argparse.Namespace) -> int:
    from trainperf.calibration.api import calibrate
    from trainperf.calibration.target import load_target
    from trainperf.cli._progress import Status

    if args.force and args.no_calibrate:
        raise UsageError("--force and --no-calibrate contradict each other; choose one")
    target = load_target(args.target)
    batch_size = args.batch_size or target.batch_size or DEFAULT_BATCH_SIZE
    status = Status()
    try:
        result = calibrate(
            target.dataset,
            batch_size=batch_size,
            collate_fn=target.collate_fn,
            train_step=target.train_step,
            samples=args.samples,
            calibrate=False if args.no_calibrate else None,
            force=True if args.force else None,
            persist=not args.no_store,
            max_workers=args.max_workers,
            epochs=args.epochs,
            persistent_workers=not args.no_persistent_workers,
            progress=lambda message: status(f"calibrate: {message}"),
        )
    finally:
        status.done()
    if args.json:
        from trainperf._schema import CALIBRATE
        from trainperf.cli._render import emit_json

        emit_json(CALIBRATE.stamp(result.to_json()))
    else:
        from trainperf.calibration.render import render_calibration

        print(render_calibration(result))
    return 0


COMMAND = Command(configure, run)
