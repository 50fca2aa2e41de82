"""Module-level functions and datasets for the cache tests (worker processes import them)."""

from __future__ import annotations

import os
import time

import numpy as np

COUNT_FILE_VARIABLE = "TRAINPERF_TEST_COUNT_FILE"


class Pages:
    """``n`` inputs; input ``i`` is a small deterministic array."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return np.arange(16, dtype=np.float32).reshape(4, 4) + i


def count(x: np.ndarray) -> None:
    """Append one line per computation to a shared file (O_APPEND: atomic per line)."""
    path = os.environ.get(COUNT_FILE_VARIABLE)
    if path:
        with open(path, "a") as out:  # noqa: PTH123
            out.write(f"{int(x[0, 0])} {os.getpid()}\n")


def maps(x: np.ndarray) -> dict[str, object]:
    count(x)
    time.sleep(0.01)  # long enough for concurrent readers to meet in the middle
    return {"double": x * 2, "mask": (x > 5).astype(np.float32), "total": float(x.sum())}


def slow_maps(x: np.ndarray) -> dict[str, object]:
    count(x)
    time.sleep(0.05 if int(x[0, 0]) % 2 else 0.01)
    return {"double": x * 2}
