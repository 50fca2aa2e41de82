"""Training state kept aside while a probe or a proof takes real steps, then put back."""

from __future__ import annotations

import contextlib
import copy
import random
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["restored", "to_host"]


@contextlib.contextmanager
def restored(
    model: torch.nn.Module, optimizer: Any, scheduler: Any | None = None
) -> Iterator[None]:
    """Steps taken inside leave no trace: the weights, the optimizer's state (and the
    scheduler's, when given) and the random states (torch's, CUDA's, Python's, NumPy's)
    come back, and the gradients are cleared. Copies are kept in host memory, so a GPU's
    memory is not doubled. ``optimizer`` and ``scheduler`` need ``state_dict`` and
    ``load_state_dict`` (torch's, and wrappers such as Accelerate's)."""
    weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    optimizer_state = to_host(optimizer.state_dict())
    scheduler_state = None if scheduler is None else copy.deepcopy(scheduler.state_dict())
    cpu_rng = torch.get_rng_state()
    python_rng = random.getstate()
    numpy_rng = np.random.get_state()
    cuda = any(p.is_cuda for p in model.parameters())
    cuda_rng = torch.cuda.get_rng_state_all() if cuda else None
    try:
        yield
    finally:
        model.load_state_dict(weights)
        optimizer.load_state_dict(optimizer_state)
        optimizer.zero_grad(set_to_none=True)
        if scheduler is not None and scheduler_state is not None:
            scheduler.load_state_dict(scheduler_state)
        torch.set_rng_state(cpu_rng)
        random.setstate(python_rng)
        np.random.set_state(numpy_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def to_host(value: Any) -> Any:
    """A deep copy of an optimizer's state with its tensors in host memory."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: to_host(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_host(v) for v in value)
    return copy.deepcopy(value)
