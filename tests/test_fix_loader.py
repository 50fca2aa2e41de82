"""``trainperf fix loader``: the calibrated settings written into the call that builds the
training loader (or where its values are configured), checked and re-measured."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from _support import run_cli
from trainperf.calibration.api import Calibration
from trainperf.calibration.config import LoaderConfig
from trainperf.calibration.dataset import dataset_fingerprint
from trainperf.calibration.speedup import Speedup
from trainperf.calibration.store import CalibrationStore, store_key
from trainperf.calibration.target import load_target
from trainperf.calibration.verify import SideBySide
from trainperf.cli import main
from trainperf.errors import UsageError
from trainperf.fix.loader import (
    Calibrated,
    Gain,
    Remeasured,
    from_run,
    from_store,
    locate,
    plan,
    remeasure,
)

DIGITS = Path(__file__).parents[1] / "src" / "trainperf" / "examples" / "digits"
MEASURED_AT = time.mktime((2026, 5, 4, 12, 0, 0, 0, 0, -1))
DATE = "2026-05-04"
CHOSEN = LoaderConfig(batch_size=32, num_workers=2, persistent_workers=True, prefetch_factor=2)

SCRIPT = '''\
"""A training script whose samples wait on a timer (remote storage)."""
import time

import torch
from torch.utils.data import DataLoader, Dataset


class Slow(Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, index):
        time.sleep(0.002)
        return torch.full((4,), float(index))


def main():
    dataset = Slow()
    loader = DataLoader(dataset, batch_size=32)
    for step, batch in enumerate(loader):
        if step == 1:
            break
    print("trained", tuple(batch.shape))


if __name__ == "__main__":
    main()
'''


def calibrated(config: LoaderConfig = CHOSEN, **changes: object) -> Calibrated:
    gain = Gain(2.5, 2.1, 2.9, measured=True, basis="planted")
    found = Calibrated(config, MEASURED_AT, gain, "a planted calibration")
    return Calibrated(**{**found.__dict__, **changes})  # type: ignore[arg-type]


PLANTED_SPEEDUP = Speedup(2.5, 2.1, 2.9)


def plant_store(
    home: Path, *entries: tuple[str, str, LoaderConfig], speedup: Speedup = PLANTED_SPEEDUP
) -> None:
    """Calibrations of this environment in ``home``: (digest, dataset class, choice)."""
    from trainperf.fingerprint import environment_fingerprint

    environment = environment_fingerprint().digest
    store = CalibrationStore(home / "calibration.json")
    for digest, kind, chosen in entries:
        result = Calibration(
            chosen,
            100.0,
            1.0,
            (),
            "measured",
            "planted",
            created_at=MEASURED_AT,
            dataset={"class": kind, "length": 64, "sample": None, "code": "0" * 16},
            speedup=speedup,
        )
        key = store_key(environment, digest, chosen.batch_size, "loader")
        store.put(key, {"created_at": MEASURED_AT, "ttl_s": 1e9, "result": result.to_json()})


def call_keywords(path: Path, line: int) -> dict[str, object]:
    """The literal keyword arguments of the call starting on ``line``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.lineno == line:
            return {
                k.arg: ast.literal_eval(k.value)
                for k in node.keywords
                if k.arg and isinstance(k.value, ast.Constant)
            }
    raise AssertionError(f"no call on line {line}")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRAINPERF_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


# -- a plain script --------------------------------------------------------------------


@pytest.mark.slow
def test_a_plain_script_gets_the_settings_runs_and_a_second_fix_changes_nothing(
    tmp_path: Path,
) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    plant_store(tmp_path / "home", ("a" * 16, "train.Slow", CHOSEN.replace(main_threads=1)))
    env = {"TRAINPERF_HOME": str(tmp_path / "home")}
    fixed = run_cli("fix", "loader", str(script), "--no-verify", "--write", env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert f"written: {script}" in fixed.stdout
    assert (tmp_path / "train.py.orig").read_text() == SCRIPT
    text = script.read_text()
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "DataLoader(dataset" in t)
    # pin_memory=False is DataLoader's default, and prefetch_factor=2 its default with
    # workers: neither is written.
    assert call_keywords(script, line) == {
        "batch_size": 32,
        "num_workers": 2,
        "persistent_workers": True,
    }
    assert text.splitlines()[line - 1].endswith(
        f"# trainperf fix loader {DATE}: 2.5x measured (2.1x-2.9x)"
    )
    assert text.splitlines()[line - 2].startswith("    torch.set_num_threads(1)  # trainperf")
    ran = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert ran.returncode == 0, ran.stderr
    assert "trained (32, 4)" in ran.stdout
    again = run_cli("fix", "loader", str(script), "--write", env=env)
    assert again.returncode == 0, again.stderr
    assert "nothing to change" in again.stdout
    assert script.read_text() == text
    assert not (tmp_path / "train.py.orig.1").exists()


