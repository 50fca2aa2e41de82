"""The doctor's phases, in order; see :mod:`trainperf.doctor`."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from trainperf._json import objects
from trainperf.doctor.child import (
    APPLY_VARIABLE,
    BUDGET_VARIABLE,
    DOCTOR_VARIABLE,
    PROOFS_FILE,
    PROOFS_VARIABLE,
    STEPS_VARIABLE,
)
from trainperf.doctor.report import DoctorReport
from trainperf.errors import RecordError, UsageError

if TYPE_CHECKING:
    import ast
    from collections.abc import Callable, Sequence

    from trainperf._json import Json, JsonObject
    from trainperf.monitoring.analyze import RunSummary
    from trainperf.monitoring.records import Period

__all__ = [
    "BUNDLED_ARGS",
    "DEFAULT_BUDGET_S",
    "GRACE_S",
    "PAGE_FILE",
    "TRAINING_ARGUMENTS_FILE",
    "bundled_command",
    "diagnose",
    "entry_point",
    "proofs_cut",
]

# The OCR example as it comes: the eager entry point, num_workers=0, the reference
# label maps, validation rebuilding them every batch. Two epochs show two validations.
BUNDLED_ARGS = (
    "-m",
    "trainperf.examples.ocr.train_eager",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
)
DEFAULT_BUDGET_S = 120.0  # from the process start to the limit of a user's command
GRACE_S = 300.0  # after the limit: the proofs, and the command winding down
NO_BUDGET_DEADLINE_S = 600.0  # with --steps alone: when a step never comes
EXIT_GRACE_S = 60.0  # after its exit work is done: longer, its own shutdown hangs
PAGE_FILE = "doctor.html"  # the report page, in the run folder
# A Trainer run diagnosed with --apply: the TrainingArguments fields to change, as JSON.
TRAINING_ARGUMENTS_FILE = "training_args.json"
STARTUP_REPEAT = 2  # fresh interpreters per import timing
_PYTHON = re.compile(r"python[0-9.]*(\.exe)?$")
# Interpreter options that take a value, before the script or -m.
_WITH_VALUE = {"-X", "-W", "-Q"}


def bundled_command() -> list[str]:
    return [sys.executable, *BUNDLED_ARGS]


# Launchers of several ranks, as modules and as commands; what they run is profiled.
_LAUNCH_MODULES = (
    "torch.distributed.run",
    "torch.distributed.launch",
    "accelerate.commands.launch",
)
# Their options that take no value (every other option takes the next word, unless
# that word is an option itself or a .py script).
_LAUNCH_FLAGS = {
    "--standalone",
    "--no-python",
    "--no_python",
    "--run-path",
    "--run_path",
    "--use-env",
    "--use_env",
    "--virtual-local-rank",
    "--multi_gpu",
    "--cpu",
    "--debug",
    "--quiet",
    "-q",
    "--use_deepspeed",
    "--use_fsdp",
    "--use_megatron_lm",
    "--use_xpu",
    "--tpu",
    "--same_network",
}


def entry_point(command: Sequence[str]) -> tuple[str | None, str | None]:
    """The module or script a Python command starts, for the import profile; else a
    note saying why there is none. Under a launcher (``torchrun``, ``python -m
    torch.distributed.run``, ``accelerate launch``) the script or module it runs."""
    name = Path(command[0]).name if command else ""
    if name == "torchrun":
        return _launched(command[1:])
    if name == "accelerate" and command[1:2] == ["launch"]:
        return _launched(command[2:])
    if not command or not _PYTHON.search(name):
        return None, (
            "start-up imports not profiled: the command does not start with python (give "
            "python script.py or python -m module to have them profiled)"
        )
    rest = list(command[1:])
    while rest and rest[0].startswith("-") and rest[0] not in ("-m", "-c", "-"):
        option = rest.pop(0)
        if option in _WITH_VALUE and rest:
            rest.pop(0)
        elif len(option) > 2 and option[1] != "-" and option[-1] in "mc":
            rest.insert(0, f"-{option[-1]}")  # -um mod: flags run together, then -m
    if len(rest) >= 2 and rest[0] == "-m":
        if rest[1] in _LAUNCH_MODULES:
            return _launched(rest[2:])
        return rest[1], None
    if rest and rest[0] not in ("-c", "-"):
        return rest[0], None
    return None, "start-up imports not profiled: the command runs code given inline"


def _launched(arguments: Sequence[str]) -> tuple[str | None, str | None]:
    """The script (or ``-m`` module) a launcher's arguments run."""
    words = list(arguments)
    module = False
    while words:
        word = words.pop(0)
        if word in ("-m", "--module"):
            module = True
        elif word in ("--no-python", "--no_python"):
            return None, "start-up imports not profiled: the launcher runs a program, not Python"
        elif word.startswith("-"):
            following = words[0] if words else ""
            valued = not ("=" in word or word in _LAUNCH_FLAGS or following.startswith("-"))
            if valued and words and not following.endswith(".py"):
                words.pop(0)  # the option's value
        else:
            return word, None
    kind = "module" if module else "script"
    return None, f"start-up imports not profiled: no {kind} found after the launcher's options"


