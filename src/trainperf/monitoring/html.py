"""A self-contained HTML page for a run, with inline SVG plots (no network, no files).

Plots: step-time composition over the run (data wait under compute, stacked), a
histogram of per-step data wait, throughput over time, process and worker memory
over time, peak memory per epoch (and CUDA's where used), GPU utilisation where
NVML sampled it, and training against validation time.

Every plot's value axis has ticks labelled with their unit, in plain decimals: a
duration axis is shown in µs, ms or s, whichever its largest value reads best in
(0.00012 s is "0.12 ms"). Each ``<svg>`` names its kind and subject in
``aria-label`` ("histogram: ...", "line chart: ...", "bar chart: ...").
"""

from __future__ import annotations

import html
import math
import statistics
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from trainperf.monitoring.analyze import RunSummary
    from trainperf.monitoring.records import Period
    from trainperf.monitoring.sampler import Sample
    from trainperf.monitoring.worker_timing import StartCost

__all__ = [
    "STYLE",
    "Axis",
    "amount",
    "audit_section",
    "bars",
    "ranks_section",
    "render_run_html",
    "run_sections",
    "stacked_bars",
    "workers_section",
]

W, H = 680, 200
LEFT, RIGHT, TOP, BOTTOM = 104, 16, 24, 40  # margins around the plotting area
_NAME = 84  # characters of a bar's name shown inside the plot
STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:20px} h2{font-size:17px;margin-top:32px} h3{font-size:15px;margin-top:22px}
svg{background:#fafafa;border:1px solid #ddd} .axis,.tick{font-size:10px;fill:#555}
table{border-collapse:collapse} td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #eee}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
"""


def _decimals(step: float) -> int:
    """Decimals that show every multiple of ``step`` exactly (step is 1, 2 or 5 x 10^k)."""
    return max(0, -math.floor(math.log10(step) + 1e-9))


def _scale(top: float, unit: str) -> tuple[float, str]:
    """The factor and unit values up to ``top`` read best in: seconds become µs or ms."""
    if unit == "s" and top < 1e-3:
        return 1e6, "µs"
    if unit == "s" and top < 1.0:
        return 1e3, "ms"
    return 1.0, unit


def amount(value: float, unit: str) -> str:
    """One value with its unit, in plain decimals: ``amount(0.00012, "s") == "120 µs"``."""
    if value == 0:
        return f"0 {unit}" if unit else "0"
    factor, shown = _scale(abs(value), unit)
    scaled = value * factor
    size = abs(scaled)
    places = 2 if size < 10 else 1 if size < 100 else 0
    text = f"{scaled:,.{places}f}"
    return f"{text} {shown}" if shown else text


class Axis:
    """A value axis from 0 to a round number above ``top``, with 3 to 6 ticks.

    ``unit`` is that of the values given ("s", "samples/s", "MiB", "%", or "" for a
    count or an index); durations are shown in the unit :func:`amount` would choose for
    the largest. ``integer`` keeps ticks on whole numbers (counts).
    """

    def __init__(self, top: float, unit: str, *, integer: bool = False) -> None:
        self.factor, self.unit = _scale(top, unit)
        shown = top * self.factor if top > 0 else 1.0
        raw = shown / 4
        power = 10.0 ** math.floor(math.log10(raw))
        step = next(m * power for m in (1, 2, 5, 10) if raw <= m * power * (1 + 1e-9))
        if integer:
            step = max(1.0, round(step))
        count = max(1, math.ceil(shown / step - 1e-9))
        self.step = step
        self.top = count * step  # in shown units
        self.ticks = [i * step for i in range(count + 1)]

    def fraction(self, value: float) -> float:
        """Where ``value`` (in the values' unit) lies between 0 and the axis top."""
        return value * self.factor / self.top

    def label(self, tick: float) -> str:
        text = f"{tick:,.{_decimals(self.step)}f}" if tick else "0"
        return f"{text} {self.unit}" if self.unit else text


def _inner(height: int) -> tuple[float, float]:
    """Width and height of the plotting area."""
    return W - LEFT - RIGHT, height - TOP - BOTTOM


def _frame(
    body: str,
    *,
    kind: str,
    x: Axis | None,
    y: Axis | None,
    x_title: str,
    y_title: str,
    height: int = H,
) -> str:
    """Axes with their ticks and titles around ``body``; ``kind`` names the chart."""
    width, tall = _inner(height)
    base = TOP + tall
    marks = [
        f'<line x1="{LEFT}" y1="{base}" x2="{W - RIGHT}" y2="{base}" stroke="#999"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#999"/>',
        f'<text class="axis" x="{LEFT}" y="{height - 6}">{html.escape(x_title)}</text>',
        f'<text class="axis" x="4" y="11">{html.escape(y_title)}</text>',
    ]
    if x is not None:
        for tick in x.ticks:
            px = LEFT + width * tick / x.top
            marks.append(
                f'<line x1="{px:.1f}" y1="{base}" x2="{px:.1f}" y2="{base + 4}" stroke="#999"/>'
                f'<text class="tick" x="{px:.1f}" y="{base + 15}" text-anchor="middle">'
                f"{html.escape(x.label(tick))}</text>"
            )
    if y is not None:
        for tick in y.ticks:
            py = base - tall * tick / y.top
            marks.append(
                f'<line x1="{LEFT - 4}" y1="{py:.1f}" x2="{LEFT}" y2="{py:.1f}" stroke="#999"/>'
                f'<text class="tick" x="{LEFT - 6}" y="{py + 3:.1f}" text-anchor="end">'
                f"{html.escape(y.label(tick))}</text>"
            )
    return (
        f'<svg width="{W}" height="{height}" viewBox="0 0 {W} {height}" role="img" '
        f'aria-label="{html.escape(kind)}">{"".join(marks)}{body}</svg>'
    )


def _point(x: Axis, y: Axis, xv: float, yv: float) -> tuple[float, float]:
    width, tall = _inner(H)
    return LEFT + width * x.fraction(xv), TOP + tall - tall * y.fraction(yv)


def _stacked_steps(train: Sequence[Period]) -> str:
    if not train:
        return "<p>No training steps.</p>"
    n = len(train)
    x = Axis(max(n - 1, 1), "", integer=True)
    y = Axis(max(p.wall_s for p in train), "s")

    def area(values: list[float], colour: str) -> str:
        path = " ".join("{:.1f},{:.1f}".format(*_point(x, y, i, v)) for i, v in enumerate(values))
        first, last = _point(x, y, 0, 0), _point(x, y, n - 1, 0)
        return (
            f'<polygon points="{first[0]:.1f},{first[1]:.1f} {path} {last[0]:.1f},'
            f'{last[1]:.1f}" fill="{colour}" opacity="0.85"/>'
        )

    body = area([p.wall_s for p in train], "#8fb8de") + area(
        [p.data_wait_s for p in train], "#e6975b"
    )
    legend = (
        '<div class="legend"><span style="background:#e6975b"></span>data wait'
        '<span style="background:#8fb8de"></span>compute (rest of the step)</div>'
    )
    chart = _frame(
        body,
        kind="stacked area chart: time of each training step, data wait under compute",
        x=x,
        y=y,
        x_title="training step",
        y_title=f"time per step ({y.unit})",
    )
    return chart + legend


def _histogram(values: Sequence[float], subject: str, unit: str) -> str:
    """A histogram: how many values fall in each of 30 equal ranges from 0 to the axis top."""
    if not values:
        return "<p>No data.</p>"
    x = Axis(max(values), unit)
    bins = 30
    counts = [0] * bins
    for v in values:
        counts[min(int(x.fraction(v) * bins), bins - 1)] += 1
    y = Axis(max(counts), "", integer=True)  # a count: plain whole numbers
    width, tall = _inner(H)
    rects = ""
    for i, count in enumerate(counts):
        if count:
            height = tall * count / y.top
            rects += (
                f'<rect x="{LEFT + width * i / bins:.1f}" y="{TOP + tall - height:.1f}" '
                f'width="{max(width / bins - 1, 1):.1f}" height="{height:.1f}" fill="#e6975b"/>'
            )
    return _frame(
        rects,
        kind=f"histogram: number of training steps by {subject}",
        x=x,
        y=y,
        x_title=f"{subject} ({x.unit})",
        y_title="training steps",
    )


def _line(
    points: Sequence[tuple[float, float]],
    *,
    subject: str,
    x_title: str,
    x_unit: str,
    y_unit: str,
    colour: str,
) -> str:
    """A line chart of ``points`` (x, y), both axes from 0."""
    if len(points) < 2:
        return "<p>Not enough data.</p>"
    integer = x_unit == ""
    x = Axis(max(px for px, _ in points), x_unit, integer=integer)
    y = Axis(max(py for _, py in points), y_unit)
    coords = " ".join("{:.1f},{:.1f}".format(*_point(x, y, px, py)) for px, py in points)
    body = f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
    title = f"{x_title} ({x.unit})" if x.unit else x_title
    return _frame(
        body,
        kind=f"line chart: {subject}",
        x=x,
        y=y,
        x_title=title,
        y_title=f"{subject} ({y.unit})",
    )


def bars(rows: Sequence[tuple[str, float, str]], *, unit: str = "s", label: str = "") -> str:
    """Horizontal bars, one row each: (name, value in ``unit``, colour); a bar chart.

    ``unit`` is that of the values: "s" (shown in µs, ms or s), "%", "samples/s", ...
    ``label`` names what the bars measure.
    """
    top = max((v for _, v, _ in rows), default=0.0)
    x = Axis(top, unit)
    height = 40 * max(len(rows), 1) + TOP + BOTTOM
    width, _ = _inner(height)
    body = ""
    for i, (name, value, colour) in enumerate(rows):
        length = width * max(x.fraction(value), 0.0)
        y0 = TOP + 6 + 40 * i
        shown = name if len(name) <= _NAME else name[: _NAME - 1] + "…"
        body += (
            f'<rect x="{LEFT}" y="{y0}" width="{length:.1f}" height="28" fill="{colour}"/>'
            f'<text class="axis" x="{LEFT + 4}" y="{y0 + 18}">'
            f"{html.escape(shown)}: {html.escape(amount(value, unit))}</text>"
        )
    subject = label or unit
    return _frame(
        body,
        kind=f"bar chart: {subject}",
        x=x,
        y=None,
        x_title=f"{subject} ({x.unit})" if x.unit else subject,
        y_title="",
        height=height,
    )


def render_run_html(
    title: str, summary: RunSummary, periods: Sequence[Period], samples: Sequence[Sample]
) -> str:
    e = html.escape
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trainperf run: {e(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{e(title)}</h1>
{run_sections(summary, periods, samples)}
</body></html>
"""


def run_sections(
    summary: RunSummary,
    periods: Sequence[Period],
    samples: Sequence[Sample],
    *,
    nothing_found: str = "The monitor found nothing to name in this run.",
) -> str:
    """The run's verdict, findings and plots, as HTML to put in a page.

    ``nothing_found`` is said instead of an empty findings table.
    """
    e = html.escape
    train = [p for p in periods if p.kind == "train"]
    window = max(1, len(train) // 50)
    rate = []
    for i in range(0, len(train) - window + 1, window):
        chunk = train[i : i + window]
        seconds = sum(p.wall_s for p in chunk)
        counted = sum(p.samples or 0 for p in chunk)
        if seconds > 0 and counted:
            rate.append((chunk[-1].start_s + chunk[-1].wall_s, counted / seconds))
    memory = [(s.t_s, (s.rss_bytes + s.children_rss_bytes) / 2**20) for s in samples]
    rows = "".join(
        f"<tr><td>{e(f.kind)}</td><td>{e(', '.join(f'{k}={v:.3g}' for k, v in f.evidence.items()))}"
        f"</td><td>{e(f.fix)}</td><td>{e(f.gain)}</td></tr>"
        for f in summary.findings
    )
    findings = (
        f"<table><tr><th>finding</th><th>evidence</th><th>fix</th><th>gain</th></tr>{rows}</table>"
        if rows
        else f"<p>{e(nothing_found)}</p>"
    )
    shares = "".join(f"<tr><td>{e(k)}</td><td>{v:.1%}</td></tr>" for k, v in summary.shares.items())
    median = amount(summary.step_median_s, "s") if summary.step_median_s else "n/a"
    rate_text = f"{summary.samples_per_s:,.1f}" if summary.samples_per_s else "n/a"
    rate_text += " samples/s"
    if summary.tokens_per_s:
        rate_text += f", {summary.tokens_per_s:,.0f} tokens/s"
    split = bars(
        (("training", summary.train_s, "#8fb8de"), ("validation", summary.val_s, "#b5d99c")),
        label="time spent",
    )
    waits = [p.data_wait_s for p in train if not p.first_of_epoch]
    gpu = [(s.t_s, s.gpu_util_percent) for s in samples if s.gpu_util_percent is not None]
    gpu_section = (
        "<h3>GPU utilisation over the run (NVML)</h3>"
        + _line(
            gpu,
            subject="GPU busy",
            x_title="time since the start",
            x_unit="s",
            y_unit="%",
            colour="#c44e52",
        )
        if gpu
        else ""
    )
    median_wait = amount(statistics.median(waits), "s") if waits else "n/a"
    from trainperf.monitoring.render import confidence_words, describe_verdict

    conditions = summary.conditions
    busy = (
        f'<p class="busy"><b>The machine was busy while this run was measured</b> '
        f"({e(conditions.describe())}): the verdict is {e(confidence_words(summary.confidence))}; "
        f"re-run on a quiet machine before acting on it.</p>"
        if conditions is not None and conditions.contended
        else ""
    )
    said = (
        f"<p>Measurement conditions: {e(conditions.describe())}.</p>"
        if conditions is not None
        else ""
    )
    verdict = "<br>".join(e(line) for line in describe_verdict(summary.to_json()))
    return f"""{busy}<p><b>Verdict: {e(summary.primary)}</b> &mdash; {summary.steps} training steps
{f"on {summary.ranks} ranks " if summary.ranks > 1 else ""}(median {e(median)}),
{rate_text}.</p>
<p>{verdict}</p>{said}
<h3>Findings</h3>
{findings}
<h3>Where the time goes</h3><table>{shares}</table>
<h3>Step-time composition, step by step</h3>{_stacked_steps(train)}
<h3>Histogram of data wait per training step</h3>
<p>Each bar counts the training steps whose wait for the DataLoader fell in its range (each
epoch's first batch, which includes worker start-up, is left out); median {e(median_wait)}.</p>
{_histogram(waits, "data wait", "s")}
<h3>Throughput over the run</h3>
{
        _line(
            rate,
            subject="throughput",
            x_title="time since the start",
            x_unit="s",
            y_unit="samples/s",
            colour="#4c72b0",
        )
    }
<h3>Memory over the run (process and DataLoader workers)</h3>
{
        _line(
            memory,
            subject="memory",
            x_title="time since the start",
            x_unit="s",
            y_unit="MiB",
            colour="#8172b2",
        )
    }
<h3>Peak memory per epoch</h3>{_epoch_memory(summary)}{gpu_section}
<h3>Training and validation</h3>{split}
{workers_section(summary)}{ranks_section(summary)}{audit_section(summary)}"""


_PHASE_COLOURS = {
    "launch": "#9aa5b1",
    "imports": "#c44e52",
    "unpickle": "#dd8452",
    "worker_init_fn": "#8172b2",
    "setup": "#ccb974",
    "first_fetch": "#4c72b0",
}
_MAX_STARTS = 16  # rows of the start-up waterfall


def stacked_bars(
    rows: Sequence[tuple[str, Sequence[tuple[str, float]]]],
    colours: Mapping[str, str],
    *,
    kind: str,
    x_title: str,
) -> str:
    """Horizontal stacked bars, one row each: (label, [(part, seconds), ...]), each part
    coloured by ``colours`` (a legend follows); ``kind`` says what the chart shows and
    ``x_title`` what its axis measures (its unit is added)."""
    e = html.escape
    x = Axis(max((sum(v for _, v in parts) for _, parts in rows), default=0.0) or 1e-6, "s")
    height = 30 * len(rows) + TOP + BOTTOM
    width, _ = _inner(height)
    body = ""
    for line, (label, parts) in enumerate(rows):
        y0, at = TOP + 4 + 30 * line, 0.0
        body += (
            f'<text class="tick" x="{LEFT - 6}" y="{y0 + 15}" text-anchor="end">{e(label)}</text>'
        )
        for name, seconds in parts:
            left = LEFT + width * max(x.fraction(at), 0.0)
            length = width * max(x.fraction(seconds), 0.0)
            body += (
                f'<rect x="{left:.1f}" y="{y0}" width="{length:.1f}" height="22" '
                f'fill="{colours.get(name, "#999")}"><title>{e(name)}: '
                f"{e(amount(seconds, 's'))}</title></rect>"
            )
            at += seconds
    legend = '<div class="legend">' + "".join(
        f'<span style="background:{colour}"></span>{e(name.replace("_", " "))}'
        for name, colour in colours.items()
    )
    chart = _frame(
        body, kind=kind, x=x, y=None, x_title=f"{x_title} ({x.unit})", y_title="", height=height
    )
    return chart + legend + "</div>"


def _waterfall(costs: Sequence[StartCost]) -> str:
    """One row per worker start: its slowest worker's way to the first batch, phase by
    phase (a stacked bar chart)."""
    return stacked_bars(
        [(f"start {c.start.start}", c.phases) for c in costs[:_MAX_STARTS]],
        _PHASE_COLOURS,
        kind="stacked bar chart: each worker start's time to its first batch, by phase",
        x_title="time from iter(loader) to the first batch",
    )


def workers_section(summary: RunSummary) -> str:
    """The DataLoader workers, timed inside: start-up waterfall, batch stages per
    worker, memory per worker over time. Empty when no worker reported."""
    timing = summary.workers
    if timing is None or (timing.startup is None and timing.stages is None and not timing.memory):
        return ""
    from trainperf.monitoring.render import describe_workers

    e = html.escape
    said = "<br>".join(e(line) for line in describe_workers(summary.to_json()))
    out = f"<h3>DataLoader workers</h3><p>{said}</p>"
    startup = timing.startup
    if startup is not None:
        out += (
            "<h4>Worker start-up, each start</h4><p>From each <code>iter(loader)</code> that "
            "started workers to its first batch, for the slowest of its workers.</p>"
            + _waterfall(startup.costs)
        )
    stages = timing.stages
    if stages is not None:
        rows = "".join(
            f"<tr><td>{wid}</td><td>{n}</td><td>{e(amount(fetch, 's'))}</td>"
            f"<td>{e(amount(fetch - collate, 's'))}</td><td>{e(amount(collate, 's'))}</td></tr>"
            for wid, n, fetch, collate in stages.per_worker
        )
        slow = ", ".join(f"{i} ({amount(t, 's')})" for i, t in stages.slowest) or "not timed"
        out += (
            "<h4>Where a batch's time goes in the workers</h4><table><tr><th>worker</th>"
            "<th>batches</th><th>median batch</th><th>__getitem__</th><th>collate_fn</th></tr>"
            f"{rows}</table><p>Batch build time p50 {e(amount(stages.p50_s, 's'))}, p95 "
            f"{e(amount(stages.p95_s, 's'))}, p99 {e(amount(stages.p99_s, 's'))}. Slowest "
            f"samples: {e(slow)}.</p>"
        )
    if timing.memory:
        private = [(r.t_s, sum((w.uss or w.rss) for w in r.workers) / 2**20) for r in timing.memory]
        shared = [(r.t_s, sum((w.shared or 0) for w in r.workers) / 2**20) for r in timing.memory]
        out += (
            "<h4>Workers' memory over the run</h4><p>Private memory (USS) of all workers, "
            "then their shared memory: private rising as shared falls is copy-on-read.</p>"
            + _line(
                private,
                subject="workers' private memory",
                x_title="time since the start",
                x_unit="s",
                y_unit="MiB",
                colour="#c44e52",
            )
            + _line(
                shared,
                subject="workers' shared memory",
                x_title="time since the start",
                x_unit="s",
                y_unit="MiB",
                colour="#55a868",
            )
        )
    return out


_RANK_COLOURS = {"data wait": "#c44e52", "forward": "#4c72b0", "sync": "#9aa5b1"}


def audit_section(summary: RunSummary) -> str:
    """The input audit: what was checked of the samples each rank trained on, what was
    found, what could not be checked; empty when nothing was checked."""
    from trainperf.monitoring.render import describe_audit

    lines = describe_audit(summary.to_json())
    if not lines:
        return ""
    first = lines[0].removeprefix("input audit: ")
    lines[0] = first[:1].upper() + first[1:]
    said = "<br>".join(html.escape(line.strip()) for line in lines)
    return f"<h3>Input audit: the samples each rank trained on</h3><p>{said}</p>"


def ranks_section(summary: RunSummary) -> str:
    """Several ranks: each rank's step in parts (data wait, forward, then backward with
    its all-reduce and the optimizer), a stacked bar per rank, and the table; empty
    for one process."""
    breakdown = summary.rank_breakdown
    if breakdown is None or len(breakdown.rows) < 2:
        return ""
    from trainperf.monitoring.render import describe_ranks

    e = html.escape
    rows = breakdown.rows
    chart = stacked_bars(
        [
            (
                f"rank {r.rank}",
                [
                    ("data wait", r.data_wait_s or 0.0),
                    ("forward", r.forward_s or 0.0),
                    ("sync", r.sync_s or 0.0),
                ],
            )
            for r in rows
        ],
        _RANK_COLOURS,
        kind="stacked bar chart: each rank's median step, by part",
        x_title="median step",
    )
    table = "".join(
        f"<tr><td>{r.rank}</td><td>{r.steps}</td><td>{e(amount(r.step_s or 0.0, 's'))}</td>"
        f"<td>{e(amount(r.data_wait_s or 0.0, 's'))}</td>"
        f"<td>{e(amount(r.forward_s or 0.0, 's'))}</td>"
        f"<td>{e(amount(r.arrival_s or 0.0, 's'))}</td>"
        f"<td>{e(amount(r.sync_s or 0.0, 's'))}</td><td>{r.slowest_share:.0%}</td></tr>"
        for r in rows
    )
    said = describe_ranks(summary.to_json())[len(rows) + 1 :]
    return (
        "<h3>Ranks</h3><p>Each rank's median steady step. A rank's arrival (data wait and "
        "forward pass) is what the others wait for in backward's gradient all-reduce, so "
        "the step times are alike and the arrivals are not.</p>"
        + chart
        + "<table><tr><th>rank</th><th>steady steps</th><th>step</th><th>data wait</th>"
        "<th>forward</th><th>arrival</th><th>sync</th><th>slowest in</th></tr>"
        + table
        + "</table>"
        + "".join(f"<p>{e(line.strip())}</p>" for line in said)
    )


def _epoch_memory(summary: RunSummary) -> str:
    """Peak memory per epoch: host (process and workers), then CUDA where used."""
    host = [(e.epoch, e.peak_memory_bytes / 2**20) for e in summary.epochs if e.peak_memory_bytes]
    device = [
        (e.epoch, e.device_allocated_peak_bytes / 2**20)
        for e in summary.epochs
        if e.device_allocated_peak_bytes is not None
    ]
    if not host and not device:
        return "<p>No memory samples.</p>"
    out = ""
    if host:
        out += _line(
            host,
            subject="host peak memory",
            x_title="epoch",
            x_unit="",
            y_unit="MiB",
            colour="#8172b2",
        )
    if device:
        out += _line(
            device,
            subject="CUDA allocated peak",
            x_title="epoch",
            x_unit="",
            y_unit="MiB",
            colour="#c44e52",
        )
    return out
