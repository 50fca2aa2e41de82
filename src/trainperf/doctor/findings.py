"""From measurements to findings: pure functions over plain records.

The doctor names every cause it has evidence for, not only the monitor's primary
verdict, and says where each gain comes from:

* ``startup-imports``: the entry point's own import lines whose exclusive cost is at
  least ``HEAVY_LINE_S``, once deferring them together saves ``STARTUP_FINDING_S``,
  and only when the entry point reads a configuration first (a ``config_validated``
  marker, Hydra, argparse and the like): the lines are loaded before the first step
  anyway, so what deferring them gains is time to a configuration error. The saving
  is measured when the doctor re-timed the entry point with them deferred; a saving
  under ``CONFIRMED_SHARE`` of the prediction is not a finding, and is said in the
  start-up section instead.
* ``input-bound``: the median training step waits ``INPUT_SHARE`` of its time for
  data. Measured in the command: the calibration's best settings against the
  loader's own (side by side), and a batch built against one read from the cache.
  More workers are advised only when they measured at least ``WORKER_GAIN`` faster.
* ``validation-preprocessing``: validation takes ``VALIDATION_SHARE`` of the run and
  its loader at least ``INPUT_SHARE`` of validation; cached against uncached batches
  measured, the run's saving estimated from that (the batches' building only: the
  wait before each pass's first batch is not building).
* ``validation-worker-startup``: the same, when at least ``INPUT_SHARE`` of that wait
  is before each pass's first batch (workers started again every pass): the fix is
  ``persistent_workers=True``, not a cache.
* ``worker-startup``: the monitor's finding (the workers' starts, timed inside them,
  take a share of the run); ``persistent_workers=True`` measured where the command's
  training loader restarts its workers: epoch starts timed both ways, interleaved.
* ``worker-memory``: copy-on-read measured (:mod:`.memory`): the workers' private
  memory gained reading the dataset's large Python lists against the same data in
  numpy arrays; else the monitor's estimate from the run's memory readings.
* ``rank-data-overlap`` and ``epoch-order-repeats``: the input audit's
  (:mod:`trainperf.monitoring.sample_audit`), titled by their fix.
* ``shm-exhausted`` (a command that died of it: :mod:`.shm`), and the monitor's other
  findings (:mod:`trainperf.monitoring.rules`), as they state them.

No padding: a finding whose own proof did not confirm it is left out of the list and
said where it belongs (:func:`set_aside`). Findings are ordered with the verdict's own
cause first, then by gain. A gain is ``measured`` only when the advice itself was
timed side by side with the original; its interval comes with it.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import TYPE_CHECKING

from trainperf._json import objects
from trainperf._stats import format_speedup
from trainperf.doctor.child import (
    validation_time,
    validation_worker_start,
    wants_validation_proof,
)
from trainperf.doctor.report import DoctorFinding, GainSource
from trainperf.monitoring.analyze import INPUT_SHARE, NOT_CONFIRMED
from trainperf.monitoring.render import describe_evidence

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trainperf._json import JsonObject, JsonScalar
    from trainperf.monitoring.analyze import Finding, RunSummary
    from trainperf.monitoring.records import Period

__all__ = [
    "CACHE_WORTH",
    "HEAVY_LINE_S",
    "STARTUP_FINDING_S",
    "WORKER_GAIN",
    "compose",
    "input_finding",
    "startup_finding",
    "validation_finding",
]

HEAVY_LINE_S = 0.05
STARTUP_FINDING_S = 0.5
WORKER_GAIN = 1.05  # calibrated settings must beat the loader's own by this much
CONFIRMED_SHARE = 0.5  # a re-timed saving at least this share of the prediction confirms it
CACHE_WORTH = 1.10  # a cache is advised when it would make the run this much faster


def _ms(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _percent(factor: float, low: float | None = None, high: float | None = None) -> str:
    """A speedup as a change: ``+28%`` below 2x, else ``2.3x``; with its interval."""
    if factor >= 2:
        return format_speedup(factor, low, high)
    text = f"+{factor - 1:.0%}"
    if low is not None and high is not None:
        text += f" ({low - 1:+.0%} to {high - 1:+.0%})"
    return text


def _float(data: JsonObject, key: str) -> float | None:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _proofs(proofs: Sequence[JsonObject], kind: str, role: str) -> list[JsonObject]:
    return [p for p in proofs if p.get("kind") == kind and p.get("role") == role]


def startup_finding(startup: JsonObject, *, bundled: bool) -> tuple[DoctorFinding | None, str]:
    """The start-up finding, or None with what the start-up section should say instead
    (empty when there is nothing to say)."""
    groups = objects(startup.get("groups"))
    grouped = {str(w) for w in _list(groups[0].get("starts"))} if groups else set()
    lines = [
        line
        for line in objects(startup.get("lines"))
        if _exclusive(line) >= HEAVY_LINE_S
        or (line.get("where") in grouped and (_float(line, "cumulative_s") or 0.0) >= HEAVY_LINE_S)
    ]
    lines.sort(key=lambda line: _float(line, "cumulative_s") or 0.0, reverse=True)
    predicted = max(
        sum(_exclusive(line) for line in lines),
        max((_float(g, "saving_s") or 0.0 for g in groups), default=0.0),
    )
    if (not lines and not groups) or predicted < STARTUP_FINDING_S:
        return None, ""
    entry = str(startup.get("entry", "the entry point"))
    verified = startup.get("verified")
    measured = _float(verified, "measured_s") if isinstance(verified, dict) else None
    if measured is not None and measured < CONFIRMED_SHARE * predicted:
        return None, (
            f"nothing worth deferring: re-timed with its heavy lines deferred, {entry} loaded "
            f"only {measured:.2f} s faster ({predicted:.2f} s predicted) -- what they import "
            "is loaded anyway (by a name used at import time: a base class, a decorator; "
            f"`trainperf fix imports {entry}` names each line it cannot move, and why)"
        )
    markers = startup.get("markers")
    marked = markers if isinstance(markers, dict) else {}
    config = startup.get("reads_config")
    validated = marked.get("config_validated")
    if not config and not isinstance(validated, int | float):
        packages = ", ".join(str(p) for p in _list(groups[0].get("packages"))[:4]) if groups else ""
        return None, (
            "nothing worth deferring: the heavy lines"
            + (f" ({packages})" if packages else "")
            + " are loaded before the first training step anyway, and the entry point reads "
            "no configuration before them, so deferring them would bring nothing sooner"
        )

    def costs(line: JsonObject) -> str:
        return (
            f"{line.get('where')} `{line.get('statement')}`: {_exclusive(line):.2f} s alone, "
            f"{_float(line, 'cumulative_s') or 0.0:.2f} s with what it imports first"
        )

    # The group's own statements, exactly; heavy lines outside it are named apart.
    inside = [line for line in lines if not grouped or line.get("where") in grouped]
    outside = [line for line in lines if grouped and line.get("where") not in grouped]
    evidence = [costs(line) for line in inside[:6]]
    if outside:
        evidence.append(
            "also heavy, not in the group: " + "; ".join(costs(line) for line in outside[:3])
        )
    if groups:
        group = groups[0]
        packages = ", ".join(str(p) for p in _list(group.get("packages"))[:6])
        evidence.append(
            f"deferred together, {len(_list(group.get('starts')))} statements drop "
            f"{packages or 'their packages'}: {_float(group, 'saving_s') or 0.0:.2f} s predicted"
        )
    said = [
        f"{name.replace('_', ' ')} at {value:.2f} s"
        for name, value in marked.items()
        if isinstance(value, int | float) and name != "interpreter_ready"
    ]
    if said:
        evidence.append("in the monitored run, after its process started: " + ", ".join(said))
    reads = str(config) if config else "it marks config_validated"
    evidence.append(f"the entry point reads its configuration first ({reads})")
    source: GainSource = "estimated"
    after = "a bad setting is reported"
    if measured is not None:
        gain = (
            f"{after} {measured:.2f} s sooner (measured: {entry} re-timed with those lines "
            f"deferred; predicted {predicted:.2f} s); the first training step comes no sooner, "
            "training needs them"
        )
        source = "measured"
    else:
        gain = f"{after} about {predicted:.2f} s sooner (estimated from the import profile)"
        if startup.get("verify_error"):
            evidence.append(f"re-timing with them deferred failed: {startup['verify_error']}")
    fix = (
        "import these where they are used, after the configuration is validated "
        "(function-level imports or trainperf.lazy_import), so a bad setting fails at once"
    )
    if bundled:
        fix += "; python -m trainperf.examples.ocr.train is this entry point with them deferred"
    return (
        DoctorFinding(
            kind="startup-imports",
            title=f"heavy imports before {entry} reads its configuration",
            evidence=tuple(evidence),
            fix=fix,
            gain=gain,
            gain_source=source,
        ),
        "",
    )


def input_finding(
    summary: RunSummary,
    proofs: Sequence[JsonObject],
    loaders: Sequence[JsonObject],
    *,
    cpus: float | None,
    bundled: bool,
    framework: str | None = None,
) -> tuple[DoctorFinding | None, str]:
    """The input-bound finding, or None with why it was set aside."""
    trainer = framework == TRANSFORMERS
    step = summary.step
    if step.kind != "input-bound":
        return None, ""
    if summary.data_wait_functions and not any(d.get("role") == "training" for d in loaders):
        return _own_batches_finding(summary), ""
    data_share = step.share or 0.0
    step_s = summary.step_median_s or 0.0
    train = next((d for d in loaders if d.get("role") == "training"), {})
    workers = train.get("num_workers", 0)
    interval = ""
    if step.share_low is not None and step.share_high is not None:
        interval = f" (95% interval {step.share_low:.0%}-{step.share_high:.0%})"
    evidence = [
        f"the median training step waits {data_share:.0%}{interval} of its {_ms(step_s)} "
        "for the DataLoader",
        f"training loader: {train.get('dataset', '?')}, batch_size={train.get('batch_size')}, "
        f"num_workers={workers}",
    ]
    unconfirmed = next((r for r in step.reasons if r.startswith(NOT_CONFIRMED)), None)
    if unconfirmed is not None:
        return None, (f"the step waits for data, but {unconfirmed}; so no loader advice is given")
    replay = next((f for f in summary.findings if f.kind == "input-bound"), None)
    replay_s = replay.evidence.get("replay_step_s") if replay is not None else None
    if replay_s:
        evidence.append(
            f"the same step with its batches already in memory: {_ms(replay_s)} (replayed)"
        )
    fixes: list[str] = []
    # (factor, low, high, text, measured)
    gains: list[tuple[float, float | None, float | None, str, bool]] = []
    overrides: list[str] = []
    arguments: dict[str, JsonScalar] = {}
    if replay_s and step_s:
        gains.append(
            (
                step_s / replay_s,
                None,
                None,
                f"if input were free: {_percent(step_s / replay_s)} samples/s (measured by "
                "replaying batches already in memory)",
                True,
            )
        )
    for proof in _proofs(proofs, "calibration", "training"):
        if "error" in proof or "skipped" in proof:
            evidence.append(f"calibration not run: {proof.get('error') or proof.get('skipped')}")
            continue
        text, searched, chosen = _calibration_text(proof)
        evidence.append(text)
        checked = proof.get("verified")
        verified = checked if isinstance(checked, dict) else None
        factor = _float(verified, "speedup") if verified else None
        low = _float(verified, "speedup_low") if verified else None
        high = _float(verified, "speedup_high") if verified else None
        if verified is not None and factor is not None:
            evidence.append(
                f"the advice applied as written ({chosen}) against the loader's own settings, "
                f"timed side by side in {verified.get('rounds', '?')} interleaved rounds: "
                f"{format_speedup(factor, low, high)}"
            )
        if searched is None and factor is None:
            evidence.append("the loader's own settings could not be timed: no gain to compare")
        elif chosen is not None and (low if low is not None else factor or 0.0) >= WORKER_GAIN:
            if trainer:
                fields, rest = trainer_arguments(proof)
                # Measured together: the fields alone are not the advice, so they are
                # written for --apply only when they are the whole of it.
                if not rest:
                    arguments.update(fields)
                fixes.append(f"set {_as_call(fields, rest)} (calibrated, together)")
            else:
                fixes.append(f"set {chosen} (calibrated)")
            assert factor is not None
            gains.append(
                (
                    factor,
                    low,
                    high,
                    f"calibrated settings: {_percent(factor, low, high)} samples/s (measured "
                    "side by side)",
                    True,
                )
            )
            overrides.append(_workers_override(proof))
        elif chosen is not None and factor is None and (searched or 0.0) >= WORKER_GAIN:
            fixes.append(
                f"try {_as_call(*trainer_arguments(proof)) if trainer else chosen} (calibrated)"
            )
            gains.append(
                (
                    searched or 1.0,
                    None,
                    None,
                    f"calibrated settings: about {_percent(searched or 1.0)} samples/s "
                    "(estimated from the calibration's search, not re-measured as written)",
                    False,
                )
            )
        else:
            on = f" on {cpus:g} CPUs" if cpus else ""
            name = "dataloader_num_workers" if trainer else "num_workers"
            fixes.append(
                f"keep {name}={workers}: other loader settings measured no faster here{on}"
            )
    for proof in _proofs(proofs, "cache", "training"):
        cached = _cache_text(proof, evidence)
        pointed = _collator_fix(proof) if trainer else None
        if pointed is None:
            pointed = _hot_fix(proof)
        if pointed is not None:
            fixes.append(pointed)
        if cached is None:
            continue
        built_s, read_s = cached
        wait_s = data_share * step_s
        new_step = step_s - min(wait_s, max(built_s - read_s, 0.0))
        if replay_s:
            new_step = max(new_step, replay_s)
        factor = step_s / new_step if new_step > 0 else 1.0
        if factor >= CACHE_WORTH and trainer and _collate_bound(proof):
            # The collator's work done once: what the cache proof measured is a batch
            # built against one already made (the work the collator repeats every step).
            gains.append(
                (
                    factor,
                    None,
                    None,
                    f"collator work done once: about {_percent(factor)} samples/s (estimated "
                    f"from the measured batch times: built in {_ms(built_s)}, read back in "
                    f"{_ms(read_s)})",
                    False,
                )
            )
        elif factor >= CACHE_WORTH:
            fixes.append(
                "cache the deterministic per-sample work (trainperf.cache.CachedDataset): "
                f"a batch built in {_ms(built_s)} is read back in {_ms(read_s)}"
            )
            gains.append(
                (
                    factor,
                    None,
                    None,
                    f"cached batches: about {_percent(factor)} samples/s once the cache is "
                    "built (estimated from the measured batch times)",
                    False,
                )
            )
            overrides.append("data.cache=true")
    if not fixes:
        fixes.append(
            "more DataLoader workers (dataloader_num_workers) or cheaper per-sample work"
            if trainer
            else "more DataLoader workers or cheaper per-sample work; trainperf calibrate "
            "measures the loader settings"
        )
    # What was measured leads, the largest first; estimates follow.
    ranked = sorted(gains, key=lambda g: (not g[4], -g[0]))
    gain = "; ".join(g[3] for g in ranked)
    if not gain:
        gain = (
            f"if input were free: {_percent(1 / (1 - min(data_share, 0.95)))} samples/s "
            "(estimated from the data-wait share)"
        )
    # The badge is the source of the gain the sentence leads with.
    source: GainSource = "measured" if ranked and ranked[0][4] else "estimated"
    advised = [g for g in ranked if g[0] >= WORKER_GAIN and g[4]]
    best = advised[0] if advised else None
    return (
        DoctorFinding(
            kind="input-bound",
            title=f"training waits for its DataLoader (num_workers={workers})",
            evidence=tuple(evidence),
            fix="; ".join(fixes),
            gain=gain,
            gain_source=source,
            speedup=best[0] if best else (ranked[0][0] if ranked else None),
            speedup_low=best[1] if best else None,
            speedup_high=best[2] if best else None,
            overrides=tuple(overrides) if bundled else (),
            confidence=step.confidence,
            reasons=step.reasons,
            training_arguments=tuple(arguments.items()),
        ),
        "",
    )


def _own_batches_finding(summary: RunSummary) -> DoctorFinding:
    """Input-bound without a DataLoader: the loop waits in its own batch function (the
    stack samples in it), which no loader setting reaches."""
    step = summary.step
    share = step.share or 0.0
    functions = ", ".join(f.rsplit(":", 1)[-1] for f in summary.data_wait_functions)
    evidence = [
        f"the median training step spends {share:.0%} of its {_ms(summary.step_median_s or 0.0)} "
        f"in {', '.join(summary.data_wait_functions)} (no DataLoader: estimated from the "
        "step's stack samples in it)"
    ]
    anatomy = summary.anatomy
    hot = [x for x in (anatomy.lines_of("data") if anatomy else ()) if x.samples >= 2][:3]
    if hot:
        evidence.append(
            "its lines: "
            + "; ".join(f"{x.file}:{x.line} {x.code} ({x.share:.0%} of a step)" for x in hot)
        )
    return DoctorFinding(
        kind="input-bound",
        title=f"training waits for its own batch function ({functions})",
        evidence=tuple(evidence),
        fix=f"make {functions} cheaper (whole-array slicing and tensor ops instead of Python "
        "loops over rows), or build the next batches ahead: in a background thread, or in "
        "DataLoader workers over a Dataset that returns them",
        gain=f"if the batches were ready when asked for: {_percent(1 / (1 - min(share, 0.95)))} "
        "steps/s (estimated from the sampled share)",
        gain_source="estimated",
        speedup=1 / (1 - min(share, 0.95)),
        confidence="low" if step.confidence == "high" else step.confidence,
        reasons=(
            *step.reasons,
            "the data wait is estimated from stack samples in the batch function, not timed",
        ),
    )


def thread_finding(summary: RunSummary, proofs: Sequence[JsonObject]) -> DoctorFinding | None:
    """The monitor's thread-oversubscription finding with the gain the calibration
    measured (its worker, worker-thread and main-thread settings, timed side by side
    against the loader's own), or ``None`` when there is no such finding or no proof."""
    found = next((f for f in summary.findings if f.kind == "thread-oversubscription"), None)
    proof = next(iter(_proofs(proofs, "calibration", "training")), None)
    if found is None or proof is None or "error" in proof or "skipped" in proof:
        return None
    evidence = describe_evidence(found.evidence)
    text, _, chosen = _calibration_text(proof)
    evidence.append(text)
    checked = proof.get("verified")
    verified = checked if isinstance(checked, dict) else None
    factor = _float(verified, "speedup") if verified else None
    low = _float(verified, "speedup_low") if verified else None
    high = _float(verified, "speedup_high") if verified else None
    fix, gain, source = found.fix, found.gain, "estimated"
    speedup = None
    if verified is not None and factor is not None:
        evidence.append(
            f"the calibrated settings applied as written ({chosen}) against the loader's own, "
            f"timed side by side in {verified.get('rounds', '?')} interleaved rounds: "
            f"{format_speedup(factor, low, high)}"
        )
        calibration = proof.get("calibration")
        end_to_end = isinstance(calibration, dict) and calibration.get("mode") == "end-to-end"
        if (low if low is not None else factor) >= WORKER_GAIN and end_to_end:
            fix = f"set {chosen} (calibrated); {found.fix}"
            gain = (
                f"calibrated settings: {_percent(factor, low, high)} samples/s "
                "(measured side by side)"
            )
            source, speedup = "measured", factor
        elif (low if low is not None else factor) >= WORKER_GAIN:
            # Loading alone: the threads the training step runs were not in the race.
            fix = f"set {chosen} (calibrated on loading alone); {found.fix}"
            gain = (
                f"{found.gain}; the loader alone, without the training step, ran "
                f"{format_speedup(factor, low, high)} with the calibrated settings (measured "
                "side by side): the training gains less"
            )
        else:
            gain = (
                "the calibrated settings measured no faster here side by side: "
                f"{format_speedup(factor, low, high)}"
            )
    else:
        return None  # nothing measured as written: the monitor's finding stands
    return DoctorFinding(
        kind="thread-oversubscription",
        title="more busy threads than CPUs",
        evidence=tuple(evidence),
        fix=fix,
        gain=gain,
        gain_source="measured" if source == "measured" else "estimated",
        speedup=speedup,
        speedup_low=low if speedup else None,
        speedup_high=high if speedup else None,
        confidence=found.confidence,
        reasons=found.reasons,
    )


# The calibration's loader settings, as the Hugging Face TrainingArguments that set them.
TRANSFORMERS = "transformers"
_TRAINING_ARGUMENTS = {
    "num_workers": "dataloader_num_workers",
    "prefetch_factor": "dataloader_prefetch_factor",
    "persistent_workers": "dataloader_persistent_workers",
    "pin_memory": "dataloader_pin_memory",
}


def trainer_arguments(proof: JsonObject) -> tuple[dict[str, JsonScalar], list[str]]:
    """A calibration proof's chosen settings as ``TrainingArguments`` fields, and the rest
    (threads, which no TrainingArguments field sets) as the calls that set them."""
    calibration = proof.get("calibration")
    chosen = calibration.get("chosen") if isinstance(calibration, dict) else None
    fields: dict[str, JsonScalar] = {}
    rest: list[str] = []
    if not isinstance(chosen, dict):
        return fields, rest
    for key, value in chosen.items():
        if key in _TRAINING_ARGUMENTS and isinstance(value, int | bool):
            fields[_TRAINING_ARGUMENTS[key]] = value
        elif key == "main_threads" and isinstance(value, int):
            rest.append(f"torch.set_num_threads({value}) before the Trainer is built")
        elif key == "worker_threads" and isinstance(value, int):
            rest.append(f"torch.set_num_threads({value}) in each worker (a worker_init_fn)")
    if fields.get("dataloader_num_workers") == 0:
        fields.pop("dataloader_persistent_workers", None)
        fields.pop("dataloader_prefetch_factor", None)
    return fields, rest


def _as_call(fields: dict[str, JsonScalar], rest: list[str]) -> str:
    text = "TrainingArguments(" + ", ".join(f"{k}={v}" for k, v in fields.items()) + ")"
    return " and ".join([text, *rest])


def _collate_bound(proof: JsonObject) -> bool:
    built_s = _float(proof, "uncached_s") or 0.0
    return built_s > 0 and (_float(proof, "collate_s") or 0.0) >= 0.5 * built_s


def _collator_fix(proof: JsonObject) -> str | None:
    """A Trainer's data collator taking a batch's time: the fix in the Trainer's terms
    (tokenise once, before training; the collator only pads)."""
    if not _collate_bound(proof):
        return None
    hot = objects(proof.get("hot"))
    share = (_float(proof, "collate_s") or 0.0) / (_float(proof, "uncached_s") or 1.0)
    where = f", most in {hot[0].get('function')}" if hot else ""
    tokenizing = any("tokeniz" in str(h.get("function", "")).lower() for h in hot)
    if tokenizing:
        return (
            f"the data collator takes {share:.0%} of building a batch{where}: it tokenises "
            "every batch, every epoch; tokenise once before training (a pre-tokenised "
            "dataset, e.g. datasets' Dataset.map(tokenize, batched=True)) and let the "
            "collator only pad (DataCollatorWithPadding)"
        )
    return (
        f"the data collator takes {share:.0%} of building a batch{where}: move that work "
        "into the dataset, done once before training (or per sample in __getitem__, where "
        "dataloader_num_workers share it)"
    )


def _workers_override(proof: JsonObject) -> str:
    calibration = proof.get("calibration")
    chosen = calibration.get("chosen") if isinstance(calibration, dict) else None
    workers = chosen.get("num_workers") if isinstance(chosen, dict) else None
    return f"data.num_workers={workers}"


_THREAD_CALLS = {
    "main_threads": "torch.set_num_threads({})",
    "interop_threads": "torch.set_num_interop_threads({})",
    "worker_threads": "{} thread(s) in each worker",
}


def _settings_words(chosen: JsonObject) -> str:
    """A calibrated configuration as the user sets it: the DataLoader's arguments, then
    the thread settings as the calls that make them (``num_workers=2
    persistent_workers=True and torch.set_num_threads(1)``)."""
    loader = " ".join(
        f"{k}={v}"
        for k, v in chosen.items()
        if v is not None and v is not False and k != "batch_size" and k not in _THREAD_CALLS
    )
    threads = [
        call.format(chosen[k]) for k, call in _THREAD_CALLS.items() if chosen.get(k) is not None
    ]
    return " and ".join([loader, *threads] if loader else threads) or "?"


def _calibration_text(proof: JsonObject) -> tuple[str, float | None, str | None]:
    calibration = proof.get("calibration")
    if not isinstance(calibration, dict):
        return "calibration gave no result", None, None
    chosen = calibration.get("chosen")
    described = _settings_words(chosen) if isinstance(chosen, dict) else "?"
    candidates = objects(calibration.get("candidates"))
    measured = [c for c in candidates if isinstance(c.get("samples_per_s"), int | float)]
    base = _float(proof, "baseline_samples_per_s")
    best = _float(proof, "chosen_samples_per_s")
    gain = _float(proof, "gain")
    mode = calibration.get("mode")
    text = (
        f"calibration ({mode}, {len(measured)} setting{'' if len(measured) == 1 else 's'} "
        "measured in "
        f"{_float(calibration, 'elapsed_s') or 0.0:.1f} s): the loader's own settings "
        f"{base or 0.0:.1f} samples/s, chosen {described} {best or 0.0:.1f} samples/s"
    )
    return text + _not_started(candidates), gain, described


def _not_started(candidates: list[JsonObject]) -> str:
    """The start methods the calibration did not start because their workers would run
    the main module's top-level work again (``main_module_work``), and where it is."""
    import re

    methods: list[str] = []
    where = ""
    for candidate in candidates:
        reason = str(candidate.get("reason") or "")
        found = re.search(r"imports the main module again.*?\((a [a-z ]+ at [^)]+)\)", reason)
        if found is not None:
            methods.append(str(candidate.get("multiprocessing_context")))
            where = found.group(1)
    if not methods:
        return ""
    return (
        f"; {' and '.join(methods)} not started: their workers import the main module, "
        f'which works outside `if __name__ == "__main__":` ({where}) and would run it again'
    )


def _cache_text(proof: JsonObject, evidence: list[str]) -> tuple[float, float] | None:
    """Adds the cache proof's evidence; (built, read) seconds per batch when cacheable."""
    if "error" in proof or "skipped" in proof:
        evidence.append(f"cache not measured: {proof.get('error') or proof.get('skipped')}")
        return None
    built_s = _float(proof, "uncached_s") or 0.0
    hot = [
        f"{h.get('function')} {_float(h, 'share') or 0.0:.0%}" for h in objects(proof.get("hot"))
    ]
    role = proof.get("role")
    collate_s = _float(proof, "collate_s")
    parts = (
        f" ({_ms(built_s - collate_s)} in the samples' __getitem__, {_ms(collate_s)} in collate_fn)"
        if collate_s is not None
        else ""
    )
    if not proof.get("deterministic"):
        evidence.append(
            f"a {role} batch is built in {_ms(built_s)}{parts}, but not the same twice: "
            f"{proof.get('reason', 'not deterministic')}"
        )
        if hot:
            evidence.append(f"where building a {role} batch spends its time: " + ", ".join(hot))
        return None
    read_s = _float(proof, "cached_s") or 0.0
    evidence.append(
        f"a {role} batch ({proof.get('samples_per_batch')} samples) is built in "
        f"{_ms(built_s)}{parts}, the same every time, and read from a trainperf cache in "
        f"{_ms(read_s)} (measured on {proof.get('batches')} batches)"
    )
    if hot:
        evidence.append(f"where building a {role} batch spends its time: " + ", ".join(hot))
    return built_s, read_s


def _hot_fix(proof: JsonObject) -> str | None:
    """The fix that points at the function taking a batch's time, for batches no cache
    can keep (different every time) or whose time is in collate_fn."""
    hot = objects(proof.get("hot"))
    built_s = _float(proof, "uncached_s") or 0.0
    collate_s = _float(proof, "collate_s") or 0.0
    where = (
        f"{hot[0].get('function')} ({_float(hot[0], 'share') or 0.0:.0%} of a batch)"
        if hot
        else None
    )
    if built_s > 0 and collate_s >= 0.5 * built_s:
        # A sample cache (CachedDataset) keeps what __getitem__ returns: the batch is
        # still collated from it every time.
        return (
            f"collate_fn takes {collate_s / built_s:.0%} of building a batch"
            + (f", most in {where}" if where else "")
            + ": a cache of the samples does not keep that work; move it into __getitem__ "
            "(per sample: workers then share it, and trainperf.cache.CachedDataset keeps it)"
            + ("" if proof.get("deterministic") else ", or make it cheaper")
        )
    if not proof.get("deterministic") and where:
        return (
            f"the batches differ every time (random augmentation), so no cache keeps them: "
            f"make {where} cheaper, or run it in more workers"
        )
    return None


def validation_finding(
    periods: Sequence[Period],
    summary: RunSummary,
    proofs: Sequence[JsonObject],
    *,
    bundled: bool,
) -> DoctorFinding | None:
    """Validation spending its time in its loader: the same rule, on the same periods,
    as the proof it calls for (:func:`~trainperf.doctor.child.wants_validation_proof`)."""
    val_s, val_data = validation_time(periods)
    share = summary.shares.get("validation", 0.0)
    if not wants_validation_proof(share, val_s, val_data):
        return None
    total = summary.train_s + summary.val_s + summary.startup_s
    evidence = [
        f"validation takes {share:.0%} of the run ({val_s:.1f} s), {val_data / val_s:.0%} "
        f"of it waiting for its DataLoader"
    ]
    started, passes = validation_worker_start(periods)
    building = max(val_data - started, 0.0)
    batches = sum(p.batches or 0 for p in periods if p.kind == "val")
    if started >= INPUT_SHARE * val_data:
        # The first batch of each pass waits for workers to start: no batch is built
        # yet, so no cache of the batches can save it.
        evidence.append(
            f"{started:.1f} s of that wait is before the first batch of each of {passes} "
            f"passes (about {started / passes:.2f} s each: its workers starting), "
            f"{building:.1f} s building {batches} batches"
        )
        return DoctorFinding(
            kind="validation-worker-startup",
            title="every validation pass starts its DataLoader workers again",
            evidence=tuple(evidence),
            fix="persistent_workers=True on the validation DataLoader: its workers start "
            "once and are kept between passes",
            gain=f"about {started:.1f} s of this run's {val_s:.1f} s of validation "
            "(estimated: one start remains)",
            gain_source="estimated",
            speedup=total / (total - started) if total > started else None,
            confidence=summary.run.confidence if summary.run.kind == "validation-bound" else "high",
            reasons=summary.run.reasons if summary.run.kind == "validation-bound" else (),
        )
    fix = "validate less often or on fewer batches"
    gain = f"if validation's loading were free: {val_data:.1f} s of {val_s:.1f} s (estimated)"
    source: GainSource = "estimated"
    speedup = total / (total - val_data) if total > val_data else None
    low = high = None
    overrides: list[str] = []
    for proof in _proofs(proofs, "cache", "validation"):
        cached = _cache_text(proof, evidence)
        if cached is None:
            continue
        built_s, read_s = cached
        ratio = built_s / read_s if read_s > 0 else float("inf")
        built = [float(v) for v in _list(proof.get("uncached_times")) if isinstance(v, int | float)]
        read = [float(v) for v in _list(proof.get("cached_times")) if isinstance(v, int | float)]
        if len(built) >= 2 and len(read) >= 2 and read_s > 0:
            from trainperf.calibration.speedup import speedup_interval

            # Times, not rates: the read is the "before" side of built / read.
            found = speedup_interval(read, built, paired=False)
            ratio, low, high = found.value, found.low, found.high
        # What building the batches cost, less reading them: never the workers' start.
        saved = building * (1 - 1 / ratio) if ratio > 1 else 0.0
        if batches:
            saved = min(saved, batches * max(built_s - read_s, 0.0))
        fix = (
            "cache validation's deterministic preprocessing (trainperf.cache.CachedDataset): "
            "build it once, read it every epoch"
        )
        gain = (
            f"validation batches {_ms(built_s)} -> {_ms(read_s)} "
            f"({format_speedup(ratio, low, high)}, measured); about {saved:.1f} s of this run's "
            f"{val_s:.1f} s of validation saved (estimated from it)"
        )
        source = "measured"
        speedup = total / (total - saved) if total > saved else None
        overrides.append("data.cache=true")
    return DoctorFinding(
        kind="validation-preprocessing",
        title="validation rebuilds the same inputs every time",
        evidence=tuple(evidence),
        fix=fix,
        gain=gain,
        gain_source=source,
        speedup=speedup,
        overrides=tuple(overrides) if bundled else (),
        confidence=summary.run.confidence if summary.run.kind == "validation-bound" else "high",
        reasons=summary.run.reasons if summary.run.kind == "validation-bound" else (),
    )


def worker_startup_finding(
    summary: RunSummary, proofs: Sequence[JsonObject], *, framework: str | None = None
) -> tuple[DoctorFinding | None, str]:
    """The monitor's ``worker-startup`` finding, its ``persistent_workers=True`` measured
    where the doctor timed epoch starts both ways (``persistence`` proof): the ratio of
    the medians with its bootstrap interval, and the run's saving estimated from it.
    A proof that measured no gain (``ADVICE_WORTH``, interval included) sets the
    finding aside, with why."""
    from trainperf.calibration.speedup import speedup_interval
    from trainperf.doctor.child import ADVICE_WORTH

    finding = next((f for f in summary.findings if f.kind == "worker-startup"), None)
    if finding is None:
        return None, ""
    evidence = describe_evidence(finding.evidence)
    made = DoctorFinding(
        kind=finding.kind,
        title="DataLoader workers start again every epoch or pass",
        evidence=tuple(evidence),
        fix=finding.fix,
        gain=finding.gain,
        gain_source="estimated",
        confidence=finding.confidence,
        reasons=finding.reasons,
        training_arguments=(
            (("dataloader_persistent_workers", True),)
            if framework == "transformers" and "persistent_workers=True" in finding.fix
            else ()
        ),
    )
    for proof in _proofs(proofs, "persistence", "training"):
        original = _times(proof.get("original_times"))
        kept = _times(proof.get("persistent_times"))
        if len(original) < 2 or len(original) != len(kept):
            continue
        found = speedup_interval(kept, original, paired=True)  # times: kept is "before"
        before, after = statistics.median(original), statistics.median(kept)
        said = (
            f"an epoch's start (iter(loader) to a batch from each worker, and the workers' "
            f"shutdown) {_ms(before)} -> {_ms(after)} with persistent_workers=True"
        )
        if found.value < ADVICE_WORTH or found.low < 1.0:
            return None, (
                f"{said} ({format_speedup(found.value, found.low, found.high)}, measured): "
                "no faster, so the start-up is not the epochs' restart"
            )
        forked = _times(proof.get("fork_times"))
        if len(forked) == len(original):
            by_fork = speedup_interval(forked, original, paired=True)
            evidence.append(
                f"with multiprocessing_context='fork' instead: {_ms(before)} -> "
                f"{_ms(statistics.median(forked))} "
                f"({format_speedup(by_fork.value, by_fork.low, by_fork.high)}, measured)"
            )
        later = max(finding.evidence.get("starts", 1.0) - 1, 0.0)
        saved = (before - after) * later
        total = summary.train_s + summary.val_s + summary.startup_s
        return dataclasses.replace(
            made,
            evidence=(*evidence, f"{said}: {format_speedup(found.value, found.low, found.high)}"),
            gain=(
                f"{said} ({format_speedup(found.value, found.low, found.high)}, measured); about "
                f"{saved:.1f} s over this run's {later:.0f} later starts (estimated from it)"
            ),
            gain_source="measured",
            # The run's factor, estimated from the measured start: the interval measured
            # is an epoch start's, said in the gain, not this factor's.
            speedup=total / (total - saved) if total > saved else None,
        ), ""
    return made, ""


def memory_finding(proofs: Sequence[JsonObject]) -> tuple[DoctorFinding | None, str]:
    """Copy-on-read, measured (:mod:`trainperf.doctor.memory`): the workers' private
    memory gained reading the dataset's large lists, against the same batches with the
    lists as numpy arrays. A finding when the lists' workers gained at least
    ``MIN_GROWTH_BYTES`` each and the arrays' under half that."""
    from trainperf.monitoring.worker_memory import MIN_GROWTH_BYTES

    for proof in _proofs(proofs, "memory", "training"):
        lists, arrays = proof.get("list_gain_bytes"), proof.get("array_gain_bytes")
        if not isinstance(lists, int | float) or not isinstance(arrays, int | float):
            continue
        names = [str(n) for n in _list(proof.get("attributes"))]
        batches = proof.get("batches")
        per_epoch = proof.get("batches_per_epoch")
        said = (
            f"each worker's private memory grew {lists / 2**20:,.1f} MiB reading {batches} "
            f"batches with {', '.join(names)} as Python lists, {arrays / 2**20:,.1f} MiB with "
            "them as numpy arrays"
        )
        if lists < MIN_GROWTH_BYTES or arrays > 0.5 * lists:
            return None, f"{said} (measured, {batches} batches): no copy-on-read worth a change"
        epoch = ""
        if isinstance(batches, int) and batches > 0 and isinstance(per_epoch, int | float):
            share = min(per_epoch / batches, 1e6)
            epoch = (
                f"; over an epoch of {per_epoch:,.0f} batches, up to "
                f"{lists * share / 2**20:,.0f} MiB a worker (estimated from it)"
            )
        first = names[0] if names else "items"
        return DoctorFinding(
            kind="worker-memory",
            title="DataLoader workers copy the dataset's Python lists as they read them",
            evidence=(said,),
            fix=(
                f"keep {', '.join(names)} in numpy arrays (self.{first} = "
                f"np.asarray({first})) or Arrow, not Python lists: reading a Python object "
                "writes its reference count, so each forked worker copies every page of "
                "the lists it reads (copy-on-read)"
            ),
            gain=f"{said} (measured){epoch}",
            gain_source="measured",
        ), ""
    return None, ""


def _times(value: object) -> list[float]:
    """A proof's list of seconds, its positive numbers only."""
    return [float(v) for v in _list(value) if isinstance(v, int | float) and v > 0]


def compose(
    *,
    startup: JsonObject,
    periods: Sequence[Period],
    summary: RunSummary | None,
    proofs: Sequence[JsonObject],
    loaders: Sequence[JsonObject],
    cpus: float | None,
    bundled: bool,
    stopped_at_step: int | None = None,
    framework: str | None = None,
) -> tuple[tuple[DoctorFinding, ...], tuple[str, ...]]:
    """Every finding, the verdict's own cause first, then by gain; and what was set
    aside (a cause its own proof did not confirm), one sentence each. ``framework``
    ``"transformers"`` (the Hugging Face Trainer ran) gives the loader's advice as the
    ``TrainingArguments`` to change."""
    found: list[DoctorFinding] = []
    aside: list[str] = []
    memory_note = ""
    if summary is not None:
        made, why = input_finding(
            summary, proofs, loaders, cpus=cpus, bundled=bundled, framework=framework
        )
        if made is not None:
            found.append(made)
        elif why:
            aside.append(f"input: {why}")
        validation = validation_finding(periods, summary, proofs, bundled=bundled)
        if validation is not None:
            found.append(validation)
        workers, why = worker_startup_finding(summary, proofs, framework=framework)
        if (
            workers is not None
            and validation is not None
            and validation.kind == "validation-worker-startup"
            and workers.gain_source != "measured"
        ):
            workers = None  # the validation loader's restarts: said once, by that finding
        if workers is not None:
            found.append(workers)
        elif why:
            aside.append(f"worker start-up: {why}")
        memory, why = memory_finding(proofs)
        if memory is not None:
            found.append(memory)
        elif why and not any(f.kind == "worker-memory" for f in summary.findings):
            aside.append(f"worker memory: {why}")
        elif why:
            # The run's own readings saw growth the short proof did not: the run's
            # finding stands, with the proof said beside it.
            memory_note = why
        # One calibration, one measured gain: where the input finding claims it, the
        # thread finding stays the monitor's (estimated), not a second copy of it.
        inputs = any(f.kind == "input-bound" for f in found)
        threads = None if inputs else thread_finding(summary, proofs)
        if threads is not None:
            found.append(threads)
    imports, why = startup_finding(startup, bundled=bundled)
    if imports is not None:
        found.append(imports)
    elif why:
        aside.append(f"start-up: {why}")
    if summary is not None:
        covered = {f.kind for f in found}
        if covered & {"validation-preprocessing", "validation-worker-startup"}:
            covered.add("validation-bound")
        if "startup-imports" in covered:
            covered.add("startup-bound")
        covered.add("input-bound")  # input_finding speaks for it, or set it aside
        covered.add("worker-startup")  # worker_startup_finding speaks for it
        if memory is not None:
            covered.add("worker-memory")  # measured: the monitor's estimate is not repeated
        if threads is not None:
            covered.add("thread-oversubscription")
        for finding in summary.findings:
            if finding.kind in covered:
                continue
            if finding.kind == "straggler-rank":
                found.append(straggler_finding(finding, summary))
                continue
            if finding.kind in ("rank-data-overlap", "epoch-order-repeats"):
                found.append(audit_finding(finding, summary))
                continue
            measured = finding.gain.startswith("measured")
            fix = finding.fix
            evidence = describe_evidence(finding.evidence)
            if finding.kind == "worker-memory" and memory_note:
                evidence.append(f"the doctor's shorter replay: {memory_note}")
            if finding.kind == "startup-bound":
                fix = _startup_bound_fix(startup, fix)
                if stopped_at_step:
                    evidence.append(
                        f"the doctor stopped this run after {stopped_at_step} steps: over a "
                        "whole run start-up weighs less"
                    )
            found.append(
                DoctorFinding(
                    kind=finding.kind,
                    title=finding.kind.replace("-", " "),
                    evidence=tuple(evidence),
                    fix=fix,
                    gain=finding.gain,
                    gain_source="measured" if measured else "estimated",
                    confidence=finding.confidence,
                    reasons=finding.reasons,
                )
            )
    return tuple(sorted(found, key=lambda f: _rank(f, summary))), tuple(aside)


def audit_finding(finding: Finding, summary: RunSummary) -> DoctorFinding:
    """The input audit's findings (:mod:`trainperf.monitoring.sample_audit`) in its own
    sentences: a title that names the fix, what the ranks' samples showed. Overlapping
    ranks waste ``wasted_share`` of their compute: an epoch on disjoint shards takes that
    much less time (estimated: nothing was re-run)."""
    audit = summary.sample_audit or {}
    said = next((x for x in objects(audit.get("findings")) if x.get("kind") == finding.kind), {})
    evidence = [str(line) for line in _list(said.get("evidence"))]
    wasted = finding.evidence.get("wasted_share", 0.0)
    return DoctorFinding(
        kind=finding.kind,
        title=str(said.get("title") or finding.kind.replace("-", " ")),
        evidence=tuple(evidence or describe_evidence(finding.evidence)),
        fix=finding.fix,
        gain=finding.gain,
        gain_source="estimated",
        speedup=1 / (1 - wasted) if 0 < wasted < 1 else None,
        confidence=finding.confidence,
        reasons=finding.reasons,
    )


def straggler_finding(finding: Finding, summary: RunSummary) -> DoctorFinding:
    """The monitor's ``straggler-rank`` in sentences: who arrives last at the gradient
    all-reduce, in how many steps, by how much data wait and forward pass, and the
    step time the others lose waiting (estimated: nothing here was re-run)."""
    e = finding.evidence
    rank = int(e.get("rank", 0))
    wait = e.get("wait_s", 0.0)
    rotating = e.get("rotating", 0.0) > 0
    step = summary.step_median_s
    title = (
        "a different rank keeps the others waiting at each step: slow batches"
        if rotating
        else f"rank {rank} keeps the other ranks waiting at every step"
    )
    evidence = [
        f"arrival at backward (data wait + forward): rank {rank} {e.get('own_s', 0) * 1e3:.1f} "
        f"ms, the other ranks {e.get('other_ranks_own_s', 0) * 1e3:.1f} ms (medians)",
        f"the slowest rank arrives later by {e.get('data_excess_s', 0) * 1e3:.1f} ms of data "
        f"wait and {e.get('forward_excess_s', 0) * 1e3:.1f} ms of forward pass a step",
        (
            "the slowest rank changes from step to step"
            if rotating
            else f"rank {rank} is the slowest in {e.get('slowest_share', 0):.0%} of the steps"
        ),
    ]
    speedup = step / (step - wait) if step and 0 < wait < step else None
    return DoctorFinding(
        kind=finding.kind,
        title=title,
        evidence=tuple(evidence),
        fix=finding.fix,
        gain=(
            f"about {speedup:.2f}x if no rank waited ({wait * 1e3:.1f} ms of a "
            f"{step * 1e3:.1f} ms step)"
            if speedup and step
            else finding.gain
        ),
        gain_source="estimated",
        speedup=speedup,
        confidence=finding.confidence,
        reasons=finding.reasons,
    )


# The findings that speak for each verdict.
_CAUSES = {
    "input-bound": ("input-bound",),
    "validation-bound": (
        "validation-preprocessing",
        "validation-worker-startup",
        "validation-bound",
    ),
    "startup-bound": ("startup-imports", "startup-bound"),
    "host-sync-bound": ("host-sync-bound",),
}


def _rank(finding: DoctorFinding, summary: RunSummary | None) -> tuple[int, float]:
    """The run's verdict's cause first, then the step's, then by gain; the step's first
    when only it is sure (a short run's start-up is a doubtful answer for the run)."""
    order = 2
    if summary is not None:
        run, step = 0, 1
        if summary.run.confidence != "high" and summary.step.confidence == "high":
            run, step = 1, 0
        if finding.kind in _CAUSES.get(summary.run.kind, ()):
            order = run
        elif finding.kind in _CAUSES.get(summary.step.kind, ()):
            order = step
    return order, -(finding.speedup or 1.0)


def _startup_bound_fix(startup: JsonObject, fix: str) -> str:
    """Start-up dominates, but the profile found nothing of the entry point's to defer:
    the time is what training itself needs loaded."""
    if not startup.get("lines") or startup.get("error"):
        return fix
    markers = startup.get("markers")
    first = markers.get("first_step") if isinstance(markers, dict) else None
    validated = markers.get("config_validated") if isinstance(markers, dict) else None
    when = (
        f" (its configuration is validated at {validated:.2f} s, the first step comes at "
        f"{first:.2f} s)"
        if isinstance(first, int | float) and isinstance(validated, int | float)
        else ""
    )
    return (
        f"nothing at the top of the entry point is worth deferring{when}: start-up is loading "
        "what training needs (torch, Lightning); it only dominates because the run is short, "
        "so train more steps per process rather than starting many short ones"
    )


def _exclusive(line: JsonObject) -> float:
    return _float(line, "exclusive_s") or 0.0


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []
