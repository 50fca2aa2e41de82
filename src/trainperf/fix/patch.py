"""A rewrite shown as a unified diff, and written with the original kept beside it."""

from __future__ import annotations

import difflib
import shutil
from typing import TYPE_CHECKING

from trainperf.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "ORIGINAL_SUFFIX",
    "read_source",
    "shown_path",
    "unified_diff",
    "write_keeping_original",
]

ORIGINAL_SUFFIX = ".orig"


def shown_path(path: Path, cwd: Path) -> str:
    """``path`` relative to ``cwd`` when it lies under it, else as given."""
    resolved = path.resolve()
    return str(resolved.relative_to(cwd)) if resolved.is_relative_to(cwd) else str(path)


def unified_diff(path: Path, before: str, after: str, cwd: Path) -> str:
    """The change of one file as ``git diff`` shows it (``a/`` and ``b/`` paths); empty
    when nothing changed."""
    name = shown_path(path, cwd)
    inside = not name.startswith("/")  # git's a/ and b/ only for paths it can apply
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"a/{name}" if inside else name,
        tofile=f"b/{name}" if inside else name,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def read_source(path: Path) -> str:
    """A source file's text with its line endings as they are (CRLF stays CRLF).
    Raises :class:`UsageError` for a file that is missing, unreadable or not UTF-8."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}; give a Python script or module") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def write_keeping_original(path: Path, before: str, after: str) -> Path:
    """Write ``after`` to ``path`` after copying the file to ``path.orig`` (``.orig.1``,
    ``.orig.2``... when one is there already). The copy is written first and the new
    text replaces the file in one rename, so an interruption leaves either file whole.
    Raises :class:`UsageError` when the file changed since it was read."""
    current = read_source(path)
    if current != before:
        raise UsageError(f"{path} changed while it was being fixed; run trainperf fix again")
    backup = path.with_name(path.name + ORIGINAL_SUFFIX)
    number = 0
    while backup.exists():
        number += 1
        backup = path.with_name(f"{path.name}{ORIGINAL_SUFFIX}.{number}")
    temporary = path.with_name(f".{path.name}.trainperf-fix")
    try:
        backup.write_text(before, encoding="utf-8", newline="")
        temporary.write_text(after, encoding="utf-8", newline="")
        for copy in (backup, temporary):
            shutil.copymode(path, copy)  # an executable script stays executable
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise UsageError(
            f"cannot write {path}: {exc.strerror or exc}; fix it where you can write, or "
            "apply the diff yourself"
        ) from None
    return backup
