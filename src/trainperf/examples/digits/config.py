"""The digits example's configuration schema (Hydra structured configs), torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from trainperf.examples._entry import first_failure

__all__ = ["DigitsConfig", "LoopConfig", "register", "validate"]

LOOPS = ("lightning", "manual")


@dataclass
class DataConfig:
    batch_size: int = 64
    num_workers: int = 0
    test_fraction: float = 0.2
    seed: int = 0


@dataclass
class ModelSchema:
    channels: int = 16
    hidden: int = 64
    lr: float = 3e-3


@dataclass
class TrainerConfig:
    max_epochs: int = 10
    max_steps: int = -1
    accelerator: str = "auto"
    enable_progress_bar: bool = True


@dataclass
class LoopConfig:
    """``lightning``: ``Trainer.fit``. ``manual``: a hand-written loop with a tqdm bar."""

    name: str = "lightning"


@dataclass
class DigitsConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSchema = field(default_factory=ModelSchema)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    seed: int = 0


def register() -> None:
    store = ConfigStore.instance()
    store.store(name="digits_schema", node=DigitsConfig)
    store.store(group="data", name="data_schema", node=DataConfig)
    store.store(group="model", name="model_schema", node=ModelSchema)
    store.store(group="trainer", name="trainer_schema", node=TrainerConfig)


def validate(config: DigitsConfig) -> None:
    checks = [
        (config.loop.name in LOOPS, f"loop must be one of {', '.join(LOOPS)}", config.loop.name),
        (config.data.batch_size >= 1, "data.batch_size must be >= 1", config.data.batch_size),
        (config.data.num_workers >= 0, "data.num_workers must be >= 0", config.data.num_workers),
        (
            0 < config.data.test_fraction < 1,
            "data.test_fraction must be between 0 and 1",
            config.data.test_fraction,
        ),
        (config.model.channels >= 1, "model.channels must be >= 1", config.model.channels),
        (config.model.hidden >= 1, "model.hidden must be >= 1", config.model.hidden),
        (config.data.seed >= 0, "data.seed must be >= 0", config.data.seed),
        (config.model.lr > 0, "model.lr must be > 0", config.model.lr),
        (
            config.trainer.max_epochs >= 1 or config.trainer.max_steps >= 1,
            "trainer.max_epochs or trainer.max_steps must be >= 1",
            (config.trainer.max_epochs, config.trainer.max_steps),
        ),
    ]
    first_failure(checks)
