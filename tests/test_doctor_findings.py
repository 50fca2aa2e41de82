"""The doctor's findings as pure functions: no padding, the verdict's cause first,
call-path shares that add up, gains that say where they come from."""

from __future__ import annotations

import time

import pytest

from trainperf.doctor.child import _hot_functions
from trainperf.doctor.findings import compose, startup_finding
from trainperf.monitoring.analyze import summarize
from trainperf.monitoring.records import Period


def startup(measured: float | None, *, reads_config: str | None = None, markers=None) -> dict:
    return {
        "entry": "train.py",
        "lines": [
            {
                "where": "train.py:3",
                "statement": "import torch",
                "exclusive_s": 2.0,
                "cumulative_s": 2.04,
            }
        ],
        "groups": [{"starts": ["train.py:3"], "saving_s": 2.04, "packages": ["torch"]}],
        "verified": None
        if measured is None
        else {"lines": ["train.py:3"], "predicted_s": 2.04, "measured_s": measured},
        "reads_config": reads_config,
        "markers": markers or {},
    }


def test_a_deferral_its_re_timing_did_not_confirm_is_set_aside() -> None:
    finding, said = startup_finding(startup(0.04, reads_config="argparse"), bundled=False)
    assert finding is None
    assert said.startswith("nothing worth deferring")
    assert "0.04 s faster (2.04 s predicted)" in said
    assert "names each line it cannot move, and why" in said  # where to find the cause


def test_imports_a_script_needs_before_its_first_step_are_not_advised() -> None:
    finding, said = startup_finding(startup(1.9), bundled=False)
    assert finding is None
    assert "loaded before the first training step anyway" in said


def test_with_a_configuration_read_first_the_gain_is_time_to_a_config_error() -> None:
    finding, said = startup_finding(startup(1.9, reads_config="hydra"), bundled=False)
    assert said == ""
    assert finding is not None
    assert finding.gain_source == "measured"
    assert finding.gain.startswith("a bad setting is reported 1.90 s sooner (measured")
    assert "the first training step comes no sooner" in finding.gain
    marked, _ = startup_finding(startup(1.9, markers={"config_validated": 2.5}), bundled=False)
    assert marked is not None


def steps(n: int, wall: float, wait: float, start: float = 0.0) -> list[Period]:
    return [
        Period("train", i, 0, start + i * wall, wall, wait, 8, first_of_epoch=i == 0)
        for i in range(n)
    ]


def test_findings_open_with_the_verdicts_own_cause_and_nothing_unconfirmed() -> None:
    periods = steps(40, 0.1, 0.06, start=10.0)
    summary = summarize(periods, startup_s=10.0, cpus=2.0)
    assert summary.run.kind == "startup-bound"
    findings, aside = compose(
        startup=startup(0.04, reads_config="argparse"),
        periods=periods,
        summary=summary,
        proofs=(),
        loaders=(),
        cpus=2.0,
        bundled=False,
    )
    kinds = [f.kind for f in findings]
    assert kinds[:2] == ["startup-bound", "input-bound"]
    assert all("not confirmed" not in f.gain for f in findings)
    assert any(a.startswith("start-up: nothing worth deferring") for a in aside)
    for finding in findings:
        if "estimated" in finding.gain and "measured" not in finding.gain:
            assert finding.gain_source == "estimated"


def test_call_path_shares_are_shares_of_their_path_and_add_up_to_at_most_all() -> None:
    def leaf() -> None:
        time.sleep(0.02)

    def first() -> None:
        leaf()

    def second() -> None:
        leaf()
        leaf()

    def build(indices: list[int]) -> None:
        first()
        second()

    hot = _hot_functions(build, [0])
    shares = {str(h["function"]): float(h["share"]) for h in hot}  # type: ignore[arg-type]
    assert sum(shares.values()) <= 1.0 + 1e-9
    by_caller = {name.split(" > ")[0].rsplit(".", 1)[-1]: share for name, share in shares.items()}
    # first() calls the leaf once, second() twice: a third and two thirds, not all twice.
    assert by_caller["first"] == pytest.approx(1 / 3, abs=0.1)
    assert by_caller["second"] == pytest.approx(2 / 3, abs=0.1)


def test_the_configuration_reader_is_found_in_the_entry_points_source(tmp_path) -> None:
    from trainperf.doctor.diagnose import _reads_config

    (tmp_path / "cli.py").write_text("import torch\nimport argparse\n")
    (tmp_path / "hydra_app.py").write_text("from hydra import main\n")
    (tmp_path / "plain.py").write_text("import torch\nprint(torch.ones(1))\n")
    assert _reads_config(str(tmp_path / "cli.py")) == "argparse"
    assert _reads_config(str(tmp_path / "hydra_app.py")) == "hydra"
    assert _reads_config(str(tmp_path / "plain.py")) is None
    assert _reads_config("trainperf.examples.ocr.train") == "hydra"  # a module name


