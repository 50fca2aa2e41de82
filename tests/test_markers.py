from __future__ import annotations

import os
import subprocess
import sys

import pytest

import trainperf
from trainperf.errors import RecordError
from trainperf.markers import MARKERS_VARIABLE, read_markers


def test_mark_without_listener_writes_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(MARKERS_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    trainperf.mark("config_validated")
    assert list(tmp_path.iterdir()) == []


def test_marks_are_appended_in_order(tmp_path, monkeypatch) -> None:
    path = tmp_path / "markers.jsonl"
    monkeypatch.setenv(MARKERS_VARIABLE, str(path))
    trainperf.mark("config_validated")
    trainperf.mark("first_step")

    markers = read_markers(path)
    assert [m.name for m in markers] == ["config_validated", "first_step"]
    assert markers[0].time <= markers[1].time
    assert {m.pid for m in markers} == {os.getpid()}


def test_marks_from_another_process_carry_its_pid(tmp_path) -> None:
    path = tmp_path / "markers.jsonl"
    child = subprocess.run(
        [sys.executable, "-c", "import os, trainperf; trainperf.mark('child'); print(os.getpid())"],
        env={**os.environ, MARKERS_VARIABLE: str(path)},
        capture_output=True,
        text=True,
        check=True,
    )
    (marker,) = read_markers(path)
    assert marker.name == "child"
    assert marker.pid == int(child.stdout)


def test_a_torn_last_line_is_skipped(tmp_path, monkeypatch) -> None:
    path = tmp_path / "markers.jsonl"
    monkeypatch.setenv(MARKERS_VARIABLE, str(path))
    trainperf.mark("one")
    with path.open("a") as handle:
        handle.write('{"name": "tw')  # the writer was killed mid-line
    assert [m.name for m in read_markers(path)] == ["one"]


def test_garbage_in_the_middle_is_an_error(tmp_path) -> None:
    path = tmp_path / "markers.jsonl"
    path.write_text('not json\n{"name": "x", "time": 1.0, "pid": 1}\n')
    with pytest.raises(RecordError, match=r"markers.jsonl:1: not a trainperf marker line"):
        read_markers(path)
