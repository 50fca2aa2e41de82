"""What watching a training loop costs: trainperf next to Lightning's own profilers.

    python benchmarks/monitor_overhead.py [--repeat 5] [--steps 400]
                                          [--parts plain,lightning,anatomy,workers,audit]

1. A plain PyTorch loop (tiny model, in-memory batches through a DataLoader) bare and
   inside ``trainperf.monitor()``: overhead per step in microseconds.
2. The same loop as a Lightning ``fit``, unmonitored and with trainperf's PerfMonitor,
   SimpleProfiler, PyTorchProfiler and ThroughputMonitor: step-time ratio to bare
   (whole fits, so one-off set-up costs are spread over the steps).
3. Step anatomy's stack sampler (``trainperf.monitoring.anatomy``): a plain loop of
   ~1 ms steps (a tiny model plus pure-Python work, which holds the GIL the sampler must
   take: the worst case) bare and sampled at the default rate, in microseconds per step
   and in % of the step (target: <= 1%), beside an A/A test of the noise; the cost of one
   sample to the loop (the GIL hand-over included), measured at 1 kHz where it stands
   above the noise, for that loop and for one of torch ops; one sample's own work.
4. The workers' records (``trainperf.monitoring.worker_timing``): a DataLoader worker's
   fetch of a batch of 32 cheap samples, bare and timed as a monitored worker times it
   (each ``__getitem__``, the ``collate_fn``, the batch's record and its share of the
   flushes), in microseconds per batch and in % of the fetch; run in this process on
   torch's own fetcher, interleaved.
5. The input audit (``trainperf.monitoring.sample_audit``): what recording one batch's
   sample indices costs (the index list kept as it is dispatched, then its batch hash
   and per-sample hashes into the pass's bottom-k sketch as the batch is returned), for
   batches of 8, 64 and 256 from a shuffled dataset large enough that the sketch is
   full and trimmed; against the sampler's own ``_next_index``, interleaved.

Configurations run interleaved, ``--repeat`` times each; medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings

from _machine import describe_machine


def plain_loop(steps: int, monitored: bool, scratch: str) -> float:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    import trainperf

    data = TensorDataset(torch.randn(steps * 8, 16), torch.randn(steps * 8, 1))
    model = torch.nn.Linear(16, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(data, batch_size=8)

    def loop() -> None:
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()

    # Timed inside the monitored block: the per-step cost, not the one-off set-up
    # (fingerprint, run folder), which a real run pays once.
    if monitored:
        with trainperf.monitor(out=f"{scratch}/plain-{time.perf_counter_ns()}"):
            start = time.perf_counter()
            loop()
            elapsed = time.perf_counter() - start
    else:
        start = time.perf_counter()
        loop()
        elapsed = time.perf_counter() - start
    return elapsed / steps


def bookkeeping(steps: int, scratch: str) -> float:
    """Seconds per step of everything the hooks do for one step, without the step:
    a timed fetch (batch size included), the optimizer hook, the record, the flushes."""
    import torch

    import trainperf
    from trainperf.monitoring.hooks import batch_size

    batch = (torch.ones(8, 16), torch.ones(8, 1))
    clock = time.perf_counter
    with trainperf.monitor(out=f"{scratch}/book-{time.perf_counter_ns()}") as run:
        recorder = run._recorder
        assert recorder is not None
        start = clock()
        for _ in range(steps):
            started = clock()
            recorder.fetched(1, 2, started, clock(), batch_size(batch))
            recorder.backward_started()
            recorder.backward()
            recorder.optimizer_step()
        elapsed = clock() - start
    return elapsed / steps


def _python_work(n: int) -> int:
    total = 0
    for i in range(n):
        total += i & 7
    return total


def anatomy_loop(
    steps: int, interval_s: float | None, work: int, width: int = 16
) -> tuple[float, int]:
    """Seconds per step, and samples taken, of a loop bare (``interval_s=None``) or under
    the stack sampler: an MLP ``width`` wide and ``work`` units of pure-Python work a step."""
    import threading

    import torch

    from trainperf.monitoring.anatomy import StackSampler

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, 1)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, width), torch.randn(64, 1)

    def loop() -> None:
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            _python_work(work)

    clock = time.perf_counter
    sampler = StackSampler(
        thread_id=threading.get_ident(), clock=clock, origin=clock(), interval_s=interval_s or 1.0
    )
    if interval_s is not None:
        sampler.start()
    start = clock()
    loop()
    elapsed = clock() - start
    sampler.stop()
    return elapsed / steps, len(sampler.samples)


def anatomy_triplets(
    repeat: int, steps: int, interval_s: float, work: int, width: int
) -> tuple[list[float], list[float], list[float], list[int]]:
    """bare, sampled, bare, ``repeat`` times: the sampled run against the mean of the bare
    runs around it, and the two bare runs against each other (an A/A test: the noise)."""
    added, control, bares, samples = [], [], [], []
    for _ in range(repeat):
        before, _ = anatomy_loop(steps, None, work, width)
        sampled, taken = anatomy_loop(steps, interval_s, work, width)
        after, _ = anatomy_loop(steps, None, work, width)
        added.append(sampled - (before + after) / 2)
        control.append(after - before)
        bares += [before, after]
        samples.append(taken)
    return added, control, bares, samples


def one_sample_cost(samples: int) -> float:
    """Seconds one ``StackSampler.sample()`` takes on a realistic stack: a thread parked
    inside ten nested ``nn.Module`` calls (about 40 frames, torch's and the user's)."""
    import threading

    import torch

    from trainperf.monitoring.anatomy import StackSampler

    parked, release = threading.Event(), threading.Event()

    class Block(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module | None) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.inner is not None:
                return self.inner(x)
            parked.set()
            release.wait()
            return x

    model: torch.nn.Module | None = None
    for _ in range(10):
        model = Block(model)
    assert model is not None
    worker = threading.Thread(target=model, args=(torch.ones(1),))
    worker.start()
    parked.wait()
    sampler = StackSampler(
        thread_id=worker.ident or 0, clock=time.perf_counter, origin=0.0, max_samples=samples
    )
    sampler.sample()  # the classifier is built and the stack's code objects learnt
    start = time.perf_counter()
    for _ in range(samples - 1):
        sampler.sample()
    elapsed = time.perf_counter() - start
    release.set()
    worker.join()
    assert {s.phase for s in sampler.samples} == {"forward"}
    return elapsed / (samples - 1)


def anatomy_overhead(repeat: int) -> None:
    from trainperf.monitoring.anatomy import DEFAULT_INTERVAL_S

    # Pure-Python work that brings a tiny model's step to about 1 ms on this machine: it
    # holds the GIL, which the sampler must take from it (the worst case).
    anatomy_loop(200, None, 0)  # warm up
    torch_only = statistics.median(anatomy_loop(300, None, 0)[0] for _ in range(3))
    start = time.perf_counter()
    _python_work(100_000)
    per_unit = (time.perf_counter() - start) / 100_000
    work = max(0, int((1e-3 - torch_only) / per_unit))
    with_work = statistics.median(anatomy_loop(300, None, work)[0] for _ in range(3))
    if with_work > torch_only:  # once more, from the step measured with the work in it
        work = max(0, int(work * (1e-3 - torch_only) / (with_work - torch_only)))
    steps = 500
    added, control, bares, _ = anatomy_triplets(repeat, steps, DEFAULT_INTERVAL_S, work, 16)
    bare = statistics.median(bares)
    print(
        f"\n3. step anatomy's stack sampler; {repeat} interleaved bare/sampled/bare triplets "
        f"of {steps} steps each"
    )
    print(
        f"   a. ~1 ms steps of Python work, sampled at {1 / DEFAULT_INTERVAL_S:.0f} Hz: bare "
        f"{bare * 1e6:.1f} us/step; sampled minus bare {_spread(added)} us/step "
        f"({statistics.median(added) / bare:+.2%} of the step); bare minus bare (noise) "
        f"{_spread(control)} us/step"
    )
    # At 1 kHz the cost stands well above the noise: the cost of one sample to the loop,
    # the hand-over of the GIL included, scaled back to the default rate.
    print(
        "   b. one sample's cost to the loop, GIL hand-over included, measured at 1 kHz and "
        f"scaled to {1 / DEFAULT_INTERVAL_S:.0f} Hz:"
    )
    for label, loop_work, width in (("Python work", work, 16), ("torch ops, 512 wide", 0, 512)):
        added, _, bares, samples = anatomy_triplets(repeat, steps, 0.001, loop_work, width)
        step = statistics.median(bares)
        per_sample = statistics.median(added) * steps / statistics.median(samples)
        share = per_sample / DEFAULT_INTERVAL_S
        print(
            f"      {label:<20} step {step * 1e6:6.0f} us: {per_sample * 1e6:6.1f} us a sample, "
            f"{share:.2%} of the loop's time at {1 / DEFAULT_INTERVAL_S:.0f} Hz"
        )
    cost = statistics.median(one_sample_cost(20_000) for _ in range(3))
    print(
        f"   c. one sample's own work (a 35-frame stack), measured directly over 20,000: "
        f"{cost * 1e6:.2f} us, {cost / DEFAULT_INTERVAL_S:.3%} of the time at "
        f"{1 / DEFAULT_INTERVAL_S:.0f} Hz"
    )


def _spread(values: list[float]) -> str:
    """Median and quartiles, in microseconds."""
    ordered = sorted(values)
    low, high = ordered[len(ordered) // 4], ordered[3 * len(ordered) // 4]
    return (
        f"{statistics.median(ordered) * 1e6:+.1f} (quartiles {low * 1e6:+.1f} .. {high * 1e6:+.1f})"
    )


def lightning_fit(steps: int, variant: str, scratch: str) -> float:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ThroughputMonitor
    from lightning.pytorch.profilers import PyTorchProfiler, SimpleProfiler
    from torch.utils.data import DataLoader, TensorDataset

    from trainperf.lightning import PerfMonitor

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(16, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    callbacks: list[L.Callback] = []
    profiler = None
    if variant == "trainperf":
        callbacks.append(PerfMonitor(out=f"{scratch}/fit-{time.perf_counter_ns()}"))
    elif variant == "SimpleProfiler":
        profiler = SimpleProfiler(dirpath=scratch, filename=f"simple-{time.perf_counter_ns()}")
    elif variant == "PyTorchProfiler":
        profiler = PyTorchProfiler(
            dirpath=scratch, schedule=torch.profiler.schedule(wait=1, warmup=1, active=3, repeat=1)
        )
    elif variant == "ThroughputMonitor":
        callbacks.append(ThroughputMonitor(batch_size_fn=lambda batch: batch[0].shape[0]))
    data = TensorDataset(torch.randn(steps * 8, 16), torch.randn(steps * 8, 1))
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=callbacks,
        profiler=profiler,
        logger=(variant == "ThroughputMonitor" and L.pytorch.loggers.CSVLogger(scratch)) or False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=scratch,
    )
    start = time.perf_counter()
    trainer.fit(Tiny(), DataLoader(data, batch_size=8))
    return (time.perf_counter() - start) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--parts", default="plain,lightning,anatomy,workers,audit")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    print(f"machine: {describe_machine()}")
    with tempfile.TemporaryDirectory() as scratch:
        if "plain" in parts:
            plain_part(args.repeat, args.steps, scratch)
        if "lightning" in parts:
            lightning_part(args.repeat, args.steps, scratch)
        if "anatomy" in parts:
            anatomy_overhead(args.repeat)
        if "workers" in parts:
            workers_overhead(args.repeat, scratch)
        if "audit" in parts:
            audit_overhead(args.repeat)
    return 0


def worker_fetches(batches: int, timed: bool, scratch: str) -> float:
    """Seconds per batch of a worker's fetcher over ``batches`` batches of 32."""
    import torch
    from torch.utils.data import TensorDataset, default_collate
    from torch.utils.data._utils.fetch import _MapDatasetFetcher

    from trainperf.monitoring.worker_timing import StageClock

    data = TensorDataset(torch.randn(batches * 32, 16), torch.randn(batches * 32, 1))
    fetcher = _MapDatasetFetcher(data, True, default_collate, False)
    clock = StageClock(f"{scratch}/batches.jsonl", time.time(), pid=1, worker_id=0, start=0)
    if timed:
        clock.wrap(fetcher)
    indices = [list(range(i * 32, i * 32 + 32)) for i in range(batches)]
    start = time.perf_counter()
    for index in indices:
        fetcher.fetch(index)
    clock.flush()
    return (time.perf_counter() - start) / batches


