"""``lazy_import``: a module that is imported on first use, not at the import line.

    torch = trainperf.lazy_import("torch")   # costs microseconds
    ...
    x = torch.zeros(3)                        # torch is imported here, once

The proxy is thread-safe (the first use may come from a DataLoader or pin-memory
thread), pickles by name (so spawned DataLoader workers get a proxy of their own),
and an import that fails on first use names both the line that declared the lazy
import and the line that used it. ``TRAINPERF_EAGER_IMPORTS=1`` makes every lazy
import eager, for tests that want import errors up front.

What a proxy cannot do: ``isinstance(proxy, SomeType)`` checks the proxy, not the
module; ``from proxy import name`` is not possible (import the module lazily and use
``proxy.name``); and ``class Model(proxy.nn.Module)`` at module level imports the
module right there, as any attribute access does -- deferring such a line saves
nothing.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from typing import Any

from trainperf.settings import eager_imports

__all__ = ["LazyModule", "lazy_import"]


def _site(depth: int) -> str:
    frame = sys._getframe(depth + 1)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


class LazyModule(types.ModuleType):
    """Stands in for a module until an attribute is first read."""

    def __init__(self, name: str, *, declared_at: str) -> None:
        super().__init__(name)
        # Plain attributes on the proxy itself; everything else goes to the module.
        object.__setattr__(self, "_lazy_declared_at", declared_at)
        object.__setattr__(self, "_lazy_module", None)
        object.__setattr__(self, "_lazy_lock", threading.RLock())

    def _lazy_load(self, used_at: str) -> types.ModuleType:
        module: types.ModuleType | None = self.__dict__["_lazy_module"]
        if module is not None:
            return module
        with self.__dict__["_lazy_lock"]:
            module = self.__dict__["_lazy_module"]
            if module is None:
                try:
                    module = importlib.import_module(self.__name__)
                except ImportError as exc:
                    raise ImportError(
                        f"lazy import of {self.__name__!r} (declared at "
                        f"{self.__dict__['_lazy_declared_at']}) failed on first use at "
                        f"{used_at}: {exc}"
                    ) from exc
                object.__setattr__(self, "_lazy_module", module)
        return module

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__") and attr not in ("__version__",):
            raise AttributeError(attr)
        return getattr(self._lazy_load(_site(1)), attr)

    def __setattr__(self, attr: str, value: object) -> None:
        setattr(self._lazy_load(_site(1)), attr, value)

    def __dir__(self) -> list[str]:
        return dir(self._lazy_load(_site(1)))

    def __repr__(self) -> str:
        state = "loaded" if self.__dict__["_lazy_module"] is not None else "not loaded yet"
        return f"<lazy module {self.__name__!r} ({state})>"

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (lazy_import, (self.__name__,))


def lazy_import(name: str) -> types.ModuleType:
    """A proxy for module ``name`` that imports it on first attribute access.

    Returns the module itself when it is already imported, or when
    ``TRAINPERF_EAGER_IMPORTS=1`` is set.
    """
    loaded = sys.modules.get(name)
    if loaded is not None and not isinstance(loaded, LazyModule):
        return loaded
    if eager_imports():
        return importlib.import_module(name)
    return LazyModule(name, declared_at=_site(1))
