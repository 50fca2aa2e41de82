"""The doctor's report as one self-contained page: inline CSS and SVG, no script, no
network. Sections (each an ``<section id=...>``): summary, findings, resources,
start-up, run, proofs, command."""

from __future__ import annotations

import html
import shlex
from typing import TYPE_CHECKING

from trainperf._json import objects
from trainperf.doctor.render import (
    busy_warning,
    describe_resources,
    describe_run,
    describe_startup,
    short_path,
)
from trainperf.monitoring.html import STYLE, amount, bars
from trainperf.monitoring.render import describe_verdict

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trainperf._json import Json, JsonObject
    from trainperf.doctor.report import DoctorFinding, DoctorReport
    from trainperf.monitoring.analyze import RunSummary
    from trainperf.monitoring.records import Period
    from trainperf.monitoring.sampler import Sample

__all__ = ["SECTIONS", "render_doctor_html"]

SECTIONS = ("summary", "findings", "resources", "startup", "run", "proofs", "command")

_EXTRA_STYLE = """
.finding{border:1px solid #ddd;border-left:6px solid #e6975b;padding:8px 14px;margin:12px 0;
background:#fff} .finding h3{margin:4px 0 8px} .finding ul{margin:4px 0;padding-left:20px}
.gain{font-weight:600} .tag{font-size:11px;padding:1px 6px;border-radius:8px;background:#eee;
margin-left:6px} .measured{background:#cfe8cf} .estimated{background:#f3e3c3}
.failed{border-left-color:#c44e52;background:#fdf0f0} pre{background:#f4f4f4;padding:8px;
overflow-x:auto;font-size:12px} nav a{margin-right:14px} code{font-size:12px}
.patch{border-left-color:#55a868} .diff span{display:block} .diff-add{background:#e6ffec}
.diff-del{background:#ffebe9} .diff-meta{color:#777}
"""


