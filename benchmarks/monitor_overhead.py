"""What watching a training loop costs: trainperf next to Lightning's own profilers.

    python benchmarks/monitor_overhead.py [--repeat 5] [--steps 400]

1. A plain PyTorch loop (tiny model, in-memory batches through a DataLoader) bare and
   inside ``trainperf.monitor()``: overhead per step in microseconds.
2. The same loop as a Lightning ``fit``, unmonitored and with trainperf's PerfMonitor,
   SimpleProfiler, PyTorchProfiler and ThroughputMonitor: step-time ratio to bare
   (whole fits, so one-off set-up costs are spread over the steps).

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
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    print(f"machine: {describe_machine()}")
    with tempfile.TemporaryDirectory() as scratch:
        plain: dict[bool, list[float]] = {False: [], True: []}
        plain_loop(50, False, scratch)  # warm up
        for _ in range(args.repeat):
            for monitored in (False, True):
                plain[monitored].append(plain_loop(args.steps, monitored, scratch))
        bare, watched = statistics.median(plain[False]), statistics.median(plain[True])
        print(f"\n1. plain loop, {args.steps} steps, median of {args.repeat}")
        print(
            f"   bare {bare * 1e6:.1f} us/step, monitored {watched * 1e6:.1f} us/step: "
            f"{(watched - bare) * 1e6:+.1f} us/step ({watched / bare:.3f}x); this machine's "
            f"run-to-run noise is of the same size"
        )
        direct = statistics.median(bookkeeping(100_000, scratch) for _ in range(args.repeat))
        print(
            f"   the hooks' own work per step, measured directly over 100,000 steps: "
            f"{direct * 1e6:.2f} us"
        )

        variants = ["bare", "trainperf", "SimpleProfiler", "ThroughputMonitor", "PyTorchProfiler"]
        fits: dict[str, list[float]] = {v: [] for v in variants}
        lightning_fit(50, "bare", scratch)  # warm up
        for _ in range(args.repeat):
            for variant in variants:
                fits[variant].append(lightning_fit(args.steps, variant, scratch))
        base = statistics.median(fits["bare"])
        print(f"\n2. Lightning fit, {args.steps} steps, median of {args.repeat}")
        for variant in variants:
            step = statistics.median(fits[variant])
            print(
                f"   {variant:<18} {step * 1e3:7.3f} ms/step  {step / base:6.3f}x  "
                f"({(step - base) * 1e6:+.1f} us/step)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
