"""The digits as in-memory tensors, split once into train and test sets."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

if TYPE_CHECKING:
    from trainperf.examples.digits.config import DataConfig

__all__ = ["digits_tensors", "make_loaders"]


def digits_tensors(test_fraction: float, seed: int) -> tuple[TensorDataset, TensorDataset]:
    """Images as N x 1 x 8 x 8 floats in [0, 1] and labels 0-9, split by ``seed``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(np.asarray(bunch.images, dtype=np.float32) / 16.0).unsqueeze(1)
    labels = torch.tensor(np.asarray(bunch.target, dtype=np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    cut = int(len(labels) * (1 - test_fraction))
    train, test = order[:cut], order[cut:]
    return TensorDataset(images[train], labels[train]), TensorDataset(images[test], labels[test])


def make_loaders(
    config: DataConfig,
) -> tuple[DataLoader[tuple[torch.Tensor, ...]], DataLoader[tuple[torch.Tensor, ...]]]:
    """The train loader (shuffled, last partial batch dropped) and the test loader."""
    train, test = digits_tensors(config.test_fraction, config.seed)
    return _loader(train, config, train=True), _loader(test, config, train=False)


def _loader(
    dataset: TensorDataset, config: DataConfig, *, train: bool
) -> DataLoader[tuple[torch.Tensor, ...]]:
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=train,
        drop_last=train,
        num_workers=config.num_workers,
        persistent_workers=config.num_workers > 0,
        pin_memory=torch.cuda.is_available(),  # both trainers use the GPU when there is one
    )