def test_a_literal_is_replaced_and_every_other_byte_kept(tmp_path: Path) -> None:
    path = tmp_path / "loaders.py"
    path.write_text(
        textwrap.dedent(
            """\
            from torch.utils.data import DataLoader


            def make_loaders(train_set, val_set):
                # Training data, shuffled.
                train_loader = DataLoader(
                    train_set,  # the big one
                    batch_size=32,
                    shuffle=True,
                    num_workers=0,  # TODO: try more
                    drop_last=True,
                )
                val_loader = DataLoader(val_set, batch_size=64, num_workers=0)  # validation
                return train_loader, val_loader
            """
        )
    )
    chosen = CHOSEN.replace(num_workers=3, prefetch_factor=4)
    fix = plan(locate(path), calibrated(chosen))
    assert fix.changed
    assert fix.edits[0].after == textwrap.dedent(
        f"""\
        from torch.utils.data import DataLoader


        def make_loaders(train_set, val_set):
            # Training data, shuffled.
            train_loader = DataLoader(  # trainperf fix loader {DATE}: 2.5x measured (2.1x-2.9x)
                train_set,  # the big one
                batch_size=32,
                shuffle=True,
                num_workers=3,  # TODO: try more
                drop_last=True,
                persistent_workers=True,
                prefetch_factor=4,
            )
            val_loader = DataLoader(val_set, batch_size=64, num_workers=0)  # validation
            return train_loader, val_loader
        """
    )
    assert [(c.line, c.argument, c.old, c.new) for c in fix.changes] == [
        (10, "num_workers", "0", "3"),
        (6, "persistent_workers", None, "True"),
        (6, "prefetch_factor", None, "4"),
    ]
    assert fix.original == LoaderConfig(batch_size=32)
    assert fix.written == chosen
    # Without workers, what needs them is switched off rather than left to make torch raise.
    path.write_text(fix.edits[0].after)
    none = plan(locate(path), calibrated(LoaderConfig(batch_size=32)))
    path.write_text(none.edits[0].after)
    assert call_keywords(path, 6) == {
        "batch_size": 32,
        "shuffle": True,
        "num_workers": 0,
        "drop_last": True,
        "persistent_workers": False,
        "prefetch_factor": None,
    }


def test_the_training_loader_is_picked_and_line_picks_another(tmp_path: Path) -> None:
    path = tmp_path / "module.py"
    path.write_text(
        textwrap.dedent(
            """\
            import torch.utils.data as data


            class Digits:
                def val_dataloader(self):
                    return data.DataLoader(self.val_set, batch_size=32)

                def train_dataloader(self):
                    return data.DataLoader(self.train_set, batch_size=32)


            def loaders(train_ds):
                val_loader = data.DataLoader(train_ds, batch_size=32)
                return val_loader
            """
        )
    )
    assert locate(path).site.start == 9
    assert locate(path, line=13).site.start == 13
    fix = plan(locate(path), calibrated())
    assert "return data.DataLoader(self.train_set, batch_size=32, num_workers=2" in (
        fix.edits[0].after
    )


def test_training_arguments_get_their_dataloader_fields(tmp_path: Path) -> None:
    path = tmp_path / "hf.py"
    path.write_text(
        'from transformers import TrainingArguments\n\nargs = TrainingArguments(output_dir="out", '
        "dataloader_num_workers=0)\n"
    )
    fix = plan(locate(path), calibrated())
    assert call_keywords(Path(_written(tmp_path, fix.edits[0].after)), 3) == {
        "output_dir": "out",
        "dataloader_num_workers": 2,
        "dataloader_persistent_workers": True,
        "dataloader_pin_memory": False,  # the Trainer pins by default
    }  # prefetch_factor=2 is what the Trainer's DataLoader takes with workers: not written


def _written(folder: Path, text: str) -> Path:
    path = folder / "written.py"
    path.write_text(text)
    return path


# -- values read from a configuration -------------------------------------------------------


