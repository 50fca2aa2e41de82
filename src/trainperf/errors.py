"""The exceptions trainperf raises on purpose.

Every one of them carries a message that names the bad value and the fix, so the
command line can print it as a single line and exit with status 2::

    TrainperfError            anything trainperf refuses to do, with the reason
    ├── UsageError            a bad flag, argument or TRAINPERF_* variable
    ├── EnvironmentProbeError the machine could not be inspected (unreadable root, ...)
    ├── RecordError           a saved record (JSON on disk) is malformed or foreign
    └── MissingDependencyError an optional extra is not installed

Later capabilities add their own subclasses here (calibration, cache, records).
"""

from __future__ import annotations

__all__ = [
    "EnvironmentProbeError",
    "MissingDependencyError",
    "RecordError",
    "TrainperfError",
    "UsageError",
]


class TrainperfError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class UsageError(TrainperfError):
    """A flag, argument, or ``TRAINPERF_*`` environment variable has a bad value."""


class EnvironmentProbeError(TrainperfError):
    """The machine (or the fake root standing in for it) cannot be inspected."""


class RecordError(TrainperfError):
    """A record read back from disk is malformed, truncated or not trainperf's."""


class MissingDependencyError(TrainperfError):
    """An optional dependency is missing; the message says which extra to install."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(f'{module} is not installed; pip install "trainperf[{extra}]"')
        self.module = module
        self.extra = extra
