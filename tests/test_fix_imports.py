"""``trainperf fix imports``: heavy imports moved where they are used, refused where that
would change what the program does, and the result proved before it is shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

from trainperf.fix.imports import plan_file

if TYPE_CHECKING:
    from pathlib import Path

    from trainperf.fix.imports import Style

HEAVY = {"torch", "lightning", "numpy", "scipy", "wandb", "slowpkg", "slowplot", "plugins"}
HEAVY |= {"deepspeed"}

# Every hard case in one entry point; each line's fate is asserted below.
CORPUS = textwrap.dedent(
    '''\
    """A training entry point."""

    from __future__ import annotations

    import os
    import torch  # the model's tensors
    from torch import nn
    import numpy as np
    import scipy.stats
    from lightning import LightningModule
    import wandb
    from slowpkg import *
    import plugins.register  # noqa: F401
    import slowplot
    from typing import TYPE_CHECKING

    if TYPE_CHECKING:
        import slowpkg.types

    try:
        import deepspeed
    except ImportError:
        deepspeed = None


    def build(width: int = 3) -> torch.Tensor:
        """Build."""
        return nn.Linear(width, 1)(torch.zeros(width))


    @np.vectorize
    def double(x):
        return 2 * x


    class Module(LightningModule):
        def sample(self):
            return scipy.stats.norm.rvs()


    def log(run=wandb.init):
        return run


    def report():
        return slowplot.figure()


    if __name__ == "__main__":
        print(build(), os.getpid())
    '''
)


def _plan(path: Path, later: dict[str, str] | None = None, style: Style = "move"):  # type: ignore[no-untyped-def]
    return plan_file(
        path,
        loads=lambda _p, _l, module: ({module.split(".")[0]}, {module.split(".")[0]}),
        heavy=lambda package: package in HEAVY,
        later=lambda _p, _l, module: (later or {}).get(module),
        style=style,
    )


def test_each_hard_case_is_moved_or_refused_with_its_reason(tmp_path: Path) -> None:
    entry = tmp_path / "train.py"
    entry.write_text(CORPUS, encoding="utf-8")
    plan = _plan(entry)
    moved = {c.statement: c for c in plan.changes}
    refused = {r.statement: r.why for r in plan.refusals}
    assert set(moved) == {
        "import torch  # the model's tensors",
        "from torch import nn",
        "import scipy.stats",
        "import slowplot",
    }
    assert moved["import torch  # the model's tensors"].into == ("build",)
    assert moved["import scipy.stats"].into == ("Module.sample",)
    assert "if TYPE_CHECKING" in moved["import torch  # the model's tensors"].why  # annotation
    assert "(a decorator)" in refused["import numpy as np"]
    assert "(a base class)" in refused["from lightning import LightningModule"]
    assert "(a default argument)" in refused["import wandb"]
    assert "`import *`" in refused["from slowpkg import *"]
    assert "side effects" in refused["import plugins.register  # noqa: F401"]
    assert "import slowpkg.types" not in refused  # under TYPE_CHECKING: never run
    assert "tests whether a package is installed" in refused["import deepspeed"]
    assert "import os" not in refused  # the standard library is never heavy

    fixed = plan.fixed
    compile(fixed, "train.py", "exec")
    # The moved import sits after the docstring, the comment above scipy's import with it.
    assert (
        '    """Build."""\n    import torch  # the model\'s tensors\n    from torch import nn\n'
        in (fixed)
    )
    assert "if TYPE_CHECKING:\n    import slowpkg.types\n    import torch" in fixed
    assert "    def sample(self):\n        import scipy.stats\n" in fixed
    # Nothing else moved: every line of the original that is not a moved import is kept.
    gone = {line.strip() for line in CORPUS.splitlines()} - {
        line.strip() for line in fixed.splitlines()
    }
    assert gone == set()  # moved lines reappear, indented, in their functions
    assert fixed.count("import torch  # the model's tensors") == 2  # build() and TYPE_CHECKING

    # Idempotent: the rewritten file has nothing left to move.
    entry.write_text(fixed, encoding="utf-8")
    again = _plan(entry)
    assert again.changes == []
    assert again.fixed == fixed


def test_an_unused_import_is_removed_only_when_the_program_imports_it_later(
    tmp_path: Path,
) -> None:
    entry = tmp_path / "train_eager.py"
    entry.write_text(
        "import torch  # noqa: F401\nimport lightning  # noqa: F401\n\nfrom app import main\n\n"
        "main()\n",
        encoding="utf-8",
    )
    plan = _plan(entry, later={"torch": "app/fit.py:3"})
    (change,) = plan.changes
    assert change.action == "removed"
    assert "app/fit.py:3" in change.why
    (refusal,) = plan.refusals
    assert refusal.module == "lightning"
    assert "side effects" in refusal.why
    assert plan.fixed == "import lightning  # noqa: F401\n\nfrom app import main\n\nmain()\n"


STYLED = textwrap.dedent(
    """\
    \"\"\"Train.\"\"\"

    from __future__ import annotations

    import os
    import torch  # tensors
    import numpy as np
    from scipy import stats


    def train():
        return torch.zeros(2) + np.ones(2) + stats.norm.cdf(0) + os.getpid()
    """
)


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        (
            "lazy",
            'import os\nimport trainperf\ntorch = trainperf.lazy_import("torch")  # tensors\n'
            'np = trainperf.lazy_import("numpy")\n\n\ndef train():\n    from scipy import stats\n',
        ),
        (
            "pep810",
            "import os\nlazy import torch  # tensors\nlazy import numpy as np\n"
            "lazy from scipy import stats\n\n\ndef train():\n    return",
        ),
        (
            "lazy-modules",
            '__lazy_modules__ = ["torch", "numpy", "scipy"]\n\nimport os\nimport torch  # tensors\n'
            "import numpy as np\nfrom scipy import stats\n",
        ),
    ],
)
def test_each_style_writes_its_form_once(tmp_path: Path, style: Style, expected: str) -> None:
    entry = tmp_path / "train.py"
    entry.write_text(STYLED, encoding="utf-8")
    plan = _plan(entry, style=style)
    assert expected in plan.fixed
    assert plan.fixed.count("import torch") <= 1
    assert plan.fixed.count('lazy_import("torch') <= 1
    # The rest of the file is untouched, and a second run has nothing left to do.
    assert plan.fixed.startswith('"""Train."""\n\nfrom __future__ import annotations\n')
    entry.write_text(plan.fixed, encoding="utf-8")
    again = _plan(entry, style=style)
    assert (again.changes, again.fixed) == ([], plan.fixed)


def test_annotations_evaluated_at_import_keep_the_import(tmp_path: Path) -> None:
    entry = tmp_path / "train.py"
    entry.write_text(
        "import torch\n\n\ndef step(x: torch.Tensor) -> None:\n    torch.relu(x)\n",
        encoding="utf-8",
    )
    (refusal,) = _plan(entry).refusals
    assert "an annotation evaluated at import" in refusal.why


def test_a_name_bound_again_or_exported_is_refused(tmp_path: Path) -> None:
    entry = tmp_path / "train.py"
    entry.write_text(
        "import torch\nimport numpy\n\n__all__ = ['numpy']\n\n\ndef f():\n    return torch\n\n\n"
        "def g():\n    global torch\n    torch = None\n",
        encoding="utf-8",
    )
    reasons = sorted(r.why for r in _plan(entry).refusals)
    assert reasons == [
        "numpy is exported in __all__",
        "torch is declared `global` in a function",
    ]


# A project whose heavy packages wait on a timer when imported (0.4 s each): the saving
# survives a busy machine, and the packages are third-party (on PYTHONPATH, outside it).
SLOW_PACKAGE = "import time\ntime.sleep(0.4)\n\ndef total(values):\n    return sum(values)\n"
SCRIPT = textwrap.dedent(
    """\
    import argparse

    import slowmath
    import slowio


    def train(steps):
        return slowmath.total(range(steps))


    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--steps", type=int, default=3)
        args = parser.parse_args()
        print("total", train(args.steps), slowio.total([1]))


    if __name__ == "__main__":
        main()
    """
)


def _project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    site = tmp_path / "site"
    for name in ("slowmath", "slowio"):
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text(SLOW_PACKAGE, encoding="utf-8")
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'p'\n", encoding="utf-8")
    (project / "train.py").write_text(SCRIPT, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRAINPERF_")}
    env = {**clean, "PYTHONPATH": str(site), "TRAINPERF_HOME": str(tmp_path / "home")}
    return project, env


def _fix(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainperf", "fix", "imports", *args],
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_the_patch_is_measured_side_by_side_written_and_idempotent(tmp_path: Path) -> None:
    project, env = _project(tmp_path)
    entry = project / "train.py"
    check = f"{sys.executable} train.py --steps 4"
    done = _fix(project, env, "train.py", "--rounds", "2", "--json", "--check", check)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["verified"] is True
    assert [(c["line"], c["action"], c["into"]) for c in report["changes"]] == [
        (3, "moved", ["train"]),
        (4, "moved", ["main"]),
    ]
    timings = {t["what"]: t for t in report["timings"]}
    # The timers make each side's import time known: 0.8 s of waits before, none after.
    assert timings["import"]["after_s"] < timings["import"]["before_s"]
    assert timings["import"]["before_s"] - timings["import"]["after_s"] > 0.5
    error = timings["configuration error"]  # argparse rejects the probe option on both sides
    assert error["after_s"] < error["before_s"]
    assert all(c["saving_s"] > 0.2 for c in report["changes"])  # 0.4 s each, less noise
    assert report["check"] == check
    assert entry.read_text(encoding="utf-8") == SCRIPT  # nothing written without --write
    assert report["diff"].startswith("--- a/train.py\n+++ b/train.py\n")

    # The diff on stdout applies with git, and the result behaves as the original did.
    plain = _fix(project, env, "train.py", "--no-verify")
    assert plain.returncode == 0
    assert plain.stdout == report["diff"]
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(
        ["git", "apply", "--check", "-"], input=plain.stdout, text=True, cwd=project, check=True
    )

    written = _fix(project, env, "train.py", "--write", "--rounds", "2")
    assert written.returncode == 0, written.stderr[-2000:]
    assert (project / "train.py.orig").read_text(encoding="utf-8") == SCRIPT
    fixed = entry.read_text(encoding="utf-8")
    assert "def train(steps):\n    import slowmath\n" in fixed
    ran = [
        subprocess.run(
            [sys.executable, name, "--steps", "5"],
            capture_output=True,
            text=True,
            cwd=project,
            env=env,
            check=True,
        ).stdout
        for name in ("train.py.orig", "train.py")
    ]
    assert ran[0] == ran[1] == "total 10 1\n"

    again = _fix(project, env, "train.py", "--write", "--rounds", "2")
    assert again.returncode == 0
    assert "nothing to change" in again.stdout
    assert entry.read_text(encoding="utf-8") == fixed
    assert not (project / "train.py.orig.1").exists()


@pytest.mark.slow
def test_a_check_that_fails_on_the_rewrite_withholds_the_patch(tmp_path: Path) -> None:
    project, env = _project(tmp_path)
    # The check greps for the eager import: it passes on the original only.
    check = f"{sys.executable} -c \"assert '\\nimport slowio\\n' in open('train.py').read()\""
    done = _fix(project, env, "train.py", "--rounds", "2", "--check", check)
    assert done.returncode == 1
    assert done.stdout == ""  # no patch offered
    assert "not offered: the check fails on the rewritten file (exit 1: AssertionError)" in (
        done.stderr
    )
    assert (project / "train.py").read_text(encoding="utf-8") == SCRIPT  # put back
    assert not (project / "train.py.orig").exists()


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    project, env = _project(tmp_path)
    broken = project / "broken.py"
    broken.write_text("import torch\ndef f(:\n", encoding="utf-8")
    cases = {
        "missing.py": "no such script: missing.py",
        "broken.py": "broken.py:2: not valid Python",
    }
    for target, expected in cases.items():
        done = _fix(project, env, target, "--no-verify")
        assert done.returncode == 2, done.stderr
        assert expected in done.stderr
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert broken.read_text(encoding="utf-8") == "import torch\ndef f(:\n"
    (project / "cfg.yaml").write_text("epochs: 3\n", encoding="utf-8")  # valid Python, too
    (project / "conf").mkdir()
    for target, expected in {
        "cfg.yaml": "cfg.yaml is not a Python file (.py)",
        "conf": "conf is a folder; give a script path (.py) or a module name",
    }.items():
        done = _fix(project, env, target, "--no-verify")
        assert done.returncode == 2, done.stderr
        assert expected in done.stderr
    done = _fix(project, env, "train.py", "--rounds", "1")
    assert done.returncode == 2
    assert "--rounds must be at least 2" in done.stderr


# Runs a target through the overlay (the rewritten file served in place of the original)
# with every loss that is backpropagated written down: training is compared, not timed.
LOSSES = """
import atexit, json, sys
import torch
losses = []
backward = torch.Tensor.backward
def recorded(self, *args, **kwargs):
    losses.append(float(self.detach()))
    return backward(self, *args, **kwargs)
