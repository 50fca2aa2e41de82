"""The preprocessing cache: ``fn(base[i])`` computed once, shared by every reader.

    from trainperf.cache import CachedDataset, BITS, U8

    maps = CachedDataset(pages, build_maps, cache_dir="cache/maps", key=lambda p: p.polygons,
                         codec={"mask": BITS, "threshold": U8})
    maps[i]                 # computed on the first access anywhere, read after that
    maps.precompute(num_workers=4)
    maps.explain_miss(i)    # "code changed: mypkg.labels._border_map"

See :mod:`trainperf.cache.dataset` for the keys, the storage and their guarantees.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from trainperf.cache.codec import BITS, U8, BitPacked, Quantized
    from trainperf.cache.dataset import CachedDataset, PrecomputeReport, VerifyReport

__all__ = [
    "BITS",
    "U8",
    "BitPacked",
    "CachedDataset",
    "PrecomputeReport",
    "Quantized",
    "VerifyReport",
]

_HOMES = {
    "BITS": "trainperf.cache.codec",
    "U8": "trainperf.cache.codec",
    "BitPacked": "trainperf.cache.codec",
    "Quantized": "trainperf.cache.codec",
    "CachedDataset": "trainperf.cache.dataset",
    "PrecomputeReport": "trainperf.cache.dataset",
    "VerifyReport": "trainperf.cache.dataset",
}


def __getattr__(name: str) -> object:
    import importlib

    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'trainperf.cache' has no attribute {name!r}")
    value: object = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
