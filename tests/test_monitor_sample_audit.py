"""The input audit: the samples each pass read, recorded exactly, and the overlap between
ranks and the repeated epoch orders it finds (real loaders; real torchrun ranks)."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import (  # noqa: E402
    DataLoader,
    Dataset,
    DistributedSampler,
    Sampler,
)
from torch.utils.data.dataloader import _BaseDataLoaderIter  # noqa: E402

import trainperf  # noqa: E402
from _support import run_cli  # noqa: E402
from trainperf.monitoring.analyze import summarize_folder  # noqa: E402
from trainperf.monitoring.html import audit_section  # noqa: E402
from trainperf.monitoring.render import render_summary  # noqa: E402
from trainperf.monitoring.sample_audit import (  # noqa: E402
    _SALT,
    SAMPLE_AUDIT_FILE,
    SKETCH_K,
    PassRecord,
    audit_folders,
    read_sample_audit,
)


class Indices(Dataset[torch.Tensor]):
    """Each sample is its own index: a batch shows which samples the loader read."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([float(i)])


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor) -> None:
    opt.zero_grad()
    model(x).sum().backward()
    opt.step()


def _train(folder: Path, epochs: Iterable[DataLoader], *, stop: int | None = None) -> list[list]:
    """Train on each loader in turn (one pass each, ``stop`` batches at most); the batches
    each pass returned, as lists of sample indices."""
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    read: list[list] = []
    with trainperf.monitor(out=folder):
        for loader in epochs:
            read.append([])
            for x in loader:
                read[-1].append([int(v) for v in x.flatten().tolist()])
                if len(read[-1]) == stop:
                    break  # the batch in hand was returned: it counts
                _step(model, opt, x)
    return read


def _check_recorded(passes: tuple[PassRecord, ...], read: list[list]) -> None:
    """Each pass's record holds exactly the batches the loop received."""
    assert [p.batches for p in passes] == [len(r) for r in read]
    for p, batches in zip(passes, read, strict=True):
        assert p.loader == "training"
        assert p.samples == sum(len(b) for b in batches)
        assert p.batch_hashes == tuple(hash(tuple(b)) for b in batches)
        assert p.sketch == tuple(sorted({hash((i, _SALT)) for b in batches for i in b}))
        assert p.sketch_exact


@pytest.mark.parametrize("workers", [0, 2])
def test_every_batch_returned_is_recorded_and_only_those(tmp_path, workers) -> None:
    data = Indices(40)
    loaders = [DataLoader(data, batch_size=4, shuffle=True, num_workers=workers) for _ in range(2)]
    read = _train(tmp_path / "run", loaders, stop=3)  # stopped mid-epoch, twice
    passes = read_sample_audit(tmp_path / "run")
    assert passes is not None
    _check_recorded(passes, read)
    assert [p.number for p in passes] == [0, 1]
    assert all(
        (p.dataset_len, p.sampler_len, p.sampler) == (40, 40, "RandomSampler") for p in passes
    )
    if workers:  # batches sent to the workers ahead of the loop: dispatched, not consumed
        assert all(p.dispatched > p.batches for p in passes)
    else:
        assert all(p.dispatched == p.batches for p in passes)


def test_persistent_workers_start_a_new_pass_each_epoch(tmp_path) -> None:
    loader = DataLoader(
        Indices(24), batch_size=4, shuffle=True, num_workers=2, persistent_workers=True
    )
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    read: list[list] = []
    with trainperf.monitor(out=tmp_path / "run"):
        for epoch in range(3):
            read.append([])
            for x in loader:  # the same iterator, reset each epoch
                read[-1].append([int(v) for v in x.flatten().tolist()])
                if epoch == 0 and len(read[-1]) == 2:
                    break  # the batches prefetched behind it are left, not counted
                _step(model, opt, x)
    passes = read_sample_audit(tmp_path / "run")
    assert passes is not None
    _check_recorded(passes, read)
    assert [p.batches for p in passes] == [2, 6, 6]


