"""A background sampler: memory and CPU of the process and its DataLoader workers.

Every ``interval_s`` (1 s by default) one :class:`Sample` is taken with psutil: the
resident memory of the process and of its worker processes (children running its own
program: DataLoader workers, forked or spawned; not multiprocessing's helpers, nor other
programs such as W&B's service), their CPU use in percent of one CPU, and their number.
With an NVIDIA driver and NVML's bindings (``trainperf[gpu]``), also the utilisation
and used memory of this process's GPU (the ``LOCAL_RANK``-th visible one). With a
:class:`SystemCounters`,
also the measurement conditions of the interval (other processes' CPU use, CPU
pressure, steal, cgroup throttling; see :mod:`trainperf.monitoring.conditions`) and
the process tree's involuntary context switches. Under a launcher of several ranks
(``WORLD_SIZE``), the other ranks it started on this node and their workers are the
job's own processes: their CPU counts as the run's in the conditions, not as another
program's contention. The sampler holds at most
``MAX_SAMPLES`` in memory (a day at 1 Hz); samples are written with the run's steps.
Given the run's ``folder``, each sample also appends the workers' private and shared
memory, ``/dev/shm`` and the cgroup's memory to ``worker_memory.jsonl`` as it goes
(see :mod:`trainperf.monitoring.worker_memory`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import psutil

    from trainperf._json import JsonObject
    from trainperf.monitoring.conditions import Counters, SystemCounters
    from trainperf.monitoring.worker_memory import WorkerMemoryRecorder

__all__ = ["MAX_SAMPLES", "GpuReader", "Sample", "Sampler", "nvml_reader", "read_samples"]

MAX_SAMPLES = 86_400
# Child processes that are not workers: multiprocessing's bookkeeping servers.
_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver", "semaphore_tracker")


@dataclass(frozen=True)
class Sample:
    t_s: float  # since the start of monitoring
    rss_bytes: int
    children_rss_bytes: int
    cpu_percent: float  # the process, in % of one CPU
    children_cpu_percent: float
    children: int
    gpu_util_percent: float | None = None  # NVML: time a kernel was running, last interval
    gpu_memory_bytes: int | None = None  # used on the device, by every process
    # The interval's conditions (monitoring/conditions.py); None where unknown.
    other_cpu: float | None = None  # CPUs used by other processes on this one's CPUs
    idle_cpu: float | None = None  # CPUs left idle
    pressure: float | None = None  # share of the interval a runnable task waited (PSI)
    load: float | None = None  # 1-minute load average
    steal: float | None = None  # share of CPU time stolen by the hypervisor
    throttled: float | None = None  # share of the cgroup's quota periods throttled
    throttled_s: float | None = None  # time held back by the quota in the interval
    involuntary_switches: float | None = None  # preemptions of the process tree, per s

    def to_json(self) -> JsonObject:
        conditions: JsonObject = {
            name: None if (value := getattr(self, name)) is None else round(value, 4)
            for name in _CONDITIONS
        }
        return {
            "t_s": round(self.t_s, 3),
            "rss_bytes": self.rss_bytes,
            "children_rss_bytes": self.children_rss_bytes,
            "cpu_percent": round(self.cpu_percent, 1),
            "children_cpu_percent": round(self.children_cpu_percent, 1),
            "children": self.children,
            "gpu_util_percent": self.gpu_util_percent,
            "gpu_memory_bytes": self.gpu_memory_bytes,
            **conditions,
        }


_CONDITIONS = (
    "other_cpu",
    "idle_cpu",
    "pressure",
    "load",
    "steal",
    "throttled",
    "throttled_s",
    "involuntary_switches",
)


class GpuReader:
    """One GPU's utilisation and used memory, read through NVML."""

    def __init__(self, handle: object) -> None:
        self._handle = handle

    def read(self) -> tuple[float, int] | None:
        import pynvml

        try:
            util = pynvml.nvmlDeviceGetUtilizationRates(self._handle).gpu
            used = pynvml.nvmlDeviceGetMemoryInfo(self._handle).used
        except pynvml.NVMLError:
            return None
        return float(util), int(used)

    def close(self) -> None:
        import pynvml

        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            return


