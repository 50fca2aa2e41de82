"""Run ``_probe.py`` on a target in fresh interpreters and collect what it reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from trainperf.errors import UsageError
from trainperf.startup._probe import BEGIN, END, LIST, PAIR
from trainperf.startup.importtime import ImportTimeError, ImportTree, parse_importtime

__all__ = ["ProbeRun", "Target", "project_root", "resolve_target", "run_probe"]

_PROBE = Path(__file__).with_name("_probe.py")
# Marks a folder as a project's root when looking upwards from the target.
_PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")

TargetKind = Literal["module", "path", "code"]

# From CPython 3.14, "=2" also logs modules that were already loaded (folded by the
# parser), which shows nesting the plain log hides.
_IMPORTTIME = "importtime=2" if sys.version_info >= (3, 14) else "importtime"


@dataclass(frozen=True)
class Target:
    """What to load: a module name, a script path, or a string of code."""

    kind: TargetKind
    value: str
    path0: str  # sys.path[0] as Python would set it for this kind of target
    root: Path  # the user's project: files under it (outside environments) are "theirs"

    @property
    def label(self) -> str:
        return "-c CODE" if self.kind == "code" else self.value


@dataclass
class ProbeRun:
    elapsed_s: float
    error: str | None
    tree: ImportTree
    modules: dict[str, str | None]
    edges: list[tuple[str, str]]
    first: dict[str, list[str]]


def project_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in _PROJECT_MARKERS):
            return folder
    return start


def resolve_target(target: str | None, code: str | None, *, cwd: Path | None = None) -> Target:
    here = (cwd or Path.cwd()).resolve()
    if code is not None:
        return Target("code", code, "", project_root(here))
    if not target:
        raise UsageError("give a module name, a script path, or -c CODE")
    candidate = here / target
    if target.endswith(".py") or os.sep in target or candidate.is_file():
        if not candidate.is_file():
            raise UsageError(
                f"no such script: {target}; give a path to a .py file or a module name"
            )
        path = candidate.resolve()
        return Target("path", str(path), str(path.parent), project_root(path.parent))
    if not all(part.isidentifier() for part in target.split(".")):
        raise UsageError(
            f"{target!r} is neither a script path nor a module name such as 'pkg.module'"
        )
    return Target("module", target, str(here), _module_root(target, here))


def _module_root(name: str, here: Path) -> Path:
    """The project a module belongs to: the working folder's, or, for a module from
    elsewhere (an installed package's example, a sibling checkout), the project
    around its file, so that its own import lines are the ones blamed."""
    import importlib.util

    top = name.split(".")[0]
    root = project_root(here)
    if (here / top).is_dir() or (here / f"{top}.py").is_file():
        return root
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return root
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return root
    origin = Path(spec.origin).resolve()
    return root if origin.is_relative_to(root) else project_root(origin.parent)


def excluded_folders() -> list[str]:
    """Folders whose files are never the user's: the environments and the stdlib."""
    paths = sysconfig.get_paths()
    folders = {paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"]}
    return sorted({*folders, "site-packages", "dist-packages", str(Path(sys.prefix))})


def run_probe(
    target: Target,
    *,
    trace: bool,
    defer: tuple[tuple[str, int], ...] = (),
    python: str = sys.executable,
    timeout: float = 600.0,
) -> ProbeRun:
    with tempfile.TemporaryDirectory(prefix="trainperf-imports-") as scratch:
        out = Path(scratch) / "probe.json"
        argv = [
            str(out),
            target.kind,
            target.value,
            target.path0,
            "1" if trace else "0",
            str(target.root) + os.sep,
            LIST.join(e for e in excluded_folders() if not str(target.root).startswith(e)),
            LIST.join(f"{file}{PAIR}{line}" for file, line in defer),
            "",
        ]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONIMPORTTIME"}
        proc = subprocess.run(
            [python, "-X", _IMPORTTIME, str(_PROBE), *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=target.path0 or None,
            timeout=timeout,
            check=False,
        )
        if not out.is_file():
            last = proc.stderr.strip().splitlines()[-1:] or ["no output"]
            raise UsageError(f"loading {target.label} crashed the interpreter: {last[0]}")
        data = json.loads(out.read_text(encoding="utf-8"))
    log = _between_markers(proc.stderr)
    try:
        tree = parse_importtime(log)
    except ImportTimeError as exc:
        raise UsageError(f"could not read the import log of {target.label}: {exc}") from None
    return ProbeRun(
        elapsed_s=float(data["elapsed_s"]),
        error=data["error"],
        tree=tree,
        modules={str(k): v for k, v in data["modules"].items()},
        edges=[(str(a), str(b)) for a, b in data["edges"]],
        first={str(k): [str(m) for m in v] for k, v in data["first"].items()},
    )


def _between_markers(stderr: str) -> str:
    lines = stderr.splitlines()
    try:
        start = lines.index(BEGIN.decode().strip())
        end = lines.index(END.decode().strip(), start)
    except ValueError:
        return stderr
    return "\n".join(lines[start + 1 : end]) + "\n"
