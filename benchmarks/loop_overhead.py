"""What a hand-written loop's own per-step work costs, next to Lightning's loop.

    python benchmarks/loop_overhead.py [--repeat 3]

Trains the digits example (the same model, data and 220 steps) under ``trainperf run``
in five ways, round-robin so that a busy moment falls on every variant alike:
Lightning's loop with its progress bar; the manual loop as shipped (a tqdm bar updated
with ``loss.item()`` every batch, four DataLoader workers for in-memory data); the
manual loop without the bar; with ``num_workers=0``; and with neither. It reports the
median of each variant's mean training step (training time / steps, so the slow steps
count) and its ratio to the manual loop as shipped: the answer to "what do a per-batch
progress bar and idle workers cost?".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _machine import describe_machine

MODULE = "trainperf.examples.digits.train"
VARIANTS = (
    ("lightning, bar", ("trainer.enable_progress_bar=true",)),
    ("manual as shipped (bar, 4 workers)", ("loop=manual", "trainer.enable_progress_bar=true")),
    ("manual, no bar", ("loop=manual", "trainer.enable_progress_bar=false")),
    (
        "manual, bar, 0 workers",
        ("loop=manual", "trainer.enable_progress_bar=true", "data.num_workers=0"),
    ),
    (
        "manual, no bar, 0 workers",
        ("loop=manual", "trainer.enable_progress_bar=false", "data.num_workers=0"),
    ),
)


def _mean_step(overrides: tuple[str, ...], cwd: Path) -> tuple[float, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINPERF_")}
    env["TRAINPERF_HOME"] = str(cwd / ".trainperf")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainperf",
            "run",
            "--json",
            "--",
            sys.executable,
            "-m",
            MODULE,
            *overrides,
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
    )
    # The run's JSON is the last line of stderr (stdout is the program's own).
    line = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    if proc.returncode != 0 or not line.startswith("{"):
        raise SystemExit(f"{' '.join(overrides)} failed:\n{proc.stderr[-2000:]}")
    summary = json.loads(line)
    return summary["train_s"] / summary["steps"], summary["steps"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    times: dict[str, list[float]] = {name: [] for name, _ in VARIANTS}
    steps: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.repeat):
            for name, overrides in VARIANTS:
                mean, count = _mean_step(overrides, Path(scratch))
                times[name].append(mean)
                steps[name] = count
    base = statistics.median(times[VARIANTS[1][0]])
    print(f"{'variant':<36} {'steps':>5} {'mean step':>10} {'vs shipped':>10}")
    for name, _ in VARIANTS:
        median = statistics.median(times[name])
        print(f"{name:<36} {steps[name]:>5} {median * 1e3:>8.1f} ms {base / median:>9.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
