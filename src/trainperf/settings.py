"""Every ``TRAINPERF_*`` environment variable is read here, and only here.

A bad value is a :class:`~trainperf.errors.UsageError` naming the variable, the
value and the fix; an unset or empty variable means "use the default". Values are
checked when read, except the home folder, which is resolved only by the commands
that keep state (so a bad ``TRAINPERF_HOME`` cannot break ``trainperf resources``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from trainperf.exporters.spec import ExportSpec

__all__ = [
    "CALIBRATE_VARIABLE",
    "EAGER_IMPORTS_VARIABLE",
    "EXPORT_VARIABLE",
    "HOME_DIRNAME",
    "Settings",
    "calibrate_mode",
    "eager_imports",
    "export_specs",
]

EAGER_IMPORTS_VARIABLE = "TRAINPERF_EAGER_IMPORTS"

HOME_DIRNAME = ".trainperf"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Settings taken from the environment.

    ``home_variable``: ``TRAINPERF_HOME`` as given (see :meth:`home`).
    ``cpus``: an upper bound on the CPU budget (``TRAINPERF_CPUS``, a positive number;
    it can only lower what the machine allows, never raise it).
    ``no_color``: the ``NO_COLOR`` convention (any non-empty value).
    """

    home_variable: str | None = None
    cpus: float | None = None
    no_color: bool = False

    def __post_init__(self) -> None:
        if self.cpus is not None and not (math.isfinite(self.cpus) and self.cpus > 0):
            raise UsageError(
                f"TRAINPERF_CPUS must be a positive number of CPUs such as 4 or 1.5, "
                f"got {self.cpus}; fix or unset it"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            home_variable=env.get("TRAINPERF_HOME") or None,
            cpus=_positive_float(env, "TRAINPERF_CPUS"),
            no_color=bool(env.get("NO_COLOR", "")),
        )

    def home(self) -> Path:
        """Project state: ``TRAINPERF_HOME``, else ``.trainperf`` in the working folder."""
        try:
            if self.home_variable:
                return Path(self.home_variable).expanduser()
            return Path.cwd() / HOME_DIRNAME
        except RuntimeError as exc:  # "~nosuchuser/..."
            raise UsageError(
                f"TRAINPERF_HOME={self.home_variable!r} cannot be used ({exc}); "
                f"set it to a folder path"
            ) from None
        except OSError as exc:  # the working folder was deleted
            raise UsageError(
                f"the working folder is gone ({exc.strerror or exc}); cd into a project "
                f"folder or set TRAINPERF_HOME"
            ) from None


def eager_imports(environ: Mapping[str, str] | None = None) -> bool:
    """``TRAINPERF_EAGER_IMPORTS=1``: make every ``lazy_import`` eager (for tests)."""
    env = os.environ if environ is None else environ
    raw = env.get(EAGER_IMPORTS_VARIABLE, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise UsageError(f"{EAGER_IMPORTS_VARIABLE} must be 1 or 0, got {raw!r}; fix or unset it")


CALIBRATE_VARIABLE = "TRAINPERF_CALIBRATE"


def calibrate_mode(environ: Mapping[str, str] | None = None) -> str | None:
    """``TRAINPERF_CALIBRATE``: ``0`` (never measure), ``1`` (measure when nothing
    fresh is stored, the default) or ``force`` (always measure); ``None`` when unset."""
    env = os.environ if environ is None else environ
    raw = env.get(CALIBRATE_VARIABLE, "").strip().lower()
    if not raw:
        return None
    if raw in ("0", "1", "force"):
        return raw
    raise UsageError(f"{CALIBRATE_VARIABLE} must be 0, 1 or force, got {raw!r}; fix or unset it")


EXPORT_VARIABLE = "TRAINPERF_EXPORT"


def export_specs(environ: Mapping[str, str] | None = None) -> tuple[ExportSpec, ...]:
    """``TRAINPERF_EXPORT``: exporter specs separated by ``;`` (``tensorboard:DIR;wandb:DIR``),
    set by ``trainperf run --export``; none when unset."""
    from trainperf.errors import TrainperfError
    from trainperf.exporters.spec import parse_spec, split_specs

    env = os.environ if environ is None else environ
    try:
        return tuple(parse_spec(part) for part in split_specs(env.get(EXPORT_VARIABLE, "")))
    except TrainperfError as exc:
        raise UsageError(f"{EXPORT_VARIABLE}: {exc}; fix or unset it") from None


def _positive_float(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UsageError(
            f"{name} must be a positive number of CPUs such as 4 or 1.5, got {raw!r}; "
            f"fix or unset it"
        )
    return value
