"""Start-up tools, measured: profiler overhead, attribution accuracy, lazy vs eager.

    python benchmarks/startup.py [--repeat 5]

1. Overhead: ``import lightning`` plain, under ``-X importtime`` (what
   ``trainperf imports`` times), and under the tracing run that builds the graph.
2. Attribution: for the OCR example's eager entry point, each heavy statement's
   predicted saving (exclusive cost) against the measured saving of deferring it,
   and the same for the top group of statements to defer together.
3. The lazy entry point against the eager twin: time to the first training step.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _machine import describe_machine
from trainperf.startup import measure_imports
from trainperf.startup.probe import resolve_target, run_probe
from trainperf.startup.verify import measure_saving


def overhead(repeat: int) -> tuple[float, float, float]:
    """Seconds to import lightning, each measured inside the process (exit excluded)."""
    code = (
        "import time; start = time.perf_counter(); import lightning; "
        "print(time.perf_counter() - start)"
    )
    plain, importtime, traced = [], [], []
    target = resolve_target("lightning", None)
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        plain.append(float(out.stdout.strip().splitlines()[-1]))
        importtime.append(run_probe(target, trace=False).elapsed_s)
        traced.append(run_probe(target, trace=True).elapsed_s)
    return statistics.median(plain), statistics.median(importtime), statistics.median(traced)


def attribution(repeat: int) -> None:
    import trainperf.examples.ocr as ocr

    entry = Path(ocr.__file__).parent / "train_eager.py"
    report = measure_imports(str(entry), repeat=repeat)
    target = resolve_target(str(entry), None)
    heavy = [c for c in report.lines if c.file == str(entry) and c.cumulative_s > 0.05]
    print(f"   {'statement':<52} {'cumulative':>10} {'predicted':>10} {'measured':>10}")
    for cost in heavy:
        measured = measure_saving(target, ((cost.file, cost.line),), repeat=repeat)
        print(
            f"   {f'train_eager.py:{cost.line} {cost.statement}'[:52]:<52} "
            f"{cost.cumulative_s:>9.3f}s {cost.exclusive_s:>9.3f}s {measured:>9.3f}s"
        )
    group = report.groups[0]
    defer = tuple((s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1])) for s in group.starts)
    measured = measure_saving(target, defer, repeat=repeat)
    lines = ",".join(s.rsplit(":", 1)[1] for s in group.starts)
    error = abs(group.saving_s - measured) / measured
    print(
        f"   group train_eager.py:{lines:<33} {'':>10} {group.saving_s:>9.3f}s "
        f"{measured:>9.3f}s  ({error:.0%} apart)"
    )


def first_step(repeat: int) -> tuple[float, float]:
    from trainperf.startup.phases import time_command

    tiny = [
        "trainer.max_steps=1",
        "data.train_pages=8",
        "data.val_pages=2",
        "trainer.enable_progress_bar=false",
    ]
    out = []
    with tempfile.TemporaryDirectory() as cwd:
        for module in ("trainperf.examples.ocr.train_eager", "trainperf.examples.ocr.train"):
            summary = time_command(
                [
                    sys.executable,
                    "-c",
                    f"import os; os.chdir({cwd!r}); import runpy; "
                    f"runpy.run_module({module!r}, run_name='__main__')",
                    *tiny,
                ],
                repeat=repeat,
            )
            step = summary.markers().get("first_step")
            if step is None:
                raise SystemExit(f"{module} did not reach a training step")
            out.append(step)
    return out[0], out[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")

    base, importtime, traced = overhead(args.repeat)
    print(f"\n1. import lightning, median of {args.repeat}, timed inside the process")
    print(
        f"   plain {base:.3f} s; under -X importtime {importtime:.3f} s "
        f"({importtime / base:.2f}x); traced {traced:.3f} s ({traced / base:.2f}x)"
    )

    print(f"\n2. predicted vs measured saving, OCR eager entry point (median of {args.repeat})")
    attribution(args.repeat)

    eager, lazy = first_step(max(1, args.repeat // 2))
    print("\n3. time to the first training step (trainer.max_steps=1)")
    print(f"   eager twin {eager:.2f} s, lazy entry point {lazy:.2f} s: {eager / lazy:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
