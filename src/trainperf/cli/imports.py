"""``trainperf imports TARGET``: what start-up imports cost, blamed on the user's lines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.cli import EXIT_FINDING, EXIT_OK, Command
from trainperf.cli._progress import Status
from trainperf.cli._render import emit_json
from trainperf.errors import UsageError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from trainperf._json import JsonObject
    from trainperf.startup.report import ImportReport


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", help="a module name or a script path")
    parser.add_argument("-c", dest="code", metavar="CODE", help="measure a string of code")
    parser.add_argument(
        "--repeat", type=int, default=3, metavar="N", help="timing runs; medians are kept (3)"
    )
    parser.add_argument(
        "--verify",
        type=int,
        nargs="?",
        const=1,
        default=0,
        metavar="N",
        help="re-run with each of the top N lines deferred and compare (default N: 1)",
    )
    parser.add_argument("--budget", type=float, metavar="SECONDS", help="exit 1 above this")
    parser.add_argument("--max-modules", type=int, metavar="N", help="exit 1 above N modules")
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML view")
    parser.add_argument("--top", type=int, default=10, metavar="N", help="lines to show (10)")


def run(args: argparse.Namespace) -> int:
    from trainperf.startup import measure_imports
    from trainperf.startup.render import over_budget, render_text

    if args.target and args.code is not None:
        raise UsageError("give either TARGET or -c CODE, not both")
    if args.repeat < 1:
        raise UsageError(f"--repeat must be >= 1, got {args.repeat}")
    if args.verify < 0:
        raise UsageError(f"--verify must be >= 0 lines, got {args.verify}")
    status = Status()
    try:
        report = measure_imports(
            args.target, code=args.code, repeat=args.repeat, verify=args.verify, progress=status
        )
    finally:
        status.done()
    reasons = over_budget(report, budget_s=args.budget, max_modules=args.max_modules)
    if args.html:
        from trainperf.startup.html import write_html

        try:
            write_html(report, Path(args.html))
        except OSError as exc:
            raise UsageError(
                f"cannot write {args.html}: {exc.strerror or exc}; give a writable path"
            ) from None
    if args.json:
        emit_json(json_output(report, reasons))
    else:
        print(render_text(report, top=args.top, root=Path.cwd()))
        if args.verify > len(report.verified) and not report.error:
            from trainperf.startup.verify import MIN_PREDICTED_S

            together = " (the groups above show what deferring several saves)"
            print(
                f"--verify {args.verify}: {len(report.verified)} statement(s) re-timed; the "
                f"others are predicted to save under {MIN_PREDICTED_S:g} s, too little to "
                f"measure{together if report.groups else ''}"
            )
        for reason in reasons:
            print(f"over budget: {reason}")
    # A target that fails to load is a finding: its costs stop where it failed.
    return EXIT_FINDING if reasons or report.error else EXIT_OK


def json_output(report: ImportReport, over_budget: Sequence[str]) -> JsonObject:
    """``--json``: the report (its ``schema_version`` first) and why it is over budget."""
    data = report.to_json()
    data["over_budget"] = list(over_budget)
    return data


COMMAND = Command(configure, run)
