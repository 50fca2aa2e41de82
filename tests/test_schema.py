"""Every ``--json`` output and JSON record carries ``schema_version``, and its keys change
only with it; records the previous release wrote are still read, newer ones refused in
one line."""

from __future__ import annotations

import json
import logging

import pytest

from _schema_kinds import KINDS, SNAPSHOTS, Kind, Workshop
from trainperf import _schema
from trainperf._schema import SCHEMA_KEY, Schema
from trainperf.errors import RecordError

REGENERATE = "python tests/schema/regenerate.py"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Workshop:
    return Workshop(tmp_path_factory.mktemp("schema"))


@pytest.mark.parametrize("kind", KINDS, ids=[kind.name for kind in KINDS])
def test_keys_change_only_with_the_version(shop: Workshop, kind: Kind) -> None:
    instance = kind.produce(shop)
    found = kind.version(instance)
    if found != kind.schema.version:
        pytest.fail(
            f"{kind.name} carries {SCHEMA_KEY} {found!r}, not {kind.constant} "
            f"({kind.schema.version}): stamp it with {kind.constant}.stamp() from "
            f"src/trainperf/_schema.py where it is written"
        )
    if not kind.snapshot.is_file():
        pytest.fail(f"no snapshot {kind.snapshot} for {kind.name}: write it with `{REGENERATE}`")
    snapshot = json.loads(kind.snapshot.read_text(encoding="utf-8"))
    if snapshot["schema_version"] != kind.schema.version:
        pytest.fail(
            f"{kind.constant} is {kind.schema.version}, the snapshot of {kind.name} was taken "
            f"at {snapshot['schema_version']}: regenerate it with `{REGENERATE}`"
        )
    keys, expected = set(kind.keys(instance)), set(snapshot["keys"])
    if keys != expected:
        added = ", ".join(sorted(keys - expected)) or "none"
        removed = ", ".join(sorted(expected - keys)) or "none"
        pytest.fail(
            f"keys of {kind.name} changed (added: {added}, removed: {removed}) without a "
            f"schema_version bump: bump {kind.constant} in src/trainperf/_schema.py and "
            f"regenerate with `{REGENERATE}`"
        )


def test_every_version_has_a_snapshot_and_every_snapshot_a_kind() -> None:
    constants = {name for name, value in vars(_schema).items() if isinstance(value, Schema)}
    assert constants == {kind.constant for kind in KINDS}
    assert sorted(path.stem for path in SNAPSHOTS.glob("*.json")) == sorted(k.name for k in KINDS)


# -- the helpers ---------------------------------------------------------------------------

OLD = Schema("thing", 3, oldest=2, legacy=("schema", "thing/1"), fix="remove it")