ARGPARSE = textwrap.dedent(
    """\
    import argparse

    from torch.utils.data import DataLoader


    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--num-workers", type=int, default=0, help="loader processes")
        args = parser.parse_args()
        loader = DataLoader(list(range(64)), batch_size=32, num_workers=args.num_workers)
        return loader
    """
)


def test_an_argparse_default_is_rewritten_and_the_call_keeps_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text(ARGPARSE)
    deeper = calibrated(CHOSEN.replace(prefetch_factor=4))
    assert "prefetch_factor" not in plan(locate(path), calibrated()).edits[0].after  # 2: default
    fix = plan(locate(path), deeper)
    after = fix.edits[0].after.splitlines()
    assert after[7] == (
        '    parser.add_argument("--num-workers", type=int, default=2, help="loader processes")'
        f"  # trainperf fix loader {DATE}: 2.5x measured (2.1x-2.9x)"
    )
    call = after[9]
    assert "num_workers=args.num_workers" in call
    # What needs workers holds for any value given on the command line, 0 included.
    assert "persistent_workers=args.num_workers > 0" in call
    assert "prefetch_factor=4 if args.num_workers > 0 else None" in call
    assert (fix.changes[0].line, fix.changes[0].argument) == (8, "default of --num-workers")
    assert fix.original.num_workers == 0
    assert fix.written.num_workers == 2
    path.write_text(fix.edits[0].after)
    assert not plan(locate(path), deeper).changed


def digits_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "digits"
    shutil.copytree(DIGITS / "conf", folder / "conf")
    shutil.copy(DIGITS / "data.py", folder / "data.py")
    return folder


