"""Loaded by ``trainperf startup`` and ``trainperf run`` into the command (via PYTHONPATH).

For ``startup`` (``TRAINPERF_MARKERS`` set) it marks three moments without touching
the user's code: ``interpreter_ready`` (now), ``first_step`` (the first optimizer
step, through torch's global optimizer hook), and ``exit_start`` (when the
interpreter begins to shut down). For ``run`` (``TRAINPERF_RUN_DIR`` set) it
monitors the process like ``trainperf.monitor()`` would, and adds the
``PerfMonitor`` callback to every Lightning Trainer and the ``PerfCallback`` to every
Hugging Face Trainer the program builds. Both wait for the program to import
``torch.optim`` (and the trainers' modules); nothing imports torch early. A launcher
(``accelerate launch``, ``torchrun``) is never recorded: its ranks record themselves. Then it
runs the environment's own sitecustomize, if there is one, which this file would
otherwise hide.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # no typing import in someone else's process
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    from trainperf.exporters.spec import ExportSpec

_HERE = os.path.dirname(os.path.abspath(__file__))  # noqa: PTH100, PTH120 - no pathlib here


EXIT_DONE = "exit_done"  # trainperf's own work at the process's exit is done


def _mark(name: str) -> None:
    from trainperf.markers import mark

    mark(name)


class _Watch:
    """Calls ``then(module)`` right after the program imports ``name`` (never imports it)."""

    def __init__(self, name: str, then: Callable[[ModuleType], None]) -> None:
        self.name = name
        self.then = then

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != self.name:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # once: a re-import must not install hooks again
        for finder in sys.meta_path:
            if isinstance(finder, _Watch) or not hasattr(finder, "find_spec"):
                continue
            spec: ModuleSpec | None = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                original = spec.loader.exec_module

                def exec_module(
                    module: ModuleType, original: object = original, then: object = self.then
                ) -> None:
                    original(module)  # type: ignore[operator]  # the loader's own method
                    then(module)  # type: ignore[operator]  # the watcher's callback

                spec.loader.exec_module = exec_module  # type: ignore[method-assign]
                return spec
        return None


def _on_trainer(
    *,
    before: Callable[[dict[str, object]], None] | None = None,
    after: Callable[[object], None] | None = None,
) -> Callable[[ModuleType], None]:
    """What to do once a trainer's module is imported: every ``Trainer`` it defines gets
    trainperf's callback, which joins the injected run -- added to the constructor's
    ``kwargs`` (``before``) or to the built trainer (``after``)."""

    def on_import(module: ModuleType) -> None:
        if _RUN is None or os.getpid() != _OWNER:
            return
        trainer = getattr(module, "Trainer", None)
        if trainer is None:
            return
        original = trainer.__init__

        def __init__(self: object, *args: object, **kwargs: object) -> None:
            if before is not None:
                _guarded(lambda: before(kwargs), disarm=False)
            original(self, *args, **kwargs)
            if after is not None:
                _guarded(lambda: after(self), disarm=False)

        trainer.__init__ = __init__

    return on_import


def _add_callback(kwargs: dict[str, object]) -> None:
    from trainperf.lightning import PerfMonitor

    given = kwargs.get("callbacks")
    callbacks = [] if given is None else list(given) if isinstance(given, list | tuple) else [given]
    if not any(isinstance(c, PerfMonitor) for c in callbacks):
        kwargs["callbacks"] = [*callbacks, PerfMonitor()]


def _add_trainer_callback(trainer: object) -> None:
    from trainperf.integrations.transformers import PerfCallback

    handler = getattr(trainer, "callback_handler", None)
    if not any(isinstance(c, PerfCallback) for c in getattr(handler, "callbacks", ())):
        trainer.add_callback(PerfCallback())  # type: ignore[attr-defined]  # a Trainer


def _on_torch_optim(module: ModuleType) -> None:
    if os.environ.get("TRAINPERF_MARKERS"):
        from torch.optim.optimizer import register_optimizer_step_post_hook

        marked: list[bool] = []

        def first_step(*_: object) -> None:
            # Stays registered: removing a hook while torch iterates over the hooks
            # breaks that iteration when another hook (the monitor's) follows.
            if not marked:
                marked.append(True)
                _mark("first_step")

        register_optimizer_step_post_hook(first_step)
    if _RUN is not None and os.getpid() == _OWNER:
        if _launcher():
            _disarm_in_child()  # its ranks record themselves; a launcher never trains
            return
        _guarded(_RUN.__enter__)


# Launchers import torch (and so torch.optim) but only start the processes that train.
_LAUNCHER_MODULES = (
    "accelerate.commands.launch",
    "torch.distributed.run",
    "torch.distributed.launch",
)
_LAUNCHER_SCRIPTS = ("torchrun", "accelerate", "deepspeed")


def _launcher() -> bool:
    """This process is a launcher (``accelerate launch``, ``torchrun``, ``deepspeed``).

    ``python -m X`` is read from ``sys.orig_argv``: runpy imports X's parent packages
    (which may import torch.optim) before it sets ``sys.argv[0]``."""
    original = list(getattr(sys, "orig_argv", ()))
    if "-m" in original[:-1]:
        module = original[original.index("-m") + 1]
        if module in _LAUNCHER_MODULES or module.startswith("accelerate.commands"):
            return True
    script = sys.argv[0] if sys.argv else ""
    return os.path.basename(script) in _LAUNCHER_SCRIPTS  # noqa: PTH119 - no pathlib here


def _guarded(action: Callable[[], object], *, disarm: bool = True) -> None:
    """trainperf must never break the program it watches: a failure is one warning
    (and, with ``disarm``, the end of monitoring in this process)."""
    try:
        action()
    except Exception as exc:
        what = "not monitoring this run" if disarm else "monitoring without the trainer's callback"
        sys.stderr.write(f"trainperf: {what}: {exc}\n")
        if disarm:
            global _RUN
            _RUN = None


def _export_specs() -> tuple[ExportSpec, ...]:
    """``trainperf run --export``'s specs; a bad one costs the exports, not the run."""
    try:
        from trainperf.settings import export_specs

        return export_specs()
    except Exception as exc:
        sys.stderr.write(f"trainperf: not exporting: {exc}\n")
        return ()


