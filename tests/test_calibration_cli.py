"""`trainperf calibrate TARGET`, the dataset fingerprint, find_max_batch_size, and DDP."""

from __future__ import annotations

import json
import textwrap

import pytest

from _support import run_cli, run_ranks

torch = pytest.importorskip("torch")

from trainperf.calibration.api import find_max_batch_size  # noqa: E402
from trainperf.calibration.dataset import dataset_fingerprint  # noqa: E402
from trainperf.errors import UsageError  # noqa: E402

FACTORY = textwrap.dedent(
    """
    import torch
    from torch.utils.data import TensorDataset

    def digits_like():
        return TensorDataset(torch.randn(1024, 64), torch.randint(0, 10, (1024,)))

    def with_options():
        return {"dataset": digits_like(), "batch_size": 32}

    def broken():
        raise ValueError("no data today")

    def not_callable_step():
        return {"dataset": digits_like(), "train_step": 3}
    """
)


@pytest.mark.slow
def test_json_output_and_the_store(tmp_path) -> None:
    (tmp_path / "factory.py").write_text(FACTORY)
    env = {"TRAINPERF_HOME": str(tmp_path / "home")}
    target = f"{tmp_path / 'factory.py'}:with_options"
    proc = run_cli("calibrate", target, "--json", "--samples", "4", env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["chosen"]["batch_size"] == 32
    assert data["chosen"]["num_workers"] == 0
    assert data["samples_per_s"] > 0
    assert data["elapsed_s"] > 0
    assert {c["status"] for c in data["candidates"]} <= {"chosen", "measured", "dropped"}
    # Loader only: the CPU kept for the step is stated, the optimum past it shown.
    assert data["budget"]["step_cpus"] == 1
    assert data["budget"]["step_measured"] is False
    assert data["loader_only"]["config"]["batch_size"] == 32
    assert (data["epochs"]["count"], data["epochs"]["count_given"]) == (10, False)
    assert data["epochs"]["batches"] == 32  # 1024 samples in batches of 32
    assert isinstance(data["skipped"], list)
    again = run_cli("calibrate", target, "--no-calibrate", env=env)
    assert again.returncode == 0, again.stderr
    assert "(loader, stored)" in again.stdout
    plain = run_cli("calibrate", target, "--no-store", "--samples", "4", "--epochs", "3", env=env)
    assert "workers  prefetch  main threads" in plain.stdout
    assert "  paste: DataLoader(dataset, batch_size=32, num_workers=" in plain.stdout
    assert "  CPU budget: " in plain.stdout
    assert "  loader-only optimum (no CPU kept for a training step): " in plain.stdout
    assert "over 3 epochs of 32 batches, start-up included" in plain.stdout


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("nocolon", "must look like pkg.module:factory"),
        ("no_such_module_xyz:make", "cannot import no_such_module_xyz: ModuleNotFoundError"),
        ("{dir}/missing.py:make", "no such file"),
        ("{dir}/factory.py:nothing", "has no callable 'nothing'"),
        ("{dir}/factory.py:broken", "raised ValueError: no data today"),
        ("{dir}/factory.py:not_callable_step", "gave a train_step that is not callable"),
    ],
)
def test_bad_targets_are_one_line_errors(tmp_path, target, fragment) -> None:
    (tmp_path / "factory.py").write_text(FACTORY)
    proc = run_cli("calibrate", target.format(dir=tmp_path))
    assert proc.returncode == 2
    assert fragment in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_contradicting_flags(tmp_path) -> None:
    proc = run_cli("calibrate", "x:y", "--force", "--no-calibrate")
    assert proc.returncode == 2
    assert "contradict" in proc.stderr


def test_a_bad_epoch_count_is_one_line(tmp_path) -> None:
    (tmp_path / "factory.py").write_text(FACTORY)
    env = {"TRAINPERF_HOME": str(tmp_path / "home")}
    proc = run_cli("calibrate", f"{tmp_path / 'factory.py'}:digits_like", "--epochs", "0", env=env)
    assert proc.returncode == 2
    assert "epochs must be an integer >= 1, got 0" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "home" / "calibration.json").exists()


def test_a_foreign_store_stops_the_command_and_survives(tmp_path) -> None:
    (tmp_path / "factory.py").write_text(FACTORY)
    home = tmp_path / "home"
    home.mkdir()
    (home / "calibration.json").write_text('{"kind": "someone else"}')
    proc = run_cli(
        "calibrate", f"{tmp_path / 'factory.py'}:digits_like", env={"TRAINPERF_HOME": str(home)}
    )
    assert proc.returncode == 2
    assert "not a trainperf calibration store" in proc.stderr
    assert (home / "calibration.json").read_text() == '{"kind": "someone else"}'


def _module_with(tmp_path, name: str, body: str):
    import importlib.util

    path = tmp_path / f"{name}.py"
    path.write_text(body)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_dataset_fingerprint_follows_the_code_and_the_samples(tmp_path) -> None:
    source = textwrap.dedent(
        """
        import torch
        class Pages(torch.utils.data.Dataset):
            def __init__(self, n):
                self.n = n
            def __len__(self):
                return self.n
            def __getitem__(self, i):
                return torch.zeros(3, 8, 8)
        """
    )
    first = _module_with(tmp_path, "pages_a", source)
    digest, described = dataset_fingerprint(first.Pages(10))
    assert dataset_fingerprint(_module_with(tmp_path, "pages_a", source).Pages(10))[0] == digest
    assert dataset_fingerprint(first.Pages(11))[0] != digest
    # The next run, after __getitem__ was edited: same shapes, other code.
    edited = _module_with(tmp_path, "pages_a", source.replace("zeros", "ones"))
    assert dataset_fingerprint(edited.Pages(10))[0] != digest
    assert described["sample"] == {"type": "Tensor", "shape": [3, 8, 8], "dtype": "torch.float32"}


def test_find_max_batch_size_backs_off_from_memory_errors() -> None:
    tried = []

    def step(size: int) -> None:
        tried.append(size)
        if size > 100:
            raise MemoryError

    assert find_max_batch_size(step, start=4, safety=0.9) == 90
    assert tried[:6] == [4, 8, 16, 32, 64, 128]
    with pytest.raises(UsageError, match="even batch size 104 runs out of memory"):
        find_max_batch_size(step, start=104)
    with pytest.raises(UsageError, match="safety must be in"):
        find_max_batch_size(step, safety=1.5)


DDP = textwrap.dedent(
    """
    import json, logging, sys
    import torch
    import torch.distributed as dist
    from torch.utils.data import TensorDataset
    import trainperf

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    dist.init_process_group("gloo")
    data = TensorDataset(torch.randn(512, 8))
    result = trainperf.calibrate(data, batch_size=16, samples=4, persist=False)
    # One write: both ranks print at once, and an unbuffered print (PYTHONUNBUFFERED)
    # writes the line and its newline apart, so the two lines could run together.
    sys.stdout.write(json.dumps({"rank": dist.get_rank(), "chosen": result.chosen.to_json(),
                                 "candidates": len(result.candidates)}) + "\\n")
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
def test_rank_zero_measures_and_every_rank_gets_its_choice(tmp_path) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(DDP)
    proc = run_ranks(script, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert sorted(r["rank"] for r in results) == [0, 1]
    assert results[0]["chosen"] == results[1]["chosen"]
    assert results[0]["candidates"] == results[1]["candidates"] >= 1
    # only rank 0 measured: one set of candidate lines in the whole job's output
    measured = [line for line in proc.stdout.splitlines() if line.startswith("calibration_chosen")]
    assert len(measured) == 1
