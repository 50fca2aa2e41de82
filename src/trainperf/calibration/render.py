"""A calibration as text: every candidate, the choice and why (renderers never measure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainperf.calibration.api import Calibration

__all__ = ["render_calibration"]


def render_calibration(result: Calibration) -> str:
    out = [f"calibration ({result.mode}, {result.source}): {result.chosen.describe()}"]
    if result.samples_per_s is not None:
        out.append(f"  {result.samples_per_s:,.1f} samples/s; {result.reason}")
    else:
        out.append(f"  {result.reason}")
    if result.floor_samples_per_s is not None:
        headroom = result.headroom
        out.append(
            f"  compute floor (cached batches): {result.floor_samples_per_s:,.1f} samples/s"
            + (f", {headroom:.2f}x the chosen" if headroom is not None else "")
        )
    if result.speedup is not None:
        out.append(
            f"  {result.speedup.describe()} over workers=0 with every CPU to the training "
            f"process (chunks of separate runs)"
        )
    if result.candidates:
        out.append(
            "  workers  prefetch  main threads  worker threads  samples/s   p95 batch  status"
        )
        for trial in result.candidates:
            config = trial.config
            rate = f"{trial.samples_per_s:,.1f}" if trial.samples_per_s else "-"
            p95 = f"{trial.p95_s * 1e3:.1f} ms" if trial.p95_s is not None else "-"
            prefetch = str(config.prefetch_factor) if config.num_workers else "-"
            line = (
                f"  {config.num_workers:>7}  {prefetch:>8}  {config.main_threads or '-':>12}  "
                f"{config.worker_threads or '-':>14}  {rate:>9}  {p95:>10}  {trial.status}"
            )
            if trial.reason and trial.status != "chosen":
                line += f": {trial.reason}"
            out.append(line)
    out.append(f"  took {result.elapsed_s:.1f} s")
    return "\n".join(out)
