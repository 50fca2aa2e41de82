"""The text example's settings: parsed and checked before torch or transformers loads.

The Trainer's own settings keep their ``TrainingArguments`` names, so the flags are the
ones a Hugging Face script takes, and an overrides file written by ``trainperf doctor
--apply`` (a JSON object of ``TrainingArguments`` fields) is read with ``--overrides``.
Precedence: the defaults (naive, or ``--fixed``), then the overrides file, then flags.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal

from trainperf.errors import UsageError
from trainperf.examples._entry import first_failure

__all__ = ["TRAINER_FIELDS", "TextConfig", "parse"]

Tokenize = Literal["collator", "once"]


@dataclass(frozen=True)
class TextConfig:
    # The example's own.
    tokenize: Tokenize = "collator"
    documents: int = 512
    sentences: int = 500  # about 22 kB of text a document
    block_size: int = 128
    vocab_size: int = 2000
    layers: int = 2
    hidden: int = 64
    # TrainingArguments, by their names.
    per_device_train_batch_size: int = 16
    per_device_eval_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    num_train_epochs: float = 2.0
    max_steps: int = -1
    learning_rate: float = 1e-3
    dataloader_num_workers: int = 0
    dataloader_prefetch_factor: int | None = None
    dataloader_persistent_workers: bool = False
    dataloader_pin_memory: bool = True
    logging_steps: float = 1
    seed: int = 0


TRAINER_FIELDS = (
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "learning_rate",
    "dataloader_num_workers",
    "dataloader_prefetch_factor",
    "dataloader_persistent_workers",
    "dataloader_pin_memory",
    "logging_steps",
    "seed",
)
# What --fixed changes: tokenise once, two workers kept across epochs, log every 50 steps.
FIXED = {
    "tokenize": "once",
    "dataloader_num_workers": 2,
    "dataloader_persistent_workers": True,
    "logging_steps": 50,
}


def _flag_type(name: str) -> type:
    annotation = {f.name: f.type for f in fields(TextConfig)}[name]
    text = str(annotation)
    if "bool" in text:
        return _boolean  # type: ignore[return-value]  # a parser function stands in
    if "float" in text:
        return float
    if "int" in text:
        return int
    return str


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainperf.examples.text.train",
        description="Train a small GPT-2 with the Hugging Face Trainer on generated text.",
    )
    parser.add_argument("--fixed", action="store_true", help="tokenise once, 2 workers, log less")
    parser.add_argument(
        "--overrides",
        type=Path,
        help="a JSON object of TrainingArguments fields (what `trainperf doctor --apply` writes)",
    )
    for item in fields(TextConfig):
        kind = _flag_type(item.name)
        choices = ("collator", "once") if item.name == "tokenize" else None
        parser.add_argument(f"--{item.name}", type=kind, choices=choices, default=None)
    return parser


def _overrides(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--overrides {path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"--overrides {path}: expected a JSON object of TrainingArguments fields")
    known = {f.name for f in fields(TextConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(
            f"--overrides {path}: unknown field(s) {', '.join(unknown)}; "
            f"this example takes {', '.join(TRAINER_FIELDS)}"
        )
    for name, value in data.items():
        _check_type(path, name, value)
    return data


def _check_type(path: Path, name: str, value: object) -> None:
    if value is None and name == "dataloader_prefetch_factor":
        return
    kind = _flag_type(name)
    number = not isinstance(value, bool)
    if kind is _boolean:
        ok, wanted = isinstance(value, bool), "true or false"
    elif kind is float:
        ok, wanted = number and isinstance(value, int | float), "a number"
    elif kind is int:
        ok, wanted = number and isinstance(value, int), "an integer"
    else:
        ok, wanted = isinstance(value, str), "a string"
    if not ok:
        raise UsageError(f"--overrides {path}: {name} must be {wanted}, got {value!r}")


def parse(argv: list[str] | None = None) -> TextConfig:
    """The configuration from the command line. Raises :class:`UsageError` on a bad value."""
    args = _parser().parse_args(argv)
    config = TextConfig()
    if args.fixed:
        config = replace(config, **FIXED)  # type: ignore[arg-type]  # keys are fields
    if args.overrides is not None:
        config = replace(config, **_overrides(args.overrides))  # type: ignore[arg-type]
        given_flags = {f.name for f in fields(TextConfig) if getattr(args, f.name) is not None}
        if not given_flags:  # a value out of range came from the file: say so
            try:
                validate(config)
            except UsageError as exc:
                raise UsageError(f"--overrides {args.overrides}: {exc}") from None
    given = {f.name: getattr(args, f.name) for f in fields(TextConfig)}
    config = replace(config, **{k: v for k, v in given.items() if v is not None})
    validate(config)
    return config


def validate(config: TextConfig) -> None:
    prefetch = config.dataloader_prefetch_factor
    first_failure(
        [
            (config.documents >= 8, "--documents must be >= 8", config.documents),
            (config.sentences >= 1, "--sentences must be >= 1", config.sentences),
            (config.block_size >= 8, "--block_size must be >= 8", config.block_size),
            (config.vocab_size >= 300, "--vocab_size must be >= 300", config.vocab_size),
            (config.layers >= 1, "--layers must be >= 1", config.layers),
            (
                config.hidden % 2 == 0 and config.hidden >= 8,
                "--hidden must be even, >= 8",
                config.hidden,
            ),
            (
                config.per_device_train_batch_size >= 1,
                "--per_device_train_batch_size must be >= 1",
                config.per_device_train_batch_size,
            ),
            (
                config.per_device_eval_batch_size >= 1,
                "--per_device_eval_batch_size must be >= 1",
                config.per_device_eval_batch_size,
            ),
            (
                config.gradient_accumulation_steps >= 1,
                "--gradient_accumulation_steps must be >= 1",
                config.gradient_accumulation_steps,
            ),
            (
                config.num_train_epochs > 0 or config.max_steps > 0,
                "--num_train_epochs or --max_steps must be > 0",
                (config.num_train_epochs, config.max_steps),
            ),
            (config.learning_rate > 0, "--learning_rate must be > 0", config.learning_rate),
            (
                config.dataloader_num_workers >= 0,
                "--dataloader_num_workers must be >= 0",
                config.dataloader_num_workers,
            ),
            (
                prefetch is None or (prefetch >= 1 and config.dataloader_num_workers > 0),
                "--dataloader_prefetch_factor must be >= 1, and needs --dataloader_num_workers > 0",
                prefetch,
            ),
            (
                not config.dataloader_persistent_workers or config.dataloader_num_workers > 0,
                "--dataloader_persistent_workers needs --dataloader_num_workers > 0",
                config.dataloader_persistent_workers,
            ),
            (config.logging_steps > 0, "--logging_steps must be > 0", config.logging_steps),
        ]
    )
