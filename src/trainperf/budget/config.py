"""``[tool.trainperf.budget]`` in ``pyproject.toml``, and the marker that overrides it.

    [tool.trainperf.budget]
    import_time_s = { "mypkg" = 0.5, "mypkg.cli" = 0.2 }  # seconds per `import X`
    modules = { "mypkg" = 300 }              # modules `import X` newly loads
    import_repeats = 5                       # counted fresh interpreters per module (>= 5)
    max_step_slowdown = 0.10                 # a step may be 10% slower than its baseline
    baseline = ".trainperf/step-baselines.json"

``@pytest.mark.trainperf_budget(import_time_s={"mypkg": 0.5}, ...)`` takes the same
keys except ``baseline``; its ``import_time_s`` and ``modules`` are the imports that test
checks (they replace the project's), its other keys override the project's values.

A bad value raises :class:`~trainperf.errors.UsageError` naming the key, the value and
the fix (the plugin turns it into a ``pytest.UsageError``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeGuard

from trainperf.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = [
    "DEFAULT_BASELINE",
    "DEFAULT_IMPORT_REPEATS",
    "MIN_IMPORT_REPEATS",
    "SECTION",
    "Budget",
    "load_budget",
    "parse_budget",
]

SECTION = "[tool.trainperf.budget]"
DEFAULT_BASELINE = ".trainperf/step-baselines.json"
DEFAULT_IMPORT_REPEATS = 5
# Fewer fresh interpreters cannot bound the median at 95% (see budget/imports.py).
MIN_IMPORT_REPEATS = 5
_KEYS = ("import_time_s", "modules", "import_repeats", "max_step_slowdown", "baseline")
_MARKER_KEYS = tuple(k for k in _KEYS if k != "baseline")


@dataclass(frozen=True)
class Budget:
    """What a run or a test must stay within.

    ``import_time_s``: seconds ``import X`` may take in a fresh interpreter, by module.
    ``modules``: how many modules ``import X`` may newly load, by module.
    ``import_repeats``: counted fresh interpreters per module (one more warms up).
    ``max_step_slowdown``: fraction a test's median step may exceed its baseline's
    (0.1: 10%) on top of what :func:`~trainperf.monitoring.compare.compare_steps` needs.
    ``baseline``: the step-time baseline file, relative to the project root.
    """

    import_time_s: Mapping[str, float] = field(default_factory=dict)
    modules: Mapping[str, int] = field(default_factory=dict)
    import_repeats: int = DEFAULT_IMPORT_REPEATS
    max_step_slowdown: float = 0.0
    baseline: str = DEFAULT_BASELINE

    @property
    def imported(self) -> tuple[str, ...]:
        """The modules with an import budget, in the order they were written."""
        return tuple(dict.fromkeys([*self.import_time_s, *self.modules]))


def load_budget(pyproject: Path) -> Budget:
    """The budget in ``pyproject`` (defaults if the file or the section is absent)."""
    import tomllib

    if not pyproject.is_file():
        return Budget()
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {pyproject}: {exc}; fix the file") from None
    tool = data.get("tool", {})
    trainperf = tool.get("trainperf", {}) if isinstance(tool, dict) else {}
    section = trainperf.get("budget") if isinstance(trainperf, dict) else None
    if section is None:
        return Budget()
    if not isinstance(section, dict):
        raise UsageError(
            f"{SECTION} in {pyproject} must be a table, got {section!r}; write it as a "
            f'section with keys such as import_time_s = {{"mypkg" = 0.5}}'
        )
    return parse_budget(section, source=SECTION)


def parse_budget(
    values: Mapping[str, object], *, source: str, base: Budget | None = None
) -> Budget:
    """``values`` checked and laid over ``base`` (a marker's over the project's).

    ``source`` names where the values come from in error messages.
    """
    marker = base is not None
    known = _MARKER_KEYS if marker else _KEYS
    for key in values:
        if key not in known:
            if marker and key == "baseline":
                raise UsageError(
                    f"{source}: baseline is one file for the whole run; set it in "
                    f"{SECTION} in pyproject.toml"
                )
            raise UsageError(f"{source} has no key {key!r}; {_suggest(key, known)}")
    budget = base or Budget()
    import_time_s: Mapping[str, float] = {} if marker else budget.import_time_s
    modules: Mapping[str, int] = {} if marker else budget.modules
    if "import_time_s" in values:
        import_time_s = _table(values["import_time_s"], "import_time_s", source)
    if "modules" in values:
        counts = _table(values["modules"], "modules", source)
        modules = {name: int(limit) for name, limit in counts.items()}
    repeats = values.get("import_repeats", budget.import_repeats)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < MIN_IMPORT_REPEATS:
        raise UsageError(
            f"{source} import_repeats must be a whole number >= {MIN_IMPORT_REPEATS} "
            f"(fewer runs cannot bound the median import time at 95%), got {repeats!r}"
        )
    slowdown = values.get("max_step_slowdown", budget.max_step_slowdown)
    if not (_number(slowdown) and slowdown >= 0):
        raise UsageError(
            f"{source} max_step_slowdown must be a fraction >= 0 (0.1 allows a median "
            f"step 10% slower than its baseline), got {slowdown!r}"
        )
    path = values.get("baseline", budget.baseline)
    if not isinstance(path, str) or not path.strip():
        raise UsageError(
            f"{source} baseline must be a file path relative to the project root, "
            f'e.g. baseline = "{DEFAULT_BASELINE}", got {path!r}'
        )
    return Budget(
        import_time_s=import_time_s,
        modules=modules,
        import_repeats=repeats,
        max_step_slowdown=float(slowdown),
        baseline=path,
    )


def _table(value: object, key: str, source: str) -> dict[str, float]:
    """A ``{module: limit}`` table: dotted module names to positive numbers."""
    unit = "seconds" if key == "import_time_s" else "modules"
    example = '{"mypkg" = 0.5}' if key == "import_time_s" else '{"mypkg" = 300}'
    if not isinstance(value, dict):
        raise UsageError(
            f"{source} {key} must be a table of module name = {unit}, e.g. {key} = "
            f"{example}, got {value!r}"
        )
    checked: dict[str, float] = {}
    for name, limit in value.items():
        if not isinstance(name, str) or not all(p.isidentifier() for p in name.split(".")):
            raise UsageError(
                f"{source} {key}: {name!r} is not a module name such as 'pkg.module'; "
                f"write the name you would import"
            )
        whole = key != "modules" or (isinstance(limit, int) and not isinstance(limit, bool))
        if not (_number(limit) and float(limit) > 0 and whole):
            kind = "a positive number of seconds" if unit == "seconds" else "a whole number >= 1"
            raise UsageError(f"{source} {key}.{name} must be {kind}, got {limit!r}")
        checked[name] = float(limit)
    return checked


def _number(value: object) -> TypeGuard[int | float]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _suggest(key: str, known: tuple[str, ...]) -> str:
    import difflib

    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}the keys are {', '.join(known)}"
