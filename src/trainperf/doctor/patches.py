"""``trainperf doctor --fix``: the verified patch of each finding that has one.

* ``startup-imports``: :func:`trainperf.fix.verify.fix_imports` on the entry point --
  the heavy imports moved, the result loaded and timed side by side with the original
  (to import, and to a configuration error).
* ``input-bound``, ``thread-oversubscription``, ``worker-startup``: the run's
  calibration proof written into the call that builds the training loader
  (:mod:`trainperf.fix.loader`), in the entry point or the first of the user's files
  it reaches that builds one; its gain is the one the doctor measured as written.

A patch is a plain record (``to_json`` of the report): ``finding`` (the kind it fixes),
``fix`` (``imports`` or ``loader``), ``files``, ``verified``, ``summary`` (lines),
``diff`` (unified, paths relative to the working folder), ``failure`` (why it is not
offered). Nothing is written to the user's files: ``trainperf fix ... --write`` is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.errors import TrainperfError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from trainperf._json import Json, JsonObject
    from trainperf.doctor.report import DoctorFinding

__all__ = ["LOADER_FINDINGS", "offer_patches"]

LOADER_FINDINGS = ("input-bound", "thread-oversubscription", "worker-startup")
IMPORT_ROUNDS = 3


def offer_patches(
    findings: Sequence[DoctorFinding],
    *,
    entry: str | None,
    run: Path,
    say: Callable[[str], None],
) -> tuple[JsonObject, ...]:
    """The patches for ``findings`` of the command whose entry point is ``entry`` (a
    module name or script path; None: nothing to patch), diagnosed in ``run``."""
    if entry is None:
        return ()
    kinds = [f.kind for f in findings]
    patches: list[JsonObject] = []
    if "startup-imports" in kinds:
        say("fix: the start-up finding's imports, rewritten and timed")
        patches.append(_imports(entry, say))
    loader = next((k for k in kinds if k in LOADER_FINDINGS), None)
    if loader is not None:
        say("fix: the calibrated loader settings, written into the call")
        found = _loader(entry, run, loader)
        if found is not None:
            patches.append(found)
    return tuple(patches)


def _imports(entry: str, say: Callable[[str], None]) -> JsonObject:
    from trainperf.fingerprint import environment_fingerprint
    from trainperf.fix.verify import fix_imports
    from trainperf.settings import Settings
    from trainperf.startup.costs import PackageCostStore
    from trainperf.startup.probe import resolve_target

    cwd = Path.cwd().resolve()
    try:
        store = PackageCostStore(
            Settings.from_env().home() / "import_costs.json", environment_fingerprint().digest
        )
        result = fix_imports(
            resolve_target(entry, None),
            cost_of=store.get,
            threshold_s=0.1,
            rounds=IMPORT_ROUNDS,
            progress=lambda message: say(f"fix: {message}"),
        )
    except TrainperfError as exc:
        return _failed("startup-imports", "imports", str(exc))
    summary: list[Json] = [
        f"{c.action} line {c.line}: {c.statement} ({c.why})" for c in result.plan.changes
    ]
    summary += [f"kept line {r.line}: {r.statement} ({r.why})" for r in result.plan.refusals]
    summary += [f"measured, {t.describe()}" for t in result.timings]
    summary += result.notes
    if not result.plan.changes:
        summary.append("nothing to change: no heavy module-level import can move")
    shown = result.to_json(cwd)
    return {
        "finding": "startup-imports",
        "fix": "imports",
        "files": [shown["file"]],
        "verified": result.failure is None and bool(result.timings),
        "summary": summary,
        "diff": result.diff(cwd),
        "failure": result.failure,
        "command": f"trainperf fix imports {entry} --write",
    }


def _loader(entry: str, run: Path, finding: str) -> JsonObject | None:
    from trainperf.fix import loader
    from trainperf.fix.patch import shown_path
    from trainperf.fix.reach import read_program
    from trainperf.fix.verify import entry_file
    from trainperf.startup.probe import resolve_target

    cwd = Path.cwd().resolve()
    try:
        calibrated = loader.from_run(run)
    except TrainperfError:
        return None  # no calibration proof measured settings to write
    try:
        target = resolve_target(entry, None)
        path, package = entry_file(target)
        program = read_program(path, package, [path.parent, target.root, target.root / "src"])
    except TrainperfError as exc:
        return _failed(finding, "loader", str(exc))
    # The entry point first, then the user's files it reaches, in the order it does.
    files = dict.fromkeys([path.resolve(), *program.files.values()])
    located = None
    for candidate in files:
        try:
            located = loader.locate(candidate)
        except TrainperfError:
            continue
        break
    if located is None:
        return _failed(
            finding,
            "loader",
            "no DataLoader(...) or TrainingArguments(...) call found in the entry point or "
            "the modules it imports: run trainperf fix loader FILE --from RUN on the file "
            "that builds the loader",
        )
    try:
        fixed = loader.plan(located, calibrated)
    except TrainperfError as exc:
        return _failed(finding, "loader", str(exc))
    unproven = loader.not_shown_faster(fixed, None)
    if unproven is not None:
        return _failed(finding, "loader", f"not offered: {unproven}")
    files_changed: list[Json] = [*sorted({shown_path(e.path, cwd) for e in fixed.edits})]
    summary: list[Json] = [
        f"{shown_path(located.path, cwd)}:{fixed.line}: {calibrated.comment()[2:]}"
    ]
    summary += [
        f"line {c.line}: {c.argument} {c.old or '(not given)'} -> {c.new}" for c in fixed.changes
    ]
    summary += [p.describe(cwd) for p in fixed.pointers]
    summary += list(fixed.notes)
    if not fixed.changed:
        summary.append("nothing to change: the call already has the calibrated settings")
    return {
        "finding": finding,
        "fix": "loader",
        "files": files_changed,
        "verified": calibrated.gain is not None and calibrated.gain.measured,
        "summary": summary,
        "diff": fixed.diff(cwd),
        "failure": None,
        "command": f"trainperf fix loader {shown_path(located.path, cwd)} --from {run} --write",
    }


def _failed(finding: str, fix: str, why: str) -> JsonObject:
    return {
        "finding": finding,
        "fix": fix,
        "files": [],
        "verified": False,
        "summary": [],
        "diff": "",
        "failure": why,
        "command": None,
    }
