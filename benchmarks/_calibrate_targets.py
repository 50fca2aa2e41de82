"""The three datasets of benchmarks/calibrate.py, each with a model and a loss, so that
trainperf and the other tuners time the same training step."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

IO_FILES = 1024
IO_LATENCY_S = 0.004  # per file: a network file system or an object store


class FileDataset(Dataset):
    """Samples stored one per .npy file, each read with a fixed latency (a sleep: the
    process waits, as on remote storage, using no CPU)."""

    def __init__(self, folder: str, latency_s: float = IO_LATENCY_S) -> None:
        self.files = sorted(str(p) for p in Path(folder).glob("*.npy"))
        self.latency_s = latency_s

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(self.latency_s)
        array = np.load(self.files[i])
        return torch.from_numpy(array), torch.tensor(float(array.mean()))


def write_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(IO_FILES):
        np.save(folder / f"{i:05d}.npy", rng.standard_normal(4096, dtype=np.float32))


class IoModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Sequential(
            torch.nn.Linear(4096, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)[:, 0]


def spec(name: str, scratch: Path) -> dict:
    """dataset, collate_fn, batch_size, make_model(), make_optimizer(model), loss(model, batch)."""
    if name == "ocr":
        from trainperf.examples.ocr.calibration import loader
        from trainperf.examples.ocr.config import ModelSchema
        from trainperf.examples.ocr.lightning_module import DBModule
        from trainperf.examples.ocr.loss import db_loss

        target = loader()
        return {
            **target,
            "make_model": lambda: DBModule(ModelSchema()),
            "make_optimizer": lambda m: m.configure_optimizers(),
            "loss": lambda m, b: db_loss(m(b.images), b.maps)["loss"],
            "max_workers": 4,
        }
    if name == "digits":
        from trainperf.examples.digits.calibration import loader
        from trainperf.examples.digits.config import ModelSchema
        from trainperf.examples.digits.model import DigitsCNN

        schema = ModelSchema()
        return {
            **loader(),
            "make_model": lambda: DigitsCNN(channels=schema.channels, hidden=schema.hidden),
            "make_optimizer": lambda m: torch.optim.Adam(m.parameters(), lr=schema.lr),
            "loss": lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1]),
            "max_workers": 4,
        }
    if name == "io":
        folder = scratch / "files"
        if not folder.exists():
            write_files(folder)
        return {
            "dataset": FileDataset(str(folder)),
            "batch_size": 16,
            "collate_fn": None,
            "make_model": IoModel,
            "make_optimizer": lambda m: torch.optim.SGD(m.parameters(), lr=1e-3),
            "loss": lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]),
            "max_workers": 16,
        }
    raise SystemExit(f"unknown dataset {name!r}")


def train_step(target: dict):
    torch.manual_seed(0)
    model = target["make_model"]()
    optimizer = target["make_optimizer"](model)
    loss = target["loss"]

    def step(batch) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss(model, batch).backward()
        optimizer.step()

    return step
