"""The doctor's terminal summary: verdict, findings with evidence, fix and gain."""

from __future__ import annotations

import shlex
import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trainperf._json import JsonObject
    from trainperf.doctor.report import DoctorFinding, DoctorReport

__all__ = [
    "busy_warning",
    "compact",
    "describe_deferred",
    "describe_resources",
    "describe_run",
    "describe_startup",
    "render_findings",
    "render_text",
    "short_path",
]

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


def describe_startup(startup: JsonObject) -> list[str]:
    """The start-up section, one statement a line, each saying what it measured.

    The import profile loads the entry point in separate fresh interpreters under
    ``-X importtime``; the phase markers are from the monitored run itself, timed from
    its own process start. They are different processes, so neither figure bounds the
    other, and the lines say which is which.
    """
    entry = startup.get("entry")
    seconds = startup.get("import_s")
    error = startup.get("error")
    out = []
    if isinstance(seconds, int | float):
        modules = startup.get("modules")
        count = f"{modules:,}" if isinstance(modules, int) else "?"
        out.append(
            f"import profile of {entry} (separate fresh interpreters, -X importtime): "
            f"{seconds:.2f} s for {count} modules"
        )
        if error:
            out.append(f"loading {entry} stopped at {error}; the profile is up to there")
    elif error:
        out.append(f"import profile of {entry}: not made ({error})")
    else:
        out.append("import profile: not made")
    out += describe_deferred(startup)
    markers = startup.get("markers")
    said = [
        f"{name.replace('_', ' ')} at {value:.2f} s"
        for name, value in (markers.items() if isinstance(markers, dict) else ())
        if isinstance(value, int | float)
    ]
    if said:
        out.append("in the monitored run, from its own process start: " + ", ".join(said))
    return out


def describe_deferred(startup: JsonObject) -> list[str]:
    """The entry point's statements to defer together, exactly as the profile grouped
    them, with the predicted saving, and the measured one where they were re-timed."""
    from trainperf._json import objects

    groups = objects(startup.get("groups"))
    verified = startup.get("verified")
    tried = _strings(verified.get("lines")) if isinstance(verified, dict) else []
    measured = verified.get("measured_s") if isinstance(verified, dict) else None
    out = []
    matched = False
    if groups:
        starts = _strings(groups[0].get("starts"))
        saving = groups[0].get("saving_s")
        text = (
            f"deferring {compact(starts)} together ({_statements(len(starts))}): "
            f"{saving if isinstance(saving, int | float) else 0.0:.2f} s less import time "
            f"predicted"
        )
        if tried and sorted(tried) == sorted(starts) and isinstance(measured, int | float):
            text += f", {measured:.2f} s measured (re-timed with them deferred)"
            matched = True
        out.append(text)
    if tried and not matched and isinstance(verified, dict):
        predicted = verified.get("predicted_s")
        out.append(
            f"re-timed with {compact(tried)} deferred ({_statements(len(tried))}): "
            f"{measured if isinstance(measured, int | float) else 0.0:.2f} s saved, "
            f"{predicted if isinstance(predicted, int | float) else 0.0:.2f} s predicted"
        )
    return out


def _statements(count: int) -> str:
    return f"{count} statement" if count == 1 else f"{count} statements"


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def short_path(where: str) -> str:
    """A path (or file:line) with only its last two folders."""
    parts = where.split("/")
    return "/".join(parts[-3:]) if len(parts) > 3 else where


def compact(starts: Sequence[str]) -> str:
    """``a.py:3``, ``a.py:7``, ``b.py:2`` -> ``a.py:3,7 b.py:2`` (each path shortened)."""
    by_file: dict[str, list[str]] = {}
    for start in starts:
        file, _, line = start.rpartition(":")
        by_file.setdefault(short_path(file), []).append(line)
    return " ".join(f"{file}:{','.join(lines)}" for file, lines in by_file.items())


def describe_run(data: JsonObject) -> str:
    steps = data.get("steps", 0)
    median = data.get("step_median_s")
    rate = data.get("samples_per_s")
    text = f"{steps} training steps"
    if isinstance(median, int | float):
        text += f", median {median * 1e3:.1f} ms"
    if isinstance(rate, int | float):
        text += f", {rate:,.1f} samples/s"
    tokens = data.get("tokens_per_s")
    if isinstance(tokens, int | float):
        text += f", {tokens:,.0f} tokens/s"
    train, val = data.get("train_s"), data.get("val_s")
    if isinstance(train, int | float) and isinstance(val, int | float):
        text += f"; training {train:.1f} s, validation {val:.1f} s"
    return text


