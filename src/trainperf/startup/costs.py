"""What importing one third-party package costs in *this* environment, measured once.

``trainperf lint-imports`` needs to know which packages are heavy. Each is imported
alone in a fresh interpreter under ``-X importtime``, and the cost and the packages
it loads are stored in ``.trainperf/import_costs.json`` under the environment
fingerprint and the package's version, so the next run measures nothing. When a
package cannot be imported alone, a built-in estimate is used and marked as such.
A store that is corrupt or not trainperf's is reported once and left untouched.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainperf._schema import IMPORT_COSTS
from trainperf.errors import RecordError
from trainperf.startup.importtime import ImportTimeError, parse_importtime

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["KNOWN_COSTS", "PackageCostStore", "PackageInfo"]

logger = logging.getLogger("trainperf.startup")

# Rough import costs on a 2-core machine, used only when a measurement fails.
KNOWN_COSTS = {
    "lightning": 4.0,
    "pytorch_lightning": 4.0,
    "torch": 1.5,
    "tensorflow": 3.0,
    "jax": 1.0,
    "transformers": 2.0,
    "timm": 1.5,
    "wandb": 1.0,
    "deepspeed": 2.0,
    "torchvision": 0.5,
    "sklearn": 0.6,
    "scipy": 0.5,
    "pandas": 0.4,
    "matplotlib": 0.3,
    "numba": 0.5,
    "cv2": 0.12,
}


@dataclass(frozen=True)
class PackageInfo:
    name: str
    cost_s: float
    loads: frozenset[str]  # top-level packages importing it loads
    measured: bool


class PackageCostStore:
    def __init__(self, path: Path, fingerprint: str, *, python: str = sys.executable) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.python = python
        self._data, self._writable = self._read()

    def _read(self) -> tuple[dict[str, dict[str, object]], bool]:
        if not self.path.exists():
            return {}, True
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or IMPORT_COSTS.found(data) is None:
                raise ValueError("not a trainperf import-cost store")
            IMPORT_COSTS.check(data, source=str(self.path))  # another version's
            if not isinstance(data.get("entries"), dict):
                raise ValueError("not a trainperf import-cost store")
            entries = data["entries"].get(self.fingerprint, {})
            if not isinstance(entries, dict):
                raise ValueError("malformed entries")
            return entries, True
        except RecordError as exc:  # one line naming the file, its version and the fix
            logger.warning("%s", exc)
            return {}, False
        except (OSError, ValueError, AttributeError) as exc:
            logger.warning(
                "ignoring %s (%s); measuring afresh and leaving the file as it is", self.path, exc
            )
            return {}, False

    def get(self, package: str) -> PackageInfo:
        """What importing ``package`` alone costs: a top-level package, or a dotted module
        (``scipy.linalg``: its package included), measured once per version."""
        key = f"{package}=={_version(package.partition('.')[0])}"
        cached = self._data.get(key)
        if isinstance(cached, dict) and isinstance(cached.get("cost_s"), int | float):
            loads = cached.get("loads")
            return PackageInfo(
                package,
                float(cached["cost_s"]),  # type: ignore[arg-type]  # checked above
                frozenset(str(x) for x in loads) if isinstance(loads, list) else frozenset(),
                bool(cached.get("measured", True)),
            )
        info = self._measure(package)
        self._data[key] = {
            "cost_s": info.cost_s,
            "loads": sorted(info.loads),
            "measured": info.measured,
        }
        self._save()
        return info

    def _measure(self, package: str) -> PackageInfo:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONIMPORTTIME"}
        proc = subprocess.run(
            [self.python, "-X", "importtime", "-c", f"import {package}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        with contextlib.suppress(ImportTimeError):
            tree = parse_importtime(proc.stderr)
            root = next((r for r in tree.roots if r.name == package), None)
            if proc.returncode == 0 and root is not None:
                loads = {node.name.split(".", 1)[0] for node in root.walk()}
                return PackageInfo(package, root.cumulative_us / 1e6, frozenset(loads), True)
        return PackageInfo(package, KNOWN_COSTS.get(package, 0.0), frozenset({package}), False)

    def _save(self) -> None:
        if not self._writable:
            return
        try:
            existing = (
                json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}
            )
            entries = existing.get("entries", {}) if isinstance(existing, dict) else {}
            entries[self.fingerprint] = self._data
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".json.tmp")
            temporary.write_text(
                json.dumps(IMPORT_COSTS.stamp({"entries": entries}), indent=1), encoding="utf-8"
            )
            temporary.replace(self.path)  # atomic: a reader never sees half a file
        except (OSError, ValueError) as exc:
            logger.warning("could not save import costs to %s: %s", self.path, exc)


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _version(package: str) -> str:
    try:
        dists = _distributions().get(package, [])
        return importlib.metadata.version(dists[0]) if dists else "unknown"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
