"""The -X importtime parser: real logs, and malformed or truncated ones."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainperf.startup.importtime import ImportTimeError, merge_runs, parse_importtime

LOG = """\
import time: self [us] | cumulative | imported package
import time:        50 |         50 |     c
import time:       100 |        150 |   b
import time:        20 |         20 |   d
import time:       300 |        470 | a
some warning the program printed
import time:         7 |          7 | e
"""


def test_tree_structure_and_costs() -> None:
    tree = parse_importtime(LOG)
    assert tree.complete
    assert [r.name for r in tree.roots] == ["a", "e"]
    a = tree.roots[0]
    assert [c.name for c in a.children] == ["b", "d"]
    assert [c.name for c in a.children[0].children] == ["c"]
    assert tree.total_us == 477
    assert tree.self_us() == {"a": 300, "b": 100, "c": 50, "d": 20, "e": 7}
    assert set(tree.edges()) == {("a", "b"), ("b", "c"), ("a", "d")}


def test_a_real_log() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import json"],
        capture_output=True,
        text=True,
        check=True,
    )
    tree = parse_importtime(proc.stderr)
    names = {node.name for node in tree.nodes()}
    assert {"json", "json.decoder", "json.scanner"} <= names
    json_node = next(r for r in tree.roots if r.name == "json")
    assert json_node.cumulative_us >= sum(c.cumulative_us for c in json_node.children)


def test_truncated_log_keeps_orphans_as_roots() -> None:
    cut = LOG[: LOG.index("import time:       300")]
    tree = parse_importtime(cut)
    assert not tree.complete
    assert sorted(r.name for r in tree.roots) == ["b", "d"]


def test_a_half_written_last_line_is_dropped() -> None:
    tree = parse_importtime(LOG + "import time:        1")
    assert tree.total_us == 477


@pytest.mark.parametrize(
    "line",
    ["import time: lots | 5 | x", "import time:   5 |  5 |x", "import time:   5 |  5 |  x"],
)
def test_malformed_lines_name_their_number(line) -> None:
    with pytest.raises(ImportTimeError, match=r"line 2 of the -X importtime log"):
        parse_importtime(f"import time: self [us] | cumulative | imported package\n{line}\n")


def test_cached_entries_of_importtime_2_are_folded() -> None:
    log = (
        "import time:        10 |         10 |   x\n"
        "import time:        40 |         50 | y\n"
        "import time:    cached |     cached |   x\n"
        "import time:         5 |          5 | z\n"
    )
    tree = parse_importtime(log)
    assert tree.self_us() == {"x": 10, "y": 40, "z": 5}


def test_merge_takes_medians() -> None:
    runs = [
        parse_importtime(LOG.replace("300 |        470", f"{v} |        {v + 170}"))
        for v in (
            100,
            300,
            900,
        )
    ]
    typical, medians = merge_runs(runs)
    assert typical.total_us == 477
    assert medians["a"] == 300
    with pytest.raises(ImportTimeError):
        merge_runs([])


@given(st.integers(min_value=0, max_value=len(LOG)), st.text(max_size=30))
def test_no_cut_or_splice_crashes_the_parser(cut, junk) -> None:
    text = LOG[:cut] + junk + LOG[cut:]
    try:
        tree = parse_importtime(text)
    except ImportTimeError as exc:
        message = str(exc)
    else:
        message = "importtime log"  # parsed: fine, as long as it is a tree
        assert tree.total_us >= 0
    assert "importtime log" in message
