"""``trainperf fix imports``: plan the rewrite, then prove it before it is shown.

The rewritten target must load in a fresh interpreter; it is then timed side by side
with the original, interleaved (original, fixed; fixed, original; ...), to import
and -- where the target parses a command line -- to fail on a bad argument (the
"configuration error" a typo costs), and both must fail the same way. Each change's
own saving is the import time of the patch without it minus that of the whole
patch. A ``--check`` command must pass on the original and on the fixed files (put
in place for it, the originals restored after). Timings are wall-clock seconds of
whole interpreter runs; speed-ups are ratios of median rates with a bootstrap
interval (:func:`trainperf.calibration.speedup.speedup_interval`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.errors import UsageError
from trainperf.fix.imports import FilePlan, Refusal, Style, plan_file, third_party
from trainperf.fix.patch import shown_path, unified_diff

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from trainperf._json import JsonObject
    from trainperf.calibration.speedup import Speedup
    from trainperf.fix.reach import Program
    from trainperf.startup.costs import PackageInfo
    from trainperf.startup.probe import Target

__all__ = ["ImportsFix", "Timing", "config_error_args", "fix_imports"]

_OVERLAY = Path(__file__).with_name("_overlay.py")
DEFAULT_ROUNDS = 5
LINE_ROUNDS = 3  # each change's own saving: fewer rounds, it is a breakdown
_TIMED_OUT = -9
# A patch must save this much import time (and its interval clear 1x) to be offered:
# less is an interpreter's start-up noise, not what the rewrite did.
MIN_SAVING_S = 0.05
# ... and this share of the import: two imports of the same code, interleaved, differ by
# a few percent on a busy machine, more than an interval over a few rounds shows.
MIN_SAVING_SHARE = 0.1
LOAD_TIMEOUT_S = 120.0  # loading a target; longer, and it is training at import
# A wrong argument that every command-line parser rejects, in Hydra's and in
# argparse's (click's, typer's) form.
_BAD_OVERRIDE = "trainperf_fix_probe=1"
_BAD_OPTION = "--trainperf-fix-probe"


@dataclass(frozen=True)
class Timing:
    """One side-by-side comparison: medians in seconds, the speed-up of the fixed side."""

    what: str  # "import" or "configuration error"
    before_s: float
    after_s: float
    speedup: Speedup
    rounds: int
    args: tuple[str, ...] = ()  # the bad arguments a configuration error was timed with

    def describe(self) -> str:
        from trainperf._stats import format_speedup

        factor = format_speedup(self.speedup.value, self.speedup.low, self.speedup.high)
        given = f" ({shlex.join(self.args)})" if self.args else ""
        return (
            f"{self.what}{given}: {self.before_s:.2f} s -> {self.after_s:.2f} s, {factor} "
            f"({self.rounds} rounds interleaved, medians)"
        )

    def to_json(self) -> JsonObject:
        return {
            "what": self.what,
            "before_s": self.before_s,
            "after_s": self.after_s,
            "speedup": self.speedup.value,
            "speedup_low": self.speedup.low,
            "speedup_high": self.speedup.high,
            "rounds": self.rounds,
            "args": list(self.args),
        }


@dataclass
class ImportsFix:
    """The verified rewrite of an entry point's imports."""

    target: Target
    plan: FilePlan
    timings: list[Timing] = field(default_factory=list)
    savings_s: dict[int, float] = field(default_factory=dict)  # original line -> seconds
    dropped: list[Refusal] = field(default_factory=list)  # changes the target cannot load with
    check: str | None = None
    failure: str | None = None  # why no patch is offered
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.plan.fixed != self.plan.original and self.failure is None

    def diff(self, cwd: Path) -> str:
        if not self.changed:
            return ""
        return unified_diff(self.plan.path, self.plan.original, self.plan.fixed, cwd)

    def to_json(self, cwd: Path) -> JsonObject:
        from trainperf._schema import FIX

        return {
            "schema_version": FIX.version,
            "kind": "imports",
            "target": self.target.label,
            "file": shown_path(self.plan.path, cwd),
            "verified": self.failure is None,
            "failure": self.failure,
            "changes": [
                {
                    "line": c.line,
                    "statement": c.statement,
                    "module": c.module,
                    "action": c.action,
                    "into": list(c.into),
                    "why": c.why,
                    "saving_s": self.savings_s.get(c.line),
                }
                for c in self.plan.changes
            ],
            "refused": [
                {"line": r.line, "statement": r.statement, "module": r.module, "why": r.why}
                for r in [*self.plan.refusals, *self.dropped]
            ],
            "timings": [t.to_json() for t in self.timings],
            "check": self.check,
            "notes": list(self.notes),
            "diff": self.diff(cwd),
        }


