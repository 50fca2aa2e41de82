"""trainperf: find out why a PyTorch training pipeline is slow, and fix it.

``import trainperf`` is cheap on purpose: it loads no torch, numpy or rich. The
public names below are imported from their modules on first use.
"""

from __future__ import annotations

import importlib

from trainperf._version import __version__

# Not `from typing import TYPE_CHECKING`: importing typing alone costs ~10 ms, as much
# as everything else `import trainperf` does. Type checkers treat this name the same.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from trainperf.calibration.api import (
        Calibration,
        calibrate,
        calibrated_loader,
        find_max_batch_size,
    )
    from trainperf.calibration.config import LoaderConfig
    from trainperf.errors import TrainperfError
    from trainperf.fingerprint import Fingerprint, environment_fingerprint
    from trainperf.lazy import lazy_import
    from trainperf.markers import mark
    from trainperf.monitoring.session import monitor
    from trainperf.resources import ResourceLimits, detect_resources

__all__ = [
    "Calibration",
    "Fingerprint",
    "LoaderConfig",
    "ResourceLimits",
    "TrainperfError",
    "__version__",
    "calibrate",
    "calibrated_loader",
    "detect_resources",
    "environment_fingerprint",
    "find_max_batch_size",
    "lazy_import",
    "mark",
    "monitor",
]

_HOMES = {
    "Calibration": "trainperf.calibration.api",
    "LoaderConfig": "trainperf.calibration.config",
    "calibrate": "trainperf.calibration.api",
    "calibrated_loader": "trainperf.calibration.api",
    "find_max_batch_size": "trainperf.calibration.api",
    "Fingerprint": "trainperf.fingerprint",
    "ResourceLimits": "trainperf.resources",
    "TrainperfError": "trainperf.errors",
    "detect_resources": "trainperf.resources",
    "environment_fingerprint": "trainperf.fingerprint",
    "lazy_import": "trainperf.lazy",
    "mark": "trainperf.markers",
    "monitor": "trainperf.monitoring.session",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'trainperf' has no attribute {name!r}")
    value: object = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
