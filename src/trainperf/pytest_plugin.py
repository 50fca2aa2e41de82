"""trainperf's pytest plugin: import-time, module-count and step-time budgets as tests.

Installed with trainperf (entry point ``pytest11``: ``trainperf``; ``-p no:trainperf``
turns it off). It adds:

* ``pytest --trainperf-budget``: one test per module budgeted in
  ``[tool.trainperf.budget]`` (``pyproject.toml::trainperf-budget[mypkg]``), failing when
  ``import mypkg`` breaks its ``import_time_s`` or ``modules`` budget; and every test
  using the ``trainperf_steps`` fixture is compared with its step-time baseline.
* ``@pytest.mark.trainperf_budget(import_time_s={"mypkg": 0.5}, modules=...,
  max_step_slowdown=...)``: this test's own budget, checked with or without the flag,
  after the test's body has passed.
* ``pytest --trainperf-save-baseline``: record the step times of the tests using
  ``trainperf_steps`` as their baseline (nothing is compared).
* the ``trainperf_steps`` fixture, a :class:`~trainperf.budget.steps.StepTimes`.

The rules are in :mod:`trainperf.budget.imports` (import time: a budget fails only when
the one-sided 95% lower bound of the median of ``import_repeats`` fresh interpreters is
above it) and :mod:`trainperf.budget.steps` (step time: only when ``compare_steps``
says ``regression`` and the slowdown exceeds ``max_step_slowdown``). What passes but
deserves a look (suspicious, no baseline, too few steps) is listed in a "trainperf
budget" section of the terminal summary.

Loading this plugin imports no numpy or torch: measuring and comparing modules are
imported when a budget is checked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from trainperf.errors import TrainperfError

if TYPE_CHECKING:
    from collections.abc import Generator
    from pathlib import Path

    from _pytest._code.code import ExceptionInfo, TerminalRepr, TracebackStyle

    from trainperf.budget.config import Budget
    from trainperf.budget.imports import ImportMeasurement
    from trainperf.budget.steps import Baseline, StepTimes
    from trainperf.fingerprint import Fingerprint

__all__ = ["ImportBudgetItem", "trainperf_steps"]

MARKER = "trainperf_budget"
FIXTURE = "trainperf_steps"


@dataclass
class _State:
    """This session's budget and what its checks found (kept in ``config.stash``)."""

    pyproject: Path  # its folder is the root: imports are probed and baselines kept there
    budget: Budget
    check: bool
    save: bool
    per_test: dict[str, Budget] = field(default_factory=dict)  # nodeid -> marker's budget
    notes: list[str] = field(default_factory=list)
    saved: dict[str, Baseline] = field(default_factory=dict)
    # (module, repeats) -> its measurement: a module budgeted twice is measured once.
    measured: dict[tuple[str, int], ImportMeasurement] = field(default_factory=dict)
    _baselines: dict[str, Baseline] | None = None
    _fingerprint: Fingerprint | None = None

    @property
    def root(self) -> Path:
        return self.pyproject.parent

    @property
    def baseline_path(self) -> Path:
        return self.root / self.budget.baseline

    def baselines(self) -> dict[str, Baseline]:
        """The stored baselines, read once (a RecordError names the file and the fix)."""
        if self._baselines is None:
            from trainperf.budget.steps import read_baselines

            self._baselines = read_baselines(self.baseline_path)
        return self._baselines

    def fingerprint(self) -> Fingerprint:
        if self._fingerprint is None:
            from trainperf.fingerprint import environment_fingerprint

            self._fingerprint = environment_fingerprint()
        return self._fingerprint


_STATE = pytest.StashKey[_State]()