def diagnose(
    command: Sequence[str] | None,
    *,
    steps: int | None = None,
    budget_s: float | None = None,
    apply: bool = False,
    profile_startup: bool = True,
    progress: Callable[[str], None] | None = None,
    home: Path | None = None,
    fix: bool = False,
) -> DoctorReport:
    """All six phases on ``command`` (None: the bundled OCR example with its naive settings).
    ``fix``: also each finding's verified patch (:mod:`trainperf.doctor.patches`)."""
    from trainperf.monitoring.session import new_run_id
    from trainperf.settings import Settings

    say = progress or (lambda message: None)
    if steps is not None and steps < 1:
        raise UsageError(f"--steps must be >= 1, got {steps}")
    if budget_s is not None and not budget_s > 0:
        raise UsageError(f"--budget must be > 0 seconds, got {budget_s:g}")
    if budget_s is None and steps is None:
        budget_s = DEFAULT_BUDGET_S
    bundled = command is None
    argv = bundled_command() if command is None else list(command)
    if not argv:
        raise UsageError(
            "give the command to diagnose after --, e.g. trainperf doctor -- python t.py"
        )
    from trainperf._command import refuse_missing_script

    refuse_missing_script(argv)
    began = time.perf_counter()
    folder = (home or Settings.from_env().home()) / "runs" / new_run_id()

    say("resources: CPU, memory, /dev/shm and GPU budget")
    resources = _resources()
    notes: list[str] = []
    startup: JsonObject = {}
    target, note = entry_point(argv)
    if note:
        notes.append(note)
    if profile_startup and target is not None:
        startup = _startup(target, say)

    returncode, timed_out, hung = _monitored_run(argv, folder, steps, budget_s, apply, say)
    if hung:
        notes.append(
            f"the command did not end {EXIT_GRACE_S:.0f} s after its records and proofs were "
            "written, in the interpreter's own shutdown, and was stopped (torch's DataLoader "
            "can leave a multiprocessing queue's lock held when a worker dies, and its exit "
            "then waits on it forever; run alone, the command would hang there too)"
        )
    startup["markers"] = _markers(folder)

    say("analysis: the run's verdict and the proofs' measurements")
    proofs_record = _read_proofs(folder)
    cut = proofs_record.get("cut_periods")
    recorded, finished, periods, after = _analysis(folder, cut if isinstance(cut, int) else None)
    summary = recorded if recorded is not None and recorded.steps else None
    proofs = tuple(objects(proofs_record.get("proofs")))
    loaders = objects(proofs_record.get("loaders"))
    tail = _tail(folder / "output.log")
    failure = None
    if timed_out and "proofs" in proofs_record:
        # The command reached its limit; the doctor's own proofs then ran past the deadline.
        notes.append(
            f"the doctor's proofs were still running {_deadline(budget_s):.0f} s after the "
            f"start and were stopped; {len(objects(proofs_record.get('proofs')))} finished "
            "and are reported (a slower loader takes longer to calibrate: give a larger "
            "--budget, or fewer --steps so that the proofs start sooner)"
        )
    elif timed_out:
        failure = (
            f"stopped by the doctor: still running {_deadline(budget_s):.0f} s after it started "
            f"(its limit plus {GRACE_S:.0f} s for the proofs); give a smaller --steps or "
            f"--budget, or check that it trains with a DataLoader"
        )
    elif _no_bootstrap(tail):
        failure = (
            "the command's Python cannot import trainperf, so nothing was monitored; run it "
            "with the interpreter of the environment trainperf is installed in"
        )
    elif returncode != 0:
        # A launcher's report of its failed ranks ends the output: look further back.
        failure = (
            f"the command exited with code {returncode}: "
            f"{_last_error(_tail(folder / 'output.log', lines=400))}"
        )
    from trainperf.doctor.findings import compose
    from trainperf.doctor.shm import read_sign, shm_finding

    cpus = resources.get("cpu_budget")
    stopped = proofs_record.get("stopped_at_step")
    stopped_at_step = stopped if isinstance(stopped, int) else None
    framework = proofs_record.get("framework")
    findings, set_aside = compose(
        startup=startup,
        periods=periods,
        summary=summary,
        proofs=proofs,
        loaders=loaders,
        cpus=float(cpus) if isinstance(cpus, int | float) else None,
        bundled=bundled,
        stopped_at_step=stopped_at_step,
        framework=framework if isinstance(framework, str) else None,
    )
    if after and stopped_at_step is not None:
        notes.append(
            f"after the doctor's stop the command went on: {_after_stop(after)}; reported "
            "apart, the verdict and proofs are taken on the steps before the stop"
        )
    elif after:
        # Training ended before the limit; the proofs ran there, and the command went on.
        notes.append(
            f"after its training, and the doctor's proofs, the command went on: "
            f"{_after_stop(after)}; reported apart, the verdict and proofs are taken on "
            "the training"
        )
    shm = read_sign(folder / "output.log") if failure is not None else None
    if shm is not None:
        found = shm_finding(shm, resources=resources, loaders=loaders, proofs=proofs)
        findings = (found, *findings)
    if summary is None:
        notes.append(_no_step_note(failed=failure is not None, loaders=loaders, shm=shm))
    report = DoctorReport(
        command=tuple(argv),
        bundled=bundled,
        run=str(folder),
        returncode=None if timed_out else returncode,
        finished=finished,
        elapsed_s=time.perf_counter() - began,
        resources=resources,
        startup=startup,
        summary=None if summary is None else summary.to_json(),
        proofs=proofs,
        findings=findings,
        set_aside=set_aside,
        failure=failure,
        output_tail=tuple(tail),
        stopped_at_step=stopped_at_step,
        notes=tuple(notes),
    )
    arguments = report.training_arguments()
    if apply and arguments and folder.is_dir():
        written = folder / TRAINING_ARGUMENTS_FILE
        written.write_text(json.dumps(arguments, indent=1) + "\n", "utf-8")
        report = dataclasses.replace(
            report,
            notes=(
                *report.notes,
                f"the TrainingArguments to change are in {written}: "
                "TrainingArguments(**defaults, **json.load(open(path))), or "
                "HfArgumentParser.parse_json_file",
            ),
        )
    if fix:
        from trainperf.doctor.patches import offer_patches

        patches = offer_patches(report.findings, entry=target, run=folder, say=say)
        report = dataclasses.replace(report, patches=patches)
    if folder.is_dir():
        say("report: writing the page")
        (folder / "doctor.json").write_text(json.dumps(report.to_json(), indent=1), "utf-8")
        _write_page(report, folder, recorded, periods)
    return report


