"""Exporter specs (``tensorboard:DIR``, ``wandb:DIR``, ``mlflow:DIR``) and the registry
of the backends they name.

A backend is registered with :func:`register`; the built-in ones live in their own
modules (``tensorboard.py``, ``wandb.py``, ``mlflow.py``), imported the first time a
spec is parsed. Each imports its library only when it starts writing, so parsing a
spec costs nothing but a check that the library is installed.

    >>> parse_spec("tensorboard:runs/tb").kind
    'tensorboard'
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.errors import MissingDependencyError, UsageError
from trainperf.exporters.protocol import Exporter

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "SEPARATOR",
    "Backend",
    "ExportSpec",
    "ExportTarget",
    "backends",
    "exporters_for",
    "join_specs",
    "parse_spec",
    "register",
    "split_specs",
]

# Between specs in one string (TRAINPERF_EXPORT): folders may hold ':' and ',', rarely ';'.
SEPARATOR = ";"
_BUILTIN = ("tensorboard", "wandb", "mlflow")  # each in trainperf/exporters/KIND.py


@dataclass(frozen=True, kw_only=True)
class Backend:
    """An exporter kind: the spec's prefix, the library it needs (a module name, checked
    with ``importlib.util.find_spec``), the extra that installs it, and its factory,
    called with the spec's folder (it must not import the library)."""

    kind: str
    library: str
    extra: str
    make: Callable[[Path], Exporter]


_REGISTRY: dict[str, Backend] = {}


def register(backend: Backend) -> None:
    """Make ``KIND:DIR`` specs for ``backend.kind`` known (replacing one of that kind)."""
    _REGISTRY[backend.kind] = backend


def backends() -> tuple[Backend, ...]:
    """Every known backend: the built-in ones first, in a fixed order, then the others
    in the order they were registered."""
    for kind in _BUILTIN:
        importlib.import_module(f"trainperf.exporters.{kind}")
    order = {kind: at for at, kind in enumerate(_BUILTIN)}
    return tuple(sorted(_REGISTRY.values(), key=lambda b: order.get(b.kind, len(order))))


@dataclass(frozen=True, kw_only=True)
class ExportSpec:
    """Where to export: a backend's ``kind`` and its ``folder`` (absolute)."""

    kind: str
    folder: Path

    def __str__(self) -> str:
        return f"{self.kind}:{self.folder}"


# What ``monitor(export=...)`` and ``PerfMonitor(export=...)`` accept, each.
ExportTarget = str | ExportSpec | Exporter


def parse_spec(text: str | ExportSpec) -> ExportSpec:
    """``KIND:DIR`` as an :class:`ExportSpec` with DIR made absolute.

    Raises :class:`~trainperf.errors.UsageError` for an unknown kind, a missing or
    unusable folder, and :class:`~trainperf.errors.MissingDependencyError` (naming the
    extra to install) when the backend's library is not installed.
    """
    known = {b.kind: b for b in backends()}
    if isinstance(text, ExportSpec):
        kind, folder = text.kind, str(text.folder)
    else:
        kind, colon, folder = text.strip().partition(":")
        if not colon and kind in known:
            raise UsageError(
                f"exporter '{kind}' needs a folder: {kind}:DIR, e.g. {kind}:runs/{kind}"
            )
    backend = known.get(kind)
    if backend is None:
        given = f"'{kind}'" if str(text).strip() == kind else f"'{kind}' in '{text}'"
        raise UsageError(f"unknown exporter {given}; {_guess(kind, known)}use {_choices(known)}")
    if not folder.strip():
        raise UsageError(f"exporter '{text}' needs a folder after the colon: {kind}:DIR")
    if SEPARATOR in folder:
        raise UsageError(
            f"exporter folder '{folder}' holds '{SEPARATOR}', which separates specs in "
            f"TRAINPERF_EXPORT; choose a folder name without it"
        )
    path = Path(folder).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise UsageError(f"exporter '{text}': {path} is a file; give a folder to write into")
    if importlib.util.find_spec(backend.library) is None:
        raise MissingDependencyError(backend.library, backend.extra)
    return ExportSpec(kind=kind, folder=path)


def split_specs(text: str) -> list[str]:
    """The specs in a ``;``-separated string (``TRAINPERF_EXPORT``), blanks skipped."""
    return [part.strip() for part in text.split(SEPARATOR) if part.strip()]


def join_specs(specs: Iterable[ExportSpec]) -> str:
    """Specs as one string that :func:`split_specs` reads back."""
    return SEPARATOR.join(str(spec) for spec in specs)


def exporters_for(targets: Sequence[ExportTarget]) -> tuple[Exporter, ...]:
    """Exporters for specs (parsed, then built by their backend) and exporter objects
    (kept as they are). Raises what :func:`parse_spec` raises, and ``TypeError`` for
    anything else."""
    out: list[Exporter] = []
    for target in targets:
        if isinstance(target, str | ExportSpec):
            spec = parse_spec(target)
            out.append(_REGISTRY[spec.kind].make(spec.folder))
        elif isinstance(target, Exporter):
            out.append(target)
        else:
            raise TypeError(
                f"export takes specs such as 'tensorboard:DIR' or Exporter objects, "
                f"got {type(target).__name__}"
            )
    return tuple(out)


def _guess(kind: str, known: dict[str, Backend]) -> str:
    import difflib

    close = difflib.get_close_matches(kind, list(known), n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def _choices(known: dict[str, Backend]) -> str:
    kinds = [f"{kind}:DIR" for kind in known]
    return kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"
