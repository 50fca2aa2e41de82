"""A bounded run's limit, agreed by every rank of a ``torch.distributed`` job.

A rank that stops on its own leaves the others blocked in their next collective, and
a time limit read on each rank's own clock is reached at different steps. So every
``AGREE_EVERY`` training steps (and at the step limit itself) each rank says whether
it is over its limit, and one ``all_reduce`` (MAX) of that flag over the default
process group decides for all: every rank stops after the same step. The loop itself
synchronises every step (DDP's gradient all-reduce); this adds one small collective
every ``AGREE_EVERY`` steps, and nothing between them.

Each rank calls the agreement at the same training step count, so the calls match up
whatever the loop does between them (validation on rank 0 only, say). Without an
initialised process group a rank decides alone (its ranks cannot block each other).
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["AGREE_EVERY", "agree", "due", "gather", "world_size"]

AGREE_EVERY = 10


def world_size() -> int:
    """The job's ranks, from the launcher's ``WORLD_SIZE`` (1 when not set)."""
    world = os.environ.get("WORLD_SIZE", "")
    return int(world) if world.isdecimal() and int(world) > 0 else 1


def due(step: int, stop_steps: int | None) -> bool:
    """Whether the ranks agree after training step ``step`` (1-based)."""
    return step % AGREE_EVERY == 0 or step == stop_steps


def _group() -> tuple[object, str] | None:
    """torch.distributed and the device its collectives take, when a group of several
    ranks is up; else None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = torch.distributed
    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() < 2:
        return None
    device = "cpu"
    if "nccl" in str(dist.get_backend()).lower():
        device = f"cuda:{torch.cuda.current_device()}"
    return dist, device


def gather(values: tuple[float, ...]) -> list[tuple[float, ...]] | None:
    """Every rank's ``values`` (the same length on each), in rank order: one all-gather.
    None without a group of several ranks, or when the collective fails. Every rank
    must call it at the same point (the agreed stop)."""
    found = _group()
    if found is None:
        return None
    dist: Any = found[0]
    import torch

    try:
        mine = torch.tensor(values, dtype=torch.float64, device=found[1])
        out = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(out, mine)
        return [tuple(float(v) for v in t.tolist()) for t in out]
    except Exception:
        return None


def agree(over: bool) -> bool:
    """True on every rank when any rank is ``over`` its limit (an all-reduce MAX of
    one integer; on the current CUDA device under NCCL). A failing collective (a
    destroyed group) leaves the rank's own answer."""
    found = _group()
    if found is None:
        return over
    dist: Any = found[0]
    import torch

    try:
        flag = torch.tensor([1 if over else 0], dtype=torch.int32, device=found[1])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())
    except Exception:  # a group torn down meanwhile: no one to agree with
        return over
