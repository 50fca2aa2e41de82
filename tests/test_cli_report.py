"""`trainperf report`: re-analysis of a run folder, finished or killed."""

from __future__ import annotations

import json

import pytest

from _support import run_cli
from trainperf.monitoring.records import Period


def write_run(folder, periods, *, finished=True) -> None:
    folder.mkdir(parents=True)
    (folder / "steps.jsonl").write_text("".join(json.dumps(p.to_json()) + "\n" for p in periods))
    if finished:
        (folder / "summary.json").write_text("{}")


def input_bound() -> list[Period]:
    return [Period("train", i, 0, float(i), 1.0, 0.6, 8) for i in range(10)]


def test_json_schema(tmp_path) -> None:
    write_run(tmp_path / "r1", input_bound())
    proc = run_cli("report", str(tmp_path / "r1"), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["steps"] == 10
    assert data["samples_per_s"] == 8.0
    assert set(data["shares"]) == {"data_wait", "compute", "validation", "startup"}
    assert data["verdict"]["primary"] == "input-bound"
    finding = data["verdict"]["findings"][0]
    assert {"kind", "evidence", "fix", "gain"} <= set(finding)
    assert data["finished"] is True


def test_killed_run_with_a_torn_line_and_last(tmp_path) -> None:
    home = tmp_path / "home"
    folder = home / "runs" / "20260101-000000-1"
    write_run(folder, input_bound(), finished=False)
    with (folder / "steps.jsonl").open("a") as handle:
        handle.write('{"kind": "tra')
    proc = run_cli("report", "last", env={"TRAINPERF_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    assert "did not finish" in proc.stdout
    verdict = next(line for line in proc.stdout.splitlines() if line.startswith("verdict: "))
    assert "input-bound" in verdict


def test_bad_runs_are_one_line(tmp_path) -> None:
    missing = run_cli("report", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "no run at" in missing.stderr
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "steps.jsonl").write_text("garbage\n" + json.dumps(input_bound()[0].to_json()) + "\n")
    corrupt = run_cli("report", str(folder))
    assert corrupt.returncode == 2
    assert "not a trainperf step record" in corrupt.stderr
    assert len(corrupt.stderr.strip().splitlines()) == 1


def test_html_and_trace(tmp_path) -> None:
    periods = [*input_bound(), Period("val", 0, 0, 10.0, 2.0, 0.5, 32)]
    write_run(tmp_path / "r", periods)
    host = [
        {
            "t_s": t,
            "rss_bytes": 2**28,
            "children_rss_bytes": 0,
            "cpu_percent": 99.0,
            "children_cpu_percent": 0.0,
            "children": 0,
        }
        for t in (1.0, 5.0, 9.0)
    ]
    (tmp_path / "r" / "samples.jsonl").write_text("".join(json.dumps(h) + "\n" for h in host))
    page, trace = tmp_path / "run.html", tmp_path / "trace.json"
    proc = run_cli("report", str(tmp_path / "r"), "--html", str(page), "--trace", str(trace))
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    assert text.startswith("<!doctype html>")
    assert "Verdict: input-bound" in text
    assert text.count("<svg") == 5
    assert "http" not in text  # self-contained
    events = json.loads(trace.read_text())["traceEvents"]
    slices = [e for e in events if e["ph"] == "X" and e["name"].startswith(("train", "val"))]
    assert len(slices) == 11
    assert slices[0]["dur"] == 1e6


def test_foreign_meta_and_samples_and_unwritable_outputs(tmp_path) -> None:
    write_run(tmp_path / "r", input_bound())
    (tmp_path / "r" / "meta.json").write_text("[]")
    bad_meta = run_cli("report", str(tmp_path / "r"))
    assert bad_meta.returncode == 2
    assert "meta.json must hold an object" in bad_meta.stderr
    (tmp_path / "r" / "meta.json").unlink()
    (tmp_path / "r" / "samples.jsonl").write_text("{not json\n")
    bad_samples = run_cli("report", str(tmp_path / "r"), "--html", str(tmp_path / "p.html"))
    assert bad_samples.returncode == 2
    assert "not a trainperf sample record" in bad_samples.stderr
    (tmp_path / "r" / "samples.jsonl").unlink()
    nowhere = run_cli("report", str(tmp_path / "r"), "--trace", str(tmp_path / "no" / "t.json"))
    assert nowhere.returncode == 2
    assert "cannot write" in nowhere.stderr
    for proc in (bad_meta, bad_samples, nowhere):
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


DOCTOR_FINDING = {
    "kind": "input-bound",
    "title": "training waits for its DataLoader (num_workers=0)",
    "evidence": ["the median training step waits 60% of its 1000 ms for the DataLoader"],
    "fix": "set num_workers=4 (measured 1.6x the loader's own settings)",
    "gain": "loader settings: 1.60x (measured)",
    "gain_source": "measured",
    "speedup": 1.6,
    "overrides": ["data.num_workers=4"],
}


def write_doctor(folder, findings, **extra) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    report = {"schema": "trainperf.doctor/1", "steps": 10, "findings": findings, **extra}
    (folder / "doctor.json").write_text(json.dumps(report))


def test_a_doctor_run_shows_the_doctors_findings(tmp_path) -> None:
    folder = tmp_path / "r"
    write_run(folder, input_bound())
    write_doctor(folder, [DOCTOR_FINDING])
    text = run_cli("report", str(folder))
    assert text.returncode == 0, text.stderr
    monitor, doctor = text.stdout.split("the doctor's findings (doctor.json):", 1)
    assert "10 training steps" in monitor  # the monitor's part comes first, as it was
    assert "time: data_wait 60%" in monitor
    assert "1. training waits for its DataLoader (num_workers=0)  [input-bound]" in doctor
    assert "evidence: the median training step waits 60% of its 1000 ms" in doctor
    assert "fix: set num_workers=4" in doctor
    assert "gain (measured): loader settings: 1.60x (measured)" in doctor
    assert "apply: data.num_workers=4" in doctor
    data = json.loads(run_cli("report", str(folder), "--json").stdout)
    assert data["doctor_findings"] == [DOCTOR_FINDING]
    assert data["verdict"]["primary"] == "input-bound"


def test_a_monitor_run_has_no_doctor_findings(tmp_path) -> None:
    write_run(tmp_path / "r", input_bound())
    proc = run_cli("report", str(tmp_path / "r"), "--json")
    assert "doctor_findings" not in json.loads(proc.stdout)


def test_a_doctor_run_that_trained_no_step_still_reports_its_findings(tmp_path) -> None:
    folder = tmp_path / "failed"
    estimated = {**DOCTOR_FINDING, "gain_source": "estimated", "overrides": []}
    write_doctor(folder, [estimated])
    text = run_cli("report", str(folder))
    assert text.returncode == 0, text.stderr
    assert "no training step was recorded" in text.stdout
    assert "gain (estimated): loader settings" in text.stdout
    data = json.loads(run_cli("report", str(folder), "--json").stdout)
    assert data["steps"] == 0
    assert data["doctor_findings"][0]["gain_source"] == "estimated"
    page = run_cli("report", str(folder), "--html", str(tmp_path / "p.html"))
    assert page.returncode == 2
    assert "holds no step records" in page.stderr


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[]", "expected an object"),
        ("{not json", "Expecting property name"),
        ('{"schema": "someone.else/3", "findings": []}', "schema 'someone.else/3'"),
        (
            json.dumps(
                {"schema": "trainperf.doctor/1", "findings": [{**DOCTOR_FINDING, "title": 3}]}
            ),
            "a string for 'title'",
        ),
        (json.dumps({"schema": "trainperf.doctor/1", "findings": [{}]}), "missing key 'kind'"),
        (
            json.dumps(
                {"schema": "trainperf.doctor/1", "findings": [{**DOCTOR_FINDING, "evidence": [1]}]}
            ),
            "'evidence'",
        ),
        (
            json.dumps(
                {
                    "schema": "trainperf.doctor/1",
                    "findings": [{**DOCTOR_FINDING, "gain_source": "guessed"}],
                }
            ),
            "gain_source 'guessed'",
        ),
    ],
)
def test_a_foreign_doctor_report_is_one_line(tmp_path, content, fragment) -> None:
    folder = tmp_path / "r"
    write_run(folder, input_bound())
    (folder / "doctor.json").write_text(content)
    proc = run_cli("report", str(folder), "--json")
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"trainperf: error: {folder / 'doctor.json'} is not a trainperf doctor")
    assert fragment in line
    assert "run trainperf doctor again" in line


def test_a_scale_folder_points_at_its_page_and_its_runs(tmp_path) -> None:
    home = tmp_path / "home"
    folder = home / "runs" / "20260101-000000-1-scale"
    write_run(folder / "n1-r1", input_bound())
    write_run(folder / "n2-r1", input_bound())
    (folder / "scaling.json").write_text("{}")
    (folder / "scaling.html").write_text("<html></html>")
    env = {"TRAINPERF_HOME": str(home)}
    for name in (str(folder), folder.name):  # a path, or a run id under the home
        proc = run_cli("report", name, env=env)
        assert proc.returncode == 2
        assert proc.stdout == ""
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert "no run at" not in proc.stderr
        assert "is a trainperf doctor --scale folder, not a run" in proc.stderr
        assert f"its report is {folder / 'scaling.html'}" in proc.stderr
        assert f"(n1-r1, n2-r1), e.g. trainperf report {folder / 'n1-r1'}" in proc.stderr
    ran = run_cli("report", str(folder / "n2-r1"), env=env)
    assert ran.returncode == 0, ran.stderr
