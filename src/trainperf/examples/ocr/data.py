"""Datasets, collate functions and the Lightning DataModule of the OCR example.

Pages are rendered on demand from ``(seed, index)`` (the "decode" cost of a real
dataset). Training samples carry their label maps, built in ``__getitem__``, so
DataLoader workers share that work. Validation samples carry only the image and the
word polygons; the naive validation collate rebuilds every page's label maps on
every batch, as DBNet-style ``db_collate_fn`` implementations do. With
``data.cache=true`` both get their maps from the preprocessing cache
(:class:`trainperf.cache.CachedDataset`): built once per page, code and settings,
then read by every worker, process and later run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from trainperf.examples.ocr.labels import make_label_maps
from trainperf.examples.ocr.synth import PageSpec, render_page

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    from numpy.typing import NDArray

    from trainperf.cache import CachedDataset
    from trainperf.examples.ocr.config import DataConfig

__all__ = ["OCRDataModule", "PageDataset", "PageSample", "collate_pages"]

# Validation pages are drawn from a seed range no training page uses.
_VAL_SEED_OFFSET = 1_000_000


@dataclass(frozen=True)
class PageSample:
    image: torch.Tensor  # 3 x H x W float32 in [0, 1]
    polygons: tuple[NDArray[np.float32], ...]
    maps: dict[str, torch.Tensor] | None  # H x W each, when built per sample


class PageDataset(Dataset[PageSample]):
    """``count`` synthetic pages; page ``i`` is always the same picture."""

    def __init__(
        self,
        *,
        count: int,
        seed: int,
        spec: PageSpec,
        with_maps: bool,
        fast_maps: bool,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.count = count
        self.seed = seed
        self.spec = spec
        self.with_maps = with_maps
        self.fast_maps = fast_maps
        # data.cache=true: each page (image, polygons, label maps) built once, then read.
        self.cache: CachedDataset | None = None
        if cache_dir is not None:
            from trainperf.cache import BITS, CachedDataset

            self.cache = CachedDataset(
                _PageIds(self),
                functools.partial(built_page, fast=fast_maps),
                cache_dir=cache_dir,
                codec={"shrink": BITS, "shrink_mask": BITS, "threshold_mask": BITS},
            )

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> PageSample:
        if not 0 <= index < self.count:
            raise IndexError(f"page {index} out of range 0..{self.count - 1}")
        if self.cache is not None:
            return _from_cache(self.cache[index])
        page = render_page(self.spec, self.seed * 7_919 + index)
        image = torch.tensor(page.image).permute(2, 0, 1).float().div_(255.0)
        maps = None
        if self.with_maps:
            built = make_label_maps(
                page.polygons, self.spec.height, self.spec.width, fast=self.fast_maps
            )
            maps = {k: torch.from_numpy(v) for k, v in built.as_dict().items()}
        return PageSample(image, page.polygons, maps)


def built_page(page: tuple[PageSpec, int], *, fast: bool) -> dict[str, NDArray[np.generic]]:
    """What the cache keeps of a page: the image, its word polygons (concatenated, with
    their sizes) and its label maps."""
    import numpy as np

    spec, seed = page
    rendered = render_page(spec, seed)
    maps = make_label_maps(rendered.polygons, spec.height, spec.width, fast=fast).as_dict()
    points = (
        np.concatenate(rendered.polygons) if rendered.polygons else np.zeros((0, 2), np.float32)
    )
    sizes = np.array([len(p) for p in rendered.polygons], dtype=np.int32)
    return {"image": rendered.image, "points": points, "sizes": sizes, **maps}


def _from_cache(value: object) -> PageSample:
    import numpy as np

    assert isinstance(value, dict)
    value = dict(value)  # taken apart below; the cache's own dict stays whole
    image = torch.from_numpy(value.pop("image")).permute(2, 0, 1).float().div_(255.0)
    sizes = value.pop("sizes")
    polygons = tuple(np.split(value.pop("points"), np.cumsum(sizes)[:-1])) if len(sizes) else ()
    return PageSample(image, polygons, {k: torch.from_numpy(v) for k, v in value.items()})


class _PageIds:
    """What identifies each page: its spec and its seed (cheap; the cache's key)."""

    def __init__(self, pages: PageDataset) -> None:
        self.count, self.seed, self.spec = pages.count, pages.seed, pages.spec

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[PageSpec, int]:
        return self.spec, self.seed * 7_919 + index


@dataclass  # not frozen: Lightning moves batches to the device field by field
class PageBatch:
    images: torch.Tensor  # N x 3 x H x W
    polygons: tuple[tuple[NDArray[np.float32], ...], ...]
    maps: dict[str, torch.Tensor]  # N x H x W each

    def pin_memory(self) -> PageBatch:
        """Lets ``DataLoader(pin_memory=True)`` pin a custom batch type."""
        return PageBatch(
            self.images.pin_memory(),
            self.polygons,
            {k: v.pin_memory() for k, v in self.maps.items()},
        )


def collate_pages(samples: list[PageSample], *, fast_maps: bool = False) -> PageBatch:
    """Stack samples; pages without maps get them built here, on every call."""
    images = torch.stack([s.image for s in samples])
    height, width = images.shape[-2:]
    per_page = []
    for sample in samples:
        if sample.maps is not None:
            per_page.append(sample.maps)
        else:
            built = make_label_maps(sample.polygons, height, width, fast=fast_maps)
            per_page.append({k: torch.from_numpy(v) for k, v in built.as_dict().items()})
    maps = {key: torch.stack([m[key] for m in per_page]) for key in per_page[0]}
    return PageBatch(images, tuple(s.polygons for s in samples), maps)


class _Collate:
    """A picklable collate function (DataLoader workers may be spawned)."""

    def __init__(self, fast_maps: bool) -> None:
        self.fast_maps = fast_maps

    def __call__(self, samples: list[PageSample]) -> PageBatch:
        return collate_pages(samples, fast_maps=self.fast_maps)


class OCRDataModule(L.LightningDataModule):
    def __init__(self, config: DataConfig) -> None:
        super().__init__()
        self.config = config
        cache_dir = None
        if config.cache:
            from trainperf.settings import Settings

            cache_dir = config.cache_dir or str(Settings.from_env().home() / "cache" / "ocr-maps")
        spec = PageSpec(
            height=config.height,
            width=config.width,
            min_words=config.min_words,
            max_words=config.max_words,
            min_font=config.min_font,
            max_font=config.max_font,
            max_angle=config.max_angle,
            noise=config.noise,
        )
        self.train_set = PageDataset(
            count=config.train_pages,
            seed=config.seed,
            spec=spec,
            with_maps=True,
            fast_maps=config.fast_maps,
            cache_dir=cache_dir,
        )
        self.val_set = PageDataset(
            count=config.val_pages,
            seed=config.seed + _VAL_SEED_OFFSET,
            spec=spec,
            with_maps=False,
            fast_maps=config.fast_maps,
            cache_dir=cache_dir,
        )

    def _loader(self, dataset: PageDataset, *, shuffle: bool) -> DataLoader[PageSample]:
        collate = _Collate(self.config.fast_maps)
        if self.config.calibrated:
            import trainperf

            found = trainperf.calibrate(
                dataset, batch_size=self.config.batch_size, collate_fn=collate, calibrate=False
            )
            loader = found.loader(dataset, shuffle=shuffle, drop_last=shuffle, collate_fn=collate)
            return loader  # type: ignore[return-value]  # a DataLoader of this dataset's samples
        workers = self.config.num_workers
        return DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            collate_fn=collate,
            persistent_workers=workers > 0,
            pin_memory=self._on_gpu(),
            drop_last=shuffle,
        )

    def _on_gpu(self) -> bool:
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def train_dataloader(self) -> DataLoader[PageSample]:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader[PageSample]:
        return self._loader(self.val_set, shuffle=False)
