"""GPU listing: CUDA_VISIBLE_DEVICES filtering, and the real probe on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainperf.resources import GpuInfo, detect_resources
from trainperf.resources.gpu import detect_gpus, filter_visible

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
        ("GPU-cccc", ["C"]),
        ("GPU-bbbb-2222,GPU-aaaa", ["B", "A"]),
    ],
)
def test_visible_devices_filter_and_renumber(visible, names) -> None:
    warnings: list[str] = []
    chosen = filter_visible(HOST, visible, warnings.append)
    assert [g.name for g in chosen] == names
    assert [g.index for g in chosen] == list(range(len(names)))
    assert warnings == []


def test_unreadable_visible_devices_warns_and_keeps_all() -> None:
    warnings: list[str] = []
    assert filter_visible(HOST, "first", warnings.append) == HOST
    assert "CUDA_VISIBLE_DEVICES='first'" in warnings[0]


def test_fake_roots_never_report_the_hosts_gpus(fake_system) -> None:
    assert detect_resources(root=fake_system.root, environ={}).gpus == ()


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def test_real_probe_agrees_with_torch() -> None:
    warnings: list[str] = []
    found = detect_gpus(Path("/"), {}, warnings.append)
    assert len(found) == _cuda_devices()


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
