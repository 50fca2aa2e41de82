"""The doctor's terminal summary: verdict, findings with evidence, fix and gain."""

from __future__ import annotations

import shlex
import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainperf._json import JsonObject
    from trainperf.doctor.report import DoctorReport

__all__ = ["describe_resources", "describe_run", "describe_startup", "render_text"]

_WIDTH = 100


def _gib(value: object) -> str:
    return f"{value / 2**30:.1f} GiB" if isinstance(value, int | float) else "?"


def describe_resources(resources: JsonObject) -> str:
    gpus = resources.get("gpus")
    gpu = f"{len(gpus)} GPU(s)" if isinstance(gpus, list) and gpus else "no GPU"
    return (
        f"{resources.get('cpu_budget')} CPUs of {resources.get('host_cpus')}, "
        f"{_gib(resources.get('memory_available_bytes'))} memory available, "
        f"/dev/shm {_gib(resources.get('shm_free_bytes'))} free, {gpu}; "
        f"static choice: {resources.get('optimal_workers')} workers, "
        f"{resources.get('optimal_threads')} threads"
    )


def describe_startup(startup: JsonObject) -> str:
    if not startup:
        return "not profiled"
    if startup.get("error") and not isinstance(startup.get("import_s"), int | float):
        return f"{startup.get('entry')}: not profiled ({startup['error']})"
    parts = []
    if startup.get("error"):
        parts.append(f"loading {startup.get('entry')} stopped at {startup['error']}")
    if isinstance(startup.get("import_s"), int | float):
        parts.append(
            f"{startup.get('entry')} imports in {startup['import_s']:.2f} s "
            f"({startup.get('modules')} modules)"
        )
    markers = startup.get("markers")
    if isinstance(markers, dict):
        parts += [
            f"{name.replace('_', ' ')} at {value:.2f} s"
            for name, value in markers.items()
            if isinstance(value, int | float)
        ]
    return "; ".join(parts) or "nothing measured"


def describe_run(data: JsonObject) -> str:
    steps = data.get("steps", 0)
    median = data.get("step_median_s")
    rate = data.get("samples_per_s")
    text = f"{steps} training steps"
    if isinstance(median, int | float):
        text += f", median {median * 1e3:.1f} ms"
    if isinstance(rate, int | float):
        text += f", {rate:,.1f} samples/s"
    train, val = data.get("train_s"), data.get("val_s")
    if isinstance(train, int | float) and isinstance(val, int | float):
        text += f"; training {train:.1f} s, validation {val:.1f} s"
    return text


def render_text(report: DoctorReport, *, html_path: str | None = None) -> str:
    data = report.to_json()
    lines = [f"trainperf doctor: {shlex.join(report.command)}"]
    rows = [
        ("resources", describe_resources(report.resources)),
        ("start-up", describe_startup(report.startup)),
        ("run", describe_run(data)),
    ]
    shares = data.get("shares")
    if isinstance(shares, dict):
        rows.append(("time", ", ".join(f"{k} {v:.0%}" for k, v in shares.items())))
    verdict = data.get("verdict")
    primary = verdict.get("primary") if isinstance(verdict, dict) else None
    rows.append(("verdict", str(primary)))
    for name, value in rows:
        lines.append(f"{name:<10} {value}")
    for warning in report.resources.get("warnings") or []:  # type: ignore[union-attr]
        lines.append(f"warning    {warning}")
    if report.failure:
        lines.append("")
        lines.append(f"FAILED: {report.failure}")
        if report.output_tail:
            lines.append("  last lines of its output:")
            lines += [f"    {line}" for line in report.output_tail[-12:]]
    if report.stopped_at_step:
        lines.append(f"stopped at its limit after {report.stopped_at_step} training steps")
    for note in report.notes:
        lines.append(f"note: {note}")
    if report.findings:
        lines.append("")
    for number, finding in enumerate(report.findings, start=1):
        lines.append(f"{number}. {finding.title}  [{finding.kind}]")
        for item in finding.evidence:
            lines += _wrapped("evidence: ", item)
        lines += _wrapped("fix: ", finding.fix)
        lines += _wrapped(f"gain ({finding.gain_source}): ", finding.gain)
        if finding.overrides:
            lines += _wrapped("apply: ", " ".join(finding.overrides))
    if not report.findings and not report.failure:
        lines.append("")
        lines.append("no finding: nothing in this run is slow enough to name")
    lines.append("")
    lines.append(f"run: {report.run} (trainperf report {report.run})")
    if html_path:
        lines.append(f"report: {html_path}")
    return "\n".join(lines)


def _wrapped(label: str, text: str) -> list[str]:
    return textwrap.wrap(
        text, width=_WIDTH, initial_indent="   " + label, subsequent_indent=" " * (3 + len(label))
    ) or ["   " + label]
