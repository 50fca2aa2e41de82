"""Turn DataLoader fetches, optimizer steps and grad-free regions into training steps
and validation periods.

The recorder is fed by hooks (:mod:`.hooks`) and keeps no torch objects. Rules:

* A training step ends at each optimizer step (torch's global post-step hook). With
  no optimizer at all, each ``backward()`` ends a step instead. Backward boundaries
  are held back until either an optimizer step shows they were accumulation
  micro-steps (they are then merged into that step) or ``TENTATIVE_LIMIT`` of them
  pass with no optimizer step: a manual loop, whose steps are then written as they
  come.
* The *training loader* is the one whose batches precede optimizer steps, known by
  its dataset (loops often build a new DataLoader every epoch over the same
  dataset). Fetches from any other dataset between two training steps open a
  validation period, which
  ends when the training loader is fetched again (or monitoring stops); its time is
  not counted in the training step around it. Except one batch of another loader
  just before the training loader's (``zip(loader_a, loader_b)``: one fetch, or the
  end of one pass and the first batch of the next): it feeds the same step, which
  counts its wait but not its samples. A validation pass ends in its own
  ``StopIteration``, so it has at least two fetches from one iterator.
* A caller that knows where validation is (the Lightning callback) says so with
  ``begin_validation()`` / ``end_validation()``; that overrides the loader rule.
* Evaluation without a DataLoader (``estimate_loss()`` over tensors): a
  ``torch.no_grad()`` / ``torch.inference_mode()`` region, the outermost one on the
  thread (and in the process) that started monitoring, not inside a DataLoader fetch,
  in which one module ran at least :data:`~trainperf.monitoring.regions.REPEATS`
  times as a root-level call (not from inside another module's forward) and no
  ``backward()``, optimizer step or ``run.step()`` ran, is a validation period from
  its entry to its exit -- unless a validation period was open in it at any time (a
  loader's, a callback's: counted once, by them). Regions inside a step (gradient
  clipping, an EMA update, a metric, a teacher's forward, an ensemble's: each module
  once) change nothing. The step open around an evaluation does not count its time:
  a step whose batch had not arrived starts when it ends; one evaluated after its
  batch arrived keeps its data wait and loses the evaluation's length. Fetches inside
  it (an evaluation over the training loader) are the validation period's, and start
  no epoch. Backward-ended steps still held as possible accumulation micro-steps are
  then a manual loop's.
* With a device timer (CUDA events), each training step also gets ``device_s``:
  device time from the arrival of its last batch to its end. Steps are written in
  order once their marks can be read without waiting (at most ``DEVICE_LAG`` steps
  late; an older one is written without it).
* Data wait is the time spent inside the iterator's ``__next__``: what the loop was
  blocked on, not what prefetching hid. A new pass over the training loader starts
  an epoch, and its first fetch (worker start-up, or the refill of persistent
  workers' queues) is flagged: a new iterator, or the same one reset, which is what
  ``iter(loader)`` returns with ``persistent_workers=True`` (the hooks give it a new
  serial). Wrappers (tqdm, enumerate, zip, islice) call ``iter(loader)`` once per
  ``for``, so they change nothing; taking batches on from an iterator kept across
  ``for`` loops (``islice(it, n)``) is one pass, one epoch.
"""

from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

from trainperf.monitoring.records import Period

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from trainperf.monitoring.hooks import LoaderSeen

__all__ = ["DEVICE_LAG", "TENTATIVE_LIMIT", "DeviceTimer", "StepRecorder"]

# More backward() calls than this without an optimizer step: not gradient accumulation.
TENTATIVE_LIMIT = 32
# Steps whose device time may still be pending; an older one unread by then is written
# without it rather than waited for.
DEVICE_LAG = 64


class DeviceTimer(Protocol):
    """Marks on the device's timeline (CUDA events), read back without waiting."""

    def mark(self) -> object | None:
        """Record a mark now; ``None`` when the device is not in use (yet)."""

    def elapsed(self, start: object, end: object) -> float | None:
        """Seconds between two marks, or ``None`` while the device has not reached ``end``."""

    def wait(self, end: object) -> None:
        """Block until the device reaches ``end`` (once, when the run ends)."""