def _oversubscribed():
    """A run with two intra-op threads and four worker processes on two CPUs."""
    from trainperf.monitoring.sampler import Sample

    host = [Sample(1.0, 100, 100, 100.0, 100.0, children=4)]
    return summarize(steps(30, 0.01, 0.002), host=host, threads=2, cpus=2.0)


def _calibration_proof(mode: str, speedup: float, low: float) -> dict:
    return {
        "kind": "calibration",
        "role": "training",
        "baseline_samples_per_s": 100.0,
        "chosen_samples_per_s": 100.0 * speedup,
        "gain": speedup,
        "calibration": {
            "mode": mode,
            "elapsed_s": 1.0,
            "chosen": {"batch_size": 64, "num_workers": 0, "main_threads": 2},
            "candidates": [{"samples_per_s": 100.0}, {"samples_per_s": 100.0 * speedup}],
        },
        "verified": {
            "speedup": speedup,
            "speedup_low": low,
            "speedup_high": speedup + 0.5,
            "rounds": 5,
        },
    }


def test_thread_oversubscription_takes_the_gain_its_end_to_end_calibration_measured() -> None:
    from trainperf.doctor.findings import thread_finding

    summary = _oversubscribed()
    assert thread_finding(summary, []) is None  # no proof: the monitor's finding stands
    found = thread_finding(summary, [_calibration_proof("end-to-end", 1.5, 1.3)])
    assert found is not None
    assert found.gain_source == "measured"
    assert found.fix.startswith("set num_workers=0 and torch.set_num_threads(2) (calibrated)")
    assert found.speedup == 1.5
    (listed,) = [
        f
        for f in compose(
            startup={},
            periods=[],
            summary=summary,
            proofs=[_calibration_proof("end-to-end", 1.5, 1.3)],
            loaders=[],
            cpus=2.0,
            bundled=False,
        )[0]
        if f.kind == "thread-oversubscription"
    ]
    assert listed.gain_source == "measured"


def test_a_loader_only_calibration_is_no_measured_gain_for_the_training() -> None:
    from trainperf.doctor.findings import thread_finding

    found = thread_finding(_oversubscribed(), [_calibration_proof("loader", 3.0, 2.0)])
    assert found is not None
    assert found.gain_source == "estimated"
    assert "the loader alone, without the training step, ran 3.0x" in found.gain
    assert found.speedup is None
    none = thread_finding(_oversubscribed(), [_calibration_proof("end-to-end", 1.0, 0.8)])
    assert none is not None
    assert none.gain.startswith("the calibrated settings measured no faster")


def test_a_batch_built_in_collate_fn_or_differently_each_time_points_at_its_function() -> None:
    from trainperf.doctor.findings import _cache_text, _hot_fix

    hot = [{"function": "collate > make_label_maps", "share": 0.8}]
    collated = {
        "kind": "cache",
        "role": "training",
        "deterministic": True,
        "uncached_s": 0.010,
        "collate_s": 0.008,
        "cached_s": 0.001,
        "hot": hot,
        "batches": 4,
    }
    fix = _hot_fix(collated)
    assert fix is not None
    assert fix.startswith("collate_fn takes 80% of building a batch")
    assert "collate > make_label_maps (80% of a batch)" in fix
    evidence: list[str] = []
    assert _cache_text(collated, evidence) == pytest.approx((0.010, 0.001))
    assert "move it into __getitem__" in fix
    assert "2.0 ms in the samples' __getitem__, 8.0 ms in collate_fn" in evidence[0]
    random = {
        **collated,
        "deterministic": False,
        "collate_s": 0.001,
        "hot": [{"function": "augment", "share": 0.7}],
    }
    fix = _hot_fix(random)
    assert fix is not None
    assert "make augment (70% of a batch) cheaper" in fix
    evidence = []
    assert _cache_text(random, evidence) is None
    assert any(
        "where building a training batch spends its time: augment 70%" in e for e in evidence
    )
    plain = {**collated, "collate_s": 0.001}
    assert _hot_fix(plain) is None


def test_a_loop_waiting_in_its_own_batch_function_is_not_told_about_dataloader_workers() -> None:
    from trainperf.monitoring.anatomy_record import AnatomyRecord, StackSample

    periods = [
        Period("train", i, 0, i * 0.1, 0.1, 0.0, None, first_of_epoch=(i == 0)) for i in range(30)
    ]
    samples = [
        StackSample(
            i * 0.1 + k / 100,
            "loop",
            "train.py",
            44 if k < 5 else 90,
            "get_batch" if k < 5 else "main",
        )
        for i in range(30)
        for k in range(10)
    ]
    record = AnatomyRecord(interval_s=0.01, samples=tuple(samples), gc_pauses=())
    summary = summarize(periods, anatomy=record, cpus=2.0)
    assert summary.data_wait_functions == ("train.py:get_batch",)
    assert summary.step.kind == "input-bound"
    found, _ = compose(
        startup={}, periods=periods, summary=summary, proofs=[], loaders=[], cpus=2.0, bundled=False
    )
    (inputs,) = [f for f in found if f.kind == "input-bound"]
    assert inputs.title == "training waits for its own batch function (get_batch)"
    assert "DataLoader workers over a Dataset" in inputs.fix
    assert "num_workers" not in inputs.title
    assert inputs.gain_source == "estimated"
    assert any("estimated from stack samples" in r for r in inputs.reasons)


