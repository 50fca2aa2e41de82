"""The input audit's analysis: which samples each rank trained on, and in what order.

From each rank's ``sample_audit.jsonl`` (:mod:`.sample_audit`), :func:`audit_folders`
finds:

* ``rank-data-overlap`` -- (a) the same batch at the same position of the same epoch on
  the ranks (``IDENTICAL_SHARE`` of the positions); (b) every rank's sampler yields the
  whole dataset each pass (from the sampler's length, so a run stopped mid-epoch is
  judged as well); (c) samples shared between the ranks' passes of an epoch, estimated
  from the bottom-k sketches, ``OVERLAP_SHARE`` beyond what a distributed sampler's
  padding repeats. Where the ranks' first batches have the same indices but other data,
  each rank reads a dataset of its own: no overlap is judged.
* ``epoch-order-repeats`` -- a shuffling training sampler whose first ``ORDER_PREFIX``
  batches come in the same order in two epochs: ``sampler.set_epoch(epoch)`` never
  called (a ``DistributedSampler`` whose epoch never changed), else a generator seeded
  again each epoch.

What could not be checked is said (``not_checked``), as what was (``checked``).
"""

from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from trainperf.monitoring.sample_audit import PassRecord, read_sample_audit

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from trainperf._json import Json, JsonObject
    from trainperf.monitoring.analyze import Finding, RunSummary

__all__ = ["OrderRepeat", "Overlap", "SampleAudit", "audit_folders", "with_audit"]

ORDER_PREFIX = 2  # batches in the same order at the start of two epochs: a repeat
IDENTICAL_SHARE = 0.5  # of the positions compared, for identical batches
OVERLAP_SHARE = 0.05  # of the ranks' samples, shared beyond the sampler's padding
MIN_SKETCHED = 32  # sampled samples an overlap estimate needs

OverlapKind = Literal["identical-batches", "whole-dataset", "shared-samples"]


@dataclass(frozen=True)
class Overlap:
    """Ranks that trained on the same samples in the same epoch."""

    kind: OverlapKind
    ranks: tuple[int, ...]
    epochs: tuple[int, ...]  # the training loader's passes compared
    overlap_share: float  # of a rank's samples, also another rank's that epoch
    wasted_share: float  # of the ranks' samples, copies of one another's
    sampler: str
    identical_share: float | None = None  # positions whose batches are identical
    reads_per_epoch: float | None = None  # the dataset read this many times an epoch
    sampler_len: int | None = None
    dataset_len: int | None = None
    replicas: int | None = None  # the (distributed) sampler's num_replicas
    same_rank: int | None = None  # every rank's distributed sampler has this rank

    def to_json(self) -> JsonObject:
        return {
            "kind": self.kind,
            "ranks": list(self.ranks),
            "epochs": list(self.epochs),
            "overlap_share": round(self.overlap_share, 4),
            "wasted_share": round(self.wasted_share, 4),
            "sampler": self.sampler,
            "identical_share": _round(self.identical_share),
            "reads_per_epoch": _round(self.reads_per_epoch),
            "sampler_len": self.sampler_len,
            "dataset_len": self.dataset_len,
        }


