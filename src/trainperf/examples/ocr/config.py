"""The OCR example's configuration schema (Hydra structured configs), torch-free.

Types are checked by OmegaConf when Hydra composes the configuration, so a bad
override such as ``trainer.max_epochs=abc`` fails before anything heavy is
imported; :func:`validate` then checks the ranges that types cannot express.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from trainperf.errors import UsageError

__all__ = ["DataConfig", "ModelSchema", "OCRConfig", "TrainerConfig", "register", "validate"]


@dataclass
class DataConfig:
    train_pages: int = 256
    val_pages: int = 64
    height: int = 256
    width: int = 256
    min_words: int = 3
    max_words: int = 8
    batch_size: int = 8
    num_workers: int = 0
    # Naive on purpose: the reference border map, and validation label maps rebuilt
    # in the collate function on every batch, as a typical DBNet pipeline does.
    fast_maps: bool = False
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
    limit_train_batches: float = 1.0
    limit_val_batches: float = 1.0
    check_val_every_n_epoch: int = 1
    num_sanity_val_steps: int = 0
    log_every_n_steps: int = 10
    accelerator: str = "auto"
    devices: str = "auto"
    precision: str = "32-true"
    enable_progress_bar: bool = True
    enable_checkpointing: bool = False
    logger: bool = False
    deterministic: bool = False


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
    data = config.data
    checks = [
        (data.train_pages >= 1, "data.train_pages must be >= 1", data.train_pages),
        (data.val_pages >= 1, "data.val_pages must be >= 1", data.val_pages),
        (data.batch_size >= 1, "data.batch_size must be >= 1", data.batch_size),
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
        (len(config.model.widths) == 4, "model.widths must list 4 widths", config.model.widths),
        (config.model.lr > 0, "model.lr must be > 0", config.model.lr),
        (
            config.trainer.max_epochs >= 1 or config.trainer.max_steps >= 1,
            "trainer.max_epochs or trainer.max_steps must be >= 1",
            (config.trainer.max_epochs, config.trainer.max_steps),
        ),
    ]
    for ok, rule, value in checks:
        if not ok:
            raise UsageError(f"{rule}, got {value}")
