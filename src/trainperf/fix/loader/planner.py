"""Planning the edit (:func:`plan`): setting by setting, what to replace or add in the
loader call, or where a value read from a configuration is set (an ``argparse``
default, a constant, an attribute, a parameter, a YAML key), to rewrite or point at."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trainperf.fix.loader.calls import (
    _add_arguments,
    _argument,
    _assignments,
    _assigns,
    _binds_torch,
    _destination,
    _dotted,
    _flags,
    _is_threads,
    _literal,
    _positions,
    _walk,
)
from trainperf.fix.loader.rewrite import _rewrite
from trainperf.fix.loader.values import Change, LoaderFix, Pointer
from trainperf.fix.loader.yaml_keys import (
    _YAML_SCALAR,
    _from_yml,
    _suffix,
    _yaml_keys,
    _YamlEdit,
    _yml,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    import libcst as cst

    from trainperf.calibration.config import LoaderConfig
    from trainperf.fix.loader.calls import Located
    from trainperf.fix.loader.values import Calibrated, Kind, Scalar
    from trainperf.fix.loader.yaml_keys import _YamlKey


_SETTINGS = ("num_workers", "persistent_workers", "prefetch_factor", "pin_memory")
DEFAULT_PREFETCH = 2  # DataLoader's prefetch_factor when it has workers and none is given
# DataLoader's positional parameters among the settings (its signature's order).
_POSITIONAL = {"num_workers": 5, "pin_memory": 7, "multiprocessing_context": 11}
_NAMES: dict[Kind, dict[str, str]] = {
    "DataLoader": {s: s for s in (*_SETTINGS, "multiprocessing_context")},
    "TrainingArguments": {s: f"dataloader_{s}" for s in _SETTINGS},
}
# The value of a setting whose argument is missing.
_DEFAULTS: dict[Kind, dict[str, Scalar]] = {
    "DataLoader": {"num_workers": 0, "persistent_workers": False, "pin_memory": False},
    "TrainingArguments": {"num_workers": 0, "persistent_workers": False, "pin_memory": True},
}


@dataclass
class _Edits:
    """What the plan collects before anything is rewritten."""

    replace: dict[int, str] = field(default_factory=dict)  # id(expression) -> new code
    add: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # id(call) -> args
    before: cst.SimpleStatementLine | None = None  # inserted before the loader's statement
    comments: list[tuple[str, int]] = field(default_factory=list)  # (kind, ordinal)
    yaml: dict[Path, list[_YamlEdit]] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    pointers: list[Pointer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    original: dict[str, Scalar] = field(default_factory=dict)  # in effect before the fix
    written: dict[str, Scalar] = field(default_factory=dict)  # and after it


def plan(located: Located, calibrated: Calibrated) -> LoaderFix:
    """The edits that write ``calibrated`` into the located call and where its values
    are set; nothing is written. ``changed`` is False when the file already has them.

    Raises :class:`TrainperfError` if the rewritten file would not compile (a fault of
    the fix, not of the file: nothing is offered).
    """
    config = calibrated.config
    workers = config.num_workers
    edits = _Edits()
    planner = _Planner(located, calibrated, edits)
    workers_code = planner.setting("num_workers", workers)
    # Workers read from a configuration may be 0 there, where DataLoader raises on a
    # prefetch_factor or persistent workers: what needs workers is added guarded.
    guard = None if workers_code is None else f"{workers_code} > 0"
    prefetch = (config.prefetch_factor or DEFAULT_PREFETCH) if workers else None
    planner.setting(
        "persistent_workers",
        config.persistent_workers,
        add=workers > 0,
        guarded=guard if config.persistent_workers else None,
        follows=workers_code,
    )
    planner.setting(
        "prefetch_factor",
        prefetch,
        add=workers > 0 and prefetch != DEFAULT_PREFETCH,  # what a missing one is then
        guarded=None if guard is None else f"{prefetch} if {guard} else None",
    )
    planner.setting("pin_memory", config.pin_memory)
    planner.start_method(guard)
    planner.threads()
    planner.unwritten()
    site = located.site
    cpus = _cpus_torch_counts()
    if workers > cpus:
        edits.notes.append(
            f"num_workers={workers} is more than the {cpus} CPUs DataLoader counts here, so "
            "it will warn that it creates more workers than suggested: the calibration "
            "measured this many faster (workers that wait on storage or a network share "
            "CPUs well)"
        )
    if site.batch_size is not None and site.batch_size != config.batch_size:
        edits.notes.append(
            f"the call has batch_size={site.batch_size}, the calibration measured "
            f"batch_size={config.batch_size}: its choice may not carry over"
        )
    files = _rewrite(located, calibrated, edits)
    original, written = _configs(config, edits)
    return LoaderFix(
        target=located.path,
        kind=site.kind,
        line=site.start,
        calibrated=calibrated,
        changes=tuple(edits.changes) if files else (),
        pointers=tuple(edits.pointers),
        notes=tuple(edits.notes),
        edits=files,
        original=original,
        written=written,
    )


class _Planner:
    """Decides, setting by setting, what to replace, add or point at."""

    def __init__(self, located: Located, calibrated: Calibrated, edits: _Edits) -> None:
        self.path = located.path
        self.site = located.site
        self.module = located.module
        self.calibrated = calibrated
        self.ran = calibrated.ran_with
        self.edits = edits
        self.names = _NAMES[located.site.kind]
        self.positions = _positions(located.module)
        self.unpacked: list[str] = []  # settings not added beside a **mapping

    def line_of(self, node: cst.CSTNode) -> int:
        return self.positions[node].start.line

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    def comment(self, kind: str, ordinal: int) -> None:
        if (kind, ordinal) not in self.edits.comments:
            self.edits.comments.append((kind, ordinal))

    def replace(self, node: cst.BaseExpression, value: Scalar, argument: str) -> None:
        self.edits.replace[id(node)] = _py(value)
        self.edits.changes.append(
            Change(self.path, self.line_of(node), argument, self.code(node), _py(value))
        )

    def setting(
        self,
        setting: str,
        value: Scalar,
        *,
        add: bool = True,
        guarded: str | None = None,
        follows: str | None = None,
    ) -> str | None:
        """Write ``value`` for ``setting`` in the call. Returns the source of a value the
        call does not give literally (read from a configuration, or computed), else None.
        ``add``: add the argument when it is missing, as ``guarded`` when given (the
        workers come from a configuration). ``follows``: a computed value mentioning
        it is left alone without a note (``persistent_workers=cfg.num_workers > 0``)."""
        site, edits = self.site, self.edits
        name = self.names[setting]
        position = _POSITIONAL.get(setting) if site.kind == "DataLoader" else None
        arg = _argument(site.call, name, position)
        edits.written[setting] = value
        if arg is None:
            default = _DEFAULTS[site.kind].get(setting)
            edits.original[setting] = default
            # A missing argument already has the value when it is the default: nothing
            # to write (no pin_memory=False added to a DataLoader).
            same = guarded is None and value == default and type(value) is type(default)
            if add and not same:
                self.add(name, _py(value) if guarded is None else guarded)
            return None
        known, old = _literal(arg.value)
        if known:
            edits.original[setting] = old
            if old != value or type(old) is not type(value):
                self.replace(arg.value, value, name)
                self.comment("loader", site.ordinal)
            return None
        code = self.code(arg.value)
        if setting in self.ran:
            edits.original[setting] = self.ran[setting]
        if _dotted(arg.value):
            self.trace(arg.value, setting, value)
        elif code != guarded and not (follows is not None and follows in code and value is True):
            edits.notes.append(
                f"{name}={code} is computed: left as written (calibrated: {name}={_py(value)})"
            )
        return code

    def add(self, name: str, code: str) -> None:
        site = self.site
        if any(a.star == "**" for a in site.call.args):
            self.unpacked.append(f"{name}={code}")
            return
        self.edits.add.setdefault(id(site.call), []).append((name, code))
        self.edits.changes.append(Change(self.path, site.start, name, None, code))
        self.comment("loader", site.ordinal)

    # -- a value read from a configuration: where is it set? --

    def trace(
        self, expression: cst.BaseExpression, setting: str, value: Scalar, depth: int = 0
    ) -> None:
        """Rewrite or point at where ``expression`` is set: ``args.num_workers`` (an
        argparse default), ``NUM_WORKERS`` (a constant), ``num_workers`` (a parameter),
        ``self.num_workers`` (set in the class), ``cfg.data.num_workers`` (YAML)."""
        parts = _dotted(expression) or []
        if parts[0] == "self" and len(parts) == 2:
            found = self.attribute(expression, setting, value, depth)
        elif len(parts) == 1:
            found = self.name(expression, setting, value, depth)
        else:
            found = self.argparse(parts[-1], setting, value)
        if found or self.yaml(parts[1:] or parts, setting, value):
            return
        self.edits.notes.append(
            f"{self.names[setting]}={self.code(expression)} is read from a configuration "
            f"trainperf did not find: set it to {_py(value)} there"
        )

    def argparse(self, dest: str, setting: str, value: Scalar) -> bool:
        """An ``add_argument`` of this file storing into ``dest``: its default."""
        for ordinal, call in enumerate(_add_arguments(self.module)):
            if _destination(call) != dest:
                continue
            flag = _flags(call)
            action = _argument(call, "action", None)
            default = _argument(call, "default", None)
            if action is not None and "store_" in self.code(action.value):
                shown = self.code(action.value)
                say = "pass" if value else "leave out"
                self.pointer(call, setting, value, f"the flag {flag}", shown, f"{say} {flag}")
                return True
            label = f"default of {flag}"
            if default is None:
                self.edits.original[setting] = None
                self.edits.add.setdefault(id(call), []).append(("default", _py(value)))
                self.edits.changes.append(
                    Change(self.path, self.line_of(call), label, None, _py(value))
                )
                self.comment("add_argument", ordinal)
            elif self.literal_at(default.value, setting, value, label):
                self.comment("add_argument", ordinal)
            return True
        return False

    def name(self, expression: cst.BaseExpression, setting: str, value: Scalar, depth: int) -> bool:
        """A name: assigned in the function, its parameter, or a module constant."""
        import libcst as cst

        assert isinstance(expression, cst.Name)
        function = self.site.function
        if function is not None:
            if self.assignment(function, expression, setting, value, depth):
                return True
            if self.parameter(function, expression.value, setting, value):
                return True
        return self.assignment(self.module, expression, setting, value, depth)

    def attribute(
        self, expression: cst.BaseExpression, setting: str, value: Scalar, depth: int
    ) -> bool:
        """``self.attr``: set in the class (from a literal, a method's parameter, ...)."""
        classdef = self.site.classdef
        return classdef is not None and self.assignment(classdef, expression, setting, value, depth)

    def assignment(
        self,
        scope: cst.CSTNode,
        target: cst.BaseExpression,
        setting: str,
        value: Scalar,
        depth: int,
    ) -> bool:
        """``target`` assigned once in ``scope``: a literal is rewritten, a parameter of
        the method assigning it pointed at, a name or attribute traced in turn."""
        import libcst as cst

        found = _assignments(scope, target, self.module)
        if not found:
            return False
        node, assigned = found[-1]
        if len(found) > 1:
            self.pointer(node, setting, value, f"{self.code(target)}, assigned more than once")
            return True
        if _literal(assigned)[0]:
            if self.literal_at(assigned, setting, value, self.code(target)):
                ordinal = next(i for i, n in enumerate(_assigns(self.module)) if n is node)
                self.comment("assign", ordinal)
            return True
        if _dotted(assigned) and depth < 3:
            method = next(
                (
                    f
                    for f in _walk(scope)
                    if isinstance(f, cst.FunctionDef) and any(n is node for n in _walk(f))
                ),
                None,
            )
            if (
                isinstance(assigned, cst.Name)
                and method is not None
                and self.parameter(method, assigned.value, setting, value)
            ):
                return True
            self.trace(assigned, setting, value, depth + 1)
            return True
        self.pointer(node, setting, value, self.code(target))
        return True

    def literal_at(self, node: cst.BaseExpression, setting: str, value: Scalar, label: str) -> bool:
        """Rewrite a literal; a value that is not one is pointed at. True if rewritten."""
        known, old = _literal(node)
        if not known:
            self.pointer(node, setting, value, label)
            return False
        self.edits.original[setting] = old
        if old == value and type(old) is type(value):
            return False
        self.replace(node, value, label)
        return True

    def parameter(self, function: cst.FunctionDef, name: str, setting: str, value: Scalar) -> bool:
        """A parameter of ``function``: pointed at, its callers decide."""
        params = function.params
        for param in (*params.posonly_params, *params.params, *params.kwonly_params):
            if param.name.value != name:
                continue
            known, old = (False, None) if param.default is None else _literal(param.default)
            if known:
                self.edits.original[setting] = old
            default = (
                "no default" if param.default is None else f"default {self.code(param.default)}"
            )
            self.pointer(
                param,
                setting,
                value,
                f"the parameter {name} of {function.name.value}()",
                default,
                note=f"pass {name}={_py(value)} where {function.name.value}() is called",
            )
            return True
        return False

    def pointer(
        self,
        node: cst.CSTNode,
        setting: str,
        value: Scalar,
        what: str,
        shown: str | None = None,
        note: str = "",
    ) -> None:
        self.edits.pointers.append(
            Pointer(
                self.path,
                self.line_of(node),
                self.names[setting],
                what,
                self.code(node) if shown is None else shown,
                _py(value),
                edited=False,
                note=note or f"set it to {_py(value)} there",
            )
        )

    def yaml(self, parts: Sequence[str], setting: str, value: Scalar) -> bool:
        """A key of a Hydra/OmegaConf YAML file near the target: the one the run read
        (its value is the run's), else one loaded by default, is edited; any other
        setting it is pointed at."""
        matches: list[_YamlKey] = []
        best = 0
        for key in _yaml_keys(self.path):
            depth = _suffix(key.path.split("."), parts)
            if depth > best:
                best, matches = depth, []
            if depth and depth == best:
                matches.append(key)
        if not matches:
            return False
        ran = _yml(self.ran[setting]) if setting in self.ran else None
        chosen = max(matches, key=lambda k: (k.value == ran, k.selected))
        wanted = _yml(value)
        for key in matches:
            plain = _YAML_SCALAR.fullmatch(key.value) is not None
            note = ""
            if key is not chosen:
                note = f"also set here, in effect with {key.selector}" if key.selector else ""
                note = note or "also set here"
            elif not plain:
                note = f"not a plain value: set it to {wanted} there"
            else:
                self.edits.original[setting] = _from_yml(key.value)
            edited = key is chosen and plain and key.value != wanted
            self.edits.pointers.append(
                Pointer(
                    key.file,
                    key.line,
                    self.names[setting],
                    key.path,
                    key.value,
                    wanted,
                    edited=edited,
                    override=f"{key.path}={wanted}",
                    note=note,
                )
            )
            if edited:
                self.edits.yaml.setdefault(key.file, []).append(_YamlEdit(key, wanted))
                self.edits.changes.append(Change(key.file, key.line, key.path, key.value, wanted))
        return True

    # -- the rest of the calibration's choice --

    def start_method(self, guard: str | None) -> None:
        """``multiprocessing_context``: the start method the choice was measured under,
        written where it is not this platform's default or the call names another."""
        from trainperf.calibration.startmethod import default_start_method

        config = self.calibrated.config
        method = config.multiprocessing_context if config.num_workers else None
        default = default_start_method()
        if self.site.kind == "TrainingArguments":
            if method not in (None, default):
                self.edits.notes.append(
                    f"the calibration measured multiprocessing_context={method!r}, which "
                    f"TrainingArguments does not set (the default here is {default!r})"
                )
            return
        arg = _argument(self.site.call, "multiprocessing_context", 11)
        if arg is None and method in (None, default):
            return  # the default start method, as measured
        guarded = None if guard is None or method is None else f'"{method}" if {guard} else None'
        self.setting("multiprocessing_context", method, guarded=guarded)

    def threads(self) -> None:
        """``torch.set_num_threads(N)`` right before the statement that builds the
        loader, where that is clean; else a note."""
        import libcst as cst

        threads = self.calibrated.config.main_threads
        edits, site = self.edits, self.site
        edits.original["main_threads"] = None
        if threads is None:
            return
        wanted = f"torch.set_num_threads({threads})"
        calls = [n for n in _walk(self.module) if isinstance(n, cst.Call) and _is_threads(n)]
        statement = site.statement
        index = next((i for i, s in enumerate(site.block) if s is statement), None)
        before = site.block[index - 1] if index else None
        previous = next((c for c in calls if before is not None and c in set(_walk(before))), None)
        why = ""
        if previous is not None and len(previous.args) == 1:
            known, old = _literal(previous.args[0].value)
            if known and isinstance(old, int):
                edits.original["main_threads"] = edits.written["main_threads"] = old
                if self.literal_at(previous.args[0].value, "main_threads", threads, wanted):
                    self.comment("threads", calls.index(previous))
                    edits.written["main_threads"] = threads
                return
        if calls:
            why = f"the file already calls torch.set_num_threads on line {self.line_of(calls[0])}"
        elif statement is None or index is None:
            why = "the call is not in a statement of its own"
        elif not _binds_torch(self.module, site.function):
            why = "this file does not import torch"
        if why:
            edits.notes.append(
                f"the calibration runs the training process with {wanted}; not written ({why}): "
                "call it before the loader is built"
            )
            return
        assert statement is not None
        parsed = cst.parse_statement(
            f"{wanted}  {self.calibrated.comment()}\n", self.module.config_for_parsing
        )
        assert isinstance(parsed, cst.SimpleStatementLine)
        edits.before = parsed
        edits.written["main_threads"] = threads
        edits.changes.append(Change(self.path, self.line_of(statement), wanted, None, wanted))

    def unwritten(self) -> None:
        """What the calibration set that no argument of the call holds."""
        config = self.calibrated.config
        if self.unpacked:
            self.edits.notes.append(
                "the call passes **keyword arguments, which may hold these settings: set "
                f"{', '.join(self.unpacked)} there (not added, so as not to pass one twice)"
            )
        if config.interop_threads is not None:
            self.edits.notes.append(
                f"the calibration also set torch.set_num_interop_threads("
                f"{config.interop_threads}): call it first thing in the program, before any "
                "parallel work (not written)"
            )
        if config.worker_threads is not None:
            self.edits.notes.append(
                f"the calibration gave each worker {config.worker_threads} thread(s) "
                "(worker_init_fn=trainperf.calibration.config.WorkerThreads("
                f"{config.worker_threads})); not written, and left out of the re-measure"
            )


def _configs(config: LoaderConfig, edits: _Edits) -> tuple[LoaderConfig, LoaderConfig]:
    """The loader as it was and as written, for the re-measure: a value that could not
    be read takes the setting's default (and, without workers, what needs them is off)."""
    from trainperf.calibration.config import START_METHODS, LoaderConfig

    def build(values: Mapping[str, Scalar]) -> LoaderConfig:
        found = values.get("num_workers")
        workers = found if isinstance(found, int) and found >= 0 else 0
        prefetch = _positive(values.get("prefetch_factor"))
        method = values.get("multiprocessing_context")
        threads = _positive(values.get("main_threads"))
        return LoaderConfig(
            batch_size=config.batch_size,
            num_workers=int(workers),
            pin_memory=values.get("pin_memory") is True,
            persistent_workers=bool(workers) and values.get("persistent_workers") is True,
            prefetch_factor=prefetch if workers and isinstance(prefetch, int) else None,
            main_threads=threads if isinstance(threads, int) else None,
            multiprocessing_context=method if workers and method in START_METHODS else None,
        )

    return build(edits.original), build(edits.written)


def _cpus_torch_counts() -> int:
    """The CPUs DataLoader weighs ``num_workers`` against before it warns: those this
    process may run on (torch's ``_check_worker_number_rationality``)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform: torch counts all CPUs
        return os.cpu_count() or 1


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _py(value: Scalar) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)
