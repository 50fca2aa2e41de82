"""What identifies a dataset for calibration: its class, size, samples and code.

A calibration is only reusable for the same data pipeline. The fingerprint holds the
dataset's class (module and qualified name), its length, the structure of its first
sample (types, shapes and dtypes, nested), and a hash of the source of the code
that produces samples: the dataset class's own methods and those of a ``transform``
or ``transforms`` attribute, plus the collate function. Editing ``__getitem__`` or
the transform makes a new fingerprint; new data of the same shapes does not (the
re-check on reuse catches a slower pipeline).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from trainperf._json import Json, JsonObject

__all__ = ["batch_nbytes", "dataset_fingerprint", "sample_structure"]

_MAX_DEPTH = 4
_MAX_ITEMS = 16


def sample_structure(sample: object, depth: int = 0) -> Json:
    """Types, shapes and dtypes of a sample (tensors, arrays, containers), as JSON."""
    shape = getattr(sample, "shape", None)
    dtype = getattr(sample, "dtype", None)
    if shape is not None and dtype is not None:
        return {"type": type(sample).__name__, "shape": list(shape), "dtype": str(dtype)}
    if depth >= _MAX_DEPTH:
        return type(sample).__name__
    if isinstance(sample, dict):
        items = list(sample.items())[:_MAX_ITEMS]
        return {str(k): sample_structure(v, depth + 1) for k, v in items}
    if isinstance(sample, list | tuple):
        return [sample_structure(v, depth + 1) for v in sample[:_MAX_ITEMS]]
    if isinstance(sample, bool | int | float | str) or sample is None:
        return type(sample).__name__
    return type(sample).__qualname__


def batch_nbytes(batch: object, depth: int = 0) -> int:
    """Bytes of the tensors and arrays in a (collated) batch."""
    nbytes = getattr(batch, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if hasattr(batch, "element_size") and hasattr(batch, "numel"):
        return int(batch.element_size() * batch.numel())
    if depth >= _MAX_DEPTH:
        return 0
    if isinstance(batch, dict):
        return sum(batch_nbytes(v, depth + 1) for v in batch.values())
    if isinstance(batch, list | tuple):
        return sum(batch_nbytes(v, depth + 1) for v in batch)
    return 0


def _function_code(function: object) -> str:
    try:
        return inspect.getsource(function)  # type: ignore[arg-type]  # a function
    except (OSError, TypeError):
        code = getattr(function, "__code__", None)
        return "" if code is None else f"{code.co_code!r}{code.co_consts!r}"


def _source(thing: object) -> str:
    """The code that makes ``thing`` behave: a function's source, or the methods of a
    class (and of its own base classes, not torch's or Python's) -- read from their
    files, so classes of modules loaded outside ``sys.modules`` are covered too."""
    if inspect.isroutine(thing):
        return _function_code(thing)
    kind = thing if inspect.isclass(thing) else type(thing)
    parts = []
    for klass in kind.__mro__:
        module = getattr(klass, "__module__", "")
        if module == "builtins" or module.split(".", 1)[0] in ("torch", "typing"):
            continue
        parts.append(f"class {module}.{klass.__qualname__}")
        for name, value in sorted(vars(klass).items()):
            target = value.__func__ if isinstance(value, classmethod | staticmethod) else value
            if inspect.isfunction(target):
                parts.append(f"{name}: {_function_code(target)}")
    return "\n".join(parts)


def dataset_fingerprint(
    dataset: object, collate_fn: Callable[..., object] | None = None
) -> tuple[str, JsonObject]:
    """A 16-hex-digit digest of the dataset's identity, and what it was computed from."""
    kind = type(dataset)
    try:
        length: int | None = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        length = None
    first = dataset[0] if length else None  # type: ignore[index]
    code = hashlib.sha256(_source(kind).encode())
    for name in ("transform", "transforms", "target_transform"):
        part = getattr(dataset, name, None)
        if part is not None:
            code.update(_source(part).encode())
    if collate_fn is not None:
        code.update(_source(collate_fn).encode())
    described: JsonObject = {
        "class": f"{kind.__module__}.{kind.__qualname__}",
        "length": length,
        "sample": sample_structure(first) if length else None,
        "code": code.hexdigest()[:16],
    }
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]
    return digest, described
