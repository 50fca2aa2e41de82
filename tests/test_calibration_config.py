"""LoaderConfig's rules, its DataLoader arguments, and thread settings that are restored."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

from trainperf.calibration.config import LoaderConfig, WorkerThreads, torch_threads  # noqa: E402
from trainperf.errors import RecordError, UsageError  # noqa: E402


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": 8, "num_workers": -1}, "num_workers must be an integer >= 0, got -1"),
        ({"batch_size": 8, "prefetch_factor": 2}, "prefetch_factor=2 needs worker processes"),
        ({"batch_size": 8, "persistent_workers": True}, "persistent_workers=True needs worker"),
        ({"batch_size": 8, "num_workers": 2, "prefetch_factor": 0}, "prefetch_factor must be"),
        ({"batch_size": 8, "main_threads": 0}, "main_threads must be an integer >= 1"),
        ({"batch_size": 8, "worker_threads": 2}, "worker_threads=2 needs worker processes"),
        ({"batch_size": True}, "batch_size must be an integer >= 1, got True"),
    ],
)
def test_invalid_configurations_name_the_value_and_the_fix(fields, fragment) -> None:
    with pytest.raises(UsageError) as caught:
        LoaderConfig(**fields)
    assert fragment in str(caught.value)


def test_loader_kwargs_set_worker_options_only_with_workers() -> None:
    assert LoaderConfig(batch_size=4).loader_kwargs() == {
        "batch_size": 4,
        "num_workers": 0,
        "pin_memory": False,
    }
    kwargs = LoaderConfig(
        batch_size=4, num_workers=2, prefetch_factor=3, persistent_workers=True, worker_threads=2
    ).loader_kwargs()
    assert kwargs["prefetch_factor"] == 3
    assert kwargs["persistent_workers"] is True
    assert kwargs["worker_init_fn"] == WorkerThreads(2)


def test_json_round_trip_and_a_bad_record() -> None:
    config = LoaderConfig(batch_size=4, num_workers=2, prefetch_factor=4, main_threads=1)
    assert LoaderConfig.from_json(config.to_json()) == config
    with pytest.raises(RecordError, match="invalid loader configuration"):
        LoaderConfig.from_json({**config.to_json(), "num_workers": 0})


def _pools() -> list[tuple[str, int]]:
    from threadpoolctl import threadpool_info

    return sorted((p["internal_api"], p["num_threads"]) for p in threadpool_info())


def test_torch_threads_are_restored_even_when_the_block_raises() -> None:
    before = (torch.get_num_threads(), _pools())
    inside = []

    def work() -> None:
        with torch_threads(1):
            inside.append((torch.get_num_threads(), _pools()))
            raise KeyError("boom")

    with pytest.raises(KeyError):
        work()
    assert inside[0][0] == 1
    # BLAS pools are left as they are: workers forked in the block would copy a limit.
    blas = [pool for pool in before[1] if pool[0] != "openmp"]
    assert [pool for pool in inside[0][1] if pool[0] != "openmp"] == blas
    assert (torch.get_num_threads(), _pools()) == before


class ThreadsSeen(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor(torch.get_num_threads())


@pytest.mark.slow
def test_worker_threads_apply_in_real_workers() -> None:
    config = LoaderConfig(batch_size=2, num_workers=2, worker_threads=2)
    seen = torch.cat(list(DataLoader(ThreadsSeen(), **config.loader_kwargs())))
    assert seen.tolist() == [2, 2, 2, 2]  # DataLoader alone starts workers with 1
    plain = torch.cat(list(DataLoader(ThreadsSeen(), batch_size=2, num_workers=2)))
    assert plain.tolist() == [1, 1, 1, 1]