def _write_page(
    report: DoctorReport, folder: Path, summary: RunSummary | None, periods: list[Period]
) -> None:
    """``doctor.html`` beside the run's records."""
    from trainperf.doctor.html import render_doctor_html
    from trainperf.monitoring.sampler import read_samples

    found = _verdict_folder(folder, summary) / "samples.jsonl" if summary is not None else None
    samples = read_samples(found) if found is not None and found.is_file() else []
    page = render_doctor_html(report, summary=summary, periods=periods, samples=samples)
    (folder / PAGE_FILE).write_text(page, "utf-8")


def _verdict_folder(folder: Path, summary: RunSummary) -> Path:
    """The records the run's verdict was drawn from: rank 0's, or those of the rank the
    others waited for (a fixed straggler)."""
    from trainperf.monitoring.records import rank_folders

    ranks = rank_folders(folder)
    chosen = 0 if summary.rank_breakdown is None else summary.rank_breakdown.verdict_rank
    return ranks[chosen] if chosen < len(ranks) else ranks[0]


def _deadline(budget_s: float | None) -> float:
    """Seconds after which the doctor stops the command itself."""
    return (budget_s if budget_s is not None else NO_BUDGET_DEADLINE_S) + GRACE_S


def _no_bootstrap(tail: Sequence[str]) -> bool:
    text = "\n".join(tail)
    return "Error in sitecustomize" in text and "trainperf" in text


