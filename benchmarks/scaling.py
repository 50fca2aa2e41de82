"""Scaling efficiency from 1 to 2 ranks on the bundled OCR example, and what eats it.

    python benchmarks/scaling.py [--counts 1,2] [--steps 40] [--rounds 3]

Runs ``trainperf doctor --scale`` on the OCR example (Lightning + Hydra, its defaults
otherwise unchanged) under torchrun: ``--nproc-per-node {n}`` ranks and
``trainer.devices={n}``, on the CPU (``trainer.accelerator=cpu``; give
``--accelerator auto`` on a machine with a GPU per rank). Under torchrun Lightning's
automatic strategy is DDP over torchrun's ranks (gloo on the CPU), so the example
needs no strategy setting. Prints the command, the doctor's table and explanation,
and the machine.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import describe_machine


def command(accelerator: str) -> list[str]:
    """The OCR example under torchrun, ``{n}`` for the rank count."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "{n}",
        "-m",
        "trainperf.examples.ocr.train",
        "trainer.devices={n}",
        f"trainer.accelerator={accelerator}",
        "trainer.enable_progress_bar=false",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,2", help="rank counts (default 1,2)")
    parser.add_argument("--steps", type=int, default=40, help="training steps a run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs per count, interleaved (3: a median)"
    )
    parser.add_argument("--accelerator", default="cpu", help="the Trainer's (default cpu)")
    args = parser.parse_args()
    doctor = [
        sys.executable,
        "-m",
        "trainperf",
        "doctor",
        "--scale",
        args.counts,
        "--steps",
        str(args.steps),
        "--rounds",
        str(args.rounds),
        "--",
        *command(args.accelerator),
    ]
    home = Path(tempfile.mkdtemp(prefix="trainperf-scaling-"))  # kept: the runs and the page
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINPERF_")}
    env["TRAINPERF_HOME"] = str(home)
    print(f"machine: {describe_machine()}")
    print(f"command: {shlex.join(['trainperf', *doctor[3:]])}")
    print()
    sys.stdout.flush()
    began = time.perf_counter()
    done = subprocess.run(doctor, env=env, check=False)
    print(f"\nbenchmark: {time.perf_counter() - began:.0f} s, exit code {done.returncode}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
