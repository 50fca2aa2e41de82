"""``LoaderConfig``: every knob of an input pipeline in one validated, frozen value.

    config = LoaderConfig(batch_size=64, num_workers=2, main_threads=1, worker_threads=1)
    loader = DataLoader(dataset, **config.loader_kwargs())
    with config.threads():          # the main process's torch threads, restored on exit
        train(loader)

Rules (checked at construction; each message names the value and the fix):
``batch_size > 0``; ``num_workers >= 0``; ``prefetch_factor``,
``persistent_workers`` and ``multiprocessing_context`` only with workers (DataLoader
rejects or ignores them otherwise); ``multiprocessing_context`` one of ``fork``,
``forkserver``, ``spawn``; thread counts >= 1 when given. ``loader_kwargs()`` sets
``prefetch_factor``, ``persistent_workers`` and ``multiprocessing_context`` only when
there are workers, and a picklable ``worker_init_fn`` that applies ``worker_threads``
in each worker; ``as_code()`` writes the same as the call a user pastes.

The start method (``multiprocessing_context``) decides what a worker's start-up costs.
``fork`` copies this process as it is: quick, nothing pickled or imported again.
``spawn`` starts a fresh interpreter that imports the main module and torch and
unpickles the dataset (and ``collate_fn``, ``worker_init_fn``); ``forkserver`` forks
each worker from a server process, which saves the interpreter's start but still
pickles the dataset and imports what it needs. Without ``persistent_workers`` that
start-up is paid again at every epoch. Python 3.14 made ``forkserver`` the default
start method on Linux (``fork`` stays available), so a loader that started quickly
under 3.13 may start slowly, or fail on a dataset that cannot be pickled, after an
upgrade: the calibration measures the start methods and its advice names the one
it measured.

What each thread knob does, and nothing more (a calibration measures exactly this,
so a measured gain is the gain of the advice as the user writes it):

* ``main_threads``: ``torch.set_num_threads`` in the main process (``threads()``).
  BLAS pools are not touched: a limit there would be copied into every worker the
  loader forks while it holds, a setting the advice never tells the user to make.
  DataLoader sets one torch thread in each worker, so the main process's torch
  setting never reaches a worker.
* ``interop_threads``: ``torch.set_num_interop_threads`` in the main process, where
  torch still allows it.
* ``worker_threads``: in each worker, through the ``worker_init_fn`` of
  ``loader_kwargs()`` (:class:`WorkerThreads`), torch's threads and every BLAS/OpenMP
  pool (threadpoolctl). Unset, a worker keeps what any DataLoader worker gets: one
  torch thread, and the BLAS pools the process had when it forked (or starts with,
  under ``spawn``) -- often one thread per CPU in every worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from trainperf._json import as_object, opt_int, opt_str, req_int
from trainperf.errors import RecordError, UsageError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trainperf._json import JsonObject

__all__ = ["START_METHODS", "LoaderConfig", "StartMethod", "WorkerThreads", "torch_threads"]

StartMethod = Literal["fork", "forkserver", "spawn"]
START_METHODS: tuple[StartMethod, ...] = ("fork", "forkserver", "spawn")


@dataclass(frozen=True, kw_only=True)
class LoaderConfig:
    batch_size: int
    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    prefetch_factor: int | None = None
    # The main process: torch intra-op threads (torch.set_num_threads) and inter-op
    # threads (torch.set_num_interop_threads, settable only before parallel work starts).
    main_threads: int | None = None
    interop_threads: int | None = None
    # Each worker's torch threads and BLAS/OpenMP pools (its worker_init_fn); unset,
    # DataLoader's one torch thread and whatever BLAS pools the process had.
    worker_threads: int | None = None
    # How the workers are started; None: multiprocessing's default (see the module).
    multiprocessing_context: StartMethod | None = None

    def __post_init__(self) -> None:
        _positive("batch_size", self.batch_size)
        workers = self.num_workers
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
            raise UsageError(
                f"num_workers must be an integer >= 0, got {self.num_workers!r}; "
                f"0 loads in the training process"
            )
        if self.prefetch_factor is not None:
            _positive("prefetch_factor", self.prefetch_factor)
            if self.num_workers == 0:
                raise UsageError(
                    f"prefetch_factor={self.prefetch_factor} needs worker processes; "
                    f"set num_workers > 0 or leave prefetch_factor unset"
                )
        if self.persistent_workers and self.num_workers == 0:
            raise UsageError(
                "persistent_workers=True needs worker processes; set num_workers > 0 "
                "or persistent_workers=False"
            )
        for name in ("main_threads", "interop_threads", "worker_threads"):
            value = getattr(self, name)
            if value is not None:
                _positive(name, value)
        method = self.multiprocessing_context
        if method is not None:
            if method not in START_METHODS:
                raise UsageError(
                    f"multiprocessing_context must be one of {', '.join(START_METHODS)}, "
                    f"got {method!r}"
                )
            if self.num_workers == 0:
                raise UsageError(
                    f"multiprocessing_context={method!r} needs worker processes; set "
                    f"num_workers > 0 or leave multiprocessing_context unset"
                )
        if self.worker_threads is not None and self.num_workers == 0:
            raise UsageError(
                f"worker_threads={self.worker_threads} needs worker processes; set "
                f"num_workers > 0 or leave worker_threads unset"
            )

    def replace(self, **changes: object) -> LoaderConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]  # validated again

    def loader_kwargs(self) -> dict[str, object]:
        """Keyword arguments for ``torch.utils.data.DataLoader``."""
        kwargs: dict[str, object] = {
            "batch_size": self.batch_size,
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
        }
        if self.num_workers > 0:
            kwargs["persistent_workers"] = self.persistent_workers
            if self.prefetch_factor is not None:
                kwargs["prefetch_factor"] = self.prefetch_factor
            if self.worker_threads is not None:
                kwargs["worker_init_fn"] = WorkerThreads(self.worker_threads)
            if self.multiprocessing_context is not None:
                kwargs["multiprocessing_context"] = self.multiprocessing_context
        return kwargs

    def as_code(self, dataset: str = "dataset") -> str:
        """The ``DataLoader(...)`` call these settings make, to paste, and the thread
        setting of the training process when there is one::

            DataLoader(dataset, batch_size=64, num_workers=2, prefetch_factor=2,
                       persistent_workers=True, multiprocessing_context="forkserver")
        """
        parts = [dataset, f"batch_size={self.batch_size}", f"num_workers={self.num_workers}"]
        if self.num_workers:
            parts.append(f"prefetch_factor={self.prefetch_factor or 2}")
            parts.append(f"persistent_workers={self.persistent_workers}")
            if self.multiprocessing_context is not None:
                parts.append(f'multiprocessing_context="{self.multiprocessing_context}"')
            if self.worker_threads is not None:
                parts.append(
                    f"worker_init_fn=trainperf.calibration.config.WorkerThreads("
                    f"{self.worker_threads})"
                )
        if self.pin_memory:
            parts.append("pin_memory=True")
        code = f"DataLoader({', '.join(parts)})"
        if self.main_threads is not None:
            code += f"; torch.set_num_threads({self.main_threads}) in the training process"
        return code

    def threads(self) -> contextlib.AbstractContextManager[None]:
        """The main process's torch threads, for the ``with`` block (restored after);
        BLAS pools and the workers are left alone (see the module)."""
        return torch_threads(self.main_threads, self.interop_threads)

    def describe(self) -> str:
        parts = [f"batch_size={self.batch_size}", f"num_workers={self.num_workers}"]
        if self.num_workers:
            parts.append(f"prefetch_factor={self.prefetch_factor or 2}")
            parts.append(f"persistent_workers={self.persistent_workers}")
            if self.multiprocessing_context is not None:
                parts.append(f"multiprocessing_context={self.multiprocessing_context}")
        if self.pin_memory:
            parts.append("pin_memory=True")
        for name in ("main_threads", "interop_threads", "worker_threads"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value}")
        return " ".join(parts)

    def to_json(self) -> JsonObject:
        return {
            "batch_size": self.batch_size,
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.persistent_workers,
            "prefetch_factor": self.prefetch_factor,
            "main_threads": self.main_threads,
            "interop_threads": self.interop_threads,
            "worker_threads": self.worker_threads,
            "multiprocessing_context": self.multiprocessing_context,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> LoaderConfig:
        data = as_object(data, "a loader configuration")
        try:
            return cls(
                batch_size=req_int(data, "batch_size"),
                num_workers=req_int(data, "num_workers"),
                pin_memory=data.get("pin_memory") is True,
                persistent_workers=data.get("persistent_workers") is True,
                prefetch_factor=opt_int(data, "prefetch_factor"),
                main_threads=opt_int(data, "main_threads"),
                interop_threads=opt_int(data, "interop_threads"),
                worker_threads=opt_int(data, "worker_threads"),
                # Absent in records from before start methods were measured: the default.
                multiprocessing_context=opt_str(data, "multiprocessing_context"),  # type: ignore[arg-type]  # checked in __post_init__
            )
        except UsageError as exc:
            raise RecordError(f"invalid loader configuration: {exc}") from None


def _positive(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UsageError(f"{name} must be an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class WorkerThreads:
    """A ``worker_init_fn`` giving each DataLoader worker ``threads`` intra-op threads
    (and the same limit to BLAS/OpenMP pools). A class, not a closure: it pickles for
    spawned workers."""

    threads: int

    def __call__(self, worker_id: int) -> None:
        import torch

        torch.set_num_threads(self.threads)
        from threadpoolctl import threadpool_limits

        threadpool_limits(self.threads)  # the worker's own process: no need to restore


@contextlib.contextmanager
def torch_threads(intra: int | None, interop: int | None = None) -> Iterator[None]:
    """Set torch's intra-op threads (``torch.set_num_threads``) for the block, restored
    on exit even when the block raises. BLAS pools are not limited: a DataLoader forking
    its workers inside the block would copy the limit into them.

    Inter-op threads can only be set before the process starts parallel work and
    never changed back, so ``interop`` is applied only when torch still allows it
    (a fresh process) and is otherwise left as it is.
    """
    import torch

    if interop is not None:
        with contextlib.suppress(RuntimeError):  # parallel work already started
            torch.set_num_interop_threads(interop)
    if intra is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(intra)
    try:
        yield
    finally:
        torch.set_num_threads(before)
