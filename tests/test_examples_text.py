"""The text example (Hugging Face Trainer): its settings, and the doctor's diagnosis of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _support import run_cli
from trainperf.errors import UsageError
from trainperf.examples.text.config import TRAINER_FIELDS, TextConfig, parse
from trainperf.monitoring.analyze import NOT_MEASURED


def test_fixed_switches_the_three_naive_settings() -> None:
    naive, fixed = parse([]), parse(["--fixed"])
    assert (naive.tokenize, naive.dataloader_num_workers, naive.logging_steps) == ("collator", 0, 1)
    assert (fixed.tokenize, fixed.dataloader_num_workers, fixed.logging_steps) == ("once", 2, 50)
    assert fixed.dataloader_persistent_workers


def test_overrides_file_then_flags(tmp_path) -> None:
    overrides = tmp_path / "training_args.json"
    overrides.write_text(json.dumps({"dataloader_num_workers": 3, "logging_steps": 10}))
    config = parse(["--overrides", str(overrides), "--logging_steps", "20"])
    assert config.dataloader_num_workers == 3  # from the file
    assert config.logging_steps == 20  # the flag wins
    assert set(TRAINER_FIELDS) <= set(TextConfig.__dataclass_fields__)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not a readable JSON file"),
        ("[1, 2]", "expected a JSON object"),
        ('{"dataloader_workers": 2}', "unknown field(s) dataloader_workers"),
        ('{"dataloader_num_workers": "two"}', "dataloader_num_workers must be an integer"),
        ('{"dataloader_persistent_workers": 1}', "must be true or false"),
        ('{"dataloader_num_workers": -1}', "dataloader_num_workers must be >= 0, got -1"),
    ],
)
def test_a_bad_overrides_file_is_named(tmp_path, content, expected) -> None:
    overrides = tmp_path / "args.json"
    overrides.write_text(content)
    with pytest.raises(UsageError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        parse(["--overrides", str(overrides)])


def test_a_range_error_exits_2_in_one_line_before_torch_loads() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trainperf.examples.text.train", "--dataloader_num_workers", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --dataloader_num_workers must be >= 0, got -1"


@pytest.mark.slow
@pytest.mark.verdict
def test_doctor_names_the_tokenising_collator_in_the_trainers_terms(tmp_path) -> None:
    pytest.importorskip("transformers")
    done = run_cli(
        "doctor",
        "--json",
        "--apply",
        "--steps",
        "30",
        "--no-startup",
        "--",
        sys.executable,
        "-m",
        "trainperf.examples.text.train",
        "--documents",
        "320",
        env={"TRAINPERF_HOME": str(tmp_path / "home")},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    proofs = {p["kind"]: p for p in report["proofs"]}
    step = report["verdict"]["step"]
    if step["kind"] != "input-bound" and report["conditions"]["contended"]:
        # Beside other processes the model's share of the step grows and the data wait
        # can fall under the input-bound threshold: then no loader proof is asked for,
        # and the doctor must say what it measured on.
        said = ("the machine was busy", "measured while the machine was quiet")
        assert any(s in r for r in step["reasons"] for s in said), step
        return
    # The calibration ran through the Trainer's own training step.
    assert proofs["calibration"]["calibration"]["mode"] == "end-to-end"
    assert proofs["cache"]["collate_s"] > 0.5 * proofs["cache"]["uncached_s"]
    found = [f for f in report["findings"] if f["kind"] == "input-bound"]
    if not found and report["conditions"]["contended"]:
        # Beside busy loops the model's threads are slowed more than the collator, and a
        # replay of in-memory batches can be no faster than the step: the doctor then
        # sets the loader advice aside and says why, naming the contention.
        aside = [a for a in report["set_aside"] if a.startswith("input: ")]
        assert aside, report["set_aside"]
        assert "contention for the CPUs" in aside[0]
        return
    finding = found[0]
    assert "the data collator takes" in finding["fix"]
    assert "tokenises every batch" in finding["fix"]
    # The loader's advice is given in TrainingArguments' names, never the DataLoader's.
    assert "dataloader_num_workers" in finding["fix"]
    assert "set num_workers" not in finding["fix"]
    assert "keep num_workers" not in finding["fix"]
    disturbed = [r for r in step["reasons"] if r.startswith(NOT_MEASURED)]
    if disturbed and report["conditions"]["contended"]:
        # Beside busy loops the replay can run slower than the steps that waited for
        # data: the doctor says so, and no gain is the replay's.
        assert "replaying" not in finding["gain"]
    else:
        # The replay through the Trainer's step measured what input costs the step.
        assert finding["gain_source"] == "measured"
        assert "replaying" in finding["gain"]
    arguments = report["training_arguments"]
    if arguments:  # advised: the file is the advice, and the example takes it
        written = Path(report["run"]) / "training_args.json"
        assert json.loads(written.read_text()) == arguments
        assert set(arguments) <= {
            "dataloader_num_workers",
            "dataloader_prefetch_factor",
            "dataloader_persistent_workers",
            "dataloader_pin_memory",
        }
        check = subprocess.run(
            [
                sys.executable,
                "-m",
                "trainperf.examples.text.train",
                "--overrides",
                written,
                "--max_steps",
                "2",
                "--documents",
                "16",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert check.returncode == 0, check.stderr[-2000:]


def test_an_out_of_range_value_from_the_file_names_the_file(tmp_path) -> None:
    overrides = tmp_path / "args.json"
    overrides.write_text('{"dataloader_num_workers": -1}')
    with pytest.raises(UsageError) as caught:
        parse(["--overrides", str(overrides)])
    assert str(caught.value).startswith(f"--overrides {overrides}: --dataloader_num_workers")
