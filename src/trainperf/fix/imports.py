"""Rewrite heavy module-level imports so that they load where they are used.

For each module-level import statement that loads a heavy package (one whose import
alone costs at least the threshold here, :mod:`trainperf.startup.costs`) which
nothing else left at import time loads anyway, the names it binds are followed with
LibCST's scope analysis, and the statement is:

* **moved** into each top-level function or method that uses its names (after the
  docstring), when nothing at import time reads them; a name also read in a
  ``from __future__ import annotations`` annotation keeps a copy under
  ``if TYPE_CHECKING:``;
* **removed**, when nothing in the file reads its names and the program imports the
  same module later anyway (in a function, or in a module it loads there): only when
  it loads changes;
* **refused**, with the reason, otherwise: a name read at import time (a decorator,
  a base class, a default argument, an evaluated annotation, module-level code, the
  script's main block), an import in ``try/except ImportError`` (it tests whether a
  package is installed) or under another condition, ``from x import *``, a name in
  ``__all__``, a name declared ``global`` or bound again, an import that nothing
  uses and nothing imports later (it may be there for its side effects:
  registrations, plugins).

The rewrite keeps every other byte of the file (comments, formatting): a concrete
syntax tree, not ``ast``. Applying it twice changes nothing the second time.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from trainperf.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path

    import libcst as cst
    from libcst.metadata import Access, Scope


__all__ = ["STYLES", "FilePlan", "ImportChange", "Refusal", "Style", "plan_file"]

Action = Literal["moved", "removed", "lazy"]
Style = Literal["move", "lazy", "pep810", "lazy-modules"]
STYLES: tuple[Style, ...] = ("move", "lazy", "pep810", "lazy-modules")


@dataclass(frozen=True)
class ImportChange:
    """One import statement rewritten: ``line`` (1-based) in the original file."""

    line: int
    statement: str
    module: str
    action: Action
    into: tuple[str, ...]  # the functions it now sits in ("moved")
    why: str


@dataclass(frozen=True)
class Refusal:
    """A heavy import left as it is, and why."""

    line: int
    statement: str
    module: str
    why: str


@dataclass
class FilePlan:
    """The rewrite of one file: its text before and after, and what changed."""

    path: Path
    original: str
    fixed: str
    changes: list[ImportChange] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    # Module-level imports of third-party packages none of which is heavy: (line, code).
    light: list[tuple[int, str]] = field(default_factory=list)

    def without(self, lines: Iterable[int]) -> str:
        """The file rewritten with every change but those on ``lines`` (to measure what
        each change saves given the others)."""
        skip = set(lines)
        keep = {c.line for c in self.changes if c.line not in skip}
        return _rewrite(self.original, self.path, self._decisions, keep)

    _decisions: dict[int, _Decision] = field(default_factory=dict, repr=False)


@dataclass
class _Decision:
    line: int
    statement: str
    module: str
    action: Action | None
    why: str
    # Each function it moves into: (its line, its name, the line of its first statement
    # that uses the names, the indices of the aliases it uses).
    into: list[tuple[int, str, int, tuple[int, ...]]] = field(default_factory=list)
    into_names: list[str] = field(default_factory=list)
    type_checking: bool = False  # keep a copy under `if TYPE_CHECKING:`
    style: Style = "move"
    modules: list[str] = field(default_factory=list)  # absolute, for __lazy_modules__


def _styled(decision: _Decision, statement: cst.SimpleStatementLine, style: Style) -> _Decision:
    """The decision in the chosen style: bound lazily in place where the style can."""
    import libcst as cst

    if decision.action is None or style == "move":
        return decision
    node = statement.body[0]
    if style == "lazy":
        plain = isinstance(node, cst.Import) and all(
            a.asname is not None or "." not in _dotted(a.name) for a in node.names
        )
        if not plain:
            return decision  # `from x import y` and `import a.b` cannot be a module proxy
        how = "bound through trainperf.lazy_import: it loads on first use"
    elif style == "pep810":
        how = "a `lazy import` (PEP 810, Python 3.15): it loads on first use"
    else:
        how = "listed in __lazy_modules__ (read from Python 3.15 on): it loads on first use"
    decision.action = "lazy"
    why = decision.why.replace("; annotations keep it under `if TYPE_CHECKING:`", "")
    decision.why = f"{why}; {how}"
    decision.into, decision.into_names, decision.type_checking = [], [], False
    decision.style = style
    return decision


def plan_file(
    path: Path,
    *,
    loads: Callable[[Path, int, str], tuple[set[str], set[str]]],
    heavy: Callable[[str], bool],
    later: Callable[[Path, int, str], str | None],
    style: Style = "move",
) -> FilePlan:
    """The rewrite of the heavy module-level imports of the file at ``path``.

    ``loads(path, line, module)``: the top-level packages the statement on ``line``
    imports by importing ``module`` (absolute, dotted) -- itself or through the user's
    modules -- and all those it loads; ``heavy(module)``: whether importing a package of
    the first set alone is heavy, or (for a light package) the dotted module the
    statement names (``scipy.linalg``, ``PIL.Image``). A statement is rewritten only for
    heavy packages that nothing left at import time loads anyway. ``later(path, line,
    module)``: where the program imports ``module`` again after start-up
    (``"file:line"``), or None. ``style``: ``move`` (into the functions that use it, or
    removed), ``lazy`` (bound in place through
    :func:`trainperf.lazy_import`, for ``import x`` forms; the others moved),
    ``pep810`` (``lazy import`` statements: Python 3.15), ``lazy-modules`` (listed in
    ``__lazy_modules__``, which Python 3.15 reads and older versions ignore).
    Raises :class:`UsageError` for a file that cannot be read or is not Python."""
    import libcst as cst
    from libcst.metadata import (
        MetadataWrapper,
        ParentNodeProvider,
        PositionProvider,
        ScopeProvider,
    )

    source = _read(path)
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        raise UsageError(
            f"{path}:{exc.raw_line}: not valid Python ({exc.message}); fix it first"
        ) from None
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)
    parents = wrapper.resolve(ParentNodeProvider)
    scopes = wrapper.resolve(ScopeProvider)
    context = _Context(module, positions, parents, scopes, path, later)
    decisions: dict[int, _Decision] = {}
    loaded: dict[int, set[str]] = {}  # line -> packages its statement loads
    wanted: dict[int, set[str]] = {}  # line -> the heavy ones
    light: list[tuple[int, str]] = []
    for statement, guard in _module_level_imports(module):
        if guard == "type-checking":
            continue  # never imported at run time
        line = positions[statement].start.line
        imports = [s for s in statement.body if isinstance(s, cst.Import | cst.ImportFrom)]
        absolute = [name for node in imports for name in _absolute(node, path)]
        direct: set[str] = set()
        heavier: set[str] = set()  # light packages whose submodule named here is heavy
        loaded[line] = set()
        for name in [*absolute, *(n for node in imports for n in _submodules(node, path))]:
            imported, everything = loads(path, line, name)
            direct |= imported
            loaded[line] |= everything
            top = name.partition(".")[0]
            if "." in name and top in imported and not heavy(top) and heavy(name):
                heavier.add(top)  # `import scipy.linalg` costs more than `import scipy`
        wanted[line] = {p for p in direct if heavy(p)} | heavier
        if not wanted[line]:
            if direct:
                code = module.code_for_node(statement.with_changes(leading_lines=())).strip()
                light.append((line, code))
            continue
        if style == "lazy-modules" and set(absolute) <= context.lazy_modules:
            continue  # listed already
        decision = context.decide(statement, line, guard, absolute)
        decision.modules = absolute
        decisions[line] = _styled(decision, statement, style)
    mooted: set[int] = set()
    while True:
        # A change saves only the heavy packages that nothing left at import time loads.
        kept = set().union(
            *(
                p
                for line, p in loaded.items()
                if getattr(decisions.get(line), "action", None) is None
            )
        )
        moot = [
            line
            for line, d in decisions.items()
            if d.action is not None and not wanted[line] - kept
        ]
        if not moot:
            break
        for line in moot:
            del decisions[line]
            mooted.add(line)
    for line in [line for line, d in decisions.items() if d.action is None]:
        # A kept line whose heavy packages an earlier kept line loads costs nothing more.
        earlier = set().union(
            *(
                p
                for other, p in loaded.items()
                if other < line and other not in decisions and other not in mooted
            )
        )
        earlier |= set().union(
            *(loaded[o] for o, d in decisions.items() if o < line and d.action is None)
        )
        if not wanted[line] - earlier:
            del decisions[line]
    keep = {line for line, d in decisions.items() if d.action is not None}
    plan = FilePlan(path, source, _rewrite(source, path, decisions, keep) if keep else source)
    plan._decisions = decisions
    plan.light = light
    for d in sorted(decisions.values(), key=lambda d: d.line):
        if d.action is None:
            plan.refusals.append(Refusal(d.line, d.statement, d.module, d.why))
        else:
            change = ImportChange(d.line, d.statement, d.module, d.action, (*d.into_names,), d.why)
            plan.changes.append(change)
    return plan


def _read(path: Path) -> str:
    from trainperf.fix.patch import read_source

    text = read_source(path)
    try:
        compile(text, str(path), "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as exc:
        import libcst as cst

        try:
            cst.parse_module(text)  # newer syntax (`lazy import`) than this interpreter's
        except cst.ParserSyntaxError:
            raise UsageError(
                f"{path}:{exc.lineno}: not valid Python ({exc.msg}); fix it first"
            ) from None
    return text


Guard = Literal["none", "type-checking", "try", "condition"]


def _module_level_imports(
    module: cst.Module,
) -> Iterable[tuple[cst.SimpleStatementLine, Guard]]:
    """Import statement lines at module level, with what they sit under."""
    import libcst as cst

    def walk(
        body: Sequence[cst.CSTNode], guard: Guard
    ) -> Iterable[tuple[cst.SimpleStatementLine, Guard]]:
        for node in body:
            if isinstance(node, cst.SimpleStatementLine):
                if any(isinstance(s, cst.Import | cst.ImportFrom) for s in node.body):
                    first = node.body[0]
                    if isinstance(first, cst.ImportFrom) and _from_future(first):
                        continue
                    yield node, guard
            elif isinstance(node, cst.If):
                inner: Guard = "type-checking" if _is_type_checking(node.test) else "condition"
                yield from walk(_suite(node.body), inner if guard == "none" else guard)
                orelse = node.orelse
                while orelse is not None:
                    yield from walk(_suite(orelse.body), "condition" if guard == "none" else guard)
                    orelse = orelse.orelse if isinstance(orelse, cst.If) else None
            elif isinstance(node, cst.Try):
                yield from walk(_suite(node.body), "try" if guard == "none" else guard)
            elif isinstance(node, cst.With):
                yield from walk(_suite(node.body), "condition" if guard == "none" else guard)

    return walk(module.body, "none")


def _suite(block: cst.BaseSuite) -> Sequence[cst.CSTNode]:
    import libcst as cst

    return block.body if isinstance(block, cst.IndentedBlock) else [block]


def _from_future(node: cst.ImportFrom) -> bool:
    import libcst as cst

    return isinstance(node.module, cst.Name) and node.module.value == "__future__"


def _is_type_checking(test: cst.BaseExpression) -> bool:
    import libcst as cst

    return (isinstance(test, cst.Name) and test.value == "TYPE_CHECKING") or (
        isinstance(test, cst.Attribute) and test.attr.value == "TYPE_CHECKING"
    )


def _dotted(node: cst.BaseExpression | None) -> str:
    import libcst as cst

    if node is None:
        return ""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    return ""


def _absolute(node: cst.Import | cst.ImportFrom, path: Path) -> list[str]:
    """The absolute dotted modules a statement imports (a relative one resolved from
    the file's folder: its package is the folders with ``__init__.py`` above it)."""
    import libcst as cst

    if isinstance(node, cst.Import):
        return [_dotted(alias.name) for alias in node.names]
    base = _dotted(node.module)
    dots = len(node.relative)
    if dots:
        from trainperf.fix.reach import package_of

        parts = package_of(path)
        parts = parts[: len(parts) - (dots - 1)] if dots > 1 else parts
        base = ".".join([*parts, base] if base else parts)
    return [base]


def _submodules(node: cst.Import | cst.ImportFrom, path: Path) -> list[str]:
    """``from pkg import heavy``: ``pkg.heavy``, which may be a module of its own."""
    import libcst as cst

    if isinstance(node, cst.Import) or isinstance(node.names, cst.ImportStar):
        return []
    base = _absolute(node, path)[0]
    return [f"{base}.{_dotted(alias.name)}" for alias in node.names]


_HOW = {
    "decorator": "a decorator",
    "base": "a base class",
    "default": "a default argument",
    "annotation": "an annotation evaluated at import",
    "main": "the script's main block",
    "module": "module-level code",
}


class _Context:
    def __init__(
        self,
        module: cst.Module,
        positions: object,
        parents: object,
        scopes: object,
        path: Path,
        later: Callable[[Path, int, str], str | None],
    ) -> None:
        self.module = module
        self.positions: dict[cst.CSTNode, object] = positions  # type: ignore[assignment]
        self.parents: dict[cst.CSTNode, cst.CSTNode] = parents  # type: ignore[assignment]
        self.scopes: dict[cst.CSTNode, Scope | None] = scopes  # type: ignore[assignment]
        self.path = path
        self.later = later
        self.future_annotations = any(_future_annotations(statement) for statement in module.body)
        self.exported = _all_names(module)
        self.lazy_modules = _all_names(module, "__lazy_modules__")
        self.declared_global = _global_names(module)

    def line_of(self, node: cst.CSTNode) -> int:
        return self.positions[node].start.line  # type: ignore[attr-defined,no-any-return]

    def decide(
        self, statement: cst.SimpleStatementLine, line: int, guard: Guard, modules: list[str]
    ) -> _Decision:
        import libcst as cst
        from libcst.metadata import ImportAssignment

        text = self.module.code_for_node(statement.with_changes(leading_lines=())).strip()
        if "\n" in text:  # a statement over several lines, shown on one
            text = " ".join(text.split()).replace("( ", "(").replace(", )", ")")
        node = statement.body[0]
        shown = ", ".join(dict.fromkeys(modules))

        def refuse(why: str) -> _Decision:
            return _Decision(line, text, shown, None, why)

        if guard == "try":
            return refuse(
                "inside try/except: it tests whether a package is installed, which only an "
                "import can do"
            )
        if guard == "condition":
            return refuse("imported under a condition or a `with` block: move it by hand")
        if len(statement.body) > 1:
            return refuse("shares its line with other statements")
        assert isinstance(node, cst.Import | cst.ImportFrom)
        if isinstance(node, cst.ImportFrom) and isinstance(node.names, cst.ImportStar):
            return refuse("`import *`: the names it binds are not known without running it")
        scope = self.scopes.get(node)
        if scope is None:
            return refuse("its scope could not be analysed")
        functions: dict[cst.FunctionDef, tuple[int, set[int]]] = {}  # first use, aliases
        typing_only = False
        used = False
        for index, alias in enumerate(node.names):  # type: ignore[arg-type]
            bound = _bound_names(alias, isinstance(node, cst.Import))
            if bound[0] in self.exported:
                return refuse(f"{bound[0]} is exported in __all__")
            if bound[0] in self.declared_global:
                return refuse(f"{bound[0]} is declared `global` in a function")
            for name in bound:
                for assignment in scope.assignments[name]:
                    if not isinstance(assignment, ImportAssignment):
                        other = getattr(assignment, "node", None)
                        if isinstance(other, cst.CSTNode) and other is not node:
                            return refuse(
                                f"{bound[0]} is bound again at line {self.line_of(other)}"
                            )
                        continue
                    if assignment.node is not node:
                        if name == bound[0]:
                            where = self.line_of(assignment.node)
                            return refuse(f"{bound[0]} is imported again at line {where}")
                        continue
                    for access in assignment.references:
                        used = True
                        verdict = self._access(access)
                        if isinstance(verdict, str):
                            return refuse(f"{bound[0]} is used at import time: {verdict}")
                        if verdict is None:
                            typing_only = True
                        else:
                            first = self._statement_in(verdict, access.node)
                            earlier, aliases = functions.get(verdict, (first, set()))
                            functions[verdict] = (min(first, earlier), {*aliases, index})
        if not used:
            for name in modules:
                elsewhere = self.later(self.path, line, name)
                if elsewhere is None:
                    return refuse(
                        "nothing in this file uses it and nothing imports it later: it may be "
                        "imported for its side effects (registrations, plugins); delete it by "
                        "hand if it is not"
                    )
                why = (
                    f"nothing in this file uses it; the program imports {name} later anyway "
                    f"({elsewhere}), where it is needed"
                )
            return _Decision(line, text, shown, "removed", why)
        into = sorted(functions, key=self.line_of)
        for function in into:
            if not isinstance(function.body, cst.IndentedBlock):
                where = self.line_of(function)
                return refuse(f"used in the one-line function at line {where}: move it by hand")
        names = [self._qualified(f) for f in into]
        why = "used only inside " + ", ".join(f"{n}()" for n in names)
        if typing_only:
            why += "; annotations keep it under `if TYPE_CHECKING:`"
        keys = [
            (self.line_of(f), f.name.value, functions[f][0], tuple(sorted(functions[f][1])))
            for f in into
        ]
        return _Decision(line, text, shown, "moved", why, keys, names, typing_only)

    def _statement_in(self, function: cst.FunctionDef, node: cst.CSTNode) -> int:
        """The line of the statement of ``function``'s own body that holds ``node``: the
        import goes right before it, after what the function does first (parsing its
        arguments, say)."""
        cursor: cst.CSTNode | None = node
        while cursor is not None:
            parent = self.parents.get(cursor)
            if parent is function.body:
                return self.line_of(cursor)
            cursor = parent
        return self.line_of(function)

    def _access(self, access: Access) -> cst.FunctionDef | str | None:
        """The outermost function an access runs in; None for an annotation that is
        never evaluated; else a sentence on how it runs at import time."""
        import libcst as cst
        from libcst.metadata import ClassScope, FunctionScope, GlobalScope

        node = access.node
        string_hint = isinstance(node, cst.SimpleString | cst.ConcatenatedString)
        if access.is_annotation and (self.future_annotations or string_hint):
            # Not evaluated at import; a function's own annotations are in its signature.
            return None
        if access.is_type_hint and string_hint:
            return None
        scope = access.scope
        outermost: cst.FunctionDef | None = None
        lambda_at: int | None = None
        while scope is not None and not isinstance(scope, GlobalScope):
            if isinstance(scope, FunctionScope):
                if isinstance(scope.node, cst.FunctionDef):
                    outermost = scope.node
                    lambda_at = None
                else:
                    lambda_at = self.line_of(scope.node)
            elif not isinstance(scope, ClassScope):
                pass  # a comprehension: it runs where its enclosing scope runs
            scope = scope.parent
        if lambda_at is not None and outermost is None:
            return f"line {lambda_at} (a lambda at module level: no import can go inside one)"
        if outermost is not None:
            return outermost
        return f"line {self.line_of(node)} ({_HOW[self._how(node)]})"

    def _how(self, node: cst.CSTNode) -> str:
        import libcst as cst

        cursor: cst.CSTNode | None = node
        while cursor is not None:
            parent = self.parents.get(cursor)
            if isinstance(cursor, cst.Decorator):
                return "decorator"
            if isinstance(cursor, cst.Arg) and isinstance(parent, cst.ClassDef):
                return "base"
            if isinstance(cursor, cst.Param) and isinstance(parent, cst.Parameters):
                return "default"
            if isinstance(cursor, cst.Annotation):
                return "annotation"
            if isinstance(cursor, cst.If) and _is_main_guard(cursor.test):
                return "main"
            cursor = parent
        return "module"

    def _qualified(self, function: cst.FunctionDef) -> str:
        import libcst as cst

        names = [function.name.value]
        cursor = self.parents.get(function)
        while cursor is not None:
            if isinstance(cursor, cst.ClassDef | cst.FunctionDef):
                names.insert(0, cursor.name.value)
            cursor = self.parents.get(cursor)
        return ".".join(names)


def _bound_names(alias: cst.ImportAlias, plain: bool) -> list[str]:
    """The names an alias binds, as LibCST's scope analysis records them: ``import
    a.b`` binds ``a`` and records ``a.b`` too."""
    if alias.asname is not None:
        return [_dotted(alias.asname.name)]
    dotted = _dotted(alias.name)
    if not plain:
        return [dotted]
    parts = dotted.split(".")
    return [parts[0], *(".".join(parts[: i + 1]) for i in range(1, len(parts)))]


def _is_main_guard(test: cst.BaseExpression) -> bool:
    import libcst as cst

    if not isinstance(test, cst.Comparison):
        return False
    names = [test.left, *(t.comparator for t in test.comparisons)]
    return any(isinstance(n, cst.Name) and n.value == "__name__" for n in names)


def _future_annotations(statement: cst.CSTNode) -> bool:
    import libcst as cst

    if not isinstance(statement, cst.SimpleStatementLine):
        return False
    first = statement.body[0]
    if not (isinstance(first, cst.ImportFrom) and _from_future(first)):
        return False
    names = first.names
    return not isinstance(names, cst.ImportStar) and any(
        _dotted(a.name) == "annotations" for a in names
    )


def _tree(module: cst.Module) -> ast.Module:
    try:
        return ast.parse(module.code)
    except SyntaxError:  # newer syntax than this interpreter's: nothing found in it
        return ast.Module(body=[], type_ignores=[])


def _all_names(module: cst.Module, variable: str = "__all__") -> set[str]:
    tree = _tree(module)
    found: set[str] = set()
    for node in tree.body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AugAssign | ast.AnnAssign)
            else []
        )
        if any(isinstance(t, ast.Name) and t.id == variable for t in targets):
            value = getattr(node, "value", None)
            if isinstance(value, ast.List | ast.Tuple):
                found |= {e.value for e in value.elts if isinstance(e, ast.Constant)}  # type: ignore[misc]
    return found


