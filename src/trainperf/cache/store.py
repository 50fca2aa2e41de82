"""The cache folder: entries published atomically, claims with leases, no stray paths.

    <cache_dir>/trainperf-cache.json      marks the folder as a trainperf cache, with the
                                          schema_version of everything in it
    <cache_dir>/entries/ab/<key>.tpc      one entry per key (see entry.py)
    <cache_dir>/content/<digest>.json     per input: the key components last stored
    <cache_dir>/claims/<key>.claim        who is computing <key>, until when
    <cache_dir>/stats/<process>.json      hits, misses and time saved, per process

Keys are 32 lowercase hex digits, checked before any path is built, so nothing can
address a file outside the folder. Publishing writes a temporary file in the
entry's own directory, fsyncs it, and links it to its final name: the first writer
wins, a later one discards its copy, and a reader sees a whole entry or none.
A claim is created exclusively; one whose lease has expired, or whose process has
died (same host), is taken over by atomically replacing it and reading it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainperf._schema import CACHE_STORE
from trainperf.errors import RecordError, UsageError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from trainperf._json import JsonObject

__all__ = ["MARKER", "EntryStore"]

MARKER = "trainperf-cache.json"
MARKER_KIND = "trainperf.cache"
_KEY = re.compile(r"^[0-9a-f]{32}$")
ORPHAN_AGE_S = 3600.0  # a temporary file this old is abandoned, whoever wrote it


def _alive(pid: int) -> bool:
    """Whether ``pid`` can still write: a zombie (killed, not yet reaped) cannot."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


@dataclass
class EntryStore:
    root: Path

    @classmethod
    def open(cls, root: Path, *, create: bool) -> EntryStore:
        marker = root / MARKER
        if not marker.is_file():
            if not create:
                raise UsageError(f"{root} is not a trainperf cache (no {MARKER}); check the path")
            # Other processes may be creating the same cache this instant (DDP ranks,
            # DataLoader workers): their marker temporaries do not make the folder foreign.
            foreign = root.exists() and any(
                not p.name.startswith(f".{MARKER}.") for p in root.iterdir()
            )
            if foreign and not marker.is_file():
                raise UsageError(
                    f"{root} is not empty and not a trainperf cache; give an empty or new "
                    f"folder so that nothing of yours is mixed with cache files"
                )
            if not marker.is_file():
                root.mkdir(parents=True, exist_ok=True)
                temporary = root / f".{MARKER}.{os.getpid()}.{os.urandom(3).hex()}"
                temporary.write_text(json.dumps(CACHE_STORE.stamp({"kind": MARKER_KIND})))
                with contextlib.suppress(FileExistsError):
                    os.link(temporary, marker)  # several processes creating it: one wins
                temporary.unlink(missing_ok=True)
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict) or data.get("kind") != MARKER_KIND:
            raise RecordError(f"{marker} is not a trainperf cache marker; leaving {root} as it is")
        # The marker's version is the whole folder's: entries, indexes, claims, stats.
        CACHE_STORE.check(data, source=str(marker))
        for folder in ("entries", "content", "claims", "stats"):
            (root / folder).mkdir(exist_ok=True)
        return cls(root)

    # --- paths -------------------------------------------------------------------------

    @staticmethod
    def check_key(key: str) -> str:
        if not _KEY.match(key):
            raise UsageError(f"invalid cache key {key!r}: 32 hexadecimal digits expected")
        return key

    def entry_path(self, key: str) -> Path:
        self.check_key(key)
        return self.root / "entries" / key[:2] / f"{key}.tpc"

    def content_path(self, digest: str) -> Path:
        return self.root / "content" / f"{self.check_key(digest)}.json"

    def claim_path(self, key: str) -> Path:
        return self.root / "claims" / f"{self.check_key(key)}.claim"

    def entries(self) -> Iterator[Path]:
        yield from sorted((self.root / "entries").glob("*/*.tpc"))

    def temporaries(self) -> Iterator[Path]:
        yield from sorted((self.root / "entries").glob("*/.tmp-*"))

    # --- publishing --------------------------------------------------------------------

    def temporary_for(self, key: str) -> Path:
        final = self.entry_path(key)
        final.parent.mkdir(exist_ok=True)
        return (
            final.parent / f".tmp-{key}-{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"
        )

    def publish(self, temporary: Path, key: str) -> bool:
        """Link ``temporary`` to the entry's name; False when another writer was first."""
        final = self.entry_path(key)
        try:
            os.link(temporary, final)
            won = True
        except FileExistsError:
            won = False
        finally:
            temporary.unlink(missing_ok=True)
        if won:
            with contextlib.suppress(OSError):
                descriptor = os.open(final.parent, os.O_RDONLY)
                try:
                    os.fsync(descriptor)
                finally:
                    os.close(descriptor)
        return won

    def write_json(self, path: Path, data: JsonObject) -> None:
        """Replace a small JSON file atomically (last writer wins)."""
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(3).hex()}")
        temporary.write_text(json.dumps(data), encoding="utf-8")
        temporary.replace(path)

    # --- claims ------------------------------------------------------------------------

    def claim(self, key: str, lease_s: float) -> str | None:
        """A token if this process now owns ``key``'s computation, else ``None``."""
        path = self.claim_path(key)
        token = os.urandom(8).hex()
        body = json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "expires": time.time() + lease_s,
                "token": token,
            }
        )
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not self._stale(path):
                return None
            temporary = path.with_name(f".{path.name}.{token}")
            temporary.write_text(body)
            temporary.replace(path)  # take over; the last to replace it owns it
            return token if self._holder(path) == token else None
        with os.fdopen(descriptor, "w") as out:
            out.write(body)
        return token

    def _holder(self, path: Path) -> str | None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data.get("token") if isinstance(data, dict) else None

    def _stale(self, path: Path) -> bool:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return False  # released meanwhile: the entry is there, or the claim is free
        except (OSError, ValueError):
            # Being written this instant, or garbage: garbage ages out with its mtime.
            with contextlib.suppress(OSError):
                return time.time() - path.stat().st_mtime > ORPHAN_AGE_S
            return False
        if not isinstance(data, dict):
            return True
        expires = data.get("expires")
        if not isinstance(expires, int | float) or time.time() > expires:
            return True
        pid = data.get("pid")
        return data.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)

    def release(self, key: str, token: str) -> None:
        path = self.claim_path(key)
        if self._holder(path) == token:
            path.unlink(missing_ok=True)

    # --- housekeeping ------------------------------------------------------------------

    def orphans(self) -> list[Path]:
        """Temporary files whose writer is gone (dead process on this host, or old)."""
        host = socket.gethostname()
        found = []
        now = time.time()
        for path in self.temporaries():
            parts = path.name.split("-")
            pid = int(parts[-2]) if len(parts) >= 5 and parts[-2].isdecimal() else None
            try:
                old = now - path.stat().st_mtime > ORPHAN_AGE_S
            except FileNotFoundError:
                continue
            mine = "-".join(parts[2:-2]) == host
            if old or (mine and pid is not None and not _alive(pid)):
                found.append(path)
        return found

    def collect_orphans(self) -> int:
        removed = 0
        for path in self.orphans():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        for claim in (self.root / "claims").glob("*.claim"):
            if self._stale(claim):
                claim.unlink(missing_ok=True)
        return removed
