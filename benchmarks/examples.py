"""Three classic pipeline problems, measured on the bundled OCR example.

1. Start-up: time until a bad override (``trainer.max_epochs=abc``) is reported, by
   the eager twin (heavy imports first) and by the lazy entry point.
2. Label maps: the reference border map vs the fast one on the same pages, at the
   example's page size and at a seed-like 640 x 640 with 20-40 words.
3. Validation vs training cost per sample with the naive settings.

    python benchmarks/examples.py [--repeat 7] [--pages 64]

Each comparison runs its two sides interleaved in one process tree and reports the
ratio of medians; absolute times on a shared machine are not comparable across runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

from _machine import describe_machine


def startup(repeat: int) -> tuple[float, float]:
    """Median seconds to the config error: (eager, lazy)."""
    times: dict[str, list[float]] = {"eager": [], "lazy": []}
    modules = {
        "eager": "trainperf.examples.ocr.train_eager",
        "lazy": "trainperf.examples.ocr.train",
    }
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(repeat):
            for name, module in modules.items():
                start = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, "-m", module, "trainer.max_epochs=abc"],
                    capture_output=True,
                    text=True,
                    cwd=cwd,
                    check=False,
                )
                times[name].append(time.perf_counter() - start)
                if proc.returncode == 0 or "max_epochs" not in proc.stderr:
                    raise SystemExit(f"{module} did not fail on the bad override:\n{proc.stderr}")
    return statistics.median(times["eager"]), statistics.median(times["lazy"])


def border_maps(size: int, words: tuple[int, int], pages: int, repeat: int) -> tuple[float, float]:
    """Median seconds per page: (reference, fast)."""
    from trainperf.examples.ocr.labels import border_map_fast, border_map_reference
    from trainperf.examples.ocr.synth import PageSpec, render_page

    spec = PageSpec(
        height=size,
        width=size,
        min_words=words[0],
        max_words=words[1],
        max_font=max(32, size // 10),
    )
    rendered = [render_page(spec, seed) for seed in range(pages)]
    times: dict[str, list[float]] = {"reference": [], "fast": []}
    for _ in range(repeat):
        for name, build in (("reference", border_map_reference), ("fast", border_map_fast)):
            start = time.perf_counter()
            for page in rendered:
                build(page.polygons, size, size)
            times[name].append((time.perf_counter() - start) / pages)
    return statistics.median(times["reference"]), statistics.median(times["fast"])


def validation_vs_training(pages: int, epochs: int) -> tuple[float, float]:
    """Seconds per sample with the naive settings: (training, validation)."""
    import lightning as L

    from trainperf.examples.ocr.config import OCRConfig
    from trainperf.examples.ocr.data import OCRDataModule
    from trainperf.examples.ocr.lightning_module import DBModule

    class StageClock(L.Callback):
        def __init__(self) -> None:
            self.train = self.val = 0.0
            self.train_samples = self.val_samples = 0
            self._epoch = self._val = 0.0

        def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
            self._epoch = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            self.train_samples += len(batch.images)

        def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
            self._val = time.perf_counter()

        def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, *_) -> None:
            self.val_samples += len(batch.images)

        def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
            self.val += time.perf_counter() - self._val

        def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
            self.train += time.perf_counter() - self._epoch

    config = OCRConfig()
    config.data.train_pages = pages
    config.data.val_pages = pages
    clock = StageClock()
    trainer = L.Trainer(
        max_epochs=epochs,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        logger=False,
        callbacks=[clock],
    )
    L.seed_everything(0, verbose=False)
    trainer.fit(DBModule(config.model), datamodule=OCRDataModule(config.data))
    training = (clock.train - clock.val) / clock.train_samples  # the epoch includes validation
    return training, clock.val / clock.val_samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each start-up side")
    parser.add_argument("--pages", type=int, default=64, help="pages per set in part 3")
    args = parser.parse_args()

    print(f"machine: {describe_machine()}")
    eager, lazy = startup(args.repeat)
    print("\n1. time to a config error (trainer.max_epochs=abc), median of", args.repeat)
    print(f"   eager twin {eager:.2f} s, lazy entry point {lazy:.2f} s: {eager / lazy:.1f}x faster")

    print("\n2. border map per page, reference vs fast (median of 5 passes)")
    for size, words in ((256, (3, 8)), (640, (20, 40))):
        ref, fast = border_maps(size, words, pages=24, repeat=5)
        print(
            f"   {size}x{size}, {words[0]}-{words[1]} words: reference {ref * 1e3:.2f} ms, "
            f"fast {fast * 1e3:.2f} ms: {ref / fast:.1f}x"
        )

    training, validation = validation_vs_training(args.pages, epochs=2)
    print("\n3. naive settings (num_workers=0, reference maps, maps rebuilt in val collate)")
    print(
        f"   training {training * 1e3:.1f} ms/sample, validation {validation * 1e3:.1f} ms/sample:"
        f" validation/training = {validation / training:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
