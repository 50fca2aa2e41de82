"""`trainperf lint-imports`: static findings, what is left alone, and the cost store."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from _support import run_cli
from trainperf.errors import UsageError
from trainperf.startup.costs import PackageCostStore, PackageInfo
from trainperf.startup.lint import lint_imports

COSTS = {
    "bigpkg": PackageInfo("bigpkg", 2.0, frozenset({"bigpkg", "midpkg"}), True),
    "midpkg": PackageInfo("midpkg", 0.5, frozenset({"midpkg"}), True),
    "tinypkg": PackageInfo("tinypkg", 0.01, frozenset({"tinypkg"}), True),
    "plugin": PackageInfo("plugin", 0.9, frozenset({"plugin"}), True),
    "optpkg": PackageInfo("optpkg", 0.7, frozenset({"optpkg"}), True),
}


def cost_of(name: str) -> PackageInfo:
    return COSTS.get(name, PackageInfo(name, 0.0, frozenset({name}), False))


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname='p'\n")
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def test_flags_deferrable_heavy_imports_with_the_first_function(tmp_path) -> None:
    root = project(
        tmp_path,
        {
            "train.py": """
                import os
                import bigpkg
                import tinypkg
                from app import model

                def build():
                    return bigpkg.Thing()

                def main():
                    build(); model.make()

                if __name__ == "__main__":
                    main()
            """,
            "app/__init__.py": "",
            "app/model.py": "import midpkg\n\ndef make():\n    return midpkg.x\n",
        },
    )
    result = lint_imports([root / "train.py"], cost_of=cost_of)
    found = {(f.file, f.line, f.module): f for f in result.findings}
    big = found[("train.py", 3, "bigpkg")]
    assert big.cost_s == 2.0
    assert big.suggestion == "move the import into build() (first use, line 7)"
    assert big.chain == ("train.py",)
    via = found[("train.py", 5, "app")]
    assert "loads midpkg (0.50 s)" in via.suggestion
    assert "main()" in via.suggestion
    assert ("train.py", 4, "tinypkg") not in found  # below the threshold


def test_leaves_alone_what_cannot_simply_be_deferred(tmp_path) -> None:
    root = project(
        tmp_path,
        {
            "train.py": """
                from __future__ import annotations
                from typing import TYPE_CHECKING
                import bigpkg
                from midpkg import Base
                import plugin  # registers itself

                if TYPE_CHECKING:
                    import midpkg

                try:
                    import optpkg.fast as fast
                except ImportError:
                    fast = None

                @bigpkg.register
                class Model(Base):
                    pass

                def main():
                    import midpkg
                    return midpkg
            """,
        },
    )
    result = lint_imports([root / "train.py"], cost_of=cost_of, allow=["plugin"])
    assert result.findings == ()
    assert len(result.notes) == 1
    assert "train.py:12: optpkg.fast kept eager" in result.notes[0]
    assert "try/except ImportError" in result.notes[0]


def test_a_package_module_level_code_needs_is_not_flagged_elsewhere(tmp_path) -> None:
    # bigpkg loads midpkg; module-level code needs bigpkg, so deferring midpkg saves nothing.
    root = project(
        tmp_path,
        {"train.py": "import bigpkg\nimport midpkg\nX = bigpkg.y\n\ndef f():\n    midpkg.z\n"},
    )
    assert lint_imports([root / "train.py"], cost_of=cost_of).findings == ()


def test_the_bundled_entry_points(tmp_path) -> None:
    import trainperf.examples.ocr as ocr

    folder = Path(ocr.__file__).parent
    measured = {
        "lightning": PackageInfo("lightning", 4.0, frozenset({"lightning", "torch"}), True),
        "torch": PackageInfo("torch", 1.5, frozenset({"torch"}), True),
        "cv2": PackageInfo("cv2", 0.12, frozenset({"cv2", "numpy"}), True),
    }

    def costs(name: str) -> PackageInfo:
        return measured.get(name, PackageInfo(name, 0.0, frozenset({name}), True))

    eager = lint_imports([folder / "train_eager.py"], cost_of=costs)
    assert {f.module for f in eager.findings} >= {"lightning", "torch", "cv2"}
    assert lint_imports([folder / "train.py"], cost_of=costs).findings == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold_s": 0}, "--threshold must be a positive number"),
        ({"threshold_s": float("nan")}, "--threshold must be a positive number"),
        ({}, "no such file or folder"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message) -> None:
    with pytest.raises(UsageError, match=message):
        lint_imports([tmp_path / "missing.py"], cost_of=cost_of, **kwargs)


def test_a_syntax_error_names_the_line(tmp_path) -> None:
    root = project(tmp_path, {"bad.py": "import os\ndef broken(:\n"})
    with pytest.raises(UsageError, match=r"bad.py:2: not valid Python"):
        lint_imports([root / "bad.py"], cost_of=cost_of)


def test_costs_are_measured_once_and_stored(tmp_path) -> None:
    store_path = tmp_path / "costs.json"
    store = PackageCostStore(store_path, "fp1")
    first = store.get("colorsys")
    assert first.measured
    assert first.cost_s >= 0
    saved = json.loads(store_path.read_text())
    assert list(saved["entries"]["fp1"]) == [next(iter(saved["entries"]["fp1"]))]
    again = PackageCostStore(store_path, "fp1").get("colorsys")
    assert again == first  # read back, not re-measured (a fresh measurement would differ)


def test_a_foreign_store_is_left_untouched(tmp_path, caplog) -> None:
    store_path = tmp_path / "costs.json"
    store_path.write_text('{"something": "else"}')
    PackageCostStore(store_path, "fp1").get("colorsys")
    assert store_path.read_text() == '{"something": "else"}'
    assert "ignoring" in caplog.text


def test_cli_exit_codes_and_json(tmp_path) -> None:
    import trainperf.examples.ocr as ocr

    folder = Path(ocr.__file__).parent
    env = {"TRAINPERF_HOME": str(tmp_path / "home")}
    lazy = run_cli("lint-imports", str(folder / "train.py"), "--json", env=env)
    assert lazy.returncode == 0, lazy.stderr
    assert json.loads(lazy.stdout)["findings"] == []
    missing = run_cli("lint-imports", str(tmp_path / "nope.py"), env=env)
    assert missing.returncode == 2
    assert "no such file or folder" in missing.stderr


@pytest.mark.slow
def test_cli_flags_the_eager_entry_point(tmp_path) -> None:
    import trainperf.examples.ocr as ocr

    eager = Path(ocr.__file__).parent / "train_eager.py"
    proc = run_cli(
        "lint-imports", str(eager), "--json", env={"TRAINPERF_HOME": str(tmp_path / "home")}
    )
    assert proc.returncode == 1, proc.stderr
    modules = {f["module"] for f in json.loads(proc.stdout)["findings"]}
    assert {"lightning", "torch"} <= modules
    for finding in json.loads(proc.stdout)["findings"]:
        assert {"file", "line", "module", "cost_s", "chain", "suggestion"} <= set(finding)
