"""Exporters: a monitored run's figures, sent to TensorBoard, W&B or MLflow as it goes.

    with trainperf.monitor(export=["tensorboard:runs/tb", "mlflow:mlruns"]):
        train()

    trainperf run --export wandb:runs/wandb -- python train.py

Each exporter writes from its own thread; the training loop only puts each step on
a bounded queue (:mod:`.channel`) and never waits for it. Specs and the registry of
backends are in :mod:`.spec`, the figures in :mod:`.figures`, the protocol your own
exporter follows in :mod:`.protocol`. The backends' libraries are extras, imported
only when an exporter starts writing.
"""

from __future__ import annotations

from trainperf.exporters.protocol import Exporter, RunEnd
from trainperf.exporters.spec import (
    Backend,
    ExportSpec,
    ExportTarget,
    backends,
    exporters_for,
    parse_spec,
    register,
)

__all__ = [
    "Backend",
    "ExportSpec",
    "ExportTarget",
    "Exporter",
    "RunEnd",
    "backends",
    "exporters_for",
    "parse_spec",
    "register",
]
