"""Planted variants of the kinds in ``shared/cases``, diagnosed end to end by `trainperf run`.

Each test writes a small training script with one known cost planted in it, runs it as a
user would (``trainperf run -- python train.py``) and asserts the finding the kind calls
for and what its fix names. No test asserts a time: the planted costs are sized so the
diagnosis holds on a busy machine (the drift grows more than 3x, the loop's sleep is most
of a step, the thread counts are several times the CPU budget).

Kinds (see ``shared/cases/README.md``): torch threads set above the CPU budget by the
script (case 03), a per-step logger whose cost grows through the run (case 05), BLAS
pools inside DataLoader workers (case 13), and per-step loop overhead.
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path

import pytest

from _support import run_cli
from trainperf.resources import detect_resources

pytestmark = [pytest.mark.slow, pytest.mark.verdict]

PLANTED = "# planted"


def _diagnose(tmp_path: Path, text: str, *args: str) -> tuple[Path, dict[str, dict]]:
    """Runs ``text`` as ``train.py`` under `trainperf run`: (the script, findings by kind)."""
    script = tmp_path / "train.py"
    script.write_text(text)
    out = tmp_path / "run"
    proc = run_cli("run", "--out", str(out), "--", sys.executable, str(script), *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    return script, {f["kind"]: f for f in summary["verdict"]["findings"]}


def _planted(script: Path) -> str:
    """``train.py:N CODE`` of the planted line, as a finding names a line."""
    lines = script.read_text().splitlines()
    (number,) = [n for n, line in enumerate(lines, start=1) if PLANTED in line]
    code = lines[number - 1].split("#")[0].strip()
    return f"{script.name}:{number} {code}"


# -- threads set after start (case 03) ---------------------------------------------------

THREADS = textwrap.dedent(
    """
    import sys
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    threads, loop = int(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(threads)  # planted: sized for a bigger host
    torch.manual_seed(0)
    x, y = torch.randn(512, 128), torch.randint(0, 4, (512,))
    model = torch.nn.Sequential(
        torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 4)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for epoch in range(2):
        if loop == "loader":
            batches = DataLoader(TensorDataset(x, y), batch_size=32)
        else:  # a hand-sliced loop: no DataLoader to watch
            batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 512, 32)]
        for xb, yb in batches:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
    print("threads", torch.get_num_threads())
    """
)


@pytest.mark.parametrize("loop", ["loader", "slices"])
def test_threads_set_above_the_cpu_budget_are_oversubscription(tmp_path, loop) -> None:
    budget = detect_resources(gpus=False).cpu_budget
    threads = max(8, 4 * math.ceil(budget))
    _, found = _diagnose(tmp_path, THREADS, str(threads), loop)
    finding = found["thread-oversubscription"]
    assert finding["evidence"]["intra_op_threads"] == threads
    fits = max(1, math.floor(finding["evidence"]["cpu_budget"] + 1e-9))
    assert f"torch.set_num_threads({fits})" in finding["fix"]
    assert "threadpool_limits" not in finding["fix"]  # no workers: nothing to limit there


def test_threads_within_the_cpu_budget_are_no_finding(tmp_path) -> None:
    budget = max(1, math.floor(detect_resources(gpus=False).cpu_budget + 1e-9))
    _, found = _diagnose(tmp_path, THREADS, str(budget), "loader")
    assert "thread-oversubscription" not in found


# -- per-step logging whose cost grows (case 05) -----------------------------------------

DRIFT = textwrap.dedent(
    """
    import csv
    import sys
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    def flush(path, rows, append):
        if append:
            with open(path, "a", newline="") as f:
                csv.writer(f).writerows(rows[-FLUSH_EVERY:])
        else:
            with open(path, "w", newline="") as f:
                csv.writer(f).writerows(rows)  # planted: the whole file again at each flush

    path, mode, FLUSH_EVERY, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(1600, 16), torch.randn(1600, 1))
    model = torch.nn.Linear(16, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    rows = []
    for epoch in range(epochs):
        for x, y in DataLoader(data, batch_size=8):
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            value = loss.item()
            rows.append([len(rows)] + [value * (k + 1) for k in range(40)])
            if len(rows) % FLUSH_EVERY == 0:
                flush(path, rows, mode == "append")
    print("rows", len(rows))
    """
)

# (flush every N steps, epochs of 200 steps): the last rewrite formats 400 or 1,200 rows
# of 41 numbers; the mean step grows >5x from the first steps to the last either way.
# Flushing every 5 steps, the blocks' mean steps wander by 2x on this machine's speed
# alone (5 ms one second, 10 ms the next): six epochs make the growth outrun it.
EVERY_STEP, EVERY_FIVE = ("1", "2"), ("5", "6")


@pytest.mark.parametrize("flushes", [EVERY_STEP, EVERY_FIVE], ids=["every-step", "every-5"])
def test_a_log_file_rewritten_whole_is_drift_named_by_its_line(tmp_path, flushes) -> None:
    metrics = str(tmp_path / "metrics.csv")
    script, found = _diagnose(tmp_path, DRIFT, metrics, "rewrite", *flushes)
    drift = found["step-drift"]
    assert "append instead of rewriting" in drift["fix"]
    # The planted rewrite, by its line: formatting the rows (train.py:N
    # csv.writer(f).writerows(rows)) or writing them out, which the buffered file does
    # as the `with` block closes it, on the `with open(path, "w", ...)` line: which one
    # grows most depends on the file system's speed.
    planted = _planted(script)
    name, number = planted.split(" ", 1)[0].split(":")
    opening = f'{name}:{int(number) - 1} with open(path, "w", newline="") as f:'
    assert planted in drift["fix"] or opening in drift["fix"], drift["fix"]


def test_the_same_log_appended_is_no_drift(tmp_path) -> None:
    _, found = _diagnose(tmp_path, DRIFT, str(tmp_path / "metrics.csv"), "append", *EVERY_FIVE)
    assert "step-drift" not in found


# -- BLAS pools in DataLoader workers (case 13) ------------------------------------------

BLAS = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Projected(Dataset):
        def __len__(self):
            return 64

        def __getitem__(self, i):
            a = np.random.default_rng(i).standard_normal((256, 256))
            feats = (a @ (a.T @ a[:, :32])).mean(axis=0)  # planted: multi-threaded BLAS
            return torch.from_numpy(feats.astype(np.float32)), i % 4

    def one_blas_thread(_):
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)

    if __name__ == "__main__":
        limit = sys.argv[1] == "limit"
        loader = DataLoader(
            Projected(),
            batch_size=8,
            num_workers=2,
            worker_init_fn=one_blas_thread if limit else None,
        )
        model = torch.nn.Linear(32, 4)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        print("limit", limit)
    """
)