def _global_names(module: cst.Module) -> set[str]:
    tree = _tree(module)
    return {name for node in ast.walk(tree) if isinstance(node, ast.Global) for name in node.names}


def _rewrite(source: str, path: Path, decisions: dict[int, _Decision], keep: set[int]) -> str:
    """``source`` with the decisions on ``keep`` applied (parsed afresh: the plan's
    nodes are matched by their line)."""
    import libcst as cst
    from libcst.metadata import MetadataWrapper, PositionProvider

    chosen = {line: decisions[line] for line in keep}
    if not chosen:
        return source
    wrapper = MetadataWrapper(cst.parse_module(source), unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)
    module = wrapper.module
    by_function: dict[tuple[int, str], list[tuple[int, cst.SimpleStatementLine]]] = {}
    statements: dict[int, cst.SimpleStatementLine] = {}
    for statement, _ in _module_level_imports(module):
        line = positions[statement].start.line
        if line in chosen:
            statements[line] = statement
    for line, decision in sorted(chosen.items()):
        if decision.action != "moved":
            continue
        moved = _detached(statements[line])
        for function_line, name, first, aliases in decision.into:
            by_function.setdefault((function_line, name), []).append((first, _only(moved, aliases)))
    typing_copies = [
        _detached(statements[line]).with_changes(leading_lines=())
        for line, d in sorted(chosen.items())
        if d.action == "moved" and d.type_checking
    ]
    lazy = {line: d for line, d in chosen.items() if d.action == "lazy"}
    replace: dict[cst.SimpleStatementLine, list[cst.SimpleStatementLine]] = {}
    listed: list[str] = []
    needs_trainperf = "trainperf" not in _bound_at_module_level(module)
    for line, decision in sorted(lazy.items()):
        old = statements[line]
        if decision.style == "lazy":
            replace[old] = _lazy_bindings(old, with_import=needs_trainperf)
            needs_trainperf = False
        elif decision.style == "pep810":
            replace[old] = [_pep810(old)]
        else:
            replace[old] = [old]
            listed += [m for m in decision.modules if m not in listed]
    drop = {s for s in statements.values() if s not in replace}
    fixed = module.visit(_mover(drop, by_function, positions, replace))
    if typing_copies:
        fixed = _add_type_checking(fixed, typing_copies)
    if listed:
        fixed = _list_lazy_modules(fixed, listed)
    return fixed.code


