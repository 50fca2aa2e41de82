"""Parse CPython's ``-X importtime`` log into a tree of modules with their costs.

Each line is ``import time: SELF | CUMULATIVE | <indent>NAME`` in microseconds, in
post-order (a module is printed once its own imports are done) and indented two
spaces per nesting level. Lines that do not start with ``import time:`` are the
program's own stderr and are skipped; a line that does but cannot be read is an
error naming its number. A log cut short (a killed process) leaves children whose
parent never printed: they become roots and the tree is marked incomplete.

On CPython 3.14+, ``-X importtime=2`` also prints modules that were already loaded;
those lines repeat a name with ``cached`` costs and are folded into the first one.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trainperf.errors import TrainperfError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["ImportNode", "ImportTimeError", "ImportTree", "merge_runs", "parse_importtime"]

_PREFIX = "import time:"
_LINE = re.compile(r"^import time:\s*(\d+|cached)\s*\|\s*(\d+|cached)\s*\|( +)(\S.*)$")
_HEADER = re.compile(r"^import time:\s*self \[us\]\s*\|\s*cumulative\s*\|\s*imported package\s*$")


class ImportTimeError(TrainperfError):
    """An ``-X importtime`` log that cannot be read."""


@dataclass
class ImportNode:
    name: str
    self_us: int
    cumulative_us: int
    children: list[ImportNode] = field(default_factory=list)

    def walk(self) -> Iterable[ImportNode]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class ImportTree:
    roots: list[ImportNode]
    complete: bool = True

    def nodes(self) -> Iterable[ImportNode]:
        for root in self.roots:
            yield from root.walk()

    @property
    def total_us(self) -> int:
        return sum(root.cumulative_us for root in self.roots)

    def self_us(self) -> dict[str, int]:
        """Self time per module name."""
        return {node.name: node.self_us for node in self.nodes()}

    def edges(self) -> Iterable[tuple[str, str]]:
        """(importer, imported) for every first import the log shows nested."""
        for node in self.nodes():
            for child in node.children:
                yield node.name, child.name


def parse_importtime(text: str) -> ImportTree:
    pending: dict[int, list[ImportNode]] = {}
    seen: set[str] = set()
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.startswith(_PREFIX) or _HEADER.match(line):
            continue
        match = _LINE.match(line)
        if match is None:
            if number == len(lines) and not text.endswith("\n"):
                break  # the writer was killed mid-line
            shown = line if len(line) <= 80 else line[:77] + "..."
            raise ImportTimeError(
                f"line {number} of the -X importtime log is not 'import time: SELF | "
                f"CUMULATIVE | NAME': {shown!r}"
            )
        raw_self, raw_cumulative, indent, name = match.groups()
        if (len(indent) - 1) % 2:
            raise ImportTimeError(
                f"line {number} of the -X importtime log has an odd indent ({len(indent)} "
                f"spaces): {line!r}"
            )
        depth = (len(indent) - 1) // 2
        name = name.strip()
        cached = raw_self == "cached" or raw_cumulative == "cached"
        node = ImportNode(
            name,
            0 if cached else int(raw_self),
            0 if cached else int(raw_cumulative),
            pending.pop(depth + 1, []),
        )
        if cached and name in seen:
            # Already loaded: keep the nesting (its children), not a second cost.
            pending.setdefault(depth, []).extend(node.children)
            continue
        seen.add(name)
        pending.setdefault(depth, []).append(node)
    roots = pending.pop(0, [])
    complete = not pending
    for depth in sorted(pending):  # orphans of a truncated log
        roots.extend(pending[depth])
    return ImportTree(roots, complete)


def merge_runs(trees: Sequence[ImportTree]) -> tuple[ImportTree, dict[str, int]]:
    """The run whose total is the median, and each module's median self time."""
    if not trees:
        raise ImportTimeError("no -X importtime runs to merge")
    ordered = sorted(trees, key=lambda t: t.total_us)
    typical = ordered[(len(ordered) - 1) // 2]
    samples: dict[str, list[int]] = {}
    for tree in trees:
        for name, cost in tree.self_us().items():
            samples.setdefault(name, []).append(cost)
    return typical, {name: int(statistics.median(v)) for name, v in samples.items()}
