"""A calibration as text: the choice as code to paste, why, what the budget kept for the
training step, the loader-only optimum, start-up per epoch, every candidate and what
was not measured (renderers never measure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainperf.calibration.api import Calibration

__all__ = ["render_calibration"]


def render_calibration(result: Calibration) -> str:
    out = [f"calibration ({result.mode}, {result.source}): {result.chosen.describe()}"]
    if result.samples_per_s is not None:
        out.append(f"  {result.samples_per_s:,.1f} samples/s once running; {result.reason}")
    else:
        out.append(f"  {result.reason}")
    out.append(f"  paste: {result.chosen.as_code()}")
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
    if result.budget is not None:
        out.append(f"  CPU budget: {result.budget.describe()}")
    if result.loader_only is not None:
        out.append(
            "  loader-only optimum (no CPU kept for a training step): "
            + result.loader_only.describe(result.samples_per_s)
        )
    startup = _startup(result)
    if startup:
        out.append(f"  start-up per epoch: {startup}")
    if result.candidates:
        out.append(
            "  workers  prefetch  main threads  worker threads  start       samples/s  "
            "first batch   p95 batch  status"
        )
        for trial in result.candidates:
            config = trial.config
            rate = f"{trial.samples_per_s:,.1f}" if trial.samples_per_s else "-"
            p95 = f"{trial.p95_s * 1e3:.1f} ms" if trial.p95_s is not None else "-"
            first = f"{trial.first_batch_s:.3f} s" if trial.first_batch_s is not None else "-"
            prefetch = str(config.prefetch_factor) if config.num_workers else "-"
            start = config.multiprocessing_context or ("default" if config.num_workers else "-")
            line = (
                f"  {config.num_workers:>7}  {prefetch:>8}  {config.main_threads or '-':>12}  "
                f"{config.worker_threads or '-':>14}  {start:<10}  {rate:>9}  {first:>11}  "
                f"{p95:>10}  {trial.status}"
            )
            if trial.reason and trial.status != "chosen":
                line += f": {trial.reason}"
            out.append(line)
    for note in result.skipped:
        out.append(f"  not measured: {note}")
    plan = result.epochs
    if plan is not None and not plan.count_given:
        out.append(
            f"  epochs: {plan.count} assumed, the run's count not given: worker start-ups "
            "are weighed over the real run with --epochs N (epochs=N in Python)"
        )
    out.append(f"  took {result.elapsed_s:.1f} s")
    return "\n".join(out)


def _startup(result: Calibration) -> str:
    """The choice's start-up per epoch and its rate over the weighed run, or ''."""
    plan, restart = result.epochs, result.restart
    if plan is None or not result.chosen.num_workers:
        return ""
    parts = []
    if restart is not None:
        parts.append(
            f"first batch {restart.first_batch_s:.3f} s after new workers start, "
            f"{restart.live_first_batch_s:.3f} s with live ones (measured over "
            f"{restart.live_epochs} epochs)"
        )
        saved = restart.startup_s - restart.live_startup_s
        if result.chosen.persistent_workers:
            parts.append(f"persistent_workers=True saves ~{saved:.3f} s per epoch")
        else:
            parts.append(
                f"paid every epoch: persistent workers were ruled out (they would save "
                f"~{saved:.3f} s per epoch)"
            )
    if result.run_samples_per_s is not None:
        parts.append(
            f"over {plan.describe()}: {result.run_samples_per_s:,.1f} samples/s, start-up included"
        )
    return "; ".join(parts)
