"""A one-line status on stderr for commands that take more than a moment.

Shown only when stderr is a terminal (so logs and pipes stay clean); each update
overwrites the previous one, and :meth:`Status.done` clears it.
"""

from __future__ import annotations

import sys
import time

__all__ = ["Status"]


class Status:
    def __init__(self, *, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.start = time.monotonic()
        self._width = 0

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        text = f"{message} [{time.monotonic() - self.start:.0f}s]"
        sys.stderr.write("\r" + text.ljust(self._width))
        sys.stderr.flush()
        self._width = len(text)

    def done(self) -> None:
        if self.enabled and self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()
            self._width = 0
