"""The pytest plugin and its budgets: config, decision rules, and throwaway projects.

The throwaway projects run under pytest's own ``pytester``. Their planted costs are
waits far beyond any budget they are judged against (a 0.3 s import against 0.1 s, a
3x slower step against a budget allowing +50%), so the verdicts hold on a busy machine;
no timing threshold of our own is asserted.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import textwrap

import pytest

from trainperf.budget.config import Budget, load_budget, parse_budget
from trainperf.budget.imports import ImportMeasurement, judge_import, lower_bound_rank
from trainperf.budget.steps import (
    Baseline,
    StepTimes,
    judge_steps,
    read_baselines,
    write_baselines,
)
from trainperf.errors import RecordError, UsageError
from trainperf.fingerprint import Fingerprint

pytest_plugins = ["pytester"]

SECTION = "[tool.trainperf.budget]"
HERE = Fingerprint({"cpu_model": "Fake CPU", "host_cpus": 4})


# -- the budget's keys --------------------------------------------------------------------


def test_a_full_budget_is_read(tmp_path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [tool.trainperf.budget]
            import_time_s = { "mypkg" = 0.5, "mypkg.cli" = 0.2 }
            modules = { "mypkg" = 300 }
            import_repeats = 7
            max_step_slowdown = 0.1
            baseline = "ci/steps.json"
            """
        )
    )
    budget = load_budget(tmp_path / "pyproject.toml")
    assert budget == Budget(
        import_time_s={"mypkg": 0.5, "mypkg.cli": 0.2},
        modules={"mypkg": 300},
        import_repeats=7,
        max_step_slowdown=0.1,
        baseline="ci/steps.json",
    )
    assert budget.imported == ("mypkg", "mypkg.cli")
    assert load_budget(tmp_path / "missing.toml") == Budget()


def test_a_marker_replaces_the_imports_and_keeps_the_rest() -> None:
    project = Budget(import_time_s={"a": 1.0}, max_step_slowdown=0.2, baseline="b.json")
    own = parse_budget({"modules": {"c": 10}}, source="marker", base=project)
    assert own == Budget(modules={"c": 10}, max_step_slowdown=0.2, baseline="b.json")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"import_time": {"m": 1}}, "has no key 'import_time'; did you mean 'import_time_s'?"),
        ({"import_time_s": 0.5}, "import_time_s must be a table of module name = seconds, e.g."),
        ({"import_time_s": {"m": -1}}, "import_time_s.m must be a positive number of seconds"),
        ({"import_time_s": {"m": True}}, "import_time_s.m must be a positive number"),
        ({"import_time_s": {"my-pkg": 1}}, "'my-pkg' is not a module name such as"),
        ({"modules": {"m": 2.5}}, r"modules.m must be a whole number >= 1, got 2.5"),
        ({"import_repeats": 3}, "import_repeats must be a whole number >= 5"),
        ({"max_step_slowdown": "10%"}, "max_step_slowdown must be a fraction >= 0"),
        ({"baseline": ""}, "baseline must be a file path relative to the project root"),
    ],
)
def test_a_bad_value_names_the_key_and_the_fix(values, message) -> None:
    with pytest.raises(UsageError, match=re.escape(SECTION) + ".*" + message):
        parse_budget(values, source=SECTION)


def test_a_marker_cannot_move_the_baseline() -> None:
    with pytest.raises(UsageError, match=r"baseline is one file for the whole run; set it in"):
        parse_budget({"baseline": "x.json"}, source="marker", base=Budget())


# -- import budgets: the rule -------------------------------------------------------------


@pytest.mark.parametrize("runs", range(1, 40))
def test_the_lower_bound_rank_is_the_largest_at_95_percent(runs) -> None:
    def tail(k: int) -> float:  # P(Binomial(runs, 1/2) <= k - 1)
        return sum(math.comb(runs, i) for i in range(k)) / 2**runs

    rank = lower_bound_rank(runs)
    assert rank == 0 or tail(rank) <= 0.05
    assert tail(rank + 1) > 0.05
    assert (lower_bound_rank(5), lower_bound_rank(8), lower_bound_rank(11)) == (1, 2, 3)


