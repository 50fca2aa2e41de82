"""``trainperf fix loader``: does it write the calibrated settings, and does the gain hold?

    python benchmarks/fix_loader.py [--rounds 5] [--batches 8] [--sleep-ms 3] [--only script]

On two targets, each in a temporary folder with its own ``TRAINPERF_HOME``:

- ``script``: a plain ``train.py`` with ``DataLoader(ds, batch_size=32)`` and no workers,
  over a dataset whose ``__getitem__`` waits ``--sleep-ms`` (a disk or remote store),
  built by ``slowdata:make``;
- ``digits``: a copy of the digits example (``data.py`` builds its loader from a
  Hydra config), calibrated end to end with its CNN's training step
  (``trainperf.examples.digits.calibration:end_to_end``).

Each is calibrated (``trainperf calibrate TARGET``), then fixed (``trainperf fix loader
FILE --dataset TARGET --write --json``): the fix re-measures the settings as written
against the file's original ones, side by side in one run, interleaved, ``--rounds``
rounds of ``--batches`` batches. Printed: the calibrated settings, what the fix changed
or pointed at (a YAML line and its override), whether the written call holds the
calibrated settings, the calibration's gain and the re-measured one with their 95%
intervals and whether those overlap, whether a second fix changes nothing; then the
machine. The calibration's gain is the ratio of its trials' median chunk rates (timed
in separate runs); the ratio of its trials' overall rates is printed beside it. With
many workers, 8 batches a turn are fewer than the batches in flight (workers x
prefetch_factor) and the re-measure's upper bound runs high; ``--batches 64`` times
the steady state (a minute longer).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import describe_machine

DIGITS = Path(__file__).parents[1] / "src" / "trainperf" / "examples" / "digits"
DIGITS_TARGET = "trainperf.examples.digits.calibration:end_to_end"
LOADER_DEFAULTS = {
    "num_workers": 0,
    "persistent_workers": False,
    "prefetch_factor": None,
    "pin_memory": False,
}

SLOWDATA = '''\
"""Samples that wait on a timer, as reads from a disk or a remote store would."""
import time

import torch
from torch.utils.data import Dataset


class Slow(Dataset):
    def __len__(self):
        return 4096

    def __getitem__(self, index):
        time.sleep({sleep})
        return torch.full((16,), float(index))


def make():
    return {{"dataset": Slow(), "batch_size": 32}}
'''

TRAIN = """\
from torch.utils.data import DataLoader

from slowdata import Slow


def main():
    ds = Slow()
    loader = DataLoader(ds, batch_size=32)
    seen = sum(len(batch) for batch in loader)
    print(f"one epoch, {seen} samples")


if __name__ == "__main__":
    main()
