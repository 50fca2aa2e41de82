"""The derived budget (threads, workers, batch bytes), validation, and records."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _support import GIB
from trainperf.errors import RecordError, UsageError
from trainperf.kvlog import parse_kv
from trainperf.resources import GpuInfo, ResourceLimits, detect_resources


def limits(**overrides) -> ResourceLimits:
    fields = {
        "cpu_budget": 8.0,
        "cpu_affinity": tuple(range(8)),
        "host_cpus": 8,
        "cpu_model": "Fake CPU",
        "memory_available_bytes": 16 * GIB,
        "shm_free_bytes": 64 * GIB,
    }
    return ResourceLimits(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("budget", "ranks", "usable", "threads", "workers"),
    [
        (0.5, 1, 1, 1, 0),
        (1.0, 1, 1, 1, 0),
        (1.5, 1, 1, 1, 0),
        (2.0, 1, 2, 2, 0),
        (3.0, 1, 3, 2, 1),
        (4.0, 1, 4, 2, 2),
        (7.9, 1, 7, 4, 3),
        (16.0, 1, 16, 8, 8),
        (16.0, 4, 4, 2, 2),
        (8.0, 8, 1, 1, 0),
        (2.0, 4, 1, 1, 0),
        (1.9999999, 1, 2, 2, 0),  # float noise in a quota is not a lost CPU
    ],
)
def test_envelope(budget, ranks, usable, threads, workers) -> None:
    result = limits(cpu_budget=budget, local_world_size=ranks, world_size=ranks)

    assert result.usable_cpus == usable
    assert result.optimal_threads == threads
    assert result.optimal_workers == workers


@given(
    budget=st.floats(min_value=0.01, max_value=512, allow_nan=False),
    ranks=st.integers(min_value=1, max_value=16),
)
def test_threads_plus_workers_never_exceed_the_rank_budget(budget, ranks) -> None:
    result = limits(cpu_budget=budget, local_world_size=ranks, world_size=ranks)

    assert result.optimal_threads >= 1
    assert result.optimal_threads + result.optimal_workers <= max(1.0, budget / ranks + 1e-6)


def test_max_batch_bytes_rule() -> None:
    # 4 CPUs -> 2 workers -> 4 batches queued + 1 in the step; a quarter of 10 GiB shared.
    four = limits(cpu_budget=4.0, memory_available_bytes=10 * GIB)
    assert four.max_batch_bytes == int(10 * GIB * 0.25) // 5

    # Tight /dev/shm: 1 GiB free across 4 queued batches.
    tight = limits(cpu_budget=4.0, memory_available_bytes=10 * GIB, shm_free_bytes=GIB)
    assert tight.max_batch_bytes == GIB // 4

    # No workers, no /dev/shm traffic: only memory counts.
    two = limits(cpu_budget=2.0, memory_available_bytes=8 * GIB, shm_free_bytes=1)
    assert two.max_batch_bytes == 2 * GIB

    # Two ranks with two workers each queue 8 batches in the node's /dev/shm.
    shared = limits(cpu_budget=8.0, local_world_size=2, world_size=2, shm_free_bytes=GIB)
    assert shared.max_batch_bytes == GIB // 8

    # Two ranks share the node's memory.
    ranks = limits(cpu_budget=2.0, memory_available_bytes=8 * GIB, local_world_size=2, world_size=2)
    assert ranks.max_batch_bytes == 1 * GIB


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cpu_budget": 0.0}, "cpu_budget must be a positive number, got 0.0"),
        ({"cpu_budget": float("nan")}, "cpu_budget"),
        ({"local_world_size": 0}, "local_world_size"),
        ({"local_world_size": 4, "world_size": 2}, "world_size"),
        ({"memory_available_bytes": -1}, "memory_available_bytes must be >= 0 bytes, got -1"),
    ],
)
def test_validated_at_construction(overrides, message) -> None:
    with pytest.raises(UsageError, match=message):
        limits(**overrides)


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits().cpu_budget = 2.0  # type: ignore[misc]


def test_json_round_trip_is_exact() -> None:
    original = limits(
        cgroup_version="v2",
        cgroup_cpu_quota=1.5,
        cpu_budget=1.5,
        memory_limit_bytes=2 * GIB,
        gpus=(GpuInfo(index=0, name="Fake GPU", memory_total_bytes=80 * GIB, uuid="GPU-1"),),
        local_world_size=2,
        world_size=4,
        local_rank=1,
        warnings=("something odd",),
    )

    text = json.dumps(original.to_json())
    restored = ResourceLimits.from_json(json.loads(text))

    assert restored == original
    assert restored.warnings == original.warnings
    assert restored.to_json() == original.to_json()


def test_json_has_the_documented_keys() -> None:
    data = limits().to_json()
    for key in (
        "cpu_budget",
        "cpu_affinity",
        "cgroup_cpu_quota",
        "memory_limit_bytes",
        "memory_available_bytes",
        "shm_bytes",
        "gpus",
        "local_world_size",
        "optimal_workers",
        "optimal_threads",
    ):
        assert key in data


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"cpu_budget": "lots"},
        {"cpu_budget": 1, "cpu_affinity": [0], "host_cpus": 1, "cpu_model": 3},
        {"cpu_budget": 1, "cpu_affinity": [0], "host_cpus": 1, "cpu_model": "x", "gpus": [1]},
        {"cpu_budget": 1, "cpu_affinity": [True], "host_cpus": 1, "cpu_model": "x"},
        {
            "cpu_budget": 1,
            "cpu_affinity": [0],
            "host_cpus": 1,
            "cpu_model": "x",
            "local_world_size": 0,
        },
    ],
)
def test_from_json_rejects_foreign_records(broken) -> None:
    with pytest.raises(RecordError):
        ResourceLimits.from_json(broken)


def test_detection_logs_one_key_value_line(fake_system, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="trainperf"):
        result = detect_resources(root=fake_system.root, environ={})

    lines = [r.getMessage() for r in caplog.records if r.name == "trainperf.resources"]
    assert len(lines) == 1
    event, fields = parse_kv(lines[0])
    assert event == "resource_limits"
    assert fields["cpu_budget"] == "4"
    assert fields["optimal_workers"] == str(result.optimal_workers)
    assert fields["memory_available_mb"] == str(12 * 1024)


def test_small_shm_advice() -> None:
    from trainperf.resources import shm_advice

    assert shm_advice(None) is None
    assert shm_advice(8 * GIB) is None
    advice = shm_advice(64 << 20)
    assert advice is not None
    assert "/dev/shm is only 64 MiB" in advice
    assert "--shm-size" in advice
