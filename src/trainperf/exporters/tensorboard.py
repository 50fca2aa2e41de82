"""``tensorboard:DIR``: an event file in DIR, for ``tensorboard --logdir DIR``.

Written with TensorBoard's own event writer (``pip install "trainperf[tensorboard]"``;
no TensorFlow or torch needed): scalars as the classic ``simple_value`` summaries
that every TensorBoard reader shows, the verdict as text (the Text tab).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

from trainperf.exporters.spec import Backend, register

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from trainperf.exporters.protocol import RunEnd

__all__ = ["FLUSH_EVERY_S", "TensorBoardExporter"]

# TensorBoard's writer flushes on its own every so often (its default is 120 s): a
# killed run keeps all but the last few seconds of its figures.
FLUSH_EVERY_S = 10


class TensorBoardExporter:
    """Scalars and the verdict as text into an event file in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._writer: _EventWriter | None = None

    @property
    def name(self) -> str:
        return f"tensorboard:{self.folder}"

    def open(self) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.folder.mkdir(parents=True, exist_ok=True)
        self._writer = EventFileWriter(str(self.folder), flush_secs=FLUSH_EVERY_S)

    def write_step(self, step: int, figures: Mapping[str, float]) -> None:
        self._scalars(step, figures)

    def write_epoch(self, epoch: int, figures: Mapping[str, float]) -> None:
        self._scalars(epoch, figures)

    def close(self, end: RunEnd | None) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if end is not None:
            self._scalars(end.step, end.figures, writer)
            for tag, text in end.tags.items():
                writer.add_event(_text_event(tag, text, end.step))
        writer.close()

    def _scalars(
        self, step: int, figures: Mapping[str, float], writer: _EventWriter | None = None
    ) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2

        writer = writer or self._writer
        if writer is None:
            raise RuntimeError(f"{self.name} is not open")
        values = [summary_pb2.Summary.Value(tag=k, simple_value=v) for k, v in figures.items()]
        summary = summary_pb2.Summary(value=values)
        writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))


class _EventWriter(Protocol):
    """What is used of TensorBoard's untyped ``EventFileWriter``."""

    def add_event(self, event: object) -> None: ...

    def close(self) -> None: ...


def _text_event(tag: str, text: str, step: int) -> object:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.text import metadata
    from tensorboard.util import tensor_util

    value = summary_pb2.Summary.Value(
        tag=tag,
        tensor=tensor_util.make_tensor_proto(text),
        metadata=metadata.create_summary_metadata(display_name=None, description=""),
    )
    return event_pb2.Event(
        wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=[value])
    )


register(
    Backend(
        kind="tensorboard", library="tensorboard", extra="tensorboard", make=TensorBoardExporter
    )
)
