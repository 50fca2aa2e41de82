"""GPUs visible to this process: through NVML when installed, else through torch.

Nothing is probed unless a GPU driver shows itself (NVIDIA's ``/proc/driver/nvidia``
or ``/dev/nvidiactl``, ROCm's ``/dev/kfd``) or torch is already imported: loading
NVML's bindings costs ~20 ms and importing torch seconds, only to answer "none" on
a CPU machine.

NVML (``pip install "trainperf[gpu]"``) is asked first: it is cheap and creates no
CUDA context. It lists every GPU on the host, so the list is filtered by
``CUDA_VISIBLE_DEVICES`` (indices or ``GPU-`` UUID prefixes) the way CUDA does:
devices in the order listed, up to the first entry that is invalid, unknown or
repeated. NVML numbers GPUs in PCI bus order; CUDA does too only with
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (its default puts the fastest first), so on a host
with mixed GPU models the indices may differ from CUDA's.

torch answers instead when NVML is missing, and when ``CUDA_VISIBLE_DEVICES`` names
MIG instances (NVML lists their parent GPUs, not the instances). torch reads the
real process environment and applies ``CUDA_VISIBLE_DEVICES`` itself.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from trainperf._json import JsonObject

__all__ = ["GpuInfo", "detect_gpus", "filter_visible", "nvml_gpus"]


@dataclass(frozen=True, kw_only=True)
class GpuInfo:
    index: int
    name: str
    memory_total_bytes: int
    uuid: str | None = None

    def to_json(self) -> JsonObject:
        return {
            "index": self.index,
            "name": self.name,
            "memory_total_bytes": self.memory_total_bytes,
            "uuid": self.uuid,
        }


def detect_gpus(
    root: Path, environ: Mapping[str, str], warn: Callable[[str], None]
) -> tuple[GpuInfo, ...]:
    nvidia = os.path.isdir(root / "proc/driver/nvidia") or os.path.exists(root / "dev/nvidiactl")
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if nvidia and not (visible and "MIG-" in visible):
        gpus = nvml_gpus(warn)
        if gpus is not None:
            return filter_visible(gpus, visible, warn)
    driver = nvidia or os.path.exists(root / "dev/kfd")
    if "torch" in sys.modules or (driver and importlib.util.find_spec("torch") is not None):
        return _from_torch()
    return ()


def filter_visible(
    gpus: tuple[GpuInfo, ...], visible: str | None, warn: Callable[[str], None]
) -> tuple[GpuInfo, ...]:
    """Apply ``CUDA_VISIBLE_DEVICES`` to a host-wide list, renumbering as CUDA does."""
    if visible is None:
        return gpus
    chosen: list[GpuInfo] = []
    for token in (t.strip() for t in visible.split(",")):
        if token.isascii() and token.isdecimal():
            match = [g for g in gpus if g.index == int(token)]
        elif token.startswith("GPU-"):
            match = [g for g in gpus if g.uuid and g.uuid.startswith(token)]
        else:
            if token and not token.lstrip("-").isdecimal():  # "-1" is the usual "none"
                warn(f"CUDA_VISIBLE_DEVICES={visible!r}: {token!r} names no GPU; CUDA stops there")
            break
        if len(match) != 1 or match[0] in chosen:
            break  # CUDA stops at the first unknown, ambiguous or repeated entry
        chosen.append(match[0])
    return tuple(
        GpuInfo(index=i, name=g.name, memory_total_bytes=g.memory_total_bytes, uuid=g.uuid)
        for i, g in enumerate(chosen)
    )


def nvml_gpus(warn: Callable[[str], None]) -> tuple[GpuInfo, ...] | None:
    """All GPUs on the host, or ``None`` when NVML is missing or has no driver."""
    if importlib.util.find_spec("pynvml") is None:
        return None
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None  # no driver: the usual case on CPU machines
    try:
        gpus = []
        for index in range(int(pynvml.nvmlDeviceGetCount())):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            gpus.append(
                GpuInfo(
                    index=index,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    memory_total_bytes=int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                    uuid=uuid.decode() if isinstance(uuid, bytes) else str(uuid),
                )
            )
        return tuple(gpus)
    except pynvml.NVMLError as exc:
        warn(f"NVML failed while listing GPUs ({exc}); asking torch instead")
        return None
    finally:
        pynvml.nvmlShutdown()


def _from_torch() -> tuple[GpuInfo, ...]:
    import torch

    if not torch.cuda.is_available():
        return ()
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(
            GpuInfo(index=index, name=props.name, memory_total_bytes=int(props.total_memory))
        )
    return tuple(gpus)
