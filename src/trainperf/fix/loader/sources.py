"""Where the settings come from: a doctor run's calibration proof (:func:`from_run`) or
the calibration store (:func:`from_store`), where the located call's dataset picks one
of several."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainperf.errors import RecordError, UsageError
from trainperf.fix.loader.values import Calibrated, Gain

if TYPE_CHECKING:
    from pathlib import Path

    from trainperf.calibration.api import Calibration
    from trainperf.fix.loader.calls import Located


def from_run(folder: Path) -> Calibrated:
    """The calibration proof of a ``trainperf doctor`` run folder (its ``proofs.json``,
    or its first rank's): the chosen settings, and the gain timed side by side against
    the loader's own settings (the search's estimate where it was not timed as written).

    Raises :class:`UsageError` when the folder holds no proofs, no calibration proof, or
    one whose calibration failed or was skipped; :class:`RecordError` for a
    ``proofs.json`` that is not one.
    """
    import json

    from trainperf._json import as_object, objects
    from trainperf._schema import PROOFS
    from trainperf.calibration.config import LoaderConfig

    path = folder / "proofs.json"
    if not path.is_file():
        ranked = sorted(folder.glob("rank*/proofs.json"))
        if not ranked:
            raise UsageError(
                f"{folder} holds no proofs.json: give a folder trainperf doctor wrote, or "
                "leave out --from to use the calibration stored for this environment"
            )
        path = ranked[0]
    try:
        record = as_object(json.loads(path.read_text(encoding="utf-8")), "the proofs")
    except (OSError, ValueError, RecordError) as exc:
        raise RecordError(f"{path} is not a trainperf doctor proofs record ({exc})") from None
    PROOFS.check(record, source=str(path))
    proofs = [p for p in objects(record.get("proofs")) if p.get("kind") == "calibration"]
    proof = next((p for p in proofs if p.get("role") == "training"), None)
    if proof is None:
        raise UsageError(
            f"the doctor run {folder} holds no calibration proof (its step verdict: "
            f"{record.get('step_verdict')}; the loader is calibrated when the step waits for "
            "input); run trainperf calibrate pkg.module:factory and leave out --from"
        )
    calibration = proof.get("calibration")
    if not isinstance(calibration, dict):
        failed = proof.get("error") or proof.get("skipped") or "no result"
        raise UsageError(
            f"the doctor run {folder} has no calibrated settings (its calibration: {failed}); "
            "run trainperf calibrate pkg.module:factory and leave out --from"
        )
    config = LoaderConfig.from_json(as_object(calibration.get("chosen"), "chosen"))
    created = _number(calibration.get("created_at"))
    verified = proof.get("verified")
    gain = None
    if isinstance(verified, dict) and (speedup := _number(verified.get("speedup"))) is not None:
        gain = Gain(
            speedup,
            _number(verified.get("speedup_low")),
            _number(verified.get("speedup_high")),
            measured=True,
            basis="the advice as written against the loader's own settings, timed side by "
            f"side in the doctor run ({verified.get('rounds', '?')} interleaved rounds)",
        )
    elif (estimate := _number(proof.get("gain"))) is not None:
        gain = Gain(
            estimate,
            None,
            None,
            measured=False,
            basis="the calibration's search against the loader's own settings (an estimate, "
            "not timed as written)",
        )
    framework, dataset = record.get("framework"), proof.get("dataset")
    return Calibrated(
        config=config,
        measured_at=path.stat().st_mtime if created is None else created,
        gain=gain,
        source=f"the doctor run {folder}",
        framework=framework if isinstance(framework, str) else None,
        dataset=dataset if isinstance(dataset, str) else None,
        ran_with={
            k: v
            for k in ("num_workers", "prefetch_factor", "pin_memory", "batch_size")
            if isinstance(v := proof.get(k), int | bool | None)
        },
    )


@dataclass(frozen=True)
class _Entry:
    key: str  # environment/dataset/batch_size/mode[/variant]
    calibration: Calibration

    @property
    def digest(self) -> str:
        return self.key.split("/")[1]

    @property
    def selector(self) -> str:
        return self.key.split("/", 1)[1]

    @property
    def dataset_class(self) -> str:
        found = self.calibration.dataset.get("class")
        return found if isinstance(found, str) else "?"

    @property
    def short_class(self) -> str:
        return self.dataset_class.rsplit(".", 1)[-1]

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.calibration.created_at))
        size = self.calibration.chosen.batch_size
        return f"{self.dataset_class}, batch_size {size}, {self.calibration.mode}, {when}"


def from_store(
    path: Path,
    *,
    environment: str,
    located: Located | None = None,
    dataset: str | None = None,
    pick: str | None = None,
) -> Calibrated:
    """The latest calibration stored in ``path`` (``.trainperf/calibration.json``) for
    ``environment`` (an environment fingerprint's digest) and one dataset.

    The dataset is the one ``pick`` names (a store key without its environment, a prefix
    of it, or the dataset's class), else ``dataset`` (a dataset fingerprint's digest),
    else the one whose class and batch size match the located call's
    where several are stored. Of one dataset's entries, the one measured end to end
    wins over loading only (it saw the training step), then the newest. The gain is the
    choice over ``workers=0`` with every CPU to the training process.

    Raises :class:`UsageError` when nothing is stored for this environment or the
    dataset, or when several datasets remain (the message lists them, each with the
    ``--calibration`` value that picks it); :class:`RecordError` for a store that is not
    one.
    """
    from trainperf.calibration.api import Calibration
    from trainperf.calibration.store import DEFAULT_TTL_S, CalibrationStore

    everything = CalibrationStore(path).entries()
    entries = []
    for key, entry in everything.items():
        result = entry.get("result")
        if key.split("/")[0] != environment or key.count("/") < 3 or not isinstance(result, dict):
            continue
        try:
            entries.append(_Entry(key, Calibration.from_json(result)))
        except RecordError:
            continue  # an entry this version cannot read: calibrate measures again too
    if not entries:
        others = f" ({len(everything)} stored for other environments)" if everything else ""
        raise UsageError(
            f"no calibration stored for this environment in {path}{others}; run trainperf "
            "calibrate pkg.module:factory here first, or give --from RUN (a doctor run)"
        )
    chosen = _narrow(entries, located=located, dataset=dataset, pick=pick, path=path)
    speedup = chosen.calibration.speedup
    gain = None
    if speedup is not None:
        gain = Gain(
            speedup.value,
            speedup.low,
            speedup.high,
            measured=True,
            basis="the calibration's choice over workers=0 with every CPU to the training "
            "process (timed in separate runs)",
        )
    age_days = (time.time() - chosen.calibration.created_at) / 86400
    stale = (
        f"; {age_days:.0f} days old, calibrate again" if age_days > DEFAULT_TTL_S / 86400 else ""
    )
    return Calibrated(
        config=chosen.calibration.chosen,
        measured_at=chosen.calibration.created_at,
        gain=gain,
        source=f"the calibration stored in {path} ({chosen.describe()}{stale})",
        dataset=chosen.dataset_class,
    )


def _narrow(
    entries: list[_Entry],
    *,
    located: Located | None,
    dataset: str | None,
    pick: str | None,
    path: Path,
) -> _Entry:
    found = entries
    if pick is not None:
        found = [
            e
            for e in entries
            if pick in (e.key, e.dataset_class, e.short_class) or e.selector.startswith(pick)
        ]
        if not found:
            raise UsageError(
                f"--calibration {pick!r} names none of the calibrations stored for this "
                f"environment in {path}: {_choices(entries)}"
            )
    if dataset is not None and pick is None:
        found = [e for e in found if e.digest == dataset]
        if not found:
            raise UsageError(
                f"no calibration stored for this dataset in {path} (stored: "
                f"{_choices(entries)}); run trainperf calibrate with the same factory first"
            )
    site = None if located is None else located.site
    if site is not None and site.dataset_class is not None and _datasets(found) > 1:
        found = [e for e in found if e.short_class == site.dataset_class] or found
    if site is not None and site.batch_size is not None:
        same = [e for e in found if e.calibration.chosen.batch_size == site.batch_size]
        found = same or found
    if _datasets(found) > 1:
        raise UsageError(
            f"{_datasets(found)} datasets have a calibration stored for this environment in "
            f"{path}: {_choices(found)}"
        )
    return max(found, key=lambda e: (e.calibration.mode == "end-to-end", e.calibration.created_at))


def _datasets(entries: list[_Entry]) -> int:
    return len({e.digest for e in entries})


def _choices(entries: list[_Entry]) -> str:
    parts = []
    for entry in sorted(entries, key=lambda e: e.key):
        unique = sum(e.short_class == entry.short_class for e in entries) == 1
        pick = entry.short_class if unique else entry.selector
        parts.append(f"{entry.describe()} (--calibration {pick})")
    return "; ".join(parts)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
