"""What following ``trainperf doctor``'s advice gains on the bundled examples.

    python benchmarks/doctor_gain.py [--epochs 3]

For each example: run ``trainperf doctor`` on it (its naive settings), take the
advice it measured (the OCR example's switches from ``overrides``; for digits, the
worker count its calibration chose, if it advised one), then train the example
with and without that advice under ``trainperf run``, one after the other on this
machine, and report the time per epoch (training + validation) of each and the
ratio. For digits, where the right advice is to leave the in-memory loader at
``num_workers=0``, the guess it spares (two workers) is timed too. The first epoch
with ``data.cache=true`` builds the cache (cold) and is reported on its own; the
steady ratio is over the later epochs. For the text example (the Hugging Face Trainer)
the doctor runs with ``--apply``: the TrainingArguments it wrote are passed back with
``--overrides``, and its collator advice (tokenise once) as ``--tokenize once``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import describe_machine

EXAMPLES = (
    ("ocr", ["-m", "trainperf.examples.ocr.train"], ()),
    ("digits", ["-m", "trainperf.examples.digits.train"], ()),
    ("text", ["-m", "trainperf.examples.text.train"], ()),
)


def _epoch_args(name: str, epochs: int) -> list[str]:
    if name == "text":
        return ["--num_train_epochs", str(epochs)]
    return [f"trainer.max_epochs={epochs}", "trainer.enable_progress_bar=false"]


def _trainperf(args: list[str], home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINPERF_")}
    env["TRAINPERF_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "trainperf", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
    )


def _advice(report: dict[str, object], bundled: bool, name: str) -> list[str]:
    """The switches the doctor's measured advice comes to."""
    if name == "text":
        advice = []
        written = Path(str(report["run"])) / "training_args.json"
        if written.is_file():
            advice += ["--overrides", str(written)]
        fixes = " ".join(str(f.get("fix", "")) for f in report.get("findings") or [])  # type: ignore[union-attr]
        if "tokenise once" in fixes:
            advice += ["--tokenize", "once"]
        return advice
    if bundled:
        return sorted({str(o) for o in report.get("overrides") or []})  # type: ignore[union-attr]
    advice = []
    for finding in report.get("findings") or []:  # type: ignore[union-attr]
        fix = str(finding.get("fix", ""))  # type: ignore[union-attr]
        if "set num_workers=" in fix:
            workers = fix.split("set num_workers=")[1].split()[0]
            advice.append(f"data.num_workers={workers}")
    return advice


def _epochs(
    name: str, module: list[str], overrides: list[str], epochs: int, home: Path, cwd: Path
) -> list[float]:
    done = _trainperf(
        ["run", "--json", "--", sys.executable, *module, *overrides, *_epoch_args(name, epochs)],
        home,
        cwd,
    )
    if done.returncode != 0:
        raise SystemExit(f"training failed: {done.stderr[-1500:]}")
    summary = json.loads(done.stderr.strip().splitlines()[-1])
    return [e["train_s"] + e["val_s"] for e in summary["epochs"]]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--only", choices=[e[0] for e in EXAMPLES], help="one example only")
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    for name, module, naive in EXAMPLES:
        if args.only and name != args.only:
            continue
        with tempfile.TemporaryDirectory() as scratch:
            cwd = Path(scratch)
            began = time.perf_counter()
            if name == "ocr":
                doctor = _trainperf(["doctor", "--json"], cwd / "doctor", cwd)
            else:
                apply = ["--apply"] if name == "text" else []
                doctor = _trainperf(
                    ["doctor", "--json", *apply, "--", sys.executable, *module, *naive],
                    cwd / "doctor",
                    cwd,
                )
            took = time.perf_counter() - began
            if doctor.returncode != 0:
                print(doctor.stdout[-1500:], doctor.stderr[-1500:], file=sys.stderr)
                return 1
            report = json.loads(doctor.stdout)
            advice = _advice(report, bundled=name == "ocr", name=name)
            kinds = ", ".join(f["kind"] for f in report["findings"]) or "none"
            print(f"\n{name}: doctor took {took:.0f} s; findings: {kinds}")
            print(f"  advice applied: {' '.join(advice) or '(none: leave it as it is)'}")
            before = _epochs(name, module, list(naive), args.epochs, cwd / "before", cwd)
            after = _epochs(name, module, [*naive, *advice], args.epochs, cwd / "after", cwd)
            print("  epoch  naive s  advised s")
            for i, (a, b) in enumerate(zip(before, after, strict=False)):
                print(f"  {i:5d}  {a:7.2f}  {b:9.2f}")
            steady_before = statistics.median(before[1:] or before)
            steady_after = statistics.median(after[1:] or after)
            ratio = steady_before / steady_after
            print(
                f"  first epoch: {before[0] / after[0]:.2f}x; later epochs (median): "
                f"{steady_before:.2f} s -> {steady_after:.2f} s = {ratio:.2f}x"
            )
            if name == "digits":
                # What the advice spared: the worker processes a guess would have added.
                more = _epochs(name, module, ["data.num_workers=2"], args.epochs, cwd / "more", cwd)
                steady_more = statistics.median(more[1:] or more)
                print(
                    f"  not advised, data.num_workers=2: later epochs {steady_more:.2f} s = "
                    f"{steady_after / steady_more:.2f}x of the advised speed"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
