"""``pkg.module:factory`` (or ``path/to/file.py:factory``): what ``trainperf calibrate``
calibrates.

The factory is called with no arguments and returns a map-style dataset, or a dict
with ``dataset`` and optionally ``collate_fn``, ``train_step`` and ``batch_size``.
Every way this can go wrong is a :class:`~trainperf.errors.UsageError` naming the
target and the fix.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

__all__ = ["Target", "load_target"]


@dataclass(frozen=True)
class Target:
    dataset: object
    collate_fn: Callable[..., object] | None = None
    train_step: Callable[[object], object] | None = None
    batch_size: int | None = None


def _module(name: str) -> ModuleType:
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"no such file: {path}; give an existing script or a module name")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise UsageError(f"cannot load {path} as Python")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))  # its own imports, as `python file` would
        if spec.name not in sys.modules:
            # Registered under its name, its classes pickle by reference and a spawn or
            # forkserver worker imports them from the same folder; a name already taken
            # (a file called json.py) is left to the module that has it.
            sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(name)


def load_target(text: str) -> Target:
    where, colon, attribute = text.rpartition(":")
    if not colon or not where or not attribute.isidentifier():
        raise UsageError(
            f"TARGET {text!r} must look like pkg.module:factory or path/to/file.py:factory"
        )
    try:
        module = _module(where)
    except UsageError:
        raise
    except Exception as exc:  # the user's module failed to import: say how, no traceback
        raise UsageError(f"cannot import {where}: {type(exc).__name__}: {exc}") from None
    factory = getattr(module, attribute, None)
    if factory is None or not callable(factory):
        raise UsageError(
            f"{where} has no callable {attribute!r}; name a function returning a dataset"
        )
    try:
        made = factory()
    except Exception as exc:
        raise UsageError(f"{text}() raised {type(exc).__name__}: {exc}") from None
    if isinstance(made, dict):
        if "dataset" not in made:
            raise UsageError(f"{text}() returned a dict without 'dataset'")
        batch = made.get("batch_size")
        if batch is not None and (not isinstance(batch, int) or batch < 1):
            raise UsageError(f"{text}() gave batch_size={batch!r}; it must be an integer >= 1")
        for name in ("collate_fn", "train_step"):
            if made.get(name) is not None and not callable(made[name]):
                raise UsageError(f"{text}() gave a {name} that is not callable")
        return Target(made["dataset"], made.get("collate_fn"), made.get("train_step"), batch)
    return Target(made)
