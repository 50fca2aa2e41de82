"""Finding the call: a file's ``DataLoader(...)`` and ``TrainingArguments(...)`` calls,
parsed with LibCST, and the one that builds the training loader (:func:`locate`); then
the small readers of a parsed file that the planner and the rewrite share."""

from __future__ import annotations

import ast
import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainperf.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from pathlib import Path

    import libcst as cst
    from libcst.metadata import CodeRange

    from trainperf.fix.loader.values import Kind, Scalar


@dataclass(frozen=True)
class _Site:
    """One ``DataLoader(...)`` / ``TrainingArguments(...)`` call and its surroundings."""

    call: cst.Call
    kind: Kind
    ordinal: int  # among the file's loader calls, in source order
    start: int  # its first and last line, 1-based
    end: int
    # What says which loader it is, the strongest first: the names it is assigned to,
    # its dataset expression, the functions around it (train_dataloader).
    hints: tuple[tuple[str, ...], ...]
    dataset_class: str | None  # the dataset's class, where the file says it
    batch_size: int | None  # a literal batch_size
    statement: cst.SimpleStatementLine | None  # the statement holding the call
    block: tuple[cst.BaseStatement, ...]  # the body holding that statement
    function: cst.FunctionDef | None
    classdef: cst.ClassDef | None

    @property
    def train_score(self) -> int:
        """2: says training, 0: says validation or test, 1: says neither."""
        for names in self.hints:
            text = " ".join(names).lower()
            if "train" in text:
                return 2
            if re.search(r"val|test|eval|predict", text):
                return 0
        return 1


@dataclass(frozen=True)
class Located:
    """A parsed Python file and the loader call the fix is about (``site``)."""

    path: Path
    source: str
    module: cst.Module
    sites: tuple[_Site, ...]
    site: _Site
    line: int | None  # as asked for

    def for_framework(self, framework: str | None) -> Located:
        """The ``TrainingArguments(...)`` call, for a run of the Hugging Face Trainer
        (``framework == "transformers"``), unless a line was asked for."""
        arguments = [s for s in self.sites if s.kind == "TrainingArguments"]
        if framework != "transformers" or self.line is not None or not arguments:
            return self
        return dataclasses.replace(self, site=_best(arguments))


def locate(path: Path, *, line: int | None = None) -> Located:
    """Parse ``path`` and find its loader calls: ``DataLoader(...)`` under any name it
    is imported as (``torch.utils.data.DataLoader``, ``data.DataLoader``, an alias) and
    ``TrainingArguments(...)``; ``line`` (1-based) picks the call spanning it.

    Raises :class:`UsageError` for a missing file, a file that is not valid Python, a
    file without such a call, or a ``line`` that none spans.
    """
    import libcst as cst

    if not path.is_file():
        raise UsageError(
            f"no such file: {path}; give the Python file that builds the training DataLoader"
        )
    raw = path.read_bytes()
    try:
        ast.parse(raw, str(path))
        module = cst.parse_module(raw)
    except SyntaxError as exc:
        raise UsageError(
            f"{path} is not valid Python (line {exc.lineno}: {exc.msg}); fix it first, or give "
            "the file that builds the training DataLoader"
        ) from None
    except (ValueError, cst.ParserSyntaxError) as exc:
        raise UsageError(f"{path} cannot be parsed ({exc}); give a Python source file") from None
    sites = _find(module)
    if not sites:
        raise UsageError(
            f"no DataLoader(...) or TrainingArguments(...) call in {path}; give the file that "
            "builds the training loader (where make_loaders or train_dataloader is)"
        )
    if line is not None:
        spanning = [s for s in sites if s.start <= line <= s.end]
        if not spanning:
            starts = ", ".join(str(s.start) for s in sites)
            raise UsageError(
                f"no DataLoader call on line {line} of {path}; its loader calls start on "
                f"line{'s' if len(sites) > 1 else ''} {starts}: pass one of them to --line"
            )
        return Located(path, module.code, module, sites, spanning[-1], line)
    loaders = [s for s in sites if s.kind == "DataLoader"]
    return Located(path, module.code, module, sites, _best(loaders or sites), None)


def _best(sites: Sequence[_Site]) -> _Site:
    return max(sites, key=lambda s: (s.train_score, -s.ordinal))


def _kind_of(func: cst.BaseExpression, aliases: Mapping[str, Kind]) -> Kind | None:
    import libcst as cst

    if isinstance(func, cst.Name) and func.value in aliases:
        return aliases[func.value]
    name = func.value if isinstance(func, cst.Name) else None
    if isinstance(func, cst.Attribute):
        name = func.attr.value
    if name == "DataLoader":
        return "DataLoader"
    if name is not None and name.endswith("TrainingArguments"):
        return "TrainingArguments"
    return None


