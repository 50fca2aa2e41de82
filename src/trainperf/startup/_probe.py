"""Run inside a fresh interpreter by ``trainperf imports``: load a target, report.

This file is executed by path (``python -X importtime _probe.py ARGS``) so that
nothing of trainperf is imported before the target: until the target is loaded only
modules the interpreter has already loaded are used (no json, no pathlib: a target
importing them must pay for them). Between the two marker lines it writes to
stderr, the ``-X importtime`` log belongs to the target.

Modes:

* timing: load the target and time it; nothing else runs.
* trace: also replace ``builtins.__import__`` to record every import statement that
  executes -- including those of already-loaded modules, which ``-X importtime``
  does not show -- as edges (importer -> imported), and, for statements in the
  user's files, the modules each statement loaded first.

A non-empty defer list (``--verify``) compiles the user's files from a rewritten
syntax tree in which those statements bind proxies that import on first use.
"""

from __future__ import annotations

import builtins
import os
import sys

TYPE_CHECKING = False  # typing is not imported here: see the module docstring
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import CodeType, FrameType, ModuleType

BEGIN = b"trainperf-probe: begin\n"
END = b"trainperf-probe: end\n"
LIST = "\x1f"  # separates list items in one argument
PAIR = "\x1e"  # separates a deferred statement's file from its line


class Spec:
    """The probe's arguments, from plain argv strings."""

    def __init__(self, argv: list[str]) -> None:
        out, kind, target, path0, trace, roots, excluded, defer, args = argv
        self.out = out
        self.kind = kind
        self.target = target
        self.path0 = path0
        self.trace = trace == "1"
        self.roots = tuple(r for r in roots.split(LIST) if r)
        self.excluded = tuple(e for e in excluded.split(LIST) if e)
        self.defer = [
            (item.split(PAIR)[0], int(item.split(PAIR)[1])) for item in defer.split(LIST) if item
        ]
        self.argv = [a for a in args.split(LIST) if a]


def _machinery(module_name: object) -> bool:
    return isinstance(module_name, str) and (
        module_name == "importlib" or module_name.startswith(("importlib.", "_frozen_importlib"))
    )


class Tracer:
    def __init__(self, roots: tuple[str, ...], excluded: tuple[str, ...]) -> None:
        self.roots = roots
        self.excluded = excluded
        self.edges: dict[tuple[str, str], None] = {}  # an ordered set
        self.first: dict[str, list[str]] = {}
        self.original = builtins.__import__
        self._user_files: dict[str, bool] = {}

    def _user(self, filename: str) -> bool:
        known = self._user_files.get(filename)
        if known is None:
            known = filename.startswith(self.roots) and not any(
                part in filename for part in self.excluded
            )
            self._user_files[filename] = known
        return known

    def _caller(self) -> FrameType:
        frame = sys._getframe(2)
        # An import made by importlib's machinery on someone's behalf (import_module,
        # from-list handling) belongs to whoever called the machinery.
        while frame.f_back is not None and _machinery(frame.f_globals.get("__name__")):
            frame = frame.f_back
        return frame

    def __call__(
        self,
        name: str,
        globals: Mapping[str, object] | None = None,
        locals: Mapping[str, object] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> ModuleType:
        frame = self._caller()
        filename = frame.f_code.co_filename
        user = self._user(filename)
        source: object = f"{filename}:{frame.f_lineno}" if user else frame.f_globals.get("__name__")
        if filename == __file__:
            source = None  # the probe itself: the analysis adds the root
        before = set(sys.modules) if user else None
        module = self.original(name, globals, locals, fromlist or (), level)
        full = name
        if level:
            package = str((globals or {}).get("__package__") or "")
            base = package.rsplit(".", level - 1)[0] if level > 1 else package
            full = f"{base}.{name}" if name else base
        if isinstance(source, str):
            parts = full.split(".")
            for i in range(1, len(parts) + 1):
                self.edges[(source, ".".join(parts[:i]))] = None
            for item in fromlist or ():
                if item != "*" and f"{full}.{item}" in sys.modules:
                    self.edges[(source, f"{full}.{item}")] = None
            if before is not None:
                new = [m for m in sys.modules if m not in before]
                if new:
                    self.first.setdefault(source, []).extend(new)
        return module


def _compile(source: bytes, filename: str, spec: Spec) -> CodeType:
    lines = {line for file, line in spec.defer if file == filename}
    if not lines:
        return compile(source, filename, "exec")
    from trainperf.startup._defer import rewrite  # only in --verify runs

    return compile(rewrite(source, filename, lines), filename, "exec")


def _load(spec: Spec) -> None:
    # exec is the point here: the target's own code, as `python script.py` would run it
    # but with a __name__ other than "__main__", so that its main() is not called.
    if spec.kind == "module":
        __import__(spec.target)
    elif spec.kind == "path":
        with open(spec.target, "rb") as handle:  # noqa: PTH123 - pathlib stays unloaded
            source = handle.read()
        namespace = {"__name__": "__trainperf_probe__", "__file__": spec.target}
        exec(_compile(source, spec.target, spec), namespace)  # noqa: S102
    else:
        code = _compile(spec.target.encode(), "<string>", spec)
        exec(code, {"__name__": "__main__"})  # noqa: S102


def main() -> None:
    spec = Spec(sys.argv[1:])
    sys.argv[:] = spec.argv or [spec.target]
    sys.path[0] = spec.path0
    tracer = None
    if spec.trace:
        tracer = Tracer(spec.roots, spec.excluded)
        builtins.__import__ = tracer
    if spec.defer:
        from trainperf.startup._defer import install

        install(spec.defer)
    from time import perf_counter  # a built-in module: nothing to load

    os.write(2, BEGIN)
    start = perf_counter()
    error = None
    try:
        _load(spec)
    except BaseException as exc:  # report what the target raised, whatever it was
        error = f"{type(exc).__name__}: {exc}"
    elapsed = perf_counter() - start
    os.write(2, END)
    if tracer is not None:
        builtins.__import__ = tracer.original
    import json

    result = {
        "elapsed_s": elapsed,
        "error": error,
        "modules": {
            name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())
        },
        "edges": [list(edge) for edge in tracer.edges] if tracer else [],
        "first": tracer.first if tracer else {},
    }
    with open(spec.out, "w", encoding="utf-8") as handle:  # noqa: PTH123
        json.dump(result, handle)


if __name__ == "__main__":
    main()