def busy_warning(data: JsonObject) -> str | None:
    """What to say first when the machine was busy while the run was measured."""
    conditions = data.get("conditions")
    if not isinstance(conditions, dict):
        return None
    verdict = data.get("verdict")
    step = verdict.get("step") if isinstance(verdict, dict) else None
    reasons = step.get("reasons") if isinstance(step, dict) else None
    listed = reasons if isinstance(reasons, list) else []
    quiet = [r for r in listed if isinstance(r, str) and "while the machine was quiet" in r]
    if quiet:
        return (
            f"the machine was busy during part of the run ({conditions.get('summary')}); the "
            f"step's verdict is {quiet[0]}"
        )
    if conditions.get("contended") is not True:
        return None
    from trainperf.monitoring.render import confidence_words

    confidence = verdict.get("confidence") if isinstance(verdict, dict) else "low"
    return (
        f"the machine was busy while this run was measured ({conditions.get('summary')}): the "
        f"verdict is {confidence_words(str(confidence))}; re-run on a quiet machine before acting "
        "on it"
    )


def render_text(report: DoctorReport, *, html_path: str | None = None) -> str:
    from trainperf.monitoring.render import describe_ranks, describe_verdict

    data = report.to_json()
    lines = [f"trainperf doctor: {shlex.join(report.command)}"]
    busy = busy_warning(data)
    if busy:
        lines.insert(0, f"warning: {busy}")
    rows = [("resources", describe_resources(report.resources))]
    rows += [
        ("start-up" if i == 0 else "", line)
        for i, line in enumerate(describe_startup(report.startup))
    ]
    rows.append(("run", describe_run(data)))
    shares = data.get("shares")
    if isinstance(shares, dict):
        # Shares of the run's wall time; the verdict's shares are of the median step.
        said = ", ".join(f"{k.replace('_', ' ')} {v:.0%}" for k, v in shares.items())
        rows.append(("time", f"of the whole run: {said}"))
    conditions = data.get("conditions")
    if isinstance(conditions, dict):
        state = "contended" if conditions.get("contended") else "quiet"
        rows.append(("conditions", f"{state}: {conditions.get('summary')}"))
    rows += [("ranks" if i == 0 else "", line) for i, line in enumerate(describe_ranks(data))]
    rows += [("verdict" if i == 0 else "", line) for i, line in enumerate(describe_verdict(data))]
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
    for aside in report.set_aside:
        lines.append(f"not a finding: {aside}")
    if report.findings:
        lines.append("")
    lines += render_findings(report.findings)
    lines += render_patches(report.patches)
    if not report.findings and not report.failure:
        lines.append("")
        lines.append("no finding: nothing in this run is slow enough to name")
    lines.append("")
    lines.append(f"run: {report.run} (trainperf report {report.run})")
    if html_path:
        lines.append(f"report: {html_path}")
    return "\n".join(lines)


def render_findings(findings: Sequence[DoctorFinding]) -> list[str]:
    """Each finding, numbered: its title and kind, evidence, fix, gain and its source."""
    lines: list[str] = []
    for number, finding in enumerate(findings, start=1):
        sure = "" if finding.confidence == "high" else f", {finding.confidence} confidence"
        lines.append(f"{number}. {finding.title}  [{finding.kind}{sure}]")
        for item in finding.evidence:
            lines += _wrapped("evidence: ", item)
        lines += _wrapped("fix: ", finding.fix)
        lines += _wrapped(f"gain ({finding.gain_source}): ", finding.gain)
        if finding.confidence != "high" and finding.reasons:
            lines += _wrapped(
                "confidence: ", f"{finding.confidence}: " + "; ".join(finding.reasons)
            )
        if finding.overrides:
            lines += _wrapped("apply: ", " ".join(finding.overrides))
        if finding.training_arguments:
            fields = ", ".join(f"{k}={v}" for k, v in finding.training_arguments)
            lines += _wrapped("TrainingArguments: ", fields)
    return lines


def render_patches(patches: Sequence[JsonObject]) -> list[str]:
    """``--fix``: each patch's finding, what it changes, how it was verified, its diff."""
    lines: list[str] = []
    for patch in patches:
        lines.append("")
        verified = "verified" if patch.get("verified") else "not verified"
        lines.append(f"patch for {patch.get('finding')} ({patch.get('fix')}, {verified}):")
        for item in _strings(patch.get("summary")):
            lines += _wrapped("", item)
        if patch.get("failure"):
            lines += _wrapped("not offered: ", str(patch.get("failure")))
        diff = patch.get("diff")
        if isinstance(diff, str) and diff:
            lines += [f"   {line}" for line in diff.splitlines()]
            lines.append(f"   apply: {patch.get('command')}")  # one line: to copy whole
    if sum(1 for p in patches if p.get("diff")) > 1:
        lines.append("")
        lines.append(
            "the patches touch the same file: apply them one after the other with their "
            "apply commands (each finds its lines again), not both diffs at once"
        )
    return lines


def _wrapped(label: str, text: str) -> list[str]:
    return textwrap.wrap(
        text, width=_WIDTH, initial_indent="   " + label, subsequent_indent=" " * (3 + len(label))
    ) or ["   " + label]
