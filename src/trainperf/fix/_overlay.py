"""Run inside a fresh interpreter by ``trainperf fix``: a target with some of its
files served from other text, as if those files had been rewritten on disk.

Executed by path (``python _overlay.py SOURCES MODE KIND TARGET [ARGS...]``) so that
nothing of trainperf is imported before the target. ``SOURCES`` is a JSON file
mapping absolute paths to source text; each is compiled from that text, never from
cached bytecode (both sides of a comparison pay the same compile). ``MODE``:
``import`` loads the target without running its main block; ``run`` runs it as
``python script.py ARGS`` or ``python -m module ARGS`` would.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import runpy
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import CodeType, ModuleType


class _Loader(importlib.machinery.SourceFileLoader):
    def __init__(self, fullname: str, path: str, source: str) -> None:
        super().__init__(fullname, path)
        self.source = source

    def get_code(self, fullname: str) -> CodeType:
        return compile(self.source, self.path, "exec", dont_inherit=True)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, sources: dict[str, str]) -> None:
        self.sources = sources

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None:
            return None
        origin = os.path.realpath(spec.origin)
        if origin not in self.sources:
            return None
        spec.loader = _Loader(fullname, spec.origin, self.sources[origin])
        return spec


def main(argv: list[str]) -> None:
    sources_file, mode, kind, target, *args = argv
    with open(sources_file, encoding="utf-8") as handle:  # noqa: PTH123  # pathlib not loaded yet
        sources = {os.path.realpath(k): v for k, v in json.load(handle).items()}
    sys.dont_write_bytecode = True
    sys.meta_path.insert(0, _Finder(sources))
    if kind == "module":
        sys.argv = [target, *args]
        sys.path.insert(0, os.getcwd())  # noqa: PTH109  # as `python -m` sets it
        if mode == "import":
            importlib.import_module(target)
        else:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        return
    path = os.path.realpath(target)
    sys.argv = [target, *args]
    sys.path.insert(0, os.path.dirname(path))  # noqa: PTH120  # as `python script.py` sets it
    source = sources.get(path)
    if source is None:
        with open(path, encoding="utf-8") as handle:  # noqa: PTH123
            source = handle.read()
    name = "__main__" if mode == "run" else "__trainperf_fix__"
    module = type(sys)(name)
    module.__file__ = target
    if mode == "run":
        sys.modules["__main__"] = module
    # exec is the point: the script's own code, as `python script.py` would run it.
    exec(compile(source, target, "exec", dont_inherit=True), module.__dict__)  # noqa: S102


if __name__ == "__main__":
    main(sys.argv[1:])