def workers_overhead(repeat: int, scratch: str) -> None:
    runs: dict[bool, list[float]] = {False: [], True: []}
    worker_fetches(200, True, scratch)  # warm up
    for _ in range(max(repeat, 5)):
        for timed in (False, True, False):
            runs[timed].append(worker_fetches(2000, timed, scratch))
    bare, timed = statistics.median(runs[False]), statistics.median(runs[True])
    print(f"\n4. a worker's fetch of 32 samples, median of {len(runs[True])}")
    print(
        f"   bare {bare * 1e6:.1f} us/batch, timed {timed * 1e6:.1f} us/batch: "
        f"{(timed - bare) * 1e6:+.1f} us/batch ({(timed - bare) / bare:+.1%} of the fetch, "
        f"{(timed - bare) * 1e6 / 32:.2f} us a sample)"
    )


def audit_batches(batch: int, batches: int, audited: bool) -> float:
    """Seconds per batch of a shuffled sampler's ``_next_index``, bare or with the input
    audit's recording of it (dispatched, then returned)."""
    from torch.utils.data import DataLoader

    from trainperf.monitoring.sample_audit import SampleRecorder

    iterator = iter(DataLoader(range(batch * batches), batch_size=batch, shuffle=True))
    recorder = SampleRecorder()
    start = time.perf_counter()
    if audited:
        for _ in range(batches):
            recorder.dispatched(iterator, iterator._next_index())
            recorder.consumed(iterator, None)
    else:
        for _ in range(batches):
            iterator._next_index()
    return (time.perf_counter() - start) / batches


