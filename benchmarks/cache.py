"""What the preprocessing cache buys, on the OCR example's label maps.

    python benchmarks/cache.py [--pages 64] [--reads 300]

1. Read latency of one cached 640x640 page with its four maps (three 0/1 masks
   bit-packed, the threshold map float32), warm: the median of ``--reads`` lookups,
   next to building the maps (reference and fast implementations).
2. OCR validation with the naive settings (pages rendered and maps rebuilt in the
   collate, reference implementation) against ``data.cache=true`` once warm (each
   page's image, polygons and maps read from the cache): seconds per sample for the
   data alone (the loader) and for the whole validation step (loader, model,
   post-processing, metrics).
3. Precomputing the validation maps with 1 and with 2 processes.
4. Side by side, on the same function and pages, when installed: ``joblib.Memory``
   and Hugging Face ``datasets.map`` (``pip install datasets``): cold build time,
   warm read per page, bytes on disk.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from _machine import describe_machine
from trainperf.examples.ocr.labels import make_label_maps


def label_maps(polygons, *, height: int, width: int, fast: bool) -> dict:
    """One page's four label maps, the function every cache below stores."""
    return make_label_maps(polygons, height, width, fast=fast).as_dict()


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def pages(size: int, count: int, seed: int = 0):
    """(spec, the word polygons of ``count`` pages with 20-40 words)."""
    from trainperf.examples.ocr.synth import PageSpec, render_page

    spec = PageSpec(height=size, width=size, min_words=20, max_words=40, max_font=size // 10)
    return spec, [render_page(spec, seed + i).polygons for i in range(count)]


class Polygons:
    def __init__(self, polygons) -> None:
        self.polygons = polygons

    def __len__(self) -> int:
        return len(self.polygons)

    def __getitem__(self, i: int):
        return self.polygons[i]


def read_latency(scratch: Path, reads: int) -> dict[str, float]:
    from trainperf.cache import BITS, CachedDataset

    _, polygons = pages(640, 8)
    out = {}
    for fast in (False, True):
        started = time.perf_counter()
        for p in polygons:
            label_maps(p, height=640, width=640, fast=fast)
        out["build_fast_ms" if fast else "build_reference_ms"] = (
            (time.perf_counter() - started) / len(polygons) * 1e3
        )
    codec = {"shrink": BITS, "shrink_mask": BITS, "threshold_mask": BITS}
    fn = functools.partial(label_maps, height=640, width=640, fast=True)
    cache = CachedDataset(Polygons(polygons), fn, cache_dir=scratch / "latency", codec=codec)
    for i in range(len(polygons)):
        cache[i]  # build, then a first (checksummed) read
        cache[i]
    times = []
    for n in range(reads):
        started = time.perf_counter()
        cache.lookup(polygons[n % len(polygons)])
        times.append(time.perf_counter() - started)
    out["read_ms"] = statistics.median(times) * 1e3
    out["entry_bytes"] = folder_bytes(scratch / "latency" / "entries") / len(polygons)
    return out


def validation(scratch: Path, count: int) -> dict[str, float]:
    import lightning as L
    import torch

    from trainperf.examples.ocr.config import OCRConfig
    from trainperf.examples.ocr.data import OCRDataModule
    from trainperf.examples.ocr.lightning_module import DBModule

    def run(cache: bool) -> tuple[float, float]:
        config = OCRConfig()
        config.data.val_pages = count
        config.data.cache = cache
        config.data.cache_dir = str(scratch / "ocr-maps")
        data = OCRDataModule(config.data)
        loader = data.val_dataloader()
        started = time.perf_counter()
        for _ in loader:
            pass
        loading = (time.perf_counter() - started) / count
        torch.manual_seed(0)
        trainer = L.Trainer(
            logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu"
        )
        started = time.perf_counter()
        trainer.validate(DBModule(config.model), dataloaders=loader, verbose=False)
        return loading, (time.perf_counter() - started) / count

    naive = run(False)
    run(True)  # cold: builds the cache
    warm = run(True)
    return {
        "naive_data_ms": naive[0] * 1e3,
        "warm_data_ms": warm[0] * 1e3,
        "naive_step_ms": naive[1] * 1e3,
        "warm_step_ms": warm[1] * 1e3,
    }


def precompute(scratch: Path, count: int) -> dict[str, float]:
    from trainperf.cache import BITS, CachedDataset

    _, polygons = pages(256, count, seed=1000)
    fn = functools.partial(label_maps, height=256, width=256, fast=False)
    out = {}
    for workers in (0, 2):
        cache = CachedDataset(
            Polygons(polygons),
            fn,
            cache_dir=scratch / f"pre{workers}",
            codec={"shrink": BITS, "shrink_mask": BITS, "threshold_mask": BITS},
        )
        report = cache.precompute(num_workers=workers)
        out[f"workers{workers}_s"] = report.elapsed_s
    return out


def others(scratch: Path, count: int) -> dict[str, dict[str, float] | str]:
    _, polygons = pages(256, count, seed=2000)
    results: dict[str, dict[str, float] | str] = {}
    from trainperf.cache import BITS, CachedDataset

    def ours() -> dict[str, float]:
        fn = functools.partial(label_maps, height=256, width=256, fast=False)
        codec = {"shrink": BITS, "shrink_mask": BITS, "threshold_mask": BITS}
        started = time.perf_counter()
        cache = CachedDataset(Polygons(polygons), fn, cache_dir=scratch / "ours", codec=codec)
        for i in range(count):
            cache[i]
        cold = time.perf_counter() - started
        for i in range(count):
            cache[i]
        started = time.perf_counter()
        for i in range(count):
            cache[i]
        warm = (time.perf_counter() - started) / count
        return {"cold_s": cold, "read_ms": warm * 1e3, "bytes": folder_bytes(scratch / "ours")}

    results["trainperf"] = ours()
    try:
        import joblib
    except ImportError:
        results["joblib.Memory"] = "not installed"
    else:
        memory = joblib.Memory(scratch / "joblib", verbose=0)
        cached = memory.cache(label_maps)
        started = time.perf_counter()
        for p in polygons:
            cached(p, height=256, width=256, fast=False)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        for p in polygons:
            cached(p, height=256, width=256, fast=False)
        warm = (time.perf_counter() - started) / count
        results["joblib.Memory"] = {
            "cold_s": cold,
            "read_ms": warm * 1e3,
            "bytes": folder_bytes(scratch / "joblib"),
        }
    try:
        import datasets
    except ImportError:
        results["datasets.map"] = "not installed"
    else:
        import numpy as np

        table = datasets.Dataset.from_dict(
            {"polygons": [[p.tolist() for p in page] for page in polygons]}
        )

        def build(row):
            page = tuple(np.asarray(p, dtype=np.float32) for p in row["polygons"])
            return label_maps(page, height=256, width=256, fast=False)

        started = time.perf_counter()
        mapped = table.map(build, cache_file_name=str(scratch / "hf" / "maps.arrow"))
        cold = time.perf_counter() - started
        mapped = table.map(build, cache_file_name=str(scratch / "hf" / "maps.arrow"))
        mapped = mapped.with_format("numpy")
        started = time.perf_counter()
        for i in range(count):
            mapped[i]
        warm = (time.perf_counter() - started) / count
        results["datasets.map"] = {
            "cold_s": cold,
            "read_ms": warm * 1e3,
            "bytes": folder_bytes(scratch / "hf"),
        }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=64)
    parser.add_argument("--reads", type=int, default=300)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import logging

    logging.disable(logging.WARNING)
    print(f"machine: {describe_machine()}")
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        latency = read_latency(scratch, args.reads)
        print("\n1. one 640x640 page, four maps (three bit-packed masks, one float32 map)")
        print(
            f"   warm cached read {latency['read_ms']:.3f} ms (median of {args.reads}); building "
            f"them: reference {latency['build_reference_ms']:.1f} ms, fast "
            f"{latency['build_fast_ms']:.1f} ms; {latency['entry_bytes'] / 2**20:.2f} MiB per entry"
        )
        found = validation(scratch, args.pages)
        print(f"\n2. OCR validation, {args.pages} pages, per sample")
        print(
            f"   data: naive {found['naive_data_ms']:.1f} ms, cached {found['warm_data_ms']:.1f} "
            f"ms: {found['naive_data_ms'] / found['warm_data_ms']:.1f}x faster"
        )
        print(
            f"   whole validation step: naive {found['naive_step_ms']:.1f} ms, cached "
            f"{found['warm_step_ms']:.1f} ms: "
            f"{found['naive_step_ms'] / found['warm_step_ms']:.1f}x faster"
        )
        timed = precompute(scratch, args.pages)
        print(f"\n3. precompute {args.pages} pages of reference maps")
        print(
            f"   1 process {timed['workers0_s']:.2f} s, 2 processes {timed['workers2_s']:.2f} s: "
            f"{timed['workers0_s'] / timed['workers2_s']:.2f}x"
        )
        print(f"\n4. the same maps ({args.pages} pages, 256x256) through other caches")
        for name, result in others(scratch, args.pages).items():
            if isinstance(result, str):
                print(f"   {name:<14} {result}")
                continue
            print(
                f"   {name:<14} cold {result['cold_s']:.2f} s, warm read "
                f"{result['read_ms']:.3f} ms/page, {result['bytes'] / 2**20:.1f} MiB on disk"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
