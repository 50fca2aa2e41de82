"""How many ranks share this node, from the variables launchers set.

Sources, first match wins: torchrun/torch.distributed.run (``LOCAL_WORLD_SIZE``),
Open MPI (``OMPI_COMM_WORLD_LOCAL_SIZE``), then Slurm -- but only for a task that
``srun`` started (``SLURM_LOCALID`` set): a batch script that itself runs torchrun
is one process, whatever ``--ntasks-per-node`` says. For Slurm the step's own layout
(``SLURM_STEP_TASKS_PER_NODE``) wins over the job's (``SLURM_TASKS_PER_NODE``), and
both over ``SLURM_NTASKS_PER_NODE``, which is only the request sbatch was given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["RankLayout", "read_rank_layout"]

_SLURM_TASKS = re.compile(r"^([0-9]+)(?:\(x([0-9]+)\))?$")


@dataclass(frozen=True, kw_only=True)
class RankLayout:
    local_world_size: int = 1
    world_size: int = 1
    local_rank: int | None = None


def _whole(raw: str) -> int | None:
    # isdecimal, not isdigit: "²" is a digit that int() rejects.
    return int(raw) if raw.isascii() and raw.isdecimal() else None


def read_rank_layout(environ: Mapping[str, str], warn: Callable[[str], None]) -> RankLayout:
    def number(name: str) -> int | None:
        raw = environ.get(name, "").strip()
        if not raw:
            return None
        value = _whole(raw)
        if value is None:
            warn(f"ignoring {name}={raw!r}: expected a whole number; assuming 1 rank")
        return value

    local = number("LOCAL_WORLD_SIZE") or number("OMPI_COMM_WORLD_LOCAL_SIZE")
    local_rank = number("LOCAL_RANK")
    if local_rank is None:
        local_rank = number("OMPI_COMM_WORLD_LOCAL_RANK")
    world = number("WORLD_SIZE") or number("OMPI_COMM_WORLD_SIZE")
    if local is None and environ.get("SLURM_LOCALID"):
        local = (
            _slurm_tasks_on_node(environ, "SLURM_STEP_TASKS_PER_NODE", warn)
            or _slurm_tasks_on_node(environ, "SLURM_TASKS_PER_NODE", warn)
            or number("SLURM_NTASKS_PER_NODE")
        )
        local_rank = number("SLURM_LOCALID")
        if world is None:
            world = number("SLURM_STEP_NUM_TASKS") or number("SLURM_NTASKS")
    local = max(1, local or 1)
    return RankLayout(
        local_world_size=local, world_size=max(local, world or 1), local_rank=local_rank
    )


def _slurm_tasks_on_node(
    environ: Mapping[str, str], name: str, warn: Callable[[str], None]
) -> int | None:
    """``"2(x3),1"`` means nodes 0-2 run 2 tasks and node 3 runs 1."""
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    node = _whole(environ.get("SLURM_NODEID", "0").strip()) or 0
    for part in raw.split(","):
        match = _SLURM_TASKS.match(part.strip())
        if match is None:
            warn(f"ignoring {name}={raw!r}: expected a form like '2(x3),1'; assuming 1 rank")
            return None
        tasks, repeat = int(match[1]), int(match[2] or 1)
        if node < repeat:
            return tasks
        node -= repeat
    return None
