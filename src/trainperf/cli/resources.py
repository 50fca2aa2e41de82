"""``trainperf resources``: show the budget, the limits behind it, and what follows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainperf.cli import Command
from trainperf.cli._render import emit_json, human_bytes
from trainperf.resources import ResourceLimits, detect_resources

if TYPE_CHECKING:
    import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        default="/",
        metavar="DIR",
        help="read proc/ and sys/fs/cgroup/ under DIR instead of / (inspect a saved tree)",
    )
    parser.add_argument("--no-gpus", action="store_true", help="skip looking for GPUs")


def run(args: argparse.Namespace) -> int:
    limits = detect_resources(root=args.root, gpus=not args.no_gpus)
    if args.json:
        from trainperf._schema import RESOURCES

        emit_json(RESOURCES.stamp(limits.to_json()))
    else:
        print(render_text(limits))
    return 0


def render_text(limits: ResourceLimits) -> str:
    cpu_sources = [f"affinity {_cpu_ranges(limits.cpu_affinity)}"]
    if limits.cgroup_cpu_quota is not None:
        cpu_sources.append(f"cgroup quota {limits.cgroup_cpu_quota:g}")
    if limits.cpu_override is not None:
        cpu_sources.append(f"TRAINPERF_CPUS {limits.cpu_override:g}")
    memory = f"available {human_bytes(limits.memory_available_bytes, none='unknown')}"
    if limits.memory_limit_bytes is not None:
        memory += f", cgroup limit {human_bytes(limits.memory_limit_bytes)}"
    memory += f", host total {human_bytes(limits.memory_total_bytes, none='unknown')}"
    shm = "not mounted"
    if limits.shm_bytes is not None:
        shm = f"{human_bytes(limits.shm_bytes)}, {human_bytes(limits.shm_free_bytes)} free"
    gpus = ", ".join(
        f"{g.index}: {g.name} ({human_bytes(g.memory_total_bytes)})" for g in limits.gpus
    )
    rows = [
        (
            "CPU",
            f"budget {limits.cpu_budget:g} of {limits.host_cpus} host CPUs "
            f"({'; '.join(cpu_sources)}) - {limits.cpu_model}",
        ),
        ("cgroups", limits.cgroup_version or "none found"),
        ("memory", memory),
        ("/dev/shm", shm),
        ("GPUs", gpus or "none"),
        ("ranks", f"{limits.local_world_size} on this node, {limits.world_size} in all"),
        (
            "per rank",
            f"optimal_threads={limits.optimal_threads} "
            f"optimal_workers={limits.optimal_workers} "
            f"max_batch_bytes={human_bytes(limits.max_batch_bytes, none='unknown')}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _cpu_ranges(cpus: tuple[int, ...]) -> str:
    """``(0, 1, 2, 5)`` -> ``'0-2,5'``, as in /proc/self/status."""
    ranges: list[str] = []
    start = prev = None
    for cpu in (*cpus, None):
        if cpu is not None and prev is not None and cpu == prev + 1:
            prev = cpu
            continue
        if start is not None:
            ranges.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = cpu
    return ",".join(ranges) or "none"


COMMAND = Command(configure, run)