def test_a_batch_that_failed_is_not_counted(tmp_path) -> None:
    class Fails(Indices):
        def __getitem__(self, i: int) -> torch.Tensor:
            if i == 5:
                raise ValueError("a bad sample")
            return super().__getitem__(i)

    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    read: list[list] = [[]]
    with trainperf.monitor(out=tmp_path / "run"):
        batches = iter(DataLoader(Fails(16), batch_size=4))  # the second batch fails
        while True:
            try:
                x = next(batches)
            except StopIteration:
                break
            except ValueError:
                continue  # the loop skips it; the loader goes on with the next batch
            read[-1].append([int(v) for v in x.flatten().tolist()])
            _step(model, opt, x)
    passes = read_sample_audit(tmp_path / "run")
    assert passes is not None
    _check_recorded(passes, read)
    assert read == [[[0, 1, 2, 3], [8, 9, 10, 11], [12, 13, 14, 15]]]


def test_nothing_is_recorded_while_unrecorded(tmp_path) -> None:
    data = Indices(16)
    with trainperf.monitor(out=tmp_path / "run") as run, run.unrecorded():
        for _ in DataLoader(data, batch_size=4):
            pass
    assert (tmp_path / "run" / SAMPLE_AUDIT_FILE).read_text() == ""
    assert run.summary is not None
    assert audit_section(run.summary) == ""  # nothing checked: nothing said
    assert "input audit" not in render_summary(run.summary, title="run")


def test_the_dataloader_hooks_are_restored(tmp_path) -> None:
    from trainperf.monitoring.capture import StepRecorder
    from trainperf.monitoring.hooks import instrument

    before = (_BaseDataLoaderIter.__next__, _BaseDataLoaderIter._next_index)
    inside = []

    def fail() -> None:
        inside.append(_BaseDataLoaderIter._next_index)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), trainperf.monitor(out=tmp_path / "run"):
        fail()
    assert inside
    assert inside[0] is not before[1]  # audited while monitoring
    assert (_BaseDataLoaderIter.__next__, _BaseDataLoaderIter._next_index) == before
    recorder = StepRecorder(clock=lambda: 0.0, emit=lambda period: None)
    with instrument(recorder, lambda: 0.0):  # no audit: the sampler's indices untouched
        assert _BaseDataLoaderIter._next_index is before[1]
    assert (_BaseDataLoaderIter.__next__, _BaseDataLoaderIter._next_index) == before


def _epochs(make: Callable[[int], DataLoader], epochs: int = 3) -> Iterator[DataLoader]:
    return (make(epoch) for epoch in range(epochs))  # each made as its epoch begins


@pytest.mark.parametrize("rebuilt", [False, True], ids=["one-dataset", "dataset-each-epoch"])
def test_a_generator_seeded_again_each_epoch_repeats_the_order(tmp_path, rebuilt) -> None:
    data = Indices(64)

    def loader(epoch: int) -> DataLoader:
        return DataLoader(
            Indices(64) if rebuilt else data,
            batch_size=8,
            shuffle=True,
            generator=torch.Generator().manual_seed(0),
        )

    _train(tmp_path / "run", _epochs(loader))
    summary, _ = summarize_folder(tmp_path / "run")
    (finding,) = [f for f in summary.findings if f.kind == "epoch-order-repeats"]
    assert finding.evidence["epochs_repeating"] == 2
    assert finding.evidence["repeated_batches"] == 8
    assert "seed once" in finding.fix
    assert summary.sample_audit is not None
    assert summary.sample_audit["order"]["epochs"] == [0, 1]
    assert "overlap between ranks: a single process" in summary.sample_audit["not_checked"]


def test_a_distributed_sampler_without_set_epoch_in_one_process(tmp_path) -> None:
    data = Indices(64)
    sampler = DistributedSampler(data, num_replicas=1, rank=0)  # set_epoch never called
    _train(tmp_path / "run", _epochs(lambda e: DataLoader(data, batch_size=8, sampler=sampler)))
    summary, _ = summarize_folder(tmp_path / "run")
    (finding,) = [f for f in summary.findings if f.kind == "epoch-order-repeats"]
    assert "sampler.set_epoch(epoch)" in finding.fix
    assert summary.sample_audit is not None
    assert summary.sample_audit["order"]["sampler_epoch"] == 0


