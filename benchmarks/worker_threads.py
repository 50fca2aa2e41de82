"""Does calibration reach the hand fix for DataLoader workers fighting with their BLAS pools?

    python benchmarks/worker_threads.py [--n 512] [--dim 256] [--rounds 4] [--batches 8]

The workload is a smaller copy of case 13: each sample is built with NumPy linear
algebra (a random projection and a least-squares step: matrix products OpenBLAS runs
on every CPU) in ``num_workers=2`` persistent workers, while the training process
trains a small MLP with torch's default threads. Three ways, interleaved (the order
rotates each round), each a fresh loader timed over ``--batches`` batches after its
first (worker start-up reported apart):

* ``default``: the program as written;
* ``hand-fix``: the same, with ``worker_init_fn`` calling ``threadpool_limits(1)``;
* ``calibrated``: what ``trainperf.calibration.api.calibrate`` chooses, applied as the
  user would: ``DataLoader(dataset, shuffle=True, **chosen.loader_kwargs())`` inside
  ``with chosen.threads():``;
* ``next-rung``: the chosen setting with one worker more, applied the same way: the
  rung the search's CPU budget (``workers x cpu_share + 1 <= cpus``) may have skipped.

Reports samples/s per way (median of the rounds) and calibrated / hand-fix (target
>= 0.8), with the machine.
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


def one_blas_thread(_: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


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


def turn(make_loader, threads, step, batches: int) -> tuple[float, float]:
    """(samples/s over ``batches`` batches after the first, seconds to the first)."""
    with threads():
        began = time.perf_counter()
        loader = make_loader()
        it = iter(loader)
        step(next(it))
        first = time.perf_counter()
        samples = 0
        for _ in range(batches):
            x, y = next(it)
            step((x, y))
            samples += len(y)
        rate = samples / (time.perf_counter() - first)
        del it, loader  # workers stop before the next way starts
    return rate, first - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="samples in the dataset")
    parser.add_argument("--dim", type=int, default=256, help="matrix size (case 13: 256)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=8, help="batches per candidate")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per turn")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.INFO)
    sys.path.insert(0, str(Path(__file__).parent))
    import contextlib

    from torch.utils.data import DataLoader

    from _machine import describe_machine
    from trainperf.calibration.api import calibrate

    print(describe_machine())
    dataset = Projected(args.n, args.dim)
    step = make_step()
    started = time.perf_counter()
    result = calibrate(
        dataset,
        batch_size=args.batch_size,
        train_step=step,
        samples=args.samples,
        persist=False,
        force=True,
    )
    chosen = result.chosen
    print(f"calibration ({time.perf_counter() - started:.0f} s): {chosen.describe()}")
    for trial in result.candidates:
        rate = f"{trial.samples_per_s:8.1f}" if trial.samples_per_s else "       -"
        print(f"  {rate} samples/s  {trial.status:<8}  {trial.config.describe()}")
    share = result.candidates[0].cpu_share
    print(
        f"  loading thread's CPU share at workers=0: {share if share is None else round(share, 2)}"
    )

    def case13(**extra: object):
        return lambda: DataLoader(
            dataset,
            batch_size=args.batch_size,
            shuffle=True,
            num_workers=2,
            persistent_workers=True,
            **extra,  # type: ignore[arg-type]
        )

    ways = {
        "default": (case13(), contextlib.nullcontext),
        "hand-fix": (case13(worker_init_fn=one_blas_thread), contextlib.nullcontext),
        "calibrated": (
            lambda: DataLoader(dataset, shuffle=True, **chosen.loader_kwargs()),  # type: ignore[arg-type]
            chosen.threads,
        ),
    }
    more = chosen.replace(num_workers=chosen.num_workers + 1)
    ways["next-rung"] = (
        lambda: DataLoader(dataset, shuffle=True, **more.loader_kwargs()),  # type: ignore[arg-type]
        more.threads,
    )
    if share is not None:  # the search's budget (search._fits), with the CPUs it planned on
        from trainperf.calibration.search import IO_BOUND_SHARE
        from trainperf.resources import detect_resources

        cpus = detect_resources(gpus=False).usable_cpus
        fits = share < IO_BOUND_SHARE or more.num_workers * share + 1 <= cpus + 1e-9
        print(
            f"  budget for {more.num_workers} workers: {more.num_workers} x {share:.2f} + 1 "
            f"<= {cpus} CPUs: {'fits' if fits else 'does not fit, not tried'}"
        )
    rates: dict[str, list[float]] = {name: [] for name in ways}
    starts: dict[str, list[float]] = {name: [] for name in ways}
    names = list(ways)
    started = time.perf_counter()
    for round_ in range(args.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            make_loader, threads = ways[name]
            rate, first = turn(make_loader, threads, step, args.batches)
            rates[name].append(rate)
            starts[name].append(first)
    print(
        f"interleaved, {args.rounds} rounds x {args.batches} batches of {args.batch_size} "
        f"({time.perf_counter() - started:.0f} s):"
    )
    median = {name: statistics.median(r) for name, r in rates.items()}
    for name in names:
        print(
            f"  {name:<10} {median[name]:7.1f} samples/s  (rounds: "
            f"{', '.join(f'{r:.0f}' for r in rates[name])}; first batch after "
            f"{statistics.median(starts[name]):.2f} s)"
        )
    paired = statistics.median(
        c / h for c, h in zip(rates["calibrated"], rates["hand-fix"], strict=True)
    )
    print(f"  calibrated / hand-fix within each round, median: {paired:.2f}")
    ratio = median["calibrated"] / median["hand-fix"]
    print(
        f"calibrated / hand-fix: {ratio:.2f} (target >= 0.8); next-rung / hand-fix: "
        f"{median['next-rung'] / median['hand-fix']:.2f}; hand-fix / default: "
        f"{median['hand-fix'] / median['default']:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
