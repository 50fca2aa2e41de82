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
import logging
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
    connection = _connect(database)
    if connection is None:
        return
    digest = meta.fingerprint.get("digest")
    with contextlib.closing(connection), contextlib.suppress(sqlite3.Error), connection:
        connection.execute(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(folder.resolve()),
                meta.run_id,
                meta.started_at,
                meta.command,
                meta.rank,
                str(digest),
                summary.steps,
                summary.samples_per_s,
                summary.step_median_s,
                summary.primary,
            ),
        )


def indexed_runs(database: Path, *, fingerprint: str | None = None) -> list[IndexedRun]:
    """Runs in the index, oldest first; only those of ``fingerprint`` when given."""
    if not database.exists():
        return []
    connection = _connect(database)
    if connection is None:
        return []
    query = "SELECT * FROM runs"
    args: tuple[str, ...] = ()
    if fingerprint is not None:
        query += " WHERE fingerprint = ?"
        args = (fingerprint,)
    with contextlib.closing(connection):
        try:
            rows = connection.execute(query + " ORDER BY started_at", args).fetchall()
        except sqlite3.Error as exc:
            logger.warning("cannot read %s (%s)", database, exc)
            return []
    return [IndexedRun(*row) for row in rows]


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
    connection = _connect(database)
    if connection is None:
        return
    with contextlib.closing(connection), contextlib.suppress(sqlite3.Error), connection:
        connection.execute(
            "INSERT OR REPLACE INTO calibrations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.key,
                row.created_at,
                row.fingerprint,
                row.dataset,
                row.batch_size,
                row.mode,
                row.chosen,
                row.samples_per_s,
            ),
        )


def indexed_calibrations(database: Path, *, key: str | None = None) -> list[IndexedCalibration]:
    """Calibrations in the index, oldest first; only those under ``key`` when given."""
    if not database.exists():
        return []
    connection = _connect(database)
    if connection is None:
        return []
    query = "SELECT * FROM calibrations"
    args: tuple[str, ...] = ()
    if key is not None:
        query += " WHERE key = ?"
        args = (key,)
    with contextlib.closing(connection):
        try:
            rows = connection.execute(query + " ORDER BY created_at", args).fetchall()
        except sqlite3.Error as exc:
            logger.warning("cannot read %s (%s)", database, exc)
            return []
    return [IndexedCalibration(*row) for row in rows]
