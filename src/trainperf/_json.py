"""JSON types and checked readers for records read back from disk.

Records are plain JSON; reading one back goes through these helpers so that a
malformed or foreign file fails with one clear :class:`RecordError` naming the key,
instead of a ``KeyError`` deep inside.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from trainperf.errors import RecordError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

__all__ = [
    "Json",
    "JsonObject",
    "JsonScalar",
    "as_object",
    "objects",
    "opt_float",
    "opt_int",
    "opt_str",
    "read_lines",
    "req_float",
    "req_int",
    "req_list",
    "req_str",
]

Json: TypeAlias = "str | int | float | bool | list[Json] | dict[str, Json] | None"
JsonObject: TypeAlias = "dict[str, Json]"
JsonScalar: TypeAlias = "str | int | float | bool | None"
R = TypeVar("R")


def _missing(kind: str, key: str, value: Json) -> RecordError:
    return RecordError(f"expected {kind} for {key!r}, got {value!r}")


def opt_int(data: Mapping[str, Json], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _missing("an integer", key, value)
    return value


def req_int(data: Mapping[str, Json], key: str) -> int:
    value = opt_int(data, key)
    if value is None:
        raise RecordError(f"missing key {key!r}")
    return value


def opt_float(data: Mapping[str, Json], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _missing("a number", key, value)
    return float(value)


def req_float(data: Mapping[str, Json], key: str) -> float:
    value = opt_float(data, key)
    if value is None:
        raise RecordError(f"missing key {key!r}")
    return value


def opt_str(data: Mapping[str, Json], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _missing("a string", key, value)
    return value


def req_str(data: Mapping[str, Json], key: str) -> str:
    value = opt_str(data, key)
    if value is None:
        raise RecordError(f"missing key {key!r}")
    return value


def req_list(data: Mapping[str, Json], key: str) -> list[Json]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise _missing("a list", key, value)
    return value


def as_object(value: Json, what: str) -> JsonObject:
    if not isinstance(value, dict):
        raise RecordError(f"expected an object for {what}, got {value!r}")
    return value


def objects(value: object) -> list[JsonObject]:
    """The objects of a JSON list (anything else in it, or a value not a list, skipped):
    for reading records written by another version leniently."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _finite(constant: str) -> float:
    """JSON's non-standard ``NaN`` and ``Infinity``: no trainperf record holds them."""
    raise ValueError(f"{constant} is not a measurement")


def read_lines(path: Path, what: str, parse: Callable[[JsonObject], R]) -> tuple[R, ...]:
    """Every record of the JSON Lines file ``path``; none when it is missing. A torn
    last line (a writer killed mid-line) is skipped; any other bad line, ``NaN`` and
    ``Infinity`` included, raises :class:`RecordError` naming the file, the line and
    ``what`` a line should be."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return ()
    except UnicodeDecodeError:
        raise RecordError(f"{path} is not text; it is not a trainperf {what} record") from None
    found: list[R] = []
    for number, line in enumerate(lines, start=1):
        try:
            found.append(parse(as_object(json.loads(line, parse_constant=_finite), what)))
        except (ValueError, RecordError) as exc:
            if number == len(lines):
                break
            raise RecordError(f"{path}:{number}: not a trainperf {what} record ({exc})") from None
    return tuple(found)
