"""``key=value`` log lines: one event per line, greppable, parseable.

    >>> format_kv("resource_limits", {"cpu_budget": 1.5, "gpus": 0, "note": "a b"})
    'resource_limits cpu_budget=1.5 gpus=0 note="a b"'

Nothing here configures logging: handlers and levels belong to the application.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Scalar", "format_kv", "log_kv", "parse_kv"]

# Strings spelled like the unquoted forms of None and booleans are quoted, so that
# a reader can tell the string "none" from None.
_RESERVED = frozenset({"none", "true", "false"})

Scalar = str | int | float | bool | None
"""A value a log field can hold."""


def _format_value(value: Scalar) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}"
    if isinstance(value, int):
        return str(value)
    plain = value not in _RESERVED and not any(c.isspace() or c in '"=\\' for c in value)
    if value and plain:
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def format_kv(event: str, fields: Mapping[str, Scalar]) -> str:
    """One line: the event name, then ``key=value`` pairs in the given order."""
    if not event or any(c.isspace() for c in event):
        raise ValueError(f"event must be one non-empty word, got {event!r}")
    parts = [event]
    for key, value in fields.items():
        if not key.isidentifier():
            raise ValueError(f"log field names must be identifiers, got {key!r}")
        parts.append(f"{key}={_format_value(value)}")
    return " ".join(parts)


def parse_kv(line: str) -> tuple[str, dict[str, str]]:
    """Inverse of :func:`format_kv`, for tests and log readers (values stay strings).

    Raises ``ValueError`` naming the position when the line is not ``key=value`` pairs.
    """
    try:
        return _parse(line)
    except (IndexError, ValueError):
        raise ValueError(f"not a key=value log line: {line[:80]!r}") from None


def _parse(line: str) -> tuple[str, dict[str, str]]:
    event, _, rest = line.partition(" ")
    fields: dict[str, str] = {}
    i = 0
    while i < len(rest):
        if rest[i] == " ":
            i += 1
            continue
        eq = rest.index("=", i)
        key = rest[i:eq]
        i = eq + 1
        if i < len(rest) and rest[i] == '"':
            i += 1
            chars: list[str] = []
            while rest[i] != '"':
                if rest[i] == "\\":
                    i += 1
                    chars.append("\n" if rest[i] == "n" else rest[i])
                else:
                    chars.append(rest[i])
                i += 1
            i += 1
            fields[key] = "".join(chars)
        else:
            end = rest.find(" ", i)
            end = len(rest) if end < 0 else end
            fields[key] = rest[i:end]
            i = end
    return event, fields


def log_kv(
    logger: logging.Logger,
    event: str,
    fields: Mapping[str, Scalar],
    *,
    level: int = logging.INFO,
) -> None:
    """Log one ``key=value`` line, formatting it only when the level is enabled."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s", format_kv(event, fields))
