"""From probe runs to an :class:`ImportReport`: which of the user's lines cost what.

A statement's *exclusive* cost is what it alone keeps loaded (see :mod:`.graph`):
the import time that would disappear if it were deferred, with modules that other
statements also need left out. Its *cumulative* cost is what ``-X importtime``
charges to it: every module first loaded while it ran, shared or not.
"""

from __future__ import annotations

import ast
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.startup.graph import ROOT, ImportGraph
from trainperf.startup.importtime import merge_runs
from trainperf.startup.optional import optional_edges
from trainperf.startup.report import (
    ChainCost,
    GroupCost,
    ImportReport,
    LineCost,
    PackageCost,
    TreeNode,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from trainperf.startup.importtime import ImportNode
    from trainperf.startup.probe import ProbeRun, Target

__all__ = ["analyze", "is_line_node", "split_line_node"]

_US = 1e-6
# Packages whose cumulative cost is at least this share of the total get a chain.
_CHAIN_SHARE = 0.05
_MAX_CHAINS = 8


def is_line_node(node: str) -> bool:
    return ":" in node and (node.startswith("<") or "/" in node or "\\" in node)


def split_line_node(node: str) -> tuple[str, int]:
    file, _, line = node.rpartition(":")
    return file, int(line)


def analyze(target: Target, timing: Sequence[ProbeRun], trace: ProbeRun | None) -> ImportReport:
    typical, self_us = merge_runs([run.tree for run in timing])
    costs = {name: us * _US for name, us in self_us.items()}
    loaded = {node.name for node in typical.nodes()}
    graph = _build_graph(target, typical.edges(), loaded, trace)
    exclusive = graph.exclusive(costs)
    lines = _line_costs(graph, exclusive, costs, trace)
    packages = _package_costs(graph, costs, loaded)
    total = statistics.median(run.tree.total_us for run in timing) * _US
    skipped, optional_packages = _optional_cost(graph, costs, trace)
    return ImportReport(
        target=target.label,
        runs=len(timing),
        total_s=total,
        modules=len(loaded),
        lines=lines,
        packages=packages,
        chains=_chains(graph, lines, packages, total),
        groups=_groups(graph, costs, lines, packages, total),
        optional_s=skipped,
        optional_packages=optional_packages,
        error=next((run.error for run in timing if run.error), None),
        tree=tuple(_fold(root, total) for root in typical.roots if root.cumulative_us),
    )


# Tree nodes below this share of the total are folded into one "(other)" child.
_FOLD_SHARE = 0.002


def _fold(node: ImportNode, total: float) -> TreeNode:
    big = [c for c in node.children if c.cumulative_us * _US >= _FOLD_SHARE * total]
    small = [c for c in node.children if c.cumulative_us * _US < _FOLD_SHARE * total]
    children = [_fold(c, total) for c in big]
    if small:
        rest = sum(c.cumulative_us for c in small) * _US
        children.append(TreeNode(f"({len(small)} other)", rest, rest))
    return TreeNode(node.name, node.self_us * _US, node.cumulative_us * _US, tuple(children))


def _build_graph(
    target: Target,
    nesting: Iterable[tuple[str, str]],
    loaded: set[str],
    trace: ProbeRun | None,
) -> ImportGraph:
    graph = ImportGraph()
    edges = trace.edges if trace is not None else []
    file_module = {}
    if trace is not None:
        file_module = {f: name for name, f in trace.modules.items() if f}
    if target.kind == "module":
        graph.add_edge(ROOT, target.value)
    for source, imported in edges:
        if is_line_node(source):
            file, _ = split_line_node(source)
            owner = file_module.get(file)
            graph.add_edge(owner if owner else ROOT, source)
            if owner is None and target.kind == "module":
                continue  # a stray line from outside the target (e.g. site hooks)
        graph.add_edge(source, imported)
    # -X importtime's nesting adds the imports the tracer cannot see (importlib calls),
    # except under the user's modules, whose statements are traced line by line: an
    # edge from the module itself would bypass them.
    user_modules = {
        file_module[split_line_node(s)[0]]
        for s, _ in edges
        if is_line_node(s) and split_line_node(s)[0] in file_module
    }
    for parent, child in nesting:
        if parent not in user_modules:
            graph.add_edge(parent, child)
    for name in loaded:
        if "." in name:
            graph.add_edge(name, name.rsplit(".", 1)[0])
    # Modules -X importtime shows but no traced statement reached (imports the tracer
    # cannot see): keep them, as the root's own.
    for name in loaded:
        if name not in graph.succ:
            graph.add_edge(ROOT, name)
    return graph


def _line_costs(
    graph: ImportGraph,
    exclusive: Mapping[str, float],
    costs: Mapping[str, float],
    trace: ProbeRun | None,
) -> tuple[LineCost, ...]:
    if trace is None:
        return ()
    statements = _StatementIndex()
    out = []
    for node in graph.succ:
        if not is_line_node(node):
            continue
        file, line = split_line_node(node)
        statement = statements.text(file, line)
        if statement is None:
            continue  # not an import statement (a dynamic import inside a call)
        first = trace.first.get(node, [])
        out.append(
            LineCost(
                file=file,
                line=line,
                statement=statement,
                exclusive_s=exclusive.get(node, 0.0),
                cumulative_s=sum(costs.get(m, 0.0) for m in first),
            )
        )
    out.sort(key=lambda c: (-c.exclusive_s, -c.cumulative_s, c.file, c.line))
    return tuple(out)


class _StatementIndex:
    """Import statements of the user's files, by line, with their source text."""

    def __init__(self) -> None:
        self._files: dict[str, dict[int, str]] = {}

    def text(self, file: str, line: int) -> str | None:
        if file not in self._files:
            self._files[file] = self._index(file)
        return self._files[file].get(line)

    @staticmethod
    def _index(file: str) -> dict[int, str]:
        try:
            source = Path(file).read_text(encoding="utf-8")
            tree = ast.parse(source, file)
        except (OSError, SyntaxError, ValueError):
            return {}
        index = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                    continue
                text = " ".join((ast.get_source_segment(source, node) or "").split())
                for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                    index[line] = text
        return index


def _package_of(name: str) -> str:
    return name.split(".", 1)[0]


def _package_costs(
    graph: ImportGraph, costs: Mapping[str, float], loaded: set[str]
) -> tuple[PackageCost, ...]:
    members: dict[str, list[str]] = {}
    for name in loaded:
        members.setdefault(_package_of(name), []).append(name)
    own = {pkg: sum(costs.get(m, 0.0) for m in names) for pkg, names in members.items()}
    biggest = sorted(own, key=lambda p: -own[p])[:25]
    modules_only = {node: not is_line_node(node) for node in graph.succ}
    out = []
    for pkg in biggest:
        reach: set[str] = set()
        for name in members[pkg]:
            if name not in reach:
                reach |= graph.reachable(name, through=modules_only)
        cumulative = sum(costs.get(m, 0.0) for m in reach if not is_line_node(m))
        out.append(PackageCost(pkg, own[pkg], cumulative, len(members[pkg])))
    out.sort(key=lambda p: (-p.cumulative_s, p.name))
    return tuple(out)


def _chains(
    graph: ImportGraph,
    lines: Sequence[LineCost],
    packages: Sequence[PackageCost],
    total: float,
) -> tuple[ChainCost, ...]:
    """For each heavy package, the path from the costliest line that reaches it."""
    chains: list[ChainCost] = []
    # Start from the line -X importtime blames most: usually the one a reader suspects.
    by_cumulative = sorted(lines, key=lambda c: -c.cumulative_s)
    starts = [c.where for c in by_cumulative if c.exclusive_s > 0 or c.cumulative_s > 0]
    for package in packages:
        if package.cumulative_s < _CHAIN_SHARE * total or len(chains) >= _MAX_CHAINS:
            continue
        for start in starts:
            path = graph.path(start, package.name)
            if path is None:
                continue
            hops: list[str] = []
            for node in path[1:]:
                if is_line_node(node):
                    continue
                top = _package_of(node)
                if not hops or hops[-1] != top:
                    hops.append(top)
            chains.append(ChainCost(package.name, start, tuple(hops), package.cumulative_s))
            break
    return tuple(chains)


def _groups(
    graph: ImportGraph,
    costs: Mapping[str, float],
    lines: Sequence[LineCost],
    packages: Sequence[PackageCost],
    total: float,
) -> tuple[GroupCost, ...]:
    """For each heavy package: the entry point's statements that reach it, and what
    deferring all of them together saves (shared packages show 0 line by line)."""
    # The entry point's own statements: under the root for a script or code, under the
    # target module's node for a module.
    tops = {ROOT, *(n for n in graph.succ.get(ROOT, ()) if not is_line_node(n))}
    entry = [c.where for c in lines if any(c.where in graph.succ.get(t, ()) for t in tops)]
    reach = {start: graph.reachable(start) for start in entry}
    seen: dict[tuple[str, ...], GroupCost] = {}
    for package in packages:
        if package.cumulative_s < _CHAIN_SHARE * total:
            continue
        starts = tuple(s for s in entry if package.name in reach[s])
        if not starts or starts in seen:
            continue
        kept = ImportGraph()
        for source, targets in graph.succ.items():
            if source not in starts:
                for target in targets:
                    kept.add_edge(source, target)
        still = kept.reachable(ROOT)
        gone = {m for m in graph.succ if m not in still and not is_line_node(m)}
        seen[starts] = GroupCost(
            tuple(sorted(starts, key=split_line_node)),
            sum(costs.get(m, 0.0) for m in gone),
            tuple(p.name for p in packages if p.name in gone),
        )
    return tuple(sorted(seen.values(), key=lambda g: -g.saving_s))


def _optional_cost(
    graph: ImportGraph, costs: Mapping[str, float], trace: ProbeRun | None
) -> tuple[float, tuple[str, ...]]:
    """Cost that is there only because packages nobody requires are installed."""
    if trace is None:
        return 0.0, ()
    cut = optional_edges(graph.succ, trace.modules)
    if not cut:
        return 0.0, ()
    kept = ImportGraph()
    for source, targets in graph.succ.items():
        for target in targets:
            if (source, target) not in cut:
                kept.add_edge(source, target)
    still = kept.reachable(ROOT)
    gone = [m for m in graph.succ if m not in still and not is_line_node(m)]
    third_party = {t for _, t in cut}
    names = {_package_of(m) for m in gone} & {_package_of(t) for t in third_party}
    return sum(costs.get(m, 0.0) for m in gone), tuple(sorted(names))
