"""Calibration under ``torch.distributed``: rank 0 measures, every rank gets the result.

The result travels as JSON in a byte tensor (no pickle), broadcast over the default
process group; the other ranks block in the broadcast until rank 0 is done. Inside
:func:`this_rank_only` (the doctor's proofs, run on rank 0 while the others wait
elsewhere) a calibration measures on its own rank and broadcasts nothing.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from trainperf.calibration.api import Calibration

__all__ = ["on_rank_zero", "this_rank_only"]

_ALONE = [False]


@contextlib.contextmanager
def this_rank_only() -> Iterator[None]:
    """Calibrations inside the block run on the calling rank alone."""
    before = _ALONE[0]
    _ALONE[0] = True
    try:
        yield
    finally:
        _ALONE[0] = before


def on_rank_zero(work: Callable[[], Calibration]) -> Calibration:
    if "torch" not in sys.modules or _ALONE[0]:
        return work()  # without torch imported there is no process group
    import torch
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return work()
    if dist.get_world_size() < 2:
        return work()
    from trainperf.calibration.api import Calibration
    from trainperf.errors import TrainperfError

    rank = dist.get_rank()
    payload = b""
    if rank == 0:
        try:
            payload = json.dumps({"ok": work().to_json()}).encode()
        except TrainperfError as exc:
            payload = json.dumps({"error": str(exc)}).encode()
    size = torch.tensor([len(payload)], dtype=torch.int64)
    dist.broadcast(size, src=0)
    data = torch.zeros(int(size.item()), dtype=torch.uint8)
    if rank == 0:
        data = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
    dist.broadcast(data, src=0)
    message = json.loads(bytes(data.tolist()).decode())
    if "error" in message:
        raise TrainperfError(f"calibration failed on rank 0: {message['error']}")
    return Calibration.from_json(message["ok"])
