"""Text rendering of a run's summary (renderers never measure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainperf.monitoring.analyze import RunSummary

__all__ = ["render_summary"]


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
    out.append(f"verdict: {summary.primary}")
    for finding in summary.findings:
        evidence = ", ".join(f"{k}={v:.3g}" for k, v in finding.evidence.items())
        out.append(f"  {finding.kind}: {evidence}")
        out.append(f"    fix: {finding.fix}")
        out.append(f"    gain: {finding.gain}")
    return "\n".join(out)
