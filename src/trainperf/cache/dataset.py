"""``CachedDataset(base, fn, ...)``: ``fn(base[i])`` computed once, then read.

**Keys that explain themselves.** An entry's key hashes five components, each
stored in the entry: ``content`` (the input, or what ``key(input)`` returns),
``code`` (``fn`` by value, with every user-code helper it calls), ``params`` (the
values ``fn`` is bound to: partial arguments, closure cells, defaults), ``libraries``
(versions of the installed packages the code uses) and ``version`` (your salt).
``explain_miss(i)`` says which one changed. An input or binding that cannot be
fingerprinted deterministically is refused (see :mod:`.fingerprint`).

**Storage.** One file per entry (:mod:`.entry`): arrays of any shape and dtype, read
as views of a memory map (the OS page cache is the tier shared by DataLoader
workers, processes and DDP ranks), plus an optional in-process LRU bounded in bytes
(``memory_bytes``). Optional codecs per field (``BITS``, ``U8``).

**Safety.** Entries are published atomically (first writer wins), carry their length
and a CRC, and are checked -- the CRC on a process's first read of an entry
(``verify_reads="first"``; ``"always"`` checks every read) -- so a torn or corrupted
entry is never returned: it is removed and recomputed. Computation is single-flight
across processes: the first to claim a key computes it; the others wait for the
entry, and take over a claim whose lease (``lease_s``) expired or whose process
died. Nothing read back is unpickled.

**Determinism.** A cache is only correct for deterministic work: put it before random
augmentation (``fn`` builds the label maps; the random crop comes after, on the
cached maps). ``verify(recompute=N)`` recomputes N entries and reports any whose
output differs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from trainperf.cache.entry import CorruptEntry, read_entry, read_header, write_entry
from trainperf.cache.fingerprint import CodePrint, code_print, content_digest
from trainperf.cache.store import EntryStore
from trainperf.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from trainperf._json import JsonObject
    from trainperf.cache.codec import Codec
    from trainperf.cache.entry import Value

__all__ = ["CachedDataset", "PrecomputeReport", "VerifyReport"]

STATS_EVERY_S = 2.0
_WAIT_FIRST_S = 0.005
_WAIT_MAX_S = 0.1


@dataclass
class PrecomputeReport:
    total: int = 0
    computed: int = 0
    present: int = 0  # already there (resumed)
    waited: int = 0  # computed by another process meanwhile
    elapsed_s: float = 0.0
    orphans_removed: int = 0

    def to_json(self) -> JsonObject:
        return {
            "total": self.total,
            "computed": self.computed,
            "present": self.present,
            "waited": self.waited,
            "elapsed_s": self.elapsed_s,
            "orphans_removed": self.orphans_removed,
        }


@dataclass
class VerifyReport:
    entries: int = 0
    bad: list[str] = field(default_factory=list)  # "<file>: <why>"
    orphans: int = 0
    nondeterministic: list[int] = field(default_factory=list)  # dataset indices
    repaired: bool = False

    @property
    def ok(self) -> bool:
        return not self.bad and not self.nondeterministic

    def to_json(self) -> JsonObject:
        return {
            "entries": self.entries,
            "bad": list(self.bad),
            "orphans": self.orphans,
            "nondeterministic": list(self.nondeterministic),
            "repaired": self.repaired,
            "ok": self.ok,
        }


class CachedDataset:
    """A map-style dataset of ``fn(base[i])``, cached on disk (see the module docstring)."""

    def __init__(
        self,
        base: object,
        fn: Callable[[object], object],
        *,
        cache_dir: str | os.PathLike[str],
        version: str | int | None = None,
        key: Callable[[object], object] | None = None,
        codec: Mapping[str, Codec] | None = None,
        memory_bytes: int = 0,
        lease_s: float = 300.0,
        verify_reads: Literal["first", "always"] = "first",
    ) -> None:
        if not hasattr(base, "__getitem__") or not hasattr(base, "__len__"):
            raise UsageError(
                f"CachedDataset needs a map-style base dataset (__len__ and __getitem__), "
                f"got {type(base).__name__}"
            )
        if memory_bytes < 0 or lease_s <= 0:
            raise UsageError(
                f"memory_bytes must be >= 0 and lease_s > 0, got {memory_bytes} and {lease_s}"
            )
        if verify_reads not in ("first", "always"):
            raise UsageError(f"verify_reads must be 'first' or 'always', got {verify_reads!r}")
        self.base = base
        self.fn = fn
        self.key = key
        self.codec = dict(codec or {})
        self.version = "" if version is None else str(version)
        self.memory_bytes = memory_bytes
        self.lease_s = lease_s
        self.verify_reads = verify_reads
        self.cache_dir = Path(cache_dir)
        self._store = EntryStore.open(self.cache_dir, create=True)
        self._code: CodePrint = code_print(fn)
        self._static = {
            "code": self._code.digest,
            "params": self._code.params,
            "libraries": content_digest(self._code.libraries),
            "version": self.version,
        }
        self._reset_process_state()

    # --- per process -------------------------------------------------------------------

    def _reset_process_state(self) -> None:
        self._verified: set[str] = set()
        self._lru: OrderedDict[str, tuple[Value, int]] = OrderedDict()
        self._lru_bytes = 0
        self._stats = {"hits": 0, "misses": 0, "waits": 0, "saved_s": 0.0, "computed_s": 0.0}
        self._stats_file = self._store.root / "stats" / f"{os.getpid()}-{os.urandom(3).hex()}.json"
        self._stats_written = time.monotonic()
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        for name in ("_verified", "_lru", "_lru_bytes", "_stats", "_stats_file", "_pid"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._reset_process_state()

    def _process(self) -> None:
        if self._pid != os.getpid():  # a forked DataLoader worker: its own counters
            self._reset_process_state()

    # --- the dataset -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> Value:
        return self.lookup(self.base[index])

    def components(self, item: object) -> dict[str, str]:
        content = content_digest(self.key(item) if self.key is not None else item)
        return {"content": content, **self._static}

    @staticmethod
    def key_of(components: Mapping[str, str]) -> str:
        text = json.dumps(dict(components), sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    def lookup(self, item: object) -> Value:
        """``fn(item)``, read from the cache or computed (once, across processes)."""
        self._process()
        components = self.components(item)
        key = self.key_of(components)
        cached = self._lru.get(key)
        if cached is not None:
            self._lru.move_to_end(key)
            self._count("hits")
            return cached[0]
        waited = False
        delay = _WAIT_FIRST_S
        while True:
            value = self._read(key)
            if value is not None:
                self._count("waits" if waited else "hits")
                return value
            token = self._store.claim(key, self.lease_s)
            if token is not None:
                try:
                    value = self._read(key)  # published between our read and our claim
                    if value is not None:
                        self._count("hits")
                        return value
                    return self._compute(item, key, components)
                finally:
                    self._store.release(key, token)
            waited = True
            time.sleep(delay)  # another process computes it
            delay = min(delay * 2, _WAIT_MAX_S)

    def _read(self, key: str, *, saves: bool = True) -> Value | None:
        path = self._store.entry_path(key)
        check = self.verify_reads == "always" or key not in self._verified
        try:
            header, value = read_entry(path, check=check)
        except FileNotFoundError:
            return None
        except CorruptEntry:
            path.unlink(missing_ok=True)  # never returned: recomputed by the caller
            return None
        self._verified.add(key)
        cost = header.get("cost_s")
        if saves and isinstance(cost, int | float):
            self._stats["saved_s"] += float(cost)
        self._remember(key, value)
        return value

    def _remember(self, key: str, value: Value) -> None:
        if not self.memory_bytes:
            return
        size = _nbytes(value)
        if size > self.memory_bytes:
            return
        self._lru[key] = (value, size)
        self._lru_bytes += size
        while self._lru_bytes > self.memory_bytes:
            _, (_, dropped) = self._lru.popitem(last=False)
            self._lru_bytes -= dropped

    def _compute(self, item: object, key: str, components: dict[str, str]) -> Value:
        started = time.perf_counter()
        value = self.fn(item)
        cost = time.perf_counter() - started
        temporary = self._store.temporary_for(key)
        extra: JsonObject = {
            "key": key,
            "components": dict(components),
            "functions": dict(self._code.functions),
            "libraries": dict(self._code.libraries),
            "cost_s": cost,
            "created_at": time.time(),
        }
        try:
            write_entry(temporary, value, extra, self.codec)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self._store.publish(temporary, key)
        with contextlib.suppress(OSError):
            self._store.write_json(
                self._store.content_path(components["content"]),
                {
                    "key": key,
                    "components": dict(components),
                    "functions": dict(self._code.functions),
                    "libraries": dict(self._code.libraries),
                    "version": self.version,
                    "cost_s": cost,
                },
            )
        self._stats["computed_s"] += cost
        self._count("misses")
        # What the readers get is what the file holds (after the codecs), every time.
        read = self._read(key, saves=False)
        if read is None:
            raise CorruptEntry(f"entry {key} could not be read back after it was written")
        return read

    def _count(self, what: str) -> None:
        self._stats[what] += 1
        now = time.monotonic()
        if now - self._stats_written >= STATS_EVERY_S:
            self.flush_stats()

    def flush_stats(self) -> None:
        """Write this process's hits, misses and time saved (``trainperf cache info``)."""
        self._process()
        self._stats_written = time.monotonic()
        with contextlib.suppress(OSError):
            self._store.write_json(self._stats_file, dict(self._stats))

    # --- explanations --------------------------------------------------------------------

    def explain_miss(self, index: int) -> str:
        """Why ``self[index]`` is (or is not) read from the cache: which key component
        differs from the entry last stored for the same input."""
        item = self.base[index]
        components = self.components(item)
        key = self.key_of(components)
        if self._store.entry_path(key).is_file():
            return "hit: an entry exists for this input, code, parameters and libraries"
        try:
            data = json.loads(
                self._store.content_path(components["content"]).read_text(encoding="utf-8")
            )
        except (OSError, ValueError):
            return "miss: no entry was ever stored for this input"
        before = data.get("components", {}) if isinstance(data, dict) else {}
        reasons = []
        if before.get("code") != components["code"]:
            old = data.get("functions", {})
            changed = sorted(
                name
                for name in set(old) | set(self._code.functions)
                if old.get(name) != self._code.functions.get(name)
            )
            reasons.append(f"code changed: {', '.join(changed) or 'fn'}")
        if before.get("params") != components["params"]:
            reasons.append("the values fn is bound to changed (arguments, closure, defaults)")
        if before.get("libraries") != components["libraries"]:
            old_libs = data.get("libraries", {})
            changed_libs = [
                f"{name} {old_libs.get(name)} -> {self._code.libraries.get(name)}"
                for name in sorted(set(old_libs) | set(self._code.libraries))
                if old_libs.get(name) != self._code.libraries.get(name)
            ]
            reasons.append(f"libraries changed: {', '.join(changed_libs)}")
        if before.get("version") != components["version"]:
            reasons.append(f"version changed: {before.get('version')!r} -> {self.version!r}")
        if not reasons:
            return "miss: the entry for this input was removed (cleared, or found corrupt)"
        return "miss: " + "; ".join(reasons)

    # --- precompute ------------------------------------------------------------------------

    def _ensure(self, index: int) -> tuple[int, str, float]:
        started = time.perf_counter()
        before = dict(self._stats)
        self.lookup(self.base[index])
        if self._stats["misses"] > before["misses"]:
            how = "computed"
        elif self._stats["waits"] > before["waits"]:
            how = "waited"
        else:
            how = "present"
        return index, how, time.perf_counter() - started

    def precompute(
        self,
        num_workers: int = 0,
        *,
        indices: Sequence[int] | None = None,
        progress: Callable[[int, int], None] | None = None,
        first: Sequence[int] = (),
    ) -> PrecomputeReport:
        """Compute every missing entry: in ``num_workers`` processes, ``first`` first
        (the slowest samples a monitored run named:
        ``run.summary.workers.stages.slowest``), then longest first when earlier runs
        recorded costs; resumable (entries present are skipped), with a progress line on
        a terminal (or ``progress(done, total)`` calls). Under ``torch.distributed`` each
        rank takes its share of the indices, then all wait at a barrier."""
        if num_workers < 0:
            raise UsageError(f"num_workers must be >= 0, got {num_workers}")
        started = time.perf_counter()
        report = PrecomputeReport(orphans_removed=self._store.collect_orphans())
        chosen = list(range(len(self))) if indices is None else list(indices)
        rank, world = _distributed()
        chosen = chosen[rank::world]
        costs = self._known_costs()
        ahead = {index: n for n, index in enumerate(first)}
        chosen.sort(key=lambda i: (ahead.get(i, len(ahead)), -costs.get(i, 0.0)))
        report.total = len(chosen)
        done = 0
        measured: dict[int, float] = {}
        status = None
        if progress is None:
            from trainperf.cli._progress import Status

            status = Status()  # a progress line on a terminal, nothing otherwise

            def progress(done: int, total: int) -> None:
                assert status is not None
                status(f"precompute: {done}/{total} entries")

        def record(result: tuple[int, str, float]) -> None:
            nonlocal done
            index, how, seconds = result
            setattr(report, how, getattr(report, how) + 1)
            if how == "computed":
                measured[index] = seconds
            done += 1
            if progress is not None:
                progress(done, report.total)

        if num_workers == 0:
            for index in chosen:
                record(self._ensure(index))
        else:
            import multiprocessing

            context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
            with context.Pool(num_workers, initializer=_worker_init, initargs=(self,)) as pool:
                for result in pool.imap_unordered(_worker_ensure, chosen, chunksize=1):
                    record(result)
        if status is not None:
            status.done()
        self._save_costs(measured)
        self.flush_stats()
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
        report.elapsed_s = time.perf_counter() - started
        return report

    def _costs_path(self) -> Path:
        base = type(self.base)
        name = f"{base.__module__}.{base.__qualname__}:{len(self)}:{self._static['code']}"
        digest = hashlib.blake2b(name.encode(), digest_size=8).hexdigest()
        return self._store.root / "stats" / f"costs-{digest}.json"

    def _known_costs(self) -> dict[int, float]:
        """Seconds per index from earlier precomputes of this dataset (any code version)."""
        base = type(self.base)
        prefix = f"{base.__module__}.{base.__qualname__}:{len(self)}"
        out: dict[int, float] = {}
        for path in sorted((self._store.root / "stats").glob("costs-*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("dataset") == prefix:
                raw = data.get("costs", {})
                if isinstance(raw, dict):
                    for k, v in raw.items():
                        if str(k).isdecimal() and isinstance(v, int | float):
                            out[int(k)] = float(v)
        return out

    def _save_costs(self, measured: dict[int, float]) -> None:
        if not measured:
            return
        base = type(self.base)
        path = self._costs_path()
        known = {}
        with contextlib.suppress(OSError, ValueError):
            old = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(old, dict) and isinstance(old.get("costs"), dict):
                known = dict(old["costs"])
        known.update({str(k): round(v, 6) for k, v in measured.items()})
        with contextlib.suppress(OSError):
            self._store.write_json(
                path,
                {"dataset": f"{base.__module__}.{base.__qualname__}:{len(self)}", "costs": known},
            )

    # --- verification ----------------------------------------------------------------------

    def verify(self, recompute: int = 0, *, repair: bool = False) -> VerifyReport:
        """Check every entry's length and CRC; recompute ``recompute`` samples (spread over
        the dataset) and compare outputs, reporting non-determinism."""
        report = verify_folder(self.cache_dir, repair=repair)
        if recompute > 0:
            count = len(self)
            step = max(1, count // recompute)
            for index in list(range(0, count, step))[:recompute]:
                item = self.base[index]
                key = self.key_of(self.components(item))
                try:
                    _, stored = read_entry(self._store.entry_path(key), check=True)
                except (FileNotFoundError, CorruptEntry):
                    continue
                # Through the codecs, as a reader would see a fresh computation.
                temporary = self._store.temporary_for(key)
                try:
                    write_entry(temporary, self.fn(item), {}, self.codec)
                    _, again = read_entry(temporary, check=True)
                finally:
                    temporary.unlink(missing_ok=True)
                if not _same(stored, again):
                    report.nondeterministic.append(index)
        return report


def verify_folder(cache_dir: Path, *, repair: bool = False) -> VerifyReport:
    """Every entry's length and CRC, and orphaned temporaries; ``repair`` removes both."""
    store = EntryStore.open(Path(cache_dir), create=False)
    report = VerifyReport()
    for path in store.entries():
        report.entries += 1
        try:
            read_entry(path, check=True)
        except CorruptEntry as exc:
            report.bad.append(str(exc))
            if repair:
                path.unlink(missing_ok=True)
    orphans = store.orphans()
    report.orphans = len(orphans)
    if repair:
        store.collect_orphans()
        report.repaired = True
    return report


def folder_info(cache_dir: Path) -> JsonObject:
    """Entries, bytes, orphans, and the hits, misses and time saved processes recorded."""
    store = EntryStore.open(Path(cache_dir), create=False)
    entries = 0
    size = 0
    cost = 0.0
    for path in store.entries():
        entries += 1
        with contextlib.suppress(OSError):
            size += path.stat().st_size
            header = read_header(path)[0]
            if isinstance(header.get("cost_s"), int | float):
                cost += float(header["cost_s"])  # type: ignore[arg-type]
    totals = {"hits": 0.0, "misses": 0.0, "waits": 0.0, "saved_s": 0.0, "computed_s": 0.0}
    for path in (store.root / "stats").glob("*.json"):
        if path.name.startswith("costs-"):
            continue
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                for name in totals:
                    value = data.get(name)
                    if isinstance(value, int | float):
                        totals[name] += float(value)
    return {
        "path": str(cache_dir),
        "entries": entries,
        "bytes": size,
        "compute_s_stored": cost,
        "orphans": len(store.orphans()),
        "hits": int(totals["hits"] + totals["waits"]),
        "misses": int(totals["misses"]),
        "time_saved_s": totals["saved_s"],
    }


def clear_folder(cache_dir: Path) -> int:
    """Remove every entry, claim, index and statistic; keep the marked folder."""
    import shutil

    store = EntryStore.open(Path(cache_dir), create=False)
    removed = sum(1 for _ in store.entries())
    for folder in ("entries", "content", "claims", "stats"):
        shutil.rmtree(store.root / folder, ignore_errors=True)
        (store.root / folder).mkdir()
    return removed


def _same(a: object, b: object) -> bool:
    import numpy as np

    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))
    return a == b


def _nbytes(value: Value) -> int:
    items = value.values() if isinstance(value, dict) else value
    return sum(int(getattr(v, "nbytes", 64)) for v in items)


def _distributed() -> tuple[int, int]:
    import sys

    if "torch" not in sys.modules:
        return 0, 1
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


_WORKER: CachedDataset | None = None


def _worker_init(dataset: CachedDataset) -> None:
    global _WORKER
    _WORKER = dataset
    dataset._reset_process_state()


def _worker_ensure(index: int) -> tuple[int, str, float]:
    assert _WORKER is not None
    result = _WORKER._ensure(index)
    _WORKER.flush_stats()
    return result
