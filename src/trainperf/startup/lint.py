"""``trainperf lint-imports``: heavy module-level imports in entry points, found statically.

Nothing of the user's code runs. From each entry file, module-level imports are
followed through the user's own modules (resolved to files under the project; the
rest are third-party packages). A finding is a module-level import of a heavy
package -- one whose import alone costs at least the threshold in this environment
(see :mod:`.costs`) -- that could be deferred: its names are only used inside
functions, and no module-level code of the entry point needs the package anyway.
The suggestion names the first function that uses it.

Not findings: imports under ``if TYPE_CHECKING:`` and inside functions (already
deferred); imports inside ``try: ... except ImportError:`` (they test whether a
package is installed, which only an import can do; they are listed as notes); names
used at module level (decorators, base classes, module-level calls) and packages
those already load; packages allowed in ``[tool.trainperf.lint-imports] allow``.
"""

from __future__ import annotations

import ast
import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trainperf.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from trainperf._json import JsonObject
    from trainperf.startup.costs import PackageInfo

__all__ = ["DEFAULT_THRESHOLD_S", "Finding", "LintResult", "lint_imports"]

DEFAULT_THRESHOLD_S = 0.1


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    module: str
    cost_s: float
    chain: tuple[str, ...]  # entry file, the user modules in between, this file
    suggestion: str


@dataclass(frozen=True)
class LintResult:
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]
    threshold_s: float

    def to_json(self) -> JsonObject:
        """``trainperf lint-imports --json``."""
        from trainperf._schema import LINT_IMPORTS

        return {
            "schema_version": LINT_IMPORTS.version,
            "threshold_s": self.threshold_s,
            "findings": [
                {
                    "file": f.file,
                    "line": f.line,
                    "module": f.module,
                    "cost_s": f.cost_s,
                    "chain": list(f.chain),
                    "suggestion": f.suggestion,
                }
                for f in self.findings
            ],
            "notes": list(self.notes),
        }


@dataclass
class _Import:
    file: Path
    line: int
    module: str  # absolute dotted name
    names: tuple[str, ...]  # names it binds
    guarded: bool  # inside try/except ImportError
    submodules: tuple[str, ...] = ()  # "from pkg import mod": pkg.mod, which may be a module


@dataclass
class _Module:
    path: Path
    imports: list[_Import] = field(default_factory=list)
    module_level_names: set[str] = field(default_factory=set)
    first_use: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (def, line)


def lint_imports(
    paths: Iterable[Path],
    *,
    cost_of: Callable[[str], PackageInfo],
    threshold_s: float = DEFAULT_THRESHOLD_S,
    allow: Iterable[str] = (),
) -> LintResult:
    if not (math.isfinite(threshold_s) and threshold_s > 0):
        raise UsageError(f"--threshold must be a positive number of seconds, got {threshold_s}")
    linter = _Linter(cost_of, threshold_s, set(allow))
    for entry in _expand(paths):
        linter.check(entry)
    unique = {(f.file, f.line, f.module): f for f in linter.findings}
    ordered = sorted(unique.values(), key=lambda f: (-f.cost_s, f.file, f.line))
    return LintResult(tuple(ordered), tuple(dict.fromkeys(linter.notes)), threshold_s)