@dataclass
class _Open:
    """A period being accumulated."""

    start: float
    data_wait: float = 0.0
    samples: int | None = None
    tokens: int | None = None
    first_of_epoch: bool = False
    backward_at: float | None = None
    device_start: object | None = None  # a device mark once the step's batch has arrived
    first_wait: float | None = None  # the first fetch's wait (workers starting, if any)
    batches: int = 0

    def add(self, waited: float, samples: int | None, tokens: int | None = None) -> None:
        self.data_wait += waited
        if self.first_wait is None:
            self.first_wait = waited
        if samples is not None:
            self.samples = (self.samples or 0) + samples
            self.batches += 1
        if tokens is not None:
            self.tokens = (self.tokens or 0) + tokens


class _Fetch(NamedTuple):
    loader: int
    iterator: int
    started: float
    ended: float
    samples: int | None
    tokens: int | None = None


def _reading(fetches: Sequence[_Fetch]) -> _Open:
    """Fetches as one stretch of reading: from the first one's start, their waits and
    samples summed."""
    counted = [f.samples for f in fetches if f.samples is not None]
    tokens = [f.tokens for f in fetches if f.tokens is not None]
    reading = _Open(fetches[0].started, data_wait=sum(f.ended - f.started for f in fetches))
    reading.samples = sum(counted) if counted else None
    reading.tokens = sum(tokens) if tokens else None
    return reading


def _zipped(iterators: Sequence[int]) -> bool:
    """Fetches from another loader between two training steps that are one batch fed
    with the training loader's (``zip(loader_a, loader_b)``), not a validation pass:
    one fetch, or the end of one pass and the first batch of the next (a zip's epoch
    boundary). A pass over a validation set ends in its own ``StopIteration``."""
    return 0 < len(iterators) <= 2 and iterators.count(iterators[-1]) == 1


@dataclass
class _Region:
    """A ``torch.no_grad()`` / ``inference_mode()`` region on the training thread, and
    what a fetch inside it may change, put back if it turns out to be an evaluation."""

    start: float
    validations: int  # validation periods written before it
    covered: bool  # a validation period was open when it began
    step: _Open | None
    step_fields: tuple[float, int | None, int | None, bool, object | None]
    epoch: int
    train_iterator: int | None
    last: tuple[int | None, int | None]  # the last loader and iterator fetched
    fetched_since_step: bool
    early: int
    trained: bool = False  # a backward() or an optimizer step ran inside it
    fetches: _Open = field(default_factory=lambda: _Open(0.0))  # its fetches, any loader


