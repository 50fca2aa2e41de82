"""``trainperf compare BASE NEW``: a statistical regression gate between two runs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from trainperf.cli import EXIT_FINDING, EXIT_OK, Command
from trainperf.cli._render import emit_json
from trainperf.errors import RecordError, UsageError

if TYPE_CHECKING:
    import argparse
    from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", help="the baseline run (folder, id, 'last' or 'previous')")
    parser.add_argument("new", help="the run to judge (folder, id, 'last' or 'previous')")
    parser.add_argument(
        "--force", action="store_true", help="compare runs from different environments anyway"
    )


def _fingerprint(folder: Path) -> dict[str, object]:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        components = meta["fingerprint"]["components"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RecordError(f"cannot read the environment of {folder}: {exc}") from None
    if not isinstance(components, dict):
        raise RecordError(f"{folder}/meta.json holds no environment fingerprint")
    return components


def too_few(base_steps: int, new_steps: int) -> str:
    """Why there is no verdict, and how to get one (``insufficient-data``)."""
    from trainperf.monitoring.compare import MIN_STEPS

    return (
        f"{base_steps} and {new_steps} steady steps: too few to judge; compare needs at least "
        f"{MIN_STEPS} steady steps per run (each epoch's first step is not counted); run "
        f"longer, e.g. trainperf doctor --steps {2 * MIN_STEPS}"
    )


def _steps_folder(folder: Path, name: str) -> Path:
    """The folder of ``folder``'s training steps (rank 0's under several ranks).
    Raises :class:`UsageError` for a run that recorded none (a doctor run whose command
    failed before training holds only its report)."""
    from trainperf.monitoring.records import rank_folders

    ranks = rank_folders(folder)
    if not ranks:
        raise UsageError(
            f"the run {name} recorded no training step (its folder {folder} holds only the "
            "doctor's report: the command ended before training); compare two runs that "
            "trained, e.g. trainperf compare previous last"
        )
    return ranks[0]


def run(args: argparse.Namespace) -> int:
    from trainperf.cli.report import find_run
    from trainperf.monitoring.compare import compare_steps, steady_steps
    from trainperf.monitoring.records import read_periods

    # Runs of several ranks are compared on rank 0: ranks step in lockstep.
    base, new = (_steps_folder(find_run(name), name) for name in (args.base, args.new))
    if not args.force:
        before, after = _fingerprint(base), _fingerprint(new)
        changed = [
            f"{k} {before.get(k)} -> {after.get(k)}"
            for k in sorted(set(before) | set(after))
            if before.get(k) != after.get(k)
        ]
        if changed:
            raise UsageError(
                f"the runs come from different environments ({', '.join(changed)}); "
                f"pass --force to compare them anyway"
            )
    result = compare_steps(
        steady_steps(read_periods(base / "steps.jsonl")),
        steady_steps(read_periods(new / "steps.jsonl")),
    )
    if args.json:
        data = result.to_json()
        data.update(base=str(base), new=str(new))
        if result.verdict == "insufficient-data":
            data["reason"] = too_few(result.base_steps, result.new_steps)
        from trainperf._schema import COMPARE

        emit_json(COMPARE.stamp(data))
    else:
        print(f"{new} against {base}: {result.verdict}")
        if result.ratio is not None and result.interval is not None:
            change = (result.ratio - 1) * 100
            print(
                f"  median step time {change:+.1f}% (95% interval {result.interval[0]:.3f}x"
                f" - {result.interval[1]:.3f}x); noise floor {result.noise_floor:.1%}, "
                f"smallest effect reported {result.threshold:.1%}"
            )
        else:
            print(f"  {too_few(result.base_steps, result.new_steps)}")
    return EXIT_FINDING if result.verdict == "regression" else EXIT_OK


COMMAND = Command(configure, run)
