"""The record of one ``trainperf imports`` measurement: plain data, JSON both ways."""

from __future__ import annotations

from dataclasses import dataclass, field

from trainperf._json import (
    Json,
    JsonObject,
    as_object,
    opt_float,
    opt_str,
    req_float,
    req_int,
    req_list,
    req_str,
)
from trainperf._schema import IMPORTS

__all__ = [
    "ChainCost",
    "GroupCost",
    "ImportReport",
    "LineCost",
    "PackageCost",
    "TreeNode",
    "Verification",
]


@dataclass(frozen=True)
class LineCost:
    """One import statement of the user's code."""

    file: str
    line: int
    statement: str
    exclusive_s: float  # what would disappear if this statement were deferred
    cumulative_s: float  # what -X importtime charges to it (first imports under it)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class PackageCost:
    name: str
    self_s: float  # the package's own modules
    cumulative_s: float  # its modules and everything they import
    modules: int


@dataclass(frozen=True)
class ChainCost:
    """How a heavy package is reached: from a user's line, package by package."""

    package: str
    start: str  # "file:line" of the user's statement
    path: tuple[str, ...]  # package names, the user's first
    cost_s: float


@dataclass(frozen=True)
class GroupCost:
    """Statements of the entry point that, deferred together, drop a heavy package."""

    starts: tuple[str, ...]  # "file:line" of each statement
    saving_s: float  # import time that disappears when all of them are deferred
    packages: tuple[str, ...]  # the heavy packages that go with it


@dataclass(frozen=True)
class Verification:
    file: str
    line: int
    predicted_s: float
    measured_s: float

    @property
    def error(self) -> float:
        """Relative error of the prediction against the measurement."""
        return abs(self.predicted_s - self.measured_s) / max(abs(self.measured_s), 1e-9)


@dataclass(frozen=True)
class TreeNode:
    """A module in the ``-X importtime`` tree (small ones folded into "(other)")."""

    name: str
    self_s: float
    cumulative_s: float
    children: tuple[TreeNode, ...] = ()

    def to_json(self) -> Json:
        return [self.name, self.self_s, self.cumulative_s, [c.to_json() for c in self.children]]

    @classmethod
    def from_json(cls, data: Json) -> TreeNode:
        if isinstance(data, list) and len(data) == 4:
            name, own, cumulative, children = data
            numbers = all(isinstance(v, int | float) for v in (own, cumulative))
            if isinstance(name, str) and numbers and isinstance(children, list):
                return cls(
                    name,
                    float(own),  # type: ignore[arg-type]  # checked just above
                    float(cumulative),  # type: ignore[arg-type]  # checked just above
                    tuple(cls.from_json(c) for c in children),
                )
        from trainperf.errors import RecordError

        raise RecordError(f"not an import tree node: {str(data)[:60]}")


@dataclass(frozen=True)
class ImportReport:
    target: str
    runs: int
    total_s: float
    modules: int
    lines: tuple[LineCost, ...]
    packages: tuple[PackageCost, ...]
    chains: tuple[ChainCost, ...] = ()
    groups: tuple[GroupCost, ...] = ()
    optional_s: float = 0.0
    optional_packages: tuple[str, ...] = ()
    error: str | None = None
    verified: tuple[Verification, ...] = field(default=())
    tree: tuple[TreeNode, ...] = ()

    def to_json(self) -> JsonObject:
        return {
            "schema_version": IMPORTS.version,  # `trainperf imports --json`
            "target": self.target,
            "runs": self.runs,
            "total_s": self.total_s,
            "modules": self.modules,
            "lines": [
                {
                    "file": c.file,
                    "line": c.line,
                    "statement": c.statement,
                    "exclusive_s": c.exclusive_s,
                    "cumulative_s": c.cumulative_s,
                }
                for c in self.lines
            ],
            "packages": [
                {
                    "name": p.name,
                    "self_s": p.self_s,
                    "cumulative_s": p.cumulative_s,
                    "modules": p.modules,
                }
                for p in self.packages
            ],
            "chains": [
                {"package": c.package, "start": c.start, "path": list(c.path), "cost_s": c.cost_s}
                for c in self.chains
            ],
            "groups": [
                {"starts": list(g.starts), "saving_s": g.saving_s, "packages": list(g.packages)}
                for g in self.groups
            ],
            "optional_s": self.optional_s,
            "optional_packages": list(self.optional_packages),
            "error": self.error,
            "tree": [node.to_json() for node in self.tree],
            "verified": [
                {
                    "file": v.file,
                    "line": v.line,
                    "predicted_s": v.predicted_s,
                    "measured_s": v.measured_s,
                }
                for v in self.verified
            ],
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> ImportReport:
        def objects(key: str) -> list[JsonObject]:
            return [as_object(item, key) for item in req_list(data, key)]

        def strings(values: list[Json]) -> tuple[str, ...]:
            return tuple(str(v) for v in values)

        return cls(
            target=req_str(data, "target"),
            runs=req_int(data, "runs"),
            total_s=req_float(data, "total_s"),
            modules=req_int(data, "modules"),
            lines=tuple(
                LineCost(
                    req_str(o, "file"),
                    req_int(o, "line"),
                    req_str(o, "statement"),
                    req_float(o, "exclusive_s"),
                    req_float(o, "cumulative_s"),
                )
                for o in objects("lines")
            ),
            packages=tuple(
                PackageCost(
                    req_str(o, "name"),
                    req_float(o, "self_s"),
                    req_float(o, "cumulative_s"),
                    req_int(o, "modules"),
                )
                for o in objects("packages")
            ),
            chains=tuple(
                ChainCost(
                    req_str(o, "package"),
                    req_str(o, "start"),
                    strings(req_list(o, "path")),
                    req_float(o, "cost_s"),
                )
                for o in objects("chains")
            ),
            groups=tuple(
                GroupCost(
                    strings(req_list(o, "starts")),
                    req_float(o, "saving_s"),
                    strings(req_list(o, "packages")),
                )
                for o in objects("groups")
            ),
            optional_s=opt_float(data, "optional_s") or 0.0,
            optional_packages=strings(req_list(data, "optional_packages")),
            error=opt_str(data, "error"),
            tree=tuple(TreeNode.from_json(node) for node in req_list(data, "tree")),
            verified=tuple(
                Verification(
                    req_str(o, "file"),
                    req_int(o, "line"),
                    req_float(o, "predicted_s"),
                    req_float(o, "measured_s"),
                )
                for o in objects("verified")
            ),
        )
