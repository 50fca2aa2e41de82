"""Candidates run as their advice is written: the thread pools real workers see."""

from __future__ import annotations

import dataclasses
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("threadpoolctl")

from threadpoolctl import threadpool_info  # noqa: E402
from torch.utils.data import DataLoader, Dataset, get_worker_info  # noqa: E402

from trainperf.calibration.api import calibrate  # noqa: E402
from trainperf.calibration.config import LoaderConfig  # noqa: E402
from trainperf.calibration.trials import TrialPlan, run_trial  # noqa: E402
from trainperf.resources import detect_resources  # noqa: E402

pytestmark = pytest.mark.slow  # real worker processes


def _widest(user_api: str) -> int:
    return max(
        (p["num_threads"] for p in threadpool_info() if p["user_api"] == user_api), default=0
    )


class PoolsSeen(Dataset[torch.Tensor]):
    """Each sample: torch threads, widest BLAS pool, widest OpenMP pool, and 1 in a
    worker (0 in the training process), as seen by the process that loads it."""

    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> torch.Tensor:
        in_worker = int(get_worker_info() is not None)
        return torch.tensor(
            [torch.get_num_threads(), _widest("blas"), _widest("openmp"), in_worker]
        )


class MatrixWork(Dataset[torch.Tensor]):
    """Samples built with BLAS matrix products: CPU-bound loading."""

    def __len__(self) -> int:
        return 256

    def __getitem__(self, i: int) -> torch.Tensor:
        import numpy as np

        a = np.random.default_rng(i).standard_normal((64, 64))
        return torch.from_numpy((a @ a.T).mean(axis=0).astype(np.float32))


def this_process() -> tuple[int, list[tuple[str, int]]]:
    pools = sorted((p["internal_api"], p["num_threads"]) for p in threadpool_info())
    return torch.get_num_threads(), pools


def rows(batches: list[object]) -> set[tuple[int, ...]]:
    return {tuple(row.tolist()) for batch in batches for row in batch}  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def plain_worker() -> tuple[int, ...]:
    """What a worker of a plain DataLoader(num_workers=1) sees."""
    (seen,) = rows(list(DataLoader(PoolsSeen(), batch_size=4, num_workers=1)))
    if seen[1] < 2:
        pytest.skip("BLAS runs one thread in a plain worker here: there is no limit to leak")
    return seen


def candidate(config: LoaderConfig) -> set[tuple[int, ...]]:
    """The rows a calibration candidate's workers loaded."""
    kept: list[object] = []
    trial = run_trial(
        PoolsSeen(),
        config,
        TrialPlan(batches=4, chunk=2, timeout_s=60, min_time_s=0.0),
        start=0,
        collate_fn=None,
        step=None,
        judge=lambda rate, batches: None,
        clock=time.perf_counter,
        keep=kept,
    )
    assert trial.status == "measured", trial.reason
    return rows(kept)


def test_a_candidate_with_main_threads_leaves_its_workers_as_a_plain_worker(plain_worker) -> None:
    before = this_process()
    seen = candidate(LoaderConfig(batch_size=4, num_workers=1, main_threads=1))
    # Limiting this process's pools while the workers forked copied the limit into them.
    assert seen == {plain_worker}
    assert this_process() == before


def test_worker_threads_reach_the_workers_through_their_init_fn(plain_worker) -> None:
    before = this_process()
    seen = candidate(LoaderConfig(batch_size=4, num_workers=1, main_threads=1, worker_threads=1))
    assert seen == {(1, 1, 1, 1)}
    assert this_process() == before


def test_the_documented_pattern_leaves_the_workers_alone(plain_worker) -> None:
    config = LoaderConfig(batch_size=4, num_workers=2, main_threads=1)
    before = this_process()
    loader = DataLoader(PoolsSeen(), **config.loader_kwargs())  # type: ignore[arg-type]
    with config.threads():
        inside = this_process()
        seen = rows(list(loader))
    assert seen == {plain_worker}
    # Here, torch runs one thread; the BLAS pools are not limited (a limit here is what
    # the workers forked inside the block would have copied).
    assert inside[0] == 1
    assert [p for p in inside[1] if p[0] != "openmp"] == [p for p in before[1] if p[0] != "openmp"]
    assert this_process() == before


def test_calibrate_restores_this_process_and_tries_one_thread_per_worker(
    tmp_path, plain_worker
) -> None:
    two_cpus = dataclasses.replace(
        detect_resources(gpus=False), cpu_budget=2.0, cpu_affinity=(0, 1), local_world_size=1
    )
    before = this_process()
    result = calibrate(
        MatrixWork(), batch_size=8, samples=4, persist=False, home=tmp_path, limits=two_cpus
    )
    assert this_process() == before
    # Workers that would run a wide BLAS pool: limiting them is measured, and the
    # advice says so whenever it is chosen.
    limited = [t for t in result.candidates if t.config.worker_threads == 1]
    assert limited
    assert all(t.config.num_workers > 0 for t in limited)
    if result.chosen.worker_threads is not None:
        assert "worker_threads=1" in result.chosen.describe()
