"""Small helpers the command modules share for printing results."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainperf._json import Json

__all__ = ["emit_json", "human_bytes"]


def emit_json(data: Json) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def human_bytes(value: int | None, *, none: str = "unlimited") -> str:
    """``1536 << 20`` -> ``'1.5 GiB'``."""
    if value is None:
        return none
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
