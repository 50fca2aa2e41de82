"""``trainperf ab -- CMD_A -- CMD_B``: is B really faster than A? Interleaved segments.

Exit code 0 for any verdict (``faster``, ``slower``, ``no-difference``): the answer is
the output, not a failure. 2 for a usage error or a command that cannot be started,
fails, or trains no step.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from trainperf.cli import EXIT_OK, Command
from trainperf.cli._render import emit_json
from trainperf.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from trainperf._json import Json, JsonObject
    from trainperf.monitoring.ab import AbResult, Unit
    from trainperf.monitoring.interleave import Segment

ROUNDS, MAX_ROUNDS = 4, 100
STEPS, MAX_STEPS = 30, 100_000
RECORD_FILE = "ab.json"
_EXAMPLE = "trainperf ab -- python train.py -- python train.py --workers 4"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Exit code 0 for every verdict (faster, slower, no-difference); 2 for a usage error "
        "or a command that cannot be started, fails or trains no step."
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=ROUNDS,
        metavar="R",
        help=f"segments of each command, interleaved (default {ROUNDS})",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=STEPS,
        metavar="N",
        help=f"training steps per segment; the first few are warm-up (default {STEPS})",
    )
    parser.add_argument(
        "cmd",
        nargs=argparse.REMAINDER,
        help="-- then command A, -- then command B (options of ab go before the first --)",
    )


def split_commands(words: list[str]) -> tuple[list[str], list[str]]:
    """``['--', *A, '--', *B]`` (the first ``--`` optional) as ``(A, B)``.

    Raises :class:`UsageError` when there is no second ``--`` or a command is empty.
    """
    rest = words[1:] if words[:1] == ["--"] else words
    if "--" not in rest:
        got = f" (got one command: {' '.join(rest)})" if rest else ""
        raise UsageError(f"give two commands, each after --{got}; e.g. {_EXAMPLE}")
    cut = rest.index("--")
    a, b = rest[:cut], rest[cut + 1 :]
    for side, command in (("A", a), ("B", b)):
        if not command:
            raise UsageError(
                f"command {side} is empty: put a command after each --; e.g. {_EXAMPLE}"
            )
    return a, b


def _check_range(flag: str, value: int, low: int, high: int, default: int, why: str) -> None:
    if not low <= value <= high:
        raise UsageError(
            f"{flag} must be between {low} and {high}, got {value} ({why}); e.g. {flag} {default}"
        )


def run(args: argparse.Namespace) -> int:
    from trainperf.cli._progress import Status
    from trainperf.monitoring.ab import MIN_ROUNDS, MIN_SEGMENT_STEPS, WARMUP_STEPS, compare_rounds
    from trainperf.monitoring.interleave import run_segments
    from trainperf.monitoring.session import new_run_id
    from trainperf.settings import Settings

    _check_range(
        "--rounds",
        args.rounds,
        MIN_ROUNDS,
        MAX_ROUNDS,
        ROUNDS,
        f"the interval needs at least {MIN_ROUNDS} rounds; more rounds, a narrower interval",
    )
    least = WARMUP_STEPS + MIN_SEGMENT_STEPS
    _check_range(
        "--steps",
        args.steps,
        least,
        MAX_STEPS,
        STEPS,
        f"the first {WARMUP_STEPS} steps of each segment are warm-up, and at least "
        f"{MIN_SEGMENT_STEPS} more are measured",
    )
    a, b = split_commands(args.cmd)
    folder = Settings.from_env().home() / "runs" / new_run_id()
    status = Status()
    try:
        segments = run_segments(
            {"A": a, "B": b}, folder=folder, rounds=args.rounds, steps=args.steps, progress=status
        )
    finally:
        status.done()
    timed, unit = _timed(segments, args.rounds)
    result = compare_rounds(timed, unit=unit)
    record = _record(result, segments, a=a, b=b, steps=args.steps, folder=folder)
    (folder / RECORD_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
    if args.json:
        emit_json(record)
    else:
        text = render_text(result, rounds=args.rounds, steps=args.steps, folder=folder)
        shape = _shapes(segments)
        print(text if shape is None else f"{text}\n  {shape}")
    return EXIT_OK


def _timed(
    segments: list[Segment], rounds: int
) -> tuple[list[tuple[tuple[float, ...], tuple[float, ...]]], Unit]:
    """Each round's (A, B) times, per sample of the job where every segment knows its
    samples (a side with another batch size or rank count is then compared by
    throughput), else per step."""
    by_round = {(s.round, s.side): s for s in segments}
    per_sample = {key: s.per_sample() for key, s in by_round.items()}
    if all(times is not None for times in per_sample.values()):
        return [
            (per_sample[n, "A"] or (), per_sample[n, "B"] or ()) for n in range(1, rounds + 1)
        ], "sample"
    return [(by_round[n, "A"].steady, by_round[n, "B"].steady) for n in range(1, rounds + 1)], (
        "step"
    )


def _shapes(segments: list[Segment]) -> str | None:
    """A line saying the sides differ in ranks or samples a step, and how their step
    times compare, when they do (their throughputs are what the verdict compares)."""
    import statistics

    def shape(side: str) -> tuple[int, float] | None:
        mine = [s for s in segments if s.side == side]
        counts = [n for s in mine if s.samples for n in s.samples]
        if not counts:
            return None
        return max(s.ranks for s in mine), statistics.median(counts)

    a, b = shape("A"), shape("B")
    if a is None or b is None or a == b:
        return None

    def said(found: tuple[int, float]) -> str:
        ranks, samples = found
        return (
            f"{ranks} rank{'' if ranks == 1 else 's'}, {samples:g} "
            f"sample{'' if samples == 1 else 's'} a step"
        )

    steps = {
        side: [statistics.median(s.steady) for s in segments if s.side == side and s.steady]
        for side in ("A", "B")
    }
    step_ratio = (
        f"; B's step takes {statistics.median(steps['B']) / statistics.median(steps['A']):.2f}x A's"
        if steps["A"] and steps["B"]
        else ""
    )
    return (
        f"the sides differ (A {said(a)}; B {said(b)}): compared by the whole job's "
        f"samples/s{step_ratio}"
    )


def _record(
    result: AbResult,
    segments: list[Segment],
    *,
    a: list[str],
    b: list[str],
    steps: int,
    folder: Path,
) -> JsonObject:
    from trainperf.monitoring.ab import WARMUP_STEPS

    data = result.to_json()
    rounds: list[Json] = []
    for number, stat in enumerate(result.rounds, start=1):
        entry = stat.to_json()
        entry["round"] = number
        entry["segments"] = [s.to_json() for s in segments if s.round == number]
        rounds.append(entry)
    commands: JsonObject = {"a": [*a], "b": [*b]}
    data.update(
        rounds=rounds, steps=steps, warmup_steps=WARMUP_STEPS, commands=commands, folder=str(folder)
    )
    from trainperf._schema import AB

    return AB.stamp(data)  # ab.json and --json alike


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _rate(seconds: float | None) -> str:
    """Seconds per sample as samples/s."""
    return "-" if not seconds else f"{1 / seconds:,.1f}/s"


def headline(result: AbResult, *, rounds: int, steps: int) -> str:
    """The verdict in one line, e.g. ``B is 1.52x faster than A (95% interval
    1.44x-1.61x), 4 rounds of 30 steps``."""
    from trainperf.monitoring.ab import MAX_EFFECT, MIN_ROUNDS, MIN_STEPS

    size = f"{rounds} rounds of {steps} steps"
    by = " in samples/s" if result.unit == "sample" else ""
    if result.ratio is None or result.interval is None:
        used = result.used
        return (
            f"inconclusive: too few steps/rounds ({len(used)} usable rounds, "
            f"{sum(r.a_steps for r in used)} and {sum(r.b_steps for r in used)} steady steps; "
            f"needs {MIN_ROUNDS} rounds and {MIN_STEPS} steady steps a side), {size}; "
            f"raise --steps or --rounds"
        )
    low, high = result.interval
    effect = f"the smallest effect reported ({result.threshold:.1%})"
    if result.verdict == "faster":
        return (
            f"B is {1 / result.ratio:.2f}x faster than A{by} (95% interval {1 / high:.2f}x-"
            f"{1 / low:.2f}x), {size}"
        )
    if result.verdict == "slower":
        return (
            f"B is {result.ratio:.2f}x slower than A{by} (95% interval {low:.2f}x-{high:.2f}x), "
            f"{size}"
        )
    what = "time per sample" if result.unit == "sample" else "step time"
    measured = (
        f"B's {what} is {result.ratio:.3f}x A's (95% interval {low:.3f}x-{high:.3f}x), {size}"
    )
    if result.reason == "within-effect":
        return f"no difference: {measured}; any difference is below {effect}"
    if result.threshold > MAX_EFFECT:
        return (
            f"inconclusive: {measured}; the machine's own A/A noise ({result.noise_floor:.1%}) "
            f"hides any difference under {result.threshold:.0%}: run on a quieter machine, "
            f"or more rounds, e.g. --rounds {rounds * 2}"
        )
    return (
        f"inconclusive: {measured}; the interval is too wide to tell against {effect}: "
        f"run more rounds, e.g. --rounds {rounds * 2}"
    )


def render_text(result: AbResult, *, rounds: int, steps: int, folder: Path) -> str:
    """The verdict line, the per-round medians and where the records are."""
    from trainperf.monitoring.ab import WARMUP_STEPS

    lines = [headline(result, rounds=rounds, steps=steps)]
    rates = result.unit == "sample"
    shown = _rate if rates else _ms
    lines.append(
        "  round  A samples/s  B samples/s  B/A (time)"
        if rates
        else "  round  A median    B median    B/A"
    )
    width = 11 if rates else 10
    for number, stat in enumerate(result.rounds, start=1):
        ratio = "-" if stat.ratio is None else f"{stat.ratio:.3f}x"
        lines.append(
            f"  {number:5d}  {shown(stat.a_median_s):>{width}}  {shown(stat.b_median_s):>{width}}"
            f"  {ratio}"
        )
    if result.noise_floor is not None:
        lines.append(
            f"  noise floor (A/A, odd against even rounds) {result.noise_floor:.1%}; smallest "
            f"effect reported {result.threshold:.1%}"
        )
    per = (
        "samples/s (the samples every rank trained in a step, over rank 0's step time)"
        if rates
        else "step times"
    )
    lines.append(
        f"  medians of each segment's {per}, steps after its first {WARMUP_STEPS} (and each "
        f"epoch's first); records in {folder}"
    )
    return "\n".join(lines)


COMMAND = Command(configure, run)
