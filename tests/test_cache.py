"""The preprocessing cache: keys, storage, safety, single flight, precompute, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from _cache_helpers import COUNT_FILE_VARIABLE, Pages, maps
from _support import run_cli, run_ranks
from trainperf.cache import BITS, U8, CachedDataset, Quantized
from trainperf.cache.dataset import verify_folder
from trainperf.cache.fingerprint import code_print, content_digest
from trainperf.errors import UsageError

TESTS = str(Path(__file__).parent)


@pytest.fixture
def counted(tmp_path, monkeypatch):
    path = tmp_path / "computed.txt"
    path.write_text("")
    monkeypatch.setenv(COUNT_FILE_VARIABLE, str(path))
    return lambda: [tuple(map(int, line.split())) for line in path.read_text().splitlines()]


def test_computed_once_then_read(tmp_path, counted) -> None:
    cache = CachedDataset(Pages(4), maps, cache_dir=tmp_path / "c")
    first = cache[2]
    again = CachedDataset(Pages(4), maps, cache_dir=tmp_path / "c")[2]
    assert len(counted()) == 1
    for value in (first, again):
        np.testing.assert_array_equal(value["double"], Pages(4)[2] * 2)
        assert value["total"] == float(Pages(4)[2].sum())
    assert again["double"].flags.writeable  # a private mapping: the file is never written


def test_variable_shapes_tuples_and_scalars(tmp_path) -> None:
    class Ragged:
        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> int:
            return i

    def make(i: int) -> tuple[object, ...]:
        return (
            np.ones((i + 1, 2 * i + 1), dtype=np.int16),
            np.zeros((0, 2)),
            None,
            "x",
            float("nan"),
        )

    cache = CachedDataset(Ragged(), make, cache_dir=tmp_path / "c")
    for i in range(3):
        cache[i]
        value = CachedDataset(Ragged(), make, cache_dir=tmp_path / "c")[i]
        assert value[0].shape == (i + 1, 2 * i + 1)
        assert value[0].dtype == np.int16
        assert value[1].shape == (0, 2)  # empty, and 2-D (a page without words)
        assert value[2:4] == (None, "x")
        assert np.isnan(value[4])


def test_codecs_and_their_error(tmp_path) -> None:
    rng = np.random.default_rng(0)
    probability = rng.random((64, 64), dtype=np.float32)
    mask = rng.random((64, 64)) > 0.5

    class One:
        def __len__(self) -> int:
            return 1

        def __getitem__(self, i: int) -> int:
            return i

    def make(_: int) -> dict[str, object]:
        return {"p": probability, "m": mask, "t": probability * 4 - 1}

    codec = {"p": U8, "m": BITS, "t": Quantized(-1.0, 3.0)}
    cache = CachedDataset(One(), make, cache_dir=tmp_path / "c", codec=codec)
    cache[0]
    value = CachedDataset(One(), make, cache_dir=tmp_path / "c", codec=codec)[0]
    assert np.abs(value["p"] - probability).max() <= 1 / 510 + 1e-7
    assert np.abs(value["t"] - (probability * 4 - 1)).max() <= 4 / 510 + 1e-6
    np.testing.assert_array_equal(value["m"], mask)
    entry = next((tmp_path / "c" / "entries").glob("*/*.tpc"))
    assert entry.stat().st_size < 64 * 64 * 4  # three maps in less than one float32 map


def test_inputs_that_cannot_be_fingerprinted_are_refused() -> None:
    class Opaque:
        __slots__ = ("x",)

    with pytest.raises(UsageError, match="pass key= a function returning"):
        content_digest(Opaque())
    with pytest.raises(UsageError, match="cannot fingerprint"):
        content_digest({"handle": threading.Lock()})
    assert content_digest({"b": 1, "a": [1.0, "x"]}) == content_digest({"a": [1.0, "x"], "b": 1})
    assert content_digest(np.zeros(3, np.float32)) != content_digest(np.zeros(3, np.float64))
    assert content_digest(np.zeros((0, 2))) != content_digest(np.zeros((2, 0)))


def test_a_key_function_chooses_what_identifies_an_input(tmp_path, counted) -> None:
    class Records:
        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int) -> dict[str, object]:
            return {"path": f"page{i}.png", "handle": threading.Lock()}

    def size(record: dict[str, object]) -> dict[str, object]:
        return {"n": len(str(record["path"]))}

    with pytest.raises(UsageError):
        CachedDataset(Records(), size, cache_dir=tmp_path / "a")[0]
    cache = CachedDataset(Records(), size, cache_dir=tmp_path / "b", key=lambda r: r["path"])
    assert cache[1] == {"n": 9}


def test_editing_a_helper_invalidates_and_explains(tmp_path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "labels.py").write_text("def scale(x):\n    return x * 2\n")
    (package / "build.py").write_text(
        "from pkg import labels\n\ndef build(x):\n    return {'y': labels.scale(x)}\n"
    )
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        sys.path.insert(0, {TESTS!r})
        from _cache_helpers import Pages
        from trainperf.cache import CachedDataset
        from pkg.build import build
        cache = CachedDataset(Pages(3), build, cache_dir={str(tmp_path / "c")!r}, version="v1")
        print(cache.explain_miss(1))
        print(float(cache[1]["y"][0, 0]))
        """
    )

    def run() -> list[str]:
        proc = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        )
        return proc.stdout.splitlines()

    assert run() == ["miss: no entry was ever stored for this input", "2.0"]
    assert run()[0].startswith("hit")
    (package / "labels.py").write_text("def scale(x):\n    return x * 3\n")
    explained, value = run()
    assert explained == "miss: code changed: pkg.labels.scale"
    assert value == "3.0"


