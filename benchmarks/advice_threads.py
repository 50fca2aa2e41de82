"""Does the calibration's measured gain hold when its advice is applied as written?

    python benchmarks/advice_threads.py [--dim 128] [--samples 8] [--rounds 6] [--batches 6]

The workload: every sample is built with NumPy linear algebra (a random projection
and a least-squares step, matrix products OpenBLAS runs on all its threads) in
``num_workers=2`` workers, while the training process runs a small MLP with torch's
default threads: each worker starts a BLAS pool as wide as the machine, next to the
training threads. (The pattern of DataLoader workers fighting over the CPUs with
their BLAS pools; the fix is one BLAS thread per worker.)

1. ``trainperf.calibrate`` end to end (the real training step), nothing stored.
2. The gain it reports for its choice, as a doctor would: the choice's rate over the
   original settings' rate, each timed as a candidate.
3. The choice applied as written (``loader_kwargs()``, ``threads()``) against the
   original, measured side by side, interleaved (``measure_side_by_side``), with a
   95% interval.
4. For contrast, how the choice's worker count would have been measured with the
   training process's BLAS limit copied into its workers (a limit the advice does
   not state), against the same configuration applied as written.

The reported gain and the side-by-side gain should agree within the interval.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path


class Projected:
    """``n`` samples, each built with BLAS matrix products on ``dim`` x ``dim`` matrices."""

    def __init__(self, n: int, dim: int) -> None:
        self.n, self.dim = n, dim

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[object, int]:
        import numpy as np
        import torch

        rng = np.random.default_rng(i)
        a = rng.standard_normal((self.dim, self.dim))
        b = rng.standard_normal((self.dim, 64))
        proj = a @ (a.T @ b)
        feats = np.linalg.lstsq(a[:, :64], proj, rcond=None)[0].mean(axis=1)
        return torch.from_numpy(feats.astype(np.float32)), i % 5


def make_step():
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 5))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step(batch: object) -> None:
        x, y = batch  # type: ignore[misc]
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()

    return step


def timed(dataset: object, config: object, step: object, batches: int):
    """A config timed like a candidate (a Trial)."""
    from trainperf.calibration.trials import TrialPlan, run_trial

    plan = TrialPlan(batches=batches, chunk=max(2, batches // 4), timeout_s=600)
    trial = run_trial(
        dataset,
        config,  # type: ignore[arg-type]
        plan,
        start=0,
        collate_fn=None,
        step=step,  # type: ignore[arg-type]
        judge=lambda rate, n: None,
        clock=time.perf_counter,
    )
    if trial.samples_per_s is None:
        raise SystemExit(f"{config} failed: {trial.reason}")
    return trial


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="samples in the dataset")
    parser.add_argument("--dim", type=int, default=128, help="matrix size (256: heavier)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--samples", type=int, default=8, help="batches per candidate")
    parser.add_argument("--rounds", type=int, default=6, help="side-by-side rounds")
    parser.add_argument("--batches", type=int, default=6, help="batches per turn")
    parser.add_argument("--no-contrast", action="store_true", help="skip step 4")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.INFO)
    sys.path.insert(0, str(Path(__file__).parent))
    from threadpoolctl import threadpool_limits

    from _machine import describe_machine
    from trainperf.calibration.api import calibrate
    from trainperf.calibration.config import LoaderConfig
    from trainperf.calibration.speedup import speedup_interval
    from trainperf.calibration.verify import measure_side_by_side

    print(describe_machine())
    dataset = Projected(args.n, args.dim)
    step = make_step()
    original = LoaderConfig(batch_size=args.batch_size, num_workers=2, persistent_workers=True)
    started = time.perf_counter()
    result = calibrate(
        dataset,
        batch_size=args.batch_size,
        train_step=step,
        samples=args.samples,
        persist=False,
        force=True,
    )
    print(f"calibration ({time.perf_counter() - started:.0f} s): {result.chosen.describe()}")
    for trial in result.candidates:
        rate = f"{trial.samples_per_s:8.1f}" if trial.samples_per_s else "       -"
        print(f"  {rate} samples/s  {trial.status:<8}  {trial.config.describe()}")
    if result.speedup is not None:
        print(f"  over workers=0 (chunks of separate runs): {result.speedup.describe()}")
    share = result.candidates[0].cpu_share
    print(
        f"  compute floor {result.floor_samples_per_s or 0.0:.1f} samples/s; loading thread's "
        f"CPU share at workers=0: {share if share is None else round(share, 2)}"
    )
    winner = next(t for t in result.candidates if t.status == "chosen")
    own = timed(dataset, original, step, args.samples)
    reported = speedup_interval(own.chunk_rates, winner.chunk_rates, paired=False)
    print(
        f"reported gain: {reported.describe()}, chosen {winner.samples_per_s:.1f} samples/s "
        f"over the original ({original.describe()}) {own.samples_per_s:.1f} samples/s, "
        f"each timed once as a candidate"
    )
    started = time.perf_counter()
    side = measure_side_by_side(
        dataset, original, result.chosen, train_step=step, rounds=args.rounds, batches=args.batches
    )
    print(f"applied as written, side by side ({time.perf_counter() - started:.0f} s):")
    print(f"  {side.describe()}")
    print(f"  original rates: {', '.join(f'{r:.1f}' for r in side.original_samples_per_s)}")
    print(f"  advised rates:  {', '.join(f'{r:.1f}' for r in side.advised_samples_per_s)}")
    medians = [
        statistics.median(r) for r in (side.original_samples_per_s, side.advised_samples_per_s)
    ]
    print(
        f"  medians: original {medians[0]:.1f} samples/s (as a candidate {own.samples_per_s:.1f}), "
        f"advised {medians[1]:.1f} (as calibrated {winner.samples_per_s:.1f})"
    )
    inside = side.speedup_low <= reported.value <= side.speedup_high
    overlap = reported.low <= side.speedup_high and side.speedup_low <= reported.high
    print(
        f"reported gain inside the side-by-side interval: {'yes' if inside else 'no'}; "
        f"the two intervals overlap: {'yes' if overlap else 'no'}"
    )
    if not args.no_contrast:
        plain = result.chosen.replace(worker_threads=None, persistent_workers=False)
        with threadpool_limits(plain.main_threads or 1):  # copied into the forked workers
            leaked = timed(dataset, plain, step, args.batches).samples_per_s or 0.0
        written = timed(dataset, plain, step, args.batches).samples_per_s or 0.0
        base = own.samples_per_s or 1.0
        print(
            f"contrast, {plain.describe()} (no worker_threads): {leaked / base:.2f}x the "
            f"original when the training process's BLAS limit is copied into its workers, "
            f"{written / base:.2f}x as written"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