def entry_file(target: Target) -> tuple[Path, str | None]:
    """The file of a script or module target, and the module's top-level package.
    Raises :class:`UsageError` for code (``-c``) or a module without a file."""
    from trainperf.fix.reach import find_module_file

    if target.kind == "path":
        path = Path(target.value)
        if path.suffix != ".py":
            raise UsageError(f"{path.name} is not a Python file (.py); give a script or a module")
        return path, None
    if target.kind == "code":
        raise UsageError("trainperf fix rewrites a file: give a script path or a module name")
    search = [Path(target.path0), target.root, target.root / "src"]
    search += [Path(p) for p in sys.path if p and Path(p).is_dir()]
    found = find_module_file(target.value, search)
    if found is None and (Path(target.path0) / target.value).is_dir():
        raise UsageError(f"{target.value} is a folder; give a script path (.py) or a module name")
    if found is None:
        raise UsageError(f"no file found for module {target.value}; give the script's path instead")
    return found, target.value.split(".", 1)[0]


def fix_imports(
    target: Target,
    *,
    cost_of: Callable[[str], PackageInfo],
    threshold_s: float,
    rounds: int = DEFAULT_ROUNDS,
    config_error: Sequence[str] | None = None,
    check: str | None = None,
    verify: bool = True,
    style: Style = "move",
    progress: Callable[[str], None] | None = None,
) -> ImportsFix:
    """Plan the rewrite of ``target``'s heavy imports and verify it (see the module
    docstring). ``config_error``: the arguments that make the target fail on its
    configuration (default: a bad Hydra override or option, when the target parses
    a command line; ``[]`` skips it). ``check``: a shell command that must pass on the
    original (run first) and with the rewritten file in place. A patch that imports no
    faster (its interval reaching 1x, or under ``MIN_SAVING_S`` or ``MIN_SAVING_SHARE``
    of the import saved) is not offered.
    Raises :class:`UsageError` for a target that cannot be read, is not Python, does not
    load as it is (within ``LOAD_TIMEOUT_S``), or a check that fails on the original."""
    from trainperf.fix.reach import read_program

    if rounds < 2:
        raise UsageError(f"--rounds must be at least 2 for an interval, got {rounds}")
    if style == "pep810" and verify and sys.version_info < (3, 15):
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        raise UsageError(
            f"--style pep810 writes `lazy import` statements (Python 3.15), which this Python "
            f"{version} cannot run to verify: add --no-verify to see them unverified, or use "
            "--style lazy-modules (valid on every version, lazy from 3.15 on)"
        )
    say = progress or (lambda _: None)
    entry, package = entry_file(target)
    roots = [entry.parent, target.root, target.root / "src"]
    say(f"reading the imports of {entry.name} and of the modules it loads")
    program = read_program(entry, package, roots)

    def loads(path: Path, line: int, module: str) -> tuple[set[str], set[str]]:
        user = program.user_file(module)
        if user is None and program.user_file(module.rpartition(".")[0]) is not None:
            return set(), set()  # a name in a user module, not a module: counted with it
        if user is not None:
            return (
                program.imported_at_import(user, cost_of),
                program.loaded_at_import(user, cost_of),
            )
        top = third_party(module)
        return (set(), set()) if top is None else ({top}, {top, *cost_of(top).loads})

    def heavy(package: str) -> bool:
        return cost_of(package).cost_s >= threshold_s

    def later(path: Path, line: int, module: str) -> str | None:
        found = program.imported_later(path, line, module, cost_of)
        if found is None:
            return None
        return f"{shown_path(found.path, target.root)}:{found.line}"

    plan = plan_file(entry, loads=loads, heavy=heavy, later=later, style=style)
    result = ImportsFix(target, plan)
    if plan.light:
        lines = ", ".join(f"line {line} ({code})" for line, code in plan.light)
        result.notes.append(
            f"left as they are, each importing in under {threshold_s:g} s alone: {lines}; "
            "a smaller --threshold weighs them too"
        )
    if style == "lazy-modules" and plan.changes and sys.version_info < (3, 15):
        result.notes.append(
            "__lazy_modules__ is read from Python 3.15 on: on this Python the listed imports "
            "stay eager, and the timings say so"
        )
    if plan.fixed == plan.original or not verify:
        if not verify and plan.changes:
            result.notes.append("not verified (--no-verify): nothing was run or timed")
        return result
    if check:
        result.check = check
        _check_original(check, say)  # a check that fails today says nothing: refused now
    with tempfile.TemporaryDirectory(prefix="trainperf-fix-") as scratch:
        runner = _Runner(target, entry, Path(scratch))
        say("loading the original and the rewritten target")
        error = runner.load(plan.original)
        if error is not None:
            raise UsageError(f"{target.label} does not load as it is ({error}); fix that first")
        _drop_unloadable(result, runner, say)
        if not result.changed:
            return result
        if style == "lazy-modules" and sys.version_info < (3, 15):
            # Nothing to time: this Python ignores __lazy_modules__ (said in the notes).
            return _checked(result, entry, check, say)
        args = config_error_args(program, entry) if config_error is None else list(config_error)
        timing = runner.compare("import", plan.original, plan.fixed, None, rounds, say)
        if isinstance(timing, str):
            result.failure = timing
            return result
        result.timings.append(timing)
        saved = timing.before_s - timing.after_s
        if (
            timing.speedup.low <= 1.0
            or saved < MIN_SAVING_S
            or saved < MIN_SAVING_SHARE * timing.before_s
        ):
            result.failure = (
                f"the rewritten file imports no faster ({timing.describe()}): what stays at "
                "import time loads the same packages"
            )
            return result
        if args:
            # Ten times the import, at least 30 s: a parser fails before much else runs.
            limit = max(30.0, 10 * timing.before_s)
            what = "configuration error"
            timing = runner.compare(what, plan.original, plan.fixed, args, rounds, say, limit)
            if isinstance(timing, str):
                result.failure = timing
                return result
            result.timings.append(timing)
        elif config_error is None:
            result.notes.append(
                "no command-line parser found: the time to a configuration error was not "
                "measured (give --config-error ARGS)"
            )
        if len(plan.changes) > 1:
            for change in plan.changes:
                say(f"timing line {change.line} alone")
                without = plan.without([change.line])
                base = runner.compare("import", without, plan.fixed, None, LINE_ROUNDS, say)
                assert not isinstance(base, str)
                result.savings_s[change.line] = base.before_s - base.after_s
        elif plan.changes:
            first = result.timings[0]
            result.savings_s[plan.changes[0].line] = first.before_s - first.after_s
    return _checked(result, entry, check, say)


