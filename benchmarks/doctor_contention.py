"""Does ``trainperf doctor`` hold its answer on a busy machine?

    python benchmarks/doctor_contention.py [--rounds 2] [--bundled]

Runs the doctor on a planted input-bound training script (its loader waits 30 ms on a
timer per batch, its step does a little real matrix work) alternately on a quiet
machine and beside two busy-loop processes pinned to this process's CPUs (quiet,
loaded, quiet, loaded, ...), and prints, for each run, the verdict of the step and of
the run with their confidence and the measurement conditions the doctor recorded.
A correct tool gives the quiet answer under load, or says on its first line that the
machine was busy and its verdict is not confident -- never a confident other answer.
``--bundled`` runs the doctor on the bundled OCR example instead (about 80 s a run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from _machine import describe_machine

PLANTED = textwrap.dedent(
    """
    import time
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Slow(Dataset):
        def __len__(self):
            return 4096

        def __getitem__(self, i):
            time.sleep(0.03 / 16)  # 30 ms a batch of 16, on a timer
            return torch.randn(64), torch.randn(1)

    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    if __name__ == "__main__":
        for x, y in DataLoader(Slow(), batch_size=16):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    """
)
BUSY = (
    "import os, sys\n"
    "os.sched_setaffinity(0, {int(c) for c in sys.argv[1].split(',')})\n"
    "while True: pass\n"
)


def doctor(args: list[str], home: Path, cwd: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINPERF_")}
    env["TRAINPERF_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-m", "trainperf", "doctor", "--json", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"doctor failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def describe(report: dict[str, object]) -> str:
    verdict = report.get("verdict") or {}
    step = verdict.get("step") or {}  # type: ignore[union-attr]
    run = verdict.get("run") or {}  # type: ignore[union-attr]
    conditions = report.get("conditions") or {}
    share = step.get("share")
    shown = (
        f" data wait {share:.0%} [{step['share_low']:.0%}-{step['share_high']:.0%}]"
        if share is not None
        else ""
    )
    return (
        f"step {step.get('kind')} ({step.get('confidence')}{shown}); "
        f"run {run.get('kind')} ({run.get('confidence')}); "
        f"contended={conditions.get('contended')} other_cpu={conditions.get('other_cpu')}; "
        f"findings: {', '.join(str(f.get('kind')) for f in report.get('findings') or [])}"  # type: ignore[union-attr]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--bundled", action="store_true")
    options = parser.parse_args()
    print(describe_machine())
    cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "planted.py").write_text(PLANTED)
        command = [] if options.bundled else ["--steps", "120", "--", sys.executable, "planted.py"]
        for round_ in range(options.rounds):
            for loaded in (False, True):
                loops = []
                if loaded:
                    loops = [subprocess.Popen([sys.executable, "-c", BUSY, cpus]) for _ in range(2)]
                try:
                    report = doctor(command, root / "home", root)
                finally:
                    for loop in loops:
                        loop.kill()
                        loop.wait()
                label = "loaded" if loaded else "quiet "
                print(f"round {round_ + 1} {label}: {describe(report)}", flush=True)


if __name__ == "__main__":
    main()
