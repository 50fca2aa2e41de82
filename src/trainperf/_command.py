"""The script a Python command line runs, and the check that it exists."""

from __future__ import annotations

import re
from pathlib import Path

from trainperf.errors import UsageError

__all__ = ["python_script", "refuse_missing_script"]

_PYTHON = re.compile(r"python[0-9.]*(\.exe)?$")


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
