"""Verdicts from periods: each rule at its threshold, with evidence and gain."""

from __future__ import annotations

import pytest

from trainperf.monitoring.analyze import MIN_STEPS, summarize
from trainperf.monitoring.records import Period


def steps(n: int, wall: float, wait: float, *, samples: int = 8) -> list[Period]:
    return [
        Period("train", i, 0, i * wall, wall, wait, samples, first_of_epoch=(i == 0))
        for i in range(n)
    ]


@pytest.mark.verdict
def test_input_bound_with_its_gain() -> None:
    summary = summarize(steps(10, 1.0, 0.6))
    assert summary.primary == "input-bound"
    (finding,) = summary.findings
    assert finding.evidence["data_wait_share_of_step"] == 0.6
    assert finding.gain == "if input were free: up to 2.5x samples/s"
    assert summary.samples_per_s == pytest.approx(8.0)


@pytest.mark.verdict
@pytest.mark.parametrize(("wait", "verdict"), [(0.05, "compute-bound"), (0.2, "balanced")])
def test_compute_bound_and_balanced(wait, verdict) -> None:
    assert summarize(steps(10, 1.0, wait)).primary == verdict


@pytest.mark.verdict
def test_validation_bound() -> None:
    periods = [*steps(10, 1.0, 0.0), Period("val", 0, 0, 10.0, 12.0, 1.0, 64)]
    summary = summarize(periods)
    assert summary.primary == "validation-bound"
    assert summary.shares["validation"] == pytest.approx(12 / 22)


@pytest.mark.verdict
def test_startup_bound() -> None:
    assert summarize(steps(10, 1.0, 0.0), startup_s=20.0).primary == "startup-bound"


@pytest.mark.verdict
def test_too_few_steps() -> None:
    summary = summarize(steps(MIN_STEPS - 1, 1.0, 0.9))
    assert summary.primary == "insufficient-data"
    assert summary.findings == ()


@pytest.mark.verdict
def test_epoch_start_spikes() -> None:
    periods = steps(10, 1.0, 0.01)
    periods[5] = Period("train", 5, 1, 5.0, 1.0, 0.8, 8, first_of_epoch=True)
    kinds = [f.kind for f in summarize(periods).findings]
    assert "epoch-start-spike" in kinds


def test_shares_add_up() -> None:
    periods = [*steps(10, 1.0, 0.5), Period("val", 0, 0, 10.0, 5.0, 1.0, 64)]
    shares = summarize(periods, startup_s=5.0).shares
    assert sum(shares.values()) == pytest.approx(1.0)


@pytest.mark.verdict
def test_large_gains_read_as_factors() -> None:
    summary = summarize(steps(10, 1.0, 0.9))
    assert summary.findings[0].gain == "if input were free: up to 10.0x samples/s"


def sample(t: float, rss_mb: float, children: int = 0):
    from trainperf.monitoring.sampler import Sample

    return Sample(t, int(rss_mb * 2**20), 0, 100.0, 0.0, children)


def epochs(n: int, steps_per_epoch: int = 5) -> list[Period]:
    return [
        Period("train", e * steps_per_epoch + i, e, float(e * steps_per_epoch + i), 1.0, 0.0, 8)
        for e in range(n)
        for i in range(steps_per_epoch)
    ]


@pytest.mark.verdict
def test_memory_that_grows_every_epoch_is_creep() -> None:
    host = [sample(e * 5 + 2.5, 1000 + 300 * e) for e in range(4)]
    finding = next(f for f in summarize(epochs(4), host=host).findings if f.kind == "memory-creep")
    assert finding.evidence == {"first_epoch_peak_mb": 1000.0, "last_epoch_peak_mb": 1900.0}


@pytest.mark.verdict
def test_flat_memory_is_not_creep() -> None:
    host = [sample(e * 5 + 2.5, 1000 + (e % 2)) for e in range(4)]
    assert all(f.kind != "memory-creep" for f in summarize(epochs(4), host=host).findings)


@pytest.mark.verdict
@pytest.mark.parametrize(
    ("threads", "workers", "cpus", "expected"), [(2, 2, 2.0, True), (1, 1, 2.0, False)]
)
def test_thread_oversubscription(threads, workers, cpus, expected) -> None:
    host = [sample(1.0, 100, children=workers)]
    summary = summarize(epochs(2), host=host, threads=threads, cpus=cpus)
    found = [f for f in summary.findings if f.kind == "thread-oversubscription"]
    assert bool(found) is expected
    if found:
        assert found[0].evidence == {
            "intra_op_threads": threads,
            "worker_processes": workers,
            "busy_threads": threads + workers,
            "cpu_budget": cpus,
        }
        assert "torch.set_num_threads(1)" in found[0].fix


