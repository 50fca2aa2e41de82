"""The version of every JSON object trainperf writes for others to read.

Each ``--json`` output and each JSON record file carries a top-level integer
``schema_version``, the version of its kind below. The promise, for tools reading them:

- a kind's version is bumped whenever a key is added, removed or changes meaning
  (``tests/test_schema.py`` fails when its keys change without a bump);
- trainperf reads the records the previous versions wrote (a run folder, a calibration
  store, a cache); one written by a newer trainperf is refused in one line that names
  the file, the version found and the fix.

JSON Lines records have no version of their own on each line: the run folder's
``meta.json`` carries :data:`RUN_RECORDS` for every record in the folder
(``steps.jsonl``, ``samples.jsonl``, ``workers.jsonl``), and ``anatomy.jsonl`` carries
:data:`ANATOMY` on its header line. Records of the release before ``schema_version``
carried other markers (``"schema": 1``, ``"schema": "trainperf.doctor/1"``,
``"anatomy": 1``) or none; each is read as version 1 of its kind (``legacy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

    from trainperf._json import Json, JsonObject

__all__ = [
    "AB",
    "ANATOMY",
    "CACHE_CLEAR",
    "CACHE_INFO",
    "CACHE_STORE",
    "CACHE_VERIFY",
    "CALIBRATE",
    "CALIBRATION_STORE",
    "COMPARE",
    "DOCTOR",
    "EXPORTERS",
    "FIX",
    "IMPORTS",
    "IMPORT_COSTS",
    "LINT_IMPORTS",
    "PROOFS",
    "REPORT",
    "RESOURCES",
    "RUN_RECORDS",
    "SCALING",
    "SCHEMA_KEY",
    "STARTUP",
    "SUMMARY",
    "Schema",
]

SCHEMA_KEY: Final = "schema_version"
UPGRADE: Final = "upgrade trainperf (pip install -U trainperf)"


@dataclass(frozen=True)
class Schema:
    """One kind of output: what it is, its current ``version``, and how to read old ones.

    ``oldest``: the oldest version this trainperf still reads. ``legacy``: the key and
    value the release before ``schema_version`` marked this kind with, read as
    version 1. ``fix``: what to do with a file of a version this trainperf cannot read.
    """

    what: str
    version: int
    oldest: int = 1
    legacy: tuple[str, Json] | None = None
    fix: str = "remove it, or read it with the trainperf version that wrote it"

    def stamp(self, data: Mapping[str, Json]) -> JsonObject:
        """``data`` with ``schema_version`` first (replacing any already there).

        >>> RESOURCES.stamp({"cpu_budget": 2.0})
        {'schema_version': 1, 'cpu_budget': 2.0}
        """
        return {SCHEMA_KEY: self.version, **{k: v for k, v in data.items() if k != SCHEMA_KEY}}

    def found(self, data: Mapping[str, Json]) -> Json:
        """The version ``data`` says it has: its ``schema_version``, 1 for the legacy
        marker, else ``None``."""
        if SCHEMA_KEY in data:
            return data[SCHEMA_KEY]
        if self.legacy is not None and data.get(self.legacy[0]) == self.legacy[1]:
            return 1
        return None

    def check(
        self,
        data: Mapping[str, Json],
        *,
        source: str,
        fix: str | None = None,
        unmarked: int | None = None,
    ) -> int:
        """The version of ``data`` (read from ``source``, a path) if this trainperf reads
        it; else :class:`~trainperf.errors.RecordError` in one line ending with ``fix``
        (default: the kind's own).

        ``unmarked``: the version an object without any marker is (records the release
        before ``schema_version`` wrote unmarked); ``None``: such an object is refused.
        """
        from trainperf.errors import RecordError

        fix = self.fix if fix is None else fix
        found = self.found(data)
        if found is None and self.legacy is not None and self.legacy[0] in data:
            key = self.legacy[0]
            raise RecordError(
                f"{source} is not a trainperf {self.what}: it has {key} {data[key]!r} and no "
                f"{SCHEMA_KEY}; {fix}"
            )
        if found is None and unmarked is not None:
            found = unmarked
        span = str(self.version) if self.oldest == self.version else f"{self.oldest}-{self.version}"
        if found is None:
            raise RecordError(f"{source} is not a trainperf {self.what} (no {SCHEMA_KEY}); {fix}")
        if isinstance(found, bool) or not isinstance(found, int):
            raise RecordError(
                f"{source} has {SCHEMA_KEY} {found!r}, not a version of a trainperf "
                f"{self.what}; {fix}"
            )
        if found > self.version:
            raise RecordError(
                f"{source}: {self.what} of {SCHEMA_KEY} {found}, written by a newer trainperf "
                f"(this one reads {span}); {UPGRADE}, or {fix}"
            )
        if found < self.oldest:
            raise RecordError(
                f"{source}: {self.what} of {SCHEMA_KEY} {found}, older than this trainperf "
                f"reads ({span}); {fix}"
            )
        return found


# -- record files ------------------------------------------------------------------------

# A run folder: meta.json carries it for steps.jsonl, samples.jsonl, workers.jsonl and
# the workers' own records; device_memory.json and probe.json carry it too. 2: steps
# gained "tokens". 3: loader_starts, worker_starts, worker_batches, worker_memory.
# 4: sample_audit (the samples each DataLoader pass read, hashed).
RUN_RECORDS: Final = Schema(
    "run record",
    4,
    legacy=("schema", 1),
    fix="report that run with the trainperf version that recorded it",
)
# anatomy.jsonl, on its header line.
ANATOMY: Final = Schema(
    "anatomy record",
    1,
    legacy=("anatomy", 1),
    fix="report that run with the trainperf version that recorded it",
)
# exporters.json: what each exporter of a run got, dropped, and how it ended.
EXPORTERS: Final = Schema("exporters record", 1)
# summary.json, and `trainperf run --json` (the summary with run, finished, returncode).
# 2: "workers" (starts, stages, memory). 3: "rank_breakdown" (each rank's part of a
# step, the straggler analysis), "sample_audit" (the samples each rank trained on).
SUMMARY: Final = Schema("run summary", 3)
# doctor.json and `trainperf doctor --json`. 2: the summary's tokens, training_arguments.
# 3: the summary's "workers". 4: the summary's "rank_breakdown" and "sample_audit".
# 5: "patches" (--fix).
DOCTOR: Final = Schema(
    "doctor report",
    5,
    legacy=("schema", "trainperf.doctor/1"),
    fix="run trainperf doctor again, or remove that file to report the monitor's records alone",
)
# proofs.json, written by the doctor's child. 2: "framework".
PROOFS: Final = Schema("doctor proofs record", 2, legacy=("schema", "trainperf.doctor.proofs/1"))
# .trainperf/calibration.json. 2: a result's start methods, epochs, budget, loader-only
# optimum and what was not measured (see CALIBRATE).
CALIBRATION_STORE: Final = Schema(
    "calibration store",
    2,
    legacy=("schema", 1),
    fix="move it away or delete it to start a new store; it was left as it is",
)
# <cache_dir>/trainperf-cache.json, for the whole cache folder.
CACHE_STORE: Final = Schema(
    "cache", 1, legacy=("schema", 1), fix="clear it or use another folder; it was left as it is"
)
# .trainperf/import_costs.json
IMPORT_COSTS: Final = Schema(
    "import-cost store",
    1,
    legacy=("schema", 1),
    fix="remove it to keep the costs measured here (meanwhile it is ignored, and left as it is)",
)

# -- command outputs (--json) ------------------------------------------------------------

# 2: the summary's "workers". 3: the summary's "rank_breakdown" and "sample_audit".
REPORT: Final = Schema("report", 3)
COMPARE: Final = Schema("comparison", 1)
AB: Final = Schema("A/B result", 2)  # also ab.json
IMPORTS: Final = Schema("import profile", 1, legacy=("schema", 1))
LINT_IMPORTS: Final = Schema("import lint", 1)
STARTUP: Final = Schema("start-up timing", 1)
# 2: multiprocessing_context (chosen, candidates), candidates' first_batch_s and
# warmup_s, "epochs" (the run weighed, start-up per epoch), "budget", "loader_only",
# "skipped".
CALIBRATE: Final = Schema("calibration", 2)
CACHE_INFO: Final = Schema("cache info", 1)
CACHE_VERIFY: Final = Schema("cache verification", 1)
CACHE_CLEAR: Final = Schema("cache clearing", 1)
RESOURCES: Final = Schema("resource detection", 1)
# scaling.json and `trainperf doctor --scale --json`.
SCALING: Final = Schema("scaling report", 1)
# `trainperf fix imports|loader --json`.
FIX: Final = Schema("fix", 1)
