"""``mlflow:DIR``: an MLflow run in the local file store DIR (``mlflow ui
--backend-store-uri DIR`` shows it), experiment ``trainperf``.

Written through ``MlflowClient`` (``pip install "trainperf[mlflow]"``; mlflow-skinny is
enough): step and epoch figures as metrics, the run's figures at its last step, the
verdict as tags and params. MLflow 3 keeps its file store for those who opt in with
``MLFLOW_ALLOW_FILE_STORE=true``; a ``mlflow:DIR`` spec is that opt-in, for this
exporter's store only.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING

from trainperf.exporters.spec import Backend, register

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from trainperf.exporters.protocol import RunEnd

__all__ = ["BATCH", "EXPERIMENT", "MlflowExporter"]

EXPERIMENT = "trainperf"
# Metrics held before one write (MLflow takes up to 1000 per batch): the file store
# writes a file per metric, so batching is most of its cost. Epochs and the end flush.
BATCH = 200
_ALLOW = "MLFLOW_ALLOW_FILE_STORE"


class MlflowExporter:
    """Figures into a new run of experiment ``experiment`` in the file store ``folder``."""

    def __init__(self, folder: Path, *, experiment: str = EXPERIMENT) -> None:
        self.folder = folder
        self.experiment = experiment
        self.run_id: str | None = None
        self._client: MlflowClient | None = None
        self._pending: list[Metric] = []

    @property
    def name(self) -> str:
        return f"mlflow:{self.folder}"

    def open(self) -> None:
        from mlflow.tracking import MlflowClient

        self.folder.mkdir(parents=True, exist_ok=True)
        with _file_store_allowed():
            # The store is built (and the opt-in read) here, once per tracking URI.
            client = MlflowClient(tracking_uri=self.folder.as_uri())
        self.run_id = client.create_run(self._experiment(client)).info.run_id
        self._client = client

    def _experiment(self, client: MlflowClient) -> str:
        from mlflow.exceptions import MlflowException

        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(self.experiment)
        except MlflowException:  # another rank created it meanwhile
            found = client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    def write_step(self, step: int, figures: Mapping[str, float]) -> None:
        self._add(step, figures)
        if len(self._pending) >= BATCH:
            self._flush()

    def write_epoch(self, epoch: int, figures: Mapping[str, float]) -> None:
        self._add(epoch, figures)
        self._flush()

    def close(self, end: RunEnd | None) -> None:
        client, run_id = self._client, self.run_id
        if client is None or run_id is None:
            return
        if end is not None:
            self._add(end.step, end.figures)
        self._flush()
        self._client = None
        if end is not None:
            for key, value in end.tags.items():
                client.set_tag(run_id, key, value)
                client.log_param(run_id, key, value)
        client.set_terminated(run_id, status="FINISHED" if end is not None else "KILLED")

    def _add(self, step: int, figures: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending.extend(Metric(key, value, now, step) for key, value in figures.items())

    def _flush(self) -> None:
        if self._client is None or self.run_id is None:
            raise RuntimeError(f"{self.name} is not open")
        if self._pending:
            self._client.log_batch(self.run_id, metrics=self._pending, synchronous=True)
            self._pending = []


@contextlib.contextmanager
def _file_store_allowed() -> Iterator[None]:
    """MLflow's file-store opt-in while the block runs, unless the environment already
    says either way; the variable is removed again afterwards."""
    if _ALLOW in os.environ:
        yield
        return
    os.environ[_ALLOW] = "true"
    try:
        yield
    finally:
        os.environ.pop(_ALLOW, None)


register(Backend(kind="mlflow", library="mlflow", extra="mlflow", make=MlflowExporter))
