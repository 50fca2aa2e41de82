"""Evaluation without a DataLoader: grad-free regions that run a model again and again.

``torch.no_grad()`` and ``torch.inference_mode()`` get their ``__enter__`` and
``__exit__`` wrapped while monitoring (their decorator forms enter a fresh instance of
the same class on each call, so they are seen too). On the thread that started
monitoring, the outermost such region is watched: while it is open, ``Module._call_impl``
(what ``module(x)`` runs) is wrapped to count the root-level calls of each module (a
call made inside another module's forward is not root-level); during a root call the
original is back, so the modules the call runs are not slowed. Once one module has run
``REPEATS`` times the region is an evaluation and the wrapper is taken out; the
recorder decides what that makes of the region (:meth:`StepRecorder.region_ended`,
rules in :mod:`.capture`).

Not torch's global module hooks: with one registered, every module call takes torch's
slow path, calling a ``torch.compile``-d module warns, and TorchDynamo traces and
guards on the hooks. Calls dynamo compiles are not counted (a model compiled in place
with ``module.compile()`` is never seen): such an evaluation is missed, not mistaken.

Steps pay nothing where no region opens: the wrapper exists only inside a region. A
region costs a few microseconds; each root call until the decision, two more
attribute swaps.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import CodeType, FrameType

    from trainperf.monitoring.capture import StepRecorder

__all__ = ["REPEATS", "watch_grad_regions"]

# Root-level calls of one module that make a grad-free region an evaluation: one is a
# teacher's forward, a metric, an EMA model's check; evaluating runs it batch after batch.
REPEATS = 2
_METHODS = ("__enter__", "__exit__")


class _Regions:
    """The grad-free regions of one thread, and the root-level module calls inside the
    outermost one."""

    def __init__(self, recorder: StepRecorder) -> None:
        import torch
        from torch.utils.data.dataloader import _BaseDataLoaderIter

        self.recorder = recorder
        # A DataLoader's __next__ (torch's, not yet the monitor's): a region inside a
        # fetch (a collate_fn or dataset running a module per sample) is no evaluation.
        self.fetch: CodeType | None = getattr(_BaseDataLoaderIter.__next__, "__code__", None)
        self.module = torch.nn.Module
        self.original = torch.nn.Module.__dict__["_call_impl"]
        # Looked up at the first root call: monitoring may begin inside `import torch`
        # (with torch.optim), before torch.compiler exists.
        self.compiling: Callable[[], bool] | None = None
        self.thread = threading.get_ident()
        self.pid = os.getpid()  # a forked DataLoader worker inherits the wrappers
        self.depth = 0  # grad-free regions open on the thread
        self.watching = False  # the outermost one is being watched
        self.calls: dict[int, tuple[object, int]] = {}  # id -> (module, root-level calls)
        self.evaluated = False
        self.root_call = _root_call(self)

    def entered(self) -> None:
        if threading.get_ident() != self.thread or os.getpid() != self.pid:
            return
        self.depth += 1
        if self.depth == 1 and not self.recorder.suspended:
            self.watching, self.evaluated = True, False
            self.recorder.region_started()
            self.module._call_impl = self.root_call  # type: ignore[method-assign]

    def exited(self) -> None:
        if threading.get_ident() != self.thread or self.depth == 0:
            return  # a region entered before monitoring began
        self.depth -= 1
        if self.depth == 0:
            self.finish()

    def finish(self) -> None:
        if not self.watching:
            return
        self.watching = False
        self.module._call_impl = self.original  # type: ignore[method-assign]
        self.calls.clear()
        evaluated = self.evaluated and not _inside(self.fetch)
        self.recorder.region_ended(evaluated=evaluated)

    def counted(self, module: object) -> bool:
        """Count a root-level call of ``module``, with the original put back for its
        duration (whatever it calls runs unwatched); False when it is not ours to count."""
        if threading.get_ident() != self.thread or os.getpid() != self.pid:
            return False
        if self.is_compiling():
            return False
        self.module._call_impl = self.original  # type: ignore[method-assign]
        calls = self.calls.get(id(module), (module, 0))[1] + 1
        self.calls[id(module)] = (module, calls)  # the module is kept: its id stays its own
        if calls >= REPEATS:
            self.evaluated = True  # decided: the rest runs unwatched
        return True

    def is_compiling(self) -> bool:
        """TorchDynamo is tracing this call: not ours to count (nor to be traced)."""
        if self.compiling is None:
            import torch

            self.compiling = torch.compiler.is_compiling
        return self.compiling()

    def returned(self) -> None:
        if self.watching and not self.evaluated:
            self.module._call_impl = self.root_call  # type: ignore[method-assign]


def _root_call(regions: _Regions) -> Callable[..., Any]:
    """What ``Module._call_impl`` is inside a watched region, between root calls: a plain
    function, so that it binds to the module called."""
    original = regions.original

    def root_call(module: object, *args: Any, **kwargs: Any) -> Any:
        if not regions.counted(module):
            return original(module, *args, **kwargs)
        try:
            return original(module, *args, **kwargs)
        finally:
            regions.returned()

    return root_call


def _inside(code: CodeType | None) -> bool:
    """Whether a frame of ``code`` is on this thread's stack (looked for once a region
    is an evaluation: a walk up the stack, once per evaluation)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def watch_grad_regions(recorder: StepRecorder) -> Callable[[], None]:
    """Report the training thread's grad-free regions to ``recorder`` until the returned
    function is called, which puts torch's methods back as they were (and ends a region
    still open)::

        restore = watch_grad_regions(recorder)
        try:
            ...  # the monitored program
        finally:
            restore()
    """
    import torch

    regions = _Regions(recorder)
    saved: list[tuple[type, dict[str, Any]]] = []
    for cls in (torch.no_grad, torch.inference_mode):
        saved.append((cls, {name: cls.__dict__[name] for name in _METHODS if name in cls.__dict__}))
        _wrap(cls, regions)

    def restore() -> None:
        for cls, own in saved:
            for name in _METHODS:
                if name in own:
                    setattr(cls, name, own[name])
                else:
                    delattr(cls, name)
        regions.depth = 0
        regions.finish()

    return restore


def _wrap(cls: type, regions: _Regions) -> None:
    enter: Callable[[Any], None] = cls.__enter__  # type: ignore[attr-defined]  # torch's own
    leave: Callable[..., Any] = cls.__exit__  # type: ignore[attr-defined]

    # inference_mode(False) turns inference mode off: not a grad-free region.
    def entered(self: Any) -> None:
        enter(self)
        if getattr(self, "mode", True):
            regions.entered()

    def exited(self: Any, *exc: object) -> Any:
        try:
            return leave(self, *exc)
        finally:
            if getattr(self, "mode", True):
                regions.exited()

    cls.__enter__ = entered  # type: ignore[attr-defined]
    cls.__exit__ = exited  # type: ignore[attr-defined]