def nvml_reader() -> GpuReader | None:
    """A reader for this process's GPU, or ``None`` without a driver or NVML."""
    from pathlib import Path

    if not Path("/proc/driver/nvidia").is_dir() and not Path("/dev/nvidiactl").exists():
        return None
    from trainperf.resources.gpu import filter_visible, nvml_gpus

    gpus = nvml_gpus(lambda _: None)
    if gpus is None:
        return None
    visible = filter_visible(gpus, os.environ.get("CUDA_VISIBLE_DEVICES"), lambda _: None)
    local = os.environ.get("LOCAL_RANK", "0")
    position = int(local) if local.isdecimal() else 0
    if position >= len(visible) or visible[position].uuid is None:
        return None
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        return GpuReader(pynvml.nvmlDeviceGetHandleByUUID(visible[position].uuid))
    except pynvml.NVMLError:
        pynvml.nvmlShutdown()
        return None


class Sampler:
    def __init__(
        self,
        *,
        clock: Callable[[], float],
        origin: float,
        interval_s: float = 1.0,
        gpu: GpuReader | None = None,
        counters: SystemCounters | None = None,
        folder: Path | None = None,
    ) -> None:
        import psutil

        if interval_s <= 0:
            from trainperf.errors import UsageError

            raise UsageError(f"the sampling interval must be > 0 s, got {interval_s}")
        self.clock = clock
        self.origin = origin
        self.interval_s = interval_s
        self.gpu = gpu
        self.counters = counters
        self.samples: list[Sample] = []
        self.memory: WorkerMemoryRecorder | None = None
        if folder is not None:
            from trainperf.monitoring.worker_memory import WorkerMemoryRecorder

            self.memory = WorkerMemoryRecorder(folder)
        self._process = psutil.Process()
        try:
            self._exe = self._process.exe()
        except psutil.Error:
            self._exe = ""
        self._children: dict[int, psutil.Process] = {}
        self._helpers: dict[int, bool] = {}
        # Under a multi-rank launcher: the other ranks it started (and their workers), the
        # job's own processes, whose CPU is not another program's contention.
        self._launcher = _launcher(self._process)
        self._siblings: dict[int, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trainperf-sampler", daemon=True)
        self._process.cpu_percent(None)  # the first reading only starts the measurement
        self._switches: dict[int, int] = {}  # involuntary switches per pid, last reading
        self._last: tuple[float, Counters] | None = None
        if counters is not None:
            self._last = (clock(), counters.read())
        self._switches = self._involuntary({self._process.pid: self._process})
        self._previous_t = clock()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5 * self.interval_s)
        self.sample()  # one last reading, so short runs have one too
        if self.gpu is not None:
            self.gpu.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def _counts(self, child: psutil.Process) -> bool:
        """Workers count: children running this process's own program (forked, or
        spawned by multiprocessing). multiprocessing's helpers (resource tracker) do not,
        nor children running another program (W&B's service, a shell, ffmpeg)."""
        import psutil

        known = self._helpers.get(child.pid)
        if known is None:
            try:
                command = " ".join(child.cmdline())
                other = child.exe() != self._exe
            except psutil.Error:
                command, other = "", False
            known = any(h in command for h in _HELPERS) or other
            self._helpers[child.pid] = known
        return not known

    def sample(self) -> None:
        import psutil

        try:
            rss = self._process.memory_info().rss
            cpu = self._process.cpu_percent(None)
            current = {c.pid: c for c in self._process.children(recursive=True) if self._counts(c)}
        except psutil.Error:
            return  # the process is going away
        children_rss = 0
        children_cpu = 0.0
        for pid, child in current.items():
            known = self._children.setdefault(pid, child)
            try:
                children_rss += known.memory_info().rss
                children_cpu += known.cpu_percent(None)
            except psutil.Error:
                continue  # a worker that just exited
        self._children = {pid: self._children[pid] for pid in current}
        gpu = None if self.gpu is None else self.gpu.read()
        now = self.clock()
        if self.memory is not None:
            self.memory.record(now - self.origin, main=self._process.pid, workers=sorted(current))
        conditions = self._conditions(now, (cpu + children_cpu + self._siblings_cpu()) / 100)
        switches = self._involuntary({self._process.pid: self._process, **self._children})
        gained = sum(max(0, n - self._switches.get(pid, 0)) for pid, n in switches.items())
        conditions["involuntary_switches"] = gained / max(now - self._previous_t, 1e-9)
        self._switches, self._previous_t = switches, now
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(
                Sample(
                    now - self.origin,
                    rss,
                    children_rss,
                    cpu,
                    children_cpu,
                    len(current),
                    gpu_util_percent=None if gpu is None else gpu[0],
                    gpu_memory_bytes=None if gpu is None else gpu[1],
                    **conditions,
                )
            )

    def _siblings_cpu(self) -> float:
        """CPU percent of the other ranks of this job on this node and their workers
        (children of the same launcher running the same program); 0 outside one."""
        import psutil

        if self._launcher is None:
            return 0.0
        try:
            family = self._launcher.children(recursive=True)
        except psutil.Error:
            return 0.0
        mine = {self._process.pid, *self._children}
        current = {c.pid: c for c in family if c.pid not in mine and self._counts(c)}
        total = 0.0
        for pid, sibling in current.items():
            known = self._siblings.get(pid)
            if known is None:  # the first reading only starts its measurement
                self._siblings[pid] = sibling
                with contextlib.suppress(psutil.Error):
                    sibling.cpu_percent(None)
                continue
            with contextlib.suppress(psutil.Error):
                total += known.cpu_percent(None)
        self._siblings = {pid: self._siblings[pid] for pid in current}
        return total

    def _conditions(self, now: float, process_cpu: float) -> dict[str, float | None]:
        """The system counters since the last sample, as this interval's conditions."""
        if self.counters is None or self._last is None:
            return {}
        from trainperf.monitoring.conditions import interval_conditions

        try:
            current = self.counters.read()
        except Exception:  # a strange /proc must never stop the sampling
            return {}
        began, before = self._last
        self._last = (now, current)
        return interval_conditions(before, current, wall_s=now - began, process_cpu=process_cpu)

    @staticmethod
    def _involuntary(processes: dict[int, psutil.Process]) -> dict[int, int]:
        import psutil

        out = {}
        for pid, process in processes.items():
            try:
                out[pid] = process.num_ctx_switches().involuntary
            except psutil.Error:
                continue
        return out


