"""`trainperf run -- CMD`: monitoring a command with no code change."""

from __future__ import annotations

import json
import re
import sys
import textwrap

import pytest

from _support import run_cli
from trainperf._command import python_script
from trainperf.monitoring.records import RunMeta, read_periods

LOOP = textwrap.dedent(
    """
    import sys, time
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Waits(Dataset):
        def __len__(self):
            return 800
        def __getitem__(self, i):
            time.sleep(0.003)  # a timer: the wait is the same however busy the CPUs are
            return torch.ones(8)

    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in DataLoader(Waits(), batch_size=4):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    print("loop done")
    sys.exit(int(sys.argv[1]))
    """
)


@pytest.mark.slow
@pytest.mark.verdict
def test_monitors_a_script_and_passes_its_output_and_exit_code_through(tmp_path) -> None:
    script = tmp_path / "loop.py"
    script.write_text(LOOP)
    out = tmp_path / "run"
    proc = run_cli("run", "--out", str(out), "--", sys.executable, str(script), "3")
    assert proc.returncode == 3
    assert proc.stdout.strip() == "loop done"
    summary = json.loads((out / "summary.json").read_text())
    # The step waits 12 ms on its loader's timer against a linear layer: input-bound,
    # whatever the run's answer (a slow `import torch` can make the run startup-bound).
    step = summary["verdict"]["step"]
    assert step["kind"] == "input-bound"
    assert step["share_low"] > 0.5
    assert "\nverdict: step input-bound (" in proc.stderr
    finding = r"\n  input-bound( \[\w+ confidence\])?: data wait share of step \d+%"
    assert re.search(finding, proc.stderr)
    periods = read_periods(out / "steps.jsonl")
    assert [p.kind for p in periods] == ["train"] * 200
    assert sum(p.samples or 0 for p in periods) == 800
    meta = RunMeta.from_json(json.loads((out / "meta.json").read_text()))
    assert meta.from_process_start
    report = run_cli("report", str(out), "--json")
    assert json.loads(report.stdout)["steps"] == 200


@pytest.mark.slow
@pytest.mark.verdict
def test_heavy_imports_before_a_short_loop_are_startup_bound(tmp_path) -> None:
    script = tmp_path / "heavy.py"
    script.write_text(
        "import lightning, torch\n"
        "w = torch.zeros(2, requires_grad=True)\n"
        "opt = torch.optim.SGD([w], lr=0.1)\n"
        "for _ in range(6):\n"
        "    opt.zero_grad(); (w ** 2).sum().backward(); opt.step()\n"
    )
    out = tmp_path / "run"
    proc = run_cli("run", "--out", str(out), "--", sys.executable, str(script))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"]["primary"] == "startup-bound"
    assert summary["shares"]["startup"] > 0.5


@pytest.mark.slow
def test_json_summary_goes_to_stderr(tmp_path) -> None:
    script = tmp_path / "tiny.py"
    script.write_text(
        "import torch\nw = torch.zeros(2, requires_grad=True)\n"
        "opt = torch.optim.SGD([w], lr=0.1)\nfor _ in range(6):\n"
        "    opt.zero_grad(); (w ** 2).sum().backward(); opt.step()\nprint('out')\n"
    )
    proc = run_cli("run", "--json", "--out", str(tmp_path / "r"), "--", sys.executable, str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "out"
    data = json.loads(proc.stderr.strip().splitlines()[-1])
    assert data["steps"] == 6
    assert data["returncode"] == 0


def test_a_command_that_never_trains(tmp_path) -> None:
    proc = run_cli("run", "--out", str(tmp_path / "run"), "--", sys.executable, "-c", "print(1)")
    assert proc.returncode == 0
    assert proc.stdout.strip() == "1"
    assert "no training step was seen" in proc.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "give the command to monitor after --"),
        (["--", "no-such-cmd"], "cannot run no-such-cmd"),
    ],
)
def test_bad_input(args, fragment) -> None:
    proc = run_cli("run", *args)
    assert proc.returncode == 2
    assert fragment in proc.stderr


def test_a_missing_script_is_one_line_and_leaves_no_run(tmp_path) -> None:
    home = tmp_path / "home"
    script = tmp_path / "does_not_exist.py"
    proc = run_cli("run", "--", sys.executable, str(script), env={"TRAINPERF_HOME": str(home)})
    assert proc.returncode == 2
    assert proc.stdout == ""
    # One line: Python's own "can't open file" never comes, the command did not start.
    assert proc.stderr.splitlines() == [
        f"trainperf: error: python cannot open file {script}: no such file; check the path"
    ]
    assert not home.exists()


