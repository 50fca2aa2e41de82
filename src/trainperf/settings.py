"""Every ``TRAINPERF_*`` environment variable is read here, and only here.

A bad value is a :class:`~trainperf.errors.UsageError` naming the variable, the
value and the fix; an unset or empty variable means "use the default".
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

__all__ = ["Settings"]

HOME_DIRNAME = ".trainperf"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Settings taken from the environment.

    ``home``: where project state lives (``TRAINPERF_HOME``, default ``./.trainperf``).
    ``cpus``: an upper bound on the CPU budget (``TRAINPERF_CPUS``, a positive number;
    it can only lower what the machine allows, never raise it).
    ``no_color``: the ``NO_COLOR`` convention (any non-empty value).
    """

    home: Path
    cpus: float | None = None
    no_color: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home_raw = env.get("TRAINPERF_HOME", "")
        home = Path(home_raw).expanduser() if home_raw else Path.cwd() / HOME_DIRNAME
        return cls(
            home=home,
            cpus=_positive_float(env, "TRAINPERF_CPUS"),
            no_color=bool(env.get("NO_COLOR", "")),
        )


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
