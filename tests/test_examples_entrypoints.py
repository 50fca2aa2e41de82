"""The example entry points, run as users run them: real Hydra, Lightning and workers."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from trainperf.markers import MARKERS_VARIABLE, read_markers

OCR_TINY = [
    "data.train_pages=16",
    "data.val_pages=4",
    "data.height=96",
    "data.width=96",
    "data.batch_size=4",
    "trainer.enable_progress_bar=false",
]


def run_module(module: str, *overrides: str, cwd, env=None, importtime: bool = False):
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run(
        [sys.executable, *flags, "-m", module, *overrides],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


def imported(stderr: str) -> set[str]:
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "switches",
    [
        ("data.num_workers=1",),
        ("data.fast_maps=true", "data.cache=true", "trainer.limit_val_batches=1"),
    ],
)
def test_ocr_trains_a_few_steps_and_leaves_no_files(tmp_path, switches) -> None:
    markers = tmp_path.parent / f"{tmp_path.name}-markers.jsonl"
    cache = tmp_path.parent / f"{tmp_path.name}-cache"
    if "data.cache=true" in switches:
        switches = (*switches, f"data.cache_dir={cache}")
    proc = run_module(
        "trainperf.examples.ocr.train",
        "trainer.max_steps=3",
        *switches,
        *OCR_TINY,
        cwd=tmp_path,
        env={MARKERS_VARIABLE: str(markers)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"ocr: hmean=\d\.\d{3} precision=", proc.stdout)
    assert [m.name for m in read_markers(markers)] == ["config_validated", "first_step"]
    assert list(tmp_path.iterdir()) == []  # no outputs/, lightning_logs/, checkpoints
    if "data.cache=true" in switches:  # the label maps went to the cache, checksummed
        from trainperf.cache.dataset import verify_folder

        report = verify_folder(cache)
        assert report.entries > 0
        assert report.ok


@pytest.mark.slow
def test_ocr_bad_override_fails_before_torch_loads(tmp_path) -> None:
    proc = run_module(
        "trainperf.examples.ocr.train", "trainer.max_epochs=abc", cwd=tmp_path, importtime=True
    )
    assert proc.returncode != 0
    assert "max_epochs" in proc.stderr
    names = imported(proc.stderr)
    assert "hydra" in names
    assert "torch" not in names
    assert "lightning" not in names


@pytest.mark.slow
def test_ocr_eager_twin_loads_torch_before_the_same_error(tmp_path) -> None:
    proc = run_module(
        "trainperf.examples.ocr.train_eager",
        "trainer.max_epochs=abc",
        cwd=tmp_path,
        importtime=True,
    )
    assert proc.returncode != 0
    assert "max_epochs" in proc.stderr
    assert {"torch", "lightning"} <= imported(proc.stderr)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.height=100", "data.height must be a multiple of 32, at least 64, got 100"),
        ("data.num_workers=-1", "data.num_workers must be >= 0, got -1"),
    ],
)
def test_ocr_range_errors_are_one_line(tmp_path, override, message) -> None:
    proc = run_module("trainperf.examples.ocr.train", override, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {message}"


@pytest.mark.slow
def test_digits_lightning_learns(tmp_path) -> None:
    proc = run_module(
        "trainperf.examples.digits.train",
        "trainer.max_epochs=3",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    accuracy = float(re.search(r"test accuracy=(\d\.\d+) \(loop=lightning\)", proc.stdout)[1])
    assert accuracy > 0.7  # chance is 0.1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_digits_manual_loop_with_workers_learns(tmp_path) -> None:
    proc = run_module(
        "trainperf.examples.digits.train",
        "loop=manual",
        "data.num_workers=2",
        "trainer.max_epochs=3",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    accuracy = float(re.search(r"test accuracy=(\d\.\d+) \(loop=manual\)", proc.stdout)[1])
    assert accuracy > 0.7


@pytest.mark.slow
def test_digits_manual_loop_without_an_epoch_limit_stops_at_max_steps(tmp_path) -> None:
    proc = run_module(
        "trainperf.examples.digits.train",
        "loop=manual",
        "data.num_workers=0",
        "trainer.max_epochs=-1",
        "trainer.max_steps=60",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    accuracy = float(re.search(r"test accuracy=(\d\.\d+)", proc.stdout)[1])
    assert accuracy > 0.5


@pytest.mark.slow
def test_digits_rejects_an_unknown_loop(tmp_path) -> None:
    proc = run_module("trainperf.examples.digits.train", "loop.name=fancy", cwd=tmp_path)
    assert proc.returncode == 2
    assert "loop must be one of lightning, manual, got fancy" in proc.stderr
