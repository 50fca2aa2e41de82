"""What the examples' Hydra entry points share: turning the composed configuration into
the typed schema, checking it, and marking the moment it is known to be valid --
all before torch or Lightning is imported."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TypeVar

from omegaconf import OmegaConf

import trainperf
from trainperf.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from omegaconf import DictConfig

__all__ = ["first_failure", "validated"]

T = TypeVar("T")


def validated(cfg: DictConfig, schema: type[T], validate: Callable[[T], None]) -> T:
    """The configuration as ``schema``; a range error exits 2 with one line."""
    config = OmegaConf.to_object(cfg)
    if not isinstance(config, schema):
        raise TypeError(f"expected a {schema.__name__}, got {type(config).__name__}")
    try:
        validate(config)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    trainperf.mark("config_validated")
    return config


def first_failure(checks: Iterable[tuple[bool, str, object]]) -> None:
    """Raise :class:`UsageError` for the first ``(ok, rule, value)`` that is not ok."""
    for ok, rule, value in checks:
        if not ok:
            raise UsageError(f"{rule}, got {value}")