def test_per_epoch_stats() -> None:
    periods = [
        Period("train", 0, 0, 0.0, 1.0, 0.5, 8, first_of_epoch=True),
        Period("train", 1, 0, 1.0, 1.0, 0.1, 8),
        Period("val", 0, 0, 2.0, 3.0, 2.0, 16),
        Period("train", 2, 1, 5.0, 1.0, 0.25, 8, first_of_epoch=True),
    ]
    host = [sample(0.5, 100), sample(2.5, 300), sample(5.5, 200)]
    epochs = summarize(periods, host=host).epochs
    assert [(e.epoch, e.steps, e.train_s, e.val_s, e.val_data_wait_s) for e in epochs] == [
        (0, 2, 2.0, 3.0, 2.0),
        (1, 1, 1.0, 0.0, 0.0),
    ]
    assert [e.first_batch_wait_s for e in epochs] == [0.5, 0.25]
    assert [e.peak_memory_bytes for e in epochs] == [300 * 2**20, 200 * 2**20]


def gpu_sample(t: float, util: float):
    from trainperf.monitoring.sampler import Sample

    return Sample(t, 2**30, 0, 100.0, 0.0, 0, gpu_util_percent=util, gpu_memory_bytes=2**30)


@pytest.mark.verdict
@pytest.mark.parametrize(("util", "verdict"), [(20.0, "host-sync-bound"), (95.0, "compute-bound")])
def test_an_idle_gpu_without_data_wait_is_host_sync_bound(util, verdict) -> None:
    periods = steps(10, 1.0, 0.05)
    host = [gpu_sample(t + 0.5, util) for t in range(10)]
    host.append(gpu_sample(10.5, 0.0))  # after training (shutdown): not counted
    summary = summarize(periods, host=host)
    assert summary.primary == verdict
    assert summary.gpu_util_percent == util
    if verdict == "host-sync-bound":
        (finding,) = summary.findings
        assert finding.evidence["gpu_util_percent"] == util
        assert "set_sync_debug_mode" in finding.fix
        assert finding.gain == "if the GPU were kept busy: up to 5.0x samples/s"


@pytest.mark.verdict
def test_input_bound_comes_before_an_idle_gpu() -> None:
    host = [gpu_sample(t + 0.5, 10.0) for t in range(10)]
    assert summarize(steps(10, 1.0, 0.6), host=host).primary == "input-bound"


def test_device_time_and_memory_per_epoch() -> None:
    import dataclasses

    periods = [dataclasses.replace(p, device_s=0.25 + p.index / 100) for p in epochs(2)]
    summary = summarize(periods, device_memory={0: (100, 200), 1: (150, 300)})
    assert summary.device_step_median_s == pytest.approx(0.295)  # median of 0.25..0.34
    assert [
        (e.device_allocated_peak_bytes, e.device_reserved_peak_bytes) for e in summary.epochs
    ] == [
        (100, 200),
        (150, 300),
    ]
    data = summary.to_json()
    assert data["device"] == {
        "step_median_s": summary.device_step_median_s,
        "gpu_util_percent": None,
    }


@pytest.mark.verdict
def test_validation_bound_says_which_part_of_validation() -> None:
    # Two passes of 100 batches of 8 samples against training's 32: small batches over a
    # set as large as an epoch, the model's work (little waiting for data).
    train = [
        Period("train", i, i // 10, i * 1.0, 1.0, 0.0, 32, first_of_epoch=(i % 10 == 0))
        for i in range(20)
    ]
    val = [
        Period("val", k, k, 20.0 + k * 30, 30.0, 1.0, 800, batches=100, first_wait_s=0.01)
        for k in range(2)
    ]
    (finding,) = [f for f in summarize([*train, *val]).findings if f.kind == "validation-bound"]
    assert finding.evidence["validation_batch"] == 8.0
    assert finding.evidence["training_batch"] == 32.0
    assert "its batches: 8 samples against training's 32" in finding.fix
    assert "its size: each pass reads 800 samples" in finding.fix
    assert "its model work" in finding.fix
    assert "its loader" not in finding.fix


@pytest.mark.verdict
def test_validation_waiting_for_its_loader_is_told() -> None:
    train = [
        Period("train", i, 0, i * 1.0, 1.0, 0.0, 32, first_of_epoch=(i == 0)) for i in range(10)
    ]
    val = [Period("val", 0, 0, 10.0, 30.0, 20.0, 320, batches=10, first_wait_s=2.0)]
    (finding,) = [f for f in summarize([*train, *val]).findings if f.kind == "validation-bound"]
    assert "its loader: 67% of validation waits for batches" in finding.fix
    assert "its batches" not in finding.fix
