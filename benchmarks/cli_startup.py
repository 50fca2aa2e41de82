"""How much does ``trainperf --help`` cost over starting Python itself?

Runs ``python -c pass``, ``python -c "import trainperf"``, ``trainperf --help`` and
``trainperf resources --json`` interleaved (so drift on a noisy machine hits all of
them alike), and prints each median wall time and its ratio to ``python -c pass``.

    python benchmarks/cli_startup.py [--repeat 40]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _machine import describe_machine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=40, help="runs of each command")
    args = parser.parse_args()

    script = Path(sys.executable).parent / "trainperf"
    trainperf = [str(script)] if script.exists() else [sys.executable, "-m", "trainperf"]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import trainperf'": [sys.executable, "-c", "import trainperf"],
        "trainperf --help": [*trainperf, "--help"],
        "trainperf resources --json": [*trainperf, "resources", "--json"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():  # warm the page cache once
        subprocess.run(argv, capture_output=True, check=True)
    for _ in range(args.repeat):
        for name, argv in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)

    base = statistics.median(times["python -c pass"])
    print(f"machine: {describe_machine()}")
    print(f"runs: {args.repeat} of each, interleaved; median wall time")
    print(f"{'command':<30} {'median ms':>10} {'ratio':>7}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<30} {median * 1e3:>10.1f} {median / base:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
