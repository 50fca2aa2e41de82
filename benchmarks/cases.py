"""The reproduced slow-training cases: their ground truth, and what the doctor says of them.

    python benchmarks/cases.py [--cases DIR] [--repeat 3] [--only 03,05,13]

For each case in ``DIR`` (default ``../shared/cases`` from the repository root):

* ground truth: the case as is against its fix flag, alternating (as is, fixed, as is,
  fixed, ...) ``--repeat`` times each, fewer epochs than the case's default to keep it
  to minutes; the median wall time of each process and of the training loop (the
  ``total X s`` line the cases print), and as is / fixed;
* diagnosis: ``trainperf doctor --json -- python CASE`` once, the case as a user runs
  it (its default epochs; the doctor's budget stops it): the verdict and each finding's
  kind, fix and gain.

The load average is printed before and after each case: these are 2-CPU machines
shared with other work, and a busy moment moves the ratios (alternating spreads it over
both ways, it does not remove it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _machine import describe_machine

ROOT = Path(__file__).resolve().parent.parent
TOTAL = re.compile(r"^total ([0-9.]+) s", re.MULTILINE)


@dataclass(frozen=True)
class Case:
    name: str  # the file in the cases folder
    fix: tuple[str, ...]  # the flag that runs the fixed variant
    shorter: tuple[str, ...]  # arguments of both ways in the ground truth


CASES = (
    Case("03_threads_container.py", ("--threads", "2"), ("--epochs", "1")),
    Case("05_csv_log_slowdown.py", ("--append",), ("--epochs", "2")),
    Case("13_worker_blas_threads.py", ("--limit-worker-threads",), ("--epochs", "1")),
)


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINPERF_")}
    env["TRAINPERF_HOME"] = str(home)
    return env


def _time_once(script: Path, args: tuple[str, ...], cwd: Path) -> tuple[float, float | None]:
    """(wall seconds of the process, the loop's own ``total`` seconds if printed)."""
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"{script.name} {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    found = TOTAL.search(proc.stdout)
    return wall, float(found.group(1)) if found else None


def _load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def ground_truth(case: Case, script: Path, repeat: int, cwd: Path) -> None:
    ways = {"as is": case.shorter, "fixed": (*case.shorter, *case.fix)}
    walls: dict[str, list[float]] = {w: [] for w in ways}
    loops: dict[str, list[float]] = {w: [] for w in ways}
    for _ in range(repeat):
        for way, args in ways.items():
            wall, loop = _time_once(script, args, cwd)
            walls[way].append(wall)
            if loop is not None:
                loops[way].append(loop)
    print(f"  ground truth ({' '.join(case.shorter)}; fix {' '.join(case.fix)}; x{repeat}):")
    for way, args in ways.items():
        loop = f"{statistics.median(loops[way]):7.2f} s" if loops[way] else "      -"
        runs = " ".join(f"{w:.1f}" for w in walls[way])
        print(
            f"    {way:<6} wall {statistics.median(walls[way]):7.2f} s  loop {loop}"
            f"   (walls: {runs})  {' '.join(args)}"
        )
    wall_ratio = statistics.median(walls["as is"]) / statistics.median(walls["fixed"])
    line = f"    as is / fixed: wall {wall_ratio:.2f}x"
    if loops["as is"] and loops["fixed"]:
        loop_ratio = statistics.median(loops["as is"]) / statistics.median(loops["fixed"])
        line += f", loop {loop_ratio:.2f}x"
    print(line)


def diagnosis(script: Path, cwd: Path) -> None:
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "trainperf", "doctor", "--json", "--", sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_clean_env(cwd / "home"),
        check=False,
    )
    took = time.perf_counter() - began
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        print(f"  doctor: exit {proc.returncode}, no JSON report:\n{proc.stderr[-2000:]}")
        return
    verdict = report.get("verdict") or {}
    step = verdict.get("step") or {}
    print(
        f"  doctor ({took:.0f} s, exit {proc.returncode}, stopped at step "
        f"{report.get('stopped_at_step')}, {report.get('steps')} steps seen):"
    )
    print(
        f"    verdict: {verdict.get('primary')} ({verdict.get('confidence')}); "
        f"step {step.get('kind')} ({step.get('confidence')}, data wait {step.get('share')})"
    )
    monitor = [f["kind"] for f in verdict.get("findings") or []]
    print(f"    monitor's findings: {', '.join(monitor) or 'none'}")
    findings = report.get("findings") or []
    print(f"    doctor's findings: {', '.join(f['kind'] for f in findings) or 'none'}")
    for number, finding in enumerate(findings, start=1):
        print(f"    {number}. {finding['kind']} [{finding.get('confidence')}]")
        print(f"       fix:  {finding.get('fix')}")
        print(f"       gain: {finding.get('gain')} ({finding.get('gain_source')})")
    for aside in report.get("set_aside") or []:
        print(f"    set aside: {aside}")
    for note in report.get("notes") or []:
        print(f"    note: {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        type=Path,
        default=ROOT.parent / "shared" / "cases",
        help="the cases folder (default: ../shared/cases from the repository root)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way (default 3)")
    parser.add_argument("--only", default="", help="case numbers, e.g. 03,13 (default: all)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    chosen = [c for c in CASES if not args.only or c.name[:2] in args.only.split(",")]
    missing = [c.name for c in chosen if not (args.cases / c.name).is_file()]
    if missing:
        parser.error(f"{args.cases} lacks {', '.join(missing)}; give the folder with --cases")
    print(f"machine: {describe_machine()}")
    print(f"python: {sys.executable}")
    with tempfile.TemporaryDirectory(prefix="trainperf-cases-") as scratch:
        for case in chosen:
            script = (args.cases / case.name).resolve()
            cwd = Path(scratch) / case.name[:2]
            cwd.mkdir()
            print(f"\n{case.name} ({_load()})")
            ground_truth(case, script, args.repeat, cwd)
            diagnosis(script, cwd)
            print(f"  ({_load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
