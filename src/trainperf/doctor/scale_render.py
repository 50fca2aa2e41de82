"""``doctor --scale``'s report for the terminal (a table and the explanation) and as a
page (the table, a stacked bar per rank count of the step's parts, every run)."""

from __future__ import annotations

import html
import shlex
import textwrap
from typing import TYPE_CHECKING

from trainperf.doctor.scale_report import PART_NAMES

if TYPE_CHECKING:
    from trainperf.doctor.scale_report import ScaleCount, ScalingReport

__all__ = ["explain", "render_scaling_html", "render_scaling_text", "table"]

_HEADER = (
    "ranks",
    "samples/s",
    "efficiency",
    "step ms",
    "data wait",
    "forward",
    "sync",
    "straggler",
    "threads/rank",
)
_WIDTH = 100
_VARIED = 1.25  # rounds' rates this far apart: the machine's load changed
_DISAGREE = 0.1  # efficiencies from the throughput and the median steps this far apart
# The step's parts, as stacked on the page: (name, colour).
_PARTS = (
    ("data wait", "#e6975b"),
    ("forward", "#8fb8de"),
    ("backward, all-reduce, optimizer", "#4c72b0"),
    ("straggler wait", "#c44e52"),
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _rate(value: float | None, none: str = "-") -> str:
    return none if value is None else f"{value:,.1f}"


def _ranks(n: int) -> str:
    return f"{n} rank{'s' if n != 1 else ''}"


def _cells(row: ScaleCount) -> list[str]:
    rate = _rate(row.samples_per_s)
    efficiency = "-" if row.efficiency is None else f"{row.efficiency:.0%}"
    threads = "-" if row.threads_per_rank is None else str(row.threads_per_rank)
    return [
        str(row.ranks),
        rate,
        efficiency,
        _ms(row.step_s),
        _ms(row.data_wait_s),
        _ms(row.forward_s),
        _ms(row.sync_s),
        _ms(row.straggler_s),
        threads,
    ]


def table(report: ScalingReport) -> list[str]:
    """The table: one line per rank count (times in ms, medians over the rounds)."""
    rows = [list(_HEADER)] + [_cells(row) for row in report.rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
    lines = []
    for number, cells in enumerate(rows):
        failure = report.rows[number - 1].failure if number else None
        if failure is not None:
            lines.append(f"{cells[0]:>{widths[0]}}  failed: {failure}")
            continue
        lines.append("  ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    return lines


def explain(report: ScalingReport) -> list[str]:
    """The explanation: rounds' rates, each count's efficiency and what ate it, the
    cause with its fix, and the runs that failed."""
    lines = []
    rounds = [
        f"{_ranks(row.ranks)}: " + ", ".join(_rate(r.samples_per_s, "failed") for r in row.runs)
        for row in report.rows
    ]
    lines.append("samples/s by round: " + "; ".join(rounds))
    for row in report.rows:
        rates = [r.samples_per_s for r in row.runs if r.samples_per_s]
        if len(rates) > 1 and max(rates) > _VARIED * min(rates):
            lines.append(
                f"  at {_ranks(row.ranks)} samples/s varied {max(rates) / min(rates):.1f}x "
                "between rounds: the machine's load changed; trust the median steps, or "
                "give more --rounds on a quieter machine"
            )
    base = report.rows[0]
    for loss in report.losses:
        row = next(r for r in report.rows if r.ranks == loss.ranks)
        if row.efficiency is not None and base.samples_per_s is not None:
            ideal = base.samples_per_s * row.ranks / base.ranks
            steady = row.steady_efficiency
            lines.append(
                f"{_ranks(row.ranks)}: efficiency {row.efficiency:.0%} against "
                f"{_ranks(base.ranks)} (ideal {ideal:,.1f} samples/s, measured "
                f"{row.samples_per_s:,.1f})"
                + ("" if steady is None else f"; {steady:.0%} by the median steps")
            )
            if steady is not None and abs(steady - row.efficiency) > _DISAGREE:
                lines.append(
                    "  the throughput counts every training step, each epoch's first and any "
                    "slow outlier (a busy machine, an epoch's start) included; the parts below "
                    "explain the median steps"
                )
        parts = ", ".join(
            f"{part} {'?' if value is None else f'{value * 1000:+.1f} ms'}"
            for part, value in loss.parts
        )
        lines.append(
            f"  the step grew {loss.step_growth_s * 1000:+.1f} ms from {_ranks(base.ranks)}: "
            f"{parts}"
        )
        cause = f"cause: {PART_NAMES[loss.cause]}; " if loss.cause else ""
        lines.append(f"  {cause}{loss.advice}")
    if base.failure is not None:
        lines.append(f"no efficiency: the {_ranks(base.ranks)} runs all failed")
    for row in report.rows:
        for run in row.runs:
            if run.failure is not None:
                lines.append(
                    f"failed: {_ranks(run.ranks)}, round {run.round}: {run.failure} ({run.run})"
                )
    return lines


def render_scaling_text(report: ScalingReport, *, html_path: str | None = None) -> str:
    bound = f"{report.steps} steps" if report.steps else f"{report.budget_s:g} s"
    cpus = f", {report.cpu_budget:g} CPUs" if report.cpu_budget else ""
    lines = [
        f"trainperf doctor --scale {','.join(str(n) for n in report.counts)}: "
        f"{shlex.join(report.command)}",
        f"{report.rounds} round(s), each run stopped after {bound}{cpus}; "
        f"{report.elapsed_s:.0f} s in all",
        "",
        *table(report),
        *_wrapped(
            "times: medians of the ranks' steady steps, in ms; sync is backward with the "
            "all-reduce and the optimizer step, straggler the wait in it for the slowest rank"
        ),
        "",
        *(wrapped for line in explain(report) for wrapped in _wrapped(line)),
        "",
        f"runs: {report.folder}",
    ]
    if html_path:
        lines.append(f"report: {html_path}")
    return "\n".join(lines)


def _wrapped(line: str) -> list[str]:
    """``line`` in lines of at most ``_WIDTH``, continued 4 spaces in from its indent."""
    indent = " " * (len(line) - len(line.lstrip()))
    return textwrap.wrap(
        line, width=_WIDTH, subsequent_indent=indent + "    ", break_on_hyphens=False
    ) or [line]


# -- the page ------------------------------------------------------------------------------


def render_scaling_html(report: ScalingReport) -> str:
    from trainperf.monitoring.html import STYLE

    e = html.escape
    command = shlex.join(report.command)
    head = "".join(f"<th>{e(name)}</th>" for name in _HEADER)
    body = ""
    for row in report.rows:
        if row.failure is not None:
            body += (
                f"<tr><td>{row.ranks}</td><td colspan={len(_HEADER) - 1}>failed: "
                f"{e(row.failure)}</td></tr>"
            )
            continue
        body += "<tr>" + "".join(f"<td>{e(c)}</td>" for c in _cells(row)) + "</tr>"
    explained = "".join(f"<p>{e(line)}</p>" for line in explain(report))
    runs = "".join(
        f"<tr><td>{run.ranks}</td><td>{run.round}</td><td>{run.steps}</td>"
        f"<td>{_rate(run.samples_per_s)}</td>"
        f"<td>{e(_ms(run.step_s))}</td><td><code>{e(run.run)}</code></td>"
        f"<td>{e(run.failure or '')}</td></tr>"
        for row in report.rows
        for run in row.runs
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trainperf doctor --scale: {e(command)}</title>
<style>{STYLE} pre,code{{font-size:12px}}</style></head><body>
<h1>trainperf doctor --scale</h1>
<section id="summary"><h2>Scaling efficiency</h2>
<p><code>{e(command)}</code>, at {e(", ".join(_ranks(n) for n in report.counts))};
{report.rounds} round(s) interleaved, in {report.elapsed_s:.0f} s.</p>
<table><tr>{head}</tr>{body}</table>
<p>Times in ms: medians of the ranks' steady steps (each epoch's first left out), over
the rounds. Efficiency: samples/s over the smallest count's, per rank.</p>
{explained}</section>
<section id="parts"><h2>What a step is made of, per rank count</h2>{_stacked(report)}</section>
<section id="runs"><h2>Runs</h2>
<table><tr><th>ranks</th><th>round</th><th>steps</th><th>samples/s</th><th>step ms</th>
<th>run folder (trainperf report FOLDER)</th><th>failure</th></tr>{runs}</table></section>
</body></html>
"""


def _parts(row: ScaleCount) -> list[float]:
    straggler = row.straggler_s or 0.0
    sync = row.sync_s or 0.0
    return [row.data_wait_s or 0.0, row.forward_s or 0.0, max(sync - straggler, 0.0), straggler]


def _stacked(report: ScalingReport) -> str:
    """One stacked bar per rank count: the medians of the step's parts."""
    from trainperf.monitoring.html import stacked_bars

    rows = [row for row in report.rows if row.step_s is not None]
    if not rows:
        return "<p>No run trained.</p>"
    names = [name for name, _ in _PARTS]
    return stacked_bars(
        [(_ranks(row.ranks), list(zip(names, _parts(row), strict=True))) for row in rows],
        dict(_PARTS),
        kind="stacked bar chart: each rank count's training step, by part",
        x_title="median time per step",
    )