"""


def trainperf(args: list[str], folder: Path) -> tuple[dict, float]:
    """``trainperf ARGS --json`` in ``folder``, its calibrations kept in ``folder/home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINPERF_")}
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "trainperf", *args, "--json"],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**env, "TRAINPERF_HOME": str(folder / "home")},
        check=False,
    )
    if done.returncode not in (0, 1):  # 1: the fix measured the settings slower
        sys.exit(f"trainperf {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout), time.perf_counter() - began


def interval(value: float, low: float | None, high: float | None) -> str:
    shown = f"{value:.2f}x"
    return shown if low is None or high is None else f"{shown} ({low:.2f}x-{high:.2f}x)"


def holds(path: Path, chosen: dict) -> bool:
    """Whether the file's DataLoader call passes the calibrated settings (those that
    need workers only with workers), a missing argument taking DataLoader's default."""
    call = next(
        n
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "DataLoader"
    )
    given = dict(LOADER_DEFAULTS)
    given.update((k.arg, ast.literal_eval(k.value)) for k in call.keywords if k.arg in given)
    wanted = {"num_workers": chosen["num_workers"], "pin_memory": chosen["pin_memory"]}
    if chosen["num_workers"]:
        wanted["persistent_workers"] = chosen["persistent_workers"]
        wanted["prefetch_factor"] = chosen["prefetch_factor"] or 2
    return all(given[k] == v for k, v in wanted.items())


def calibrate(folder: Path, target: str) -> dict:
    """``trainperf calibrate TARGET``: what it chose, and its trials' rates."""
    calibration, took = trainperf(["calibrate", target], folder)
    chosen = calibration["chosen"]
    print(f"  trainperf calibrate {target}: {took:.1f} s, {calibration['mode']}")
    print("    chosen: " + " ".join(f"{k}={v}" for k, v in chosen.items() if v is not None))
    baseline = next(
        c["samples_per_s"]
        for c in calibration["candidates"]
        if c["num_workers"] == 0 and c["status"] in ("measured", "chosen")
    )
    rate = calibration["samples_per_s"]
    print(
        f"    its trials: workers=0 {baseline:,.0f} samples/s, the choice {rate:,.0f} "
        f"samples/s ({rate / baseline:.2f}x)"
    )
    return chosen


def show_fix(fix: dict, folder: Path) -> None:
    """What ``fix loader`` changed, pointed at and noted, and the lines it wrote."""
    for change in fix["changes"]:
        old = "(not given)" if change["old"] is None else change["old"]
        print(
            f"    changed {change['file']}:{change['line']}: {change['argument']} "
            f"{old} -> {change['new']}"
        )
    for pointer in fix["pointed_at"]:
        line = (folder / pointer["file"]).read_text().splitlines()[pointer["line"] - 1]
        what = "edited" if pointer["edited"] else "pointed at"
        note = f"; {pointer['note']}" if pointer["note"] else ""
        print(
            f"    {what} {pointer['file']}:{pointer['line']}: {line.strip()!r} (wanted "
            f"{pointer['wanted']}; override {pointer['override']}){note}"
        )
    for note in fix["notes"]:
        print(f"    note: {note}")
    for added in (line for line in fix["diff"].splitlines() if line.startswith("+ ")):
        print(f"    written: {added[1:].strip()}")
    print(f"    files written: {', '.join(fix['written']) or 'none'}")


def case(name: str, folder: Path, file: str, target: str, args: argparse.Namespace) -> tuple:
    """Calibrate ``target``, fix ``file`` with it, print what was found. Returns the
    summary row: name, the calibration's gain, the re-measure, whether they overlap."""
    chosen = calibrate(folder, target)
    command = ["fix", "loader", file, "--dataset", target, "--write"]
    command += ["--rounds", str(args.rounds), "--batches", str(args.batches)]
    fix, took = trainperf(command, folder)
    gain = fix["gain"]
    print(f"  trainperf {' '.join(command)} --json: {took:.1f} s")
    print(f"    the calibration's gain: {interval(gain['value'], gain['low'], gain['high'])}")
    show_fix(fix, folder)
    if name == "script":
        print(f"    the call holds the calibrated settings: {holds(folder / file, chosen)}")
        began = time.perf_counter()
        ran = subprocess.run(
            [sys.executable, file], capture_output=True, text=True, cwd=folder, check=False
        )
        took = time.perf_counter() - began
        print(
            f"    the fixed script runs: {ran.returncode == 0} ({ran.stdout.strip()}: "
            f"{took:.1f} s with its start-up)"
        )
    again, _ = trainperf(["fix", "loader", file, "--dataset", target, "--no-verify"], folder)
    print(f"    a second fix changes nothing: {not again['changed']}")
    measured = fix["remeasured"]
    if measured is None:
        print("    not re-measured (nothing changed)")
        return name, gain, None, None
    low, high = measured["speedup_low"], measured["speedup_high"]
    overlap = None if gain["low"] is None else max(low, gain["low"]) <= min(high, gain["high"])
    print(
        f"    re-measured: {interval(measured['speedup'], low, high)}; original "
        f"{statistics.median(measured['original_samples_per_s']):,.0f} samples/s, as written "
        f"{statistics.median(measured['advised_samples_per_s']):,.0f} (medians of "
        f"{measured['rounds']} rounds of {measured['batches']} batches)"
    )
    print(f"    the intervals overlap: {overlap} (the fix's verdict, agrees: {measured['agrees']})")
    return name, gain, measured, overlap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="re-measure rounds (fix loader's)")
    parser.add_argument("--batches", type=int, default=8, help="batches a turn (fix loader's)")
    parser.add_argument("--sleep-ms", type=float, default=3.0, help="the script's wait a sample")
    parser.add_argument("--only", choices=("script", "digits"), help="one target")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        if args.only in (None, "script"):
            folder = Path(scratch) / "script"
            folder.mkdir()
            (folder / "slowdata.py").write_text(SLOWDATA.format(sleep=args.sleep_ms / 1000))
            (folder / "train.py").write_text(TRAIN)
            print(f"(a) script: DataLoader(ds, batch_size=32), {args.sleep_ms:g} ms a sample")
            rows.append(case("script", folder, "train.py", "slowdata:make", args))
        if args.only in (None, "digits"):
            folder = Path(scratch) / "digits"
            ignore = shutil.ignore_patterns("__pycache__", "*.orig")
            shutil.copytree(DIGITS, folder / "digits", ignore=ignore)
            print("(b) digits: the example's data.py, its loader set from its Hydra config")
            rows.append(case("digits", folder, "digits/data.py", DIGITS_TARGET, args))
    print(f"{'':<8}{'calibration gain (95%)':<28}{'re-measured (95%)':<28}overlap")
    for name, gain, measured, overlap in rows:
        shown = "-"
        if measured is not None:
            shown = interval(measured["speedup"], measured["speedup_low"], measured["speedup_high"])
        print(
            f"{name:<8}{interval(gain['value'], gain['low'], gain['high']):<28}{shown:<28}{overlap}"
        )
    print(describe_machine())


if __name__ == "__main__":
    main()
