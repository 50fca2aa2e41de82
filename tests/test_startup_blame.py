"""`trainperf imports` on a project whose imports have known costs (busy modules)."""

from __future__ import annotations

import json

import pytest

from _support import write_startup_project
from trainperf.startup import measure_imports
from trainperf.startup.report import ImportReport


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    base = tmp_path_factory.mktemp("startup")
    return write_startup_project(base)


@pytest.fixture(scope="module")
def report(project) -> ImportReport:
    entry, libs = project
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(libs))
        patch.chdir(entry.parent)
        return measure_imports(str(entry), repeat=2)


def by_line(report: ImportReport) -> dict[int, object]:
    return {c.line: c for c in report.lines if c.file.endswith("train.py")}


def test_lines_rank_by_what_deferring_them_saves(report) -> None:
    lines = by_line(report)
    assert [c.line for c in report.lines[:3]] == [2, 3, 6]
    assert 0.25 < lines[2].exclusive_s < 0.45  # heavy_a alone; common is shared with b
    assert 0.12 < lines[3].exclusive_s < 0.25
    assert 0.06 < lines[6].exclusive_s < 0.15  # pkg.models -> heavy_c


def test_shared_modules_are_not_blamed_on_one_line(report) -> None:
    lines = by_line(report)
    assert lines[5].exclusive_s < 0.01  # "import common": a and b need it anyway
    assert lines[2].cumulative_s > lines[2].exclusive_s + 0.04  # importtime charges common to a
    assert 1 not in lines  # from __future__ is not an import that costs anything


def test_user_module_lines_are_blamed_too(report) -> None:
    models = [c for c in report.lines if c.file.endswith("models.py")]
    assert [(c.line, c.statement) for c in models] == [(1, "import heavy_c")]
    assert models[0].exclusive_s > 0.06


def test_the_main_guard_is_not_run(report, project) -> None:
    entry, _ = project
    assert not (entry.parent / "main-ran").exists()
    assert report.error is None


def test_groups_and_chains(report) -> None:
    group = next(g for g in report.groups if "common" in g.packages)
    assert sorted(int(s.rsplit(":", 1)[1]) for s in group.starts) == [2, 3, 5]
    assert group.saving_s > 0.45  # a + b + common
    chain = next(c for c in report.chains if c.package == "heavy_c")
    assert chain.start.endswith("train.py:6")
    assert chain.path == ("pkg", "heavy_c")


def test_total_and_module_count(report) -> None:
    assert 0.55 < report.total_s < 1.0  # 0.30 + 0.15 + 0.08 + 0.06 and the rest
    assert report.modules >= 7
    assert report.runs == 2


def test_json_round_trip(report) -> None:
    again = ImportReport.from_json(json.loads(json.dumps(report.to_json())))
    assert again == report


@pytest.mark.slow
def test_verify_measures_the_top_line(project) -> None:
    entry, libs = project
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(libs))
        patch.chdir(entry.parent)
        verified = measure_imports(str(entry), repeat=2, verify=1)
    (check,) = verified.verified
    assert check.line == 2
    assert 0.2 < check.measured_s < 0.45
    assert check.error < 0.5  # the benchmark reports the precise figure
