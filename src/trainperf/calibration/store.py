"""``.trainperf/calibration.json``: measured loader configurations, kept per environment.

An entry's key is the environment fingerprint's digest, the dataset fingerprint's
digest, the batch size and the mode (loader only, or end to end with a train step).
Entries older than the caller's TTL are not used. The file is replaced atomically (written
beside it, then renamed) under an exclusive lock, so concurrent writers cannot tear
it or lose each other's entries. A file that is not a trainperf calibration store
(corrupt, foreign, a newer ``schema_version``) is reported and never written over; a
store the release before ``schema_version`` wrote (``"schema": 1``) is read as version 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import TYPE_CHECKING

from trainperf._json import as_object, req_float
from trainperf._schema import CALIBRATION_STORE
from trainperf.errors import RecordError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from trainperf._json import JsonObject

__all__ = ["DEFAULT_TTL_S", "STORE_KIND", "CalibrationStore", "store_key"]

STORE_KIND = "trainperf.calibration"
DEFAULT_TTL_S = 7 * 24 * 3600.0


def store_key(environment: str, dataset: str, batch_size: int, mode: str) -> str:
    return f"{environment}/{dataset}/{batch_size}/{mode}"


class CalibrationStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, JsonObject]:
        if not self.path.exists():
            return {}
        advice = CALIBRATION_STORE.fix
        try:
            data = as_object(json.loads(self.path.read_text(encoding="utf-8")), "the store")
        except (OSError, UnicodeDecodeError, ValueError, RecordError) as exc:
            raise RecordError(
                f"{self.path} is not a readable calibration store ({exc}); {advice}"
            ) from None
        if data.get("kind") != STORE_KIND:
            raise RecordError(f"{self.path} is not a trainperf calibration store; {advice}")
        CALIBRATION_STORE.check(data, source=str(self.path))
        entries = data.get("entries")
        if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
            raise RecordError(f"{self.path} has malformed entries; {advice}")
        return {str(k): v for k, v in entries.items() if isinstance(v, dict)}

    def check(self) -> None:
        """Raise :class:`RecordError` now if the file could not be read or written later."""
        self._read()

    def entries(self) -> dict[str, JsonObject]:
        """Every entry by its key (see :func:`store_key`), whatever its age; ``{}`` when
        there is no file. Raises :class:`RecordError` for a file that is not a store."""
        return self._read()

    def get(self, key: str, *, ttl_s: float, now: float | None = None) -> JsonObject | None:
        """The entry under ``key`` if it is younger than ``ttl_s``."""
        entry = self._read().get(key)
        if entry is None:
            return None
        now = time.time() if now is None else now
        try:
            created = req_float(entry, "created_at")
        except RecordError:
            return None  # an entry this version cannot date: measure again
        return entry if 0 <= now - created <= ttl_s else None

    def put(self, key: str, entry: JsonObject) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            entries: JsonObject = {**self._read(), key: entry}
            body = CALIBRATION_STORE.stamp({"kind": STORE_KIND, "entries": entries})
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            try:
                with temporary.open("w", encoding="utf-8") as out:
                    json.dump(body, out, indent=1)
                    out.flush()
                    os.fsync(out.fileno())
                temporary.replace(self.path)
            finally:
                temporary.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        lock = self.path.with_name(f".{self.path.name}.lock")
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
