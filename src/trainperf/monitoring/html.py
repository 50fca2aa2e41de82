"""A self-contained HTML page for a run, with inline SVG plots (no network, no files).

Plots: step-time composition over the run (data wait under compute, stacked), the
distribution of per-step data wait, throughput over time, process and worker
memory over time, peak memory per epoch (and CUDA's where used), GPU utilisation
where NVML sampled it, and training against validation time.
"""

from __future__ import annotations

import html
import statistics
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trainperf.monitoring.analyze import RunSummary
    from trainperf.monitoring.records import Period
    from trainperf.monitoring.sampler import Sample

__all__ = ["STYLE", "bars", "render_run_html", "run_sections"]

W, H, PAD = 640, 180, 36
STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:20px} h2{font-size:17px;margin-top:32px} h3{font-size:15px;margin-top:22px}
svg{background:#fafafa;border:1px solid #ddd} .axis{font-size:10px;fill:#555}
table{border-collapse:collapse} td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #eee}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
"""


def _frame(body: str, *, y_max: float, x_label: str, y_label: str, height: int = H) -> str:
    axis = (
        f'<text class="axis" x="{PAD}" y="{height - 8}">{html.escape(x_label)}</text>'
        f'<text class="axis" x="4" y="14">{html.escape(y_label)} (max {y_max:.3g})</text>'
        f'<line x1="{PAD}" y1="{height - PAD}" x2="{W - 8}" y2="{height - PAD}" stroke="#999"/>'
        f'<line x1="{PAD}" y1="20" x2="{PAD}" y2="{height - PAD}" stroke="#999"/>'
    )
    return (
        f'<svg width="{W}" height="{height}" viewBox="0 0 {W} {height}" role="img">'
        f"{axis}{body}</svg>"
    )


def _xy(i: float, n: float, v: float, top: float) -> tuple[float, float]:
    x = PAD + (W - PAD - 8) * (i / max(n, 1))
    y = (H - PAD) - (H - PAD - 20) * (v / top if top else 0)
    return x, y


def _stacked_steps(train: Sequence[Period]) -> str:
    if not train:
        return "<p>No training steps.</p>"
    top = max(p.wall_s for p in train) * 1e3
    n = len(train)
    wait = [(i, p.data_wait_s * 1e3) for i, p in enumerate(train)]
    wall = [(i, p.wall_s * 1e3) for i, p in enumerate(train)]

    def area(points: list[tuple[int, float]], colour: str) -> str:
        coords = [_xy(i, n, v, top) for i, v in points]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        first, last = _xy(0, n, 0, top), _xy(n - 1, n, 0, top)
        return (
            f'<polygon points="{first[0]:.1f},{first[1]:.1f} {path} {last[0]:.1f},'
            f'{last[1]:.1f}" fill="{colour}" opacity="0.85"/>'
        )

    body = area(wall, "#8fb8de") + area(wait, "#e6975b")
    legend = (
        '<div class="legend"><span style="background:#e6975b"></span>data wait'
        '<span style="background:#8fb8de"></span>compute (rest of the step)</div>'
    )
    return _frame(body, y_max=top, x_label="step", y_label="ms per step") + legend


def _histogram(values: Sequence[float], label: str) -> str:
    if not values:
        return "<p>No data.</p>"
    bins = 30
    low, high = min(values), max(values)
    width = (high - low) / bins or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(int((v - low) / width), bins - 1)] += 1
    top = max(counts)
    bars = ""
    for i, c in enumerate(counts):
        x0, y0 = _xy(i, bins, c, top)
        x1, _ = _xy(i + 1, bins, 0, top)
        bars += (
            f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
            f'height="{H - PAD - y0:.1f}" fill="#e6975b"/>'
        )
    return _frame(bars, y_max=top, x_label=f"{label}: {low:.3g} to {high:.3g} ms", y_label="steps")


def _line(points: Sequence[tuple[float, float]], x_label: str, y_label: str, colour: str) -> str:
    if len(points) < 2:
        return "<p>Not enough data.</p>"
    right = max(x for x, _ in points) or 1.0
    top = max(y for _, y in points) or 1.0
    coords = " ".join("{:.1f},{:.1f}".format(*_xy(x, right, y, top)) for x, y in points)
    body = f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
    return _frame(body, y_max=top, x_label=x_label, y_label=y_label)


def bars(rows: Sequence[tuple[str, float, str]], *, unit: str = "s", label: str = "seconds") -> str:
    """Horizontal bars, one row each: (name, value, colour), labelled with ``unit``."""
    top = max((v for _, v, _ in rows), default=0.0) or 1e-9
    body = ""
    for i, (name, value, colour) in enumerate(rows):
        width = (W - PAD - 8) * value / top
        body += (
            f'<rect x="{PAD}" y="{30 + 40 * i}" width="{width:.1f}" height="28" '
            f'fill="{colour}"/><text class="axis" x="{PAD + 4}" y="{48 + 40 * i}">'
            f"{html.escape(name)} {value:,.2f} {html.escape(unit)}</text>"
        )
    height = max(H, 40 * len(rows) + 50)
    return _frame(body, y_max=top, x_label=label, y_label=unit, height=height)


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


def run_sections(summary: RunSummary, periods: Sequence[Period], samples: Sequence[Sample]) -> str:
    """The run's verdict, findings and plots, as HTML to put in a page."""
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
    findings = "".join(
        f"<tr><td>{e(f.kind)}</td><td>{e(', '.join(f'{k}={v:.3g}' for k, v in f.evidence.items()))}"
        f"</td><td>{e(f.fix)}</td><td>{e(f.gain)}</td></tr>"
        for f in summary.findings
    )
    shares = "".join(f"<tr><td>{e(k)}</td><td>{v:.1%}</td></tr>" for k, v in summary.shares.items())
    median = f"{summary.step_median_s * 1e3:.2f} ms" if summary.step_median_s else "n/a"
    rate_text = f"{summary.samples_per_s:,.1f}" if summary.samples_per_s else "n/a"
    split = bars(
        (("training", summary.train_s, "#8fb8de"), ("validation", summary.val_s, "#b5d99c"))
    )
    waits = [p.data_wait_s * 1e3 for p in train if not p.first_of_epoch]
    gpu = [(s.t_s, s.gpu_util_percent) for s in samples if s.gpu_util_percent is not None]
    gpu_section = (
        f"<h3>GPU utilisation (NVML)</h3>{_line(gpu, 'seconds', '%', '#c44e52')}" if gpu else ""
    )
    return f"""<p><b>Verdict: {e(summary.primary)}</b> &mdash; {summary.steps} training steps
{f"on {summary.ranks} ranks " if summary.ranks > 1 else ""}(median {median}),
{rate_text} samples/s.</p>
<h3>Findings</h3>
<table><tr><th>finding</th><th>evidence</th><th>fix</th><th>gain</th></tr>{findings}</table>
<h3>Where the time goes</h3><table>{shares}</table>
<h3>Step-time composition</h3>{_stacked_steps(train)}
<h3>Data wait per step</h3>{_histogram(waits, "data wait")}
<p>Median data wait {statistics.median(waits) if waits else 0:.3f} ms.</p>
<h3>Throughput</h3>{_line(rate, "seconds", "samples/s", "#4c72b0")}
<h3>Memory (process and DataLoader workers)</h3>{_line(memory, "seconds", "MiB", "#8172b2")}
<h3>Peak memory per epoch</h3>{_epoch_memory(summary)}{gpu_section}
<h3>Training and validation</h3>{split}
"""


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
    out = _line(host, "epoch", "host MiB", "#8172b2") if host else ""
    if device:
        out += _line(device, "epoch", "CUDA allocated MiB", "#c44e52")
    return out