def measured(times, counts=(40, 40, 40, 40, 40)) -> ImportMeasurement:
    return ImportMeasurement(
        "mypkg",
        tuple(times),
        tuple(counts),
        chain=(("mypkg", 0.62), ("mypkg.model", 0.6), ("torch", 0.55)),
        packages=(("torch", 30), ("mypkg", 3), ("json", 2)),
    )


def test_over_only_when_even_the_fastest_of_five_is_over() -> None:
    over = judge_import(
        measured([0.61, 0.62, 0.60, 0.70, 0.65]),
        time_budget_s=0.5,
        module_budget=None,
        source=SECTION,
    )
    assert [j.verdict for j in over] == ["over"]
    assert over[0].measured == 0.62
    assert over[0].message == (
        "import mypkg takes 0.62 s (median of 5 fresh interpreters; 95% lower bound 0.60 s), "
        "over its budget of 0.5 s ([tool.trainperf.budget] import_time_s); heaviest chain "
        "mypkg (0.62 s) -> mypkg.model (0.60 s) -> torch (0.55 s); most modules from "
        "torch (30), mypkg (3), json (2); 'trainperf imports mypkg' blames the import lines"
    )
    # One quiet run within budget: the median is over, but not with 95% confidence.
    suspicious = judge_import(
        measured([0.45, 0.62, 0.60, 0.70, 0.65]),
        time_budget_s=0.5,
        module_budget=None,
        source=SECTION,
    )
    assert [j.verdict for j in suspicious] == ["suspicious"]
    assert "not with 95% confidence; raise import_repeats" in suspicious[0].message
    within = judge_import(
        measured([0.45, 0.42, 0.60, 0.41, 0.44]),
        time_budget_s=0.5,
        module_budget=None,
        source=SECTION,
    )
    assert [j.verdict for j in within] == ["within"]


def test_module_counts_are_over_when_every_run_is() -> None:
    def verdict(counts: tuple[int, ...]) -> str:
        (judged,) = judge_import(
            measured([0.1] * 5, counts), time_budget_s=None, module_budget=39, source=SECTION
        )
        return judged.verdict

    assert verdict((40, 40, 40, 40, 40)) == "over"
    assert verdict((39, 40, 40, 40, 40)) == "suspicious"
    assert verdict((39, 39, 39, 39, 39)) == "within"
    (judged,) = judge_import(
        measured([0.1] * 5), time_budget_s=None, module_budget=20, source="@marker"
    )
    assert judged.message.startswith(
        "import mypkg loads 40 modules (fewest in 5 fresh interpreters), over its budget of "
        "20 (@marker modules); heaviest chain"
    )


def test_a_measurement_round_trips_through_json() -> None:
    before = measured([0.1, 0.2, 0.3, 0.4, 0.5])
    assert ImportMeasurement.from_json(json.loads(json.dumps(before.to_json()))) == before


# -- step budgets: the recorder, the baseline file, the rule ------------------------------


def test_step_times_drop_the_warm_up_step() -> None:
    ticks = iter([0.0, 5.0, 10.0, 10.25, 11.0, 11.5])
    steps = StepTimes(clock=lambda: next(ticks))
    for _ in range(3):
        with steps.step():
            pass
    assert steps.steps == (0.25, 0.5)


def test_step_times_take_a_monitored_runs_steady_steps() -> None:
    from trainperf.monitoring.records import Period

    class FakeRun:
        periods = [  # noqa: RUF012
            Period("train", 0, 0, 0.0, 0.9, 0.0, 8, first_of_epoch=True),
            Period("train", 1, 0, 0.9, 0.1, 0.0, 8),
            Period("val", 2, 0, 1.0, 0.5, 0.0, 8),
            Period("train", 3, 0, 1.5, 0.2, 0.0, 8),
        ]

    steps = StepTimes()
    steps.add_run(FakeRun())
    assert steps.steps == (0.1, 0.2)


