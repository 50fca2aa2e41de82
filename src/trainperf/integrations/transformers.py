"""Hugging Face ``Trainer`` integration: the ``PerfCallback``.

    trainer = Trainer(model=model, args=args, ..., callbacks=[PerfCallback()])

It records training like ``trainperf.monitor()`` does. The Trainer fetches every
micro-batch of an optimizer step (``get_batch_samples``), and moves it to the device,
before it calls any callback, so the data wait is not read from the callback's hooks:
it is timed where the fetch happens, in the DataLoader iterator underneath Accelerate's
``DataLoaderShard``. A training step is an optimizer step: samples/s and tokens/s (a
batch's ``attention_mask`` ones, else its ``input_ids``) count every micro-batch of a
gradient-accumulation window (``DataLoaderShard`` reads one batch ahead, so an epoch's
first step counts that batch too and its last one fewer: each epoch's total is exact).
``Trainer.evaluate`` and ``predict`` are recorded as
validation, also when the Trainer evaluates inside ``train``.

When the run so far is input-bound at the end of training it replays the last
``PROBE_BATCHES`` micro-batches, kept in memory, through the Trainer's own
``training_step``, optimizer and scheduler step, with the model, optimizer, scheduler
and random states restored afterwards (``probe=False`` turns that off): the input-bound
gain is then measured, not estimated.

Under ``trainperf run`` and ``trainperf doctor`` every Trainer gets this callback with
no change to the script; it joins the run that records the process, each rank its own
under ``torchrun`` or ``accelerate launch``. Under the doctor it stops the Trainer at
the doctor's limit (``control.should_training_stop``) and proves its advice through the
Trainer's own step (:func:`trainperf.doctor.child.prove`); the advice is then given as
the ``TrainingArguments`` to change.

To see the evaluation loops and keep batches for the probe, the first ``PerfCallback``
made wraps ``Trainer.train``, ``evaluate``, ``predict`` and ``training_step`` once, at
the class; the wrappers do nothing for a Trainer without the callback.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
from typing import TYPE_CHECKING, Any

import torch
from transformers import Trainer, TrainerCallback

from trainperf.integrations._run import Recording
from trainperf.integrations._state import restored

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Iterator, Sequence

    from transformers import TrainerControl, TrainerState, TrainingArguments

    from trainperf.exporters.spec import ExportTarget
    from trainperf.monitoring.session import Run

__all__ = ["FRAMEWORK", "PROBE_BATCHES", "PerfCallback"]

PROBE_BATCHES = 8
FRAMEWORK = "transformers"  # how proofs.json names a run whose advice is TrainingArguments
_log = logging.getLogger("trainperf")


class PerfCallback(Recording, TrainerCallback):
    def __init__(
        self,
        *,
        out: str | os.PathLike[str] | None = None,
        probe: bool = True,
        export: Sequence[ExportTarget] = (),
    ) -> None:
        """``export``: specs (``"tensorboard:DIR"``, ...) or exporters for the run this
        callback starts (see :func:`trainperf.monitor`); checked here. A run already
        recording the process (``trainperf run --export``) keeps its own."""
        super().__init__()
        _wrap_trainer()
        self.init_recording(out=out, export=export)
        self.probe = probe
        self.trainer: Trainer | None = None  # set by the wrapped Trainer.train
        self._batches: collections.deque[Any] = collections.deque(maxlen=PROBE_BATCHES)
        self._evaluating = 0  # evaluate() nests for a dict of evaluation sets
        self._keeping = True  # off while the probe and the proofs take their own steps

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.begin_recording()

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.stop_now:
            control.should_training_stop = True

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        batches, self._batches = list(self._batches), collections.deque(maxlen=PROBE_BATCHES)
        run, trainer = self.run, self.trainer
        if run is None:
            return
        self._keeping = False
        try:
            if trainer is not None and batches and run.summarize().step.kind == "input-bound":
                self._replay(run, trainer, batches)
            if self.proving:
                self._prove(run, trainer)
        except Exception as exc:  # a probe or a proof must never break the training
            _log.warning("trainperf probe skipped: %s", exc)
        finally:
            self.finish_recording()

    def _replay(self, run: Run, trainer: Trainer, batches: list[Any]) -> None:
        cuda = trainer.args.device.type == "cuda"
        with _restored(trainer):
            run.replay(
                _training_step(trainer),
                batches,
                sync=torch.cuda.synchronize if cuda else None,
            )

    def _prove(self, run: Run, trainer: Trainer | None) -> None:
        """``trainperf doctor``: its proofs, end to end through the Trainer's own step."""
        from trainperf.doctor.child import prove

        stopped = run.limit_reached
        if trainer is None:
            prove(run, stopped=stopped, framework=FRAMEWORK)
            return
        with _restored(trainer):
            prove(run, train_step=_training_step(trainer), stopped=stopped, framework=FRAMEWORK)

    # Called by the wrapped Trainer methods.

    def _begin_evaluation(self) -> None:
        run = self.current_run()
        if run is not None and self._evaluating == 0:
            run.begin_validation()
        self._evaluating += 1

    def _end_evaluation(self) -> None:
        self._evaluating -= 1
        run = self.current_run()
        if run is not None and self._evaluating == 0:
            run.end_validation()

    def _keep(self, inputs: object) -> None:
        if self.probe and self._keeping:
            self._batches.append(inputs)


