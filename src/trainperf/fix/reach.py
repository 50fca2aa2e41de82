"""What a program imports, read from its files without running them.

From the entry file, every import statement (at module level or in a function) is
followed through the user's own modules: files under the project, or of the entry's
own package wherever it is installed (a bundled example). Third-party packages are
not entered: what they load comes from their measured import (``PackageInfo.loads``).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.fix.imports import third_party

if TYPE_CHECKING:
    from collections.abc import Callable

    from trainperf.startup.costs import PackageInfo

__all__ = ["Program", "Statement", "find_module_file", "package_of", "read_program"]


@dataclass(frozen=True)
class Statement:
    """One import statement: where it is, what it imports, whether it runs at import."""

    path: Path
    line: int
    module: str  # absolute dotted name; "from a import b" also lists "a.b"
    module_level: bool


@dataclass
class Program:
    """The user's files reached from the entry, and their import statements."""

    entry: Path
    statements: list[Statement] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)  # module name -> file

    def user_file(self, module: str) -> Path | None:
        return self.files.get(module)

    def loaded_at_import(
        self, path: Path, cost_of: Callable[[str], PackageInfo], seen: frozenset[Path] = frozenset()
    ) -> set[str]:
        """The third-party packages importing the user file at ``path`` loads."""
        return self.imported_at_import(path, cost_of, seen, every=True)

    def imported_at_import(
        self,
        path: Path,
        cost_of: Callable[[str], PackageInfo],
        seen: frozenset[Path] = frozenset(),
        *,
        every: bool = False,
    ) -> set[str]:
        """The third-party packages the user file at ``path`` imports at module level,
        itself or through the user's modules it imports there; ``every``: with all
        that those packages load."""
        found: set[str] = set()
        for statement in self.statements:
            if statement.path != path or not statement.module_level:
                continue
            target = self.user_file(statement.module)
            if target is not None:
                if target not in seen:
                    found |= self.imported_at_import(target, cost_of, seen | {path}, every=every)
            elif (top := third_party(statement.module)) is not None:
                found |= {top, *cost_of(top).loads} if every else {top}
        return found

    def imported_later(
        self, path: Path, line: int, module: str, cost_of: Callable[[str], PackageInfo]
    ) -> Statement | None:
        """Another statement that loads ``module`` -- not a module-level one of
        ``path`` -- or None. A package that loads it counts (Lightning loads torch)."""
        top = third_party(module)
        for statement in self.statements:
            if statement.path == path and statement.module_level:
                continue
            if statement.module == module or statement.module.startswith(module + "."):
                return statement
            if top is None or self.user_file(module) is not None:
                continue  # a user module is loaded by its own import only
            other = third_party(statement.module)
            target = self.user_file(statement.module)
            if target is None and other not in (None, top) and top in cost_of(other).loads:
                return statement  # another package loads it (Lightning loads torch)
            if target is not None and top in self.loaded_at_import(target, cost_of):
                return statement  # a user module that loads it
        return None


def read_program(entry: Path, package: str | None, roots: list[Path]) -> Program:
    """The program from ``entry`` (a file), following modules of ``package`` (the
    entry's own top-level package, when it is a module) and those found in ``roots``."""
    program = Program(entry.resolve())
    queue = [program.entry]
    visited: set[Path] = set()
    search = [*roots, *(Path(p) for p in sys.path if p and Path(p).is_dir())]
    while queue:
        path = queue.pop(0)
        if path in visited:
            continue
        visited.add(path)
        for statement in _statements(path):
            program.statements.append(statement)
            top = statement.module.split(".", 1)[0]
            if top in sys.stdlib_module_names:
                continue
            ours = package is not None and top == package
            found = find_module_file(statement.module, search if ours else roots)
            if found is not None:
                program.files[statement.module] = found
                queue.append(found)
    return program


def find_module_file(module: str, search: list[Path]) -> Path | None:
    """The file of ``module`` in the first of ``search`` (folders) that holds it: found by
    path, nothing imported."""
    parts = module.split(".")
    for base in search:
        candidate = base.joinpath(*parts)
        for path in (candidate.with_suffix(".py"), candidate / "__init__.py"):
            if path.is_file():
                return path.resolve()
    return None


def package_of(path: Path) -> list[str]:
    """The package a file belongs to: the folders above it that hold ``__init__.py``."""
    parts: list[str] = []
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return parts


def _statements(path: Path) -> list[Statement]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, SyntaxError):
        return []  # not ours to judge: the file being fixed is read (and checked) elsewhere
    module_level = {id(node) for node in _module_level(tree.body)}
    package = package_of(path)
    out: list[Statement] = []
    for node in ast.walk(tree):
        at_import = id(node) in module_level
        if isinstance(node, ast.Import):
            out += [Statement(path, node.lineno, a.name, at_import) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            out.append(Statement(path, node.lineno, base, at_import))
            out += [
                Statement(path, node.lineno, f"{base}.{a.name}", at_import)
                for a in node.names
                if a.name != "*"
            ]
    return out


def _module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements that run when the module is imported (not under TYPE_CHECKING)."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.If):
            test = node.test
            checking = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
            )
            if not checking:
                out += _module_level(node.body)
            out += _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            out += _module_level(node.body)
            for handler in node.handlers:
                out += _module_level(handler.body)
            out += _module_level(node.orelse) + _module_level(node.finalbody)
        elif isinstance(node, ast.With):
            out += _module_level(node.body)
    return out
