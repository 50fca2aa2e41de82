"""The input audit's record: which samples each DataLoader pass read, hashed.

Multi-rank training wastes compute nobody sees when the ranks read the same samples: a
plain ``DataLoader(shuffle=True)`` under DDP (every rank reads the whole dataset), the
same seed on every rank (identical batches), a custom sharding drawn with a different
seed per rank (shards that overlap); and a ``DistributedSampler`` whose
``set_epoch(epoch)`` is never called repeats one order every epoch. This module records
what shows it; :mod:`.sample_audit_analysis` finds it (:func:`audit_folders`).

:class:`SampleRecorder`, fed by :func:`~.hooks.instrument`, sees every index list a
DataLoader's sampler yields as it is dispatched (``_next_index``: also the ones a
multi-worker iterator sends ahead, before its first ``__next__``); a pass is one
``_sampler_iter`` (a new one every ``iter(loader)``, persistent workers too). Only the
batches ``__next__`` returned count: dispatch order is batch order, so each returned
batch is the oldest dispatched one. Per pass: the sampler's settings, the counts, the
first ``KEPT_BATCHES`` batch hashes and a bottom-``SKETCH_K`` sketch of per-sample
hashes (exact while a pass saw at most ``SKETCH_K`` distinct samples). Integer and
tuple hashing is not randomised by ``PYTHONHASHSEED``, so the hashes agree across
processes. Passes after a loader's first ``DETAILED_PASSES`` keep only their first
``ORDER_BATCHES`` hashes: the file stays small over long runs. Written to
``sample_audit.jsonl`` when the run ends.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainperf._json import Json, opt_int, opt_str, read_lines, req_int, req_list, req_str

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from trainperf._json import JsonObject
    from trainperf.monitoring.analyze import RunSummary
    from trainperf.monitoring.sample_audit_analysis import SampleAudit

__all__ = [
    "SAMPLE_AUDIT_FILE",
    "PassRecord",
    "SampleRecorder",
    "audit_folders",
    "read_sample_audit",
    "with_audit",
]

SAMPLE_AUDIT_FILE = "sample_audit.jsonl"
SKETCH_K = 1024  # per-sample hashes kept per pass (the smallest)
KEPT_BATCHES = 256  # batch hashes kept per pass
DETAILED_PASSES = 16  # per loader; later passes keep ORDER_BATCHES hashes, no sketch
ORDER_BATCHES = 8
_SALT = 0x7A175EED  # hash((i, _SALT)): a well-mixed hash of an index, the same everywhere
_SALTS = itertools.repeat(_SALT)
_HELD = "_trainperf_sampled"  # on a DataLoader iterator: (its _sampler_iter, its pass)
_SHUFFLING = ("RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler")


# -- recording ----------------------------------------------------------------------------


def _key(value: object) -> int:
    """An index as an int that hashes alike in every process (a str's hash does not)."""
    if type(value) is int:
        return value
    index = getattr(value, "__index__", None)
    if callable(index):
        try:
            return int(index())  # numpy integers, integer tensors
        except (TypeError, ValueError, RuntimeError):
            pass
    return int.from_bytes(hashlib.blake2b(repr(value).encode(), digest_size=8).digest(), "big")


def _indices(index: object) -> tuple[object, ...]:
    """The samples of one index the sampler yielded: a batch's list, or one index."""
    if type(index) is list or type(index) is tuple:
        return tuple(index)
    if isinstance(index, Iterable) and not isinstance(index, str | bytes | dict):
        try:
            return tuple(index)  # an array or a tensor of indices
        except TypeError:  # a 0-d tensor
            pass
    return (index,)


def _first_array(batch: object, depth: int = 0) -> Any:
    if hasattr(batch, "shape") and hasattr(batch, "reshape"):
        return batch
    if depth >= 4:
        return None
    items: Any = batch.values() if isinstance(batch, dict) else batch
    if not isinstance(items, list | tuple) and not isinstance(batch, dict):
        return None
    for item in items:
        found = _first_array(item, depth + 1)
        if found is not None:
            return found
    return None


def _content(batch: object) -> str | None:
    """A digest of a batch's first values: the same indices on two ranks read the same
    data only where these agree (each rank may load a dataset of its own)."""
    array = _first_array(batch)
    device = getattr(getattr(array, "device", None), "type", "cpu")
    if array is None or device != "cpu":  # never a copy from a device
        return None
    try:
        while getattr(array, "ndim", 0) > 1:
            array = array[0]  # a view: never a copy of the batch
        values = (array[:32] if getattr(array, "ndim", 0) else array).tolist()
    except (AttributeError, IndexError, TypeError, RuntimeError, ValueError):
        return None
    return hashlib.blake2b(repr(values).encode(), digest_size=8).hexdigest()


class _Pass:
    """One pass of one loader, as it is recorded."""

    def __init__(self, iterator: Any, dataset: int, number: int) -> None:
        index_sampler = iterator._index_sampler
        inner = getattr(index_sampler, "sampler", None)
        sampler = inner if hasattr(inner, "__iter__") else index_sampler
        name = type(sampler).__name__
        shuffle = getattr(sampler, "shuffle", None)
        if name in _SHUFFLING:
            shuffle = True
        elif name == "SequentialSampler":
            shuffle = False
        self.dataset = dataset
        self.number = number
        self.head: JsonObject = {
            "dataset": type(iterator._dataset).__name__,
            "pass": number,
            "sampler": name,
            "shuffle": shuffle if isinstance(shuffle, bool) else None,
            "epoch": _int(getattr(sampler, "epoch", None)),
            "num_replicas": _int(getattr(sampler, "num_replicas", None)),
            "rank": _int(getattr(sampler, "rank", None)),
            "dataset_len": _length(iterator._dataset),
            "sampler_len": _length(sampler),
            "in_order": bool(getattr(iterator, "_in_order", True)),
        }
        self.detailed = number < DETAILED_PASSES
        self.kept = KEPT_BATCHES if self.detailed else ORDER_BATCHES
        self.pending: collections.deque[tuple[object, ...] | None] = collections.deque()
        self.dispatched = 0
        self.batches = 0
        self.samples = 0
        self.indexed = True
        self.plain: bool | None = None  # every index a plain int (the fast path)
        self.hashes: list[int] = []
        self.sketch: set[int] = set()
        self.limit: int | None = None  # the sketch's k-th smallest hash, once it was full
        self.first: str | None = None
        self.trained = False  # the training loader while this pass was read

    def dispatch(self, index: object) -> None:
        self.dispatched += 1
        if type(index) is list:  # a BatchSampler's
            self.pending.append(tuple(index))
        elif index is None:  # an IterableDataset: no sampler indices
            self.indexed = False
            self.pending.append(None)
        else:
            self.pending.append(_indices(index))

    def consume(self, batch: object, train_loader: int | None) -> None:
        if train_loader == self.dataset:
            self.trained = True
        if not self.pending:
            return  # dispatched before the audit began
        found = self.pending.popleft()
        if self.batches == 0:
            self.first = _content(batch)
        self.batches += 1
        if not found:
            return
        if self.plain is None:
            self.plain = all(type(i) is int for i in found)
        if not self.plain or type(found[0]) is not int:
            found = tuple(map(_key, found))
        self.samples += len(found)
        if len(self.hashes) < self.kept:
            self.hashes.append(hash(found))
        if not self.detailed:
            return
        hashed = map(hash, zip(found, _SALTS, strict=False))
        limit = self.limit
        self.sketch.update(hashed if limit is None else [h for h in hashed if h < limit])
        if len(self.sketch) > 2 * SKETCH_K:  # amortised: a sort every SKETCH_K new hashes
            self._trim()

    def _trim(self) -> None:
        kept = sorted(self.sketch)[:SKETCH_K]
        self.sketch = set(kept)
        self.limit = kept[-1]

    def to_json(self, role: str) -> JsonObject:
        if len(self.sketch) > SKETCH_K:
            self._trim()
        return {
            "loader": role,
            **self.head,
            "indexed": self.indexed,
            "dispatched": self.dispatched,
            "batches": self.batches,
            "samples": self.samples,
            "first_batch": self.first,
            "batch_hashes": list[Json](self.hashes),
            "sketch": list[Json](sorted(self.sketch)),
            "sketch_exact": self.detailed and self.limit is None,
        }


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _length(value: object) -> int | None:
    try:
        return len(value)  # type: ignore[arg-type]
    except Exception:  # a user's sampler or dataset: whatever it raises, no length
        return None


class SampleRecorder:
    """The passes of every DataLoader, as :func:`~.hooks.instrument` feeds them."""

    def __init__(self) -> None:
        self._passes: list[_Pass] = []
        self._count: collections.Counter[int] = collections.Counter()  # by dataset id

    def dispatched(self, iterator: Any, index: object) -> None:
        """The sampler yielded ``index`` for ``iterator`` (``_next_index``)."""
        held = iterator.__dict__.get(_HELD)
        if held is None or held[0] is not iterator._sampler_iter:
            dataset = id(iterator._dataset)
            held = (iterator._sampler_iter, _Pass(iterator, dataset, self._count[dataset]))
            self._count[dataset] += 1
            self._passes.append(held[1])
            # Held by the iterator: released with it, so a stopped pass's sampler state
            # (a permutation of the dataset) is not kept; compared by identity, not id().
            iterator.__dict__[_HELD] = held
        held[1].dispatch(index)

    def consumed(self, iterator: Any, batch: object, train_loader: int | None = None) -> None:
        """``iterator.__next__`` returned ``batch``: the oldest index dispatched.
        ``train_loader``: the dataset id of the loader the last optimizer step trained
        on (a loop that builds its loader every epoch has several in turn)."""
        held = iterator.__dict__.get(_HELD)
        if held is not None and held[0] is iterator._sampler_iter:
            held[1].consume(batch, train_loader)

    def failed(self, iterator: Any) -> None:
        """``iterator.__next__`` raised building the oldest index dispatched: dropped."""
        held = iterator.__dict__.get(_HELD)
        if held is not None and held[0] is iterator._sampler_iter and held[1].pending:
            held[1].pending.popleft()

    def write(self, folder: Path, *, train_loader: int | None) -> None:
        """``sample_audit.jsonl``: each pass that returned a batch, with its role
        (training: it was the training loader while read, or is it at the end)."""
        lines = [
            json.dumps(
                p.to_json("training" if p.trained or p.dataset == train_loader else "validation")
            )
            for p in self._passes
            if p.batches
        ]
        (folder / SAMPLE_AUDIT_FILE).write_text("".join(f"{x}\n" for x in lines), "utf-8")


# -- the records, read back ---------------------------------------------------------------


@dataclass(frozen=True)
class PassRecord:
    """One line of ``sample_audit.jsonl``."""

    loader: str  # "training" or "validation"
    dataset: str
    number: int  # the loader's passes before this one
    sampler: str
    shuffle: bool | None
    epoch: int | None  # a DistributedSampler's ``epoch`` as the pass began
    num_replicas: int | None
    rank: int | None
    dataset_len: int | None
    sampler_len: int | None  # samples the sampler yields per pass
    in_order: bool
    indexed: bool
    dispatched: int
    batches: int
    samples: int
    first_batch: str | None
    batch_hashes: tuple[int, ...]
    sketch: tuple[int, ...]
    sketch_exact: bool

    @classmethod
    def from_json(cls, data: JsonObject) -> PassRecord:
        return cls(
            loader=req_str(data, "loader"),
            dataset=req_str(data, "dataset"),
            number=req_int(data, "pass"),
            sampler=req_str(data, "sampler"),
            shuffle=_bool(data.get("shuffle")),
            epoch=opt_int(data, "epoch"),
            num_replicas=opt_int(data, "num_replicas"),
            rank=opt_int(data, "rank"),
            dataset_len=opt_int(data, "dataset_len"),
            sampler_len=opt_int(data, "sampler_len"),
            in_order=data.get("in_order") is not False,
            indexed=data.get("indexed") is not False,
            dispatched=req_int(data, "dispatched"),
            batches=req_int(data, "batches"),
            samples=req_int(data, "samples"),
            first_batch=opt_str(data, "first_batch"),
            batch_hashes=_ints(req_list(data, "batch_hashes")),
            sketch=_ints(req_list(data, "sketch")),
            sketch_exact=data.get("sketch_exact") is True,
        )


def _bool(value: Json) -> bool | None:
    return value if isinstance(value, bool) else None


def _ints(values: list[Json]) -> tuple[int, ...]:
    return tuple(v for v in values if isinstance(v, int) and not isinstance(v, bool))


def read_sample_audit(folder: Path) -> tuple[PassRecord, ...] | None:
    """A run folder's passes; None where it has no audit (an older trainperf's run)."""
    path = folder / SAMPLE_AUDIT_FILE
    if not path.is_file():
        return None
    return read_lines(path, "sample audit", PassRecord.from_json)


# -- the analysis (sample_audit_analysis), from here ----------------------------------------


def audit_folders(folders: Sequence[Path]) -> SampleAudit:
    """The audit of a run's rank folders (one folder: a single process): see
    :func:`.sample_audit_analysis.audit_folders`."""
    from trainperf.monitoring.sample_audit_analysis import audit_folders as audit

    return audit(folders)


def with_audit(summary: RunSummary, folders: Sequence[Path]) -> RunSummary:
    """``summary`` with the input audit of ``folders`` and its findings (unchanged where
    the run recorded no audit)."""
    from trainperf.monitoring.sample_audit_analysis import with_audit as audited

    return audited(summary, folders)
