"""``trainperf fix imports|loader TARGET``: the proved fix, as a verified patch.

The diff goes to stdout (``trainperf fix imports train.py > fix.patch`` then
``git apply fix.patch``), what was measured to stderr; ``--write`` applies it and
keeps the original beside the file (``FILE.orig``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.cli import EXIT_FINDING, EXIT_OK, Command
from trainperf.cli._progress import Status
from trainperf.cli._render import emit_json
from trainperf.errors import UsageError

if TYPE_CHECKING:
    from trainperf.fix.verify import ImportsFix


def configure(parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    imports = kinds.add_parser(
        "imports",
        help="move heavy module-level imports to where they are used",
        description="Move the heavy module-level imports of a script or module into the "
        "functions that use them, verified: the result must load, is timed side by side "
        "with the original, and must fail the same way on a bad argument.",
    )
    imports.add_argument("target", help="a script path or a module name")
    imports.add_argument("--write", action="store_true", help="apply the patch (FILE.orig kept)")
    imports.add_argument(
        "--rounds", type=int, default=5, metavar="N", help="interleaved timing rounds (5)"
    )
    imports.add_argument(
        "--threshold",
        type=float,
        default=0.1,
        metavar="SECONDS",
        help="a package is heavy when importing it alone costs this much (0.1)",
    )
    imports.add_argument(
        "--config-error",
        metavar="ARGS",
        help="arguments that make the target fail on its configuration, timed before and "
        "after (default: a bad Hydra override or option when it parses a command line; "
        "'' to skip)",
    )
    imports.add_argument(
        "--check", metavar="CMD", help="a command that must pass with the rewritten file"
    )
    imports.add_argument(
        "--style",
        choices=("move", "lazy", "pep810", "lazy-modules"),
        default="move",
        help="move: into the functions that use it (default); lazy: bound through "
        "trainperf.lazy_import; pep810: `lazy import` (Python 3.15); lazy-modules: listed in "
        "__lazy_modules__ (lazy from Python 3.15, ignored before)",
    )
    imports.add_argument(
        "--no-verify", action="store_true", help="show the rewrite without running anything"
    )
    from trainperf.cli import fix_loader

    loader = kinds.add_parser(
        "loader",
        help="write the calibrated DataLoader settings into the call that builds it",
        description="Write the calibrated DataLoader settings into the call that builds "
        "the loader (or the configuration it reads them from), re-measured.",
    )
    fix_loader.configure(loader)
    for child in (imports, loader):
        # Also after KIND; SUPPRESS keeps a --json given before it.
        child.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON on stdout"
        )
        child.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="progress lines"
        )


def run(args: argparse.Namespace) -> int:
    if args.kind == "loader":
        from trainperf.cli import fix_loader

        return fix_loader.run(args)
    return _imports(args)


def _imports(args: argparse.Namespace) -> int:
    from trainperf.fingerprint import environment_fingerprint
    from trainperf.fix.verify import fix_imports
    from trainperf.settings import Settings
    from trainperf.startup.costs import PackageCostStore
    from trainperf.startup.probe import resolve_target

    if not args.threshold > 0:
        raise UsageError(f"--threshold must be a positive number of seconds, got {args.threshold}")
    if args.rounds < 2:
        raise UsageError(f"--rounds must be at least 2 for an interval, got {args.rounds}")
    config_error = None if args.config_error is None else shlex.split(args.config_error)
    check = args.check or None
    target = resolve_target(args.target, None)
    store = PackageCostStore(
        Settings.from_env().home() / "import_costs.json", environment_fingerprint().digest
    )
    status = Status()
    try:
        result = fix_imports(
            target,
            cost_of=store.get,
            threshold_s=args.threshold,
            rounds=args.rounds,
            config_error=config_error,
            check=check,
            verify=not args.no_verify,
            style=args.style,
            progress=status,
        )
    finally:
        status.done()
    cwd = Path.cwd().resolve()
    written = None
    if args.write and result.changed:
        from trainperf.fix.patch import write_keeping_original

        written = write_keeping_original(result.plan.path, result.plan.original, result.plan.fixed)
    if args.json:
        data = result.to_json(cwd)
        data["written"] = None if written is None else str(written)
        emit_json(data)
    else:
        summary = _summary(result, cwd, written)
        if args.write:
            print(summary)
        else:  # stdout carries the patch alone: `trainperf fix imports t.py > fix.patch`
            print(summary, file=sys.stderr)
            sys.stdout.write(result.diff(cwd))
    return EXIT_FINDING if result.failure is not None else EXIT_OK


def _summary(result: ImportsFix, cwd: Path, written: Path | None) -> str:
    from trainperf.fix.patch import shown_path

    plan = result.plan
    name = shown_path(plan.path, cwd)
    lines = [f"trainperf fix imports: {name}"]
    if len(result.savings_s) > 1:
        lines.append(
            "  (a line's saving: the patch without it against the whole patch; lines that "
            "load the same packages share theirs, so they add up to more than the total)"
        )
    for change in plan.changes:
        saving = result.savings_s.get(change.line)
        measured = "" if saving is None else f"  (saves {saving:.2f} s, measured)"
        lines.append(f"  {change.action:<7} line {change.line}: {change.statement}{measured}")
        lines.append(f"          {change.why}")
    for refusal in [*plan.refusals, *result.dropped]:
        lines.append(f"  kept    line {refusal.line}: {refusal.statement}")
        lines.append(f"          {refusal.why}")
    if not plan.changes:
        lines.append("nothing to change: no heavy module-level import can move")
    for timing in result.timings:
        lines.append(f"measured, {timing.describe()}")
    if result.check is not None and result.failure is None:
        lines.append(f"check passed on the original and the rewritten file: {result.check}")
    lines += [f"note: {note}" for note in result.notes]
    if result.failure is not None:
        lines.append(f"not offered: {result.failure}")
    elif written is not None:
        lines.append(f"written: {name} (the original kept as {shown_path(written, cwd)})")
    elif plan.changes:
        lines.append("the patch is on stdout; --write applies it")
    return "\n".join(lines)


COMMAND = Command(configure, run)
