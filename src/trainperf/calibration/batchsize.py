"""``find_max_batch_size``: the largest batch a step runs without running out of memory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainperf.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from trainperf.resources import ResourceLimits

__all__ = ["find_max_batch_size"]


def find_max_batch_size(
    step: Callable[[int], object],
    *,
    start: int = 1,
    upper: int = 1 << 16,
    sample_bytes: int | None = None,
    limits: ResourceLimits | None = None,
    safety: float = 0.9,
) -> int:
    """The largest batch size ``step(batch_size)`` runs without running out of memory,
    times ``safety``.

    Doubles from ``start`` until a step fails with ``MemoryError`` or CUDA's
    out-of-memory error (or ``upper``, or the memory cap ``max_batch_bytes /
    sample_bytes`` when ``sample_bytes`` is given), then bisects between the last
    size that ran and the first that did not.
    """
    if not 0 < safety <= 1:
        raise UsageError(f"safety must be in (0, 1], got {safety!r}")
    if start < 1 or upper < start:
        raise UsageError(f"need 1 <= start <= upper, got start={start} upper={upper}")
    if sample_bytes is not None:
        from trainperf.resources import detect_resources

        cap = (limits or detect_resources(gpus=False)).max_batch_bytes
        if cap is not None and sample_bytes > 0:
            upper = max(start, min(upper, cap // sample_bytes))

    def fits(size: int) -> bool:
        try:
            step(size)
        except MemoryError:
            return False
        except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is one
            if "out of memory" not in str(exc).lower():
                raise
            _empty_cuda_cache()
            return False
        return True

    if not fits(start):
        raise UsageError(f"even batch size {start} runs out of memory; start lower")
    good, bad = start, None
    while bad is None and good < upper:
        size = min(good * 2, upper)
        if fits(size):
            good = size
        else:
            bad = size
    while bad is not None and bad - good > 1:
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return max(1, int(good * safety))


def _empty_cuda_cache() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
