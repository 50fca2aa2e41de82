"""What ``trainperf doctor`` found: plain records, serialisable, rendered elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from trainperf._json import JsonObject, JsonScalar
    from trainperf.monitoring.analyze import Confidence

__all__ = ["DoctorFinding", "DoctorReport", "GainSource"]

GainSource = Literal["measured", "estimated", "none"]


@dataclass(frozen=True)
class DoctorFinding:
    """One cause, with what shows it, what to do, and what doing it gains."""

    kind: str  # "startup-imports", "input-bound", "validation-preprocessing", or a monitor's
    title: str
    evidence: tuple[str, ...]
    fix: str
    gain: str
    gain_source: GainSource
    # What the fix saves as a factor of the run's wall time (1.25 = 25% faster); for
    # ordering and for tools. None where it cannot be put as one number.
    speedup: float | None = None
    overrides: tuple[str, ...] = ()  # the bundled example's switches that apply the fix
    # The 95% interval of a measured speedup, from the repeated measurements behind it.
    speedup_low: float | None = None
    speedup_high: float | None = None
    confidence: Confidence = "high"
    reasons: tuple[str, ...] = ()  # what lowered the confidence
    # A Hugging Face Trainer run: the TrainingArguments fields that apply the fix.
    training_arguments: tuple[tuple[str, JsonScalar], ...] = ()

    def to_json(self) -> JsonObject:
        return {
            "kind": self.kind,
            "title": self.title,
            "evidence": list(self.evidence),
            "fix": self.fix,
            "gain": self.gain,
            "gain_source": self.gain_source,
            "speedup": self.speedup,
            "speedup_low": self.speedup_low,
            "speedup_high": self.speedup_high,
            "confidence": self.confidence,
            "reasons": list(self.reasons),
            "overrides": list(self.overrides),
            "training_arguments": dict(self.training_arguments),
        }


@dataclass(frozen=True)
class DoctorReport:
    command: tuple[str, ...]
    bundled: bool
    run: str  # the run folder
    returncode: int | None  # None: stopped by the doctor's timeout
    finished: bool  # the run's summary was written by the command itself
    elapsed_s: float
    resources: JsonObject
    startup: JsonObject
    summary: JsonObject | None  # the monitor's report (RunSummary.to_json()); None: no step
    proofs: tuple[JsonObject, ...]
    findings: tuple[DoctorFinding, ...]
    failure: str | None = None  # the command's failure, in its own words
    output_tail: tuple[str, ...] = ()
    stopped_at_step: int | None = None
    notes: tuple[str, ...] = field(default=())
    # Causes looked into whose own proof did not confirm them: said in their section,
    # never in the numbered findings ("start-up: nothing worth deferring ...").
    set_aside: tuple[str, ...] = ()
    # `--fix`: each finding's verified patch (trainperf.doctor.patches), never applied.
    patches: tuple[JsonObject, ...] = ()

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def training_arguments(self) -> JsonObject:
        """Every finding's ``TrainingArguments`` changes, merged (the first finding wins a
        field two set): what ``trainperf doctor --apply`` writes for a Trainer run."""
        merged: JsonObject = {}
        for finding in self.findings:
            for name, value in finding.training_arguments:
                merged.setdefault(name, value)
        return merged

    def to_json(self) -> JsonObject:
        """The monitor's report schema, plus ``startup``, ``resources`` and ``proofs``."""
        from trainperf._schema import DOCTOR

        out: JsonObject = {}
        if self.summary is not None:
            out.update(self.summary)
        else:
            out.update(steps=0, verdict={"primary": "no-training-seen", "findings": []})
        out.update(
            command=list(self.command),
            bundled=self.bundled,
            run=self.run,
            returncode=self.returncode,
            finished=self.finished,
            elapsed_s=round(self.elapsed_s, 3),
            failure=self.failure,
            output_tail=list(self.output_tail),
            stopped_at_step=self.stopped_at_step,
            startup=self.startup,
            resources=self.resources,
            proofs=list(self.proofs),
            findings=[f.to_json() for f in self.findings],
            overrides=[o for f in self.findings for o in f.overrides],
            training_arguments=self.training_arguments(),
            notes=list(self.notes),
            set_aside=list(self.set_aside),
            patches=list(self.patches),
        )
        return DOCTOR.stamp(out)  # the doctor's version, not the summary's it holds
