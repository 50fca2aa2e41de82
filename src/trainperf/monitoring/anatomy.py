"""Step anatomy, capture: where the training thread is, sampled, named by the user's line.

A :class:`StackSampler` thread reads the training thread's stack every ``interval_s``
(``sys._current_frames()``) and keeps one :class:`StackSample`: its time (seconds from
the monitoring origin, like ``Period.start_s``), a :data:`Phase`, and the *user line*:
the innermost frame of the user's own code (not the stdlib, not site-packages, not torch,
not trainperf). A :class:`GcWatch` records the garbage collector's pauses. An
:class:`AnatomyCapture` runs both; its :meth:`~AnatomyCapture.record` is written to
``anatomy.jsonl`` by :func:`write_anatomy` and read back by :func:`read_anatomy` (both
from :mod:`.anatomy_record`, re-exported here). The analysis, pure functions, is
:mod:`trainperf.monitoring.anatomy_analysis`.

How a stack is classified (:meth:`StackClassifier.classify`), walking innermost to
outermost, with the innermost user frame splitting the stack in two:

* *inside* it (what the user's line is calling), the first torch or trainperf frame
  names the phase -- trainperf's is ``"monitor"``, torch's by its file: ``utils/data/``
  data, ``autograd/`` and ``Tensor.backward`` backward, ``optim/`` optimizer,
  ``serialization.py`` checkpoint, anything else forward -- except that a "forward"
  frame gives way to an enclosing data, backward, checkpoint or optimizer frame (torch's
  own helpers running inside those);
* *outside* it (who called the user's code), data, backward and checkpoint frames still
  count (a Dataset's ``__getitem__``, a backward hook, a ``__reduce__``), and so do an
  ``nn.Module`` call and an optimizer step, unless a third-party framework called the user
  (Lightning runs ``training_step`` inside ``optimizer.step(closure)``: that is not
  optimizer time); launchers and decorators (``torch.distributed.elastic``, ``no_grad``)
  never count;
* nothing found: ``"loop"``, the user's own per-step work (logging, ``.item()``, tqdm).

The sampler needs the GIL, so a sample is taken when the training thread lets go of it:
at once while it blocks (a sleep, I/O, ``.item()`` waiting for the GPU, most torch
kernels), else at the next forced switch (``sys.getswitchinterval()``, 5 ms) or the next
blocking call, whichever comes first. Python work shorter than that just before a
blocking call is therefore counted on the blocking line; each sample keeps how late it
was (``late_s``) so that an analysis can say how many were.

Cost (``benchmarks/monitor_overhead.py``): ~10 us of the sampler's own work a sample on a
35-frame stack, but taking the GIL from a running training thread costs it two thread
wake-ups; on a busy 2-CPU VM that measured 100-150 us a sample, hence the default of 50
samples a second (``DEFAULT_INTERVAL_S``): under 1% of the loop's time.
"""

from __future__ import annotations

import gc
import os
import sys
import sysconfig
import threading
import time
from typing import TYPE_CHECKING, Literal, Self