def test_a_stamp_comes_first_and_replaces_any_other() -> None:
    stamped = OLD.stamp({"a": 1, SCHEMA_KEY: 9, "b": 2})
    assert list(stamped.items()) == [(SCHEMA_KEY, 3), ("a", 1), ("b", 2)]


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (
            {SCHEMA_KEY: 4},
            [
                "f.json: thing of schema_version 4, written by a newer trainperf",
                "this one reads 2-3",
                "pip install -U trainperf",
                "remove it",
            ],
        ),
        ({SCHEMA_KEY: 1}, ["schema_version 1, older than this trainperf reads (2-3)"]),
        ({}, ["f.json is not a trainperf thing (no schema_version); remove it"]),
        ({SCHEMA_KEY: "3"}, ["has schema_version '3', not a version"]),
        ({"schema": "other/1"}, ["it has schema 'other/1' and no schema_version"]),
    ],
)
def test_a_version_it_cannot_read_is_one_line_naming_the_file_and_the_fix(
    data: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(RecordError) as caught:
        OLD.check(data, source="f.json")
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_versions_it_reads() -> None:
    assert OLD.check({SCHEMA_KEY: 2}, source="f") == 2
    assert OLD.check({SCHEMA_KEY: 3}, source="f") == 3
    assert (
        Schema("thing", 2, legacy=("schema", "thing/1")).check({"schema": "thing/1"}, source="f")
        == 1
    )
    assert Schema("thing", 2).check({}, source="f", unmarked=1) == 1


# -- the previous release's records are read; a newer one's are refused -----------------


def _run_folder(tmp_path, meta: dict[str, object]):
    from trainperf.monitoring.records import Period

    folder = tmp_path / "run"
    folder.mkdir()
    steps = [Period("train", i, 0, float(i), 1.0, 0.6, 8) for i in range(10)]
    (folder / "steps.jsonl").write_text("".join(p.to_line() + "\n" for p in steps))
    base = {
        "run_id": "run",
        "command": "python train.py",
        "started_at": 1.7e9,
        "pid": 1,
        "rank": None,
        "fingerprint": {"schema": 1, "digest": "x", "components": {"cpu_budget": 2.0}},
    }
    (folder / "meta.json").write_text(json.dumps({**base, **meta}))
    return folder


def _report(folder, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from trainperf.cli import main

    code = main(["report", str(folder), "--json"])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_run_folder_of_the_previous_release_is_reported(tmp_path, capsys) -> None:
    folder = _run_folder(tmp_path, {"schema": 1})  # before schema_version; no "tokens"
    (folder / "device_memory.json").write_text(
        '{"epochs": [{"epoch": 0, "allocated_peak_bytes": 1, "reserved_peak_bytes": 2}]}'
    )
    (folder / "probe.json").write_text('{"steps": 8, "step_s": 0.5}')
    (folder / "anatomy.jsonl").write_text('{"anatomy": 1, "interval_s": 0.02}\n')
    code, out, err = _report(folder, capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data[SCHEMA_KEY] == _schema.REPORT.version
    assert data["steps"] == 10
    assert data["epochs"][0]["device_reserved_peak_bytes"] == 2


def test_a_run_folder_of_a_newer_release_is_one_line(tmp_path, capsys) -> None:
    folder = _run_folder(tmp_path, {SCHEMA_KEY: 99})
    code, out, err = _report(folder, capsys)
    assert (code, out) == (2, "")
    (line,) = err.splitlines()
    assert line.startswith(f"trainperf: error: {folder / 'meta.json'}: run record of ")
    newest = _schema.RUN_RECORDS.version
    assert f"schema_version 99, written by a newer trainperf (this one reads 1-{newest})" in line
    assert "upgrade trainperf (pip install -U trainperf)" in line


def test_doctor_reports_old_and_newer(tmp_path) -> None:
    from trainperf.cli.report import read_doctor

    finding = {
        "kind": "input-bound",
        "title": "t",
        "evidence": [],
        "fix": "f",
        "gain": "g",
        "gain_source": "estimated",
        "overrides": [],
    }
    path = tmp_path / "doctor.json"
    path.write_text(json.dumps({"schema": "trainperf.doctor/1", "findings": [finding]}))
    assert read_doctor(tmp_path) == [finding]
    path.write_text(json.dumps({SCHEMA_KEY: 99, "findings": [finding]}))
    with pytest.raises(RecordError, match=r"doctor.json: doctor report of schema_version 99"):
        read_doctor(tmp_path)


def test_stores_old_and_newer(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    from trainperf.cache.store import EntryStore
    from trainperf.calibration.store import CalibrationStore
    from trainperf.startup.costs import PackageCostStore

    calibration = tmp_path / "calibration.json"
    entry = {"created_at": 100.0, "ttl_s": 10.0, "result": {}}
    old = {"schema": 1, "kind": "trainperf.calibration", "entries": {"k": entry}}
    calibration.write_text(json.dumps(old))
    assert CalibrationStore(calibration).get("k", ttl_s=10.0, now=105.0) == entry
    calibration.write_text(json.dumps({**old, "schema": None, SCHEMA_KEY: 99}))
    with pytest.raises(RecordError, match="calibration store of schema_version 99"):
        CalibrationStore(calibration).get("k", ttl_s=10.0)

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "trainperf-cache.json").write_text('{"kind": "trainperf.cache", "schema": 1}')
    assert EntryStore.open(cache, create=False).root == cache
    (cache / "trainperf-cache.json").write_text(
        f'{{"kind": "trainperf.cache", "{SCHEMA_KEY}": 99}}'
    )
    with pytest.raises(RecordError, match=r"cache of schema_version 99.*clear it or use another"):
        EntryStore.open(cache, create=False)

    costs = tmp_path / "import_costs.json"
    known = {"fp": {"json==0": {"cost_s": 0.5, "loads": ["json"], "measured": True}}}
    costs.write_text(json.dumps({"schema": 1, "entries": known}))
    assert PackageCostStore(costs, "fp")._data == known["fp"]
    costs.write_text(json.dumps({SCHEMA_KEY: 99, "entries": known}))
    with caplog.at_level(logging.WARNING, logger="trainperf.startup"):
        assert PackageCostStore(costs, "fp")._data == {}
    assert "import-cost store of schema_version 99" in caplog.text
