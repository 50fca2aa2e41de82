"""``trainperf run -- CMD``: monitor any training command, with no change to its code."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from trainperf.cli import Command
from trainperf.errors import UsageError

_PYTHON = re.compile(r"python[0-9.]*(\.exe)?$")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", help="run folder (default .trainperf/runs/ID)")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the training command")


def python_script(command: list[str]) -> str | None:
    """The script a ``python [options] SCRIPT ...`` command runs; None when it runs a
    module (``-m``), inline code (``-c``), standard input, or is not a Python command.

    >>> python_script(["python3", "-u", "-X", "dev", "train.py", "x=1"])
    'train.py'
    """
    if not command or not _PYTHON.search(Path(command[0]).name):
        return None
    words = iter(command[1:])
    for word in words:
        if word == "--":
            script = next(words, None)
            return None if script == "-" else script
        if word.startswith("--"):  # the one long option that takes a value
            if word == "--check-hash-based-pycs":
                next(words, None)
            continue
        if not word.startswith("-") or word == "-":
            return None if word == "-" else word
        letters = word[1:]
        for i, letter in enumerate(letters):
            if letter in "cmhV?":  # code, module, or help/version: no script runs
                return None
            if letter in "WX":  # the rest of the word, or the next word, is its value
                if i == len(letters) - 1:
                    next(words, None)
                break
    return None


def refuse_missing_script(command: list[str]) -> None:
    """Stop before anything starts when ``python SCRIPT`` names a file that is not there
    (Python would print its own error, and an empty run would be left behind)."""
    script = python_script(command)
    if script is not None and not Path(script).exists():
        raise UsageError(f"python cannot open file {script}: no such file; check the path")


def run(args: argparse.Namespace) -> int:
    from trainperf.monitoring.analyze import summarize_folder
    from trainperf.monitoring.render import render_summary
    from trainperf.settings import Settings
    from trainperf.startup.phases import bootstrap_env

    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        raise UsageError("give the command to monitor after --, e.g. trainperf run -- python t.py")
    refuse_missing_script(command)
    from trainperf.monitoring.records import is_run
    from trainperf.monitoring.session import new_run_id

    folder = Path(args.out) if args.out else Settings.from_env().home() / "runs" / new_run_id()
    if is_run(folder):
        raise UsageError(
            f"{folder} already holds a recorded run; choose another --out (or remove that run)"
        )
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file; give a folder for the run's records")
    env = bootstrap_env({"TRAINPERF_RUN_DIR": str(folder.resolve())})
    try:
        # The command's own output and exit code pass through untouched.
        returncode = subprocess.run(command, env=env, check=False).returncode
    except OSError as exc:
        raise UsageError(
            f"cannot run {command[0]}: {exc.strerror or exc}; check the spelling or give a "
            f"full path to an executable"
        ) from None
    if not is_run(folder):
        print(
            "trainperf: no training step was seen (no torch optimizer or DataLoader was "
            "used, or the command failed before training)",
            file=sys.stderr,
        )
        return returncode
    summary, finished = summarize_folder(folder)
    if summary.steps == 0:
        print(
            "trainperf: no training step was seen (no optimizer step and no backward()); "
            "only the DataLoader batches were recorded, as reading time",
            file=sys.stderr,
        )
    if args.json:
        # stdout belongs to the command: the summary goes to stderr, as one JSON object.
        data = summary.to_json()
        data.update(run=str(folder), finished=finished, returncode=returncode)
        print(json.dumps(data), file=sys.stderr)
    else:
        title = f"trainperf: run recorded in {folder} (trainperf report {folder})"
        print(render_summary(summary, title=title, finished=finished), file=sys.stderr)
    return returncode


COMMAND = Command(configure, run)