@dataclass(frozen=True)
class OrderRepeat:
    """A shuffling training loader whose epochs begin with the same batches."""

    ranks: tuple[int, ...]
    epochs: tuple[int, int]  # the first two passes found with the same first batches
    repeating: int  # passes whose first batches repeat an earlier pass's
    passes: int  # passes compared
    prefix: int  # batches in the same order at the start of those two
    sampler: str
    sampler_epoch: int | None  # a DistributedSampler's epoch, the same in every pass

    def to_json(self) -> JsonObject:
        return {
            "ranks": list(self.ranks),
            "epochs": list(self.epochs),
            "repeating": self.repeating,
            "passes": self.passes,
            "prefix_batches": self.prefix,
            "sampler": self.sampler,
            "sampler_epoch": self.sampler_epoch,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass(frozen=True)
class SampleAudit:
    """What the ranks' samples show: checked, found, and what could not be checked."""

    ranks: int
    recorded: bool  # some rank has an audit (a run of an older trainperf has none)
    training: tuple[PassRecord | None, ...]  # each rank's first training pass
    checked: tuple[str, ...] = ()
    not_checked: tuple[str, ...] = ()
    overlap: Overlap | None = None
    order: OrderRepeat | None = None

    def to_json(self) -> JsonObject:
        loaders: list[Json] = [
            {
                "rank": rank,
                "dataset": p.dataset,
                "sampler": p.sampler,
                "shuffle": p.shuffle,
                "dataset_len": p.dataset_len,
                "sampler_len": p.sampler_len,
                "num_replicas": p.num_replicas,
            }
            for rank, p in enumerate(self.training)
            if p is not None
        ]
        return {
            "ranks": self.ranks,
            "training_loaders": loaders,
            "checked": list(self.checked),
            "not_checked": list(self.not_checked),
            "overlap": None if self.overlap is None else self.overlap.to_json(),
            "order": None if self.order is None else self.order.to_json(),
            "findings": [
                {"kind": s.kind, "title": s.title, "evidence": list(s.said)} for s in self._said()
            ],
        }

    def findings(self) -> list[Finding]:
        """The monitor's findings: ``rank-data-overlap``, ``epoch-order-repeats``."""
        from trainperf.monitoring.analyze import Finding

        return [Finding(s.kind, s.figures, s.fix, s.gain) for s in self._said()]

    def _said(self) -> list[_Said]:
        out = []
        if self.overlap is not None:
            out.append(_overlap_said(self.overlap))
        if self.order is not None:
            out.append(_order_said(self.order))
        return out


@dataclass(frozen=True)
class _Said:
    """A finding in figures (the monitor's evidence) and in words (the reports')."""

    kind: str
    title: str  # names the fix
    said: tuple[str, ...]
    figures: dict[str, float]
    fix: str
    gain: str


def _sharding_fix(o: Overlap, what: str, why: str) -> tuple[str, str]:
    """The title and the fix for ranks that read the same data: the sampler to use, or,
    for a distributed sampler given the wrong world, the arguments to leave out."""
    if o.replicas is not None:  # a DistributedSampler, told the wrong world or rank
        told = f"num_replicas={o.replicas}" + (
            f", rank={o.same_rank}" if o.same_rank is not None else ""
        )
        return (
            "every rank's DistributedSampler draws the same shard: leave num_replicas and rank out",
            f"every rank's {o.sampler} was given {told} ({what}): leave num_replicas and rank "
            "out (DistributedSampler(dataset) reads them from the process group), so that "
            "each rank draws its own shard",
        )
    return (
        f"{what}: use DistributedSampler(dataset) for the training loader",
        "use DistributedSampler(dataset) for the training loader: DataLoader(dataset, "
        "sampler=DistributedSampler(dataset, shuffle=True)), shuffle=True moved from the "
        "DataLoader to the sampler, and sampler.set_epoch(epoch) before each epoch; each "
        f"rank then reads its own 1/world of the data ({what}: {why})",
    )


def _overlap_said(o: Overlap) -> _Said:
    world = len(o.ranks)
    figures = {
        "ranks": float(world),
        "epochs_compared": float(len(o.epochs)),
        "overlap_share": round(o.overlap_share, 4),
        "wasted_share": round(o.wasted_share, 4),
    }
    if o.kind == "identical-batches":
        figures["identical_batch_share"] = round(o.identical_share or 0.0, 4)
        said = [
            f"ranks {_ranks(o.ranks)} read the same batch at {o.identical_share or 0:.0%} of the "
            f"positions compared ({_epoch_words(o.epochs)}), in the same order",
        ]
        title, fix = _sharding_fix(
            o,
            "every rank trains on the same batches",
            f"its {o.sampler} draws them in the same order on every rank (the same seed)",
        )
    elif o.kind == "whole-dataset":
        figures["reads_per_epoch"] = round(o.reads_per_epoch or 0.0, 4)
        said = [
            f"each rank's {o.sampler} yields {o.sampler_len} samples a pass of a dataset of "
            f"{o.dataset_len}: the {world} ranks read the data {o.reads_per_epoch or 0:.3g} "
            "times an epoch (unless each rank's dataset is a different shard)",
        ]
        title, fix = _sharding_fix(
            o,
            "every rank reads the whole dataset each epoch",
            f"its {o.sampler} yields {o.sampler_len} of {o.dataset_len} samples a pass",
        )
    else:
        said = [
            f"{o.overlap_share:.0%} of a rank's samples were also another rank's in the same "
            f"epoch ({_epoch_words(o.epochs)}; estimated from hashed samples), beyond what "
            "padding repeats",
        ]
        title = "the ranks' shards overlap: draw them with the same seed on every rank"
        fix = (
            f"draw the shards with the same seed on every rank ({o.sampler} shuffles with a "
            "different one on each, so its shards overlap), or use "
            "DistributedSampler(dataset, seed=S) and sampler.set_epoch(epoch)"
        )
    said.append(
        f"{o.wasted_share:.0%} of the ranks' compute trains on samples another rank also "
        f"trained on that epoch (sampler: {o.sampler})"
    )
    gain = (
        f"{o.wasted_share:.0%} of the ranks' compute is spent on samples another rank also "
        f"trains on in the same epoch: with disjoint shards an epoch covers the data in "
        f"{1 - o.wasted_share:.0%} of the steps"
    )
    return _Said("rank-data-overlap", title, tuple(said), figures, fix, gain)


def _order_said(o: OrderRepeat) -> _Said:
    a, b = o.epochs
    said = [
        f"epochs {a} and {b} of the training loader begin with the same {o.prefix} batches in "
        f"the same order ({o.repeating} of {o.passes} epochs repeat an earlier one's start; "
        f"{'rank' if len(o.ranks) == 1 else 'ranks'} {_ranks(o.ranks)})",
    ]
    figures = {
        "ranks": float(len(o.ranks)),
        "repeated_batches": float(o.prefix),
        "epochs_repeating": float(o.repeating),
        "epochs_compared": float(o.passes),
    }
    if o.sampler_epoch is not None:
        said.append(f"the {o.sampler}'s epoch stayed {o.sampler_epoch} in every epoch")
        title = "call sampler.set_epoch(epoch) before each epoch"
        fix = (
            f"call sampler.set_epoch(epoch) before each epoch: {o.sampler} shuffles with "
            "seed + epoch, and its epoch never changed, so every epoch has the same order"
        )
    else:
        title = "every epoch has the same order: seed the generator once, not every epoch"
        fix = (
            f"seed once, before the epochs: the {o.sampler}'s generator (torch.manual_seed, "
            "DataLoader(generator=...)) is re-seeded each epoch, so every epoch has the same order"
        )
    gain = (
        "no speed-up: the same steps, each epoch in a new order (what shuffling is for; a "
        "repeated order can hurt generalisation)"
    )
    return _Said("epoch-order-repeats", title, tuple(said), figures, fix, gain)


def _count(ranks: int) -> str:
    return "1 rank" if ranks == 1 else f"{ranks} ranks"


def _ranks(ranks: Sequence[int]) -> str:
    return ", ".join(str(r) for r in ranks)


def audit_folders(folders: Sequence[Path]) -> SampleAudit:
    """The audit of a run's rank folders (one folder: a single process).

    Raises :class:`~trainperf.errors.RecordError` for a malformed ``sample_audit.jsonl``.
    """
    read = [read_sample_audit(f) for f in folders]
    # A rank's epochs: its training passes in turn (a loop may build its loader anew).
    trains = [
        dict(enumerate(p for p in passes if p.loader == "training" and p.indexed))
        for passes in (r or () for r in read)
    ]
    firsts = tuple(min(t.items())[1] if t else None for t in trains)
    audit = SampleAudit(
        ranks=len(folders), recorded=any(r is not None for r in read), training=firsts
    )
    if not audit.recorded:
        return audit
    checked: list[str] = []
    unchecked: list[str] = [f"rank {r}: no sample audit" for r, x in enumerate(read) if x is None]
    if not any(trains):
        iterable = any(p.loader == "training" and not p.indexed for r in read for p in r or ())
        unchecked.append(
            "the training loader reads an IterableDataset: no sampler indices to audit"
            if iterable
            else "no training loader identified: nothing to audit"
        )
        return dataclasses.replace(audit, not_checked=tuple(unchecked))
    overlap = None
    if len(folders) < 2:
        unchecked.append("overlap between ranks: a single process")
    elif not all(trains):
        unchecked.append("overlap between ranks: a rank without a training loader's passes")
    elif _own_datasets(trains):
        unchecked.append(
            "overlap between ranks: the same indices give other data on each rank (a dataset "
            "of its own per rank)"
        )
    else:
        overlap = _identical(trains, checked, unchecked) or _whole(trains, checked)
        overlap = overlap or _shared(trains, checked, unchecked)
    order = _order(trains, checked, unchecked)
    return dataclasses.replace(
        audit, checked=tuple(checked), not_checked=tuple(unchecked), overlap=overlap, order=order
    )


def _common(trains: Sequence[dict[int, PassRecord]]) -> list[int]:
    return sorted(set.intersection(*(set(t) for t in trains)))


def _own_datasets(trains: Sequence[dict[int, PassRecord]]) -> bool:
    """The same first batch of indices on two ranks with other data in it: each rank
    reads a dataset of its own, and the same indices are not the same samples."""
    for e in _common(trains):
        seen: dict[int, set[str]] = collections.defaultdict(set)
        for t in trains:
            digest = t[e].first_batch
            if t[e].batch_hashes and digest is not None:
                seen[t[e].batch_hashes[0]].add(digest)
        if any(len(digests) > 1 for digests in seen.values()):
            return True
    return False


def _identical(
    trains: Sequence[dict[int, PassRecord]], checked: list[str], unchecked: list[str]
) -> Overlap | None:
    """The same batch at the same position of the same epoch on several ranks."""
    common = _common(trains)
    epochs = [e for e in common if all(t[e].in_order for t in trains)]
    if len(epochs) < len(common):
        unchecked.append("batch positions of passes delivered out of order (in_order=False)")
    world = len(trains)
    positions = identical = matched = 0
    wasted = 0.0
    used = []
    for e in epochs:
        hashes = [t[e].batch_hashes for t in trains]
        length = min(len(h) for h in hashes)
        for column in zip(*(h[:length] for h in hashes), strict=True):
            distinct = len(set(column))
            positions += 1
            identical += distinct == 1
            matched += distinct < world
            wasted += (world - distinct) / world
        if length:
            used.append(e)
    if positions:
        checked.append(f"batches of {world} ranks, position by position ({positions} positions)")
    if positions < ORDER_PREFIX or matched < IDENTICAL_SHARE * positions:
        return None
    first = trains[0][used[0]]
    same = {t[used[0]].rank for t in trains}
    return Overlap(
        kind="identical-batches",
        ranks=tuple(range(world)),
        epochs=tuple(used),
        overlap_share=matched / positions,
        wasted_share=wasted / positions,
        sampler=first.sampler,
        identical_share=identical / positions,
        sampler_len=first.sampler_len,
        dataset_len=first.dataset_len,
        replicas=first.num_replicas,
        same_rank=same.pop() if len(same) == 1 else None,
    )


def _whole(trains: Sequence[dict[int, PassRecord]], checked: list[str]) -> Overlap | None:
    """Every rank's sampler yields the whole dataset each pass (known as a pass begins)."""
    firsts = [min(t.items())[1] for t in trains]
    lengths = {p.dataset_len for p in firsts}
    if None in lengths or any(p.sampler_len is None for p in firsts):
        return None
    checked.append("samples per pass against the dataset's length")
    dataset = lengths.pop() if len(lengths) == 1 else None
    if not dataset or any(
        (p.sampler_len or 0) < dataset or (p.num_replicas or 0) > 1 for p in firsts
    ):
        return None
    total = sum(p.sampler_len or 0 for p in firsts)
    return Overlap(
        kind="whole-dataset",
        ranks=tuple(range(len(trains))),
        epochs=tuple(sorted(set.union(*(set(t) for t in trains)))),
        overlap_share=1.0,
        wasted_share=1 - dataset / total,
        sampler=firsts[0].sampler,
        reads_per_epoch=total / dataset,
        sampler_len=firsts[0].sampler_len,
        dataset_len=dataset,
        replicas=firsts[0].num_replicas,
        same_rank=told.pop() if len(told := {p.rank for p in firsts}) == 1 else None,
    )


def _shared(
    trains: Sequence[dict[int, PassRecord]], checked: list[str], unchecked: list[str]
) -> Overlap | None:
    """Samples in more than one rank's pass of an epoch, from the bottom-k sketches: below
    the lowest of their thresholds every sketch holds all of its pass's hashes, a uniform
    sample of each pass's samples."""
    epochs = [e for e in _common(trains) if all(t[e].sketch for t in trains)]
    sums = unions = shared = 0
    used = []
    for e in epochs:
        passes = [t[e] for t in trains]
        limit = min(p.sketch[-1] if not p.sketch_exact else float("inf") for p in passes)
        sets = [{h for h in p.sketch if h <= limit} for p in passes]
        counted = sum(len(s) for s in sets)
        if counted < MIN_SKETCHED:
            continue
        union = set().union(*sets)
        sums, unions = sums + counted, unions + len(union)
        everywhere = collections.Counter(h for s in sets for h in s)
        shared += sum(1 for s in sets for h in s if everywhere[h] > 1)
        used.append(e)
    if not used:
        unchecked.append("samples shared between ranks: too few samples recorded in an epoch")
        return None
    checked.append(f"samples shared between ranks, from hashed samples, in {len(used)} epochs")
    first = trains[0][used[0]]
    padded = sum(t[used[0]].sampler_len or 0 for t in trains)
    padding = 1 - first.dataset_len / padded if first.dataset_len and padded else 0.0
    wasted = 1 - unions / sums
    if wasted - max(padding, 0.0) < OVERLAP_SHARE:
        return None
    return Overlap(
        kind="shared-samples",
        ranks=tuple(range(len(trains))),
        epochs=tuple(used),
        overlap_share=shared / sums,
        wasted_share=wasted,
        sampler=first.sampler,
        sampler_len=first.sampler_len,
        dataset_len=first.dataset_len,
    )


def _order(
    trains: Sequence[dict[int, PassRecord]], checked: list[str], unchecked: list[str]
) -> OrderRepeat | None:
    """Epochs of a shuffling training loader that begin with the same batches."""
    found = []
    compared = 0
    for rank, train in enumerate(trains):
        first = min(train.items())[1] if train else None
        if first is None or first.shuffle is not True:
            if first is not None and first.shuffle is None:
                unchecked.append(
                    f"order across epochs: the training sampler ({first.sampler}) does not say "
                    "whether it shuffles"
                )
            continue
        passes = {
            e: p
            for e, p in sorted(train.items())
            if p.in_order and len(p.batch_hashes) >= ORDER_PREFIX
        }
        if len(passes) < 2:
            unchecked.append(f"order across epochs: fewer than two epochs seen (rank {rank})")
            continue
        compared += 1
        repeat = _repeats(rank, passes)
        if repeat is not None:
            found.append(repeat)
    if compared:
        checked.append(f"the training loader's batch order across epochs ({_count(compared)})")
    if not found:
        return None
    return dataclasses.replace(found[0], ranks=tuple(r.ranks[0] for r in found))


def _repeats(rank: int, passes: dict[int, PassRecord]) -> OrderRepeat | None:
    """One rank's epochs whose first ``ORDER_PREFIX`` batches repeat an earlier one's."""
    starts: dict[tuple[int, ...], int] = {}
    pairs = [(starts.setdefault(p.batch_hashes[:ORDER_PREFIX], e), e) for e, p in passes.items()]
    pairs = [(a, b) for a, b in pairs if a != b]
    if not pairs:
        return None
    a, b = (passes[e] for e in pairs[0])
    same = [x == y for x, y in zip(a.batch_hashes, b.batch_hashes, strict=False)]
    still = a.epoch is not None and len({p.epoch for p in passes.values()}) == 1
    return OrderRepeat(
        ranks=(rank,),
        epochs=pairs[0],
        repeating=len(pairs),
        passes=len(passes),
        prefix=same.index(False) if False in same else len(same),
        sampler=a.sampler,
        sampler_epoch=a.epoch if still else None,
    )


def with_audit(summary: RunSummary, folders: Sequence[Path]) -> RunSummary:
    """``summary`` with the input audit of ``folders`` and its findings (unchanged where
    the run recorded no audit)."""
    audit = audit_folders(folders)
    if not audit.recorded:
        return summary
    return dataclasses.replace(
        summary,
        sample_audit=audit.to_json(),
        findings=(*summary.findings, *audit.findings()),
    )


def _epoch_words(epochs: Sequence[int]) -> str:
    """``(0,)`` -> ``"epoch 0"``; ``(0, 1)`` -> ``"epochs 0, 1"``."""
    listed = ", ".join(str(e) for e in epochs)
    return f"epoch {listed}" if len(epochs) == 1 else f"epochs {listed}"
