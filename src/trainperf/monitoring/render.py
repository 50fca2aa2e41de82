"""Text rendering of a run's summary (renderers never measure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from trainperf._json import JsonObject
    from trainperf.monitoring.analyze import RunSummary

__all__ = [
    "confidence_words",
    "describe_audit",
    "describe_evidence",
    "describe_ranks",
    "describe_verdict",
    "describe_workers",
    "render_summary",
]


def render_summary(summary: RunSummary, *, title: str, finished: bool = True) -> str:
    out = [title]
    if not finished:
        out.append("the run did not finish (killed or still running): this is what it recorded")
    rate = f"{summary.samples_per_s:,.1f} samples/s" if summary.samples_per_s else "samples unknown"
    if summary.tokens_per_s:
        rate += f", {summary.tokens_per_s:,.0f} tokens/s"
    median = f"{summary.step_median_s * 1e3:.1f} ms" if summary.step_median_s else "n/a"
    out.append(
        f"{summary.steps} training steps, median {median}, {rate}; "
        f"training {summary.train_s:.2f} s, validation {summary.val_s:.2f} s"
    )
    shares = ", ".join(f"{name} {value:.0%}" for name, value in summary.shares.items())
    out.append(f"time: {shares}")
    if summary.device_step_median_s is not None or summary.gpu_util_percent is not None:
        device = (
            "n/a"
            if summary.device_step_median_s is None
            else (f"{summary.device_step_median_s * 1e3:.1f} ms")
        )
        util = "n/a" if summary.gpu_util_percent is None else f"{summary.gpu_util_percent:.0f}%"
        out.append(f"device: median step {device} (CUDA events), GPU busy {util} (NVML)")
    if len(summary.epochs) > 1:
        out.append("epoch  steps  train s  val s  first batch  peak memory")
        for e in summary.epochs:
            first = f"{e.first_batch_wait_s * 1e3:.0f} ms" if e.first_batch_wait_s else "-"
            memory = f"{e.peak_memory_bytes / 2**20:,.0f} MiB" if e.peak_memory_bytes else "-"
            out.append(
                f"{e.epoch:>5}  {e.steps:>5}  {e.train_s:7.2f}  {e.val_s:5.2f}  {first:>11}  "
                f"{memory:>11}"
            )
    conditions = summary.conditions
    if conditions is not None:
        state = "contended" if conditions.contended else "quiet"
        out.append(f"conditions: {state} ({conditions.describe()})")
    if conditions is not None and conditions.contended:
        # The first thing to know about the figures above: the machine was busy.
        out.insert(
            1,
            "the machine was busy while this run was measured: its verdict is "
            f"{confidence_words(summary.confidence)}; re-run on a quiet machine to trust it",
        )
    data = summary.to_json()
    out += describe_workers(data)
    out += describe_ranks(data)
    out += describe_audit(data)
    verdict = describe_verdict(data)
    out.append(f"verdict: {verdict[0]}")
    out += [f"  {line}" if not line.startswith(" ") else line for line in verdict[1:]]
    for finding in summary.findings:
        evidence = ", ".join(describe_evidence(finding.evidence))
        sure = "" if finding.confidence == "high" else f" [{finding.confidence} confidence]"
        out.append(f"  {finding.kind}{sure}: {evidence}")
        out.append(f"    fix: {finding.fix}")
        out.append(f"    gain: {finding.gain}")
    return "\n".join(out)


def describe_evidence(evidence: Mapping[str, float]) -> list[str]:
    """A finding's evidence in words, one phrase a key, by the keys' conventions:
    ``mean_step_s=1.42`` -> ``mean step 1.42 s``, ``slow_share_of_training=0.803`` ->
    ``slow share of training 80%``, ``*_bytes`` in MiB or GiB, counts as integers.

    >>> describe_evidence({"mean_step_s": 0.0042, "slow_steps": 22.0, "slow_share": 0.8})
    ['mean step 4.2 ms', 'slow steps 22', 'slow share 80%']
    """
    said = []
    for key, value in evidence.items():
        words = key.replace("_", " ")
        if key.endswith("_s"):
            said.append(f"{words[:-2]} {_duration(value)}")
        elif key.endswith("_bytes"):
            gib = value / 2**30
            size = f"{gib:.2f} GiB" if gib >= 1 else f"{value / 2**20:.1f} MiB"
            said.append(f"{words[:-6]} {size}")
        elif "share" in key or key.endswith("_percent"):
            said.append(f"{words} {value:.0%}" if "share" in key else f"{words[:-8]} {value:.0f}%")
        elif float(value).is_integer():
            said.append(f"{words} {int(value)}")
        else:
            said.append(f"{words} {value:.3g}")
    return said


def _duration(seconds: float) -> str:
    if abs(seconds) < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if abs(seconds) < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def describe_ranks(data: JsonObject) -> list[str]:
    """Each rank's part of a step (medians) and who keeps the others waiting, from a
    summary's ``rank_breakdown``; nothing for a single process."""
    breakdown = data.get("rank_breakdown")
    if not isinstance(breakdown, dict):
        return []
    listed = breakdown.get("rows")
    rows = [r for r in listed if isinstance(r, dict)] if isinstance(listed, list) else []
    if len(rows) < 2:
        return []

    def ms(row: JsonObject, key: str) -> str:
        value = row.get(key)
        return f"{value * 1e3:.1f}" if isinstance(value, int | float) else "-"

    # "steady": each rank's steps less each epoch's first (the run line counts them all).
    out = ["rank  steady  step ms  data wait ms  forward ms  arrival ms  sync ms  slowest  threads"]
    for row in rows:
        threads = row.get("intra_op_threads")
        share = row.get("slowest_share")
        out.append(
            f"{row.get('rank'):>4}  {row.get('steps'):>6}  {ms(row, 'step_s'):>7}  "
            f"{ms(row, 'data_wait_s'):>12}  {ms(row, 'forward_s'):>10}  "
            f"{ms(row, 'arrival_s'):>10}  {ms(row, 'sync_s'):>7}  "
            f"{share if not isinstance(share, float) else f'{share:.0%}':>7}  "
            f"{threads if threads is not None else '-':>7}"
        )
    wait = breakdown.get("wait_s")
    pattern = breakdown.get("pattern")
    if isinstance(wait, int | float) and pattern:
        slowest = breakdown.get("slowest")
        who = f"mostly rank {slowest}" if pattern == "fixed" else "a different rank in turn"
        data_x, forward_x = breakdown.get("data_excess_s"), breakdown.get("forward_excess_s")
        excess = (
            f"; it arrives later by {data_x * 1e3:.1f} ms of data wait and "
            f"{forward_x * 1e3:.1f} ms of forward pass a step"
            if isinstance(data_x, int | float) and isinstance(forward_x, int | float)
            else ""
        )
        out.append(
            f"  arrival: data wait + forward, before backward's all-reduce; the slowest is "
            f"{who}, the others wait {wait * 1e3:.1f} ms a step for it{excess}"
        )
    return out


