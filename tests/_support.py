"""Helpers the tests share: fake /proc + /sys trees, and running the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

GIB = 1 << 30


@dataclass
class FakeSystem:
    """A folder laid out like ``/``, holding only the files a test writes."""

    root: Path

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def cpus(self, listing: str) -> None:
        self.write("proc/self/status", f"Name:\tpython\nCpus_allowed_list:\t{listing}\n")

    def meminfo(self, total: int, available: int) -> None:
        self.write(
            "proc/meminfo",
            f"MemTotal:       {total // 1024} kB\nMemFree:  1 kB\n"
            f"MemAvailable:   {available // 1024} kB\n",
        )

    def cgroup_v2(self, path: str = "/") -> Path:
        """A pure v2 machine with the process in ``path``; returns that cgroup's folder."""
        self.write("proc/self/cgroup", f"0::{path}\n")
        self.write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n")
        folder = self.root / "sys/fs/cgroup" / path.strip("/")
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m trainperf ARGS`` in a fresh interpreter, as a user would run it.

    The caller's ``TRAINPERF_*`` variables are dropped so that only ``env`` applies.
    """
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRAINPERF_")}
    return subprocess.run(
        [sys.executable, "-m", "trainperf", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=timeout,
        check=False,
    )


BUSY = """\
import time as _time
_end = _time.perf_counter() + {seconds}
while _time.perf_counter() < _end:  # a module that costs {seconds} s to import
    pass
"""


def run_ranks(script: Path, ranks: int = 2, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    """``script`` as ``ranks`` real torch.distributed processes on this machine (torchrun)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={ranks}",
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_startup_project(base: Path) -> tuple[Path, Path]:
    """A project whose entry point imports "libraries" of known import cost.

    Returns (entry script, libraries folder); the libraries live outside the project,
    as installed packages do, and must be put on PYTHONPATH.
    """
    libs = base / "libs"
    project = base / "project"
    for name, seconds, imports in (
        ("heavy_a", 0.30, "import common\n"),
        ("heavy_b", 0.15, "import common\n"),
        ("heavy_c", 0.08, ""),
        ("common", 0.06, ""),
        ("light", 0.0, ""),
    ):
        path = libs / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(imports + (BUSY.format(seconds=seconds) if seconds else ""))
    (project / "pkg").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (project / "pkg" / "__init__.py").write_text("")
    (project / "pkg" / "models.py").write_text("import heavy_c\n\nVALUE = 1\n")
    entry = project / "train.py"
    entry.write_text(
        "from __future__ import annotations\n"  # 1
        "import heavy_a\n"  # 2
        "import heavy_b\n"  # 3
        "import light\n"  # 4
        "import common\n"  # 5
        "from pkg import models\n"  # 6
        "\n"
        "def main():\n"
        "    open('main-ran', 'w').close()\n"
        "\n"
        "if __name__ == '__main__':\n"
        "    main()\n"
    )
    return entry, libs
