"""Does calibrate choose the start method and persistent workers well over short epochs?

    python benchmarks/calibrate_start_method.py [--datasets state,open,plain]
        [--persistence allowed,restarting] [--epochs 3] [--repeat 5]
        [--default-start forkserver]

Three loaders whose samples wait 2 ms each (storage latency, a timer), 256 samples in
batches of 16 (16 batches an epoch), run for ``--epochs`` epochs:

* ``state``: the dataset holds a large Python state (a 400,000-entry label index), which
  ``spawn`` and ``forkserver`` workers receive pickled at every start; ``fork`` copies it;
* ``open``: every process that loads opens its source first (0.3 s: a connection, an
  index read), under every start method;
* ``plain``: nothing to start but the workers (the control).

For each, and each ``--persistence`` (``allowed``: the calibration may keep workers
between epochs; ``restarting``: it may not, ``persistent_workers=False``):

1. The grid, the ground truth: workers (0, 2, 4) x start method (every one this
   platform has) x ``persistent_workers`` (those allowed), the main process's threads
   set as the calibration sets them (1 beside workers: an axis ``calibrate.py``
   measures, not this one), every point timed over the whole run (``time_epochs``:
   building the loader to the last batch of the last epoch, every worker start
   included); a point past 3x the best so far is stopped there.
2. ``trainperf.calibrate(epochs=...)``, loader only, nothing stored.
3. The choice and the grid's three fastest are measured again, side by side, ``--repeat``
   rounds interleaved (the order reversed every other round); the best is the fastest of
   these medians.

Reported: the choice, its throughput over the run as a ratio to the best's (target >=
0.95), and the calibration's time against the grid's. ``--default-start forkserver``
sets multiprocessing's default start method first, as Python 3.14 does on Linux.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.utils.data import Dataset

SAMPLES = 256
BATCH = 16
WAIT_S = 0.002


class Waits(Dataset):
    """Samples that wait ``WAIT_S`` each (storage latency: no CPU)."""

    def __len__(self) -> int:
        return SAMPLES

    def __getitem__(self, i: int) -> torch.Tensor:
        time.sleep(WAIT_S)
        return torch.full((32,), float(i))


class LargeState(Waits):
    """Holds a label index of 400,000 entries: pickled for every spawn/forkserver worker."""

    def __init__(self) -> None:
        self.index = {f"page-{i:07d}": (i, f"label {i % 97}") for i in range(400_000)}


class OpensPerProcess(Waits):
    """Each loading process opens its source first (0.3 s), whatever the start method."""

    def __init__(self) -> None:
        self.opened_in = -1

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.opened_in != os.getpid():
            time.sleep(0.3)
            self.opened_in = os.getpid()
        return super().__getitem__(i)


DATASETS = {"state": LargeState, "open": OpensPerProcess, "plain": Waits}


def grid(persistent: bool):
    from trainperf.calibration.config import LoaderConfig
    from trainperf.calibration.startmethod import available_start_methods
    from trainperf.resources import detect_resources

    points = [LoaderConfig(batch_size=BATCH, main_threads=detect_resources().usable_cpus)]
    for workers in (2, 4):
        for method in available_start_methods():
            for keep in (False, True) if persistent else (False,):
                points.append(
                    LoaderConfig(
                        batch_size=BATCH,
                        num_workers=workers,
                        prefetch_factor=2,
                        persistent_workers=keep,
                        multiprocessing_context=method,
                        main_threads=1,
                    )
                )
    return points


def bench(name: str, persistence: str, epochs: int, repeat: int) -> dict:
    from trainperf.calibration.api import calibrate
    from trainperf.calibration.epochs import time_epochs

    dataset = DATASETS[name]()
    persistent = persistence == "allowed"
    seconds = {}
    started = time.perf_counter()
    for config in grid(persistent):
        best = min(seconds.values(), default=math.inf)
        limit = 3 * best if math.isfinite(best) else None
        seconds[config] = time_epochs(dataset, config, epochs=epochs, limit_s=limit)
        print(
            f"  grid {name}/{persistence} {config.describe()}: {seconds[config]:.3f} s",
            file=sys.stderr,
        )
    grid_s = time.perf_counter() - started
    started = time.perf_counter()
    result = calibrate(
        dataset,
        batch_size=BATCH,
        epochs=epochs,
        persistent_workers=persistent,
        persist=False,
        force=True,
        max_workers=4,
    )
    calibrate_s = time.perf_counter() - started
    chosen = result.chosen
    finalists = sorted(seconds, key=seconds.get)[:3]
    keys = [chosen, *(c for c in finalists if c != chosen)]
    again: dict = {config: [] for config in keys}
    for turn in range(repeat):  # side by side, interleaved
        for config in keys if turn % 2 == 0 else keys[::-1]:
            again[config].append(time_epochs(dataset, config, epochs=epochs))
    median = {config: statistics.median(values) for config, values in again.items()}
    best = min(keys, key=median.get)
    return {
        "dataset": name,
        "persistence": persistence,
        "epochs": epochs,
        "chosen": chosen.describe(),
        "chosen_s": median[chosen],
        "best": best.describe(),
        "best_s": median[best],
        "ratio": median[best] / median[chosen],
        "calibrate_s": calibrate_s,
        "grid_s": grid_s,
        "reason": result.reason,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="state,open,plain")
    parser.add_argument("--persistence", default="allowed,restarting")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5, help="side-by-side rounds")
    parser.add_argument(
        "--default-start",
        choices=("fork", "forkserver", "spawn"),
        help="as Python 3.14: forkserver",
    )
    args = parser.parse_args()
    if args.default_start:
        import multiprocessing

        multiprocessing.set_start_method(args.default_start)
    warnings.filterwarnings("ignore")
    logging.disable(logging.INFO)
    sys.path.insert(0, str(Path(__file__).parent))
    from _machine import describe_machine

    print(f"machine: {describe_machine()}")
    if args.default_start:
        print(f"default start method: {args.default_start}")
    rows = [
        bench(name, persistence, args.epochs, args.repeat)
        for name in args.datasets.split(",")
        for persistence in args.persistence.split(",")
    ]
    for row in rows:
        print(
            f"\n{row['dataset']} ({row['persistence']}, {row['epochs']} epochs of "
            f"{SAMPLES // BATCH} batches): chose {row['chosen']}\n"
            f"  {row['ratio']:.2f} of the best ({row['best']}: {row['best_s']:.3f} s for the "
            f"run; the choice {row['chosen_s']:.3f} s), side by side\n"
            f"  calibration {row['calibrate_s']:.1f} s, grid {row['grid_s']:.1f} s "
            f"({row['calibrate_s'] / row['grid_s']:.2f} of it)"
        )
    print("\n" + json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
