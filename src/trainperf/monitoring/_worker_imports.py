"""Run first in a spawned DataLoader worker: times each module it imports.

The training process, while watched, prefixes the worker's ``-c`` command with the
execution of this file by path, so nothing of trainperf is imported in the worker
before the main module: only builtin modules are used here. Like ``python -X
importtime``, each module's exclusive time is its import less its own imports',
measured around importlib's ``_find_and_load`` (which every import statement and
``importlib.import_module`` call of a module not yet loaded goes through). The pairs
``(module, exclusive seconds)`` are left in ``sys._trainperf_imports`` for the worker
loop to read; the timer is removed when the worker loop begins.
"""

import sys
import time

_bootstrap = sys.modules["_frozen_importlib"]  # importlib._bootstrap, as the interpreter runs it


def _install() -> None:
    original = getattr(_bootstrap, "_find_and_load")  # noqa: B009
    clock = time.perf_counter
    recorded: list[tuple[str, float]] = []
    children: list[float] = []

    def _find_and_load(name: str, import_: object) -> object:
        began = clock()
        children.append(0.0)
        try:
            return original(name, import_)
        finally:
            took = clock() - began
            inner = children.pop()
            if children:
                children[-1] += took
            recorded.append((name, took - inner))

    def uninstall() -> None:
        setattr(_bootstrap, "_find_and_load", original)  # noqa: B010

    setattr(_bootstrap, "_find_and_load", _find_and_load)  # noqa: B010
    setattr(sys, "_trainperf_imports", recorded)  # noqa: B010  # read by the worker loop
    setattr(sys, "_trainperf_imports_off", uninstall)  # noqa: B010


_install()
del _install
