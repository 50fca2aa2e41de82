"""Deterministic fingerprints for the cache: of data, and of code by value.

``content_digest(value)`` hashes what a value *is*: numpy arrays and tensors by
dtype, shape and bytes; str, bytes, numbers, None; lists, tuples, dicts (keys
sorted), dataclasses and objects made of those, recursively. Anything else (an
open file, a lock, an object whose only identity is its address) is refused with a
:class:`~trainperf.errors.UsageError` naming the type and the way out (a ``key``
function returning what identifies the input): a fingerprint that changes from
run to run would make every lookup a miss, and one that does not change when the
input does would return wrong results.

``code_print(fn)`` fingerprints a function by value: its bytecode and constants,
the values it is bound to (``functools.partial`` arguments, closure cells, a bound
method's object), and, recursively, every function and class of *user code* it
refers to by name -- helpers in other modules included. Code from the standard
library and from installed packages is not hashed; the packages' versions are
recorded instead (numpy, pyclipper, opencv...).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import importlib.metadata
import inspect
import math
import os
import struct
import sys
import sysconfig
import types
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trainperf.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["CodePrint", "code_print", "content_digest"]

_MAX_DEPTH = 32


def _update(h: hashlib.blake2b, value: object, depth: int, path: str) -> None:
    if depth > _MAX_DEPTH:
        raise UsageError(f"cannot fingerprint {path}: nested more than {_MAX_DEPTH} levels deep")
    if value is None or isinstance(value, bool):
        h.update(b"N" if value is None else (b"T" if value else b"F"))
    elif isinstance(value, int):
        h.update(b"i" + str(value).encode() + b";")
    elif isinstance(value, float):
        h.update(b"f" + (b"nan" if math.isnan(value) else struct.pack("<d", value)))
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        h.update(b"s" + str(len(data)).encode() + b":" + data)
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        h.update(b"b" + str(len(data)).encode() + b":" + data)
    elif _is_array(value):
        import numpy as np

        array = np.ascontiguousarray(_to_numpy(value))
        if array.dtype.hasobject:
            raise UsageError(
                f"cannot fingerprint {path}: an array of Python objects; give a key= that "
                f"returns numbers, strings or arrays of numbers"
            )
        h.update(f"a{array.dtype.str}{array.shape};".encode())
        h.update(array.reshape(-1).view(np.uint8).data)
    elif isinstance(value, list | tuple):
        h.update(b"(" if isinstance(value, tuple) else b"[")
        for i, item in enumerate(value):
            _update(h, item, depth + 1, f"{path}[{i}]")
        h.update(b")")
    elif isinstance(value, dict):
        h.update(b"{")
        try:
            items = sorted(value.items(), key=lambda kv: repr(kv[0]))
        except TypeError:
            items = list(value.items())
        for key, item in items:
            _update(h, key, depth + 1, f"{path} key")
            _update(h, item, depth + 1, f"{path}[{key!r}]")
        h.update(b"}")
    elif isinstance(value, frozenset | set):
        h.update(b"<")
        for digest in sorted(content_digest(v) for v in value):
            h.update(digest.encode())
        h.update(b">")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(f"D{type(value).__qualname__};".encode())
        for f in dataclasses.fields(value):
            _update(h, f.name, depth + 1, path)
            _update(h, getattr(value, f.name), depth + 1, f"{path}.{f.name}")
    elif isinstance(value, types.FunctionType | functools.partial | types.MethodType):
        h.update(code_print(value).digest.encode())
    elif isinstance(value, os.PathLike):
        _update(h, os.fspath(value), depth + 1, path)
    elif isinstance(value, type):
        # A class by its name; a user class's code is part of code_print.
        h.update(f"C{value.__module__}.{value.__qualname__};".encode())
    elif isinstance(value, types.ModuleType):
        h.update(f"M{value.__name__};".encode())
    elif isinstance(value, enum.Enum):
        h.update(f"E{type(value).__qualname__}.{getattr(value, 'name', '')};".encode())
    elif _plain_object(value):
        h.update(f"O{type(value).__module__}.{type(value).__qualname__};".encode())
        _update(h, vars(value), depth + 1, path)
    else:
        raise UsageError(
            f"cannot fingerprint {path} of type {type(value).__qualname__} deterministically; "
            f"pass key= a function returning what identifies the input (a path, an id, "
            f"arrays) so that the cache never keys on an address or a random value"
        )


def _is_array(value: object) -> bool:
    module = type(value).__module__
    return (module == "numpy" and hasattr(value, "dtype") and hasattr(value, "shape")) or (
        module.startswith("torch") and hasattr(value, "numpy") and hasattr(value, "dtype")
    )


def _to_numpy(value: object) -> object:
    if type(value).__module__.startswith("torch"):
        return value.detach().cpu().numpy()  # type: ignore[attr-defined]
    return value


def _plain_object(value: object) -> bool:
    """An instance of a class of the user's code, holding its data in ``__dict__``."""
    return (
        hasattr(value, "__dict__")
        and not isinstance(value, type | types.ModuleType)
        and _user_module(type(value).__module__)
    )


def content_digest(value: object, *, what: str = "the input") -> str:
    """32 hex digits that identify ``value``'s content (see the module docstring)."""
    h = hashlib.blake2b(digest_size=16)
    _update(h, value, 0, what)
    return h.hexdigest()


# --- code -----------------------------------------------------------------------------