def series(median_s: float, n: int = 40) -> list[float]:
    """Steps around ``median_s`` with a fixed +-2% spread (no randomness)."""
    return [median_s * (1 + 0.02 * ((i * 7) % 5 - 2) / 2) for i in range(n)]


def baseline(steps, fingerprint=HERE) -> Baseline:
    return Baseline(tuple(steps), fingerprint, 1.0)


def judge(base, new, **kwargs):
    options = {"fingerprint": HERE, "max_slowdown": 0.0, "where": "b.json", **kwargs}
    return judge_steps(base, new, **options)


def test_a_regression_fails_only_beyond_the_budget() -> None:
    base = baseline(series(0.010))
    slower = judge(base, series(0.030))
    assert slower.outcome == "regression"
    assert slower.failed
    assert slower.message.startswith(
        "step time regressed: median step 30 ms against 10 ms in the baseline (+200.0%, 95% "
        "interval 2.970x - 3.030x; noise floor 0.0%, smallest effect judged 5.0%; 40 steps "
        "against 40); the budget allows +0% (max_step_slowdown). If the slowdown is "
        "intended, record a new baseline with pytest --trainperf-save-baseline"
    )
    allowed = judge(base, series(0.011), max_slowdown=0.2)
    assert allowed.outcome == "within-budget"
    assert not allowed.failed
    assert judge(base, series(0.011)).outcome == "regression"
    assert judge(base, series(0.010)).outcome == "no-change"
    assert judge(base, series(0.005)).outcome == "no-change"  # faster


def test_what_cannot_be_compared_passes_and_says_why() -> None:
    missing = judge(None, series(0.01))
    assert missing.outcome == "no-baseline"
    assert "record one with pytest --trainperf-save-baseline" in missing.message
    elsewhere = judge(baseline(series(0.01), Fingerprint({"cpu_model": "Other CPU"})), [0.1])
    assert elsewhere.outcome == "other-environment"
    assert "another environment (cpu_model Other CPU -> Fake CPU, host_cpus None -> 4)" in (
        elsewhere.message
    )
    few = judge(baseline(series(0.01)), series(0.03, n=5))
    assert few.outcome == "insufficient-data"
    assert "5 steady steps against 40 in the baseline: too few" in few.message
    assert not any(judged.failed for judged in (missing, elsewhere, few))


def test_baselines_are_merged_and_read_back(tmp_path) -> None:
    path = tmp_path / "steps" / "baselines.json"
    write_baselines(path, {"t.py::a": baseline([0.1, 0.2])})
    write_baselines(path, {"t.py::b": baseline([0.3])})
    assert read_baselines(path) == {
        "t.py::a": baseline([0.1, 0.2]),
        "t.py::b": baseline([0.3]),
    }
    assert read_baselines(tmp_path / "none.json") == {}
    path.write_text('{"schema_version": 1, "tests": {"t.py::a": {"steps_s": ["x"]}}}')
    with pytest.raises(RecordError, match=r"baselines.json: steps_s must be a list.*delete"):
        read_baselines(path)


# -- the plugin, loaded by pytest ---------------------------------------------------------