torch.Tensor.backward = recorded
out = sys.argv[1]  # the overlay sets sys.argv as the target would see it
atexit.register(lambda: open(out, "w").write(json.dumps(losses)))
sys.path.insert(0, sys.argv[2])
import _overlay
_overlay.main(sys.argv[3:])
"""


@pytest.mark.slow
def test_the_fixed_eager_ocr_entry_point_trains_identically(tmp_path: Path) -> None:
    from pathlib import Path

    from trainperf.fingerprint import environment_fingerprint
    from trainperf.fix import verify
    from trainperf.startup.costs import PackageCostStore
    from trainperf.startup.probe import resolve_target

    store = PackageCostStore(tmp_path / "import_costs.json", environment_fingerprint().digest)
    target = resolve_target("trainperf.examples.ocr.train_eager", None, cwd=tmp_path)
    result = verify.fix_imports(target, cost_of=store.get, threshold_s=0.1, verify=False)
    assert {c.module for c in result.plan.changes} >= {"torch", "lightning"}
    assert "import torch" not in result.plan.fixed
    entry = str(result.plan.path)
    losses = []
    for name, source in (("original", result.plan.original), ("fixed", result.plan.fixed)):
        sources = tmp_path / f"{name}.json"
        sources.write_text(json.dumps({entry: source}), encoding="utf-8")
        out = tmp_path / f"{name}-losses.json"
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                LOSSES,
                str(out),
                str(Path(verify.__file__).parent),
                str(sources),
                "run",
                "module",
                "trainperf.examples.ocr.train_eager",
                "trainer.max_steps=3",
                "trainer.enable_progress_bar=false",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        losses.append(json.loads(out.read_text(encoding="utf-8")))
    assert len(losses[0]) == 3
    assert losses[0] == losses[1]


def test_no_change_where_what_stays_at_import_loads_the_package_anyway(tmp_path: Path) -> None:
    entry = tmp_path / "train.py"
    source = (
        "import torch\nfrom torch.utils.data import Dataset\n\n\nclass Pages(Dataset):\n"
        "    def __getitem__(self, i):\n        return torch.zeros(i)\n"
    )
    entry.write_text(source, encoding="utf-8")
    plan = _plan(entry)
    assert plan.changes == []  # moving `import torch` would save nothing: Dataset loads it
    assert plan.fixed == source
    (refusal,) = plan.refusals
    assert "(a base class)" in refusal.why


def test_windows_line_endings_are_kept(tmp_path: Path) -> None:
    from trainperf.fix.patch import read_source, write_keeping_original

    entry = tmp_path / "train.py"
    entry.write_bytes(b"import torch\r\n\r\n\r\ndef f():\r\n    return torch.ones(1)\r\n")
    plan = _plan(entry)
    assert plan.fixed == "def f():\r\n    import torch\r\n\r\n    return torch.ones(1)\r\n"
    backup = write_keeping_original(entry, plan.original, plan.fixed)
    assert entry.read_bytes() == plan.fixed.encode()
    assert (
        backup.read_bytes() == b"import torch\r\n\r\n\r\ndef f():\r\n    return torch.ones(1)\r\n"
    )
    assert read_source(backup) == plan.original


@pytest.mark.slow
def test_a_target_that_ignores_the_bad_argument_is_stopped_and_said(tmp_path: Path) -> None:
    project, env = _project(tmp_path)
    # parse_known_args: the probe option is ignored and "training" (a long wait) starts.
    (project / "train.py").write_text(
        SCRIPT.replace("parser.parse_args()", "parser.parse_known_args()[0]").replace(
            'print("total"', "__import__('time').sleep(600)\n    print(\"total\""
        ),
        encoding="utf-8",
    )
    done = _fix(project, env, "train.py", "--rounds", "2")
    assert done.returncode == 1
    assert "did not fail on '--trainperf-fix-probe' within 30 s" in done.stderr
    assert done.stdout == ""


# The hard cases again, on real packages (each waits 0.2 s when imported), so that the
# patch is loaded, timed and checked for real: every refusal must keep the file working.
PLANTED = {
    "slowdeco": "def traced(f):\n    return f\n",
    "slowbase": "class Module:\n    pass\n",
    "slowdefault": "DEVICE = 'cpu'\n",
    "slowused": "def total(v):\n    return sum(v)\n",
    "slowplugin": "import builtins\nbuiltins.REGISTERED = True\n",
    "slowoptional": "VERSION = 1\n",
    "slowstar": "__all__ = ['star']\n\ndef star():\n    return 1\n",
    "slowtyped": "class Tensor:\n    pass\n",
}
HARD = textwrap.dedent(
    '''\
    """Hard cases."""

    import argparse
    from typing import TYPE_CHECKING

    import slowdeco
    from slowbase import Module
    import slowdefault
    import slowused  # the one that can move
    import slowplugin  # noqa: F401  (registers itself)
    from slowstar import *

    try:
        import slowoptional
    except ImportError:
        slowoptional = None

    if TYPE_CHECKING:
        import slowtyped


    @slowdeco.traced
    def step(device=slowdefault.DEVICE) -> "slowtyped.Tensor":
        return device


    class Net(Module):
        pass


    def main():
        parser = argparse.ArgumentParser()
        parser.parse_args()
        import builtins

        assert builtins.REGISTERED
        print(slowused.total([1, 2]), step(), star(), slowoptional.VERSION, Net())


    if __name__ == "__main__":
        main()
    '''
)


@pytest.mark.slow
def test_on_the_hard_cases_the_patch_loads_and_passes_its_check(tmp_path: Path) -> None:
    project, env = _project(tmp_path)
    for name, body in PLANTED.items():
        (tmp_path / "site" / f"{name}.py").write_text(
            f"import time\ntime.sleep(0.2)\n{body}", encoding="utf-8"
        )
    (project / "hard.py").write_text(HARD, encoding="utf-8")
    check = f"{sys.executable} hard.py"
    done = _fix(project, env, "hard.py", "--rounds", "2", "--json", "--check", check)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["verified"] is True
    assert report["check"] == check  # passed on the original and on the patch
    assert [(c["module"], c["action"], c["into"]) for c in report["changes"]] == [
        ("slowused", "moved", ["main"])
    ]
    refused = {r["module"]: r["why"] for r in report["refused"]}
    assert "(a decorator)" in refused["slowdeco"]
    assert "(a base class)" in refused["slowbase"]
    assert "(a default argument)" in refused["slowdefault"]
    assert "side effects" in refused["slowplugin"]
    assert "`import *`" in refused["slowstar"]
    assert "tests whether a package is installed" in refused["slowoptional"]
    assert "slowtyped" not in refused  # under TYPE_CHECKING: never imported at run time
    (timing,) = [t for t in report["timings"] if t["what"] == "import"]
    assert timing["before_s"] - timing["after_s"] > 0.1  # slowused's 0.2 s, less noise


def test_the_import_goes_before_the_first_statement_that_needs_it(tmp_path: Path) -> None:
    entry = tmp_path / "train.py"
    entry.write_text(
        textwrap.dedent(
            """\
            import argparse

            import torch
            from torch.utils.data import DataLoader, TensorDataset


            def data():
                return TensorDataset(torch.zeros(4))


            def main():
                \"\"\"Train.\"\"\"
                parser = argparse.ArgumentParser()
                args = parser.parse_args()
                # the loader
                loader = DataLoader(data(), batch_size=2)
                for x in loader:
                    print(torch.sum(x[0]), args)
            """
        ),
        encoding="utf-8",
    )
    fixed = _plan(entry).fixed
    # After the arguments are parsed (a bad one fails before torch loads), and only the
    # names each function uses (no unused import for a linter to flag).
    assert (
        "    args = parser.parse_args()\n\n    import torch\n"
        "    from torch.utils.data import DataLoader\n\n    # the loader\n    loader = DataLoader("
    ) in fixed
    assert "def data():\n    import torch\n    from torch.utils.data import TensorDataset\n\n" in (
        fixed
    )
    entry.write_text(fixed, encoding="utf-8")
    assert _plan(entry).changes == []


@pytest.mark.slow
def test_a_check_runs_in_the_shell_and_its_operators_count(tmp_path: Path) -> None:
    project, env = _project(tmp_path)
    done = _fix(project, env, "train.py", "--rounds", "2", "--check", "true && false")
    assert done.returncode == 2  # fails on the original already: said before any timing
    assert "the check fails on the original code already (exit 1" in done.stderr
    assert "measured" not in done.stderr


@pytest.mark.slow
def test_stopped_during_the_check_the_file_is_put_back(tmp_path: Path) -> None:
    import signal
    import time

    project, env = _project(tmp_path)
    entry = project / "train.py"
    # The check passes at once on the original, and waits on the rewritten file.
    check = "grep -q '^import slowio' train.py || sleep 60"
    process = subprocess.Popen(
        [*(sys.executable, "-m", "trainperf", "fix", "imports", "train.py"), "--check", check],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not (project / "train.py.orig").exists():  # the rewritten file is in place
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "stopped by SIGTERM during the check" in stderr
    assert entry.read_text(encoding="utf-8") == SCRIPT
    assert not (project / "train.py.orig").exists()


@pytest.mark.slow
def test_a_patch_that_imports_no_faster_is_not_offered(tmp_path: Path) -> None:
    project, env = _project(tmp_path)
    # train() runs at import: moving its import saves nothing, and the timing shows it.
    (project / "train.py").write_text(
        SCRIPT.replace(
            '\n\nif __name__ == "__main__":',
            '\n\nWARM = train(1), slowio.total([1])\n\nif __name__ == "__main__":',
        ),
        encoding="utf-8",
    )
    done = _fix(project, env, "train.py", "--rounds", "3", "--config-error", "")
    assert done.returncode == 1, done.stderr
    assert "not offered: the rewritten file imports no faster" in done.stderr
    assert done.stdout == ""


def test_an_executable_script_stays_executable(tmp_path: Path) -> None:
    from trainperf.fix.patch import write_keeping_original

    entry = tmp_path / "train.py"
    entry.write_text("import torch\n", encoding="utf-8")
    entry.chmod(0o755)
    backup = write_keeping_original(entry, "import torch\n", "pass\n")
    assert entry.stat().st_mode & 0o777 == 0o755
    assert backup.stat().st_mode & 0o777 == 0o755


def test_a_heavy_submodule_of_a_light_package_is_moved(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``import lightpkg.heavy`` costs its submodule's 0.3 s though ``lightpkg`` alone is
    light: the statement is judged by what it imports (measured in a fresh interpreter),
    and a light package's line is named in a note, not passed over in silence."""
    from trainperf.fix import verify
    from trainperf.startup.costs import PackageCostStore
    from trainperf.startup.probe import resolve_target

    site = tmp_path / "site"
    (site / "lightpkg").mkdir(parents=True)
    (site / "lightpkg" / "__init__.py").write_text("", encoding="utf-8")
    (site / "lightpkg" / "heavy.py").write_text("import time\ntime.sleep(0.3)\n")
    (site / "otherlight.py").write_text("VALUE = 1\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.syspath_prepend(str(site))
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text(
        "import lightpkg.heavy\nimport otherlight\n\n\ndef main():\n"
        "    return lightpkg.heavy, otherlight.VALUE\n",
        encoding="utf-8",
    )
    store = PackageCostStore(tmp_path / "import_costs.json", "fp")
    target = resolve_target(str(project / "train.py"), None, cwd=project)
    result = verify.fix_imports(target, cost_of=store.get, threshold_s=0.1, verify=False)
    assert [(c.line, c.action, c.into) for c in result.plan.changes] == [(1, "moved", ("main",))]
    assert store.get("lightpkg").cost_s < 0.1 <= store.get("lightpkg.heavy").cost_s
    assert any(
        "each importing in under 0.1 s alone: line 2 (import otherlight)" in note
        for note in result.notes
    ), result.notes
