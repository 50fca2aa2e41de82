"""Start-up: what importing a training entry point costs, and whose lines to blame.

    report = measure_imports("train.py", repeat=3)
    report.lines[0].where, report.lines[0].exclusive_s

See :mod:`.blame` for what *exclusive* and *cumulative* mean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainperf.errors import UsageError
from trainperf.startup.blame import analyze
from trainperf.startup.probe import resolve_target, run_probe
from trainperf.startup.report import ImportReport, LineCost, PackageCost, Verification

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ImportReport", "LineCost", "PackageCost", "Verification", "measure_imports"]


def measure_imports(
    target: str | None,
    *,
    code: str | None = None,
    repeat: int = 3,
    verify: int = 0,
    progress: Callable[[str], None] | None = None,
) -> ImportReport:
    """Load ``target`` (a module, a script, or ``code``) in fresh interpreters and blame.

    ``repeat`` plain ``-X importtime`` runs give the timings (medians); one traced run
    gives the import graph. ``verify`` > 0 measures the real saving of deferring each of
    the top ``verify`` statements.
    """
    from dataclasses import replace

    def say(message: str) -> None:
        if progress is not None:
            progress(message)

    where = resolve_target(target, code)
    timing = []
    for i in range(repeat):
        say(f"timing imports of {where.label} ({i + 1}/{repeat})")
        timing.append(run_probe(where, trace=False))
        if (timing[-1].error or "").startswith(("SyntaxError", "IndentationError")):
            raise UsageError(
                f"{where.label} is not valid Python ({timing[-1].error}); fix it and run again"
            )
        missing = f"ModuleNotFoundError: No module named '{where.value.split('.')[0]}"
        if where.kind == "module" and (timing[-1].error or "").startswith(missing):
            raise UsageError(
                f"no module named {where.value!r} here; check the name, the working "
                f"folder, or the environment it is installed in"
            )
    say(f"tracing imports of {where.label}")
    trace = run_probe(where, trace=True)
    report = analyze(where, timing, trace)
    if verify and report.lines:
        from trainperf.startup.verify import verify_lines, worth_verifying

        chosen = worth_verifying(report.lines, verify)
        report = replace(report, verified=verify_lines(where, chosen, repeat=repeat, progress=say))
    return report
