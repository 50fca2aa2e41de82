"""Make chosen import statements lazy, to measure what deferring them saves.

Used by ``trainperf imports --verify`` inside the probe: each chosen statement in
the user's files is rewritten to bind proxies that import on first use
(:func:`trainperf.lazy_import` for modules, an attribute proxy for
``from x import y``), and the files are compiled from the rewritten tree. Anything
that touches a proxy at import time imports the real module there, exactly as a
hand-deferred import would.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.abc
import importlib.machinery
import sys
from typing import TYPE_CHECKING, Any

from trainperf.lazy import lazy_import

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

__all__ = ["install", "rewrite"]

_LAZY = "__trainperf_lazy__"
_LAZY_ATTR = "__trainperf_lazy_attr__"


class _LazyAttribute:
    """``from module import name``, resolved on first use."""

    def __init__(self, module: str, name: str, package: str | None) -> None:
        self._where = (module, name, package)
        self._value: Any = None
        self._loaded = False

    def _resolve(self) -> Any:
        if not self._loaded:
            module, name, package = self._where
            loaded = importlib.import_module(module, package)
            try:
                self._value = getattr(loaded, name)
            except AttributeError:
                self._value = importlib.import_module(f"{loaded.__name__}.{name}")
            self._loaded = True
        return self._value

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return getattr(self._resolve(), attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve()(*args, **kwargs)

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[Any, ...]:
        return (self._resolve(),)

    def __getitem__(self, key: Any) -> Any:
        return self._resolve()[key]


def _lazy(name: str, bind: str) -> ModuleType:
    module = lazy_import(name)
    if bind == name:
        return module
    # "import a.b" binds "a" but must also import "a.b": load it on first use of "a".
    return _PackageProxy(name, bind)  # type: ignore[return-value]  # duck-typed module


class _PackageProxy:
    def __init__(self, full: str, top: str) -> None:
        self._names = (full, top)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        full, top = self._names
        importlib.import_module(full)
        return getattr(sys.modules[top], attr)


def rewrite(source: bytes, filename: str, lines: set[int]) -> ast.Module:
    """The module's syntax tree with the import statements on ``lines`` made lazy."""
    tree = ast.parse(source, filename)
    tree.body = _rewrite_body(tree.body, lines)
    return ast.fix_missing_locations(tree)


def _rewrite_body(body: Sequence[ast.stmt], lines: set[int]) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom) and node.lineno in lines:
            out.extend(_lazy_statements(node))
            continue
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(node, field, None)
            if isinstance(node, ast.If | ast.Try) and isinstance(inner, list):
                setattr(node, field, _rewrite_body(inner, lines) or [ast.Pass()])
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                handler.body = _rewrite_body(handler.body, lines) or [ast.Pass()]
        out.append(node)
    return out


def _call(func: str, *args: ast.expr) -> ast.Call:
    return ast.Call(ast.Name(func, ast.Load()), list(args), [])


def _lazy_statements(node: ast.Import | ast.ImportFrom) -> list[ast.stmt]:
    statements: list[ast.stmt] = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            bind = alias.asname or alias.name.split(".")[0]
            target_module = alias.name if alias.asname else alias.name.split(".")[0]
            value = _call(_LAZY, ast.Constant(alias.name), ast.Constant(target_module))
            statements.append(ast.Assign([ast.Name(bind, ast.Store())], value))
        return statements
    if any(alias.name == "*" for alias in node.names):
        return [node]  # a star import cannot be deferred
    module = "." * node.level + (node.module or "")
    package = ast.Name("__package__", ast.Load()) if node.level else ast.Constant(None)
    for alias in node.names:
        value = _call(_LAZY_ATTR, ast.Constant(module), ast.Constant(alias.name), package)
        statements.append(ast.Assign([ast.Name(alias.asname or alias.name, ast.Store())], value))
    return statements


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, lines: dict[str, set[int]]) -> None:
        self.lines = lines

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin not in self.lines:
            return None
        spec.loader = _Loader(fullname, spec.origin, self.lines[spec.origin])
        return spec


class _Loader(importlib.machinery.SourceFileLoader):
    def __init__(self, fullname: str, path: str, lines: set[int]) -> None:
        super().__init__(fullname, path)
        self.lines = lines

    def get_code(self, fullname: str) -> Any:  # never the cached bytecode of the original
        source = self.get_data(self.path)
        return compile(rewrite(source, self.path, self.lines), self.path, "exec")


def install(defer: Sequence[tuple[str, int]]) -> None:
    """Rewrite the listed statements of every user module loaded from now on."""
    lines: dict[str, set[int]] = {}
    for file, line in defer:
        lines.setdefault(file, set()).add(line)
    builtins.__dict__[_LAZY] = _lazy
    builtins.__dict__[_LAZY_ATTR] = _LazyAttribute
    sys.meta_path.insert(0, _Finder(lines))
