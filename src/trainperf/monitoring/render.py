"""Text rendering of a run's summary (renderers never measure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainperf.monitoring.analyze import RunSummary

__all__ = ["confidence_words", "render_summary", "verdict_line"]


def render_summary(summary: RunSummary, *, title: str, finished: bool = True) -> str:
    out = [title]
    if not finished:
        out.append("the run did not finish (killed or still running): this is what it recorded")
    rate = f"{summary.samples_per_s:,.1f} samples/s" if summary.samples_per_s else "samples unknown"
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
    out.append(f"verdict: {verdict_line(summary)}")
    for reason in summary.step.reasons if summary.step.kind != "insufficient-data" else ():
        out.append(f"  ({reason})")
    if summary.tail is not None and summary.tail.mean_s >= 1.5 * summary.tail.median_s:
        tail = summary.tail
        out.append(
            f"tail: mean step {tail.mean_s * 1e3:.1f} ms = {tail.mean_s / tail.median_s:.1f}x "
            f"the median; {tail.slow_steps} slow steps take {tail.slow_share:.0%} of training"
        )
    for finding in summary.findings:
        evidence = ", ".join(f"{k}={v:.3g}" for k, v in finding.evidence.items())
        sure = "" if finding.confidence == "high" else f" [{finding.confidence} confidence]"
        out.append(f"  {finding.kind}{sure}: {evidence}")
        out.append(f"    fix: {finding.fix}")
        out.append(f"    gain: {finding.gain}")
    return "\n".join(out)


def confidence_words(confidence: str) -> str:
    """``"low"`` -> ``"low-confidence"``; ``"inconclusive"`` stays itself."""
    return "inconclusive" if confidence == "inconclusive" else f"{confidence}-confidence"


def verdict_line(summary: RunSummary) -> str:
    """``"step input-bound (high confidence: data wait 36%, 33-39%); run startup-bound
    (low confidence)"`` -- the step's answer and the run's, each with how sure it is."""
    step = summary.step
    if step.kind == "insufficient-data":
        return f"insufficient data ({step.reasons[0] if step.reasons else 'too few steps'})"
    said = f"step {step.kind} ({step.confidence} confidence"
    if step.share is not None and step.share_low is not None and step.share_high is not None:
        low, high = step.share_low, step.share_high
        said += f": data wait {step.share:.0%} of a step, {low:.0%}-{high:.0%}"
    said += ")"
    run = summary.run
    if run.kind != step.kind:
        said += f"; run {run.kind} ({run.confidence} confidence"
        if run.share is not None:
            said += f": {run.share:.0%} of the run"
        said += ")"
    return said
