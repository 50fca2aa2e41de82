"""A test's step times, its stored baseline, and whether it regressed.

A test records its steps with :class:`StepTimes` (the ``trainperf_steps`` fixture)::

    def test_train_loop(trainperf_steps):
        for batch in batches:
            with trainperf_steps.step():
                train_step(batch)

or hands it a finished ``trainperf.monitor()`` run with :meth:`StepTimes.add_run`.

``pytest --trainperf-save-baseline`` stores each such test's steady step times, with
the environment fingerprint, in the baseline file (``[tool.trainperf.budget]
baseline``). ``pytest --trainperf-budget`` compares them with
:func:`~trainperf.monitoring.compare.compare_steps` -- the ratio of median step times,
its 95% bootstrap interval, and a noise floor from the baseline's own two halves.

Rule: a test **fails** only when compare says ``regression`` (slower by more than
``max(5%, 2 x noise floor)`` with the interval excluding no change) *and* the ratio is
above ``1 + max_step_slowdown``. Everything else passes and is reported in the
summary: ``within-budget`` (a regression the budget allows), ``suspicious``,
``insufficient-data`` (fewer than 20 steady steps on a side), ``no-baseline`` and
``other-environment`` (a baseline from another machine or software stack is not
compared: step times there say nothing about here).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from trainperf._json import as_object, req_float, req_list
from trainperf.errors import RecordError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from pathlib import Path

    from trainperf._json import JsonObject
    from trainperf.fingerprint import Fingerprint
    from trainperf.monitoring.compare import Comparison
    from trainperf.monitoring.records import Period

__all__ = [
    "BASELINE_SCHEMA",
    "Baseline",
    "StepJudgement",
    "StepTimes",
    "judge_steps",
    "read_baselines",
    "write_baselines",
]

# The file's version, under the key every trainperf record uses (see trainperf._schema).
SCHEMA_KEY = "schema_version"
BASELINE_SCHEMA = 1
# Explicit steps: the first is warm-up (lazy initialisation, caches), like each epoch's
# first step in a monitored run.
WARMUP_STEPS = 1
Outcome = Literal[
    "regression",
    "within-budget",
    "suspicious",
    "no-change",
    "insufficient-data",
    "no-baseline",
    "other-environment",
]


class _HasPeriods(Protocol):
    @property
    def periods(self) -> list[Period]: ...


class StepTimes:
    """The steady step times of one test, in seconds.

    ``clock`` returns seconds (``time.perf_counter`` by default; tests pass a fake).
    """

    def __init__(self, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self._steps: list[float] = []
        self._explicit = 0

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """Time the block as one training step (the first one is warm-up, not kept)."""
        began = self.clock()
        yield
        elapsed = self.clock() - began
        self._explicit += 1
        if self._explicit > WARMUP_STEPS:
            self._steps.append(elapsed)

    def add_run(self, run: _HasPeriods) -> None:
        """Keep the steady training steps of a finished ``trainperf.monitor()`` run."""
        from trainperf.monitoring.compare import steady_steps

        self._steps.extend(steady_steps(run.periods))

    @property
    def steps(self) -> tuple[float, ...]:
        """The steps kept so far, in seconds."""
        return tuple(self._steps)


@dataclass(frozen=True)
class Baseline:
    """A test's steady step times (seconds) and the environment they were measured in."""

    steps_s: tuple[float, ...]
    fingerprint: Fingerprint
    recorded_at: float  # seconds since the epoch

    def to_json(self) -> JsonObject:
        return {
            "steps_s": list(self.steps_s),
            "fingerprint": self.fingerprint.to_json(),
            "recorded_at": self.recorded_at,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> Baseline:
        from trainperf.fingerprint import Fingerprint

        steps = req_list(data, "steps_s")
        numbers = [
            float(s) for s in steps if isinstance(s, int | float) and not isinstance(s, bool)
        ]
        if len(numbers) != len(steps) or not all(s >= 0 for s in numbers):
            raise RecordError("steps_s must be a list of step times in seconds")
        return cls(
            tuple(numbers),
            Fingerprint.from_json(as_object(data.get("fingerprint"), "fingerprint")),
            req_float(data, "recorded_at"),
        )


@dataclass(frozen=True)
class StepJudgement:
    outcome: Outcome
    message: str
    comparison: Comparison | None = None

    @property
    def failed(self) -> bool:
        return self.outcome == "regression"


def read_baselines(path: Path) -> dict[str, Baseline]:
    """The baselines in ``path`` by test id; none if the file does not exist."""
    if not path.exists():
        return {}
    try:
        data = as_object(json.loads(path.read_text(encoding="utf-8")), str(path))
        if data.get(SCHEMA_KEY) != BASELINE_SCHEMA:
            raise RecordError(
                f"{SCHEMA_KEY} {data.get(SCHEMA_KEY)!r} is not {BASELINE_SCHEMA}, the version "
                f"this trainperf reads"
            )
        tests = as_object(data.get("tests"), "tests")
        return {test: Baseline.from_json(as_object(entry, test)) for test, entry in tests.items()}
    except (OSError, ValueError, RecordError) as exc:
        raise RecordError(
            f"cannot read the step baselines in {path}: {exc}; delete the file and record "
            f"them again with pytest --trainperf-save-baseline"
        ) from None


def write_baselines(path: Path, baselines: Mapping[str, Baseline]) -> None:
    """Add ``baselines`` to the file at ``path``, keeping the other tests' entries.

    An unreadable existing file is replaced; the write is atomic (a reader never sees
    half a file).
    """
    tests: JsonObject = {}
    if path.exists():
        with contextlib.suppress(OSError, ValueError):
            existing = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(existing, dict) and existing.get(SCHEMA_KEY) == BASELINE_SCHEMA:
                kept = existing.get("tests")
                tests.update(kept if isinstance(kept, dict) else {})
    tests.update({test: baseline.to_json() for test, baseline in baselines.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    body = {SCHEMA_KEY: BASELINE_SCHEMA, "tests": dict(sorted(tests.items()))}
    temporary.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
    temporary.replace(path)


def judge_steps(
    baseline: Baseline | None,
    steps: Sequence[float],
    *,
    fingerprint: Fingerprint,
    max_slowdown: float,
    where: str,
) -> StepJudgement:
    """The rule in the module docstring; ``where`` names the baseline file in messages."""
    save = "pytest --trainperf-save-baseline"
    if baseline is None:
        return StepJudgement(
            "no-baseline",
            f"no step baseline in {where}; record one with {save}",
        )
    if baseline.fingerprint != fingerprint:
        changes = baseline.fingerprint.describe_diff(fingerprint)
        return StepJudgement(
            "other-environment",
            f"not compared: the baseline in {where} comes from another environment "
            f"({changes}); record it again here with {save}",
        )
    from trainperf.monitoring.compare import MIN_STEPS, compare_steps

    result = compare_steps(baseline.steps_s, steps)
    if result.ratio is None or result.interval is None or result.noise_floor is None:
        return StepJudgement(
            "insufficient-data",
            f"{len(steps)} steady steps against {len(baseline.steps_s)} in the baseline: "
            f"too few to judge; compare needs at least {MIN_STEPS} on each side (the first "
            f"step is warm-up); run more steps",
            result,
        )
    import statistics

    base_ms = statistics.median(baseline.steps_s) * 1e3
    new_ms = statistics.median(steps) * 1e3
    evidence = (
        f"median step {new_ms:.3g} ms against {base_ms:.3g} ms in the baseline "
        f"({result.ratio - 1:+.1%}, 95% interval {result.interval[0]:.3f}x - "
        f"{result.interval[1]:.3f}x; noise floor {result.noise_floor:.1%}, smallest effect "
        f"judged {result.threshold:.1%}; {len(steps)} steps against "
        f"{len(baseline.steps_s)})"
    )
    allowed = f"the budget allows {max_slowdown:+.0%} (max_step_slowdown)"
    if result.verdict == "regression" and result.ratio > 1 + max_slowdown:
        return StepJudgement(
            "regression",
            f"step time regressed: {evidence}; {allowed}. If the slowdown is intended, "
            f"record a new baseline with {save}",
            result,
        )
    if result.verdict == "regression":
        return StepJudgement(
            "within-budget", f"slower, within budget: {evidence}; {allowed}", result
        )
    if result.verdict == "suspicious":
        return StepJudgement(
            "suspicious",
            f"perhaps slower, not significantly: {evidence}; run more steps to tell",
            result,
        )
    return StepJudgement("no-change", f"no regression: {evidence}", result)