def _resources() -> JsonObject:
    from trainperf.resources import detect_resources

    return detect_resources().to_json()


def _startup(target: str, say: Callable[[str], None]) -> JsonObject:
    """The entry point's import profile, and its heavy lines deferred together, re-timed."""
    from trainperf.startup import measure_imports
    from trainperf.startup.blame import split_line_node
    from trainperf.startup.probe import resolve_target
    from trainperf.startup.render import shorten
    from trainperf.startup.verify import measure_saving

    guarded = _runs_on_import(target)
    if guarded is not None:
        return {"entry": target, "error": guarded}
    try:
        report = measure_imports(
            target, repeat=STARTUP_REPEAT, progress=lambda m: say(f"start-up: {m}")
        )
    except UsageError as exc:
        return {"entry": target, "error": str(exc)}
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return {"entry": target, "error": f"the import profile failed: {exc}"}
    root = Path.cwd()
    lines: list[Json] = []
    grouped = set(report.groups[0].starts) if report.groups else set()
    chosen = [c for i, c in enumerate(report.lines) if i < 10 or c.where in grouped]
    for cost in chosen:
        lines.append(
            {
                "where": shorten(cost.where, root),
                "file": cost.file,
                "line": cost.line,
                "statement": cost.statement,
                "exclusive_s": cost.exclusive_s,
                "cumulative_s": cost.cumulative_s,
            }
        )
    out: JsonObject = {
        "entry": target,
        "import_s": report.total_s,
        "modules": report.modules,
        "lines": lines,
        "groups": [
            {
                "starts": [shorten(s, root) for s in g.starts],
                "saving_s": g.saving_s,
                "packages": list(g.packages),
            }
            for g in report.groups[:3]
        ],
        "packages": [
            {"name": p.name, "cumulative_s": p.cumulative_s, "modules": p.modules}
            for p in report.packages[:8]
        ],
        "error": report.error,
        "verified": None,
        "reads_config": _reads_config(target),
    }
    from trainperf.doctor.findings import HEAVY_LINE_S, STARTUP_FINDING_S

    heavy = [c for c in report.lines if c.exclusive_s >= HEAVY_LINE_S]
    group = report.groups[0] if report.groups else None
    defer: list[tuple[str, int]] = [(c.file, c.line) for c in heavy]
    predicted = sum(c.exclusive_s for c in heavy)
    if group is not None and group.saving_s >= predicted:
        defer = [split_line_node(s) for s in group.starts]
        predicted = group.saving_s
    if defer and predicted >= STARTUP_FINDING_S:
        say(f"start-up: re-timing {target} with {len(defer)} import lines deferred")
        try:
            measured = measure_saving(
                resolve_target(target, None), tuple(defer), repeat=STARTUP_REPEAT
            )
        except (UsageError, OSError, subprocess.SubprocessError) as exc:
            out["verify_error"] = str(exc)
            return out
        out["verified"] = {
            "lines": [shorten(f"{f}:{n}", root) for f, n in defer],
            "predicted_s": predicted,
            "measured_s": measured,
        }
    return out


# Modules and calls that read a configuration: a script using them can fail on a bad
# setting before it trains, so its import time before them is time to that error.
_CONFIG_MODULES = ("argparse", "hydra", "omegaconf", "click", "typer", "jsonargparse", "fire")


def _reads_config(target: str) -> str | None:
    """How the entry point reads its configuration (``"hydra"``, ``"argparse"``), from
    its source; None when it reads none that the doctor can see."""
    import ast

    tree = _parsed(target)
    if tree is None:
        return None
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            root = name.split(".")[0]
            if root in _CONFIG_MODULES:
                return root
    return None


def _parsed(target: str) -> ast.Module | None:
    """The entry point's syntax tree, without running it; None when it cannot be read."""
    import ast

    path = _source(target)
    if path is None:
        return None
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _source(target: str) -> Path | None:
    """The file of a script path or module name, without importing it."""
    import importlib.util

    path = Path(target)
    if path.suffix == ".py" or path.is_file():
        return path if path.is_file() else None
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _runs_on_import(target: str) -> str | None:
    """Why loading ``target`` to time its imports would run the program itself (a
    script without an ``if __name__ == "__main__":`` block), or None."""
    import ast

    tree = _parsed(target)
    if tree is None:
        return None  # the profile itself reports what is wrong with it
    for node in tree.body:
        test = node.test if isinstance(node, ast.If) else None
        if (
            isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name)
            and test.left.id == "__name__"
        ):
            return None
    return (
        f'not profiled: {target} has no `if __name__ == "__main__":` block, so loading it '
        f"to time its imports would run the whole program (put the training under one)"
    )