def _callback_of(trainer: Trainer) -> PerfCallback | None:
    handler = getattr(trainer, "callback_handler", None)
    for callback in getattr(handler, "callbacks", ()):
        if isinstance(callback, PerfCallback):
            return callback
    return None


def _training_step(trainer: Trainer) -> Callable[[object], None]:
    """The Trainer's step on one batch: ``training_step`` (forward, backward through
    Accelerate), then the optimizer and the scheduler, as ``train`` runs them."""
    model = trainer.model_wrapped
    gradient_state = getattr(trainer.accelerator, "gradient_state", None)

    optimizer = trainer.optimizer
    if optimizer is None:
        raise RuntimeError("the Trainer has no optimizer yet")

    def step(batch: object) -> None:
        # Accelerate's optimizer skips its step outside a synchronising micro-batch.
        sync = getattr(gradient_state, "_set_sync_gradients", None)
        if callable(sync):
            sync(True)
        trainer.training_step(model, batch)  # type: ignore[arg-type]  # the loader's batch
        optimizer.step()
        if trainer.lr_scheduler is not None:
            trainer.lr_scheduler.step()
        model.zero_grad(set_to_none=True)

    return step


@contextlib.contextmanager
def _restored(trainer: Trainer) -> Iterator[None]:
    """The model, optimizer, scheduler and random states as they were, and the
    Trainer's own step counter untouched."""
    global_step = trainer.state.global_step
    if not isinstance(trainer.model, torch.nn.Module):
        raise RuntimeError("the Trainer has no model")
    with restored(trainer.model, trainer.optimizer, trainer.lr_scheduler):
        yield
    trainer.state.global_step = global_step


_WRAPPED = "_trainperf_wrapped"


def _wrap_trainer() -> None:
    """Wrap ``Trainer.train``, ``evaluate``, ``predict`` and ``training_step``, once."""
    if getattr(Trainer, _WRAPPED, False):
        return
    setattr(Trainer, _WRAPPED, True)
    train, evaluate, predict = Trainer.train, Trainer.evaluate, Trainer.predict
    training_step = Trainer.training_step

    @functools.wraps(train)
    def wrapped_train(self: Trainer, *args: Any, **kwargs: Any) -> Any:
        callback = _callback_of(self)
        if callback is not None:
            callback.trainer = self
        return train(self, *args, **kwargs)

    def evaluation(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapped(self: Trainer, *args: Any, **kwargs: Any) -> Any:
            callback = _callback_of(self)
            if callback is None:
                return method(self, *args, **kwargs)
            callback._begin_evaluation()
            try:
                return method(self, *args, **kwargs)
            finally:
                callback._end_evaluation()

        return wrapped

    @functools.wraps(training_step)
    def wrapped_training_step(
        self: Trainer, model: Any, inputs: Any, *args: Any, **kwargs: Any
    ) -> Any:
        callback = _callback_of(self)
        if callback is not None:
            callback._keep(inputs)
        return training_step(self, model, inputs, *args, **kwargs)

    Trainer.train = wrapped_train  # type: ignore[method-assign]
    Trainer.evaluate = evaluation(evaluate)  # type: ignore[method-assign]
    Trainer.predict = evaluation(predict)  # type: ignore[method-assign]
    Trainer.training_step = wrapped_training_step  # type: ignore[method-assign]
