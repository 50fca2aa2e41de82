"""``trainperf report RUN``: a monitored run's verdict, re-analysed from its records.

A run the doctor made also holds ``doctor.json``: its findings (title, evidence, fix,
and a gain measured or estimated) are shown after the monitor's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.cli import EXIT_OK, Command
from trainperf.cli._render import emit_json
from trainperf.errors import UsageError

if TYPE_CHECKING:
    import argparse

    from trainperf._json import Json, JsonObject
    from trainperf.doctor.report import DoctorFinding, GainSource
    from trainperf.monitoring.analyze import RunSummary

DOCTOR_FILE = "doctor.json"  # written by trainperf doctor beside the run's records
SCALING_FILE = "scaling.json"  # written by trainperf doctor --scale beside its runs
_SOURCES: dict[str, GainSource] = {"measured": "measured", "estimated": "estimated", "none": "none"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", help="a run folder, a run id under .trainperf/runs, or 'last' for the newest"
    )
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    parser.add_argument("--trace", metavar="FILE", help="also write a Chrome/Perfetto trace")


def find_run(name: str) -> Path:
    """A run folder from a path, a run id, or ``last`` / ``previous`` (by start time).

    A folder holding only the doctor's report (a command that failed before training)
    is a run too: its findings are what there is to show. A run recorded by a
    trainperf whose records this one does not read is a ``RecordError`` naming the file.
    """
    from trainperf.monitoring.records import check_run_version, is_run
    from trainperf.settings import Settings

    runs = Settings.from_env().home() / "runs"
    if name in ("last", "previous"):
        found = sorted(p for p in runs.glob("*") if is_run(p))
        wanted = 1 if name == "last" else 2
        if len(found) < wanted:
            raise UsageError(
                f"no {name} run under {runs} ({len(found)} recorded); record runs with "
                f"trainperf run or trainperf.monitor()"
            )
        check_run_version(found[-wanted])
        return found[-wanted]
    for candidate in (Path(name), runs / name):
        if is_run(candidate) or (candidate / DOCTOR_FILE).is_file():
            check_run_version(candidate)
            return candidate
        if (candidate / SCALING_FILE).is_file():
            raise UsageError(_scaling_folder(candidate))
    raise UsageError(
        f"no run at {name!r}: give a run folder (holding steps.jsonl), a run id under "
        f"{runs}, 'last' or 'previous'"
    )


def _scaling_folder(folder: Path) -> str:
    """What to say for the folder of a ``doctor --scale`` run: not a run itself, but
    one run folder per rank count and round beside its report."""
    runs = sorted(p.name for p in folder.iterdir() if p.is_dir())  # n<count>-r<round>
    page = folder / "scaling.html"
    where = f"its report is {page}" if page.is_file() else f"its report is {folder / SCALING_FILE}"
    if not runs:
        return f"{folder} is a trainperf doctor --scale folder, not a run: {where}"
    return (
        f"{folder} is a trainperf doctor --scale folder, not a run: {where}; report one of "
        f"its runs ({', '.join(runs)}), e.g. trainperf report {folder / runs[0]}"
    )


def read_doctor(folder: Path) -> list[JsonObject] | None:
    """The findings of the doctor's report in ``folder``, each checked to have what a
    doctor finding has (as :meth:`DoctorFinding.to_json` writes it); None when the
    folder holds no doctor report.

    Raises :class:`~trainperf.errors.RecordError` for a file that is not one.
    """
    import json

    from trainperf._json import as_object
    from trainperf._schema import DOCTOR
    from trainperf.errors import RecordError

    path = folder / DOCTOR_FILE
    if not path.is_file():
        return None
    try:
        report = as_object(json.loads(path.read_text(encoding="utf-8")), "the report")
    except (OSError, ValueError, RecordError) as exc:  # JSON and decoding errors included
        raise RecordError(
            f"{path} is not a trainperf doctor report ({exc}); {DOCTOR.fix}"
        ) from None
    # Its version first: a newer report is one line saying so, not a malformed one.
    DOCTOR.check(report, source=str(path))
    try:
        found = _findings(report)
    except RecordError as exc:
        raise RecordError(
            f"{path} is not a trainperf doctor report ({exc}); {DOCTOR.fix}"
        ) from None
    return found


def _findings(report: JsonObject) -> list[JsonObject]:
    """The findings of a doctor report of a version this trainperf reads."""
    from trainperf._json import as_object, req_list

    found = [as_object(item, "a finding") for item in req_list(report, "findings")]
    for finding in found:
        _finding(finding)  # raises for one that is not a doctor finding
    return found


def _finding(data: JsonObject) -> DoctorFinding:
    """A doctor finding from its JSON, with the fields the terminal shows."""
    from trainperf._json import opt_float, req_str
    from trainperf.doctor.report import DoctorFinding
    from trainperf.errors import RecordError

    kind, title = req_str(data, "kind"), req_str(data, "title")
    evidence = _strings(data, "evidence")
    fix, gain = req_str(data, "fix"), req_str(data, "gain")
    said = req_str(data, "gain_source")
    source = _SOURCES.get(said)
    if source is None:
        raise RecordError(f"gain_source {said!r}, expected measured, estimated or none")
    return DoctorFinding(
        kind=kind,
        title=title,
        evidence=evidence,
        fix=fix,
        gain=gain,
        gain_source=source,
        speedup=opt_float(data, "speedup"),
        overrides=_strings(data, "overrides"),
    )


def _strings(data: JsonObject, key: str) -> tuple[str, ...]:
    from trainperf._json import req_list
    from trainperf.errors import RecordError

    values = req_list(data, key)
    if not all(isinstance(v, str) for v in values):
        raise RecordError(f"expected strings for {key!r}, got {values!r}")
    return tuple(str(v) for v in values)


def run(args: argparse.Namespace) -> int:
    from trainperf.monitoring.records import is_run

    folder = find_run(args.run)
    doctor = read_doctor(folder)
    summary: RunSummary | None = None
    finished = False
    if is_run(folder):
        from trainperf.monitoring.analyze import summarize_folder

        cut = None
        if doctor is not None:  # as the doctor summarised it: the steps before its stop
            from trainperf.doctor.diagnose import proofs_cut

            cut = proofs_cut(folder)
        summary, finished = summarize_folder(folder, cut=cut)
        if args.html or args.trace:
            _write_views(folder, summary, html_to=args.html, trace_to=args.trace)
    elif args.html or args.trace:
        raise UsageError(
            f"{folder} holds no step records (the command trained no step), so there is no "
            f"page or trace to write; its doctor report is {folder / 'doctor.html'}"
        )
    if args.json:
        data: JsonObject = (
            summary.to_json()
            if summary is not None
            else {"steps": 0, "verdict": {"primary": "no-training-seen", "findings": []}}
        )
        data["run"] = str(folder)
        data["finished"] = finished
        if doctor is not None:
            listed: list[Json] = [*doctor]
            data["doctor_findings"] = listed
        from trainperf._schema import REPORT

        emit_json(REPORT.stamp(data))
    else:
        print(_text(folder, summary, finished, doctor))
    return EXIT_OK


def _text(
    folder: Path,
    summary: RunSummary | None,
    finished: bool,
    doctor: list[JsonObject] | None,
) -> str:
    from trainperf.monitoring.render import render_summary

    title = f"run {folder}"
    if summary is not None:
        lines = [render_summary(summary, title=title, finished=finished)]
    else:
        lines = [title, "no training step was recorded (the command trained no step)"]
    if doctor is None:
        return "\n".join(lines)
    from trainperf.doctor.render import render_findings

    page = folder / "doctor.html"
    where = f"{DOCTOR_FILE}; its page: {page}" if page.is_file() else DOCTOR_FILE
    lines += ["", f"the doctor's findings ({where}):"]
    found = [_finding(item) for item in doctor]
    lines += render_findings(found) or ["   none: nothing in this run was slow enough to name"]
    return "\n".join(lines)


def _write_views(
    folder: Path, summary: RunSummary, *, html_to: str | None, trace_to: str | None
) -> None:
    import json

    from trainperf.monitoring.records import rank_folders, read_periods
    from trainperf.monitoring.sampler import read_samples

    first = rank_folders(folder)[0]
    periods = read_periods(first / "steps.jsonl")
    if html_to:
        from trainperf.monitoring.html import render_run_html

        samples = read_samples(first / "samples.jsonl")
        page = render_run_html(f"run {folder.name}", summary, periods, samples)
        _write(Path(html_to), page)
    if trace_to:
        from trainperf.monitoring.trace import chrome_trace

        events: list[object] = []
        for rank, path in enumerate(rank_folders(folder)):
            trace = chrome_trace(read_periods(path / "steps.jsonl"), rank=rank)
            listed = trace["traceEvents"]
            if isinstance(listed, list):
                events.extend(listed)
        _write(Path(trace_to), json.dumps({"traceEvents": events}))


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot write {path}: {exc.strerror or exc}; give a writable path"
        ) from None


COMMAND = Command(configure, run)