def audit_overhead(repeat: int) -> None:
    print(f"\n5. the input audit's recording of a batch's indices, median of {max(repeat, 5)}")
    for batch in (8, 64, 256):
        batches = 400_000 // batch  # 400,000 samples: the sketch fills and is trimmed
        runs: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(max(repeat, 5)):
            for audited in (False, True):
                runs[audited].append(audit_batches(batch, batches, audited))
        bare, audited_s = statistics.median(runs[False]), statistics.median(runs[True])
        cost = audited_s - bare
        print(
            f"   batch {batch:>3}: sampler {bare * 1e6:6.1f} us/batch, audited "
            f"{audited_s * 1e6:6.1f} us/batch: {cost * 1e6:+.1f} us/batch "
            f"({cost * 1e9 / batch:.0f} ns a sample)"
        )


def plain_part(repeat: int, steps: int, scratch: str) -> None:
    plain: dict[bool, list[float]] = {False: [], True: []}
    plain_loop(50, False, scratch)  # warm up
    for _ in range(repeat):
        for monitored in (False, True):
            plain[monitored].append(plain_loop(steps, monitored, scratch))
    bare, watched = statistics.median(plain[False]), statistics.median(plain[True])
    print(f"\n1. plain loop, {steps} steps, median of {repeat}")
    print(
        f"   bare {bare * 1e6:.1f} us/step, monitored {watched * 1e6:.1f} us/step: "
        f"{(watched - bare) * 1e6:+.1f} us/step ({watched / bare:.3f}x); this machine's "
        f"run-to-run noise is of the same size"
    )
    direct = statistics.median(bookkeeping(100_000, scratch) for _ in range(repeat))
    print(
        f"   the hooks' own work per step, measured directly over 100,000 steps: "
        f"{direct * 1e6:.2f} us"
    )


def lightning_part(repeat: int, steps: int, scratch: str) -> None:
    variants = ["bare", "trainperf", "SimpleProfiler", "ThroughputMonitor", "PyTorchProfiler"]
    fits: dict[str, list[float]] = {v: [] for v in variants}
    lightning_fit(50, "bare", scratch)  # warm up
    for _ in range(repeat):
        for variant in variants:
            fits[variant].append(lightning_fit(steps, variant, scratch))
    base = statistics.median(fits["bare"])
    print(f"\n2. Lightning fit, {steps} steps, median of {repeat}")
    for variant in variants:
        step = statistics.median(fits[variant])
        print(
            f"   {variant:<18} {step * 1e3:7.3f} ms/step  {step / base:6.3f}x  "
            f"({(step - base) * 1e6:+.1f} us/step)"
        )


if __name__ == "__main__":
    sys.exit(main())
