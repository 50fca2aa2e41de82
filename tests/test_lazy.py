"""lazy_import: imports on first use, once, from any thread; pickles; clear errors."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import threading

import pytest

import trainperf
from trainperf.errors import UsageError
from trainperf.lazy import LazyModule
from trainperf.settings import EAGER_IMPORTS_VARIABLE


def run(code: str, tmp_path, **env: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path), **env},
        check=True,
    ).stdout


@pytest.fixture
def counted(tmp_path):
    """A module that counts how often it is imported, in a file."""
    (tmp_path / "counted.py").write_text(
        "import pathlib\n"
        "_p = pathlib.Path(__file__).with_name('count')\n"
        "_p.write_text(str(int(_p.read_text() or 0) + 1) if _p.exists() else '1')\n"
        "VALUE = 42\n"
    )
    return tmp_path


def test_nothing_is_imported_until_first_use(counted) -> None:
    out = run(
        """
        import sys, trainperf
        m = trainperf.lazy_import("counted")
        print("counted" in sys.modules, repr(m))
        print(m.VALUE, "counted" in sys.modules, repr(m))
        """,
        counted,
    )
    assert out.splitlines() == [
        "False <lazy module 'counted' (not loaded yet)>",
        "42 True <lazy module 'counted' (loaded)>",
    ]


def test_first_use_from_many_threads_imports_once(counted) -> None:
    out = run(
        """
        import threading, trainperf
        m = trainperf.lazy_import("counted")
        go = threading.Barrier(8)
        seen = []
        def use():
            go.wait()
            seen.append(m.VALUE)
        threads = [threading.Thread(target=use) for _ in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print(seen.count(42))
        """,
        counted,
    )
    assert out.strip() == "8"
    assert (counted / "count").read_text() == "1"


def test_eager_mode_imports_at_once(counted) -> None:
    out = run(
        """
        import sys, trainperf
        m = trainperf.lazy_import("counted")
        print("counted" in sys.modules, type(m).__name__)
        """,
        counted,
        **{EAGER_IMPORTS_VARIABLE: "1"},
    )
    assert out.split() == ["True", "module"]


def test_bad_eager_value_is_a_usage_error(monkeypatch) -> None:
    monkeypatch.setenv(EAGER_IMPORTS_VARIABLE, "maybe")
    with pytest.raises(UsageError, match="TRAINPERF_EAGER_IMPORTS must be 1 or 0, got 'maybe'"):
        trainperf.lazy_import("colorsys_not_loaded_anyway")


def test_a_failing_import_names_both_sites() -> None:
    proxy = trainperf.lazy_import("no_such_module_here")  # declared on this line
    declared = sys._getframe().f_lineno - 1
    with pytest.raises(ImportError) as caught:
        proxy.anything  # noqa: B018  # used on this line
    used = sys._getframe().f_lineno - 1
    message = str(caught.value)
    assert f"test_lazy.py:{declared}" in message
    assert f"test_lazy.py:{used}" in message
    assert "No module named 'no_such_module_here'" in message


def test_already_imported_modules_come_back_as_themselves() -> None:
    assert trainperf.lazy_import("os") is os


def test_pickles_by_name_and_stays_lazy(monkeypatch) -> None:
    # Not loaded yet, whatever other tests imported: else the module itself comes back.
    monkeypatch.delitem(sys.modules, "xml.dom.minidom", raising=False)
    proxy = trainperf.lazy_import("xml.dom.minidom")
    again = pickle.loads(pickle.dumps(proxy))
    assert isinstance(again, LazyModule)
    assert again.__name__ == "xml.dom.minidom"
    assert again.parseString("<a/>").documentElement.tagName == "a"


def test_usable_as_a_module_attribute_in_threads_without_a_loaded_module() -> None:
    proxy = trainperf.lazy_import("colorsys")
    results: list[float] = []
    threads = [
        threading.Thread(target=lambda: results.append(proxy.rgb_to_hsv(1, 0, 0)[0]))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [0.0] * 4


@pytest.mark.slow
def test_spawned_dataloader_workers_use_a_lazy_module(tmp_path) -> None:
    (tmp_path / "lazy_ds.py").write_text(
        textwrap.dedent(
            """
            import trainperf
            np = trainperf.lazy_import("numpy")

            class Squares:
                def __len__(self):
                    return 4

                def __getitem__(self, i):
                    return float(np.square(i))
            """
        )
    )
    out = run(
        """
        import torch
        from torch.utils.data import DataLoader
        from lazy_ds import Squares
        if __name__ == "__main__":
            loader = DataLoader(Squares(), batch_size=4, num_workers=1,
                                multiprocessing_context="spawn")
            print(next(iter(loader)).tolist())
        """,
        tmp_path,
    )
    assert out.strip() == "[0.0, 1.0, 4.0, 9.0]"
