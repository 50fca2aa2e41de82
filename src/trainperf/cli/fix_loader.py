"""``trainperf fix loader FILE``: the calibrated DataLoader settings, written into the call
that builds the training loader (or where its values are configured), re-measured.

The diff goes to stdout, what was found and measured to stderr; ``--write`` applies it
and keeps each original beside its file (``FILE.orig``). Exit 0 when the patch is
offered or nothing needs to change; 1 when the new settings are not shown faster (the
re-measure, else the calibration's gain: slower, or an interval reaching 1x; nothing is
written); 2 for a usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.cli import EXIT_FINDING, EXIT_OK, Command
from trainperf.errors import UsageError

if TYPE_CHECKING:
    import argparse

    from trainperf._json import JsonObject
    from trainperf.calibration.target import Target
    from trainperf.fix.loader import Calibrated, LoaderFix, Located, Remeasured

_DATASET_HINT = "--dataset pkg.module:factory (what trainperf calibrate took)"


def configure(parser: argparse.ArgumentParser) -> None:
    from trainperf.fix.loader import VERIFY_BATCHES, VERIFY_ROUNDS

    parser.add_argument("target", metavar="FILE", help="the .py file that builds the DataLoader")
    parser.add_argument(
        "--from",
        dest="source",
        metavar="RUN",
        help="a trainperf doctor run (folder, id under .trainperf/runs, or 'last'): its "
        "calibration proof (default: the calibration stored for this environment)",
    )
    parser.add_argument(
        "--calibration",
        metavar="KEY",
        help="which stored calibration, when several datasets have one (the dataset's "
        "class or the key the error lists)",
    )
    parser.add_argument(
        "--line",
        type=int,
        metavar="N",
        help="the DataLoader call on line N (default: the training loader)",
    )
    parser.add_argument(
        "--dataset",
        metavar="TARGET",
        help="pkg.module:factory or file.py:factory returning the dataset (as for trainperf "
        "calibrate): re-measures the new settings against the original, and picks the "
        "stored calibration",
    )
    parser.add_argument("--write", action="store_true", help="apply the patch (FILE.orig kept)")
    parser.add_argument("--no-verify", action="store_true", help="do not re-measure")
    parser.add_argument(
        "--rounds",
        type=int,
        default=VERIFY_ROUNDS,
        metavar="N",
        help=f"interleaved rounds re-measured ({VERIFY_ROUNDS})",
    )
    parser.add_argument(
        "--batches",
        type=int,
        default=VERIFY_BATCHES,
        metavar="N",
        help=f"batches timed per turn ({VERIFY_BATCHES})",
    )


def run(args: argparse.Namespace) -> int:
    from trainperf.fix.loader import locate, not_shown_faster, plan, write_fix

    if args.source and args.calibration:
        raise UsageError("--from and --calibration both choose the settings; give one of them")
    if args.rounds < 2:
        raise UsageError(f"--rounds must be at least 2 for an interval, got {args.rounds}")
    if args.batches < 1:
        raise UsageError(f"--batches must be at least 1, got {args.batches}")
    if args.line is not None and args.line < 1:
        raise UsageError(f"--line counts from 1, got {args.line}")
    located = locate(Path(args.target), line=args.line)
    target = None
    if args.dataset and (not args.no_verify or not args.source):
        from trainperf.calibration.target import load_target

        target = load_target(args.dataset)
    calibrated, located = _settings(args, located, target)
    notes: list[str] = []
    measured_on = calibrated.dataset
    if target is None and measured_on is not None:
        # Settings measured on one dataset say nothing of another's loader.
        written_on = located.site.dataset_class
        short = measured_on.rpartition(".")[2]
        if written_on is not None and written_on.rpartition(".")[2] != short:
            raise UsageError(
                f"this loader reads a {written_on}, the calibration measured a {measured_on}: "
                f"calibrate this dataset first (trainperf calibrate pkg.module:factory), or "
                f"give {_DATASET_HINT}"
            )
        if written_on is None:
            notes.append(
                f"the calibration measured a {measured_on}; which dataset this call reads "
                f"is not said in the file: give {_DATASET_HINT} to check it is the same"
            )
    fix = plan(located, calibrated)
    if target is not None and calibrated.dataset is not None:
        kind = type(target.dataset)
        given = f"{kind.__module__}.{kind.__qualname__}"
        if given != calibrated.dataset:
            notes.append(
                f"--dataset gives a {given}, the calibration measured a {calibrated.dataset}"
            )
    remeasured = None
    if not fix.changed:
        pass
    elif args.no_verify:
        notes.append("not re-measured (--no-verify)")
    elif target is None:
        notes.append(
            f"not re-measured: give {_DATASET_HINT} to time the new settings against the "
            "original side by side, or --no-verify"
        )
    else:
        remeasured = _remeasure(fix, target, args)
    slower = remeasured is not None and remeasured.side_by_side.speedup_high < 1.0
    unproven = None if slower else not_shown_faster(fix, remeasured)
    if unproven is not None:
        slower = True
        notes.append(unproven)
    written: tuple[tuple[Path, Path], ...] = ()
    if args.write and fix.changed and not slower:
        written = write_fix(fix)
    cwd = Path.cwd().resolve()
    if getattr(args, "json", False):
        from trainperf.cli._render import emit_json

        emit_json(_json(fix, remeasured, notes, written, cwd))
    else:
        summary = _summary(fix, remeasured, notes, written, slower, cwd)
        if args.write or not fix.changed:
            print(summary)
        else:
            print(summary, file=sys.stderr)
            sys.stdout.write(fix.diff(cwd))
    return EXIT_FINDING if slower else EXIT_OK


def _settings(
    args: argparse.Namespace, located: Located, target: Target | None
) -> tuple[Calibrated, Located]:
    """The settings to write (a doctor run's, else the store's), and the call they go to."""
    from trainperf.fix.loader import from_run, from_store

    if args.source:
        calibrated = from_run(_run_folder(args.source))
        return calibrated, located.for_framework(calibrated.framework)
    from trainperf.fingerprint import environment_fingerprint
    from trainperf.settings import Settings

    digest = None
    if target is not None:
        from trainperf.calibration.dataset import dataset_fingerprint

        digest = dataset_fingerprint(target.dataset, target.collate_fn)[0]
    calibrated = from_store(
        Settings.from_env().home() / "calibration.json",
        environment=environment_fingerprint().digest,
        located=located,
        dataset=digest,
        pick=args.calibration,
    )
    return calibrated, located


def _run_folder(name: str) -> Path:
    """A folder holding the doctor's proofs, else a run as ``trainperf report`` finds it."""
    folder = Path(name)
    if (folder / "proofs.json").is_file() or any(folder.glob("rank*/proofs.json")):
        return folder
    from trainperf.cli.report import find_run

    return find_run(name)


