"""``import trainperf`` and ``trainperf --help`` load no heavy module (STYLE habit 3)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import trainperf

HEAVY = ("torch", "lightning", "numpy", "matplotlib", "rich", "pandas", "scipy", "hydra")


def imported_modules(*args: str) -> set[str]:
    """Every module a fresh interpreter imports, parsed from ``-X importtime``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.add(name)
    assert names, proc.stderr  # the parse found something, so absence below means something
    return names


def heavy_in(names: set[str]) -> set[str]:
    return {n for n in names if n.split(".")[0] in HEAVY}


def test_import_trainperf_is_light() -> None:
    names = imported_modules("-c", "import trainperf")
    assert "trainperf" in names
    assert heavy_in(names) == set()


@pytest.mark.parametrize("argv", [["--help"], ["resources", "--help"], ["resources", "--json"]])
def test_cli_is_light(argv) -> None:
    names = imported_modules("-m", "trainperf", *argv)
    assert "trainperf.cli" in names
    assert heavy_in(names) == set()


def test_help_does_not_import_command_modules() -> None:
    names = imported_modules("-m", "trainperf", "--help")
    assert "trainperf.cli.resources" not in names
    assert "trainperf.resources" not in names


def test_the_check_would_catch_a_heavy_import() -> None:
    names = imported_modules("-c", "import trainperf, numpy")
    assert "numpy" in heavy_in(names)


def test_public_names_resolve() -> None:
    for name in trainperf.__all__:
        assert getattr(trainperf, name) is not None
    assert set(trainperf.__all__) <= set(dir(trainperf))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        trainperf.nope  # noqa: B018
