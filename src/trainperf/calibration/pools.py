"""What thread pools a DataLoader worker runs, asked of a real worker.

A worker forked from this process copies its BLAS/OpenMP pools (a spawned one starts
them afresh from the environment); DataLoader then sets torch to one thread and
leaves the rest alone. When a plain worker still runs a pool of several threads,
every worker doing matrix work starts that many threads next to the training
process's own, and ``worker_threads=1`` is a setting worth measuring.
"""

from __future__ import annotations

import json
import logging

__all__ = ["plain_worker_pools"]

logger = logging.getLogger("trainperf.calibrate")


class _Pools:
    """A one-sample dataset whose sample is the pools of the process that loads it."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> str:
        from threadpoolctl import threadpool_info

        pools: dict[str, int] = {}
        for pool in threadpool_info():
            name = str(pool["internal_api"])
            pools[name] = max(pools.get(name, 0), int(pool["num_threads"]))
        return json.dumps(pools)


def plain_worker_pools() -> dict[str, int] | None:
    """Threads of each BLAS/OpenMP pool (threadpoolctl's ``internal_api`` names, the
    largest pool of each) in the worker of a plain ``DataLoader(num_workers=1)``
    started from this process as it is now, e.g. ``{"openblas": 8, "openmp": 1}``.

    ``None`` when the worker could not be started (the reason is logged); never raises.
    Costs one worker start-up, a fraction of a second.
    """
    from torch.utils.data import DataLoader

    try:
        (found,) = list(DataLoader(_Pools(), batch_size=None, num_workers=1))  # type: ignore[arg-type]  # a map-style dataset
    except Exception as exc:  # a probe: the candidates themselves will say what fails
        logger.info("worker_pools_unknown reason=%r", f"{type(exc).__name__}: {exc}"[:200])
        return None
    pools = json.loads(found)
    return {str(name): int(threads) for name, threads in pools.items()}