def _remeasure(fix: LoaderFix, target: Target, args: argparse.Namespace) -> Remeasured:
    from trainperf.cli._progress import Status
    from trainperf.fix.loader import remeasure

    status = Status()
    status("fix loader: re-measuring the new settings against the original, in turns")
    try:
        return remeasure(
            fix,
            target.dataset,
            collate_fn=target.collate_fn,
            train_step=target.train_step,
            rounds=args.rounds,
            batches=args.batches,
        )
    finally:
        status.done()


def _summary(
    fix: LoaderFix,
    remeasured: Remeasured | None,
    notes: list[str],
    written: tuple[tuple[Path, Path], ...],
    slower: bool,
    cwd: Path,
) -> str:
    from trainperf.fix.patch import shown_path

    calibrated = fix.calibrated
    name = shown_path(fix.target, cwd)
    lines = [
        f"trainperf fix loader: {name}, the {fix.kind}(...) call on line {fix.line}",
        f"  settings: {calibrated.config.describe()}",
        f"  from {calibrated.source}, measured {calibrated.date}",
    ]
    gain = calibrated.gain
    if gain is not None:
        lines.append(f"  its gain: {gain.short()}, {gain.basis}")
    if not fix.changed:
        lines.append(f"nothing to change: {name} already has these settings")
    for change in fix.changes:
        where = f"{shown_path(change.file, cwd)}:{change.line}"
        what = f"added {change.new}" if change.old is None else f"{change.old} -> {change.new}"
        lines.append(f"  {where}: {change.argument}: {what}")
    lines += [f"  pointed at: {p.describe(cwd)}" for p in fix.pointers]
    lines += [f"  note: {note}" for note in (*fix.notes, *notes)]
    if fix.changed:
        lines.append("  checked: the rewritten file parses and compiles")
    if remeasured is not None:
        lines.append(f"  {remeasured.describe(gain)}")
    if slower and remeasured is not None and remeasured.side_by_side.speedup_high < 1.0:
        lines.append("not offered: the new settings measured slower than the original here")
    elif slower:
        lines.append("not offered: the new settings were not shown faster than the original")
    elif written:
        for path, backup in written:
            lines.append(
                f"written: {shown_path(path, cwd)} (the original kept as {shown_path(backup, cwd)})"
            )
    elif fix.changed:
        lines.append("the patch is on stdout; --write applies it")
    return "\n".join(lines)


def _json(
    fix: LoaderFix,
    remeasured: Remeasured | None,
    notes: list[str],
    written: tuple[tuple[Path, Path], ...],
    cwd: Path,
) -> JsonObject:
    from trainperf._schema import FIX
    from trainperf.fix.patch import shown_path

    calibrated = fix.calibrated
    return {
        "schema_version": FIX.version,
        "kind": "loader",
        "file": shown_path(fix.target, cwd),
        "line": fix.line,
        "call": fix.kind,
        "source": calibrated.source,
        "measured_at": calibrated.measured_at,
        "settings": calibrated.config.to_json(),
        "changed": fix.changed,
        "changes": [c.to_json(cwd) for c in fix.changes],
        "pointed_at": [p.to_json(cwd) for p in fix.pointers],
        "notes": [*fix.notes, *notes],
        "gain": None if calibrated.gain is None else calibrated.gain.to_json(),
        "remeasured": None if remeasured is None else remeasured.to_json(),
        "written": [shown_path(path, cwd) for path, _ in written],
        "diff": fix.diff(cwd),
    }


COMMAND = Command(configure, run)
