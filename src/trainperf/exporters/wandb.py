"""``wandb:DIR``: an offline Weights & Biases run in ``DIR/wandb/offline-run-*``.

Offline always: nothing leaves the machine while training; ``wandb sync DIR/wandb/
offline-run-*`` uploads it later. The run is a new one even when the program has its
own W&B run open (``reinit="create_new"``), and it leaves the program's console alone.
Step figures are plotted against ``perf/step``, epoch figures against ``perf/epoch``;
the run's figures and verdict go to its summary, the verdict to its config and tags.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainperf.exporters.spec import Backend, register

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from wandb.sdk.wandb_run import Run as WandbRun

    from trainperf.exporters.protocol import RunEnd

__all__ = ["PROJECT", "WandbExporter"]

PROJECT = "trainperf"


class WandbExporter:
    """Figures into an offline W&B run kept under ``folder`` (project ``project``)."""

    def __init__(self, folder: Path, *, project: str = PROJECT) -> None:
        self.folder = folder
        self.project = project
        self._run: WandbRun | None = None

    @property
    def name(self) -> str:
        return f"wandb:{self.folder}"

    def open(self) -> None:
        import wandb

        self.folder.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(
            silent=True,
            console="off",  # the program's stdout and stderr are its own
            save_code=False,
            x_disable_stats=True,  # trainperf samples the host itself
            x_disable_meta=True,
        )
        run = wandb.init(
            dir=self.folder,
            project=self.project,
            mode="offline",
            reinit="create_new",
            settings=settings,
        )
        run.define_metric("perf/step/*", step_metric="perf/step")
        run.define_metric("perf/epoch/*", step_metric="perf/epoch")
        self._run = run

    def write_step(self, step: int, figures: Mapping[str, float]) -> None:
        self._opened().log({"perf/step": step, **figures})

    def write_epoch(self, epoch: int, figures: Mapping[str, float]) -> None:
        self._opened().log({"perf/epoch": epoch, **figures})

    def close(self, end: RunEnd | None) -> None:
        run, self._run = self._run, None
        if run is None:
            return
        try:
            if end is not None:
                run.summary.update({**end.figures, **end.tags})
                # wandb's Config.update is unannotated; it takes a dict of str to str here.
                run.config.update(dict(end.tags), allow_val_change=True)  # type: ignore[no-untyped-call]
                run.tags = (*(run.tags or ()), end.tags["perf/verdict"])
        finally:
            run.finish()

    def _opened(self) -> WandbRun:
        if self._run is None:
            raise RuntimeError(f"{self.name} is not open")
        return self._run


register(Backend(kind="wandb", library="wandb", extra="wandb", make=WandbExporter))