@dataclass
class StepRecorder:
    clock: Callable[[], float]
    emit: Callable[[Period], None]
    origin: float = field(default=0.0)
    device: DeviceTimer | None = None
    # While True (a probe replaying batches), the hooks record nothing.
    suspended: bool = False
    # Peak device memory (allocated, reserved) per epoch, filled in by the hooks.
    device_memory: dict[int, tuple[int, int]] = field(default_factory=dict)
    # The loaders seen, by dataset (the ids ``fetched`` gets), when someone will use them
    # afterwards (``trainperf doctor`` proves its advice on them); None keeps no reference.
    loaders: dict[int, LoaderSeen] | None = None
    # Called (once set) by the hooks before the next DataLoader fetch, outside the
    # recorder's own bookkeeping: where a bounded run stops.
    at_fetch: Callable[[], None] | None = None
    armed: float = field(default=0.0)
    train_loader: int | None = None
    epoch: int = 0
    steps: int = 0
    validations: int = 0
    optimizer_seen: bool = False
    manual_loop: bool = False
    _step: _Open | None = None
    _val: _Open | None = None
    _last_loader: int | None = None
    _last_iterator: int | None = None
    _val_loader: int | None = None
    _val_iterators: list[int] = field(default_factory=list)  # of the open period's fetches
    _last_val_end: float = 0.0
    _train_iterator: int | None = None
    _tentative: list[Period] = field(default_factory=list)
    # Fetches before the first optimizer step (which loader trains is not known yet).
    _early: list[_Fetch] = field(default_factory=list)
    # The last step, kept back until the next one starts: a second optimizer step with
    # no fetch in between (a GAN's discriminator and generator) extends it.
    _held: Period | None = None
    _fetched_since_step: bool = False
    # Between begin_validation() and end_validation() (a callback that knows), every
    # fetch is validation, whatever the loader.
    _explicit_val: bool = False
    # The grad-free region open on the training thread (fed by :mod:`.regions`).
    _region: _Region | None = None
    # Periods written in order once their device time is read: (period, start, end).
    _device_queue: collections.deque[tuple[Period, tuple[object, object] | None]] = field(
        default_factory=collections.deque
    )
    # Device marks (start, end) of the training steps not yet written, by step index.
    _marks: dict[int, tuple[object, object]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # origin: what start_s counts from (the process start under `trainperf run`);
        # armed: when the hooks went in, where a loop without a DataLoader starts.
        self.origin = self.armed = self.clock()

    def fetched(
        self,
        loader: int,
        iterator: int,
        started: float,
        ended: float,
        samples: int | None,
        tokens: int | None = None,
    ) -> None:
        waited = ended - started
        if self._region is not None:
            self._region.fetches.add(waited, samples, tokens)
        if self._explicit_val:
            if self._val is None:
                self._val = _Open(started)
                self._val_loader = loader
            self._val.add(waited, samples, tokens)
            return
        self._last_loader = loader
        self._last_iterator = iterator
        if self.train_loader is None:
            self._early.append(_Fetch(loader, iterator, started, ended, samples, tokens))
        if self.train_loader is not None and loader != self.train_loader:
            if self._val is not None and loader != self._val_loader:
                if _zipped(self._val_iterators):
                    self._val = None  # the end of a zipped loader's pass, not validation
                else:
                    self._close_val(started)  # another loader: another period
            if self._val is None:
                self._val = _Open(started)
                self._val_loader = loader
                self._val_iterators = []
            self._val.add(waited, samples, tokens)
            self._val_iterators.append(iterator)
            return
        if self._val is not None and _zipped(self._val_iterators):
            # One batch of another loader, then the training loader's: both feed this
            # step (zip over two loaders). Its wait is the step's; its samples are not.
            if self._step is not None:
                self._step.data_wait += self._val.data_wait
                # after a validation pass that this loader's batch ended, if any
                self._step.start = max(self._step.start, self._last_val_end)
            self._val = None
        elif self._val is not None:
            self._close_val(started)
            if self._step is not None:
                self._step.start = started  # validation is not part of this step
        new_epoch = self.train_loader is not None and iterator != self._train_iterator
        if self.train_loader is not None:
            self._train_iterator = iterator
        if new_epoch:
            self.epoch += 1
        if self._step is None:
            self._step = _Open(started, first_of_epoch=new_epoch or self.steps == 0)
        elif new_epoch:
            self._step.first_of_epoch = True
        self._step.add(waited, samples, tokens)
        self._fetched_since_step = True
        if self.device is not None:
            self._step.device_start = self.device.mark()

    def optimizer_step(self) -> None:
        now = self.clock()
        if self._region is not None:
            self._region.trained = True
        same_batch = not self._fetched_since_step and self._val is None
        if self._held is not None and same_batch and self.train_loader is not None:
            # Another optimizer stepping on the same batch: the same training step.
            held = self._held
            self._held = dataclasses.replace(held, wall_s=now - self.origin - held.start_s)
            marks = self._marks.get(held.index)
            if marks is not None and self.device is not None:
                self._marks[held.index] = (marks[0], self.device.mark())
            self._step = _Open(now)
            return
        if self._val is not None:
            # The "validation" fetches fed an optimizer step: a new training loader (a
            # loop that builds its DataLoader every epoch). They belong to this step.
            val, self._val = self._val, None
            self.train_loader, self._train_iterator = self._last_loader, self._last_iterator
            self.epoch += 1
            if self._step is None:
                self._step = _Open(val.start)
            self._step.start = max(self._step.start, self._last_val_end, val.start)
            self._step.first_of_epoch = True
            self._step.add(val.data_wait, val.samples, val.tokens)
        if not self.optimizer_seen:
            self.optimizer_seen = True
            self.manual_loop = False
            if self._tentative:
                # Steps ended by backward() before the first optimizer step were
                # accumulation micro-steps: one step, from the first one's start.
                first = self._tentative[0]
                self._step = _Open(first.start_s + self.origin, first_of_epoch=first.first_of_epoch)
                marks = self._marks.get(first.index)
                self._step.device_start = None if marks is None else marks[0]
                for period in self._tentative:
                    self._step.add(period.data_wait_s, period.samples, period.tokens)
                    self._marks.pop(period.index, None)
                self._tentative.clear()
                self.steps = 0
        self._end_step(now)

    def backward_started(self) -> None:
        """A loop without a DataLoader: its first step is dated from its first backward
        (the hooks may go in long before training starts, mid-way through imports)."""
        now = self.clock()
        if self._region is not None:
            self._region.trained = True
        if self._step is None and self.steps == 0:
            self._step = _Open(now, first_of_epoch=True)
        if self._step is not None and self._step.backward_at is None:
            self._step.backward_at = now

    def backward(self) -> None:
        if self.optimizer_seen:
            return
        if self.manual_loop:
            self._end_step(self.clock())
            return
        self._end_step(self.clock(), tentative=True)
        if len(self._tentative) >= TENTATIVE_LIMIT:
            self.manual_loop = True
            for period in self._tentative:
                self._write(period)
            self._tentative.clear()

    def begin_validation(self) -> None:
        """A caller that knows (the Lightning callback) says validation starts: its
        fetches are validation even from the training dataset, and its time is no
        step's."""
        now = self.clock()
        self._explicit_val = True
        if self._val is not None:
            self._close_val(now)
        self._val = _Open(now)
        self._val_iterators = []

    def end_validation(self) -> None:
        now = self.clock()
        self._explicit_val = False
        self._close_val(now)
        if self._step is not None and not self._fetched_since_step:
            self._step.start = now  # the next step starts after validation

    def explicit_step(self) -> None:
        """``run.step()``: the user's own boundary, for loops the hooks cannot see."""
        if self._region is not None:
            self._region.trained = True
        self._end_step(self.clock())

    def region_started(self) -> None:
        """A ``torch.no_grad()`` / ``inference_mode()`` region begins on the training
        thread (the outermost one): an evaluation, perhaps; :meth:`region_ended` says."""
        step = self._step
        self._region = _Region(
            start=self.clock(),
            validations=self.validations,
            covered=self._val is not None or self._explicit_val,
            step=step,
            step_fields=(0.0, None, None, False, None)
            if step is None
            else (
                step.data_wait,
                step.samples,
                step.tokens,
                step.first_of_epoch,
                step.device_start,
            ),
            epoch=self.epoch,
            train_iterator=self._train_iterator,
            last=(self._last_loader, self._last_iterator),
            fetched_since_step=self._fetched_since_step,
            early=len(self._early),
        )

    def region_ended(self, *, evaluated: bool) -> None:
        """The region ends; ``evaluated``: it ran one model at least twice. Such a
        region with no training in it and no validation period of its own (a loader's,
        a callback's) is a validation period, cut out of the step open around it."""
        region, self._region = self._region, None
        if region is None or not evaluated or region.trained or region.covered:
            return
        if self._val is not None or self.validations != region.validations:
            return  # a loader or a callback made it validation already
        now = self.clock()
        self._put_back(region)
        if self._tentative:
            # backward() calls then an evaluation, no optimizer step: not gradient
            # accumulation (nobody evaluates half-way through one) but a manual loop.
            self.manual_loop = True
            for period in self._tentative:
                self._write(period)
            self._tentative.clear()
        self._release()
        val = _Open(region.start, data_wait=region.fetches.data_wait)
        val.samples = region.fetches.samples
        val.tokens = region.fetches.tokens
        self._emit_val(val, now)
        self._last_val_end = now
        step = self._step
        if step is None:
            if self.steps == 0:
                self.armed = max(self.armed, now)  # a loop without a DataLoader starts after
        elif self._fetched_since_step:
            # Evaluated after the step's batch arrived: the step keeps its fetch, not the
            # evaluation (its start moves on by the evaluation's length).
            step.start += now - region.start
            if step.device_start is not None and self.device is not None:
                step.device_start = self.device.mark()
        else:
            step.start = now  # the next step starts after the evaluation

    def _put_back(self, region: _Region) -> None:
        """Undo what the region's fetches did to the step (an evaluation over the
        training loader is no part of a step, nor a new epoch)."""
        self._step = region.step
        if region.step is not None:
            step = region.step
            step.data_wait, step.samples, step.tokens, step.first_of_epoch, step.device_start = (
                region.step_fields
            )
        self.epoch = region.epoch
        self._train_iterator = region.train_iterator
        self._last_loader, self._last_iterator = region.last
        self._fetched_since_step = region.fetched_since_step
        del self._early[region.early :]

    def close(self) -> None:
        now = self.clock()
        if self._val is not None and not self._explicit_val and _zipped(self._val_iterators):
            self._val = None  # the end of a loader zipped with the training loader's
        if self._val is not None:
            self._close_val(now)
        if self.steps == 0 and self._early:
            # Batches read but never trained on (an evaluation script, a loop the hooks
            # cannot see): recorded as one stretch of non-training reading.
            early, self._early = self._early, []
            reading = _reading(early)
            self._emit_val(reading, early[-1].ended)
        self._release()
        if self._tentative:
            for period in self._tentative:
                self._write(period)
            self._tentative.clear()
        if self._device_queue and self.device is not None:
            last = next((m for _, m in reversed(self._device_queue) if m is not None), None)
            if last is not None:
                self.device.wait(last[1])  # once, at the end: every mark is then readable
        self._drain(force=True)

    def _end_step(self, now: float, *, tentative: bool = False) -> None:
        if self.train_loader is None and self._last_loader is not None:
            self.train_loader = self._last_loader
            self._train_iterator = self._last_iterator
            self._split_early()
        # A loop without a DataLoader: the first step starts when monitoring did.
        step = self._step or _Open(self.armed if self.steps == 0 else now)
        period = Period(
            kind="train",
            index=self.steps,
            epoch=self.epoch,
            start_s=step.start - self.origin,
            wall_s=max(now - step.start, 0.0),
            data_wait_s=step.data_wait,
            samples=step.samples,
            tokens=step.tokens,
            first_of_epoch=step.first_of_epoch,
            before_backward_s=None if step.backward_at is None else step.backward_at - step.start,
        )
        if step.device_start is not None and self.device is not None:
            end = self.device.mark()
            if end is not None:
                self._marks[period.index] = (step.device_start, end)
        self.steps += 1
        self._fetched_since_step = False
        if tentative:
            self._tentative.append(period)
        else:
            self._release()
            self._held = period
        self._step = _Open(now)

    def _release(self) -> None:
        if self._held is not None:
            self._write(self._held)
            self._held = None

    def _write(self, period: Period) -> None:
        if self.device is None:
            self.emit(period)
            return
        marks = self._marks.pop(period.index, None) if period.kind == "train" else None
        self._device_queue.append((period, marks))
        self._drain()

    def _drain(self, *, force: bool = False) -> None:
        """Write the queued periods, in order, as far as their device times are known."""
        queue = self._device_queue
        while queue:
            period, marks = queue[0]
            if marks is not None and self.device is not None:
                elapsed = self.device.elapsed(*marks)
                if elapsed is None and not force and len(queue) <= DEVICE_LAG:
                    return  # the device is behind: read it on a later step
                if elapsed is not None:
                    period = dataclasses.replace(period, device_s=elapsed)
            queue.popleft()
            self.emit(period)

    def _split_early(self) -> None:
        """Before the first optimizer step, fetches from loaders other than the one that
        turned out to train (Lightning's sanity check) were validation, not step 0 --
        unless they were one batch zipped with the training loader's."""
        other = [f for f in self._early if f.loader != self.train_loader]
        train = [f for f in self._early if f.loader == self.train_loader]
        self._early = []
        if not other or not train or self._step is None:
            return
        self._step.samples = _reading(train).samples
        self._step.tokens = _reading(train).tokens
        if _zipped([f.iterator for f in other]):
            return
        self._emit_val(_reading(other), train[0].started)
        self._step.start = train[0].started
        self._step.data_wait = _reading(train).data_wait

    def _close_val(self, now: float) -> None:
        val = self._val
        if val is None:
            return
        self._release()
        self._emit_val(val, now)
        self._val = None
        self._last_val_end = now

    def _emit_val(self, val: _Open, end: float) -> None:
        self._write(
            Period(
                kind="val",
                index=self.validations,
                epoch=self.epoch,
                start_s=val.start - self.origin,
                wall_s=max(end - val.start, 0.0),
                data_wait_s=val.data_wait,
                samples=val.samples,
                tokens=val.tokens,
                batches=val.batches if val.first_wait is not None else None,
                first_wait_s=val.first_wait,
            )
        )
        self.validations += 1
