"""The examples' Hydra configuration: overrides compose to the right types, and
validation rejects what would only fail later (after torch has loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import trainperf.examples.digits.config as digits_config
import trainperf.examples.ocr.config as ocr_config
from trainperf.errors import UsageError

EXAMPLES = Path(ocr_config.__file__).parent.parent


def ocr(*overrides: str) -> ocr_config.OCRConfig:
    ocr_config.register()
    with initialize_config_dir(str(EXAMPLES / "ocr" / "conf"), version_base="1.3"):
        config = OmegaConf.to_object(compose("config", overrides=list(overrides)))
    assert isinstance(config, ocr_config.OCRConfig)
    return config


def digits(*overrides: str) -> digits_config.DigitsConfig:
    digits_config.register()
    with initialize_config_dir(str(EXAMPLES / "digits" / "conf"), version_base="1.3"):
        config = OmegaConf.to_object(compose("config", overrides=list(overrides)))
    assert isinstance(config, digits_config.DigitsConfig)
    return config


def test_ocr_defaults_are_the_naive_settings() -> None:
    config = ocr()
    assert config.data.num_workers == 0
    assert config.data.fast_maps is False
    assert config.data.cache is False
    assert config.trainer.devices == 1
    ocr_config.validate(config)


@pytest.mark.parametrize(
    ("override", "field", "value"),
    [
        ("trainer.limit_val_batches=1", "limit_val_batches", 1),  # one batch, an int
        ("trainer.limit_val_batches=0.25", "limit_val_batches", 0.25),
        ("trainer.devices=[0,1]", "devices", [0, 1]),
        ("trainer.deterministic=warn", "deterministic", "warn"),
        ("trainer.max_steps=3", "max_steps", 3),
    ],
)
def test_trainer_passthroughs_keep_their_types(override, field, value) -> None:
    got = getattr(ocr(override).trainer, field)
    assert got == value
    assert type(got) is type(value)


def test_switches_compose() -> None:
    config = ocr("data.num_workers=2", "data.fast_maps=true", "data.cache=true")
    assert (config.data.num_workers, config.data.fast_maps, config.data.cache) == (2, True, True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.train_pages=4", "data.batch_size=8"], "data.train_pages must be >= data.batch"),
        (["data.seed=-1"], "seeds must be >= 0"),
        (["model.neck=2"], "model.neck must be >= 4, got 2"),
        (["model.widths=[16,0,32,32]"], "model.widths must list 4 positive widths"),
        (["trainer.limit_val_batches=1.5"], "trainer.limit_*_batches must be a count"),
        (["trainer.max_epochs=-1"], "trainer.max_epochs or trainer.max_steps must be >= 1"),
        (["data.max_font=5"], "need 6 <= data.min_font <= data.max_font"),
    ],
)
def test_ocr_validation(overrides, message) -> None:
    with pytest.raises(UsageError, match=message.replace("*", r"\*")):
        ocr_config.validate(ocr(*overrides))


def test_digits_loop_group_switches_to_the_legacy_settings() -> None:
    assert (digits().loop.name, digits().data.num_workers) == ("lightning", 0)
    manual = digits("loop=manual")
    assert (manual.loop.name, manual.data.num_workers) == ("manual", 4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loop.name=fancy"], "loop must be one of lightning, manual, got fancy"),
        (["model.hidden=0"], "model.hidden must be >= 1, got 0"),
        (["data.test_fraction=1.5"], "data.test_fraction must be between 0 and 1"),
    ],
)
def test_digits_validation(overrides, message) -> None:
    with pytest.raises(UsageError, match=message):
        digits_config.validate(digits(*overrides))
