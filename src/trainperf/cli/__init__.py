"""The ``trainperf`` command line: a thin argparse layer over the library.

Each command lives in its own module, imported only when that command runs, so
``trainperf --help`` stays about as fast as starting Python. A command module
exposes ``COMMAND = Command(configure=..., run=...)``; ``run`` returns the exit code:
0 ok, 1 a finding (a regression, a budget exceeded), 2 a usage or input error.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from trainperf._version import __version__
from trainperf.errors import TrainperfError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

__all__ = ["Command", "main"]

EXIT_OK, EXIT_FINDING, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class Command:
    """What a command module provides: its arguments and its body."""

    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class _Entry:
    name: str
    module: str
    summary: str


# Only commands that work are listed; the order is the order of --help.
_COMMANDS = (
    _Entry(
        "resources",
        "trainperf.cli.resources",
        "the CPU, memory, /dev/shm and GPU budget this process really has",
    ),
)


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
    for entry in _COMMANDS:
        child = sub.add_parser(
            entry.name, help=entry.summary, description=entry.summary, allow_abbrev=False
        )
        if entry.name == selected:
            child.add_argument(
                "--json", action="store_true", help="print machine-readable JSON on stdout"
            )
            child.add_argument(
                "-v", "--verbose", action="store_true", help="also log progress lines to stderr"
            )
            _load(entry).configure(child)
            chosen = child
    return parser, chosen


def _load(entry: _Entry) -> Command:
    command = getattr(importlib.import_module(entry.module), "COMMAND", None)
    if not isinstance(command, Command):
        raise TypeError(f"{entry.module} defines no COMMAND")
    return command


def _selected(argv: Sequence[str]) -> str | None:
    """The command named on the line (the first word that is not an option)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            names = [e.name for e in _COMMANDS]
            if word not in names:
                guess = difflib.get_close_matches(word, names, n=1)
                hint = f"did you mean '{guess[0]}'? " if guess else ""
                raise UsageError(
                    f"unknown command '{word}'; {hint}run 'trainperf --help' for the list"
                )
            return word
    return None


def _unrecognized(parser: argparse.ArgumentParser, extra: list[str]) -> str:
    message = f"unrecognized arguments: {' '.join(extra)}"
    known = [o for action in parser._actions for o in action.option_strings]
    guess = difflib.get_close_matches(extra[0], known, n=1) if extra[0].startswith("-") else []
    if guess:
        message += f" (did you mean '{guess[0]}'?)"
    return f"{message}; see '{parser.prog} --help'"


@contextlib.contextmanager
def _stderr_logging(verbose: bool) -> Iterator[None]:
    """Show trainperf's own log lines on stderr while a command runs, then restore."""
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of exiting."""
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        selected = _selected(words)
        parser, child = _build_parser(selected)
        if selected is None or child is None:
            parser.parse_args(words)  # handles --help and --version, rejects stray words
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        args, extra = parser.parse_known_args(words)
        if extra:
            raise UsageError(_unrecognized(child, extra))
        entry = next(e for e in _COMMANDS if e.name == selected)
        with _stderr_logging(args.verbose):
            return _load(entry).run(args)
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