def _positions(module: cst.Module) -> Mapping[cst.CSTNode, CodeRange]:
    from libcst.metadata import MetadataWrapper, PositionProvider

    return MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)


def _find(module: cst.Module) -> tuple[_Site, ...]:
    import libcst as cst

    aliases: dict[str, Kind] = {}
    for node in _walk(module):
        if isinstance(node, cst.ImportFrom) and not isinstance(node.names, cst.ImportStar):
            for alias in node.names:
                kind = _kind_of(alias.name, {}) if isinstance(alias.name, cst.Name) else None
                asname = None if alias.asname is None else alias.asname.name
                if kind is not None and isinstance(asname, cst.Name):
                    aliases[asname.value] = kind
    positions = _positions(module)
    sites: list[_Site] = []

    class Finder(cst.CSTVisitor):
        def __init__(self) -> None:
            self.functions: list[cst.FunctionDef] = []
            self.classes: list[cst.ClassDef] = []
            self.statements: list[cst.SimpleStatementLine] = []
            self.blocks: list[tuple[cst.BaseStatement, ...]] = [tuple(module.body)]

        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            self.functions.append(node)

        def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
            self.functions.pop()

        def visit_ClassDef(self, node: cst.ClassDef) -> None:
            self.classes.append(node)

        def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
            self.classes.pop()

        def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
            self.blocks.append(tuple(node.body))

        def leave_IndentedBlock(self, original_node: cst.IndentedBlock) -> None:
            self.blocks.pop()

        def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
            self.statements.append(node)

        def leave_SimpleStatementLine(self, original_node: cst.SimpleStatementLine) -> None:
            self.statements.pop()

        def visit_Call(self, node: cst.Call) -> None:
            kind = _kind_of(node.func, aliases)
            if kind is None:
                return
            statement = self.statements[-1] if self.statements else None
            function = self.functions[-1] if self.functions else None
            classdef = self.classes[-1] if self.classes else None
            dataset = _argument(node, "dataset", 0) if kind == "DataLoader" else None
            hints = (
                tuple(_assigned(statement)) if statement is not None else (),
                (module.code_for_node(dataset.value),) if dataset is not None else (),
                tuple(f.name.value for f in reversed(self.functions)),
            )
            batch = _argument(node, "batch_size", 1) if kind == "DataLoader" else None
            size = batch.value if batch is not None else None
            where = positions[node]
            sites.append(
                _Site(
                    call=node,
                    kind=kind,
                    ordinal=len(sites),
                    start=where.start.line,
                    end=where.end.line,
                    hints=hints,
                    dataset_class=None
                    if dataset is None
                    else _class_of(dataset.value, module, function, classdef),
                    batch_size=int(size.evaluated_value) if isinstance(size, cst.Integer) else None,
                    statement=statement,
                    block=self.blocks[-1] if statement is not None else (),
                    function=function,
                    classdef=classdef,
                )
            )

    module.visit(Finder())
    return tuple(sites)


def _walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Every node under ``node`` in source order, ``node`` first."""
    yield node
    for child in node.children:
        yield from _walk(child)


def _argument(call: cst.Call, name: str, position: int | None) -> cst.Arg | None:
    """The argument passed as ``name=...``, else the ``position``-th positional one."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    if position is None:
        return None
    for index, arg in enumerate(call.args):
        if arg.keyword is not None or arg.star:
            return None  # past the positional arguments, or unknown after a *args
        if index == position:
            return arg
    return None


def _assigned(statement: cst.SimpleStatementLine) -> list[str]:
    import libcst as cst

    names = []
    for small in statement.body:
        targets: list[cst.BaseExpression] = []
        if isinstance(small, cst.Assign):
            targets = [t.target for t in small.targets]
        elif isinstance(small, cst.AnnAssign):
            targets = [small.target]
        for target in targets:
            names += [n.value for n in _walk(target) if isinstance(n, cst.Name)]
    return names


def _assignments(
    scope: cst.CSTNode, target: cst.BaseExpression, module: cst.Module
) -> list[tuple[cst.Assign | cst.AnnAssign, cst.BaseExpression]]:
    """The assignments of ``target`` (a name or ``self.attr``) in ``scope``, and their
    values; at module scope only the module's own top-level statements."""
    import libcst as cst

    wanted = module.code_for_node(target)
    if isinstance(scope, cst.Module):
        nodes: list[cst.CSTNode] = [
            small
            for statement in scope.body
            if isinstance(statement, cst.SimpleStatementLine)
            for small in statement.body
        ]
    else:
        nodes = list(_walk(scope))
    found: list[tuple[cst.Assign | cst.AnnAssign, cst.BaseExpression]] = []
    for node in nodes:
        if isinstance(node, cst.Assign) and len(node.targets) == 1:
            target_node: cst.BaseExpression = node.targets[0].target
        elif isinstance(node, cst.AnnAssign) and node.value is not None:
            target_node = node.target
        else:
            continue
        if node.value is not None and module.code_for_node(target_node) == wanted:
            found.append((node, node.value))
    return found


