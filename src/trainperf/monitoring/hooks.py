"""The hooks that feed the recorder, installed for the duration of a ``with`` block.

* every DataLoader iterator's ``__next__`` (one class attribute, so all loaders,
  any worker count) -- timed, and the batch's size inferred;
* with an ``audit``, its ``_next_index`` too: every index list the sampler yields, for
  the input audit (:mod:`.sample_audit`);
* torch's global optimizer post-step hook (every optimizer, no reference needed);
* ``Tensor.backward``, for loops that update weights without an optimizer;
* ``torch.no_grad`` and ``torch.inference_mode`` (entering and leaving), for
  evaluation loops without a DataLoader (:mod:`.regions`);
* with CUDA in use, two CUDA events per step (:class:`CudaTimer`), read back with
  ``query()`` steps later, never waited for until the run ends; and per epoch the
  peaks of CUDA memory allocated and reserved (the peak counters are reset at each
  epoch, so a program reading them itself sees per-epoch peaks too).

Everything is restored on exit, even when the block raises; tests check
before == after. Cost per step: a few clock reads and calls (see
``benchmarks/monitor_overhead.py``).
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from trainperf.monitoring.capture import StepRecorder
    from trainperf.monitoring.sample_audit import SampleRecorder

__all__ = ["CudaTimer", "LoaderSeen", "batch_size", "batch_tokens", "instrument"]

# How deep to look into nested batches (dicts of lists of tensors...) for a size.
_MAX_DEPTH = 4


def batch_size(batch: object, depth: int = 0) -> int | None:
    """The length of the first tensor found in a batch, else ``None``."""
    shape = getattr(batch, "shape", None)
    if shape is not None and hasattr(batch, "dim"):
        return int(shape[0]) if len(shape) else None
    if depth >= _MAX_DEPTH:
        return None
    if isinstance(batch, dict):
        items: Any = batch.values()
    elif isinstance(batch, list | tuple):
        items = batch
    elif hasattr(batch, "__dict__"):
        items = vars(batch).values()
    else:
        return None
    for item in items:
        found = batch_size(item, depth + 1)
        if found is not None:
            return found
    return None


def batch_tokens(batch: object) -> int | None:
    """Tokens in a language-model batch: a mapping (a dict, a ``BatchEncoding``) with an
    ``attention_mask`` counts its ones, else with ``input_ids`` its elements; ``None`` for
    any other batch. The mask is summed where the loader hands it over (host memory,
    before any copy to a device), so counting never waits for a GPU."""
    get = getattr(batch, "get", None)
    if not callable(get):
        return None
    mask = get("attention_mask")
    if mask is not None and hasattr(mask, "sum") and hasattr(mask, "dim"):
        return int(mask.sum())
    ids = get("input_ids")
    numel = getattr(ids, "numel", None)
    return int(numel()) if callable(numel) else None


@dataclass(frozen=True)
class LoaderSeen:
    """What a DataLoader iterator tells of its loader: enough to build it again."""

    dataset: object
    collate_fn: Callable[..., object] | None
    batch_size: int | None  # None: batching off (batch_size=None) or a custom sampler
    drop_last: bool
    num_workers: int
    prefetch_factor: int | None
    pin_memory: bool
    worker_init_fn: Callable[[int], None] | None = None
    persistent_workers: bool = False
    start_method: str | None = None  # how its workers were started; None: no workers

    @classmethod
    def of(cls, iterator: Any) -> LoaderSeen:
        sampler = getattr(iterator, "_index_sampler", None)
        size = getattr(sampler, "batch_size", None)
        workers = getattr(iterator, "_workers", None) or [None]
        method = getattr(workers[0], "_start_method", None)  # multiprocessing's Process
        return cls(
            dataset=iterator._dataset,
            collate_fn=getattr(iterator, "_collate_fn", None),
            batch_size=int(size) if size and getattr(iterator, "_auto_collation", False) else None,
            drop_last=bool(getattr(sampler, "drop_last", False)),
            num_workers=int(getattr(iterator, "_num_workers", 0)),
            prefetch_factor=_int_or_none(getattr(iterator, "_prefetch_factor", None)),
            pin_memory=bool(getattr(iterator, "_pin_memory", False)),
            worker_init_fn=getattr(iterator, "_worker_init_fn", None),
            persistent_workers=bool(getattr(iterator, "_persistent_workers", False)),
            start_method=method if isinstance(method, str) else None,
        )


def _int_or_none(value: object) -> int | None:
    """An int (numpy's too) as a plain int, for JSON; anything else as None."""
    index = getattr(value, "__index__", None)
    return int(index()) if callable(index) else None


class CudaTimer:
    """CUDA events on the current stream, once the program has initialised CUDA."""

    def __init__(self) -> None:
        import torch

        self._cuda = torch.cuda

    def mark(self) -> object | None:
        if not self._cuda.is_initialized():  # type: ignore[no-untyped-call]  # unannotated in torch
            return None
        event = self._cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        event.record()
        return event

    def elapsed(self, start: object, end: object) -> float | None:
        if not end.query():  # type: ignore[attr-defined]  # a torch.cuda.Event
            return None
        seconds: float = start.elapsed_time(end) / 1000  # type: ignore[attr-defined]
        return seconds

    def wait(self, end: object) -> None:
        end.synchronize()  # type: ignore[attr-defined]

    def epoch_memory(self) -> tuple[int, int] | None:
        """Peak CUDA memory (allocated, reserved) since the last call, then reset."""
        if not self._cuda.is_initialized():  # type: ignore[no-untyped-call]  # unannotated in torch
            return None
        peaks = (self._cuda.max_memory_allocated(), self._cuda.max_memory_reserved())
        self._cuda.reset_peak_memory_stats()
        return peaks


def _new_pass(iterator: object) -> None:
    """``iter(loader)`` with ``persistent_workers=True`` returns the same iterator, reset
    (``_reset``: ``_num_yielded`` back to 0): its first fetch of a pass gets a new
    serial, so a new epoch, as a new iterator would."""
    if getattr(iterator, "_num_yielded", None) == 0:
        vars(iterator).pop("_trainperf_serial", None)


@contextlib.contextmanager
def instrument(
    recorder: StepRecorder, clock: Callable[[], float], audit: SampleRecorder | None = None
) -> Iterator[None]:
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from torch.utils.data.dataloader import _BaseDataLoaderIter, _MultiProcessingDataLoaderIter

    from trainperf.monitoring.regions import watch_grad_regions

    original_next = _BaseDataLoaderIter.__next__
    original_workers_init = _MultiProcessingDataLoaderIter.__init__
    original_next_index = _BaseDataLoaderIter._next_index
    serials = itertools.count(1)

    def serial(iterator: _BaseDataLoaderIter) -> int:
        # Not id(): CPython hands a freed iterator's address to the next epoch's.
        number: int | None = getattr(iterator, "_trainperf_serial", None)
        if number is None:
            number = next(serials)
            iterator._trainperf_serial = number  # type: ignore[attr-defined]
            if recorder.loaders is not None:
                recorder.loaders.setdefault(id(iterator._dataset), LoaderSeen.of(iterator))
        return number

    original_backward = torch.Tensor.backward
    timer = CudaTimer() if torch.cuda.is_available() else None
    recorder.device = timer
    epoch = [recorder.epoch]

    def epoch_memory() -> None:
        peaks = None if timer is None else timer.epoch_memory()
        if peaks is not None:
            recorder.device_memory[epoch[0]] = peaks
        epoch[0] = recorder.epoch

    def timed_next(self: _BaseDataLoaderIter) -> Any:
        if recorder.suspended:
            return original_next(self)
        if recorder.at_fetch is not None:
            recorder.at_fetch()
        _new_pass(self)
        started = clock()
        try:
            batch = original_next(self)
        except StopIteration:
            recorder.fetched(id(self._dataset), serial(self), started, clock(), None)
            raise
        except Exception:
            serial(self)  # a loader whose first fetch fails (a worker killed) is still seen
            if audit is not None:
                audit.failed(self)  # the batch it was building is not the next one's
            raise
        ended = clock()
        if audit is not None:
            audit.consumed(self, batch, recorder.train_loader)  # not counted as data wait
        recorder.fetched(
            id(self._dataset), serial(self), started, ended, batch_size(batch), batch_tokens(batch)
        )
        if timer is not None and recorder.epoch != epoch[0]:
            epoch_memory()
        return batch

    def seen_workers_init(self: _MultiProcessingDataLoaderIter, loader: Any) -> None:
        # Workers that die while iter(loader) still prefetches (a worker killed by SIGBUS
        # when /dev/shm is full) raise from here, before any fetch: the loader is seen now.
        try:
            original_workers_init(self, loader)
        finally:
            seen = recorder.loaders
            if seen is not None and not recorder.suspended and hasattr(self, "_dataset"):
                seen.setdefault(id(self._dataset), LoaderSeen.of(self))

    def audited_next_index(self: _BaseDataLoaderIter) -> Any:
        index = original_next_index(self)  # type: ignore[no-untyped-call]  # unannotated in torch
        if audit is not None and not recorder.suspended:
            audit.dispatched(self, index)
        return index

    def counted_backward(self: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        if recorder.suspended:
            original_backward(self, *args, **kwargs)  # type: ignore[no-untyped-call]
            return
        recorder.backward_started()
        original_backward(self, *args, **kwargs)  # type: ignore[no-untyped-call]  # unannotated in torch
        recorder.backward()

    def after_step(*_: object) -> None:
        if not recorder.suspended:
            recorder.optimizer_step()

    restore_regions = watch_grad_regions(recorder)  # first: it may fail, nothing to undo
    _BaseDataLoaderIter.__next__ = timed_next  # type: ignore[method-assign]
    _MultiProcessingDataLoaderIter.__init__ = seen_workers_init  # type: ignore[method-assign]
    if audit is not None:
        _BaseDataLoaderIter._next_index = audited_next_index  # type: ignore[method-assign]
    torch.Tensor.backward = counted_backward  # type: ignore[method-assign]
    handle = register_optimizer_step_post_hook(after_step)
    try:
        yield
    finally:
        epoch_memory()
        handle.remove()
        restore_regions()
        torch.Tensor.backward = original_backward  # type: ignore[method-assign]
        _BaseDataLoaderIter.__next__ = original_next  # type: ignore[method-assign]
        _MultiProcessingDataLoaderIter.__init__ = original_workers_init  # type: ignore[method-assign]
        _BaseDataLoaderIter._next_index = original_next_index  # type: ignore[method-assign]
