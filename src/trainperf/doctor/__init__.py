"""``trainperf doctor``: diagnose a training command end to end, prove the advice, report.

    report = diagnose(None)                       # the bundled OCR example, naive
    report = diagnose(["python", "train.py"])     # any command, no code change
    report.findings[0].title, report.findings[0].gain

Phases: resources (:func:`trainperf.detect_resources`), start-up (the entry point's
import profile, and the heavy lines deferred together and re-timed), a monitored
run of bounded length (``trainperf run``'s injection, stopped at ``steps`` or
``budget_s``), analysis (the monitor's verdict), proofs measured inside the command
(:mod:`.child`: calibration of the training loader, cached against uncached batches),
and one report: :mod:`.render` for the terminal, :mod:`.html` for a page, and
:meth:`DoctorReport.to_json`.
"""

from __future__ import annotations

from trainperf.doctor.report import DoctorFinding, DoctorReport

__all__ = ["DoctorFinding", "DoctorReport", "diagnose"]


def __getattr__(name: str) -> object:
    if name == "diagnose":
        from trainperf.doctor.diagnose import diagnose

        return diagnose
    raise AttributeError(name)