def _class_of(
    expression: cst.BaseExpression,
    module: cst.Module,
    function: cst.FunctionDef | None,
    classdef: cst.ClassDef | None,
) -> str | None:
    """The class a dataset is built from where the file says it: ``Cls(...)``, or a name
    (or ``self.attr``) assigned ``Cls(...)``."""
    import libcst as cst

    if isinstance(expression, cst.Call):
        func = expression.func
        if isinstance(func, cst.Attribute):
            return func.attr.value
        return func.value if isinstance(func, cst.Name) else None
    if not isinstance(expression, cst.Name | cst.Attribute):
        return None
    for scope in (function, classdef, module):
        if scope is not None:
            for _, value in _assignments(scope, expression, module):
                if isinstance(value, cst.Call):
                    return _class_of(value, module, None, None)
    return None


# -- small readers -------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    """``text`` split after each newline (``\\n``, ``\\r\\n``, ``\\r``), as Python counts lines."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z", text)


def _literal(node: cst.BaseExpression) -> tuple[bool, Scalar]:
    """(True, value) for an integer, True/False/None or a plain string; else (False, None)."""
    import libcst as cst

    if isinstance(node, cst.Integer):
        return True, int(node.evaluated_value)
    if isinstance(node, cst.Name) and node.value in ("True", "False", "None"):
        return True, {"True": True, "False": False, "None": None}[node.value]
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return (True, value) if isinstance(value, str) else (False, None)
    return False, None


def _dotted(node: cst.BaseExpression) -> list[str] | None:
    """``cfg.data.num_workers`` -> ``["cfg", "data", "num_workers"]``; None for anything
    but a name or a chain of attributes of one."""
    import libcst as cst

    if isinstance(node, cst.Name):
        return None if node.value in ("True", "False", "None") else [node.value]
    if isinstance(node, cst.Attribute):
        base = _dotted(node.value)
        return None if base is None else [*base, node.attr.value]
    return None


def _add_arguments(module: cst.Module) -> Iterator[cst.Call]:
    import libcst as cst

    for node in _walk(module):
        func = node.func if isinstance(node, cst.Call) else None
        if isinstance(func, cst.Attribute) and func.attr.value == "add_argument":
            assert isinstance(node, cst.Call)
            yield node


def _assigns(module: cst.Module) -> Iterator[cst.Assign | cst.AnnAssign]:
    import libcst as cst

    for node in _walk(module):
        if isinstance(node, cst.Assign | cst.AnnAssign):
            yield node


def _flags(call: cst.Call) -> str:
    """An ``add_argument`` call's option strings, the long one first (``--num-workers``)."""
    import libcst as cst

    flags = [
        str(a.value.evaluated_value)
        for a in call.args
        if a.keyword is None and isinstance(a.value, cst.SimpleString)
    ]
    return max(flags, key=lambda f: (f.startswith("--"), len(f)), default="?")


def _destination(call: cst.Call) -> str | None:
    """Where an ``add_argument`` call stores its value: ``dest=``, else its first long
    option (``--num-workers`` -> ``num_workers``), else its first option or name."""
    import libcst as cst

    dest = _argument(call, "dest", None)
    if dest is not None:
        known, value = _literal(dest.value)
        return value if known and isinstance(value, str) else None
    flags = [
        str(a.value.evaluated_value)
        for a in call.args
        if a.keyword is None and isinstance(a.value, cst.SimpleString)
    ]
    longs = [f for f in flags if f.startswith("--")]
    first = longs[0] if longs else (flags[0] if flags else None)
    return None if first is None else first.lstrip("-").replace("-", "_")


def _is_threads(call: cst.Call) -> bool:
    import libcst as cst

    func = call.func
    return (
        isinstance(func, cst.Attribute)
        and func.attr.value == "set_num_threads"
        and isinstance(func.value, cst.Name)
        and func.value.value == "torch"
    )


def _binds_torch(module: cst.Module, function: cst.FunctionDef | None) -> bool:
    """``torch`` is imported at the top of the module, or in the function."""
    import libcst as cst

    statements: list[cst.CSTNode] = list(module.body)
    if function is not None and isinstance(function.body, cst.IndentedBlock):
        statements += list(function.body.body)
    for statement in statements:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if isinstance(small, cst.Import) and any(
                a.asname is None and module.code_for_node(a.name).split(".")[0] == "torch"
                for a in small.names
            ):
                return True
    return False
