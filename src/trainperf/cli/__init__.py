"""The ``trainperf`` command line: a thin argparse layer over the library.

Each command lives in its own module, imported only when that command runs, so
``trainperf --help`` costs little more than starting Python (see
``benchmarks/cli_startup.py``); for the same reason this module avoids typing,
dataclasses and logging at import time. A command module exposes
``COMMAND = Command(configure, run)``; ``run`` returns the exit code: 0 ok, 1 a
finding (a regression, a budget exceeded), 2 a usage or input error.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from trainperf._version import __version__
from trainperf.errors import TrainperfError, UsageError

TYPE_CHECKING = False  # see trainperf/__init__.py: typing is not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from contextlib import AbstractContextManager
    from typing import NoReturn

__all__ = ["EXIT_FINDING", "EXIT_OK", "EXIT_USAGE", "Command", "console", "main"]

EXIT_OK, EXIT_FINDING, EXIT_USAGE = 0, 1, 2


class Command:
    """What a command module provides: its arguments and its body."""

    __slots__ = ("configure", "run")

    def __init__(
        self,
        configure: Callable[[argparse.ArgumentParser], None],
        run: Callable[[argparse.Namespace], int],
    ) -> None:
        self.configure = configure
        self.run = run


# (name, module, summary). Only commands that work are listed, in --help order.
_COMMANDS: tuple[tuple[str, str, str], ...] = (
    (
        "doctor",
        "trainperf.cli.doctor",
        "diagnose a training command end to end, prove the advice, write one report",
    ),
    (
        "imports",
        "trainperf.cli.imports",
        "what importing an entry point costs, blamed on your own import lines",
    ),
    (
        "lint-imports",
        "trainperf.cli.lint_imports",
        "heavy module-level imports in entry points, found without running them",
    ),
    (
        "fix",
        "trainperf.cli.fix",
        "write the fix the diagnosis proved (imports, loader settings) as a verified patch",
    ),
    (
        "startup",
        "trainperf.cli.startup",
        "time a command to its phase markers, first training step and exit",
    ),
    (
        "run",
        "trainperf.cli.run",
        "monitor any training command, no code change: where its step time goes",
    ),
    (
        "report",
        "trainperf.cli.report",
        "a monitored run's verdict: where the step time goes, and the fix",
    ),
    (
        "compare",
        "trainperf.cli.compare",
        "did step time change between two runs? (exit 1 on a regression)",
    ),
    (
        "ab",
        "trainperf.cli.ab",
        "is B really faster than A? both commands in interleaved, monitored segments",
    ),
    (
        "calibrate",
        "trainperf.cli.calibrate",
        "measure the fastest DataLoader settings for a dataset, and keep them",
    ),
    (
        "cache",
        "trainperf.cli.cache",
        "inspect, verify or clear a preprocessing cache folder",
    ),
    (
        "resources",
        "trainperf.cli.resources",
        "the CPU, memory, /dev/shm and GPU budget this process really has",
    ),
)
_NAMES = tuple(name for name, _, _ in _COMMANDS)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, raised instead of printed."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}; see '{self.prog} --help'")


def _build_parser(
    selected: str | None,
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser | None]:
    """The top-level parser, and the selected command's parser with its options."""
    parser = _Parser(
        prog="trainperf",
        allow_abbrev=False,
        description="Find out why a PyTorch training pipeline is slow, and fix it.",
        epilog="Run 'trainperf COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"trainperf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    chosen = None
    for name, module, summary in _COMMANDS:
        child = sub.add_parser(name, help=summary, description=summary, allow_abbrev=False)
        if name == selected:
            # Commands that run the user's program keep stdout for the program's output.
            where = "stderr (stdout is the command's own)" if name == "run" else "stdout"
            child.add_argument(
                "--json", action="store_true", help=f"print machine-readable JSON on {where}"
            )
            child.add_argument(
                "-v", "--verbose", action="store_true", help="also log progress lines to stderr"
            )
            _load(module).configure(child)
            chosen = child
    return parser, chosen


def _load(module: str) -> Command:
    command = getattr(importlib.import_module(module), "COMMAND", None)
    if not isinstance(command, Command):
        raise TypeError(f"{module} defines no COMMAND")
    return command


def _closest(word: str, choices: Sequence[str]) -> str:
    import difflib

    guess = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean '{guess[0]}'?" if guess else ""


def _selected(argv: Sequence[str]) -> str | None:
    """The command named on the line (the first word that is not an option)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            if word not in _NAMES:
                hint = _closest(word, _NAMES)
                raise UsageError(
                    f"unknown command '{word}'; {hint + ' ' if hint else ''}"
                    f"run 'trainperf --help' for the list"
                )
            return word
    return None


def _unrecognized(parser: argparse.ArgumentParser, extra: list[str]) -> str:
    message = f"unrecognized arguments: {' '.join(extra)}"
    if extra[0].startswith("-"):
        known = [o for action in parser._actions for o in action.option_strings]
        if extra[0] in known:  # a command's option given before the command's name
            return f"{extra[0]} belongs after the command: '{parser.prog} {extra[0]} ...'"
        hint = _closest(extra[0], known)
        if hint:
            message += f" ({hint})"
    return f"{message}; see '{parser.prog} --help'"


def _stderr_logging(verbose: bool) -> AbstractContextManager[None]:
    """Show trainperf's own log lines on stderr while a command runs, then restore."""
    import contextlib
    import logging

    @contextlib.contextmanager
    def scope() -> Iterator[None]:
        package = logging.getLogger("trainperf")
        saved = (package.level, package.propagate)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("trainperf: %(levelname)s: %(message)s"))
        package.addHandler(handler)
        package.setLevel(logging.INFO if verbose else logging.WARNING)
        package.propagate = False
        try:
            yield
        finally:
            package.removeHandler(handler)
            package.setLevel(saved[0])
            package.propagate = saved[1]

    return scope()


def console() -> int:
    """The ``trainperf`` script: :func:`main`, printing whatever the terminal can show.

    A CPU model or path the terminal's encoding cannot represent is escaped rather
    than crashing the command (``PYTHONIOENCODING=ascii``, a C locale).
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of exiting."""
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        selected = _selected(words)
        parser, child = _build_parser(selected)
        if selected is None or child is None:
            parser.parse_args(words)  # handles --help and --version, rejects stray words
            # Bare `trainperf`: one line, not the whole help.
            print(
                f"usage: trainperf COMMAND [options]; commands: {', '.join(_NAMES)}; "
                "'trainperf --help' for details",
                file=sys.stderr,
            )
            return EXIT_USAGE
        args, extra = parser.parse_known_args(words)
        if extra:
            raise UsageError(_unrecognized(child, extra))
        module = next(m for name, m, _ in _COMMANDS if name == selected)
        with _stderr_logging(args.verbose):
            return _load(module).run(args)
    except TrainperfError as exc:
        print(f"trainperf: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("trainperf: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `trainperf ... | head`); nothing left to say.
        sys.stderr.close()
        return EXIT_OK
