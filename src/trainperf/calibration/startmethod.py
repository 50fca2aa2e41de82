"""Start methods: which ones this platform has, which is the default, and why one fails.

Under ``spawn`` and ``forkserver`` every worker receives the dataset, the
``collate_fn`` and the ``worker_init_fn`` pickled; ``fork`` pickles nothing. A
dataset holding an open file, a lock, a database connection or a lambda starts
under ``fork`` and fails under the other two, in ``iter(loader)`` with an error
that does not say which attribute is to blame. :func:`why_it_failed` finds it:
each pickled part, then its attributes (and theirs, a few levels down), pickled
one by one into a sink that keeps nothing, until the one that fails.

A worker that dies before its first batch under ``spawn`` or ``forkserver`` is
usually the main module run again in it (a script that starts work outside ``if
__name__ == "__main__":``) or a class it cannot import there (one defined in an
interactive session): the reason says so, where torch only says the worker exited.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

from trainperf.calibration.config import START_METHODS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from trainperf.calibration.config import LoaderConfig, StartMethod

__all__ = [
    "available_start_methods",
    "default_start_method",
    "main_module_work",
    "pickling_s",
    "unpicklable",
    "why_it_failed",
]

_DEPTH = 3  # attribute levels searched for the part that does not pickle
_WIDTH = 64  # items of a container looked at, per level


def available_start_methods() -> tuple[StartMethod, ...]:
    """The start methods this platform has, in :data:`START_METHODS` order, except
    ``fork`` on macOS: its system libraries are not safe to fork (why Python's default
    there is ``spawn``), so fork is never advised there, however fast it measures."""
    import multiprocessing
    import sys

    have = set(multiprocessing.get_all_start_methods())
    if sys.platform == "darwin":
        have.discard("fork")
    return tuple(m for m in START_METHODS if m in have)


def default_start_method() -> StartMethod:
    """The method a DataLoader without ``multiprocessing_context`` uses here: the one set
    with ``multiprocessing.set_start_method``, else the platform's default (``fork`` on
    Linux before Python 3.14, ``forkserver`` from 3.14, ``spawn`` on macOS and Windows).
    Reading it does not fix it, as ``multiprocessing.get_start_method()`` would."""
    import multiprocessing

    found: str | None = multiprocessing.get_start_method(allow_none=True)  # None: not set
    if found is None:
        found = multiprocessing.get_all_start_methods()[0]  # documented: the default first
    known: dict[str, StartMethod] = {method: method for method in START_METHODS}
    return known.get(str(found), "spawn")  # an unknown name: the strictest assumption


def main_module_work() -> str | None:
    """What a ``spawn`` or ``forkserver`` worker would run again on importing this
    process's main module, as ``"a loop at train.py line 12"``; ``None`` when the main
    module's top level only defines (imports, functions, classes, assignments) and keeps
    its work under ``if __name__ == "__main__":``, or when no main module is imported in
    a worker (``python -c``, an interactive session, ``python -m pkg`` of a package's
    ``__main__``).

    Such a worker runs the main module's top level again, as ``__mp_main__`` (a spawn
    worker each, the forkserver once, Python's ``multiprocessing.spawn``): a script that
    trains outside the guard trains again in it, for as long as the training lasts
    (Python's programming guidelines for multiprocessing, "Safe importing of main
    module"). Judged from the source, statically (``ast``): a top-level loop is work;
    so are a ``with`` block and a bare call statement where the script has no guard at
    all (``main()``, ``trainer.fit()``), while beside a guard they are taken as set-up
    (``seed(0)``, ``logging.basicConfig()``). Reading the start method here would
    fix it, so ``multiprocessing``'s own preparation is not called."""
    import ast
    import importlib.util
    import sys
    from pathlib import Path

    main = sys.modules.get("__main__")
    if main is None:
        return None
    name = getattr(getattr(main, "__spec__", None), "name", None)
    path: str | None
    if isinstance(name, str):
        if name == "__main__" or name.endswith(".__main__"):
            return None  # multiprocessing leaves such a main module alone
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        path = None if spec is None else spec.origin
    else:
        path = getattr(main, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(path).read_bytes(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return None
    guarded = any(_is_main_guard(node) for node in tree.body)
    for node in tree.body:
        what = _work(node, guarded=guarded)
        if what is not None:
            return f"{what} at {Path(path).name} line {node.lineno}"
    return None


def _is_main_guard(node: object) -> bool:
    import ast

    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    sides = [node.test.left, *node.test.comparators]
    return any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides) and any(
        isinstance(s, ast.Constant) and s.value == "__main__" for s in sides
    )


def _work(node: object, *, guarded: bool) -> str | None:
    """What a top-level statement runs, when it is work rather than a definition."""
    import ast

    if isinstance(node, ast.For | ast.AsyncFor | ast.While):
        return "a loop"
    if guarded:
        return None  # beside a guard, a with block or a call is taken as set-up
    if isinstance(node, ast.With | ast.AsyncWith):
        return "a with block"
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call | ast.Await):
        return "a call"
    return None


class _Sink:
    """A file that keeps nothing: pickling into it costs no memory."""

    def write(self, data: bytes) -> int:
        return len(data)


def _fails(value: object) -> BaseException | None:
    try:
        pickle.Pickler(_Sink(), protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    except Exception as exc:  # what fails is the finding
        return exc
    return None


def _parts(value: object) -> Iterator[tuple[str, object]]:
    """``(path suffix, value)`` for what pickling ``value`` pickles in turn."""
    if isinstance(value, dict):
        for i, (key, item) in enumerate(value.items()):
            if i >= _WIDTH:
                return
            yield f"[{key!r}]", item
        return
    if isinstance(value, list | tuple | set | frozenset):
        for i, item in enumerate(value):
            if i >= _WIDTH:
                return
            yield f"[{i}]", item
        return
    state = getattr(value, "__dict__", None)
    if isinstance(state, dict):
        for name, item in state.items():
            yield f".{name}", item
    for name in getattr(type(value), "__slots__", ()):
        if isinstance(name, str) and hasattr(value, name):
            yield f".{name}", getattr(value, name)


class _TensorsAside(pickle.Pickler):
    """Pickles as a worker start does, except torch tensors, which a worker start sends
    through shared memory (their bytes are not pickled): each becomes ``None`` here."""

    def reducer_override(self, obj: object) -> object:  # type: ignore[override]  # NotImplemented too
        kind = type(obj)
        if kind.__module__.startswith("torch") and (
            hasattr(obj, "untyped_storage") or kind.__name__.endswith("Storage")
        ):
            return (type(None), ())
        return NotImplemented


def pickling_s(parts: tuple[object, ...], clock: Callable[[], float] | None = None) -> float | None:
    """Seconds to pickle ``parts`` once (what a ``spawn`` or ``forkserver`` worker is sent:
    the dataset, ``collate_fn``, ``worker_init_fn``), tensors aside; ``None`` when they
    do not pickle. This process pickles them again for every worker it starts, one after
    the other, so ``workers x pickling_s`` is a floor under such a start."""
    import time

    clock = clock or time.perf_counter
    began = clock()
    try:
        _TensorsAside(_Sink(), protocol=pickle.HIGHEST_PROTOCOL).dump(parts)
    except Exception:  # the trial says why, with the part that fails
        return None
    return clock() - began


def unpicklable(value: object, name: str) -> str | None:
    """Where pickling ``value`` fails, as ``"name.attr.attr (Error: message)"``, the
    deepest part that fails on its own; ``None`` when it pickles.

    >>> import threading
    >>> class Reader:
    ...     def __init__(self):
    ...         self.lock = threading.Lock()
    >>> unpicklable(Reader(), "dataset")
    "dataset.lock (TypeError: cannot pickle '_thread.lock' object)"
    """
    error = _fails(value)
    if error is None:
        return None
    path = name
    for _ in range(_DEPTH):
        for suffix, part in _parts(value):
            found = _fails(part)
            if found is not None:
                value, error, path = part, found, path + suffix
                break
        else:
            break
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{path} ({type(error).__name__}: {text})"[:300]


def why_it_failed(
    exc: BaseException,
    config: LoaderConfig,
    *,
    dataset: object,
    collate_fn: Callable[..., object] | None,
    started: bool,
) -> str | None:
    """A reason naming the cause when ``config``'s start method is why its trial failed
    (``started``: a batch had arrived); ``None`` when the start method is not to blame."""
    method = config.multiprocessing_context
    if config.num_workers == 0 or method is None or method == "fork":
        return None
    if not started and _is_pickling(exc):
        parts: list[tuple[str, object]] = [("dataset", dataset)]
        if collate_fn is not None:
            parts.append(("collate_fn", collate_fn))
        init = config.loader_kwargs().get("worker_init_fn")
        if init is not None:
            parts.append(("worker_init_fn", init))
        for name, value in parts:
            where = unpicklable(value, name)
            if where is not None:
                what = f"the dataset ({type(dataset).__name__})" if value is dataset else name
                return (
                    f"{method} workers receive {what} pickled and it does not pickle: "
                    f"{where}; {_advice(where)}, or use fork"
                )[:400]
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return (
            f"{method} workers could not be started, pickling what they receive failed "
            f"({type(exc).__name__}: {first})"
        )[:400]
    if not started and "DataLoader worker" in str(exc):
        return (
            f"a {method} worker exited before its first batch: it runs the main module "
            f'again (work outside `if __name__ == "__main__":` runs there too) and '
            f"imports the dataset's class by name (one defined in an interactive session "
            f"is not found); {str(exc).strip().splitlines()[0]}"
        )[:400]
    return None


def _advice(where: str) -> str:
    """What to do about the part ``unpicklable`` found, from what pickle said of it."""
    text = where.lower()
    if "local object" in text or "lambda" in text or "attribute lookup" in text:
        return "define it at module level, where a worker can import it by name"
    if "not the same object" in text:
        return "import its class from a module rather than defining it in the script run"
    return (
        "open such a handle lazily in the worker (in __getitem__ or a worker_init_fn) "
        "instead of in __init__"
    )


def _is_pickling(exc: BaseException) -> bool:
    if isinstance(exc, pickle.PicklingError):
        return True
    text = str(exc).lower()
    return isinstance(exc, TypeError | AttributeError) and "pickle" in text
