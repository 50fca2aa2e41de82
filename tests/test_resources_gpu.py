"""GPU listing: CUDA_VISIBLE_DEVICES filtering, and the real probe on this machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trainperf.resources import GpuInfo, detect_resources
from trainperf.resources.gpu import filter_visible

HOST = (
    GpuInfo(index=0, name="A", memory_total_bytes=1, uuid="GPU-aaaa-1111"),
    GpuInfo(index=1, name="B", memory_total_bytes=2, uuid="GPU-bbbb-2222"),
    GpuInfo(index=2, name="C", memory_total_bytes=3, uuid="GPU-cccc-3333"),
)


@pytest.mark.parametrize(
    ("visible", "names"),
    [
        (None, ["A", "B", "C"]),
        ("", []),
        ("-1", []),
        ("2,0", ["C", "A"]),
        ("1,7,2", ["B"]),  # CUDA stops at the first device that does not exist
        ("2,0,2,1", ["C", "A"]),  # ... and at the first repeated one
        ("GPU-cccc", ["C"]),
        ("GPU-bbbb-2222,GPU-aaaa", ["B", "A"]),
        ("GPU-", []),  # a prefix of every UUID names no single device
        ("0, 1", ["A", "B"]),
    ],
)
def test_visible_devices_filter_and_renumber(visible, names) -> None:
    warnings: list[str] = []
    chosen = filter_visible(HOST, visible, warnings.append)
    assert [g.name for g in chosen] == names
    assert [g.index for g in chosen] == list(range(len(names)))
    assert warnings == []


@pytest.mark.parametrize(("visible", "names"), [("first", []), ("0,foo,1", ["A"]), ("²", [])])
def test_unreadable_entries_end_the_list_with_a_warning(visible, names) -> None:
    warnings: list[str] = []
    assert [g.name for g in filter_visible(HOST, visible, warnings.append)] == names
    assert len(warnings) == 1
    assert f"CUDA_VISIBLE_DEVICES={visible!r}" in warnings[0]


def test_fake_roots_never_report_the_hosts_gpus(fake_system) -> None:
    assert detect_resources(root=fake_system.root, environ={}).gpus == ()


def _has_gpu_driver() -> bool:
    return Path("/proc/driver/nvidia").is_dir() or Path("/dev/nvidiactl").exists()


def test_without_a_driver_nothing_is_probed_and_torch_stays_unloaded() -> None:
    if _has_gpu_driver():
        pytest.skip("this machine has an NVIDIA driver")
    code = (
        "import sys; from pathlib import Path; from trainperf.resources.gpu import detect_gpus;"
        "print(detect_gpus(Path('/'), {}, print), 'torch' in sys.modules, 'pynvml' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["()", "False", "False"]


@pytest.mark.gpu
def test_gpu_memory_and_names_match_torch() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    found = detect_resources().gpus
    assert len(found) == torch.cuda.device_count()
    for gpu in found:
        props = torch.cuda.get_device_properties(gpu.index)
        assert gpu.name == props.name
        assert abs(gpu.memory_total_bytes - props.total_memory) < 0.02 * props.total_memory
