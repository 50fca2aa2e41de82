"""``shm-exhausted``: a DataLoader worker that dies for want of /dev/shm is named as such."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

from trainperf.doctor.shm import KIND, shm_finding, shm_sign

if TYPE_CHECKING:
    from pathlib import Path

GIB = 1 << 30
MIB = 1 << 20

# torch's own words, verbatim: torch/csrc/DataLoader.cpp (the training process's SIGCHLD
# handler, and the worker's SIGBUS handler) and aten/src/ATen/MapAllocator.cpp.
KILLED = (
    "RuntimeError: DataLoader worker (pid 5764) is killed by signal: Bus error. It is "
    "possible that dataloader's workers are out of shared memory. Please try to raise your "
    "shared memory limit."
)
WORKER = (
    "ERROR: Unexpected bus error encountered in worker. This might be caused by "
    "insufficient shared memory (shm)."
)
ALLOCATE = (
    "RuntimeError: unable to allocate shared memory(shm) for file </torch_4242_3279272408_0>: "
    "No space left on device (28)"
)

# A loop whose DataLoader workers die the way a full /dev/shm kills them: SIGBUS, caught
# by torch's handler in the worker, then reported by the training process.
SIGBUS_LOOP = textwrap.dedent(
    """
    import os, signal
    import torch
    from torch.utils.data import DataLoader, Dataset, get_worker_info

    class Images(Dataset):
        def __len__(self):
            return 64
        def __getitem__(self, i):
            if get_worker_info() is not None:
                os.kill(os.getpid(), signal.SIGBUS)
            return torch.zeros(3, 32, 32)

    model = torch.nn.Linear(3 * 32 * 32, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(Images(), batch_size=8, num_workers=2, prefetch_factor=3)
    for x in loader:
        opt.zero_grad()
        model(x.flatten(1)).sum().backward()
        opt.step()
    """
)

# A worker whose batch cannot be given its shared-memory file: torch's message, raised
# in the worker, re-raised by the DataLoader in the training process.
ALLOCATE_LOOP = SIGBUS_LOOP.replace(
    "os.kill(os.getpid(), signal.SIGBUS)",
    "raise RuntimeError("
    '"unable to allocate shared memory(shm) for file </torch_4242_3279272408_0>: "'
    ' "No space left on device (28)")',
)

# The same death while iter(loader) is still prefetching: the workers die at start-up while
# the sampler waits on a timer, so torch's SIGCHLD handler raises from the iterator's
# construction, before the first batch is asked for.
EARLY_LOOP = (
    SIGBUS_LOOP.replace(
        "        if get_worker_info() is not None:\n"
        "            os.kill(os.getpid(), signal.SIGBUS)\n",
        "",
    )
    .replace(
        "prefetch_factor=3)",
        "prefetch_factor=3, sampler=Slow(),\n"
        "                    worker_init_fn=lambda _: os.kill(os.getpid(), signal.SIGBUS))",
    )
    .replace(
        "model = ",
        "class Slow(torch.utils.data.Sampler):\n"
        "    def __len__(self):\n"
        "        return 64\n"
        "    def __iter__(self):\n"
        "        import time\n"
        "        for _ in range(50):\n"
        "            time.sleep(0.1)  # the workers' deaths arrive meanwhile\n"
        "        yield from range(64)\n"
        "\n"
        "model = ",
    )
)

# A worker killed by something else (the OOM killer): no shm finding, and no guess that
# the command used no DataLoader.
KILLED_LOOP = SIGBUS_LOOP.replace("signal.SIGBUS", "signal.SIGKILL")


def _doctor(cwd: Path, script: str) -> tuple[int, dict[str, object]]:
    (cwd / "loop.py").write_text(script, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRAINPERF_")}
    doctor = [sys.executable, "-m", "trainperf", "doctor", "--no-startup", "--json"]
    done = subprocess.run(
        [*doctor, "--steps", "5", "--", sys.executable, "loop.py"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**clean, "TRAINPERF_HOME": str(cwd / ".trainperf")},
        timeout=240,
        check=False,
    )
    assert done.stdout, done.stderr[-2000:]
    return done.returncode, json.loads(done.stdout)


def _findings(report: dict[str, object], kind: str) -> list[dict[str, object]]:
    return [f for f in report["findings"] if f["kind"] == kind]  # type: ignore[attr-defined,index]


@pytest.mark.slow
def test_a_worker_killed_by_a_bus_error_is_reported_as_shm_exhausted(tmp_path: Path) -> None:
    code, report = _doctor(tmp_path, SIGBUS_LOOP)
    assert code == 1  # the command failed: so does the doctor's exit code
    (finding,) = _findings(report, KIND)
    evidence = finding["evidence"]
    assert isinstance(evidence, list)
    assert "is killed by signal: Bus error" in evidence[0]
    shm = report["resources"]["shm_bytes"]  # type: ignore[index]
    if shm is not None:  # the /dev/shm the doctor measured, as it measured it
        assert evidence[1].startswith("/dev/shm: ")
    # The loader was seen although its first batch never came: what is in flight is known.
    assert "num_workers=2 x prefetch_factor=3 = 6 batches in /dev/shm at once" in evidence[2]
    assert "(batch_size=8)" in evidence[2]
    assert "bytes per batch: not measured" in evidence[2]
    fix = str(finding["fix"])
    for advice in ("--shm-size=", "num_workers=1", "prefetch_factor=1", "num_workers=0"):
        assert advice in fix
    notes = " ".join(report["notes"])  # type: ignore[arg-type]
    assert "used no torch optimizer or DataLoader" not in notes
    assert "ran out of shared memory" in notes


@pytest.mark.slow
def test_workers_killed_before_the_first_batch_still_show_their_loader(tmp_path: Path) -> None:
    code, report = _doctor(tmp_path, EARLY_LOOP)
    assert code == 1
    (finding,) = _findings(report, KIND)
    assert "is killed by signal: Bus error" in finding["evidence"][0]  # type: ignore[index]
    assert "num_workers=2 x prefetch_factor=3 = 6 batches" in finding["evidence"][2]  # type: ignore[index]


@pytest.mark.slow
def test_a_worker_that_cannot_allocate_shared_memory_is_reported(tmp_path: Path) -> None:
    code, report = _doctor(tmp_path, ALLOCATE_LOOP)
    assert code == 1
    (finding,) = _findings(report, KIND)
    assert "unable to allocate shared memory(shm) for file" in finding["evidence"][0]  # type: ignore[index]


@pytest.mark.slow
def test_a_worker_killed_otherwise_is_not_called_shm_but_the_loader_is_seen(
    tmp_path: Path,
) -> None:
    code, report = _doctor(tmp_path, KILLED_LOOP)
    assert code == 1
    assert not _findings(report, KIND)
    notes = " ".join(report["notes"])  # type: ignore[arg-type]
    assert "it read from a DataLoader, then failed" in notes


def test_torchs_words_are_recognised_and_nothing_else() -> None:
    assert shm_sign(f"Traceback (most recent call last):\n{KILLED}\n") == KILLED
    assert shm_sign(f"{WORKER}\n") == WORKER
    assert shm_sign(f"  File x.py\n{ALLOCATE}\n") == ALLOCATE
    old = "RuntimeError: unable to write to file </torch_18692_19545>: No space left on device (28)"
    assert shm_sign(old) == old
    # The training process's words are preferred to the worker's, printed before them.
    assert shm_sign(f"{WORKER}\n{KILLED}") == KILLED
    assert shm_sign("RuntimeError: DataLoader worker (pid(s) 41) exited unexpectedly") is None
    assert shm_sign("Bus error (core dumped)\nOSError: No space left on device") is None
    # A proof of the doctor's own that met a full /dev/shm is not the command's failure.
    assert shm_sign(f"trainperf doctor: calibration proof failed: {KILLED}") is None


def test_the_bytes_in_flight_against_the_measured_shm() -> None:
    resources: dict[str, object] = {
        "shm_bytes": 64 * MIB,
        "shm_free_bytes": 60 * MIB,
        "local_world_size": 2,
    }
    loaders = [
        {"dataset": "pages.Pages", "batch_size": 32, "num_workers": 4, "prefetch_factor": 2},
        {"dataset": "pages.Eval", "batch_size": 32, "num_workers": 0, "prefetch_factor": None},
    ]
    measured = [{"kind": "cache", "role": "training", "bytes_per_batch": 96 * MIB}]
    finding = shm_finding(KILLED, resources=resources, loaders=loaders, proofs=measured)  # type: ignore[arg-type]
    assert finding.kind == KIND
    assert finding.evidence == (
        f"its output: {KILLED}",
        "/dev/shm: 64 MiB, 60 MiB free when the doctor started",
        "pages.Pages: num_workers=4 x prefetch_factor=2 x 2 ranks on this node = 16 batches "
        "in /dev/shm at once (batch_size=32), 96 MiB each: 1.5 GiB",
    )
    # Twice what is in flight, in whole GiB; half the workers.
    assert "docker run --shm-size=3g" in finding.fix
    assert "num_workers=2" in finding.fix
    assert finding.gain_source == "none"

    unmeasured = shm_finding(KILLED, resources=resources, loaders=loaders)  # type: ignore[arg-type]
    assert unmeasured.evidence[2].endswith(
        "bytes per batch: not measured before the crash, so a batch over 4 MiB cannot fit"
    )
    assert "--shm-size=8g" in unmeasured.fix

    unseen = shm_finding(KILLED, resources={"shm_bytes": None}, loaders=[])
    assert unseen.evidence[1:] == (
        "/dev/shm: not found or not readable on this machine",
        "bytes in flight: not known -- the DataLoader was not seen before the crash, so its "
        "num_workers and prefetch_factor are not known",
    )