def _checked(
    result: ImportsFix, entry: Path, check: str | None, say: Callable[[str], None]
) -> ImportsFix:
    if check:
        failure = _check(entry, result.plan, check, say)
        if failure is not None:
            result.failure = failure
    return result


def config_error_args(program: Program, entry: Path) -> list[str]:
    """A bad argument the target's command-line parser rejects: a Hydra override when
    the entry (or a module it imports at module level) uses Hydra, an unknown option
    for argparse, click or typer; none when it parses no command line."""
    files = {entry.resolve()}
    for statement in program.statements:
        if statement.path == entry.resolve() and statement.module_level:
            user = program.user_file(statement.module)
            if user is not None:
                files.add(user)
    text = ""
    for path in files:
        try:
            text += path.read_text(encoding="utf-8")
        except OSError:
            continue
    if "hydra.main" in text or ("@main(" in text and "hydra" in text):
        return [_BAD_OVERRIDE]
    if any(word in text for word in ("ArgumentParser", "click.", "typer", "LightningCLI")):
        return [_BAD_OPTION]
    return []


def _drop_unloadable(result: ImportsFix, runner: _Runner, say: Callable[[str], None]) -> None:
    plan = result.plan
    if runner.load(plan.fixed) is None:
        return
    keep: list[int] = []
    for change in plan.changes:
        alone = plan.without([c.line for c in plan.changes if c.line != change.line])
        error = runner.load(alone)
        if error is None:
            keep.append(change.line)
        else:
            result.dropped.append(
                Refusal(change.line, change.statement, change.module, f"does not load so: {error}")
            )
    say(f"{len(result.dropped)} change(s) left out: the target does not load with them")
    plan.fixed = plan.without([c.line for c in plan.changes if c.line not in keep])
    plan.changes = [c for c in plan.changes if c.line in keep]
    if plan.changes and runner.load(plan.fixed) is not None:
        result.failure = "the rewritten target does not load, and no subset was tried further"


