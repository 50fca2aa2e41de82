"""``trainperf fix imports`` on the bundled eager OCR entry point: what its patch saves.

    python benchmarks/fix_imports.py [--rounds 5]

Runs ``trainperf fix imports trainperf.examples.ocr.train_eager --json`` (nothing is
written: the patch is measured through trainperf's overlay, the file stays as it is)
and prints, for the original and the patched entry point side by side in one run,
interleaved: the time to import it, and the time to fail on a bad Hydra override (the
configuration error a typo costs), with the speed-up's 95% interval; then each
changed line and its own saving, and the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

from _machine import describe_machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            sys.executable, "-m", "trainperf", "fix", "imports",
            "trainperf.examples.ocr.train_eager", "--json", "--rounds", str(args.rounds),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, cwd=scratch, check=False)
    if done.returncode != 0:
        sys.exit(f"trainperf fix failed (exit {done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    print(f"trainperf fix imports trainperf.examples.ocr.train_eager --rounds {args.rounds}")
    print(f"{'':<22}{'original':>10}{'patched':>10}{'speed-up':>10}   95% interval")
    for timing in report["timings"]:
        print(
            f"{timing['what']:<22}{timing['before_s']:>9.2f}s{timing['after_s']:>9.2f}s"
            f"{timing['speedup']:>9.1f}x   {timing['speedup_low']:.1f}x-"
            f"{timing['speedup_high']:.1f}x"
        )
    print("changes (each line's saving: the patch without it, minus the whole patch):")
    for change in report["changes"]:
        saving = change["saving_s"]
        shown = "" if saving is None else f"{saving:6.2f} s  "
        print(f"  {shown}{change['action']:<8} line {change['line']}: {change['statement']}")
    for refused in report["refused"]:
        print(f"  kept     line {refused['line']}: {refused['statement']} -- {refused['why']}")
    print(describe_machine())


if __name__ == "__main__":
    main()
