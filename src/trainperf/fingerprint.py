"""The environment signature shared by calibration, the cache and run records.

Two measurements are comparable only when their fingerprints match: the same CPU
model and budget, cgroup limits, memory, OS, Python, torch/CUDA and GPUs, and the
same number of ranks. Volatile figures (free memory, load) are left out so that the
fingerprint of one machine is stable from run to run.

    >>> fp = environment_fingerprint()
    >>> fp.digest == environment_fingerprint().digest
    True

Nothing here imports torch: its version comes from the installed package metadata
and its CUDA version from the literal assignments in ``torch/version.py``.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainperf._json import Json, JsonObject, as_object, req_int
from trainperf.errors import RecordError
from trainperf.resources import ResourceLimits, detect_resources

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["FINGERPRINT_SCHEMA", "Fingerprint", "environment_fingerprint"]

FINGERPRINT_SCHEMA = 1
# Host RAM is rounded to this so that a kernel reserving a few more pages after an
# update does not make the same machine look new.
_MEMORY_GRAIN = 256 << 20

Component = str | int | float | None


@dataclass(frozen=True)
class Fingerprint:
    """Named components and a short digest of them; compare with ``==`` or :meth:`diff`."""

    components: Mapping[str, Component]

    @property
    def digest(self) -> str:
        canonical = json.dumps(
            {"schema": FINGERPRINT_SCHEMA, **self.components}, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def diff(self, other: Fingerprint) -> dict[str, tuple[Component, Component]]:
        """Components that differ, as ``{name: (mine, theirs)}``."""
        names = sorted(set(self.components) | set(other.components))
        return {
            name: (self.components.get(name), other.components.get(name))
            for name in names
            if self.components.get(name) != other.components.get(name)
        }

    def describe_diff(self, other: Fingerprint) -> str:
        """One line such as ``cpu_budget 2 -> 1.5, torch 2.4.0 -> 2.5.1``."""
        changes = self.diff(other)
        if not changes:
            return "same environment"
        return ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changes.items())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fingerprint) and self.digest == other.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def to_json(self) -> JsonObject:
        components: JsonObject = dict(self.components)
        return {"schema": FINGERPRINT_SCHEMA, "digest": self.digest, "components": components}

    @classmethod
    def from_json(cls, data: JsonObject) -> Fingerprint:
        schema = req_int(data, "schema")
        if schema != FINGERPRINT_SCHEMA:
            raise RecordError(
                f"fingerprint schema {schema} is not {FINGERPRINT_SCHEMA}; the record was "
                f"written by another trainperf version, re-run the measurement"
            )
        raw = as_object(data.get("components"), "fingerprint components")
        components: dict[str, Component] = {}
        for name, value in raw.items():
            if not (value is None or isinstance(value, str | int | float)):
                raise RecordError(f"fingerprint component {name!r} is not a scalar: {value!r}")
            components[name] = value
        fingerprint = cls(components)
        if data.get("digest") not in (None, fingerprint.digest):
            raise RecordError("fingerprint digest does not match its components; file edited?")
        return fingerprint


def environment_fingerprint(resources: ResourceLimits | None = None) -> Fingerprint:
    """Fingerprint this environment (detecting resources unless they are given)."""
    limits = detect_resources() if resources is None else resources
    torch_version = _distribution_version("torch")
    memory = limits.memory_total_bytes
    components: dict[str, Component] = {
        "cpu_model": limits.cpu_model,
        "host_cpus": limits.host_cpus,
        "cpu_budget": limits.cpu_budget,
        "cgroup_cpu_quota": limits.cgroup_cpu_quota,
        "memory_total": None if memory is None else _nearest(memory, _MEMORY_GRAIN),
        "memory_limit": limits.memory_limit_bytes,
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": f"{sys.implementation.name} {platform.python_version()}",
        "torch": torch_version,
        "cuda": _torch_cuda_version() if torch_version else None,
        "gpus": ", ".join(g.name for g in limits.gpus) or None,
        "local_world_size": limits.local_world_size,
        "world_size": limits.world_size,
    }
    return Fingerprint(components)


def _nearest(value: int, grain: int) -> int:
    """``value`` rounded to a multiple of ``grain`` (integers: no float overflow)."""
    return (value + grain // 2) // grain * grain


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _torch_cuda_version() -> str | None:
    """``torch.version.cuda`` read without importing torch (``None`` for CPU builds)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        version: Json = getattr(getattr(torch, "version", None), "cuda", None)
        return version if isinstance(version, str) else None
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        target: ast.expr | None = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and target.id == "cuda":
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value
            return None
    return None