@pytest.mark.parametrize(
    "shuffled",
    [
        lambda data, sampler: DataLoader(data, batch_size=8),  # unshuffled: the same order
        lambda data, sampler: DataLoader(data, batch_size=8, shuffle=True),
        lambda data, sampler: DataLoader(data, batch_size=8, sampler=sampler),
    ],
    ids=["sequential", "shuffled", "set-epoch"],
)
def test_no_repeat_where_the_order_changes_or_was_never_shuffled(tmp_path, shuffled) -> None:
    data = Indices(64)
    sampler = DistributedSampler(data, num_replicas=1, rank=0)

    def loader(epoch: int) -> DataLoader:
        sampler.set_epoch(epoch)
        return shuffled(data, sampler)

    _train(tmp_path / "run", _epochs(loader))
    summary, _ = summarize_folder(tmp_path / "run")
    assert summary.sample_audit is not None
    assert not [f for f in summary.findings if f.kind == "epoch-order-repeats"]
    assert summary.sample_audit["order"] is None


def test_one_epoch_says_the_order_was_not_checked(tmp_path) -> None:
    _train(tmp_path / "run", [DataLoader(Indices(32), batch_size=8, shuffle=True)])
    summary, _ = summarize_folder(tmp_path / "run")
    assert summary.sample_audit is not None
    assert (
        "order across epochs: fewer than two epochs seen (rank 0)"
        in (summary.sample_audit["not_checked"])
    )


class Shard(Sampler[int]):
    """A custom sharding: a permutation drawn with this rank's seed, then every
    ``world``-th index from ``rank`` (the ranks' shards overlap unless the seeds agree)."""

    def __init__(self, n: int, rank: int, world: int, seed: int) -> None:
        self.n, self.rank, self.world, self.seed = n, rank, world, seed

    def __len__(self) -> int:
        return self.n // self.world

    def __iter__(self):  # type: ignore[no-untyped-def]
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed))
        return iter(order[self.rank :: self.world].tolist())


def _two_ranks(tmp_path: Path, sampler: object, data: Dataset | None = None) -> Path:
    """Two "ranks" recorded one after the other in this process (rank<N> folders, as
    torchrun's are): quick, and the records are the same."""
    data = data or Indices(400)
    for rank in (0, 1):
        loaders = [
            DataLoader(data, batch_size=16, sampler=sampler(rank))  # type: ignore[operator]
            for _ in range(2)
        ]
        _train(tmp_path / "run" / f"rank{rank}", loaders)
    return tmp_path / "run"


def test_shards_drawn_with_other_seeds_overlap(tmp_path) -> None:
    run = _two_ranks(tmp_path, lambda rank: Shard(400, rank, 2, seed=rank))
    summary, _ = summarize_folder(run)
    (finding,) = [f for f in summary.findings if f.kind == "rank-data-overlap"]
    assert summary.sample_audit is not None
    overlap = summary.sample_audit["overlap"]
    assert overlap["kind"] == "shared-samples"
    assert overlap["sampler"] == "Shard"
    # Two random halves: each rank shares about half its samples with the other, and a
    # quarter of all the samples read are copies. Exact sketches (200 < SKETCH_K).
    assert 0.35 < finding.evidence["overlap_share"] < 0.65
    assert 0.15 < finding.evidence["wasted_share"] < 0.35
    assert "same seed on every rank" in finding.fix


def test_shards_drawn_with_the_same_seed_do_not_overlap(tmp_path) -> None:
    run = _two_ranks(tmp_path, lambda rank: Shard(400, rank, 2, seed=7))
    summary, _ = summarize_folder(run)
    assert not [f for f in summary.findings if f.kind == "rank-data-overlap"]
    assert summary.sample_audit is not None
    assert any("samples shared between ranks" in c for c in summary.sample_audit["checked"])


