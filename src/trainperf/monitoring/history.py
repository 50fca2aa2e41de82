"""``.trainperf/history.sqlite``: an index of recorded runs and calibrations, for
lookups and trends.

One row per finished run (per rank): where its records are, when and what ran, its
environment fingerprint, and its headline numbers. One row per measured calibration:
when, the environment and dataset it was measured for, the configuration chosen and
its throughput (so a pipeline's speed can be followed across calibrations). The
records themselves stay in the run folders and ``calibration.json``. A database that
cannot be opened or is not trainperf's is reported and left untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from trainperf.monitoring.analyze import RunSummary
    from trainperf.monitoring.records import RunMeta

__all__ = [
    "IndexedCalibration",
    "IndexedRun",
    "index_calibration",
    "index_run",
    "indexed_calibrations",
    "indexed_runs",
]

logger = logging.getLogger("trainperf.monitoring")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    path TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    started_at REAL NOT NULL,
    command TEXT NOT NULL,
    rank INTEGER,
    fingerprint TEXT NOT NULL,
    steps INTEGER NOT NULL,
    samples_per_s REAL,
    step_median_s REAL,
    verdict TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS calibrations (
    key TEXT NOT NULL,
    created_at REAL NOT NULL,
    fingerprint TEXT NOT NULL,
    dataset TEXT NOT NULL,
    batch_size INTEGER NOT NULL,
    mode TEXT NOT NULL,
    chosen TEXT NOT NULL,
    samples_per_s REAL,
    PRIMARY KEY (key, created_at)
);
"""


@dataclass(frozen=True)
class IndexedRun:
    path: str
    run_id: str
    started_at: float
    command: str
    rank: int | None
    fingerprint: str
    steps: int
    samples_per_s: float | None
    step_median_s: float | None
    verdict: str


def _connect(database: Path) -> sqlite3.Connection | None:
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(database, timeout=10)
        connection.executescript(_SCHEMA)
        return connection
    except (OSError, sqlite3.Error) as exc:
        logger.warning("not indexing runs in %s (%s); the file is left as it is", database, exc)
        return None


def index_run(database: Path, folder: Path, meta: RunMeta, summary: RunSummary) -> None:
    _insert(
        database,
        "runs",
        (
            str(folder.resolve()),
            meta.run_id,
            meta.started_at,
            meta.command,
            meta.rank,
            str(meta.fingerprint.get("digest")),
            summary.steps,
            summary.samples_per_s,
            summary.step_median_s,
            summary.primary,
        ),
    )


def _insert(database: Path, table: str, values: tuple[object, ...]) -> None:
    connection = _connect(database)
    if connection is None:
        return
    marks = ", ".join("?" * len(values))
    with contextlib.closing(connection), contextlib.suppress(sqlite3.Error), connection:
        connection.execute(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", values)  # noqa: S608


def indexed_runs(database: Path, *, fingerprint: str | None = None) -> list[IndexedRun]:
    """Runs in the index, oldest first; only those of ``fingerprint`` when given."""
    rows = _select(database, "runs", "fingerprint", fingerprint, order="started_at")
    return [IndexedRun(*row) for row in rows]


def _select(database: Path, table: str, column: str, value: str | None, *, order: str) -> list[Any]:
    """Rows of ``table`` (only those whose ``column`` is ``value``, when given)."""
    if not database.exists():
        return []
    connection = _connect(database)
    if connection is None:
        return []
    query = f"SELECT * FROM {table}"  # noqa: S608 - table and column are this module's names
    args: tuple[str, ...] = ()
    if value is not None:
        query += f" WHERE {column} = ?"
        args = (value,)
    with contextlib.closing(connection):
        try:
            rows: list[Any] = connection.execute(f"{query} ORDER BY {order}", args).fetchall()
        except sqlite3.Error as exc:
            logger.warning("cannot read %s (%s)", database, exc)
            return []
    return rows


@dataclass(frozen=True)
class IndexedCalibration:
    key: str
    created_at: float
    fingerprint: str
    dataset: str
    batch_size: int
    mode: str
    chosen: str  # the LoaderConfig as JSON
    samples_per_s: float | None


def index_calibration(database: Path, row: IndexedCalibration) -> None:
    _insert(database, "calibrations", dataclasses.astuple(row))


def indexed_calibrations(database: Path, *, key: str | None = None) -> list[IndexedCalibration]:
    """Calibrations in the index, oldest first; only those under ``key`` when given."""
    rows = _select(database, "calibrations", "key", key, order="created_at")
    return [IndexedCalibration(*row) for row in rows]