@pytest.mark.slow
def test_loading_the_plugin_imports_nothing_heavy(tmp_path) -> None:
    from test_import_cost import heavy_in

    # sys.modules once collection is done, read by a conftest in a fresh pytest process.
    (tmp_path / "conftest.py").write_text(
        "import json, sys\n\n\ndef pytest_collection_finish(session):\n"
        "    with open('modules.json', 'w') as f:\n        json.dump(sorted(sys.modules), f)\n"
    )
    (tmp_path / "pyproject.toml").write_text('[tool.trainperf.budget]\nmodules = {"json" = 9}\n')
    (tmp_path / "test_x.py").write_text("def test_x(trainperf_steps):\n    pass\n")

    def loaded(*flags: str) -> set[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *flags],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return set(json.loads((tmp_path / "modules.json").read_text()))

    with_plugin = loaded("--trainperf-budget")
    assert "trainperf.pytest_plugin" in with_plugin
    # Other installed plugins may load what they like; this one adds nothing heavy.
    assert heavy_in(with_plugin) <= heavy_in(loaded("-p", "no:trainperf"))


@pytest.fixture
def run(pytester, monkeypatch):
    """``pytest ARGS`` in the throwaway project, with only this plugin among the installed
    ones (the others, re-imported by each in-process run, would cost seconds each)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")

    def pytest_in_project(*args: str) -> pytest.RunResult:
        return pytester.runpytest("-p", "trainperf", "-p", "no:cacheprovider", *args)

    return pytest_in_project


def test_a_malformed_budget_is_a_usage_error(pytester, run) -> None:
    pytester.makepyprojecttoml("[tool.trainperf.budget]\nimport_time_s = 0.5\n")
    pytester.makepyfile("def test_x():\n    pass\n")
    result = run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: [[]tool.trainperf.budget[]] import_time_s must be a table of module name "
            '= seconds, e.g. import_time_s = {"mypkg" = 0.5}, got 0.5'
        ]
    )
    assert "Traceback" not in result.stderr.str()


def test_a_malformed_marker_is_a_usage_error(pytester, run) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.trainperf_budget(import_time={"json": 1})
        def test_x():
            pass
        """
    )
    result = run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: @pytest.mark.trainperf_budget on test_a_malformed_marker_is_a_usage_error.py"
            "::test_x has no key 'import_time'; did you mean 'import_time_s'?*"
        ]
    )


HEAVY_PACKAGE = {
    "mypkg/__init__.py": "from mypkg import heavy\n\n\ndef use():\n    return heavy.VALUE\n",
    "mypkg/heavy.py": textwrap.dedent(
        """
        import threading
        import decimal, email.mime.multipart, http.client  # many modules

        threading.Event().wait(0.3)  # a slow import, planted
        VALUE = 1
        """
    ),
}
LIGHT_PACKAGE = {
    "mypkg/__init__.py": "def use():\n    from mypkg import heavy\n\n    return heavy.VALUE\n",
    "mypkg/heavy.py": HEAVY_PACKAGE["mypkg/heavy.py"],
}
IMPORT_BUDGET = (
    '[tool.trainperf.budget]\nimport_time_s = {"mypkg" = 0.1}\nmodules = {"mypkg" = 5}\n'
)


