"""Reads small system files under an injectable root, turning garbage into warnings.

Detection must never crash on a strange machine: a missing file is normal (it means
"no such limit here"), and a file with unexpected contents is reported once as a
warning and then ignored, so the caller falls back to the next source.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["MAX_COUNTER", "SystemReader"]

logger = logging.getLogger("trainperf.resources")

# A limit file is a few bytes; anything longer than this is not what we expect.
_MAX_FILE_BYTES = 1 << 20
# The kernel's counters are 64-bit: a number at or past this is not a real reading.
MAX_COUNTER = 1 << 64


class SystemReader:
    """Files under ``root`` (``/`` on a real machine, a fake tree in tests)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.warnings: list[str] = []

    def path(self, relative: str) -> Path:
        return self.root / relative.lstrip("/")

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            logger.warning("%s", message)

    def text(self, relative: str | Path) -> str | None:
        """The file's text, or ``None`` when it is missing or unreadable."""
        path = relative if isinstance(relative, Path) else self.path(relative)
        try:
            with path.open("rb") as handle:
                data = handle.read(_MAX_FILE_BYTES)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            self.warn(f"cannot read {self.show(path)}: {exc.strerror or exc}; ignoring it")
            return None
        return data.decode("utf-8", errors="replace")

    # os.path's probes return False on any OSError (an unreadable folder, a loop), where
    # Path.is_dir() raises PermissionError: detection must not crash on either.
    @staticmethod
    def is_dir(path: Path) -> bool:
        return os.path.isdir(path)

    @staticmethod
    def is_file(path: Path) -> bool:
        return os.path.isfile(path)

    def children(self, path: Path) -> list[Path]:
        """Sub-folders of ``path``, sorted; unreadable means none (with a warning)."""
        try:
            names = sorted(os.listdir(path))
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.warn(f"cannot list {self.show(path)}: {exc.strerror or exc}; ignoring it")
            return []
        return [path / name for name in names if os.path.isdir(path / name)]

    def integer(self, path: Path, *, fallback: str) -> int | None:
        """A file holding one integer; garbage gives a warning and ``None``."""
        raw = self.text(path)
        if raw is None:
            return None
        try:
            value = int(raw.strip())
            if abs(value) >= MAX_COUNTER:
                raise ValueError
        except ValueError:
            self.garbage(path, raw, "an integer", fallback)
            return None
        return value

    def garbage(self, path: Path, raw: str, expected: str, fallback: str) -> None:
        shown = raw.strip()
        if len(shown) > 40:
            shown = shown[:37] + "..."
        self.warn(f"ignoring {self.show(path)}: expected {expected}, got {shown!r}; {fallback}")

    def show(self, path: Path) -> str:
        """The path as it would be on the inspected machine (``/sys/...``)."""
        try:
            return "/" + str(path.relative_to(self.root))
        except ValueError:
            return str(path)
