"""What the DataLoader workers' fixes gain, measured side by side in one run.

    python benchmarks/workers.py [--repeat 3] [--epochs 3]

1. Worker start-up: a loader of 2 ``spawn`` workers whose dataset carries 8 MiB (sent
   to each worker pickled) and whose main module imports torch, iterated for
   ``--epochs`` short epochs, as written, with ``persistent_workers=True``, and with
   ``multiprocessing_context="fork"``; the three interleaved, ``--repeat`` times; the
   medians' ratios to the original.
2. Copy-on-read: 2 forked persistent workers reading every item of a dataset held as a
   Python list of 2 million ints, against the same data in one numpy array, 2 epochs;
   each worker's private memory (USS, ``/proc/<pid>/smaps_rollup``) gained after the
   epochs, in MiB.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _machine import describe_machine


class Blob:
    """16 samples of 8 floats; carries 8 MiB that every spawned worker is sent."""

    def __init__(self) -> None:
        self.blob = bytes(8 << 20)

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> object:
        import torch

        time.sleep(0.001)
        return torch.ones(8)


class Listed:
    """Every item read each epoch, from a Python list or a numpy array."""

    def __init__(self, items: object) -> None:
        self.items = items

    def __len__(self) -> int:
        return 256

    def __getitem__(self, i: int) -> int:
        # Each sample reads a 1/256th slice of the items: an epoch touches all of them.
        n = len(self.items)  # type: ignore[arg-type]
        step = n // 256
        total = 0
        for value in self.items[i * step : (i + 1) * step]:  # type: ignore[index]
            total += int(value)
        return total


def epochs(loader: object, count: int) -> float:
    began = time.perf_counter()
    for _ in range(count):
        for _batch in loader:  # type: ignore[attr-defined]
            pass
    return time.perf_counter() - began


def startup_part(repeat: int, count: int) -> None:
    from torch.utils.data import DataLoader

    def loader(**changes: object) -> DataLoader[object]:
        settings: dict[str, object] = {
            "batch_size": 4,
            "num_workers": 2,
            "multiprocessing_context": "spawn",
        }
        settings.update(changes)
        return DataLoader(Blob(), **settings)  # type: ignore[arg-type]

    variants = {
        "as written (spawn)": lambda: loader(),
        "persistent_workers=True": lambda: loader(persistent_workers=True),
        'multiprocessing_context="fork"': lambda: loader(multiprocessing_context="fork"),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeat):
        for name, make in variants.items():
            times[name].append(epochs(make(), count))
    base = statistics.median(times["as written (spawn)"])
    print(f"\n1. worker start-up: {count} epochs of 4 batches, median of {repeat}")
    for name, taken in times.items():
        median = statistics.median(taken)
        print(f"   {name:32s} {median:6.2f} s   {base / median:5.2f}x faster than as written")


def _uss(pid: int) -> int:
    from trainperf.monitoring.worker_memory import read_smaps_rollup

    memory = read_smaps_rollup(pid)
    return 0 if memory is None or memory.uss is None else memory.uss


def memory_part(count: int) -> None:
    import numpy as np
    from torch.utils.data import DataLoader

    gained: dict[str, float] = {}
    items = list(range(2_000_000))
    for name, data in (("Python list", items), ("numpy array", np.asarray(items))):
        loader = DataLoader(
            Listed(data),
            batch_size=16,
            num_workers=2,
            multiprocessing_context="fork",
            persistent_workers=True,
        )
        iterator = iter(loader)
        next(iterator)
        pids = [w.pid for w in iterator._workers]  # type: ignore[attr-defined]
        before = [_uss(pid) for pid in pids]
        for _ in iterator:
            pass
        for _ in range(count - 1):
            for _batch in loader:
                pass
        after = [_uss(pid) for pid in pids]
        gained[name] = statistics.fmean(b - a for a, b in zip(before, after, strict=True)) / 2**20
        iterator._shutdown_workers()  # type: ignore[attr-defined]
    print(f"\n2. copy-on-read: private memory each worker gained over {count} epochs")
    for name, mib in gained.items():
        print(f"   {name:12s} {mib:7.1f} MiB")
    if gained["numpy array"] >= 1:
        ratio = gained["Python list"] / gained["numpy array"]
        print(f"   the list's workers gained {ratio:.0f}x the array's")
    else:
        print("   the array's workers gained under 1 MiB: nothing was copied")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    startup_part(args.repeat, args.epochs)
    memory_part(2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