def _bound_at_module_level(module: cst.Module) -> set[str]:
    tree = _tree(module)
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {a.asname or a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            found |= {a.asname or a.name for a in node.names}
    return found


def _lazy_bindings(
    statement: cst.SimpleStatementLine, *, with_import: bool
) -> list[cst.SimpleStatementLine]:
    """``import x as y`` as ``y = trainperf.lazy_import("x")``, one line a name; the
    first keeps the statement's leading lines, the last its trailing comment."""
    import libcst as cst

    node = statement.body[0]
    assert isinstance(node, cst.Import)
    texts = ["import trainperf"] if with_import else []
    for alias in node.names:
        module = _dotted(alias.name)
        bound = module if alias.asname is None else _dotted(alias.asname.name)
        texts.append(f'{bound} = trainperf.lazy_import("{module}")')
    lines = [cst.parse_statement(f"{text}\n") for text in texts]
    assert all(isinstance(line, cst.SimpleStatementLine) for line in lines)
    lines[0] = lines[0].with_changes(leading_lines=statement.leading_lines)
    lines[-1] = lines[-1].with_changes(trailing_whitespace=statement.trailing_whitespace)
    return lines  # type: ignore[return-value]  # checked above


def _pep810(statement: cst.SimpleStatementLine) -> cst.SimpleStatementLine:
    import libcst as cst

    node = statement.body[0]
    if isinstance(node, cst.Import):
        lazy: cst.BaseSmallStatement = cst.LazyImport(
            names=node.names, whitespace_after_import=node.whitespace_after_import
        )
    else:
        assert isinstance(node, cst.ImportFrom)
        lazy = cst.LazyImportFrom(
            module=node.module,
            names=node.names,
            relative=node.relative,
            lpar=node.lpar,
            rpar=node.rpar,
            whitespace_after_from=node.whitespace_after_from,
            whitespace_before_import=node.whitespace_before_import,
            whitespace_after_import=node.whitespace_after_import,
        )
    return statement.with_changes(body=[lazy])


def _list_lazy_modules(module: cst.Module, names: list[str]) -> cst.Module:
    """``names`` added to the module's ``__lazy_modules__`` (made before its first
    import, after the docstring and ``from __future__`` imports, when missing)."""
    import libcst as cst

    body = list(module.body)
    for index, node in enumerate(body):
        if (
            isinstance(node, cst.SimpleStatementLine)
            and isinstance(node.body[0], cst.Assign)
            and _dotted(node.body[0].targets[0].target) == "__lazy_modules__"
            and isinstance(node.body[0].value, cst.List | cst.Tuple)
        ):
            value = node.body[0].value
            present = {
                e.value.evaluated_value
                for e in value.elements
                if isinstance(e.value, cst.SimpleString)
            }
            fresh = [cst.Element(cst.SimpleString(f'"{n}"')) for n in names if n not in present]
            elements = [*value.elements, *fresh]
            body[index] = node.with_changes(
                body=[node.body[0].with_changes(value=value.with_changes(elements=elements))]
            )
            return module.with_changes(body=body)
    at = 0
    while at < len(body) and (_is_docstring(body[at]) or _is_future(body[at])):
        at += 1
    listed = ", ".join(f'"{n}"' for n in names)
    line = cst.parse_statement(f"__lazy_modules__ = [{listed}]\n")
    line = line.with_changes(leading_lines=[cst.EmptyLine(indent=False)] if at else [])
    return module.with_changes(body=[*body[:at], line, *body[at:]])


def _only(statement: cst.SimpleStatementLine, aliases: tuple[int, ...]) -> cst.SimpleStatementLine:
    """The import statement with only the names at ``aliases`` (what one function uses)."""
    import libcst as cst

    node = statement.body[0]
    assert isinstance(node, cst.Import | cst.ImportFrom)
    names = node.names
    if isinstance(names, cst.ImportStar) or len(aliases) == len(names):
        return statement
    kept = [names[i] for i in aliases]
    kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    if isinstance(node, cst.ImportFrom) and len(kept) == 1 and node.lpar is not None:
        node = node.with_changes(lpar=None, rpar=None)  # one name needs no parentheses
        kept = [kept[0].with_changes(comma=cst.MaybeSentinel.DEFAULT)]
    return statement.with_changes(body=[node.with_changes(names=kept)])


def _detached(statement: cst.SimpleStatementLine) -> cst.SimpleStatementLine:
    """The statement with its attached comment lines (those right above it)."""
    attached: list[cst.EmptyLine] = []
    for empty in reversed(statement.leading_lines):
        if empty.comment is None:
            break
        attached.insert(0, empty)
    return statement.with_changes(leading_lines=attached)


def _mover(
    drop: set[cst.SimpleStatementLine],
    moved: dict[tuple[int, str], list[tuple[int, cst.SimpleStatementLine]]],
    positions: object,
    replace: dict[cst.SimpleStatementLine, list[cst.SimpleStatementLine]],
) -> cst.CSTTransformer:
    """Drops the chosen module-level statements and inserts the moved ones at the top
    of their functions (after the docstring), once."""
    import libcst as cst

    class Mover(cst.CSTTransformer):
        def __init__(
            self,
            drop: set[cst.SimpleStatementLine],
            moved: dict[tuple[int, str], list[tuple[int, cst.SimpleStatementLine]]],
            positions: object,
            replace: dict[cst.SimpleStatementLine, list[cst.SimpleStatementLine]],
        ) -> None:
            super().__init__()
            self.replace = replace
            self.drop = drop
            self.moved = moved
            self.positions: dict[cst.CSTNode, object] = positions  # type: ignore[assignment]

        def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
            body = self._drop(updated.body, original.body)
            if (
                body
                and original.body
                and original.body[0] in self.drop
                and not any(line.comment for line in updated.header)
                and isinstance(body[0], cst.SimpleStatementLine | cst.BaseCompoundStatement)
            ):  # the file's first statement went: the next one starts the file
                lines = list(body[0].leading_lines)
                while lines and lines[0].comment is None:
                    lines.pop(0)
                body[0] = body[0].with_changes(leading_lines=lines)
            return updated.with_changes(body=body)

        def leave_IndentedBlock(
            self, original: cst.IndentedBlock, updated: cst.IndentedBlock
        ) -> cst.IndentedBlock:
            return updated.with_changes(body=self._drop(updated.body, original.body))

        def _drop(
            self, body: Sequence[cst.BaseStatement], originals: Sequence[cst.BaseStatement]
        ) -> list[cst.BaseStatement]:
            out: list[cst.BaseStatement] = []
            spacing: list[cst.EmptyLine] = []
            for new, old in zip(body, originals, strict=True):
                if old in self.replace:
                    out.extend(self.replace[old])  # type: ignore[index]
                    continue
                if old in self.drop:
                    assert isinstance(old, cst.SimpleStatementLine)
                    kept = _detached(old).leading_lines
                    free = old.leading_lines[: len(old.leading_lines) - len(kept)]
                    if not spacing:
                        spacing = list(free)
                    continue
                if spacing and isinstance(new, cst.SimpleStatementLine | cst.BaseCompoundStatement):
                    if len(new.leading_lines) < len(spacing):
                        new = new.with_changes(leading_lines=[*spacing, *new.leading_lines])
                    spacing = []
                out.append(new)
            return out

        def leave_FunctionDef(
            self, original: cst.FunctionDef, updated: cst.FunctionDef
        ) -> cst.FunctionDef:
            line = self.positions[original].start.line  # type: ignore[attr-defined]
            moved = self.moved.get((line, original.name.value))
            if not moved or not isinstance(updated.body, cst.IndentedBlock):
                return updated
            assert isinstance(original.body, cst.IndentedBlock)
            body = list(updated.body.body)
            lines = [self.positions[s].start.line for s in original.body.body]  # type: ignore[attr-defined]
            top = 1 if body and _is_docstring(body[0]) else 0
            present = {_code(s) for s in body}
            inserts: dict[int, list[cst.SimpleStatementLine]] = {}
            fresh = [(first, w) for first, w in moved if _code(w) not in present]
            if fresh:  # (a second run finds them there and changes nothing)
                # Together, before the first statement that needs any of them.
                firsts = [lines.index(f) if f in lines else top for f, _ in fresh]
                inserts[max(min(firsts), top)] = [w for _, w in fresh]
            if not inserts:
                return updated
            out: list[cst.BaseStatement] = []
            for index, statement in enumerate(body):
                new = inserts.get(index, [])
                if new and index > top:  # after code: a blank line above the imports
                    new = [
                        new[0].with_changes(leading_lines=[cst.EmptyLine(indent=False)]),
                        *new[1:],
                    ]
                out += new
                if (
                    new
                    and isinstance(statement, cst.SimpleStatementLine | cst.BaseCompoundStatement)
                    and not _is_import(statement)
                    and not any(e.comment is None for e in statement.leading_lines[:1])
                ):  # one blank line between the imports and the code, as isort writes it
                    statement = statement.with_changes(
                        leading_lines=[cst.EmptyLine(indent=False), *statement.leading_lines]
                    )
                out.append(statement)
            return updated.with_changes(body=updated.body.with_changes(body=out))

    return Mover(drop, moved, positions, replace)


def _is_import(statement: cst.BaseStatement) -> bool:
    import libcst as cst

    return isinstance(statement, cst.SimpleStatementLine) and isinstance(
        statement.body[0], cst.Import | cst.ImportFrom
    )


def _is_future(statement: cst.BaseStatement) -> bool:
    import libcst as cst

    return (
        isinstance(statement, cst.SimpleStatementLine)
        and isinstance(statement.body[0], cst.ImportFrom)
        and _from_future(statement.body[0])
    )


def _is_docstring(statement: cst.BaseStatement) -> bool:
    import libcst as cst

    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, cst.SimpleString | cst.ConcatenatedString)
    )


