"""TrueType fonts for the synthetic pages, taken from a dependency that ships them.

matplotlib carries the DejaVu family (a free license, see ``LICENSE_DEJAVU`` beside the
files); the path is found without importing matplotlib.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from trainperf.errors import MissingDependencyError

__all__ = ["font_paths"]

_FAMILY = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
)


def font_paths() -> tuple[Path, ...]:
    """The font files, always in the same order (page rendering depends on it)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("matplotlib (for its fonts)", "examples")
    folder = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"
    found = tuple(folder / name for name in _FAMILY if (folder / name).is_file())
    if not found:
        raise MissingDependencyError("matplotlib's DejaVu fonts", "examples")
    return found
