"""Which imports exist only because an optional package happens to be installed.

An import from package A of package B is *optional* when B's distribution is not
among the hard requirements (``Requires-Dist`` without an ``extra`` marker, followed
transitively) of A's distribution: A imports B because it found it, not because it
needs it (``lightning -> torchmetrics -> transformers`` is the classic). The
standard library and the user's own code are never optional.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["optional_edges"]

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _hard_requirements() -> dict[str, set[str]]:
    direct: dict[str, set[str]] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        needs = set()
        for requirement in dist.requires or ():
            marker = requirement.partition(";")[2]
            if "extra" in marker:
                continue
            match = _NAME.match(requirement)
            if match:
                needs.add(_normal(match[1]))
        direct[_normal(name)] = needs
    closure: dict[str, set[str]] = {}
    for name in direct:
        seen: set[str] = set()
        stack = [name]
        while stack:
            for need in direct.get(stack.pop(), ()):
                if need not in seen:
                    seen.add(need)
                    stack.append(need)
        closure[name] = seen
    return closure


def optional_edges(
    succ: Mapping[str, list[str]], module_files: Mapping[str, str | None]
) -> set[tuple[str, str]]:
    owners = {
        top: {_normal(d) for d in dists}
        for top, dists in importlib.metadata.packages_distributions().items()
    }
    requires = _hard_requirements()
    stdlib = sys.stdlib_module_names
    cut = set()
    for source, targets in succ.items():
        source_top = source.split(".", 1)[0]
        if source_top not in owners or source_top in stdlib:
            continue  # the user's code, the stdlib, the root: never optional
        for target in targets:
            target_top = target.split(".", 1)[0]
            if target_top == source_top or target_top in stdlib or target_top not in owners:
                continue
            needed = set().union(*(requires.get(d, set()) | {d} for d in owners[source_top]))
            if not owners[target_top] & needed:
                cut.add((source, target))
    return cut
