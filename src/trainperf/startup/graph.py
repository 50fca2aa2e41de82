"""The import graph of one start-up, and what each node alone keeps loaded.

Nodes are module names and the user's import statements (``"file:line"``); an edge
``a -> b`` says that loading ``a`` needs ``b``. Edges come from every import
statement that ran (traced, including those whose module was already loaded, which
``-X importtime`` does not show), from ``-X importtime``'s nesting (dynamic imports
through importlib), and from each submodule to its parent package.

The *exclusive* cost of a node is the cost of everything it dominates: modules every
path from the root to which passes through that node, i.e. those that would not be
loaded at all if the node were not (Cooper, Harvey & Kennedy's iterative algorithm,
"A Simple, Fast Dominance Algorithm", 2001).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["ROOT", "ImportGraph"]

ROOT = "<start>"


class ImportGraph:
    def __init__(self) -> None:
        self.succ: dict[str, list[str]] = {ROOT: []}
        self._seen: set[tuple[str, str]] = set()

    def add_edge(self, source: str, target: str) -> None:
        if source == target or (source, target) in self._seen:
            return
        self._seen.add((source, target))
        self.succ.setdefault(source, []).append(target)
        self.succ.setdefault(target, [])

    def add_edges(self, edges: Iterable[tuple[str, str]]) -> None:
        for source, target in edges:
            self.add_edge(source, target)

    def reachable(self, start: str, *, through: Mapping[str, bool] | None = None) -> set[str]:
        """Nodes reachable from ``start``; ``through[n] = False`` stops the walk at ``n``."""
        seen = {start}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for nxt in self.succ.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    if through is None or through.get(nxt, True):
                        queue.append(nxt)
        return seen

    def path(self, start: str, goal: str) -> list[str] | None:
        """A shortest path from ``start`` to ``goal``, or ``None``."""
        parent: dict[str, str | None] = {start: None}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if node == goal:
                out = []
                cursor: str | None = node
                while cursor is not None:
                    out.append(cursor)
                    cursor = parent[cursor]
                return out[::-1]
            for nxt in self.succ.get(node, ()):
                if nxt not in parent:
                    parent[nxt] = node
                    queue.append(nxt)
        return None

    def dominator_tree(self) -> dict[str, str]:
        """Immediate dominator of every node reachable from the root (root -> root)."""
        order = self._reverse_postorder()
        index = {node: i for i, node in enumerate(order)}
        preds: dict[str, list[str]] = {node: [] for node in order}
        for node in order:
            for nxt in self.succ.get(node, ()):
                if nxt in index:
                    preds[nxt].append(node)
        idom: dict[str, str] = {ROOT: ROOT}
        changed = True
        while changed:
            changed = False
            for node in order[1:]:
                candidates = [p for p in preds[node] if p in idom]
                new = candidates[0]
                for other in candidates[1:]:
                    new = _intersect(other, new, idom, index)
                if idom.get(node) != new:
                    idom[node] = new
                    changed = True
        return idom

    def exclusive(self, costs: Mapping[str, float]) -> dict[str, float]:
        """Each node's own cost plus the cost of every node it dominates."""
        idom = self.dominator_tree()
        children: dict[str, list[str]] = {}
        for node, parent in idom.items():
            if node != parent:
                children.setdefault(parent, []).append(node)
        total: dict[str, float] = {}
        # Post-order over the dominator tree, without recursion (trees can be deep).
        stack: list[tuple[str, bool]] = [(ROOT, False)]
        while stack:
            node, done = stack.pop()
            if done:
                total[node] = costs.get(node, 0.0) + sum(total[c] for c in children.get(node, ()))
            else:
                stack.append((node, True))
                stack.extend((c, False) for c in children.get(node, ()))
        return total

    def _reverse_postorder(self) -> list[str]:
        seen = {ROOT}
        post: list[str] = []
        stack: list[tuple[str, int]] = [(ROOT, 0)]
        while stack:
            node, i = stack.pop()
            successors = self.succ.get(node, [])
            if i < len(successors):
                stack.append((node, i + 1))
                nxt = successors[i]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, 0))
            else:
                post.append(node)
        return post[::-1]


def _intersect(a: str, b: str, idom: Mapping[str, str], index: Mapping[str, int]) -> str:
    while a != b:
        while index[a] > index[b]:
            a = idom[a]
        while index[b] > index[a]:
            b = idom[b]
    return a