def test_a_distributed_sampler_told_one_replica_on_every_rank(tmp_path) -> None:
    data = Indices(400)
    run = _two_ranks(tmp_path, lambda rank: DistributedSampler(data, num_replicas=1, rank=0), data)
    summary, _ = summarize_folder(run)
    (finding,) = [f for f in summary.findings if f.kind == "rank-data-overlap"]
    assert finding.evidence["wasted_share"] == 0.5  # the same seed: identical batches
    assert "num_replicas=1, rank=0" in finding.fix
    assert "leave num_replicas and rank out" in finding.fix
    text = render_summary(summary, title="run")
    assert "input audit: checked batches of 2 ranks, position by position" in text
    assert "  found: every rank's DistributedSampler draws the same shard" in text
    assert "every rank&#x27;s DistributedSampler draws the same shard" in audit_section(summary)


def test_the_same_indices_on_datasets_of_their_own_are_not_an_overlap(tmp_path) -> None:
    class Own(Indices):  # each rank loads its own shard of the data
        def __init__(self, n: int, rank: int) -> None:
            super().__init__(n)
            self.rank = rank

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.tensor([float(i + 1000 * self.rank)])

    for rank in (0, 1):  # and reads it in the same order
        _train(tmp_path / "run" / f"rank{rank}", [DataLoader(Own(64, rank), batch_size=8)])
    summary, _ = summarize_folder(tmp_path / "run")
    assert not [f for f in summary.findings if f.kind == "rank-data-overlap"]
    assert summary.sample_audit is not None
    assert any("other data on each rank" in c for c in summary.sample_audit["not_checked"])


def test_the_doctor_names_the_fix_in_its_title(tmp_path) -> None:
    from trainperf.doctor.findings import compose

    data = Indices(400)
    run = _two_ranks(tmp_path, lambda rank: DistributedSampler(data, num_replicas=1, rank=0), data)
    summary, _ = summarize_folder(run)
    found, _ = compose(
        startup={}, periods=[], summary=summary, proofs=(), loaders=(), cpus=2.0, bundled=False
    )
    (overlap,) = [f for f in found if f.kind == "rank-data-overlap"]
    assert "leave num_replicas and rank out" in overlap.title
    assert any("read the same batch at 100% of the positions" in e for e in overlap.evidence)
    assert overlap.speedup == 2.0  # half the compute: an epoch in half the steps
    assert overlap.gain_source == "estimated"


def test_overlap_from_sketches_of_passes_larger_than_the_sketch(tmp_path) -> None:
    """Ranks that read 20,000 samples each, 6,000 of them in common: the bottom-k
    sketches estimate the overlap from the hashes below both thresholds."""
    ranks = [range(0, 20_000), range(14_000, 34_000)]
    for rank, samples in enumerate(ranks):
        sketch = sorted({hash((i, _SALT)) for i in samples})[:SKETCH_K]
        folder = tmp_path / f"rank{rank}"
        folder.mkdir()
        line = {
            "loader": "training", "dataset": "D", "pass": 0, "sampler": "S",
            "dataset_len": 40_000, "sampler_len": 20_000, "dispatched": 100, "batches": 100,
            "samples": 20_000, "batch_hashes": [rank], "sketch": sketch,
            "sketch_exact": False,
        }  # fmt: skip
        (folder / SAMPLE_AUDIT_FILE).write_text(json.dumps(line) + "\n")
    audit = audit_folders([tmp_path / "rank0", tmp_path / "rank1"])
    assert audit.overlap is not None
    assert audit.overlap.kind == "shared-samples"
    assert audit.overlap.overlap_share == pytest.approx(0.3, abs=0.05)  # 6,000 of 20,000
    assert audit.overlap.wasted_share == pytest.approx(6 / 40, abs=0.03)  # copies of all read


# -- real ranks --------------------------------------------------------------------------