def test_parameters_and_the_version_are_part_of_the_key(tmp_path) -> None:
    import functools

    def scaled(x: np.ndarray, factor: float) -> dict[str, object]:
        return {"y": x * factor}

    two = CachedDataset(Pages(2), functools.partial(scaled, factor=2.0), cache_dir=tmp_path / "c")
    three = CachedDataset(Pages(2), functools.partial(scaled, factor=3.0), cache_dir=tmp_path / "c")
    assert two[0]["y"][0, 1] == 2.0
    assert three[0]["y"][0, 1] == 3.0
    three[1]
    assert "bound to changed" in two.explain_miss(1)
    CachedDataset(Pages(2), functools.partial(scaled, factor=2.0), cache_dir=tmp_path / "d")[0]
    salted = CachedDataset(
        Pages(2), functools.partial(scaled, factor=2.0), cache_dir=tmp_path / "d", version=7
    )
    assert salted.explain_miss(0) == "miss: version changed: '' -> '7'"
    assert code_print(maps).libraries.get("numpy") == np.__version__


def _flip(path, offset_from_end: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_and_torn_files_are_never_returned(tmp_path, counted) -> None:
    cache = CachedDataset(Pages(3), maps, cache_dir=tmp_path / "c")
    for i in range(3):
        cache[i]
    entries = sorted((tmp_path / "c" / "entries").glob("*/*.tpc"))
    _flip(entries[0])
    entries[1].write_bytes(entries[1].read_bytes()[:-100])  # torn
    report = verify_folder(tmp_path / "c")
    assert report.entries == 3
    assert len(report.bad) == 2
    assert any("checksum" in bad for bad in report.bad)
    assert any("torn or truncated" in bad for bad in report.bad)
    fresh = CachedDataset(Pages(3), maps, cache_dir=tmp_path / "c")
    for i in range(3):
        np.testing.assert_array_equal(fresh[i]["double"], Pages(3)[i] * 2)
    assert len(counted()) == 3 + 2  # the two bad ones recomputed
    assert verify_folder(tmp_path / "c").ok


def test_a_folder_that_is_not_a_cache_is_refused(tmp_path) -> None:
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(UsageError, match="not empty and not a trainperf cache"):
        CachedDataset(Pages(1), maps, cache_dir=tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep"
    proc = run_cli("cache", "clear", str(tmp_path))
    assert proc.returncode == 2
    assert "not a trainperf cache" in proc.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep"


def test_keys_cannot_address_paths_outside_the_cache(tmp_path) -> None:
    from trainperf.cache.store import EntryStore

    store = EntryStore.open(tmp_path / "c", create=True)
    for bad in ("../../etc/passwd", "A" * 32, "0" * 31, "/" + "0" * 31):
        with pytest.raises(UsageError, match="invalid cache key"):
            store.entry_path(bad)


READERS = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    from torch.utils.data import DataLoader
    from _cache_helpers import Pages, maps
    from trainperf.cache import CachedDataset

    cache = CachedDataset(Pages(24), maps, cache_dir={cache!r})
    seen = 0
    for batch in DataLoader(cache, batch_size=4, num_workers=2, collate_fn=list):
        for value in batch:
            i = int(value["double"][0, 0] // 2)
            assert np.array_equal(value["double"], Pages(24)[i] * 2), i
            seen += 1
    print(seen)
    """
)


@pytest.mark.slow
def test_two_processes_with_two_workers_compute_each_key_once(tmp_path, counted) -> None:
    script = READERS.format(tests=TESTS, cache=str(tmp_path / "c"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert out.strip() == "24"
    computed = [index for index, _ in counted()]
    assert sorted(computed) == list(range(24))  # every key once, across 2 x 2 workers


def test_a_claim_left_by_a_dead_process_is_taken_over(tmp_path, counted) -> None:
    cache = CachedDataset(Pages(2), maps, cache_dir=tmp_path / "c", lease_s=600)
    key = cache.key_of(cache.components(Pages(2)[1]))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    claim = tmp_path / "c" / "claims" / f"{key}.claim"
    import socket

    claim.write_text(
        json.dumps(
            {
                "pid": int(dead.stdout),
                "host": socket.gethostname(),
                "expires": time.time() + 600,
                "token": "gone",
            }
        )
    )
    started = time.perf_counter()
    np.testing.assert_array_equal(cache[1]["double"], Pages(2)[1] * 2)
    assert time.perf_counter() - started < 5
    assert not claim.exists()


KILLED = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from _cache_helpers import Pages, slow_maps
    from trainperf.cache import CachedDataset

    CachedDataset(Pages(40), slow_maps, cache_dir={cache!r}).precompute(num_workers=2)
    """
)


def _wait_until_dead(processes: list[psutil.Process], timeout_s: float = 30) -> None:
    deadline = time.time() + timeout_s
    for process in processes:
        while time.time() < deadline:
            try:
                if process.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.01)


@pytest.mark.slow
def test_a_killed_precompute_leaves_nothing_torn_and_resumes(tmp_path, counted) -> None:
    script = KILLED.format(tests=TESTS, cache=str(tmp_path / "c"))
    proc = subprocess.Popen(
        [sys.executable, "-c", script], start_new_session=True, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 60
    while len(counted()) < 10 and time.time() < deadline:
        time.sleep(0.02)
    workers = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and its pool workers, mid-write
    proc.wait()
    _wait_until_dead(workers)  # reparented, maybe never reaped: a zombie counts as dead
    report = verify_folder(tmp_path / "c")
    assert report.ok, report.bad
    done = report.entries
    assert 0 < done < 40
    before = len(counted())
    result = CachedDataset(Pages(40), maps, cache_dir=tmp_path / "c")  # other fn: other keys
    assert result.explain_miss(0).startswith("miss: code changed")
    from _cache_helpers import slow_maps

    resumed = CachedDataset(Pages(40), slow_maps, cache_dir=tmp_path / "c").precompute()
    assert resumed.present == done
    assert resumed.computed == 40 - done
    assert len(counted()) - before == 40 - done
    assert verify_folder(tmp_path / "c").orphans == 0  # the killed writers' temporaries: gone


def test_precompute_orders_by_known_cost(tmp_path, counted) -> None:
    from _cache_helpers import slow_maps

    cache = CachedDataset(Pages(6), slow_maps, cache_dir=tmp_path / "c", version=1)
    cache.precompute()
    assert [i for i, _ in counted()] == [0, 1, 2, 3, 4, 5]
    again = CachedDataset(Pages(6), slow_maps, cache_dir=tmp_path / "c", version=2)
    again.precompute()
    order = [i for i, _ in counted()][6:]
    assert set(order[:3]) == {1, 3, 5}  # the odd pages took 5x longer last time


def test_precompute_takes_the_samples_named_first_first(tmp_path, counted) -> None:
    from _cache_helpers import slow_maps

    cache = CachedDataset(Pages(6), slow_maps, cache_dir=tmp_path / "c", version=1)
    cache.precompute()  # costs recorded: the odd pages are slowest
    again = CachedDataset(Pages(6), slow_maps, cache_dir=tmp_path / "c", version=2)
    again.precompute(first=[4, 0])
    order = [i for i, _ in counted()][6:]
    assert order[:2] == [4, 0]  # named first, in the order given
    assert set(order[2:5]) == {1, 3, 5}  # then by the costs recorded


def test_nondeterminism_is_reported(tmp_path) -> None:
    rng = np.random.default_rng()

    def noisy(x: np.ndarray) -> dict[str, object]:
        return {"y": x + rng.random()}

    cache = CachedDataset(Pages(4), maps, cache_dir=tmp_path / "ok")
    cache.precompute()
    assert cache.verify(recompute=4).nondeterministic == []
    with pytest.raises(UsageError, match="cannot fingerprint"):
        CachedDataset(Pages(4), noisy, cache_dir=tmp_path / "bad")  # a Generator in a closure

    def seeded(x: np.ndarray) -> dict[str, object]:
        return {"y": x + np.random.random()}  # global state: invisible to any fingerprint

    loose = CachedDataset(Pages(4), seeded, cache_dir=tmp_path / "loose")
    loose.precompute()
    assert loose.verify(recompute=4).nondeterministic == [0, 1, 2, 3]


def test_the_cli(tmp_path) -> None:
    cache = CachedDataset(Pages(5), maps, cache_dir=tmp_path / "c")
    cache.precompute()
    cache[0]
    cache.flush_stats()
    info = run_cli("cache", "info", str(tmp_path / "c"), "--json")
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["entries"] == 5
    assert data["misses"] == 5
    assert data["hits"] >= 1
    assert data["bytes"] > 0
    _flip(next((tmp_path / "c" / "entries").glob("*/*.tpc")))
    bad = run_cli("cache", "verify", str(tmp_path / "c"))
    assert bad.returncode == 1
    assert "checksum mismatch" in bad.stdout
    repaired = run_cli("cache", "verify", str(tmp_path / "c"), "--repair")
    assert repaired.returncode == 1  # it reports what it found, and removed it
    assert run_cli("cache", "verify", str(tmp_path / "c")).returncode == 0
    cleared = run_cli("cache", "clear", str(tmp_path / "c"), "--json")
    assert json.loads(cleared.stdout)["removed"] == 4
    missing = run_cli("cache", "info", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "not a trainperf cache" in missing.stderr


RANKS = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import torch.distributed as dist
    from _cache_helpers import Pages, maps
    from trainperf.cache import CachedDataset

    dist.init_process_group("gloo")
    report = CachedDataset(Pages(20), maps, cache_dir={cache!r}).precompute()
    sys.stdout.write(f"{{dist.get_rank()}} {{report.computed}} {{report.total}}\\n")
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
def test_two_ranks_precompute_disjoint_shards(tmp_path, counted) -> None:
    script = tmp_path / "ranks.py"
    script.write_text(RANKS.format(tests=TESTS, cache=str(tmp_path / "c")))
    proc = run_ranks(script, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = sorted(line for line in proc.stdout.splitlines() if line[:1].isdigit())
    assert lines == ["0 10 10", "1 10 10"]
    computed = counted()
    assert sorted(i for i, _ in computed) == list(range(20))
    by_process: dict[int, set[int]] = {}
    for index, pid in computed:
        by_process.setdefault(pid, set()).add(index % 2)
    assert sorted(map(sorted, by_process.values())) == [[0], [1]]  # rank r took r, r+2, ...


def test_many_openers_of_a_new_cache_at_once(tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from trainperf.cache.store import EntryStore

    for attempt in range(20):
        root = tmp_path / f"new{attempt}"
        barrier = threading.Barrier(8)

        def open_it(root=root, barrier=barrier) -> Path:
            barrier.wait()
            return EntryStore.open(root, create=True).root

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(lambda _: open_it(), range(8))) == {root}
        assert sorted(p.name for p in root.iterdir()) == [
            "claims",
            "content",
            "entries",
            "stats",
            "trainperf-cache.json",
        ]


def test_a_killed_unreaped_writer_counts_as_gone(tmp_path) -> None:
    from trainperf.cache.store import EntryStore

    store = EntryStore.open(tmp_path / "c", create=True)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    _wait_until_dead([psutil.Process(child.pid)])  # exited, not yet reaped: a zombie
    assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
    temporary = store.temporary_for("ab" * 16)
    temporary.write_bytes(b"torn")
    zombie = temporary.with_name(temporary.name.replace(f"-{os.getpid()}-", f"-{child.pid}-"))
    temporary.rename(zombie)
    assert store.orphans() == [zombie]  # a zombie writes nothing more
    child.wait()
