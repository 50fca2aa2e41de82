"""``.pre-commit-hooks.yaml``: the ``trainperf-lint-imports`` hook, run by pre-commit itself.

pre-commit installs a hook repository by cloning it at a commit and pip-installing it
into an environment of its own, then runs the hook's ``entry`` with the staged file
names appended. Here the hook repository is a throwaway git repository holding this
working tree's package (``src/``, ``pyproject.toml``, ``README.md``) and
``.pre-commit-hooks.yaml``, committed, so what is tested is what the next commit would
publish. Its environment is built once for the module, in a ``PRE_COMMIT_HOME`` under
the temporary folder: trainperf and its core dependencies from the package index
(25 to 30 s on a 2-CPU machine, most of it pip).

torch is not installed in the hook's environment, so its cost there is the built-in
estimate (see ``trainperf.startup.costs``), which is above the default threshold.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("pre_commit", reason='pre-commit is a dev dependency: pip install -e ".[dev]"')
if shutil.which("git") is None:
    pytest.skip("pre-commit needs git", allow_module_level=True)

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]
HOOK = "trainperf-lint-imports"
GIT_IDENTITY = ("-c", "user.name=trainperf tests", "-c", "user.email=tests@invalid")


def git(folder: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *GIT_IDENTITY, "-c", "commit.gpgsign=false", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory) -> tuple[Path, str]:
    """A git repository holding the working tree's package and hook manifest, and its
    commit."""
    repo = tmp_path_factory.mktemp("hook-repo")
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy2(PROJECT / name, repo / name)
    shutil.copytree(
        PROJECT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the working tree")
    return repo, git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def precommit_home(tmp_path_factory) -> Path:
    """pre-commit's cache (cloned repositories, hook environments), shared by the module."""
    return tmp_path_factory.mktemp("pre-commit-home")


def user_repo(folder: Path, hook_repo: tuple[Path, str], files: dict[str, str], args=()) -> Path:
    repo, rev = hook_repo
    hook = f"      - id: {HOOK}\n"
    if args:
        hook += f"        args: [{', '.join(args)}]\n"
    (folder / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {repo}\n    rev: {rev}\n    hooks:\n{hook}"
    )
    (folder / "pyproject.toml").write_text('[project]\nname = "user-project"\n')
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    return folder


def pre_commit(folder: Path, home: Path, *files: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home)}
    env.pop("TRAINPERF_HOME", None)  # the hook keeps its cost store in the user's repository
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--color", "never", "--files", *files],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


EAGER = """\
    import json

    import torch


    def build():
        return torch.zeros(1)
"""
DEFERRED = """\
    import json


    def build():
        import torch

        return torch.zeros(1)
"""
OTHER = "def helper():\n    return 1\n"
NOT_PYTHON = "# notes\n\nnot { python\n"


def test_the_hook_flags_a_heavy_module_level_import(tmp_path, hook_repo, precommit_home) -> None:
    folder = user_repo(
        tmp_path, hook_repo, {"train.py": EAGER, "helper.py": OTHER, "NOTES.md": NOT_PYTHON}
    )
    proc = pre_commit(folder, precommit_home, "helper.py", "train.py", "NOTES.md")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "- hook id: trainperf-lint-imports" in out
    assert "- exit code: 1" in out  # a finding, not a usage error (2)
    assert "train.py:3: import of torch costs " in out
    assert "s at start-up; move the import into build() (first use, line 6)" in out
    assert "helper.py:" not in out


def test_the_hook_passes_a_deferred_import(tmp_path, hook_repo, precommit_home) -> None:
    # NOTES.md is given too: `types: [python]` keeps it from the linter, which would
    # reject it as not valid Python (exit 2).
    folder = user_repo(
        tmp_path, hook_repo, {"train.py": DEFERRED, "helper.py": OTHER, "NOTES.md": NOT_PYTHON}
    )
    proc = pre_commit(folder, precommit_home, "helper.py", "train.py", "NOTES.md")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "trainperf lint-imports" in proc.stdout
    assert "Passed" in proc.stdout


def test_the_hooks_args_come_before_the_file_names(tmp_path, hook_repo, precommit_home) -> None:
    folder = user_repo(tmp_path, hook_repo, {"train.py": EAGER}, args=['"--allow"', '"torch"'])
    proc = pre_commit(folder, precommit_home, "train.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