def test_the_page_gives_calibration_rates_to_one_decimal_and_each_start_method() -> None:
    from trainperf.doctor.html import render_doctor_html
    from trainperf.doctor.report import DoctorReport

    def candidate(context: str | None, rate: float, status: str) -> dict:
        return {
            "batch_size": 64,
            "num_workers": 4,
            "persistent_workers": context == "spawn",
            "prefetch_factor": 2,
            "main_threads": 1,
            "multiprocessing_context": context,
            "samples_per_s": rate,
            "status": status,
        }

    proof = _calibration_proof("loader", 3596.3269009953874 / 461.1051501279086, 2.0)
    proof["baseline_samples_per_s"] = 461.1051501279086
    proof["chosen_samples_per_s"] = 3596.3269009953874
    proof["calibration"]["candidates"] = [
        {**candidate(None, 461.1051501279086, "measured"), "num_workers": 0},
        candidate("fork", 3596.3269009953874, "chosen"),
        candidate("forkserver", 2100.04, "measured"),
        candidate("spawn", 1900.96, "measured"),
    ]
    report = DoctorReport(
        command=("python", "train.py"),
        bundled=False,
        run="/runs/r",
        returncode=0,
        finished=True,
        elapsed_s=3.0,
        resources={"cpu_budget": 2.0, "host_cpus": 2},
        startup=startup(None),
        summary=None,
        proofs=(proof,),
        findings=(),
    )
    page = render_doctor_html(report, summary=None, periods=[], samples=[])
    assert "the loader's own settings 461.1 samples/s, chosen 3,596.3 samples/s (7.80x)" in page
    assert "461.1051501279086" not in page
    assert "<th>start method</th><th>persistent workers</th>" in page
    assert "<td>-</td><td>-</td><td>461.1</td>" in page  # no worker processes
    assert "<td>fork</td><td>no</td><td>3,596.3</td><td>chosen</td>" in page
    assert "<td>forkserver</td><td>no</td><td>2,100.0</td>" in page
    assert "<td>spawn</td><td>yes</td><td>1,901.0</td>" in page


def test_the_rank_table_says_its_steps_are_the_steady_ones_and_stays_aligned() -> None:
    from trainperf.monitoring.render import describe_ranks

    def row(rank: int, steps: int) -> dict:
        return {
            "rank": rank,
            "steps": steps,
            "step_s": 0.0186,
            "data_wait_s": 0.002,
            "forward_s": 0.0086,
            "arrival_s": 0.0106,
            "sync_s": 0.008,
            "slowest_share": 0.5,
            "intra_op_threads": 1,
        }

    lines = describe_ranks({"rank_breakdown": {"rows": [row(0, 38), row(1, 123456)]}})
    header, *rows = lines
    assert header.split("  ")[:3] == ["rank", "steady", "step ms"]
    ends = [header.index(name) + len(name) for name in ("rank", "steady", "step ms", "threads")]
    for line in rows:
        assert len(line) == len(header)
        for end in ends:  # right-aligned under their names
            assert line[end - 1] != " "
            assert end == len(line) or line[end] == " "
    assert rows[1].split()[:2] == ["1", "123456"]


def test_a_doubtful_start_up_verdict_of_a_stopped_run_comes_after_the_sure_step() -> None:
    periods = steps(40, 0.1, 0.06, start=10.0)
    sure = summarize(periods, startup_s=10.0, cpus=2.0)
    stopped = summarize(periods, startup_s=10.0, cpus=2.0, stopped_early=True)
    assert sure.run.confidence == "high"
    assert stopped.run.kind == "startup-bound"
    assert stopped.run.confidence != "high"
    assert stopped.step.confidence == "high"

    def order(summary: object) -> list[str]:
        found, _ = compose(
            startup=startup(0.04, reads_config="argparse"),
            periods=periods,
            summary=summary,  # type: ignore[arg-type]
            proofs=(),
            loaders=(),
            cpus=2.0,
            bundled=False,
        )
        return [f.kind for f in found][:2]

    assert order(sure) == ["startup-bound", "input-bound"]
    assert order(stopped) == ["input-bound", "startup-bound"]