def _disarm_in_child() -> None:
    # A forked child (a DataLoader worker) inherits the run; only its owner records.
    global _RUN
    _RUN = None


# Processes started by multiprocessing (spawned DataLoader workers, helpers) inherit
# the environment but are not the program being measured.
_CHILD = "--multiprocessing-fork" in sys.argv
_RUN = None
_OWNER = os.getpid()
if os.environ.get("TRAINPERF_RUN_DIR") and not _CHILD:
    from trainperf.monitoring.session import Run

    _RUN = Run.injected(os.environ["TRAINPERF_RUN_DIR"], export=_export_specs())
    os.register_at_fork(after_in_child=_disarm_in_child)
    if os.environ.get("TRAINPERF_DOCTOR"):
        from trainperf.doctor.child import arm

        arm(_RUN)
    if os.environ.get("TRAINPERF_STOP_STEPS"):  # a bounded segment of `trainperf ab`
        from trainperf.monitoring.bounded import arm as arm_bounded

        arm_bounded(_RUN)


def _chain_site_customization() -> None:
    """Run the sitecustomize this one shadows, as Python would have."""
    import importlib.machinery
    import importlib.util

    rest = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]  # noqa: PTH100
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


def _shutting_down() -> None:
    if os.environ.get("TRAINPERF_MARKERS"):
        _mark("exit_start")
    run = _RUN
    if run is not None and run.entered and os.getpid() == _OWNER:
        # The record first (the step in hand is written too), then the proofs of a plain
        # loop that ended before its limit: they are decided on the whole record.
        _guarded(lambda: run.__exit__(None, None, None))
        if os.environ.get("TRAINPERF_DOCTOR"):
            from trainperf.doctor.child import prove

            _guarded(lambda: prove(run, at_exit=True))
    if os.environ.get("TRAINPERF_MARKERS"):
        # Ours is done: what the process does from here is the interpreter's own shutdown
        # (atexit handlers, multiprocessing's finalizers), which the doctor bounds.
        _mark(EXIT_DONE)


def _at_shutdown() -> None:
    # threading's hook runs first in interpreter shutdown, before non-daemon threads
    # are joined and before every atexit handler; atexit's, registered this early,
    # would run last.
    import threading

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(_shutting_down)
    else:
        import atexit

        atexit.register(_shutting_down)


if os.environ.get("TRAINPERF_MARKERS"):
    _mark("interpreter_ready")
sys.meta_path.insert(0, _Watch("torch.optim", _on_torch_optim))
if _RUN is not None:
    _lightning = _on_trainer(before=_add_callback)
    sys.meta_path.insert(0, _Watch("lightning.pytorch.trainer.trainer", _lightning))
    sys.meta_path.insert(
        0, _Watch("transformers.trainer", _on_trainer(after=_add_trainer_callback))
    )
_at_shutdown()
_chain_site_customization()