def _code(statement: cst.BaseStatement) -> str:
    import libcst as cst

    bare = statement.with_changes(leading_lines=())
    return cst.Module(body=[bare]).code.strip()  # type: ignore[list-item]  # a statement


def _add_type_checking(module: cst.Module, copies: list[cst.SimpleStatementLine]) -> cst.Module:
    """``copies`` under the module's ``if TYPE_CHECKING:`` (made after the last
    module-level import, with ``from typing import TYPE_CHECKING``, when missing)."""
    import libcst as cst

    body = list(module.body)
    for index, node in enumerate(body):
        if isinstance(node, cst.If) and _is_type_checking(node.test):
            assert isinstance(node.body, cst.IndentedBlock)
            present = {_code(s) for s in node.body.body}
            fresh = [c for c in copies if _code(c) not in present]
            block = node.body.with_changes(body=[*node.body.body, *fresh])
            body[index] = node.with_changes(body=block)
            return module.with_changes(body=body)
    last = max(
        (
            i
            for i, node in enumerate(body)
            if isinstance(node, cst.SimpleStatementLine)
            and isinstance(node.body[0], cst.Import | cst.ImportFrom)
        ),
        default=-1,
    )
    code = module.code
    new: list[cst.BaseStatement] = []
    if "TYPE_CHECKING" not in {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)}:
        new.append(cst.parse_statement("from typing import TYPE_CHECKING\n"))
    new.append(
        cst.If(
            test=cst.Name("TYPE_CHECKING"),
            body=cst.IndentedBlock(body=copies),
            leading_lines=[cst.EmptyLine()],
        )
    )
    return module.with_changes(body=[*body[: last + 1], *new, *body[last + 1 :]])


def third_party(module: str) -> str | None:
    """The top-level package of ``module`` when it is not the standard library's."""
    top = module.split(".", 1)[0]
    return None if not top or top in sys.stdlib_module_names else top