class BudgetExceeded(Exception):
    """A budget was broken; the message is the whole report (no traceback shown)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("trainperf", "trainperf performance budgets")
    group.addoption(
        "--trainperf-budget",
        action="store_true",
        help="check [tool.trainperf.budget]: a test per budgeted import, and the step "
        "times of tests using trainperf_steps against their baselines",
    )
    group.addoption(
        "--trainperf-save-baseline",
        action="store_true",
        help="record the step times of tests using trainperf_steps as their new baseline",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(import_time_s=None, modules=None, import_repeats=None, "
        "max_step_slowdown=None): this test's trainperf budget, checked after it passes; "
        "see [tool.trainperf.budget]",
    )
    from trainperf.budget.config import load_budget

    inipath = config.inipath
    pyproject = (
        inipath
        if inipath is not None and inipath.name == "pyproject.toml"
        else config.rootpath / "pyproject.toml"
    )
    try:
        budget = load_budget(pyproject)
    except TrainperfError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_STATE] = _State(
        pyproject=pyproject,
        budget=budget,
        check=bool(config.getoption("--trainperf-budget")),
        save=bool(config.getoption("--trainperf-save-baseline")),
    )


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselect, so they can select these items
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    from trainperf.budget.config import parse_budget

    state = config.stash[_STATE]
    for item in items:
        marker = item.get_closest_marker(MARKER)
        if marker is None:
            continue
        source = f"@pytest.mark.{MARKER} on {item.nodeid}"
        if marker.args:
            raise pytest.UsageError(
                f"{source} takes keyword arguments only, e.g. "
                f'@pytest.mark.{MARKER}(import_time_s={{"mypkg": 0.5}}); got {marker.args!r}'
            )
        try:
            state.per_test[item.nodeid] = parse_budget(
                marker.kwargs, source=source, base=state.budget
            )
        except TrainperfError as exc:
            raise pytest.UsageError(str(exc)) from None
    if state.check:
        items.extend(
            ImportBudgetItem.from_parent(session, module=module, pyproject=state.pyproject)
            for module in state.budget.imported
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    result = yield  # the test's own failure, if any, propagates from here unchanged
    state = item.config.stash.get(_STATE, None)
    if state is not None and not isinstance(item, ImportBudgetItem):
        failures = _check_test(item, state)
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)
    return result


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is not None and state.saved:
        from trainperf.budget.steps import write_baselines

        write_baselines(state.baseline_path, state.saved)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    state = terminalreporter.config.stash.get(_STATE, None)
    if state is None or not (state.notes or state.saved):
        return
    terminalreporter.write_sep("-", "trainperf budget")
    for note in state.notes:
        terminalreporter.write_line(note)
    if state.saved:
        terminalreporter.write_line(
            f"step baselines of {len(state.saved)} test(s) saved to {state.baseline_path}"
        )


@pytest.fixture
def trainperf_steps() -> StepTimes:
    """This test's step times, for its step-time budget::

    def test_loop(trainperf_steps):
        for batch in batches:
            with trainperf_steps.step():
                train_step(batch)

    (or ``trainperf_steps.add_run(run)`` with a finished ``trainperf.monitor()`` run).
    Compared with the test's baseline under ``--trainperf-budget`` or its marker.
    """
    from trainperf.budget.steps import StepTimes

    return StepTimes()


class ImportBudgetItem(pytest.Item):
    """``pyproject.toml::trainperf-budget[mypkg]``: ``import mypkg`` within its budget."""

    def __init__(self, *, parent: pytest.Session, module: str, pyproject: Path) -> None:
        name = f"trainperf-budget[{module}]"
        # Not collected from a file, but its budget is written in one: named after it.
        super().__init__(
            name=name, parent=parent, path=pyproject, nodeid=f"{pyproject.name}::{name}"
        )
        self.module = module
        self.add_marker(MARKER)  # `-m trainperf_budget` selects these

    def runtest(self) -> None:
        from trainperf.budget.config import SECTION

        state = self.config.stash[_STATE]
        failures = _import_failures(state, state.budget, (self.module,), source=SECTION)
        if failures:
            raise BudgetExceeded("\n".join(failures))

    def repr_failure(
        self,
        excinfo: ExceptionInfo[BaseException],
        style: TracebackStyle | None = None,
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, BudgetExceeded):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"trainperf budget: import {self.module}"


def _check_test(item: pytest.Item, state: _State) -> list[str]:
    """The budgets of a test whose body passed: its marker's imports, its steps."""
    own = state.per_test.get(item.nodeid)
    failures: list[str] = []
    if own is not None and own.imported:
        source = f"@pytest.mark.{MARKER}"
        failures += _import_failures(state, own, own.imported, source=source)
    recorder = getattr(item, "funcargs", {}).get(FIXTURE)
    if recorder is not None and (state.check or state.save or own is not None):
        from trainperf.budget.steps import StepTimes

        if isinstance(recorder, StepTimes):  # not a fixture of the user's of the same name
            failures += _check_steps(item.nodeid, recorder, own or state.budget, state)
    return failures


def _import_failures(
    state: _State, budget: Budget, modules: tuple[str, ...], *, source: str
) -> list[str]:
    from trainperf.budget.imports import import_failed, judge_import, measure_import

    failures = []
    for module in modules:
        key = (module, budget.import_repeats)
        if key not in state.measured:
            try:
                state.measured[key] = measure_import(
                    module, repeats=budget.import_repeats, root=state.root
                )
            except TrainperfError as exc:
                failures.append(f"import {module} could not be measured: {exc}")
                continue
        measured = state.measured[key]
        if measured.error is not None:
            failures.append(import_failed(measured, state.root))
            continue
        judged = judge_import(
            measured,
            time_budget_s=budget.import_time_s.get(module),
            module_budget=budget.modules.get(module),
            source=source,
        )
        failures += [j.message for j in judged if j.verdict == "over"]
        state.notes += [j.message for j in judged if j.verdict == "suspicious"]
    return failures


def _check_steps(nodeid: str, recorder: StepTimes, budget: Budget, state: _State) -> list[str]:
    from trainperf.budget.steps import Baseline, judge_steps

    steps = recorder.steps
    if not steps:
        state.notes.append(f"{nodeid}: {FIXTURE} recorded no steady step (the first is warm-up)")
        return []
    if state.save:
        state.saved[nodeid] = Baseline(steps, state.fingerprint(), time.time())
        return []
    try:
        baseline = state.baselines().get(nodeid)
    except TrainperfError as exc:
        return [str(exc)]
    judged = judge_steps(
        baseline,
        steps,
        fingerprint=state.fingerprint(),
        max_slowdown=budget.max_step_slowdown,
        where=str(state.baseline_path),
    )
    if judged.failed:
        return [f"{nodeid}: {judged.message}"]
    if judged.outcome != "no-change":
        state.notes.append(f"{nodeid}: {judged.message}")
    return []
