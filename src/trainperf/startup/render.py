"""Text rendering of an :class:`ImportReport`, and the CI budget checks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainperf.startup.report import ImportReport

__all__ = ["over_budget", "render_text", "shorten"]


def shorten(where: str, root: Path) -> str:
    """A ``file:line`` relative to ``root`` when it lies below it."""
    file, sep, line = where.rpartition(":")
    path = Path(file)
    if path.is_relative_to(root):
        file = str(path.relative_to(root))
    return f"{file}{sep}{line}"


def _seconds(value: float) -> str:
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def render_text(report: ImportReport, *, top: int = 10, root: Path) -> str:
    out = [
        f"imports of {report.target}: {_seconds(report.total_s)}, {report.modules:,} modules "
        f"(median of {report.runs} run{'s' if report.runs > 1 else ''})"
    ]
    if report.error:
        out.append(f"the target raised {report.error} while loading; costs are up to there")
    if report.lines:
        out += ["", f"{'exclusive':>10} {'cumulative':>11}  statement"]
        for cost in report.lines[:top]:
            out.append(
                f"{_seconds(cost.exclusive_s):>10} {_seconds(cost.cumulative_s):>11}  "
                f"{shorten(cost.where, root)}  {cost.statement}"
            )
        out.append(
            "exclusive: saved by deferring that statement alone; cumulative: what "
            "-X importtime charges it. Statements that share a package each show only "
            "their own part: defer them together (chains below)."
        )
    if report.packages:
        out += ["", f"{'package':<16} {'own':>9} {'with deps':>10}  reached through"]
        chains = {c.package: c for c in report.chains}
        for package in report.packages[:top]:
            chain = chains.get(package.name)
            via = ""
            if chain is not None:
                via = f"{shorten(chain.start, root)} " + " -> ".join(chain.path)
            out.append(
                f"{package.name:<16} {_seconds(package.self_s):>9} "
                f"{_seconds(package.cumulative_s):>10}  {via}"
            )
    if report.groups:
        out += ["", "deferred together, these statements of the entry point would save:"]
        for group in report.groups[:5]:
            where = _compact(group.starts, root)
            out.append(
                f"  {_seconds(group.saving_s):>9}  {where}  ({', '.join(group.packages[:4])})"
            )
    if report.optional_s > 0:
        out += [
            "",
            f"{_seconds(report.optional_s)} is spent only because optional packages are "
            f"installed: {', '.join(report.optional_packages)}",
        ]
    if report.verified:
        out += ["", "verified (deferring the statement, measured):"]
        for v in report.verified:
            out.append(
                f"  {shorten(f'{v.file}:{v.line}', root)}: predicted {_seconds(v.predicted_s)}, "
                f"measured {_seconds(v.measured_s)} ({v.error:.0%} apart)"
            )
    return "\n".join(out)


def _compact(starts: tuple[str, ...], root: Path) -> str:
    """``a.py:3, a.py:7, b.py:2`` -> ``a.py:3,7 b.py:2``."""
    by_file: dict[str, list[str]] = {}
    for start in starts:
        file, _, line = shorten(start, root).rpartition(":")
        by_file.setdefault(file, []).append(line)
    return " ".join(f"{file}:{','.join(lines)}" for file, lines in by_file.items())


def over_budget(
    report: ImportReport, *, budget_s: float | None, max_modules: int | None
) -> tuple[str, ...]:
    """Why the report breaks a CI budget, naming the chain responsible; empty if it does not."""
    if budget_s is not None and budget_s <= 0:
        from trainperf.errors import UsageError

        raise UsageError(f"--budget must be > 0 seconds, got {budget_s}")
    if max_modules is not None and max_modules < 1:
        from trainperf.errors import UsageError

        raise UsageError(f"--max-modules must be >= 1, got {max_modules}")
    culprit = ""
    if report.chains:
        chain = report.chains[0]
        culprit = f"; heaviest: {chain.start} " + " -> ".join(chain.path)
    reasons = []
    if budget_s is not None and report.total_s > budget_s:
        reasons.append(f"imports take {report.total_s:.3f} s > {budget_s:g} s{culprit}")
    if max_modules is not None and report.modules > max_modules:
        reasons.append(f"{report.modules} modules > {max_modules}{culprit}")
    return tuple(reasons)
