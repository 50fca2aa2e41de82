"""The OCR example's configuration schema (Hydra structured configs), torch-free.

Types are checked by OmegaConf when Hydra composes the configuration, so a bad
override such as ``trainer.max_epochs=abc`` fails before anything heavy is
imported; :func:`validate` then checks the ranges that types cannot express.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from trainperf.examples._entry import first_failure

__all__ = ["DataConfig", "ModelSchema", "OCRConfig", "TrainerConfig", "register", "validate"]


@dataclass
class DataConfig:
    train_pages: int = 256
    val_pages: int = 64
    height: int = 256
    width: int = 256
    min_words: int = 3
    max_words: int = 8
    min_font: int = 14
    max_font: int = 32
    max_angle: float = 20.0
    noise: float = 12.0
    batch_size: int = 8
    num_workers: int = 0
    # Naive on purpose: the reference border map, and validation label maps rebuilt
    # in the collate function on every batch, as a typical DBNet pipeline does.
    fast_maps: bool = False
    # Label maps (validation and training: no augmentation comes after them) from the
    # preprocessing cache (trainperf.cache), built once and shared by every worker,
    # process and run, in cache_dir (default: <TRAINPERF_HOME>/cache/ocr-maps).
    cache: bool = False
    cache_dir: str = ""
    # Loader settings from a stored calibration (trainperf calibrate, trainperf doctor
    # --apply) instead of num_workers; the static choice of detect_resources() if none.
    calibrated: bool = False
    seed: int = 0


@dataclass
class ModelSchema:
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 96])
    neck: int = 48
    lr: float = 2e-3
    weight_decay: float = 1e-4


@dataclass
class TrainerConfig:
    """Passed to ``lightning.Trainer`` as keyword arguments."""

    max_epochs: int = 5
    max_steps: int = -1
    # Any: Lightning reads an int as a number of batches and a float as a fraction
    # (1 is one batch, 1.0 is all of them); OmegaConf has no int-or-float type.
    limit_train_batches: Any = 1.0
    limit_val_batches: Any = 1.0
    check_val_every_n_epoch: int = 1
    num_sanity_val_steps: int = 0
    log_every_n_steps: int = 10
    accelerator: str = "auto"
    # One device unless asked: "auto" would start DDP on a multi-GPU machine. Any, as
    # Lightning takes an int, a list of ids or a string here.
    devices: Any = 1
    precision: str = "32-true"
    enable_progress_bar: bool = True
    enable_checkpointing: bool = False
    logger: bool = False
    deterministic: Any = False  # True, False or "warn"


@dataclass
class OCRConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSchema = field(default_factory=ModelSchema)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 0


def register() -> None:
    store = ConfigStore.instance()
    store.store(name="ocr_schema", node=OCRConfig)
    store.store(group="data", name="data_schema", node=DataConfig)
    store.store(group="model", name="model_schema", node=ModelSchema)
    store.store(group="trainer", name="trainer_schema", node=TrainerConfig)


def validate(config: OCRConfig) -> None:
    """Ranges and relations the types cannot say; raises :class:`UsageError`."""
    data, model, trainer = config.data, config.model, config.trainer
    checks = [
        (data.train_pages >= 1, "data.train_pages must be >= 1", data.train_pages),
        (data.val_pages >= 1, "data.val_pages must be >= 1", data.val_pages),
        (data.batch_size >= 1, "data.batch_size must be >= 1", data.batch_size),
        (
            data.train_pages >= data.batch_size,
            "data.train_pages must be >= data.batch_size (the last partial batch is dropped)",
            (data.train_pages, data.batch_size),
        ),
        (data.seed >= 0 and config.seed >= 0, "seeds must be >= 0", (data.seed, config.seed)),
        (
            6 <= data.min_font <= data.max_font,
            "need 6 <= data.min_font <= data.max_font",
            (data.min_font, data.max_font),
        ),
        (0 <= data.max_angle <= 90, "data.max_angle must be 0..90 degrees", data.max_angle),
        (data.noise >= 0, "data.noise must be >= 0", data.noise),
        (data.num_workers >= 0, "data.num_workers must be >= 0", data.num_workers),
        (
            data.height % 32 == 0 and data.height >= 64,
            "data.height must be a multiple of 32, at least 64",
            data.height,
        ),
        (
            data.width % 32 == 0 and data.width >= 64,
            "data.width must be a multiple of 32, at least 64",
            data.width,
        ),
        (
            1 <= data.min_words <= data.max_words,
            "need 1 <= data.min_words <= data.max_words",
            (data.min_words, data.max_words),
        ),
        (
            len(model.widths) == 4 and min(model.widths, default=0) >= 1,
            "model.widths must list 4 positive widths",
            model.widths,
        ),
        (model.neck >= 4, "model.neck must be >= 4", model.neck),
        (model.lr > 0, "model.lr must be > 0", model.lr),
        (
            trainer.max_epochs >= 1 or trainer.max_steps >= 1,
            "trainer.max_epochs or trainer.max_steps must be >= 1",
            (trainer.max_epochs, trainer.max_steps),
        ),
        (
            _is_limit(trainer.limit_train_batches) and _is_limit(trainer.limit_val_batches),
            "trainer.limit_*_batches must be a count (int >= 0) or a fraction (0.0..1.0)",
            (trainer.limit_train_batches, trainer.limit_val_batches),
        ),
    ]
    first_failure(checks)


def _is_limit(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, float) and 0.0 <= value <= 1.0