def test_a_hydra_value_is_pointed_at_and_edited_on_its_yaml_line(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = digits_copy(home.parent)
    plant_store(home, ("b" * 16, "torch.utils.data.dataset.TensorDataset", CHOSEN))
    data, memory = folder / "data.py", folder / "conf" / "data" / "memory.yaml"
    manual = folder / "conf" / "loop" / "manual.yaml"
    before = {p: p.read_bytes() for p in (data, memory, manual)}
    assert main(["fix", "loader", str(data), "--no-verify"]) == 0
    out, err = capsys.readouterr()
    assert {p: p.read_bytes() for p in before} == before  # a diff only, nothing written
    assert "+num_workers: 2  # trainperf fix loader" in out
    assert (
        "pointed at: num_workers comes from data.num_workers at digits/conf/data/memory.yaml:5 "
        "(0 -> 2); override: data.num_workers=2"
    ) in err
    # The other place the key is set is named, with the choice that makes it count.
    assert "digits/conf/loop/manual.yaml:7 (4)" in err
    assert "in effect with loop=manual" in err

    assert main(["fix", "loader", str(data), "--no-verify", "--write"]) == 0
    capsys.readouterr()
    old, new = before[memory].decode().splitlines(), memory.read_text().splitlines()
    assert new[:4] == old[:4]
    assert len(new) == len(old)
    assert new[4] == f"num_workers: 2  # trainperf fix loader {DATE}: 2.5x measured (2.1x-2.9x)"
    assert manual.read_bytes() == before[manual]
    assert (folder / "conf" / "data" / "memory.yaml.orig").read_bytes() == before[memory]
    from omegaconf import OmegaConf

    assert OmegaConf.load(memory).num_workers == 2
    compile(data.read_text(), str(data), "exec")
    assert "prefetch_factor=2" not in data.read_text()  # its default with workers
    assert main(["fix", "loader", str(data), "--no-verify"]) == 0
    assert "nothing to change" in capsys.readouterr().out


def test_the_yaml_the_run_read_is_the_one_edited(tmp_path: Path) -> None:
    """A doctor run of loop=manual read num_workers=4 from conf/loop/manual.yaml."""
    folder = digits_copy(tmp_path)
    ran = calibrated(CHOSEN.replace(num_workers=1), ran_with={"num_workers": 4})
    fix = plan(locate(folder / "data.py"), ran)
    edited = [p for p in fix.pointers if p.edited]
    assert [(p.file.name, p.line, p.value, p.wanted) for p in edited] == [
        ("manual.yaml", 7, "4", "1")
    ]
    assert fix.original.num_workers == 4


# -- where the settings come from -----------------------------------------------------------


def plant_run(folder: Path, proof: dict[str, object]) -> Path:
    folder.mkdir(parents=True)
    record = {"schema_version": 2, "step_verdict": "input-bound", "framework": None}
    (folder / "proofs.json").write_text(json.dumps({**record, "proofs": [proof]}))
    return folder


def calibration_proof(verified: bool = True) -> dict[str, object]:
    result = Calibration(CHOSEN, 200.0, 1.0, (), "measured", "fastest", created_at=MEASURED_AT)
    proof: dict[str, object] = {
        "kind": "calibration",
        "role": "training",
        "dataset": "train.Slow",
        "batch_size": 32,
        "num_workers": 0,
        "prefetch_factor": None,
        "pin_memory": False,
        "calibration": result.to_json(),
        "gain": 3.4,
    }
    if verified:
        proof["verified"] = {"speedup": 3.1, "speedup_low": 2.7, "speedup_high": 3.6, "rounds": 5}
    return proof


def test_a_doctor_run_gives_its_choice_and_the_gain_timed_as_written(tmp_path: Path) -> None:
    found = from_run(plant_run(tmp_path / "run", calibration_proof()))
    assert found.config == CHOSEN
    assert found.gain is not None
    assert (found.gain.low, found.gain.high) == (2.7, 3.6)
    assert found.comment() == f"# trainperf fix loader {DATE}: 3.1x measured (2.7x-3.6x)"
    assert found.ran_with["num_workers"] == 0
    estimate = from_run(plant_run(tmp_path / "estimate", calibration_proof(verified=False)))
    assert estimate.gain is not None
    assert not estimate.gain.measured
    assert estimate.comment().endswith("about 3.4x estimated")
    failed = plant_run(
        tmp_path / "failed", {"kind": "calibration", "role": "training", "error": "x"}
    )
    with pytest.raises(UsageError, match="no calibrated settings"):
        from_run(failed)


def test_the_cli_takes_a_doctor_run_folder(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = home.parent / "train.py"
    script.write_text(SCRIPT)
    run = plant_run(home.parent / "run", calibration_proof())
    assert main(["fix", "loader", str(script), "--from", str(run), "--no-verify"]) == 0
    out, err = capsys.readouterr()
    assert f"from the doctor run {run}" in err
    assert "+    loader = DataLoader(dataset, batch_size=32, num_workers=2, " in out
    assert "3.1x measured (2.7x-3.6x)" in out
    assert "not re-measured (--no-verify)" in err
    assert script.read_text() == SCRIPT


@pytest.mark.parametrize(
    ("rates", "interval", "said"),
    [
        ((5.0, 0.5), (0.4, 0.6), "not offered: the new settings measured slower than the "),
        ((10.5, 1.05), (0.9, 1.2), "re-measured 1.05x (0.90x-1.2x): its interval reaches 1x"),
    ],
    ids=["slower", "reaching-1x"],
)
def test_settings_re_measured_not_faster_are_not_written(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    rates: tuple[float, float],
    interval: tuple[float, float],
    said: str,
) -> None:
    import trainperf.fix.loader

    script = home.parent / "train.py"
    script.write_text(SCRIPT)
    (home.parent / "factory.py").write_text("def make():\n    return list(range(512))\n")
    plant_store(home, ("a" * 16, "train.Slow", CHOSEN))
    rate, speedup = rates

    def remeasured(fix: object, dataset: object, **options: object) -> Remeasured:
        found = SideBySide(
            LoaderConfig(batch_size=32), CHOSEN, (10.0,) * 3, (rate,) * 3, 4, speedup, *interval
        )
        return Remeasured(found, agrees=False)

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(trainperf.fix.loader, "remeasure", remeasured)
    code = main(["fix", "loader", str(script), "--calibration", "Slow", "--dataset",
                 f"{home.parent / 'factory.py'}:make", "--write"])  # fmt: skip
    assert code == 1
    out = capsys.readouterr().out
    assert "DOES NOT AGREE" in out  # the calibration's 2.1x-2.9x
    assert said in out
    assert script.read_text() == SCRIPT
    assert not (home.parent / "train.py.orig").exists()
    sys.modules.pop("factory", None)


def test_a_calibration_not_shown_faster_is_not_written(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = home.parent / "train.py"
    script.write_text(SCRIPT)
    # The doctor timed the advice as written: no faster than the loader's own settings.
    proof = calibration_proof()
    proof["verified"] = {"speedup": 1.01, "speedup_low": 0.96, "speedup_high": 1.07, "rounds": 5}
    run = plant_run(home.parent / "run", proof)
    assert main(["fix", "loader", str(script), "--from", str(run), "--no-verify", "--write"]) == 1
    err = capsys.readouterr().out
    assert "not offered: the new settings were not shown faster than the original" in err
    assert "the calibration's gain, 1.01x measured (0.96x-1.07x), reaches 1x" in err
    assert script.read_text() == SCRIPT
    assert not (home.parent / "train.py.orig").exists()
    # A stored calibration whose choice was no faster than loading in the training
    # process (threads only, say): the same.
    plant_store(home, ("a" * 16, "train.Slow", CHOSEN), speedup=Speedup(1.0, 0.97, 1.03))
    assert main(["fix", "loader", str(script), "--no-verify", "--write"]) == 1
    assert "reaches 1x: not shown faster" in capsys.readouterr().out
    assert script.read_text() == SCRIPT
    # An estimate under 1.03x, no interval: the same; one above is offered.
    proof = calibration_proof(verified=False)
    proof["gain"] = 1.01
    low = plant_run(home.parent / "low", proof)
    assert main(["fix", "loader", str(script), "--from", str(low), "--no-verify"]) == 1
    assert "is under 1.03x: not shown faster" in capsys.readouterr().err
    proof["gain"] = 1.5
    high = plant_run(home.parent / "high", proof)
    assert main(["fix", "loader", str(script), "--from", str(high), "--no-verify"]) == 0


def test_the_store_picks_the_dataset_of_the_call_or_asks(tmp_path: Path) -> None:
    from trainperf.fingerprint import environment_fingerprint

    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    plant_store(
        tmp_path,
        ("a" * 16, "train.Slow", CHOSEN),
        ("c" * 16, "other.Images", CHOSEN.replace(num_workers=4)),
    )
    store, environment = tmp_path / "calibration.json", environment_fingerprint().digest
    found = from_store(store, environment=environment, located=locate(path))
    assert found.dataset == "train.Slow"
    assert found.config == CHOSEN
    with pytest.raises(UsageError) as asked:
        from_store(store, environment=environment)
    assert "--calibration Slow" in str(asked.value)
    assert "--calibration Images" in str(asked.value)
    picked = from_store(store, environment=environment, pick="Images")
    assert picked.config.num_workers == 4
    with pytest.raises(UsageError, match="no calibration stored for this environment"):
        from_store(store, environment="elsewhere")


# -- re-measured ----------------------------------------------------------------------------

FACTORY = textwrap.dedent(
    """\
    import time

    import torch
    from torch.utils.data import Dataset


    class Waits(Dataset):
        def __len__(self):
            return 96

        def __getitem__(self, index):
            time.sleep(0.004)
            return torch.zeros(4)


    def make():
        return Waits()
    """
)


@pytest.mark.slow
def test_the_new_settings_are_re_measured_against_the_original(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = home.parent
    monkeypatch.setattr(sys, "path", list(sys.path))  # load_target adds the factory's folder
    (folder / "factory.py").write_text(FACTORY)
    (folder / "train.py").write_text(
        "from torch.utils.data import DataLoader\n\n"
        "def build(ds):\n    return DataLoader(ds, batch_size=8)\n"
    )
    chosen = LoaderConfig(batch_size=8, num_workers=2, persistent_workers=True, prefetch_factor=2)
    # Stored under the dataset's own fingerprint: --dataset picks it.
    digest = dataset_fingerprint(load_target("factory.py:make").dataset)[0]
    plant_store(home, (digest, "factory.Waits", chosen), ("e" * 16, "other.Images", CHOSEN))
    code = main(
        ["fix", "loader", "train.py", "--dataset", "factory.py:make",
         "--rounds", "3", "--batches", "4", "--json"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    again = report["remeasured"]
    assert again["original"]["num_workers"] == 0
    assert again["advised"]["num_workers"] == 2
    assert again["speedup"] > 1  # the samples wait on a timer: two workers wait together
    assert again["speedup_low"] <= again["speedup"] <= again["speedup_high"]
    gain = report["gain"]
    overlap = max(gain["low"], again["speedup_low"]) <= min(gain["high"], again["speedup_high"])
    assert again["agrees"] is overlap
    assert report["changed"]
    assert report["diff"].startswith("--- a/train.py\n+++ b/train.py\n")
    assert (folder / "train.py").read_text().count("num_workers") == 0  # not --write
    sys.modules.pop("factory", None)


def test_a_re_measure_outside_the_calibration_s_interval_is_said_plainly() -> None:
    before = LoaderConfig(batch_size=8)
    found = SideBySide(before, CHOSEN, (10.0, 10.0), (12.0, 12.5), 4, 1.2, 1.1, 1.3)
    gain = Gain(2.5, 2.1, 2.9, measured=True, basis="planted")
    text = Remeasured(found, gain.overlaps(1.1, 1.3)).describe(gain)
    assert "DOES NOT AGREE with the calibration's 2.5x measured (2.1x-2.9x)" in text
    assert "agrees with" in Remeasured(found, True).describe(Gain(1.2, 1.0, 1.5, True, "x"))


def test_a_dataset_too_small_to_re_measure_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    fix = plan(locate(path), calibrated())
    with pytest.raises(UsageError, match="re-measuring reads at least"):
        remeasure(fix, list(range(40)))


# -- bad inputs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "extra", "fragment"),
    [
        ("missing.py", None, [], "no such file"),
        ("broken.py", "def f(:\n    pass\n", [], "is not valid Python (line 1"),
        ("plain.py", "x = 1\n", [], "no DataLoader(...) or TrainingArguments(...) call"),
        ("train.py", SCRIPT, ["--line", "3"], "no DataLoader call on line 3"),
        ("train.py", SCRIPT, [], "no calibration stored for this environment"),
        ("train.py", SCRIPT, ["--from", "nowhere"], "no run at 'nowhere'"),
    ],
)
def test_bad_inputs_are_one_line_and_change_nothing(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    text: str | None,
    extra: list[str],
    fragment: str,
) -> None:
    path = home.parent / name
    if text is not None:
        path.write_text(text)
    before = sorted(p.name for p in home.parent.iterdir())
    assert main(["fix", "loader", str(path), "--write", *extra]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("trainperf: error: ")
    assert err.count("\n") == 1
    assert fragment in err
    assert sorted(p.name for p in home.parent.iterdir()) == before  # no .orig either
    if text is not None:
        assert path.read_text() == text


def test_importing_the_fix_loads_neither_libcst_nor_torch() -> None:
    code = (
        "import sys, trainperf.fix.loader, trainperf.cli.fix_loader; "
        "print(sorted(m for m in ('libcst', 'torch', 'numpy') if m in sys.modules))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.strip() == "[]"


def test_a_calibration_of_another_dataset_is_not_written_in(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant_store(home, ("d1", "slowds.SlowPages", CHOSEN))
    script = home.parent / "other.py"
    text = (
        "import torch\nfrom torch.utils.data import DataLoader, TensorDataset\n\n\n"
        "def main():\n    data = TensorDataset(torch.zeros(64, 4))\n"
        "    return DataLoader(data, batch_size=32)\n"
    )
    script.write_text(text)
    assert main(["fix", "loader", str(script), "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert "reads a TensorDataset, the calibration measured a slowds.SlowPages" in err
    assert script.read_text() == text


def test_the_doctor_offers_no_loader_patch_not_shown_faster(home: Path) -> None:
    from types import SimpleNamespace

    from trainperf.doctor.patches import offer_patches

    script = home.parent / "train.py"
    script.write_text(SCRIPT)
    findings = [SimpleNamespace(kind="input-bound")]
    proof = calibration_proof()
    shown = offer_patches(
        findings,  # type: ignore[arg-type]  # only the kind is read
        entry=str(script),
        run=plant_run(home.parent / "faster", proof),
        say=lambda _: None,
    )
    assert [(p["fix"], p["failure"]) for p in shown] == [("loader", None)]
    assert "num_workers=2" in str(shown[0]["diff"])
    proof["verified"] = {"speedup": 1.01, "speedup_low": 0.96, "speedup_high": 1.07, "rounds": 5}
    (unproven,) = offer_patches(
        findings,  # type: ignore[arg-type]
        entry=str(script),
        run=plant_run(home.parent / "level", proof),
        say=lambda _: None,
    )
    assert (unproven["diff"], unproven["command"]) == ("", None)
    assert str(unproven["failure"]).startswith("not offered: the calibration's gain, 1.01x")


def test_more_workers_than_cpus_are_said_to_make_dataloader_warn(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    cpus = len(os.sched_getaffinity(0))
    many = plan(locate(path), calibrated(CHOSEN.replace(num_workers=cpus + 2)))
    (note,) = [n for n in many.notes if "it will warn" in n]
    assert note.startswith(f"num_workers={cpus + 2} is more than the {cpus} CPUs DataLoader")
    few = plan(locate(path), calibrated(CHOSEN.replace(num_workers=1)))
    assert not any("it will warn" in n for n in few.notes)
