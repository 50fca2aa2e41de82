"""What ``import X`` costs in fresh interpreters, and whether it breaks its budget.

Measuring: ``X`` is imported ``1 + repeats`` times, each in a fresh interpreter under
``-X importtime`` (the probe of ``trainperf imports``, from the project root, so the
project's own modules are found as ``python -c "import X"`` would find them). The
first run fills the bytecode cache and is not counted. Per counted run: the import
time (the ``-X importtime`` total, the measure of ``trainperf imports --budget``) and
the modules newly loaded (the nodes of its log: what the interpreter had not loaded
at start-up).

Judging -- import time is noisy in one direction (a busy machine only adds time), so a
budget fails only when it is exceeded with 95% confidence:

* ``over``: the k-th fastest of the n runs is above the budget, k the largest rank with
  ``P(Binomial(n, 1/2) <= k - 1) <= 0.05``. That run is a distribution-free, one-sided
  95% lower bound of the median import time, so a module whose median is within budget
  fails at most 5% of the time. k is 1 (the fastest run) for 5 to 7 runs, 2 for 8 to
  10, 3 for 11 to 12.
* ``suspicious``: the median is above the budget but that bound is not: the check
  passes, and the summary asks for more runs (``import_repeats``) or headroom.
* ``within`` otherwise.

Module counts barely vary between runs: ``over`` when every run loaded more than the
budget, ``suspicious`` when only some did.
"""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeGuard

from trainperf._json import opt_str, req_list, req_str
from trainperf.errors import RecordError

if TYPE_CHECKING:
    from pathlib import Path

    from trainperf._json import JsonObject
    from trainperf.startup.importtime import ImportNode, ImportTree

__all__ = [
    "ImportJudgement",
    "ImportMeasurement",
    "import_failed",
    "judge_import",
    "lower_bound_rank",
    "measure_import",
]

CONFIDENCE = 0.95
Verdict = Literal["over", "suspicious", "within"]
# A chain step is shown while its heaviest import holds at least this share of it.
_CHAIN_SHARE = 0.5
_CHAIN_MAX = 6
_PACKAGES_SHOWN = 3