def _launcher(process: psutil.Process) -> psutil.Process | None:
    """The launcher (torchrun's agent, ``accelerate launch``) that started this rank and
    its siblings, when ``WORLD_SIZE`` says there are several; else None."""
    import os

    import psutil

    world = os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("WORLD_SIZE") or ""
    if not world.isdecimal() or int(world) < 2:
        return None
    try:
        return process.parent()
    except psutil.Error:
        return None


def read_samples(path: Path) -> list[Sample]:
    """Samples from a ``samples.jsonl``; a file that is not one is a RecordError."""
    import json

    from trainperf.errors import RecordError

    if not path.is_file():
        return []
    out = []
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            raw = json.loads(line)
            util, used = raw.get("gpu_util_percent"), raw.get("gpu_memory_bytes")
            conditions = {name: _number(raw.get(name)) for name in _CONDITIONS}
            out.append(
                Sample(
                    float(raw["t_s"]),
                    int(raw["rss_bytes"]),
                    int(raw["children_rss_bytes"]),
                    float(raw["cpu_percent"]),
                    float(raw["children_cpu_percent"]),
                    int(raw["children"]),
                    gpu_util_percent=None if util is None else float(util),
                    gpu_memory_bytes=None if used is None else int(used),
                    **conditions,
                )
            )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RecordError(f"{path} is not a trainperf sample record: {exc}") from None
    return out


def _number(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)