@functools.cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths.get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.add(sys.prefix)
    roots.add(sys.base_prefix)
    return tuple(sorted(r for r in roots if r))


def _user_module(name: str) -> bool:
    """Code of the user's project: not built in, not the standard library, not installed
    packages (an editable install of the user's own project counts as the user's)."""
    module = sys.modules.get(name)
    if module is None or name in sys.builtin_module_names:
        return False
    path = getattr(module, "__file__", None)
    if not path:
        return False
    if "site-packages" in path or "dist-packages" in path:
        return False
    return not any(
        path.startswith(root) for root in _library_roots() if "site-packages" not in root
    )


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _version(top: str) -> str | None:
    for dist in _distributions().get(top, []):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


@dataclass
class CodePrint:
    """What a function's results depend on, as code: a digest over all of it, the
    digest of each user-code function and class it reaches (to say which changed),
    the versions of the installed packages it uses, and its bound values."""

    digest: str = ""
    functions: dict[str, str] = field(default_factory=dict)
    libraries: dict[str, str] = field(default_factory=dict)
    params: str = ""


def _walk_code(code: types.CodeType) -> tuple[set[str], list[types.CodeType]]:
    names = set(code.co_names)
    nested = [c for c in code.co_consts if isinstance(c, types.CodeType)]
    for inner in nested:
        more, _ = _walk_code(inner)
        names |= more
    return names, nested


def _code_digest(code: types.CodeType) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(code.co_code)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            h.update(_code_digest(const).encode())
        else:
            h.update(repr(const).encode())
    h.update(repr(code.co_names).encode())
    h.update(repr(code.co_varnames).encode())
    return h.hexdigest()


def code_print(fn: Callable[..., object]) -> CodePrint:
    """Fingerprint ``fn`` by value (see the module docstring)."""
    out = CodePrint()
    bound: list[object] = []
    seen: set[int] = set()
    _visit(fn, out, bound, seen, depth=0)
    name = getattr(fn, "__qualname__", type(fn).__qualname__)
    out.params = content_digest(bound, what=f"the values {name} is bound to")
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(out.functions):
        h.update(f"{name}={out.functions[name]};".encode())
    out.digest = h.hexdigest()
    return out


def _visit(thing: object, out: CodePrint, bound: list[object], seen: set[int], depth: int) -> None:
    if id(thing) in seen or depth > _MAX_DEPTH:
        return
    seen.add(id(thing))
    wrapped = getattr(thing, "__wrapped__", None)
    if wrapped is not None and not isinstance(thing, type):
        # functools.wraps / lru_cache: the code that runs is the wrapped function's
        _visit(wrapped, out, bound, seen, depth + 1)
        if not inspect.isfunction(thing):
            return
    if isinstance(thing, functools.partial):
        bound.extend([list(thing.args), dict(thing.keywords)])
        _visit(thing.func, out, bound, seen, depth + 1)
        return
    if isinstance(thing, types.MethodType):
        bound.append(thing.__self__)
        _visit(thing.__func__, out, bound, seen, depth + 1)
        return
    if isinstance(thing, types.ModuleType):
        _library(thing.__name__, out)
        return
    if isinstance(thing, type):
        if not _user_module(thing.__module__):
            _library(thing.__module__, out)
            return
        out.functions[f"{thing.__module__}.{thing.__qualname__}"] = "class"
        for value in vars(thing).values():
            inner = value.__func__ if isinstance(value, classmethod | staticmethod) else value
            if inspect.isfunction(inner):
                _visit(inner, out, bound, seen, depth + 1)
        return
    if not inspect.isfunction(thing):
        if callable(thing) and _user_module(type(thing).__module__):
            bound.append(thing)  # a callable object: its state is a parameter
            _visit(type(thing), out, bound, seen, depth + 1)
        elif callable(thing):
            _library(getattr(thing, "__module__", "") or type(thing).__module__, out)
        return
    if not _user_module(thing.__module__):
        _library(thing.__module__, out)
        return
    code = thing.__code__
    out.functions[f"{thing.__module__}.{thing.__qualname__}"] = _code_digest(code)
    if thing.__defaults__:
        bound.append(list(thing.__defaults__))
    if thing.__kwdefaults__:
        bound.append(dict(thing.__kwdefaults__))
    if thing.__closure__:
        for cell in thing.__closure__:
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if callable(value) or isinstance(value, types.ModuleType):
                _visit(value, out, bound, seen, depth + 1)
            else:
                bound.append(value)
    names, _ = _walk_code(code)
    namespace = thing.__globals__
    for name in sorted(names):
        if name not in namespace:
            continue
        value = namespace[name]
        if isinstance(value, types.ModuleType):
            if _user_module(value.__name__):
                # module.attr: the attributes of a user module this code names
                for attr in sorted(names):
                    inner = getattr(value, attr, None)
                    if inspect.isfunction(inner) or isinstance(inner, type):
                        _visit(inner, out, bound, seen, depth + 1)
            else:
                _library(value.__name__, out)
        elif (
            inspect.isfunction(value)
            or isinstance(value, type | functools.partial)
            or callable(value)
        ):
            _visit(value, out, bound, seen, depth + 1)


def _library(module: str, out: CodePrint) -> None:
    top = module.split(".", 1)[0]
    if not top or top in sys.stdlib_module_names or top == "builtins":
        return
    version = _version(top)
    if version is not None:
        out.libraries[top] = version