DDP = textwrap.dedent(
    """
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    data = TensorDataset(torch.arange(320.0).reshape(320, 1))  # the same on every rank
    torch.manual_seed({seed})
    model = DistributedDataParallel(torch.nn.Linear(1, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.001)
    {loader}
    for epoch in range(3):
        {epoch}
        for (x,) in loader:
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
    dist.destroy_process_group()
    """
)
PLAIN = "loader = DataLoader(data, batch_size=16, shuffle=True)"
SAMPLER = (
    "sampler = DistributedSampler(data)\nloader = DataLoader(data, batch_size=16, sampler=sampler)"
)


def _ddp(
    tmp_path: Path, *, seed: str, loader: str, epoch: str = "pass", text: bool = False
) -> dict:
    script = tmp_path / "ddp.py"
    script.write_text(DDP.format(seed=seed, loader=loader, epoch=epoch))
    out = tmp_path / "run"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    proc = run_cli("run", "--out", str(out), "--", *launch, str(script))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["rank0", "rank1"]
    report = run_cli("report", str(out), "--json")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    if text:  # the report as people read it
        said = run_cli("report", str(out))
        assert said.returncode == 0, said.stderr
        data["text"] = said.stdout
    return data


def _findings(data: dict, kind: str) -> list[dict]:
    return [f for f in data["verdict"]["findings"] if f["kind"] == kind]


@pytest.mark.slow
def test_ddp_with_a_plain_shuffled_loader_and_one_seed_trains_on_identical_batches(
    tmp_path,
) -> None:
    data = _ddp(tmp_path, seed="0", loader=PLAIN, text=True)
    (finding,) = _findings(data, "rank-data-overlap")
    assert finding["evidence"]["wasted_share"] == 0.5
    assert finding["evidence"]["identical_batch_share"] == 1.0
    assert finding["evidence"]["epochs_compared"] == 3
    assert "DistributedSampler(dataset)" in finding["fix"]
    overlap = data["sample_audit"]["overlap"]
    assert (overlap["kind"], overlap["sampler"], overlap["ranks"]) == (
        "identical-batches",
        "RandomSampler",
        [0, 1],
    )
    assert "input audit: checked" in data["text"]
    assert "every rank trains on the same batches" in data["text"]


@pytest.mark.slow
def test_ddp_with_a_plain_shuffled_loader_reads_the_whole_dataset_on_every_rank(
    tmp_path,
) -> None:
    data = _ddp(tmp_path, seed="rank", loader=PLAIN)
    (finding,) = _findings(data, "rank-data-overlap")
    assert finding["evidence"]["reads_per_epoch"] == 2
    assert finding["evidence"]["wasted_share"] == 0.5
    overlap = data["sample_audit"]["overlap"]
    assert (overlap["kind"], overlap["sampler_len"], overlap["dataset_len"]) == (
        "whole-dataset",
        320,
        320,
    )


@pytest.mark.slow
def test_ddp_distributed_sampler_without_set_epoch_repeats_every_epoch(tmp_path) -> None:
    data = _ddp(tmp_path, seed="0", loader=SAMPLER)
    (finding,) = _findings(data, "epoch-order-repeats")
    assert "sampler.set_epoch(epoch)" in finding["fix"]
    assert finding["evidence"]["epochs_repeating"] == 2
    assert data["sample_audit"]["order"]["ranks"] == [0, 1]
    assert not _findings(data, "rank-data-overlap")  # the shards themselves are disjoint


@pytest.mark.slow
def test_ddp_distributed_sampler_with_set_epoch_is_clean(tmp_path) -> None:
    data = _ddp(tmp_path, seed="0", loader=SAMPLER, epoch="sampler.set_epoch(epoch)")
    assert not _findings(data, "rank-data-overlap")
    assert not _findings(data, "epoch-order-repeats")
    audit = data["sample_audit"]
    assert (audit["overlap"], audit["order"]) == (None, None)
    checked = " ".join(audit["checked"])
    assert "position by position" in checked
    assert "samples shared between ranks" in checked
    assert "batch order across epochs (2 ranks)" in checked