def describe_audit(data: JsonObject) -> list[str]:
    """The input audit (the samples each rank trained on), from a summary's
    ``sample_audit``: what was checked, what was found, what could not be checked;
    nothing when nothing was checked."""
    audit = data.get("sample_audit")
    if not isinstance(audit, dict):
        return []
    checked = _strings(audit.get("checked"))
    listed = audit.get("findings")
    found = [f for f in listed if isinstance(f, dict)] if isinstance(listed, list) else []
    if not checked and not found:
        return []
    out = ["input audit: checked " + ("; ".join(checked) or "nothing")]
    for finding in found:
        out.append(f"  found: {finding.get('title')}")
        out += [f"    {line}" for line in _strings(finding.get("evidence"))]
    if not found:
        out.append("  found: nothing wrong in what was checked")
    unchecked = _strings(audit.get("not_checked"))
    if unchecked:
        out.append("  not checked: " + "; ".join(unchecked))
    return out


def _strings(value: object) -> list[str]:
    return [x for x in value if isinstance(x, str)] if isinstance(value, list) else []


def confidence_words(confidence: str) -> str:
    """``"low"`` -> ``"low-confidence"``; ``"inconclusive"`` stays itself."""
    return "inconclusive" if confidence == "inconclusive" else f"{confidence}-confidence"


def describe_verdict(data: JsonObject) -> list[str]:
    """The step's verdict and the run's, each followed by what lowered its confidence;
    the tail when the mean step is far above the median."""
    verdict = data.get("verdict")
    if not isinstance(verdict, dict):
        return ["?"]
    step, run = verdict.get("step"), verdict.get("run")
    if not isinstance(step, dict) or not isinstance(run, dict):
        return [str(verdict.get("primary"))]  # a report written before step and run
    reasons = step.get("reasons")
    if step.get("kind") == "insufficient-data":
        first = reasons[0] if isinstance(reasons, list) and reasons else "too few steps"
        return [f"insufficient data ({first})"]
    out = []
    said = f"step {step.get('kind')} ({step.get('confidence')} confidence"
    share, low, high = step.get("share"), step.get("share_low"), step.get("share_high")
    if isinstance(share, int | float):
        said += f"; data wait {share:.0%} of a step"
        if isinstance(low, int | float) and isinstance(high, int | float):
            said += f", 95% interval {low:.0%}-{high:.0%}"
    out.append(said + ")")
    out += _because(step, [])
    out += describe_anatomy(data)
    if run.get("kind") != step.get("kind") or run.get("confidence") != step.get("confidence"):
        share = run.get("share")
        part = ""
        if run.get("kind") != step.get("kind") and isinstance(share, int | float):
            part = f"; {share:.0%} of the run"
        out.append(f"run {run.get('kind')} ({run.get('confidence')} confidence{part})")
        out += _because(run, out)
    tail = verdict.get("tail")
    ratio = tail.get("mean_over_median") if isinstance(tail, dict) else None
    if isinstance(tail, dict) and isinstance(ratio, int | float) and ratio >= 1.5:
        slow = tail.get("slow_share")
        out.append(
            f"tail: the mean step is {ratio:.1f}x the median; {tail.get('slow_steps')} slow "
            f"steps take {slow if isinstance(slow, int | float) else 0.0:.0%} of the "
            "training time"
        )
    return out