class _Linter:
    def __init__(
        self, cost_of: Callable[[str], PackageInfo], threshold_s: float, allowed: set[str]
    ) -> None:
        self.cost_of = cost_of
        self.threshold_s = threshold_s
        self.allowed = allowed
        self.findings: list[Finding] = []
        self.notes: list[str] = []

    def _third_party(self, module: str) -> str | None:
        package = module.split(".", 1)[0]
        if package in sys.stdlib_module_names or package in self.allowed:
            return None
        return package

    def check(self, entry: Path) -> None:
        root = _project_root(entry)
        parsed: dict[Path, _Module] = {}

        def module_at(path: Path) -> _Module:
            if path not in parsed:
                parsed[path] = _parse(path, root)
            return parsed[path]

        def resolve(name: str) -> Path | None:
            return _resolve(name, root, entry.parent)

        def user_targets(imported: _Import) -> list[Path]:
            found = [resolve(n) for n in (imported.module, *imported.submodules)]
            return [p for p in found if p is not None]

        def deferrable(module: _Module, imported: _Import) -> bool:
            return not imported.guarded and not set(imported.names) & module.module_level_names

        # The user modules the entry cannot avoid loading, and the packages they need:
        # imports whose names module-level code uses (or that test for a package).
        unavoidable: dict[Path, Path | None] = {entry: None}
        required: set[str] = set()
        queue = [entry]
        while queue:
            path = queue.pop(0)
            module = module_at(path)
            for imported in module.imports:
                if deferrable(module, imported):
                    continue
                targets = user_targets(imported)
                for target in targets:
                    if target not in unavoidable:
                        unavoidable[target] = path
                        queue.append(target)
                if not targets and (package := self._third_party(imported.module)) is not None:
                    required |= {package, *self.cost_of(package).loads}

        closure: dict[Path, set[str]] = {}

        def heavy_of(path: Path, seen: frozenset[Path] = frozenset()) -> set[str]:
            """Packages importing the user module at ``path`` loads, as written today."""
            if path in closure:
                return closure[path]
            found: set[str] = set()
            for imported in module_at(path).imports:
                targets = user_targets(imported)
                for target in targets:
                    if target not in seen:
                        found |= heavy_of(target, seen | {path})
                if not targets and (package := self._third_party(imported.module)) is not None:
                    found |= {package, *self.cost_of(package).loads}
            closure[path] = found
            return found

        for path in unavoidable:
            module = module_at(path)
            chain = self._chain(path, unavoidable, root)
            for imported in module.imports:
                self._judge(
                    module,
                    imported,
                    chain,
                    root,
                    required,
                    user_targets(imported),
                    heavy_of,
                    deferrable(module, imported),
                )

    def _judge(
        self,
        module: _Module,
        imported: _Import,
        chain: tuple[str, ...],
        root: Path,
        required: set[str],
        targets: list[Path],
        heavy_of: Callable[[Path], set[str]],
        can_defer: bool,
    ) -> None:
        if targets:
            packages = set().union(*(heavy_of(t) for t in targets))
        elif (package := self._third_party(imported.module)) is not None:
            packages = {package}
        else:
            return
        # A guarded import runs whatever happens, so it is judged on all it loads.
        candidates = packages if imported.guarded else packages - required
        costs = {p: self.cost_of(p).cost_s for p in candidates}
        heavy = sorted((p for p in costs if costs[p] >= self.threshold_s), key=lambda p: -costs[p])
        if not heavy:
            return
        where = f"{_show(module.path, root)}:{imported.line}"
        listed = ", ".join(f"{p} ({costs[p]:.2f} s)" for p in heavy[:4])
        if imported.guarded:
            self.notes.append(
                f"{where}: {imported.module} kept eager although it loads {listed}: it sits in "
                f"try/except ImportError, which tests whether a package is installed, and "
                f"only an import can do that"
            )
            return
        if not can_defer:
            return  # module-level code needs it: not a one-line fix
        use = [module.first_use[n] for n in imported.names if n in module.first_use]
        if use:
            function, line = min(use, key=lambda u: u[1])
            fix = f"move the import into {function}() (first use, line {line})"
        else:
            fix = "nothing at module level uses it: import it where it is needed, or drop it"
        via = f" loads {listed};" if targets else ""
        self.findings.append(
            Finding(
                file=_show(module.path, root),
                line=imported.line,
                module=imported.module,
                cost_s=costs[heavy[0]],
                chain=chain,
                suggestion=f"{via} {fix}".strip(),
            )
        )

    @staticmethod
    def _chain(path: Path, parents: dict[Path, Path | None], root: Path) -> tuple[str, ...]:
        out: list[str] = []
        cursor: Path | None = path
        while cursor is not None:
            out.append(_show(cursor, root))
            cursor = parents.get(cursor)
        return tuple(out[::-1])