def test_blas_pools_in_workers_are_oversubscription_fixed_in_the_workers(tmp_path) -> None:
    _, found = _diagnose(tmp_path, BLAS, "default")
    finding = found["thread-oversubscription"]
    assert finding["evidence"]["worker_processes"] == 2
    assert finding["evidence"]["worker_blas_threads"] > 1
    assert "worker_init_fn" in finding["fix"]
    assert "threadpool_limits(1)" in finding["fix"]


def test_workers_limited_to_one_blas_thread_leave_no_worker_fix(tmp_path) -> None:
    _, found = _diagnose(tmp_path, BLAS, "limit")
    # The training process's own threads may still exceed the budget beside 2 workers;
    # what must be gone is the workers' part.
    finding = found.get("thread-oversubscription")
    if finding is not None:
        assert finding["evidence"]["worker_blas_threads"] == 1
        assert "threadpool_limits" not in finding["fix"]
        assert "2 workers x 1 thread" in finding["fix"]


# -- per-step loop overhead --------------------------------------------------------------

OVERHEAD = textwrap.dedent(
    """
    import time
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(1600, 8), torch.randn(1600, 1))
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for x, y in DataLoader(data, batch_size=4):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        time.sleep(0.004)  # planted: 4 ms every step
    print("done")
    """
)


def test_a_blocking_line_every_step_is_loop_overhead_named_by_its_line(tmp_path) -> None:
    # 400 steps of a linear layer on 4 samples, each waiting 4 ms on the planted line.
    script, found = _diagnose(tmp_path, OVERHEAD)
    overhead = found["loop-overhead"]
    assert overhead["evidence"]["loop_share_of_step"] >= 0.10
    assert _planted(script) in overhead["fix"]  # train.py:N time.sleep(0.004)