@pytest.mark.parametrize(
    ("command", "script"),
    [
        (["python", "train.py", "x=1"], "train.py"),
        (["/usr/bin/python3.11", "-u", "-X", "dev", "-W", "error", "t.py"], "t.py"),
        (["python3", "-uWerror", "-Xdev", "t.py"], "t.py"),
        (["python", "-B", "--check-hash-based-pycs", "always", "--", "t.py"], "t.py"),
        (["python", "-m", "pkg.train"], None),
        (["python", "-um", "pkg.train"], None),
        (["python", "-c", "pass"], None),
        (["python", "-"], None),
        (["python"], None),
        (["torchrun", "train.py"], None),
    ],
)
def test_the_script_of_a_python_command(command, script) -> None:
    assert python_script(command) == script


WORKERS = textwrap.dedent(
    """
    import sys, torch
    from torch.utils.data import DataLoader, TensorDataset

    def main(context):
        model = torch.nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        data = TensorDataset(torch.randn(64, 4))
        loader = DataLoader(data, batch_size=8, num_workers=2, multiprocessing_context=context)
        for _ in range(2):
            for (x,) in loader:
                opt.zero_grad()
                model(x).sum().backward()
                opt.step()
        print("ok", context)

    if __name__ == "__main__":
        main(sys.argv[1])
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers_do_not_disturb_the_program_or_the_record(tmp_path, context) -> None:
    script = tmp_path / "workers.py"
    script.write_text(WORKERS)
    out = tmp_path / "run"
    proc = run_cli("run", "--out", str(out), "--", sys.executable, str(script), context)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == f"ok {context}"
    assert len(read_periods(out / "steps.jsonl")) == 16
    assert (out / "summary.json").exists()


def test_a_folder_holding_a_run_is_refused_before_the_command_starts(tmp_path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "steps.jsonl").write_text("")
    marker = tmp_path / "ran"
    proc = run_cli(
        "run",
        "--out",
        str(tmp_path / "run"),
        "--",
        sys.executable,
        "-c",
        f"open({str(marker)!r}, 'w').close()",
    )
    assert proc.returncode == 2
    assert "already holds a recorded run" in proc.stderr
    assert not marker.exists()


LIGHTNING = textwrap.dedent(
    """
    import lightning as L, torch
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)
        def training_step(self, batch, i):
            return self.layer(batch[0]).sum()
        def validation_step(self, batch, i):
            self.log("v", self.layer(batch[0]).sum())
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = TensorDataset(torch.randn(32, 4))
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, accelerator="cpu")
    trainer.fit(Tiny(), DataLoader(data, batch_size=8), DataLoader(data, batch_size=16))
    print(sorted(type(c).__name__ for c in trainer.callbacks if "Perf" in type(c).__name__))
    """
)


@pytest.mark.slow
def test_lightning_trainers_get_the_callback(tmp_path) -> None:
    script = tmp_path / "fit.py"
    script.write_text(LIGHTNING)
    out = tmp_path / "run"
    proc = run_cli("run", "--out", str(out), "--", sys.executable, str(script))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "['PerfMonitor']"
    # Validation reads the training dataset: only the callback can tell it apart.
    kinds = [p.kind for p in read_periods(out / "steps.jsonl")]
    assert kinds == (["train"] * 4 + ["val"]) * 2


@pytest.mark.verdict
def test_a_script_that_reads_batches_but_never_trains(tmp_path) -> None:
    script = tmp_path / "evaluate.py"
    script.write_text(
        "import torch\nfrom torch.utils.data import DataLoader, TensorDataset\n"
        "loader = DataLoader(TensorDataset(torch.ones(40, 2)), batch_size=8)\n"
        "total = sum(x.sum() for (x,) in loader)\n"
        "print(float(total))\n"
    )
    out = tmp_path / "run"
    proc = run_cli("run", "--out", str(out), "--", sys.executable, str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "80.0"
    assert "no training step was seen" in proc.stderr
    assert "verdict: insufficient data (0 training steps" in proc.stderr
    (period,) = read_periods(out / "steps.jsonl")
    assert (period.kind, period.samples) == ("val", 40)