def _s(value: object) -> str:
    if not isinstance(value, int | float):
        return "?"
    if value < 1e-3:
        return f"{value * 1e6:.0f} us"
    return f"{value * 1e3:.0f} ms" if value < 1 else f"{value:.1f} s"


def describe_workers(data: JsonObject) -> list[str]:
    """The DataLoader workers, from the summary's ``workers``: what a start took, by
    phase; where a batch's time went in them; how their memory grew."""
    workers = data.get("workers")
    if not isinstance(workers, dict):
        return []
    out = []
    startup = workers.get("startup")
    if isinstance(startup, dict):
        phases = startup.get("phases_s")
        parts = (
            [f"{name.replace('_', ' ')} {_s(v)}" for name, v in phases.items()]
            if isinstance(phases, dict)
            else []
        )
        imports = startup.get("imports")
        heavy = (
            [f"{i.get('package')} {_s(i.get('s'))}" for i in imports[:3] if isinstance(i, dict)]
            if isinstance(imports, list)
            else []
        )
        starts = startup.get("starts")
        out.append(
            f"worker starts: {starts} ({startup.get('start_method')}"
            f"{', persistent' if startup.get('persistent') else ''}), "
            f"{_s(startup.get('start_s'))} each to the first batch: {', '.join(parts)}"
        )
        if heavy:
            out.append(f"  imported in each worker: {', '.join(heavy)}")
        avoidable = startup.get("avoidable_s")
        out.append(
            f"  {_s(startup.get('paid_s'))} of the run waiting for workers to start"
            + (
                f", {_s(avoidable)} of it avoidable with persistent workers"
                if isinstance(avoidable, int | float) and avoidable > 0
                else ""
            )
        )
    stages = workers.get("stages")
    if isinstance(stages, dict):
        slowest = stages.get("slowest")
        named = (
            ", ".join(str(x.get("index")) for x in slowest if isinstance(x, dict))
            if isinstance(slowest, list)
            else ""
        )
        out.append(
            f"batches in the workers: median {_s(stages.get('fetch_s'))} (__getitem__ "
            f"{_s(stages.get('getitem_s'))}, collate_fn {_s(stages.get('collate_s'))}); "
            f"p50/p95/p99 {_s(stages.get('p50_s'))}/{_s(stages.get('p95_s'))}/"
            f"{_s(stages.get('p99_s'))}" + (f"; slowest samples {named}" if named else "")
        )
    memory = workers.get("memory")
    each = memory.get("workers") if isinstance(memory, dict) else None
    listed = [w for w in each if isinstance(w, dict)] if isinstance(each, list) else []
    if isinstance(memory, dict) and listed:  # no worker process: nothing to say of them
        kinds = memory.get("kinds")
        growing = [w for w in listed if w.get("kind")]
        said = (
            f"{', '.join(str(k) for k in kinds)} in {len(growing)} of {len(listed)} "
            "worker processes"
            if isinstance(kinds, list) and kinds
            else f"no growth in {len(listed)} worker processes"
        )
        limit = memory.get("projected_limit_s")
        if isinstance(limit, int | float):
            said += f"; the memory limit reached in ~{_s(limit)} at this rate (estimated)"
        out.append(f"worker memory: {said} ({memory.get('samples')} readings)")
    return out


def describe_anatomy(data: JsonObject) -> list[str]:
    """What a training step's time went on, from the stack samples: the phases' shares
    and the user line that takes most of the loop's own work."""
    anatomy = data.get("anatomy")
    if not isinstance(anatomy, dict) or not anatomy.get("samples"):
        return []
    shares = anatomy.get("shares")
    if not isinstance(shares, dict):
        return []
    parts = [
        f"{'data wait' if name == 'data' else name} {value:.0%}"
        for name, value in shares.items()
        if isinstance(value, int | float) and value >= 0.005
    ]
    out = [f"step time, by {anatomy.get('samples')} stack samples: {', '.join(parts)}"]
    lines = anatomy.get("lines")
    loop = (
        [x for x in lines if isinstance(x, dict) and x.get("phase") == "loop"]
        if isinstance(lines, list)
        else []
    )
    if loop:
        top = loop[0]
        share = top.get("share")
        out.append(
            f"  the loop's own work, most in {top.get('file')}:{top.get('line')} "
            f"{top.get('code') or ''}".rstrip()
            + (f" ({share:.0%} of a step)" if isinstance(share, int | float) else "")
        )
    return out


def _because(answer: JsonObject, said: list[str]) -> list[str]:
    """An answer's reasons, when they lowered its confidence, not said already."""
    reasons = answer.get("reasons")
    if answer.get("confidence") == "high" or not isinstance(reasons, list):
        return []
    lines = [f"  because {reason}" for reason in reasons]
    return [line for line in lines if line not in said]
