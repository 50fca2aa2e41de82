"""Train both bundled examples with their default settings and report time and quality.

    python benchmarks/example_training.py

Runs ``python -m trainperf.examples.ocr.train`` and ``... digits.train`` (both
loops) as a user would, and prints each one's wall time and final metric, so the
figures the README and the examples' docs quote come from a committed script.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time

from _machine import describe_machine

RUNS = (
    ("ocr (defaults)", "trainperf.examples.ocr.train", (), r"ocr: (hmean=\S+ .*)"),
    ("digits, lightning", "trainperf.examples.digits.train", (), r"digits: (test accuracy=\S+)"),
    (
        "digits, manual loop",
        "trainperf.examples.digits.train",
        ("loop=manual",),
        r"digits: (test accuracy=\S+)",
    ),
)


def main() -> int:
    print(f"machine: {describe_machine()}")
    with tempfile.TemporaryDirectory() as cwd:
        for name, module, overrides, pattern in RUNS:
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", module, *overrides, "trainer.enable_progress_bar=false"],
                capture_output=True,
                text=True,
                cwd=cwd,
                check=False,
            )
            elapsed = time.perf_counter() - start
            found = re.search(pattern, proc.stdout)
            if proc.returncode != 0 or found is None:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 1
            print(f"{name:<22} {elapsed:6.1f} s   {found[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