@dataclass(frozen=True)
class ImportMeasurement:
    """``import module`` in ``len(times_s)`` fresh interpreters (the warm-up not counted).

    ``times_s``: import time per run, seconds. ``module_counts``: modules newly loaded
    per run. ``chain``: from the run with the median time, the import holding most of
    the time at each level, with its cumulative seconds. ``packages``: that run's
    modules counted by top-level package, most first. ``error``: what the import
    raised, if it failed (then nothing else is measured).
    """

    module: str
    times_s: tuple[float, ...]
    module_counts: tuple[int, ...]
    chain: tuple[tuple[str, float], ...] = ()
    packages: tuple[tuple[str, int], ...] = ()
    error: str | None = None

    def to_json(self) -> JsonObject:
        return {
            "module": self.module,
            "times_s": list(self.times_s),
            "module_counts": list(self.module_counts),
            "chain": [[name, seconds] for name, seconds in self.chain],
            "packages": [[name, count] for name, count in self.packages],
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> ImportMeasurement:
        def pairs(key: str) -> list[tuple[str, float]]:
            out = []
            for item in req_list(data, key):
                name, value = item if isinstance(item, list) and len(item) == 2 else (0, "")
                if not isinstance(name, str) or not _is_number(value):
                    raise RecordError(f"{key} items are [name, number] pairs, got {item!r}")
                out.append((name, float(value)))
            return out

        return cls(
            module=req_str(data, "module"),
            times_s=tuple(float(v) for v in _numbers(data, "times_s")),
            module_counts=tuple(int(v) for v in _numbers(data, "module_counts")),
            chain=tuple(pairs("chain")),
            packages=tuple((name, int(count)) for name, count in pairs("packages")),
            error=opt_str(data, "error"),
        )


@dataclass(frozen=True)
class ImportJudgement:
    """One budget checked: ``measured`` and ``limit`` in seconds or modules."""

    verdict: Verdict
    kind: Literal["import_time_s", "modules"]
    measured: float
    limit: float
    message: str


def measure_import(
    module: str, *, repeats: int, root: Path, python: str = sys.executable
) -> ImportMeasurement:
    """Import ``module`` in ``1 + repeats`` fresh interpreters started in ``root``."""
    from trainperf.startup.probe import Target, run_probe

    # Built directly rather than with resolve_target, which would import the module's
    # parent packages in *this* process to find where it lives.
    target = Target("module", module, str(root), root)
    trees: list[ImportTree] = []
    for number in range(repeats + 1):
        run = run_probe(target, trace=False, python=python)
        if run.error is not None:
            return ImportMeasurement(module, (), (), error=run.error)
        if number:  # the first run compiled the bytecode: not counted
            trees.append(run.tree)
    times = tuple(tree.total_us / 1e6 for tree in trees)
    ordered = sorted(trees, key=lambda tree: tree.total_us)
    typical = ordered[(len(ordered) - 1) // 2]
    return ImportMeasurement(
        module,
        times,
        tuple(len({node.name for node in tree.nodes()}) for tree in trees),
        chain=_heaviest_chain(typical),
        packages=_packages(typical),
    )


def lower_bound_rank(runs: int, *, confidence: float = CONFIDENCE) -> int:
    """The 1-based rank k whose k-th smallest of ``runs`` values is a one-sided
    ``confidence`` lower bound of their median: the largest k with
    ``P(Binomial(runs, 1/2) <= k - 1) <= 1 - confidence``; 0 if no rank qualifies.

    >>> lower_bound_rank(5), lower_bound_rank(8), lower_bound_rank(11)
    (1, 2, 3)
    """
    rank, tail = 0, 0.0
    for k in range(1, runs + 1):
        tail += math.comb(runs, k - 1) / 2**runs  # P(Binomial <= k - 1)
        if tail > 1 - confidence:
            break
        rank = k
    return rank


def judge_import(
    measured: ImportMeasurement,
    *,
    time_budget_s: float | None,
    module_budget: int | None,
    source: str,
) -> tuple[ImportJudgement, ...]:
    """Each budget given, judged by the rules in the module docstring.

    ``source`` says where the budget was set, for the messages.
    """
    name = measured.module
    out: list[ImportJudgement] = []
    if time_budget_s is not None and measured.times_s:
        runs = len(measured.times_s)
        median = statistics.median(measured.times_s)
        rank = lower_bound_rank(runs)
        bound = sorted(measured.times_s)[rank - 1] if rank else median
        where = f"median of {runs} fresh interpreters; 95% lower bound {bound:.2f} s"
        if bound > time_budget_s:
            verdict: Verdict = "over"
            text = (
                f"import {name} takes {median:.2f} s ({where}), over its budget of "
                f"{time_budget_s:g} s ({source} import_time_s); {_culprit(measured)}"
            )
        elif median > time_budget_s:
            verdict = "suspicious"
            text = (
                f"import {name} takes {median:.2f} s ({where}): over its budget of "
                f"{time_budget_s:g} s, but not with 95% confidence; raise import_repeats "
                f"or leave the budget some headroom"
            )
        else:
            verdict = "within"
            text = f"import {name} takes {median:.2f} s, within {time_budget_s:g} s"
        out.append(ImportJudgement(verdict, "import_time_s", median, time_budget_s, text))
    if module_budget is not None and measured.module_counts:
        fewest, most = min(measured.module_counts), max(measured.module_counts)
        runs = len(measured.module_counts)
        if fewest > module_budget:
            verdict = "over"
            text = (
                f"import {name} loads {fewest} modules (fewest in {runs} fresh interpreters), "
                f"over its budget of {module_budget} ({source} modules); "
                f"{_culprit(measured)}"
            )
        elif most > module_budget:
            verdict = "suspicious"
            text = (
                f"import {name} loads {fewest} to {most} modules in {runs} fresh "
                f"interpreters: over its budget of {module_budget} in some runs only"
            )
        else:
            verdict = "within"
            text = f"import {name} loads {most} modules, within {module_budget}"
        out.append(ImportJudgement(verdict, "modules", float(fewest), module_budget, text))
    return tuple(out)


def import_failed(measured: ImportMeasurement, root: Path) -> str:
    """The message for an import that raised in the fresh interpreter."""
    return (
        f"import {measured.module} failed in a fresh interpreter started in {root}: "
        f"{measured.error}; check the module name in the budget and that the package is "
        f"importable from there"
    )


def _culprit(measured: ImportMeasurement) -> str:
    parts = []
    if len(measured.chain) > 1:
        parts.append(
            "heaviest chain "
            + " -> ".join(f"{name} ({seconds:.2f} s)" for name, seconds in measured.chain)
        )
    if measured.packages:
        shown = measured.packages[:_PACKAGES_SHOWN]
        parts.append("most modules from " + ", ".join(f"{n} ({c})" for n, c in shown))
    parts.append(f"'trainperf imports {measured.module}' blames the import lines")
    return "; ".join(parts)


def _heaviest_chain(tree: ImportTree) -> tuple[tuple[str, float], ...]:
    if not tree.roots:
        return ()
    node: ImportNode = max(tree.roots, key=lambda root: root.cumulative_us)
    chain = [(node.name, node.cumulative_us / 1e6)]
    while node.children and len(chain) < _CHAIN_MAX:
        child = max(node.children, key=lambda c: c.cumulative_us)
        if child.cumulative_us < _CHAIN_SHARE * node.cumulative_us:
            break
        node = child
        chain.append((node.name, node.cumulative_us / 1e6))
    return tuple(chain)


def _packages(tree: ImportTree) -> tuple[tuple[str, int], ...]:
    counts: dict[str, int] = {}
    for name in {node.name for node in tree.nodes()}:
        top = name.split(".", 1)[0]
        counts[top] = counts.get(top, 0) + 1
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _numbers(data: JsonObject, key: str) -> list[float]:
    values = req_list(data, key)
    numbers = [float(v) for v in values if _is_number(v)]
    if len(numbers) != len(values):
        raise RecordError(f"{key} must hold numbers, got {values!r}")
    return numbers


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