def _monitored_run(
    argv: list[str],
    folder: Path,
    steps: int | None,
    budget_s: float | None,
    apply: bool,
    say: Callable[[str], None],
    *,
    proofs: bool = True,
) -> tuple[int, bool, bool]:
    """Run the command with the monitor and the doctor's child part injected;
    ``proofs=False``: bounded and recorded only (``doctor --scale``). Returns its exit
    code, whether it ran past the deadline (then stopped), and whether it hung in its
    own shutdown ``EXIT_GRACE_S`` after trainperf's exit work was done (then killed)."""
    from trainperf.markers import MARKERS_VARIABLE
    from trainperf.startup.phases import bootstrap_env

    try:
        folder.mkdir(parents=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the run folder {folder}: {exc.strerror or exc}; set TRAINPERF_HOME "
            f"to a writable folder"
        ) from None
    env = bootstrap_env(
        {
            "TRAINPERF_RUN_DIR": str(folder.resolve()),
            DOCTOR_VARIABLE: "1",
            STEPS_VARIABLE: str(steps or ""),
            BUDGET_VARIABLE: "" if budget_s is None else f"{budget_s:g}",
            APPLY_VARIABLE: "1" if apply else "",
            PROOFS_VARIABLE: "" if proofs else "0",
            MARKERS_VARIABLE: str((folder / "markers.jsonl").resolve()),
        }
    )
    log = folder / "output.log"
    (folder / "started_at").write_text(f"{time.time():.6f}\n", encoding="utf-8")
    deadline = time.monotonic() + _deadline(budget_s)
    with log.open("wb") as out:
        try:
            # Its own process group: a limit reached stops what it started too.
            process = subprocess.Popen(
                argv,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            _remove_empty(folder)
            raise UsageError(
                f"cannot run {argv[0]}: {exc.strerror or exc}; check the spelling or give a "
                f"full path to an executable"
            ) from None
        timed_out = False
        done_at: float | None = None  # when its trainperf exit work was done
        while process.poll() is None:
            time.sleep(0.25)
            say(_running_status(folder, log))
            if done_at is None and _exit_done(folder / "markers.jsonl", process.pid):
                done_at = time.monotonic()
            if done_at is not None and time.monotonic() - done_at > EXIT_GRACE_S:
                # Records and proofs are written; the interpreter's own shutdown hangs.
                _signal_group(process, signal.SIGKILL)
                process.wait()
                return process.returncode, False, True
            if time.monotonic() > deadline and not timed_out:
                timed_out = True
                _signal_group(process, signal.SIGINT)  # a chance to write its records
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    _signal_group(process, signal.SIGKILL)
    return process.wait(), timed_out, False


def _exit_done(markers: Path, pid: int) -> bool:
    """Whether the process ``pid`` has done trainperf's work at its exit (its records
    and proofs written): the ``exit_done`` marker, the file's last lines read."""
    try:
        with markers.open("rb") as handle:
            handle.seek(max(0, markers.stat().st_size - 2048))
            tail = handle.read()
    except OSError:
        return False
    mine = f'"pid": {pid}}}'.encode()
    return any(b'"exit_done"' in line and line.endswith(mine) for line in tail.splitlines())


def _signal_group(process: subprocess.Popen[bytes], number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, number)


def _remove_empty(folder: Path) -> None:
    for name in ("started_at", "output.log"):
        (folder / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()


def _running_status(folder: Path, log: Path) -> str:
    steps = 0
    for path in (folder / "steps.jsonl", *folder.glob("rank*/steps.jsonl")):
        with contextlib.suppress(OSError):
            steps += path.read_bytes().count(b"\n")
    said = ""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - 4096))
            for line in handle.read().decode("utf-8", "replace").splitlines():
                if line.startswith("trainperf doctor: "):
                    said = line.removeprefix("trainperf doctor: ")
    except OSError:
        pass
    if said:
        return f"proofs, inside the command: {said}"
    return f"monitored run: {steps} periods recorded (its output: {log})"


