from __future__ import annotations

import itertools

import pytest

from trainperf.startup.graph import ROOT, ImportGraph


def graph(*edges: tuple[str, str]) -> ImportGraph:
    g = ImportGraph()
    g.add_edges(edges)
    return g


def test_a_module_shared_by_two_lines_belongs_to_neither() -> None:
    g = graph(
        (ROOT, "L1"), (ROOT, "L2"), ("L1", "lightning"), ("lightning", "torch"), ("L2", "torch")
    )
    excl = g.exclusive({"lightning": 3.0, "torch": 1.5})
    assert excl["L1"] == 3.0
    assert excl["L2"] == 0.0
    assert excl[ROOT] == 4.5


def test_diamonds_and_cycles() -> None:
    g = graph((ROOT, "a"), ("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "e"), ("e", "d"))
    idom = g.dominator_tree()
    assert idom["d"] == "a"
    assert idom["e"] == "d"
    assert g.exclusive({"b": 1, "c": 1, "d": 5, "e": 2})["a"] == 9


def test_unreachable_nodes_are_left_out() -> None:
    g = graph((ROOT, "a"), ("x", "y"))
    assert "x" not in g.dominator_tree()
    assert g.exclusive({"a": 1, "x": 5})[ROOT] == 1


def test_paths_and_reachability() -> None:
    g = graph((ROOT, "a"), ("a", "b"), ("b", "c"), ("a", "c"), ("b", "d"))
    assert g.path("a", "c") == ["a", "c"]
    assert g.path("c", "a") is None
    assert g.reachable("a") == {"a", "b", "c", "d"}
    assert g.reachable("a", through={"b": False}) == {"a", "b", "c"}  # not d, only past b
    assert g.reachable("b") == {"b", "c", "d"}


@pytest.mark.parametrize("depth", [5000])
def test_deep_chains_do_not_recurse(depth) -> None:
    names = [f"m{i}" for i in range(depth)]
    g = graph((ROOT, names[0]), *itertools.pairwise(names))
    assert g.exclusive(dict.fromkeys(names, 1.0))[names[0]] == depth
