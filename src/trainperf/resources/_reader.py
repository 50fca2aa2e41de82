"""Reads small system files under an injectable root, turning garbage into warnings.

Detection must never crash on a strange machine: a missing file is normal (it means
"no such limit here"), and a file with unexpected contents is reported once as a
warning and then ignored, so the caller falls back to the next source.
"""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["SystemReader"]

logger = logging.getLogger("trainperf.resources")

# A limit file is a few bytes; anything longer than this is not what we expect.
_MAX_FILE_BYTES = 1 << 20


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

    def integer(self, path: Path, *, fallback: str) -> int | None:
        """A file holding one integer; garbage gives a warning and ``None``."""
        raw = self.text(path)
        if raw is None:
            return None
        try:
            return int(raw.strip())
        except ValueError:
            self.garbage(path, raw, "an integer", fallback)
            return None

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