def _markers(folder: Path) -> JsonObject:
    """Seconds from the start to each phase marker the command's main process reached."""
    from trainperf.markers import read_markers

    path = folder / "markers.jsonl"
    started = folder / "started_at"
    if not path.is_file() or not started.is_file():
        return {}
    try:
        origin = float(started.read_text("utf-8"))
        found = read_markers(path)
    except (OSError, ValueError, RecordError):
        return {}
    trained = [m.pid for m in found if m.name == "first_step"]
    main = trained[0] if trained else found[0].pid if found else None
    out: JsonObject = {}
    for marker in found:
        if marker.pid == main and marker.name not in ("exit_start", "exit_done"):
            out.setdefault(marker.name, round(marker.time - origin, 4))
    return out


def _analysis(
    folder: Path, cut: int | None
) -> tuple[RunSummary | None, bool, list[Period], list[Period]]:
    """The run's summary (None: no records at all), whether it ended, its periods up to
    the cut the proofs were decided at, and those after it."""
    from trainperf.monitoring.analyze import summarize_folder
    from trainperf.monitoring.records import is_run, read_periods

    if not is_run(folder):
        return None, False, [], []
    summary, finished = summarize_folder(folder, cut=cut)
    periods = read_periods(_verdict_folder(folder, summary) / "steps.jsonl")
    if cut is None:
        return summary, finished, periods, []
    return summary, finished, periods[:cut], periods[cut:]


def _after_stop(after: Sequence[Period]) -> str:
    train = [p for p in after if p.kind == "train"]
    val = [p for p in after if p.kind == "val"]
    said = []
    if train:
        said.append(f"{len(train)} training steps ({sum(p.wall_s for p in train):.1f} s)")
    if val:
        said.append(f"{sum(p.wall_s for p in val):.1f} s of validation")
    return " and ".join(said)


def _no_step_note(*, failed: bool, loaders: Sequence[JsonObject], shm: str | None) -> str:
    """Why no training step was seen, as far as the run tells."""
    if shm is not None:
        return (
            "no training step was seen: its DataLoader workers ran out of shared memory "
            "(/dev/shm) before the first step ended; see the shm-exhausted finding"
        )
    if loaders and failed:
        return (
            "no training step was seen: it read from a DataLoader, then failed before its "
            "first optimizer step (or backward()) ended"
        )
    if loaders:
        return (
            "no training step was seen: it read from a DataLoader, but no optimizer step or "
            "backward() followed (an evaluation script?)"
        )
    return (
        "no training step was seen: the command used no torch optimizer or DataLoader, "
        "or it failed before training"
    )


def proofs_cut(folder: Path) -> int | None:
    """The periods the doctor's verdict and proofs were taken on (its stop), from the
    proofs' record in a run folder the doctor made; None for another run."""
    cut = _read_proofs(folder).get("cut_periods")
    return cut if isinstance(cut, int) and not isinstance(cut, bool) else None


def _read_proofs(folder: Path) -> JsonObject:
    path = folder / PROOFS_FILE
    if not path.is_file():
        ranked = sorted(folder.glob(f"rank*/{PROOFS_FILE}"))
        if not ranked:
            return {}
        path = ranked[0]
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _tail(path: Path, lines: int = 20) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 16384))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    kept = [line for line in text.splitlines() if not line.startswith("trainperf doctor: ")]
    return kept[-lines:]


# What a launcher puts before a rank's own output (torchrun's --tee, log prefixes).
_RANK_PREFIX = re.compile(r"^\[(?:default)?(?:rank)?\d+\]:\s*")


def _last_error(tail: Sequence[str]) -> str:
    """The line that says what went wrong: the first rank's exception (behind its
    ``[rank1]:`` prefix: the other ranks' errors follow from it), else the last
    exception's, else the last line that is not a rule of ``=`` or ``-``."""
    exception = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")
    ranked = [line.strip() for line in tail if _RANK_PREFIX.match(line.strip())]
    for line in ranked:  # the first rank's error: the others' follow from it
        if exception.match(_RANK_PREFIX.sub("", line)):
            return line
    for line in reversed(tail):
        stripped = line.strip()
        if exception.match(stripped) and "ChildFailedError" not in stripped:
            return stripped
        if stripped.startswith(("Error", "error:", "python: can't open file")):
            return stripped
    said = (line.strip() for line in reversed(tail) if line.strip().strip("=-"))
    return next(said, "no output")
