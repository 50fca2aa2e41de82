"""One line describing the machine a benchmark ran on, for quoting results."""

from __future__ import annotations

import os
import platform

from trainperf.resources import detect_resources


def describe_machine() -> str:
    limits = detect_resources(gpus=True)
    total = limits.memory_total_bytes or 0
    gpus = ", ".join(g.name for g in limits.gpus) or "no GPU"
    return (
        f"{limits.cpu_model}, {limits.cpu_budget:g} CPUs of {os.cpu_count()}, "
        f"{total / (1 << 30):.0f} GiB RAM, {gpus}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )
