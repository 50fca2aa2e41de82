"""``shm-exhausted``: DataLoader workers that died for want of ``/dev/shm``.

A worker hands each batch to the training process through shared memory: ``/dev/shm``
holds every batch the workers have built and the loop has not taken yet, up to
``num_workers * prefetch_factor`` of them per process (per rank on a node). When they
do not fit, a worker dies of SIGBUS or fails to allocate, and torch says so in the
command's output in its own words (``torch/csrc/DataLoader.cpp``,
``aten/src/ATen/MapAllocator.cpp``), which :func:`shm_sign` looks for.
:func:`shm_finding` puts the sign beside the ``/dev/shm`` the doctor measured and the
bytes in flight, as far as they are known, with the fixes.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from trainperf.doctor.report import DoctorFinding

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from trainperf._json import JsonObject

__all__ = ["KIND", "LOG_TAIL_BYTES", "read_sign", "shm_finding", "shm_sign"]

KIND = "shm-exhausted"
LOG_TAIL_BYTES = 1 << 20  # of the command's output, where its crash is
_GIB = 1 << 30
_SIGNS = (
    # the training process, from its SIGCHLD handler: a worker killed by SIGBUS
    re.compile(r"DataLoader worker \(pid \d+\) is killed by signal: Bus error\..*"),
    # the worker's own SIGBUS handler
    re.compile(r"ERROR: Unexpected bus error encountered in worker\..*"),
    # a shared-memory file that cannot be given its size (any errno: ENOSPC, EAGAIN...)
    re.compile(r"unable to allocate shared memory\(shm\) for file <[^>]*>: .*"),
    # older torch, the same in other words
    re.compile(r"unable to (?:write to|resize) file </torch_[^>]*>: No space left on device.*"),
)
# The doctor's own progress lines: a proof that met a full /dev/shm is not the command's.
_OWN = "trainperf doctor: "


def shm_sign(output: str) -> str | None:
    """The first line of ``output`` in which torch says a worker ran out of shared
    memory, stripped, else ``None``.

    >>> shm_sign("RuntimeError: DataLoader worker (pid 41) is killed by signal: Bus error. ")
    'RuntimeError: DataLoader worker (pid 41) is killed by signal: Bus error.'
    """
    lines = [line for line in output.splitlines() if not line.startswith(_OWN)]
    for sign in _SIGNS:  # the training process's own words first: they say the most
        for line in lines:
            if sign.search(line):
                return line.strip()
    return None


def read_sign(log: Path) -> str | None:
    """:func:`shm_sign` over the last ``LOG_TAIL_BYTES`` of a command's output file."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - LOG_TAIL_BYTES))
            return shm_sign(handle.read().decode("utf-8", "replace"))
    except OSError:
        return None


def shm_finding(
    sign: str,
    *,
    resources: JsonObject,
    loaders: Sequence[JsonObject],
    proofs: Sequence[JsonObject] = (),
) -> DoctorFinding:
    """The finding for a command whose workers ran out of ``/dev/shm``: ``resources``
    as ``detect_resources().to_json()``, ``loaders`` and ``proofs`` as the doctor's
    child recorded them (empty when it saw none)."""
    shm = _int(resources, "shm_bytes")
    free = _int(resources, "shm_free_bytes")
    ranks = _int(resources, "local_world_size") or 1
    evidence = [f"its output: {_clip(sign)}"]
    if shm is None:
        evidence.append("/dev/shm: not found or not readable on this machine")
    else:
        evidence.append(
            f"/dev/shm: {_size(shm)}"
            + ("" if free is None else f", {_size(free)} free")
            + " when the doctor started"
        )
    workers = [loader for loader in loaders if (_int(loader, "num_workers") or 0) > 0]
    per_batch = _batch_bytes(proofs)
    queued = 0
    if not workers:
        evidence.append(
            "bytes in flight: not known -- the DataLoader was not seen before the crash, so "
            "its num_workers and prefetch_factor are not known"
        )
    for loader in workers:
        count = _int(loader, "num_workers") or 0
        prefetch = _int(loader, "prefetch_factor") or 2
        batch = _int(loader, "batch_size")
        in_flight = count * prefetch * ranks
        queued += in_flight
        said = (
            f"{loader.get('dataset', 'a dataset')}: num_workers={count} x "
            f"prefetch_factor={prefetch}"
            + (f" x {ranks} ranks on this node" if ranks > 1 else "")
            + f" = {in_flight} batches in /dev/shm at once"
            + (f" (batch_size={batch})" if batch else "")
        )
        if per_batch is not None:
            said += f", {_size(per_batch)} each: {_size(per_batch * in_flight)}"
        else:
            said += "; bytes per batch: not measured before the crash"
            room = free if free is not None else shm
            if room is not None:
                said += f", so a batch over {_size(room // in_flight)} cannot fit"
        evidence.append(said)
    if per_batch is not None and queued:
        need = -(-per_batch * queued * 2 // _GIB)  # twice what is in flight, in whole GiB
        size = f"{max(need, 1)}g"
    else:
        size = "8g"
    most = max((_int(w, "num_workers") or 0 for w in workers), default=0)
    fewer = "fewer workers" if not workers else f"fewer workers (num_workers={most // 2})"
    return DoctorFinding(
        kind=KIND,
        title="DataLoader workers ran out of shared memory (/dev/shm) and the run died",
        evidence=tuple(evidence),
        fix=(
            f"give the container more shared memory (docker run --shm-size={size}; "
            f"shm_size: {size} in docker-compose; a memory-backed emptyDir on /dev/shm on "
            f"Kubernetes), or put fewer bytes through it: "
            + (f"{fewer}, " if most != 1 else "")
            + "prefetch_factor=1, smaller batches, or num_workers=0 (batches built in the "
            "training process, no /dev/shm at all, slower if loading is the bottleneck)"
        ),
        gain="a run that finishes instead of dying; no speed-up is claimed",
        gain_source="none",
    )


def _batch_bytes(proofs: Sequence[JsonObject]) -> int | None:
    """Bytes of one training batch, where a cache proof measured it."""
    for proof in proofs:
        if proof.get("kind") == "cache" and proof.get("role") == "training":
            size = _int(proof, "bytes_per_batch")
            if size:
                return size
    return None


def _int(data: JsonObject, key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _size(nbytes: int) -> str:
    if nbytes >= _GIB:
        return f"{nbytes / _GIB:.1f} GiB"
    return f"{nbytes / (1 << 20):.0f} MiB" if nbytes >= 1 << 20 else f"{nbytes / 1024:.0f} KiB"


def _clip(line: str, width: int = 200) -> str:
    return line if len(line) <= width else line[: width - 3] + "..."