class _Runner:
    """Runs the target in fresh interpreters with the entry file served from a text."""

    def __init__(self, target: Target, entry: Path, scratch: Path) -> None:
        self.target = target
        self.entry = entry.resolve()
        self.scratch = scratch
        self.count = 0

    def _run(
        self, source: str, args: Sequence[str] | None, timeout: float = 600.0
    ) -> tuple[float, int, str]:
        self.count += 1
        sources = self.scratch / f"sources-{self.count}.json"
        sources.write_text(json.dumps({str(self.entry): source}), encoding="utf-8")
        mode = "import" if args is None else "run"
        value = self.target.value if self.target.kind == "module" else str(self.entry)
        argv = [sys.executable, str(_OVERLAY), str(sources), mode, self.target.kind, value]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONIMPORTTIME"}
        started = time.perf_counter()
        try:
            done = subprocess.run(
                [*argv, *(args or [])],
                capture_output=True,
                text=True,
                cwd=self.target.path0 or None,
                env=env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return timeout, _TIMED_OUT, f"still running after {timeout:.0f} s"
        elapsed = time.perf_counter() - started
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return elapsed, done.returncode, lines[-1] if lines else ""

    def load(self, source: str) -> str | None:
        """None when the target loads from ``source``, else its last error line.
        Raises :class:`UsageError` when loading takes over ``LOAD_TIMEOUT_S``."""
        _, code, last = self._run(source, None, LOAD_TIMEOUT_S)
        if code == _TIMED_OUT:
            raise UsageError(
                f"loading {self.target.label} did not finish within {LOAD_TIMEOUT_S:.0f} s: "
                'it runs its work at import (no `if __name__ == "__main__":` block?); '
                "guard the training with one first"
            )
        return None if code == 0 else last or f"exit code {code}"

    def compare(
        self,
        what: str,
        before: str,
        after: str,
        args: Sequence[str] | None,
        rounds: int,
        say: Callable[[str], None],
        timeout: float = 600.0,
    ) -> Timing | str:
        """Interleaved rounds; with ``args`` both sides must fail the same way (else
        the sentence saying how they differ is returned), within ``timeout`` seconds a
        run (a target that ignores the bad argument would start training)."""
        from trainperf.calibration.speedup import speedup_interval

        times: dict[str, list[float]] = {"before": [], "after": []}
        outcomes: dict[str, tuple[int, str]] = {}
        for number in range(rounds):
            say(f"timing the {what}: round {number + 1} of {rounds}")
            order = ("before", "after") if number % 2 == 0 else ("after", "before")
            for side in order:
                source = before if side == "before" else after
                elapsed, code, last = self._run(source, args, timeout)
                if code == _TIMED_OUT:
                    return (
                        f"the {side} side did not fail on {' '.join(args or [])!r} within "
                        f"{timeout:.0f} s (it may have started training): give --config-error "
                        "with arguments its parser rejects, or --config-error '' to skip"
                    )
                if args is None and code != 0:
                    return f"the {side} side stopped loading during the timing: {last}"
                times[side].append(elapsed)
                outcomes.setdefault(side, (code, last))
        if args is not None:
            (code_a, last_a), (code_b, last_b) = outcomes["before"], outcomes["after"]
            shown = " ".join(args)
            if code_a == 0:
                return (
                    f"the original did not fail on the bad argument {shown!r}: give "
                    "--config-error with arguments its parser rejects"
                )
            if (code_a, last_a) != (code_b, last_b):
                return (
                    f"the rewritten target fails differently on {shown!r}: exit {code_b} "
                    f"({last_b}) where the original gave exit {code_a} ({last_a})"
                )
        speed = speedup_interval(
            [1 / t for t in times["before"]], [1 / t for t in times["after"]], paired=True
        )
        return Timing(
            what,
            statistics.median(times["before"]),
            statistics.median(times["after"]),
            speed,
            rounds,
            tuple(args or ()),
        )


def _run_check(command: str) -> tuple[int, str]:
    """The check through the shell, in a process group of its own (stopped with it)."""
    try:
        # The user's own command line, as they would type it in their shell.
        process = subprocess.Popen(  # noqa: S602
            command,
            shell=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        raise UsageError(f"cannot run the check {command!r}: {exc}") from None
    try:
        output, _ = process.communicate()
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    # The error itself where it says so (pytest's summary line comes after it).
    errors = [line for line in lines if "Error" in line or "error:" in line]
    return process.returncode, (errors or lines or [""])[-1]


def _check_original(command: str, say: Callable[[str], None]) -> None:
    say(f"running the check on the original: {command}")
    code, last = _run_check(command)
    if code != 0:
        raise UsageError(
            f"the check fails on the original code already (exit {code}: {last}); give a "
            "--check that passes today"
        )


class _Stopped(Exception):
    """SIGTERM or SIGHUP while the rewritten file is in place for the check."""


def _check(entry: Path, plan: FilePlan, command: str, say: Callable[[str], None]) -> str | None:
    """Run the user's check with the fixed file in place: the original copied aside
    first and put back whatever happens (Ctrl-C, SIGTERM and SIGHUP included; only
    SIGKILL leaves the copy, ``FILE.orig``, to restore by hand)."""
    from trainperf.fix.patch import write_keeping_original

    def stop(number: int, _frame: object) -> None:
        raise _Stopped(signal.Signals(number).name)

    say("running the check on the rewritten file")
    previous = {number: signal.signal(number, stop) for number in (signal.SIGTERM, signal.SIGHUP)}
    try:
        backup = write_keeping_original(entry, plan.original, plan.fixed)
        try:
            code, last = _run_check(command)
        finally:
            entry.write_text(plan.original, encoding="utf-8", newline="")
            backup.unlink()
    except _Stopped as exc:
        raise UsageError(f"stopped by {exc} during the check; {entry} is as it was") from None
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return None if code == 0 else f"the check fails on the rewritten file (exit {code}: {last})"
