"""Threads as the run goes: the workers' BLAS/OpenMP pools read in real DataLoader
workers, torch's threads read at each epoch, and the oversubscription rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
threadpoolctl = pytest.importorskip("threadpoolctl")

from torch.utils.data import DataLoader, TensorDataset, _DatasetKind  # noqa: E402
from torch.utils.data._utils import worker  # noqa: E402

import trainperf  # noqa: E402
from trainperf.errors import RecordError  # noqa: E402
from trainperf.monitoring.records import RunMeta  # noqa: E402
from trainperf.monitoring.workers import (  # noqa: E402
    WORKERS_FILE,
    Pool,
    ThreadWatch,
    WorkerPools,
    oversubscription,
    read_worker_pools,
)


class Projected:
    """Samples built with NumPy matrix products: OpenBLAS runs them on its pool."""

    def __init__(self, n: int = 16, dim: int = 256) -> None:
        self.n, self.dim = n, dim

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        rng = np.random.default_rng(i)
        a = rng.standard_normal((self.dim, self.dim))
        b = rng.standard_normal((self.dim, 64))
        feats = (a @ (a.T @ b)).mean(axis=0)
        return torch.from_numpy(feats.astype(np.float32)), torch.zeros(1)


def one_blas_thread(_: int) -> None:
    threadpoolctl.threadpool_limits(1)


def train(loader, *, epochs: int = 1) -> None:
    model = torch.nn.Linear(64, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()


def blas_threads_here() -> int:
    return max(
        (p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"),
        default=0,
    )


wide_blas = pytest.mark.skipif(
    (os.cpu_count() or 1) < 2 or blas_threads_here() < 2,
    reason="needs >= 2 CPUs and a BLAS pool of >= 2 threads (OPENBLAS_NUM_THREADS unset)",
)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINPERF_HOME", str(tmp_path / "home"))


def patched() -> tuple[object, ...]:
    return (
        worker._worker_loop,
        DataLoader.__dict__["__iter__"],
        _DatasetKind.__dict__["create_fetcher"],
    )


def recorded(path):
    return RunMeta.from_json(json.loads((path / "meta.json").read_text()))


@wide_blas
def test_workers_report_their_blas_pools_and_the_rule_names_the_worker_fix(tmp_path) -> None:
    before = patched()
    loader = DataLoader(Projected(), batch_size=4, num_workers=2)
    with trainperf.monitor(out=tmp_path / "run") as run:
        train(loader)
    assert patched() == before
    reports = read_worker_pools(run.path)
    assert sorted(r.worker_id for r in reports) == [0, 1]
    for report in reports:
        assert report.after == "fetch"
        assert report.num_workers == 2
        assert report.torch_threads == 1  # DataLoader's setting in every worker
        assert report.pools is not None
        # numpy's OpenBLAS, and any other BLAS this process loaded before (scipy's).
        blas = max((p for p in report.pools if p.user_api == "blas"), key=lambda p: p.num_threads)
        assert blas.num_threads >= 2
        assert report.helpers_ran is not None
        assert report.helpers_ran >= 1  # the pool worked
        assert report.pools_used is True
        assert report.os_threads is not None
        assert report.os_threads >= blas.num_threads
    assert run.threads is not None
    finding = oversubscription(
        intra_op_threads=run.threads, worker_processes=0, worker_pools=reports, cpus=2.0
    )
    assert finding is not None
    assert finding.kind == "thread-oversubscription"
    assert finding.confidence == "high"
    widest = max(r.widest_pool for r in reports)
    assert finding.evidence["worker_blas_threads"] == widest
    assert finding.evidence["worker_processes"] == 2
    assert finding.evidence["busy_threads"] == run.threads + 2 * widest
    assert finding.evidence["cpu_budget"] == 2.0
    assert "worker_init_fn" in finding.fix
    assert "threadpoolctl.threadpool_limits(1)" in finding.fix
    assert "OPENBLAS_NUM_THREADS=1" in finding.fix
    assert "calibrate" in finding.gain
    assert finding.gain.startswith("estimated")


@wide_blas
def test_a_worker_init_fn_limiting_the_pools_removes_the_worker_part(tmp_path) -> None:
    loader = DataLoader(Projected(), batch_size=4, num_workers=2, worker_init_fn=one_blas_thread)
    with trainperf.monitor(out=tmp_path / "run") as run:
        train(loader)
    reports = read_worker_pools(run.path)
    assert len(reports) == 2
    for report in reports:
        assert report.pools is not None
        blas = [p.num_threads for p in report.pools if p.user_api == "blas"]
        assert blas
        assert set(blas) == {1}
        assert report.busy_threads == 1
    finding = oversubscription(
        intra_op_threads=2, worker_processes=2, worker_pools=reports, cpus=2.0
    )
    assert finding is not None  # two training threads and two workers: still over 2 CPUs
    assert finding.evidence["worker_blas_threads"] == 1
    assert finding.evidence["busy_threads"] == 4
    assert "threadpool_limits" not in finding.fix
    assert "2 workers x 1 thread" in finding.fix
    assert "torch.set_num_threads(1)" in finding.fix
    assert (
        oversubscription(intra_op_threads=1, worker_processes=2, worker_pools=reports, cpus=3.0)
        is None
    )


def test_threads_raised_during_the_run_are_recorded_and_named(tmp_path) -> None:
    original = torch.get_num_threads()
    before = patched()
    loader = DataLoader(TensorDataset(torch.randn(32, 64), torch.zeros(32, 1)), batch_size=8)
    try:
        torch.set_num_threads(1)
        with trainperf.monitor(out=tmp_path / "run") as run:
            train(loader)
            torch.set_num_threads(8)  # as a script sized for a larger host would
            train(loader)
            torch.set_num_threads(1)  # ended as it began: only an epoch saw 8
    finally:
        torch.set_num_threads(original)
    assert patched() == before
    assert run.threads == 8
    assert recorded(run.path).intra_op_threads == 8
    assert read_worker_pools(run.path) == ()  # no worker was started
    finding = oversubscription(
        intra_op_threads=recorded(run.path).intra_op_threads,
        worker_processes=0,
        worker_pools=read_worker_pools(run.path),
        cpus=2.0,
    )
    assert finding is not None
    assert finding.evidence == {
        "worker_processes": 0.0,
        "intra_op_threads": 8.0,
        "busy_threads": 8.0,
        "cpu_budget": 2.0,
    }
    assert "torch.set_num_threads(2)" in finding.fix
    assert "worker_init_fn" not in finding.fix


def test_the_hooks_are_restored_when_the_block_raises(tmp_path) -> None:
    before = patched()
    during = []

    def fail() -> None:
        with ThreadWatch(tmp_path / WORKERS_FILE):
            during.append(patched())
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail()
    assert during[0] != before
    assert patched() == before


def test_a_watch_reads_torch_threads_at_each_epoch_on_the_training_thread(tmp_path) -> None:
    original = torch.get_num_threads()
    loader = DataLoader(TensorDataset(torch.zeros(4)), batch_size=2)
    try:
        with ThreadWatch(tmp_path / WORKERS_FILE) as watch:
            torch.set_num_threads(3)
            list(loader)
            torch.set_num_threads(1)
            list(loader)
    finally:
        torch.set_num_threads(original)
    assert watch.max_intra_op_threads == max(3, original)


@wide_blas
def test_spawned_workers_report_too(tmp_path) -> None:
    loader = DataLoader(
        Projected(n=8), batch_size=4, num_workers=1, multiprocessing_context="spawn"
    )
    with trainperf.monitor(out=tmp_path / "run") as run:
        train(loader)
    (report,) = read_worker_pools(run.path)
    assert report.after == "fetch"
    assert report.worker_id == 0
    assert report.torch_threads == 1
    assert report.pools is not None
    assert max(p.num_threads for p in report.pools if p.user_api == "blas") >= 2
    assert report.pools_used is True


# -- records ---------------------------------------------------------------------------

REPORT = WorkerPools(
    pid=41,
    worker_id=1,
    num_workers=2,
    t_s=0.5,
    after="fetch",
    pools=(Pool("blas", "openblas", 4, "libscipy_openblas"), Pool("openmp", "openmp", 1)),
    torch_threads=1,
    os_threads=5,
    helpers_ran=3,
)


def test_a_report_round_trips(tmp_path) -> None:
    assert WorkerPools.from_json(REPORT.to_json()) == REPORT
    line = json.dumps(REPORT.to_json())
    (tmp_path / WORKERS_FILE).write_text(f"{line}\n{line}\n{line[:20]}", encoding="utf-8")
    assert read_worker_pools(tmp_path) == (REPORT, REPORT)  # the torn last line skipped


def test_a_malformed_record_is_one_line_naming_the_place(tmp_path) -> None:
    bad = dict(REPORT.to_json(), pid="x")
    (tmp_path / WORKERS_FILE).write_text(f"{json.dumps(bad)}\n{json.dumps(REPORT.to_json())}\n")
    with pytest.raises(RecordError) as caught:
        read_worker_pools(tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert f"{WORKERS_FILE}:1" in message
    assert "'pid'" in message


def test_without_threadpoolctl_a_worker_records_what_is_knowable(tmp_path, monkeypatch) -> None:
    from trainperf.monitoring.workers import _Report, _ReportingLoop

    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails
    loop = _ReportingLoop(str(tmp_path / WORKERS_FILE), 0.0)
    _Report(loop, entered=0.0, worker_id=0).write("fetch", {})
    (report,) = read_worker_pools(tmp_path)
    assert report.pools is None
    assert report.pid == os.getpid()
    assert report.torch_threads == torch.get_num_threads()
    assert report.os_threads is not None
    assert report.os_threads >= 1
    assert report.helpers_ran is not None  # every native thread counted as new
    assert planted(pools=None, helpers_ran=2).busy_threads == 3  # its thread and 2 helpers


# -- the rule on planted records -------------------------------------------------------


def planted(**changes: object) -> WorkerPools:
    import dataclasses

    return dataclasses.replace(REPORT, **changes)  # type: ignore[arg-type]


def test_case_03_sixteen_threads_on_two_cpus() -> None:
    finding = oversubscription(intra_op_threads=16, worker_processes=0, worker_pools=(), cpus=2)
    assert finding is not None
    assert finding.evidence["busy_threads"] == 16
    assert finding.fix.startswith("16 busy threads on a budget of 2 CPUs")
    assert "torch.set_num_threads(2)" in finding.fix


def test_idle_pools_in_workers_count_one_thread() -> None:
    idle = planted(helpers_ran=0)
    assert idle.busy_threads == 1
    assert (
        oversubscription(intra_op_threads=1, worker_processes=2, worker_pools=[idle], cpus=4)
        is None
    )
    assert (
        oversubscription(intra_op_threads=1, worker_processes=2, worker_pools=[planted()], cpus=4)
        is not None
    )  # 1 + 2 x 4


def test_pools_of_unmeasured_use_count_at_low_confidence() -> None:
    finding = oversubscription(
        intra_op_threads=1, worker_processes=2, worker_pools=[planted(helpers_ran=None)], cpus=4
    )
    assert finding is not None
    assert finding.confidence == "low"
    assert len(finding.reasons) == 1
    assert "not measured" in finding.reasons[0]


def test_workers_alone_over_the_budget_are_named() -> None:
    finding = oversubscription(
        intra_op_threads=1, worker_processes=8, worker_pools=[planted(helpers_ran=0)], cpus=2
    )
    assert finding is not None
    assert finding.evidence["busy_threads"] == 9
    assert "fewer DataLoader workers" in finding.fix
    assert "num_workers=1" in finding.fix
    assert "threadpool_limits" not in finding.fix


def test_workers_count_from_their_reports_when_the_sampler_missed_them() -> None:
    finding = oversubscription(
        intra_op_threads=2, worker_processes=0, worker_pools=[planted()], cpus=2
    )
    assert finding is not None
    assert finding.evidence["worker_processes"] == 2
    assert finding.evidence["busy_threads"] == 2 + 2 * 4
    assert "2 workers x 4 threads (openblas 4, torch 1)" in finding.fix


def test_the_module_imports_neither_torch_nor_numpy() -> None:
    code = (
        "import sys, trainperf.monitoring.workers; "
        "print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_loaders_run_unrecorded_report_no_workers_and_no_threads(tmp_path) -> None:
    """A proof's or a calibration's loaders (run inside ``run.unrecorded()``) are not the
    program's: their workers and thread settings must not make a finding."""
    loader = DataLoader(Projected(), batch_size=4, num_workers=0)
    with trainperf.monitor(out=tmp_path / "run") as run:
        train(loader)
        before = torch.get_num_threads()
        with run.unrecorded():
            torch.set_num_threads(before + 6)
            try:
                train(DataLoader(Projected(), batch_size=4, num_workers=2))
            finally:
                torch.set_num_threads(before)
        assert type(worker._worker_loop).__name__ == "_ReportingLoop"  # watching again
        train(loader)
    assert read_worker_pools(tmp_path / "run") == ()
    assert run.threads == before


def test_a_script_lowering_its_threads_is_recorded_with_its_own_count(tmp_path) -> None:
    # Injected at the interpreter's start, the monitor reads torch's threads before the
    # script sets its own: the count its epochs ran with is the one recorded.
    script = tmp_path / "train.py"
    script.write_text(
        "import torch\n"
        "from torch.utils.data import DataLoader, TensorDataset\n"
        "torch.set_num_threads(1)\n"
        "loader = DataLoader(TensorDataset(torch.randn(64, 8), torch.zeros(64, 1)), batch_size=8)\n"
        "model = torch.nn.Linear(8, 1)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for _ in range(3):\n"
        "    for x, y in loader:\n"
        "        opt.zero_grad()\n"
        "        torch.nn.functional.mse_loss(model(x), y).backward()\n"
        "        opt.step()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINPERF_")}
    env["OMP_NUM_THREADS"] = "2"  # the start's count, above the script's own
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainperf",
            "run",
            "--out",
            str(tmp_path / "run"),
            "--",
            sys.executable,
            str(script),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert recorded(tmp_path / "run").intra_op_threads == 1
