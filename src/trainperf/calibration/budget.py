"""What a calibration kept for the training step, and what loading alone could reach.

Without a training step (loader only) the search cannot see what the step will
need, so the budget keeps it a whole CPU (:mod:`~trainperf.calibration.search`) and
the choice is the fastest loading in the rest. That is an assumption, and the
result says so: :class:`CpuBudget` states it, and :class:`LoaderOnly` is the
fastest loading measured with no CPU kept (the climb goes on past the budget), shown
beside the choice -- or, where the climb could not go on, why it was not measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainperf._json import as_object, opt_float, opt_int, req_str
from trainperf.calibration.config import LoaderConfig
from trainperf.errors import RecordError

if TYPE_CHECKING:
    from trainperf._json import JsonObject

__all__ = ["CpuBudget", "LoaderOnly"]


@dataclass(frozen=True)
class CpuBudget:
    """``cpus`` usable by this rank, ``step_cpus`` of them kept for the training step;
    ``cpu_share``: the CPU a loading process uses per second of loading (measured on
    ``workers=0``); ``step_measured``: the candidates were timed with the step."""

    cpus: int
    step_cpus: int
    cpu_share: float | None
    step_measured: bool

    @property
    def waits(self) -> bool:
        """A loader that mostly waits: the CPUs do not bound its workers."""
        from trainperf.calibration.search import IO_BOUND_SHARE

        return self.cpu_share is not None and self.cpu_share < IO_BOUND_SHARE

    def describe(self) -> str:
        kept = f"{self.step_cpus} kept for the training step"
        if self.step_measured:
            kept += " (its real need timed with every candidate; one rung past this is tried)"
        else:
            kept += " (no step given: its need is assumed, not measured)"
        share = self.cpu_share
        if share is None:
            use = "what a loading process uses was not measured"
        elif self.waits:
            use = (
                f"a loading process uses {share:.2f} CPU per second of loading: it mostly "
                f"waits, so measurements bound the workers, not the CPUs"
            )
        else:
            use = f"a loading process uses {min(1.0, share):.2f} CPU per second of loading"
        loading = max(0, self.cpus - self.step_cpus)
        return f"{self.cpus} CPUs: {kept}, {loading} for loading; {use}"

    def to_json(self) -> JsonObject:
        return {
            "cpus": self.cpus,
            "step_cpus": self.step_cpus,
            "cpu_share": None if self.cpu_share is None else round(self.cpu_share, 4),
            "step_measured": self.step_measured,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> CpuBudget:
        data = as_object(data, "budget")
        cpus, step = opt_int(data, "cpus"), opt_int(data, "step_cpus")
        if cpus is None or step is None:
            raise RecordError("a calibration's budget needs cpus and step_cpus")
        return cls(cpus, step, opt_float(data, "cpu_share"), data.get("step_measured") is True)


@dataclass(frozen=True)
class LoaderOnly:
    """The fastest loading measured with no CPU kept for a step (possibly the choice).

    ``searched``: the climb for it ran its course; ``False``: it was cut short (by
    ``max_workers``, memory), so a faster one may exist, as ``note`` says.
    """

    config: LoaderConfig
    samples_per_s: float | None
    run_samples_per_s: float | None  # over the run the choice was weighed on
    is_choice: bool
    searched: bool
    note: str

    def describe(self, chosen_samples_per_s: float | None) -> str:
        if self.is_choice:
            head = "the choice itself"
        else:
            rate = f"{self.samples_per_s:,.1f} samples/s" if self.samples_per_s else "-"
            ratio = ""
            if self.samples_per_s and chosen_samples_per_s:
                ratio = f", {self.samples_per_s / chosen_samples_per_s:.2f}x the choice"
            head = f"{self.config.describe()}: {rate}{ratio} (measured)"
        return f"{head}; {self.note}"

    def to_json(self) -> JsonObject:
        return {
            "config": self.config.to_json(),
            "samples_per_s": self.samples_per_s,
            "run_samples_per_s": self.run_samples_per_s,
            "is_choice": self.is_choice,
            "searched": self.searched,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> LoaderOnly:
        data = as_object(data, "loader_only")
        return cls(
            config=LoaderConfig.from_json(as_object(data.get("config"), "loader_only.config")),
            samples_per_s=opt_float(data, "samples_per_s"),
            run_samples_per_s=opt_float(data, "run_samples_per_s"),
            is_choice=data.get("is_choice") is True,
            searched=data.get("searched") is True,
            note=req_str(data, "note"),
        )
