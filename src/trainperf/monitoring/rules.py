"""The rules that turn a run's records into findings, registered in one place.

A rule is a small object: its name (the finding ``kind`` it emits), the records it
reads, its thresholds, and a pure function from :class:`RunRecords` to findings.
Rules are registered with :func:`rule` in the module that defines them; the modules
are listed in ``_RULE_MODULES`` and imported the first time the rules are asked for,
so a rule is added without touching the others, and a test can run any one rule on a
recorded run (``apply_rules(records, names=("step-drift",))``).

The verdicts (``input-bound``, ``compute-bound``, ``startup-bound``, ...) are not rules:
they are drawn first (:mod:`.analyze`), and rules read them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from trainperf.monitoring.analyze import Finding, Tail, Verdict
    from trainperf.monitoring.anatomy_analysis import StepAnatomy
    from trainperf.monitoring.anatomy_record import AnatomyRecord
    from trainperf.monitoring.conditions import Conditions
    from trainperf.monitoring.records import Period
    from trainperf.monitoring.sampler import Sample
    from trainperf.monitoring.worker_timing import WorkerTiming
    from trainperf.monitoring.workers import WorkerPools

__all__ = ["Rule", "RunRecords", "apply_rules", "registered", "rule"]

# Each defines and registers its rules on import; their order is the findings' order.
_RULE_MODULES = (
    "trainperf.monitoring.rules_steps",
    "trainperf.monitoring.rules_host",
    "trainperf.monitoring.rules_workers",
)


@dataclass(frozen=True)
class RunRecords:
    """What a rule reads: one rank's records and the verdicts already drawn from them.

    Times are seconds. ``steady`` are the training steps other than each epoch's first;
    ``decided`` those the step's verdict was taken on (the quiet ones of a run that
    was busy only part of the time). ``cpus`` is the CPU budget per rank.
    """

    periods: Sequence[Period]
    train: Sequence[Period]
    steady: Sequence[Period]
    decided: Sequence[Period]
    host: Sequence[Sample]
    cpus: float
    train_s: float
    step: Verdict
    run: Verdict
    tail: Tail | None = None
    conditions: Conditions | None = None
    intra_op_threads: int | None = None
    anatomy: StepAnatomy | None = None  # the steps' anatomy, from anatomy_record
    anatomy_record: AnatomyRecord | None = None  # the stack samples and GC pauses
    worker_pools: Sequence[WorkerPools] = ()
    workers: WorkerTiming | None = None  # the workers' starts and batches' stages
    total_s: float = 0.0  # the run's wall time: start-up, training and validation

    @property
    def quiet_only(self) -> bool:
        """The step's verdict was taken on the quiet part of a busy run."""
        return len(self.decided) < len(self.steady)


@dataclass(frozen=True)
class Rule:
    """One rule: ``find`` returns its findings (usually none or one).

    ``reads`` names the records it needs (``steps``, ``samples``, ``anatomy``,
    ``workers``, ``conditions``); ``thresholds`` its constants, by name, as documented.
    """

    name: str
    reads: tuple[str, ...]
    find: Callable[[RunRecords], Sequence[Finding]]
    thresholds: Mapping[str, float] = field(default_factory=dict)


_REGISTRY: dict[str, Rule] = {}


def rule(
    name: str, *, reads: tuple[str, ...], thresholds: Mapping[str, float] | None = None
) -> Callable[
    [Callable[[RunRecords], Sequence[Finding]]], Callable[[RunRecords], Sequence[Finding]]
]:
    """Register the decorated function as the rule ``name``.

    Raises ``ValueError`` when a rule of that name is already registered by another
    function (two rules may not emit the same kind).
    """

    def register(
        find: Callable[[RunRecords], Sequence[Finding]],
    ) -> Callable[[RunRecords], Sequence[Finding]]:
        known = _REGISTRY.get(name)
        if known is not None and known.find.__qualname__ != find.__qualname__:
            raise ValueError(f"a rule named {name!r} is already registered ({known.find})")
        _REGISTRY[name] = Rule(name, reads, find, dict(thresholds or {}))
        return find

    return register


def registered() -> tuple[Rule, ...]:
    """Every rule, in the order their findings are listed."""
    for module in _RULE_MODULES:
        importlib.import_module(module)
    return tuple(_REGISTRY.values())


def apply_rules(records: RunRecords, *, names: Sequence[str] | None = None) -> list[Finding]:
    """The findings of every rule (or of the rules ``names``) on ``records``.

    Raises ``ValueError`` naming an unknown rule.
    """
    rules = registered()
    if names is not None:
        known = {r.name for r in rules}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown rule {unknown[0]!r}; known: {', '.join(sorted(known))}")
        rules = tuple(r for r in rules if r.name in names)
    findings: list[Finding] = []
    for each in rules:
        findings.extend(each.find(records))
    return findings
