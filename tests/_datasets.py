"""Datasets with a known cost per sample, for tests that plant a bottleneck."""

from __future__ import annotations

import time

import torch
from torch.utils.data import Dataset


class Busy(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``n`` samples of ``width`` features; each costs ``cost`` seconds of CPU to make
    (a stand-in for decoding and augmenting)."""

    def __init__(self, n: int, cost: float, width: int = 32) -> None:
        self.n, self.cost, self.width = n, cost, width

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        end = time.perf_counter() + self.cost
        while time.perf_counter() < end:
            pass
        return torch.ones(self.width), torch.zeros(1)


def spin(seconds: float) -> None:
    """Busy the CPU for ``seconds`` (a stand-in for real work, not a sleep)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class KillsItsWorkers(Busy):
    """Loads normally in the training process; a DataLoader worker dies on its first
    sample, the way an out-of-memory kill or a full /dev/shm ends one."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        import os
        import signal

        from torch.utils.data import get_worker_info

        if get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(i)


class Waits(Busy):
    """Samples that take ``cost`` seconds of waiting (remote storage), not of CPU."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(self.cost)
        return torch.ones(self.width), torch.zeros(1)