from trainperf.errors import UsageError
from trainperf.monitoring.anatomy_record import (
    ANATOMY,
    PHASES,
    AnatomyRecord,
    GcPause,
    Phase,
    StackSample,
    read_anatomy,
    write_anatomy,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import CodeType, FrameType, TracebackType

__all__ = [
    "ANATOMY",
    "DEFAULT_INTERVAL_S",
    "MAX_STACK_SAMPLES",
    "PHASES",
    "AnatomyCapture",
    "AnatomyRecord",
    "GcPause",
    "GcWatch",
    "Phase",
    "StackClassifier",
    "StackSample",
    "StackSampler",
    "read_anatomy",
    "write_anatomy",
]

DEFAULT_INTERVAL_S = 0.02
# One hour at the default rate. Past it every other sample is dropped and the rate halves,
# so memory stays bounded (~50 MB) and the whole run stays covered evenly.
MAX_STACK_SAMPLES = 360_000
MAX_GC_PAUSES = 360_000

# What a code object is: a phase of its own, or where it lives. "module" is torch.nn (the
# forward pass, which calls user code); "library" is site-packages (a framework that may
# call user code); "stdlib" (with frozen and <string> code) is transparent.
_Kind = Literal[
    "data", "backward", "optimizer", "checkpoint", "forward", "module", "monitor",
    "user", "library", "stdlib",
]  # fmt: skip
# Paths inside torch, first match wins. Grad-mode, profiler and Function.apply wrappers
# run in the forward pass too, so they are not "backward" for living under autograd/.
_TORCH_RULES: tuple[tuple[str, _Kind], ...] = (
    ("utils/data/", "data"),
    ("serialization.py", "checkpoint"),
    ("optim/", "optimizer"),
    ("autograd/function.py", "forward"),
    ("autograd/grad_mode.py", "forward"),
    ("autograd/profiler", "forward"),
    ("autograd/forward_ad.py", "forward"),
    ("autograd/anomaly_mode.py", "forward"),
    ("autograd/", "backward"),
    ("nn/", "module"),
)


class StackClassifier:
    """Names a stack's phase and user line; remembers each source file's kind.

    ``torch_dir``, ``trainperf_dir`` and ``stdlib_dirs`` are directory paths;
    :meth:`for_this_process` finds them (without importing torch).
    """

    def __init__(
        self, *, torch_dir: str | None, trainperf_dir: str, stdlib_dirs: tuple[str, ...]
    ) -> None:
        self._torch = None if torch_dir is None else _as_dir(torch_dir)
        self._trainperf = _as_dir(trainperf_dir)
        self._stdlib = tuple(_as_dir(d) for d in stdlib_dirs)
        # By file name, not code object: a str caches its hash, a code object hashes its
        # constants on every lookup (~1 us). Only torch/_tensor.py needs the function too.
        self._kinds: dict[str, _Kind] = {}
        self._tensor_files: set[str] = set()

    @classmethod
    def for_this_process(cls) -> StackClassifier:
        import importlib.util
        from pathlib import Path

        import trainperf

        torch = sys.modules.get("torch")
        torch_file = getattr(torch, "__file__", None)
        if torch_file is None:
            spec = importlib.util.find_spec("torch")
            torch_file = None if spec is None else spec.origin
        paths = sysconfig.get_paths()
        return cls(
            torch_dir=None if torch_file is None else str(Path(torch_file).parent),
            trainperf_dir=str(Path(trainperf.__file__).parent),
            stdlib_dirs=tuple(dict.fromkeys((paths["stdlib"], paths["platstdlib"]))),
        )

    def kind(self, code: CodeType) -> _Kind:
        """What ``code`` is: a phase's code, the user's, a library's or the stdlib's."""
        file = code.co_filename
        found = self._kinds.get(file)
        if found is not None:
            return found
        if file in self._tensor_files:  # the one file where the function matters
            return "backward" if code.co_name == "backward" else "forward"
        learnt = self._kind_of(file)
        if learnt == "tensor":
            self._tensor_files.add(file)
            return self.kind(code)
        self._kinds[file] = learnt
        return learnt

    def _kind_of(self, filename: str) -> _Kind | Literal["tensor"]:
        if filename.startswith("<"):  # typed in, else generated (<string>, <frozen ...>)
            return "user" if filename.startswith(("<stdin>", "<ipython-input")) else "stdlib"
        path = os.path.realpath(filename)
        if path.startswith(self._trainperf):
            # trainperf's example trainings are what is being diagnosed, not the monitor.
            return "user" if path.startswith(self._trainperf + "examples" + os.sep) else "monitor"
        if self._torch is not None and path.startswith(self._torch):
            inside = path[len(self._torch) :].replace(os.sep, "/")
            if inside == "_tensor.py":
                return "tensor"
            return next(
                (kind for prefix, kind in _TORCH_RULES if inside.startswith(prefix)), "forward"
            )
        if f"{os.sep}site-packages{os.sep}" in path or f"{os.sep}dist-packages{os.sep}" in path:
            return "library"
        return "stdlib" if path.startswith(self._stdlib) else "user"

    def classify(self, frame: FrameType) -> tuple[Phase, str | None, int | None, str | None]:
        """The phase of the stack ending at ``frame``, and its innermost user frame's
        (file, line, function) -- ``None`` for each without one."""
        kinds = self._kinds
        phase: Phase | None = None
        f: FrameType | None = frame
        while f is not None:  # inside the user's line: what it is calling
            kind = kinds.get(f.f_code.co_filename) or self.kind(f.f_code)
            if kind == "user":
                break
            if kind == "monitor":
                if phase is None:
                    phase = "monitor"
            elif kind == "forward" or kind == "module":
                if phase is None:
                    phase = "forward"
            elif kind != "library" and kind != "stdlib" and (phase is None or phase == "forward"):
                phase = kind
            f = f.f_back
        if f is None:
            return phase or "loop", None, None, None
        user = f
        framework = False  # a site-packages frame called the user's code
        f = f.f_back
        # Outside it (who called the user's code) only "forward" or no phase can change.
        while f is not None and (phase is None or phase == "forward"):
            kind = kinds.get(f.f_code.co_filename) or self.kind(f.f_code)
            if kind == "data" or kind == "backward" or kind == "checkpoint":
                phase = kind
            elif phase is None and not framework:
                if kind == "library":
                    framework = True
                elif kind == "module":
                    phase = "forward"
                elif kind == "optimizer":
                    phase = "optimizer"
            f = f.f_back
        code = user.f_code
        return phase or "loop", code.co_filename, user.f_lineno, code.co_name


class _Running:
    """``start()`` and ``stop()``, also as a context manager."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


JOIN_TIMEOUT_S = 5.0  # the longest a stopping program waits for its stack sampler


class StackSampler(_Running):
    """Samples one thread's stack every ``interval_s`` seconds from a daemon thread.

    ``thread_id`` is ``threading.get_ident()`` of the training thread; ``clock`` returns
    seconds and ``origin`` is subtracted from it (the base of ``Period.start_s``).
    """

    def __init__(
        self,
        *,
        thread_id: int,
        clock: Callable[[], float],
        origin: float,
        interval_s: float = DEFAULT_INTERVAL_S,
        max_samples: int = MAX_STACK_SAMPLES,
        classifier: StackClassifier | None = None,
    ) -> None:
        if interval_s <= 0:
            raise UsageError(f"the stack sampling interval must be > 0 s, got {interval_s}")
        if max_samples < 2:
            raise UsageError(f"max_samples must be >= 2, got {max_samples}")
        self.thread_id = thread_id
        self.clock = clock
        self.origin = origin
        self.interval_s = interval_s
        self.max_samples = max_samples
        self.classifier = classifier
        self.samples: list[StackSample] = []
        self.stride = 1
        self.error: Exception | None = None  # what stopped the sampling, if anything did
        self._tries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trainperf-anatomy", daemon=True)

    def start(self) -> None:
        if self.classifier is None:
            self.classifier = StackClassifier.for_this_process()
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and join the thread, for at most ``JOIN_TIMEOUT_S``: a program
        ending on an exception may hold what a sample waits for, and its exit must not
        wait on a profiler (the daemon thread ends with the process)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=JOIN_TIMEOUT_S)
            if self._thread.is_alive() and self.error is None:
                self.error = TimeoutError(
                    f"the stack sampler did not stop within {JOIN_TIMEOUT_S:g} s"
                )

    def _run(self) -> None:
        # Scheduled on perf_counter, not the injected clock: this is real waiting.
        due = time.perf_counter() + self.interval_s
        try:
            while not self._stop.wait(max(0.0, due - time.perf_counter())):
                now = time.perf_counter()
                self.sample(late_s=now - due)
                due += self.interval_s
                if due <= now:  # the GIL was held past a whole interval: skip, no burst
                    due = now + self.interval_s
        except Exception as exc:  # a sampler bug must never reach the training loop
            self.error = exc

    def sample(self, *, late_s: float = 0.0) -> None:
        """Take one sample now (what the thread does every interval), ``late_s`` seconds
        after it was due."""
        frame = sys._current_frames().get(self.thread_id)
        now = self.clock()
        if frame is None:
            return  # the thread has ended
        tries, self._tries = self._tries, self._tries + 1
        if tries % self.stride:
            return
        if len(self.samples) >= self.max_samples:
            del self.samples[1::2]
            self.stride *= 2
            if tries % self.stride:
                return
        if self.classifier is None:
            self.classifier = StackClassifier.for_this_process()
        phase, file, line, function = self.classifier.classify(frame)
        self.samples.append(StackSample(now - self.origin, phase, file, line, function, late_s))


class GcWatch(_Running):
    """Records every garbage collection's pause through ``gc.callbacks``; ``stop`` leaves
    ``gc.callbacks`` as it found it."""

    def __init__(
        self, *, clock: Callable[[], float], origin: float, max_pauses: int = MAX_GC_PAUSES
    ) -> None:
        self.clock = clock
        self.origin = origin
        self.max_pauses = max_pauses
        self.pauses: list[GcPause] = []
        self.dropped = 0
        self._began: float | None = None
        self._callback = self._on_gc  # one bound method, so that remove() finds it

    def start(self) -> None:
        gc.callbacks.append(self._callback)

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _on_gc(self, phase: str, info: Mapping[str, int]) -> None:
        now = self.clock()
        if phase == "start":
            self._began = now
        elif self._began is not None:
            if len(self.pauses) < self.max_pauses:
                pause = GcPause(self._began - self.origin, now - self._began, info["generation"])
                self.pauses.append(pause)
            else:
                self.dropped += 1
            self._began = None


class AnatomyCapture(_Running):
    """A :class:`StackSampler` and a :class:`GcWatch` together (arguments as theirs).

    Example::

        capture = AnatomyCapture(thread_id=threading.get_ident(), clock=clock, origin=origin)
        with capture:
            train()
        write_anatomy(run_folder, capture.record())
    """

    def __init__(
        self,
        *,
        thread_id: int,
        clock: Callable[[], float],
        origin: float,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.stacks = StackSampler(
            thread_id=thread_id, clock=clock, origin=origin, interval_s=interval_s
        )
        self.gc = GcWatch(clock=clock, origin=origin)

    def start(self) -> None:
        self.gc.start()
        self.stacks.start()

    def stop(self) -> None:
        self.stacks.stop()
        self.gc.stop()

    def record(self) -> AnatomyRecord:
        return AnatomyRecord(
            interval_s=self.stacks.interval_s,
            samples=tuple(self.stacks.samples),
            gc_pauses=tuple(self.gc.pauses),
            stride=self.stacks.stride,
            gc_dropped=self.gc.dropped,
        )


def _as_dir(path: str) -> str:
    return os.path.join(os.path.realpath(path), "")  # noqa: PTH118  # str prefixes, per frame