def render_doctor_html(
    report: DoctorReport,
    *,
    summary: RunSummary | None,
    periods: Sequence[Period],
    samples: Sequence[Sample],
) -> str:
    e = html.escape
    data = report.to_json()
    verdict = data.get("verdict")
    primary = verdict.get("primary") if isinstance(verdict, dict) else "?"
    nav = "".join(f'<a href="#{name}">{name}</a>' for name in SECTIONS)
    failure = (
        f'<div class="finding failed"><h3>The command failed</h3><p>{e(report.failure)}</p></div>'
        if report.failure
        else ""
    )
    notes = "".join(f"<p>Note: {e(n)}</p>" for n in report.notes)
    busy = busy_warning(data)
    banner = f'<div class="finding failed" id="busy"><p>{e(busy)}</p></div>' if busy else ""
    verdict_lines = "<br>".join(e(line) for line in describe_verdict(data))
    conditions = data.get("conditions")
    said = (
        f"<p>Measurement conditions: {e(str(conditions.get('summary')))}"
        f"{' (contended)' if conditions.get('contended') else ''}.</p>"
        if isinstance(conditions, dict)
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trainperf doctor: {e(shlex.join(report.command))}</title>
<style>{STYLE}{_EXTRA_STYLE}</style></head><body>
<h1>trainperf doctor</h1>
<nav>{nav}</nav>
<section id="summary"><h2>Summary</h2>{banner}
<p><code>{e(shlex.join(report.command))}</code></p>
<p><b>Verdict: {e(str(primary))}</b> &mdash; {e(describe_run(data))}.
{len(report.findings)} finding(s); diagnosed in {report.elapsed_s:.0f} s.</p>
<p>{verdict_lines}</p>{said}
{failure}{notes}
{_shares(data)}
</section>
<section id="findings"><h2>Findings</h2>
{"".join(_finding(n, f) for n, f in enumerate(report.findings, 1)) or "<p>No finding.</p>"}
{_set_aside(report, "start-up", here=False)}
{"".join(_patch(p) for p in report.patches)}
</section>
<section id="resources"><h2>Resources</h2>{_resources(report.resources)}</section>
<section id="startup"><h2>Start-up</h2>
{_set_aside(report, "start-up", here=True)}{_startup(report.startup)}</section>
<section id="run"><h2>Monitored run</h2>{_run(summary, periods, samples, report)}</section>
<section id="proofs"><h2>Proofs</h2>{_proofs(report.proofs)}</section>
<section id="command"><h2>Command</h2>
<p>Run folder: <code>{e(report.run)}</code>; exit code {e(str(report.returncode))}.</p>
<h3>Last lines of its output</h3><pre>{e(chr(10).join(report.output_tail)) or "(none)"}</pre>
</section>
</body></html>
"""


def _shares(data: JsonObject) -> str:
    shares = data.get("shares")
    if not isinstance(shares, dict):
        return ""
    colours = {
        "data_wait": "#e6975b",
        "compute": "#8fb8de",
        "validation": "#b5d99c",
        "startup": "#c9a0dc",
    }
    rows = [
        (name, float(value) * 100, colours.get(name, "#999"))
        for name, value in shares.items()
        if isinstance(value, int | float)
    ]
    return "<h3>Where the run's time went</h3>" + bars(rows, unit="%", label="share of the run")


def _finding(number: int, finding: DoctorFinding) -> str:
    e = html.escape
    evidence = "".join(f"<li>{e(item)}</li>" for item in finding.evidence)
    apply = (
        f"<p>Apply (the example's switches): <code>{e(' '.join(finding.overrides))}</code></p>"
        if finding.overrides
        else ""
    )
    sure = (
        ""
        if finding.confidence == "high"
        else f"<p>Confidence: {e(finding.confidence)} ({e('; '.join(finding.reasons))})</p>"
    )
    return f"""<div class="finding"><h3>{number}. {e(finding.title)}
<span class="tag">{e(finding.kind)}</span>
<span class="tag">{e(finding.confidence)} confidence</span></h3>{sure}
<p>Evidence:</p><ul>{evidence}</ul>
<p>Fix: {e(finding.fix)}</p>
<p class="gain">Gain: {e(finding.gain)}
<span class="tag {e(finding.gain_source)}">{e(finding.gain_source)}</span></p>{apply}</div>
"""


def _patch(patch: JsonObject) -> str:
    """One ``--fix`` patch: what it changes, how it was verified, and its diff, the
    added and removed lines coloured."""
    e = html.escape
    verified = "verified" if patch.get("verified") else "not verified"
    items = "".join(f"<li>{e(s)}</li>" for s in _texts(patch.get("summary")))
    failure = patch.get("failure")
    said = f"<p>Not offered: {e(str(failure))}</p>" if failure else ""
    rows = []
    diff = patch.get("diff")
    for line in (diff if isinstance(diff, str) else "").splitlines():
        kind = (
            "meta"
            if line.startswith(("---", "+++", "@@"))
            else "add"
            if line.startswith("+")
            else "del"
            if line.startswith("-")
            else "same"
        )
        rows.append(f'<span class="diff-{kind}">{e(line)}</span>')
    shown = f'<pre class="diff">{"".join(rows)}</pre>' if rows else ""  # spans are lines
    command = patch.get("command")
    apply = f"<p>Apply: <code>{e(str(command))}</code></p>" if rows and command else ""
    return (
        f'<div class="finding patch"><h3>Patch for {e(str(patch.get("finding")))} '
        f"({e(str(patch.get('fix')))}, {verified})</h3><ul>{items}</ul>{said}{shown}{apply}</div>"
    )


def _set_aside(report: DoctorReport, section: str, *, here: bool) -> str:
    """Causes the doctor looked into and its own proof did not confirm: those of
    ``section`` (``here``), or all the others."""
    prefix = f"{section}: "
    said = [
        a.removeprefix(prefix) if here else a
        for a in report.set_aside
        if a.startswith(prefix) == here
    ]
    return "".join(f"<p>Not a finding: {html.escape(a)}</p>" for a in said)


def _resources(resources: JsonObject) -> str:
    e = html.escape
    warnings = resources.get("warnings")
    listed = (
        "".join(f"<li>{e(str(w))}</li>" for w in warnings) if isinstance(warnings, list) else ""
    )
    rows = "".join(
        f"<tr><td>{e(key)}</td><td>{e(str(resources.get(key)))}</td></tr>"
        for key in (
            "cpu_budget",
            "host_cpus",
            "cpu_model",
            "cgroup_cpu_quota",
            "memory_available_bytes",
            "memory_limit_bytes",
            "shm_free_bytes",
            "usable_cpus",
            "optimal_workers",
            "optimal_threads",
        )
    )
    return f"<p>{e(describe_resources(resources))}</p><table>{rows}</table>" + (
        f"<h3>Warnings</h3><ul>{listed}</ul>" if listed else ""
    )


def _startup(startup: JsonObject) -> str:
    e = html.escape
    out = "".join(f"<p>{e(line)}</p>" for line in describe_startup(startup))
    lines = objects(startup.get("lines"))
    if lines:
        lines.sort(key=lambda line: _seconds(line, "cumulative_s"), reverse=True)
        rows = [
            (
                f"{short_path(str(line.get('where')))} {line.get('statement')}",
                _seconds(line, "cumulative_s"),
                "#c9a0dc",
            )
            for line in lines[:8]
        ]
        out += (
            "<h3>Import lines by what -X importtime charges them (cumulative), in the "
            "import profile</h3>"
        )
        out += bars(rows, unit="s", label="cumulative import time")
        table = "".join(
            f"<tr><td><code>{e(short_path(str(line.get('where'))))}</code></td>"
            f"<td><code>{e(str(line.get('statement')))}</code></td>"
            f"<td>{e(amount(_seconds(line, 'exclusive_s'), 's'))}</td>"
            f"<td>{e(amount(_seconds(line, 'cumulative_s'), 's'))}</td></tr>"
            for line in lines[:12]
        )
        out += (
            "<p>Exclusive: what deferring that line alone saves; lines that share heavy "
            "packages each save little alone, and the groups below show them together.</p>"
            "<table><tr><th>line</th><th>statement</th><th>exclusive</th><th>cumulative</th>"
            f"</tr>{table}</table>"
        )
    out += _groups(startup, {str(line.get("where")): line for line in lines})
    markers = startup.get("markers")
    if isinstance(markers, dict) and markers:
        rows = [
            (name, float(value), "#8fb8de")
            for name, value in markers.items()
            if isinstance(value, int | float)
        ]
        out += (
            "<h3>In the monitored run: time from its own process start to each phase</h3>"
            + bars(rows, unit="s", label="time from the process start")
        )
    return out


def _groups(startup: JsonObject, known: dict[str, JsonObject]) -> str:
    """Each group of statements to defer together, listing exactly its statements."""
    e = html.escape
    groups = objects(startup.get("groups"))
    if not groups:
        return ""
    out = "<h3>Statements to defer together, in the import profile</h3>"
    for number, group in enumerate(groups, start=1):
        starts = _texts(group.get("starts"))
        packages = ", ".join(_texts(group.get("packages")))
        rows = "".join(
            f"<tr><td><code>{e(short_path(where))}</code></td>"
            f"<td><code>{e(str(known.get(where, {}).get('statement') or ''))}</code></td></tr>"
            for where in starts
        )
        out += (
            f'<div class="group"><p>Group {number}: deferring these {len(starts)} statements '
            f"together saves {e(amount(_seconds(group, 'saving_s'), 's'))} of import time "
            f"(predicted){f'; it drops {e(packages)}' if packages else ''}.</p>"
            f"<table><tr><th>line</th><th>statement</th></tr>{rows}</table></div>"
        )
    return out


def _texts(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _seconds(data: JsonObject, key: str) -> float:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def _run(
    summary: RunSummary | None,
    periods: Sequence[Period],
    samples: Sequence[Sample],
    report: DoctorReport,
) -> str:
    from trainperf.monitoring.html import run_sections

    if summary is None:
        return "<p>No training step was recorded.</p>"
    stopped = (
        f"<p>Stopped at its limit after {report.stopped_at_step} training steps.</p>"
        if report.stopped_at_step
        else ""
    )
    return stopped + run_sections(
        summary,
        periods,
        samples,
        nothing_found="The monitor found nothing beyond the findings above.",
    )


def _proofs(proofs: Sequence[JsonObject]) -> str:
    e = html.escape
    if not proofs:
        return (
            "<p>No proof was called for (no input-bound training, no slow validation loader).</p>"
        )
    out = ""
    for proof in proofs:
        kind, role = proof.get("kind"), proof.get("role")
        out += f"<h3>{e(str(kind))} ({e(str(role))} loader: {e(str(proof.get('dataset')))})</h3>"
        if "error" in proof or "skipped" in proof:
            out += f"<p>Not measured: {e(str(proof.get('error') or proof.get('skipped')))}</p>"
            continue
        if kind == "calibration":
            out += _calibration(proof)
        elif kind == "cache":
            out += _cache(proof)
    return out


def _calibration(proof: JsonObject) -> str:
    e = html.escape
    calibration = proof.get("calibration")
    if not isinstance(calibration, dict):
        return "<p>No result.</p>"
    rows = []
    table = ""
    for candidate in calibration.get("candidates") or []:  # type: ignore[union-attr]
        if not isinstance(candidate, dict):
            continue
        name = (
            f"workers={candidate.get('num_workers')} prefetch={candidate.get('prefetch_factor')} "
            f"threads={candidate.get('main_threads')}"
        )
        # Worker processes only: how they start and whether they outlive an epoch
        # (fork, forkserver and spawn of one worker count differ only here).
        workers = candidate.get("num_workers")
        start = persistent = "-"
        if isinstance(workers, int) and workers > 0:
            start = str(candidate.get("multiprocessing_context") or "default")
            persistent = "yes" if candidate.get("persistent_workers") is True else "no"
        rate = candidate.get("samples_per_s")
        status = str(candidate.get("status"))
        if isinstance(rate, int | float):
            colour = "#4c72b0" if status == "chosen" else "#8fb8de"
            label = name if start == "-" else f"{name} {start}"
            rows.append((f"{label} ({status})", float(rate), colour))
        table += (
            f"<tr><td>{e(name)}</td><td>{e(start)}</td><td>{e(persistent)}</td>"
            f"<td>{_rate(rate)}</td>"
            f"<td>{e(status)}</td><td>{e(str(candidate.get('reason') or ''))}</td></tr>"
        )
    gain = proof.get("gain")
    return (
        f"<p>Mode {e(str(calibration.get('mode')))}, {calibration.get('elapsed_s')} s; the "
        f"loader's own settings {_rate(proof.get('baseline_samples_per_s'))} samples/s, "
        f"chosen {_rate(proof.get('chosen_samples_per_s'))} samples/s"
        + (f" ({gain:.2f}x)" if isinstance(gain, int | float) else "")
        + ".</p>"
        + (bars(rows, unit="samples/s", label="throughput of each setting") if rows else "")
        + (
            "<table><tr><th>settings</th><th>start method</th><th>persistent workers</th>"
            "<th>samples/s</th><th>status</th><th>reason</th></tr>"
            f"{table}</table>"
            if table
            else "<p>No candidate settings were recorded.</p>"
        )
    )


def _rate(value: Json) -> str:
    """A rate to one decimal, ``-`` when not measured."""
    return f"{value:,.1f}" if isinstance(value, int | float) else "-"


def _cache(proof: JsonObject) -> str:
    e = html.escape
    built = proof.get("uncached_s")
    read = proof.get("cached_s")
    hot = "".join(
        f"<li>{e(str(h.get('function')))}: {float(h.get('share') or 0):.0%} of the "  # type: ignore[arg-type]
        "batch's time</li>"
        for h in proof.get("hot") or []  # type: ignore[union-attr]
        if isinstance(h, dict)
    )
    out = (
        f"<p>{proof.get('batches')} batches of {proof.get('samples_per_batch')} samples; "
        f"deterministic: {e(str(proof.get('deterministic')))}.</p>"
    )
    if hot:
        out += f"<p>Where building a batch spends its time:</p><ul>{hot}</ul>"
    if isinstance(built, int | float) and isinstance(read, int | float):
        out += bars(
            (
                ("built (uncached)", float(built), "#e6975b"),
                ("read from the cache", float(read), "#55a868"),
            ),
            unit="s",
            label="time per batch",
        )
    elif proof.get("reason"):
        out += f"<p>{e(str(proof.get('reason')))}</p>"
    return out