def plant(pytester, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.slow
def test_a_heavy_import_breaks_its_budgets(pytester, run) -> None:
    plant(pytester, HEAVY_PACKAGE)
    pytester.makepyprojecttoml(IMPORT_BUDGET)
    pytester.makepyfile(
        test_mypkg="""
        import pytest

        @pytest.mark.trainperf_budget(modules={"mypkg": 5})
        def test_marked():
            pass

        def test_plain():
            pass
        """
    )
    result = run("--trainperf-budget")
    result.assert_outcomes(passed=1, failed=2)
    out = result.stdout.str()
    took = re.search(
        r"import mypkg takes (\d+\.\d+) s \(median of 5 fresh interpreters; 95% lower bound "
        r"\d+\.\d+ s\), over its budget of 0\.1 s \(\[tool\.trainperf\.budget\] import_time_s\);"
        r" heaviest chain mypkg \(\d+\.\d+ s\) -> mypkg\.heavy \(\d+\.\d+ s\)",
        out,
    )
    assert took, out
    assert float(took.group(1)) >= 0.3  # the planted wait: a lower bound, not a threshold
    loads = re.findall(
        r"import mypkg loads (\d+) modules \(fewest in 5 fresh interpreters\), over its budget "
        r"of 5 \((\[tool\.trainperf\.budget\]|@pytest\.mark\.trainperf_budget) modules\)",
        out,
    )
    assert {source for _, source in loads} == {
        "[tool.trainperf.budget]",
        "@pytest.mark.trainperf_budget",
    }, out
    assert all(int(count) > 5 for count, _ in loads)
    result.stdout.fnmatch_lines(
        [
            "FAILED test_mypkg.py::test_marked*",
            "FAILED pyproject.toml::trainperf-budget[[]mypkg[]]*",
        ]
    )


@pytest.mark.slow
def test_an_import_within_budget_passes(pytester, run) -> None:
    plant(pytester, LIGHT_PACKAGE)
    pytester.makepyprojecttoml(
        '[tool.trainperf.budget]\nimport_time_s = {"mypkg" = 5.0}\nmodules = {"mypkg" = 5}\n'
    )
    result = run("--trainperf-budget", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pyproject.toml::trainperf-budget[[]mypkg[]] PASSED*"])
    # Without the flag the project's import budgets are not collected.
    run().assert_outcomes()


LOOP = """
import os
import threading

STEP_S = float(os.environ["PLANTED_STEP_S"])


def train_step():
    threading.Event().wait(STEP_S)  # the step's work, planted
"""
LOOP_TEST = """
import loop


def test_loop(trainperf_steps):
    for _ in range(31):
        with trainperf_steps.step():
            loop.train_step()
"""
STEP_BUDGET = '[tool.trainperf.budget]\nmax_step_slowdown = 0.5\nbaseline = "baselines.json"\n'


def test_a_step_test_without_a_baseline_passes_and_says_so(pytester, monkeypatch, run) -> None:
    monkeypatch.setenv("PLANTED_STEP_S", "0")
    plant(pytester, {"loop.py": LOOP, "test_loop.py": LOOP_TEST})
    pytester.makepyprojecttoml(STEP_BUDGET)
    quiet = run()
    quiet.assert_outcomes(passed=1)
    assert "trainperf budget" not in quiet.stdout.str()  # nothing asked, nothing compared
    result = run("--trainperf-budget")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*- trainperf budget -*",
            "test_loop.py::test_loop: no step baseline in */baselines.json; record one with "
            "pytest --trainperf-save-baseline",
        ]
    )


@pytest.mark.slow
@pytest.mark.verdict
def test_a_slower_loop_fails_against_its_baseline(pytester, monkeypatch, run) -> None:
    # In-process runs drop the modules they imported when they end, and numpy (imported
    # to compare) cannot be loaded twice in one process: load it here, once.
    import numpy  # noqa: F401

    plant(pytester, {"loop.py": LOOP, "test_loop.py": LOOP_TEST})
    pytester.makepyprojecttoml(STEP_BUDGET)
    monkeypatch.setenv("PLANTED_STEP_S", "0.02")
    saved = run("--trainperf-save-baseline")
    saved.assert_outcomes(passed=1)
    saved.stdout.fnmatch_lines(["step baselines of 1 test(s) saved to *baselines.json"])
    stored = json.loads((pytester.path / "baselines.json").read_text())
    assert len(stored["tests"]["test_loop.py::test_loop"]["steps_s"]) == 30  # warm-up dropped

    run("--trainperf-budget").assert_outcomes(passed=1)

    monkeypatch.setenv("PLANTED_STEP_S", "0.06")  # the same loop, 3x slower
    slower = run("--trainperf-budget")
    slower.assert_outcomes(failed=1)
    slower.stdout.fnmatch_lines(
        [
            "*test_loop.py::test_loop: step time regressed: median step * ms against * ms in "
            "the baseline (+*%, 95% interval *; the budget allows +50% (max_step_slowdown).*"
        ]
    )