def _expand(paths: Iterable[Path]) -> Iterable[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p.resolve() for p in path.rglob("*.py"))
        elif path.is_file():
            yield path.resolve()
        else:
            raise UsageError(f"no such file or folder: {path}; give entry-point scripts or folders")


def _project_root(entry: Path) -> Path:
    from trainperf.startup.probe import project_root

    return project_root(entry.parent)


def _show(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _resolve(module: str, root: Path, entry_dir: Path) -> Path | None:
    """The user's file for ``module``, searched where Python would find it first."""
    parts = module.split(".")
    for base in (entry_dir, root, root / "src"):
        candidate = base.joinpath(*parts)
        for path in (candidate.with_suffix(".py"), candidate / "__init__.py"):
            if path.is_file() and "site-packages" not in path.parts:
                return path.resolve()
    return None


def _module_name(path: Path, root: Path, entry_dir: Path) -> str:
    for base in (entry_dir, root, root / "src"):
        if path.is_relative_to(base):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join(parts)
    return path.stem


def _parse(path: Path, root: Path) -> _Module:
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    except SyntaxError as exc:
        raise UsageError(
            f"{path}:{exc.lineno}: not valid Python ({exc.msg}); fix it first"
        ) from None
    module = _Module(path)
    package = _module_name(path, root, path.parent).rpartition(".")[0]
    if path.name == "__init__.py":
        package = _module_name(path, root, path.parent)
    future_annotations = any(
        isinstance(n, ast.ImportFrom)
        and n.module == "__future__"
        and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )
    _walk_module_level(tree.body, module, path, package, guarded=False)
    _collect_uses(tree, module, future_annotations)
    return module


def _walk_module_level(
    body: list[ast.stmt], module: _Module, path: Path, package: str, *, guarded: bool
) -> None:
    for node in body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                module.imports.append(_Import(path, node.lineno, alias.name, (bound,), guarded))
        elif isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                continue
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names = tuple(a.asname or a.name for a in node.names)
            submodules = tuple(f"{base}.{a.name}" for a in node.names if a.name != "*")
            module.imports.append(_Import(path, node.lineno, base, names, guarded, submodules))
        elif isinstance(node, ast.If):
            if _is_type_checking(node.test):
                _walk_module_level(node.orelse, module, path, package, guarded=guarded)
            else:
                _walk_module_level(node.body, module, path, package, guarded=guarded)
                _walk_module_level(node.orelse, module, path, package, guarded=guarded)
        elif isinstance(node, ast.Try):
            catches = any(_catches_import_error(h) for h in node.handlers)
            _walk_module_level(node.body, module, path, package, guarded=guarded or catches)
            for handler in node.handlers:
                _walk_module_level(handler.body, module, path, package, guarded=guarded)
            _walk_module_level(node.orelse, module, path, package, guarded=guarded)
            _walk_module_level(node.finalbody, module, path, package, guarded=guarded)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type
    names = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds] if kinds else []
    return kinds is None or any(
        isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError", "Exception")
        for n in names
    )


def _collect_uses(tree: ast.Module, module: _Module, future_annotations: bool) -> None:
    """Names read at module level, and the first function that reads each other name."""

    def names_in(node: ast.AST) -> set[str]:
        return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}

    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            evaluated: list[ast.AST] = [*node.decorator_list, *node.args.defaults]
            evaluated += [d for d in node.args.kw_defaults if d is not None]
            if not future_annotations:
                evaluated += [a.annotation for a in node.args.args if a.annotation]
                if node.returns:
                    evaluated.append(node.returns)
            for part in evaluated:
                module.module_level_names |= names_in(part)
            for name in names_in(node):
                module.first_use.setdefault(name, (node.name, node.lineno))
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            continue
        else:  # classes, assignments, calls, if/try bodies: all run at import time
            module.module_level_names |= names_in(node)
