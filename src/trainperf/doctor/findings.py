"""From measurements to findings: pure functions over plain records.

The doctor names every cause it has evidence for, not only the monitor's primary
verdict, and says where each gain comes from:

* ``startup-imports``: the entry point's own import lines whose exclusive cost is at
  least ``HEAVY_LINE_S``, once deferring them together saves ``STARTUP_FINDING_S``;
  the saving is measured when the doctor re-timed the entry point with them deferred.
* ``input-bound``: the median training step waits ``INPUT_SHARE`` of its time for
  data. Measured in the command: the calibration's best settings against the
  loader's own (side by side), and a batch built against one read from the cache.
  More workers are advised only when they measured at least ``WORKER_GAIN`` faster.
* ``validation-preprocessing``: validation takes ``VALIDATION_SHARE`` of the run and
  its loader at least ``INPUT_SHARE`` of validation; cached against uncached batches
  measured, the run's saving estimated from that.
* the monitor's other findings, as it states them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainperf._json import objects
from trainperf.doctor.child import VALIDATION_SHARE, validation_time
from trainperf.doctor.report import DoctorFinding, GainSource
from trainperf.monitoring.analyze import INPUT_SHARE, MIN_STEPS, step_data_share

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trainperf._json import JsonObject
    from trainperf.monitoring.analyze import RunSummary
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


def _percent(factor: float) -> str:
    return f"+{factor - 1:.0%}" if factor < 2 else f"{factor:.1f}x"


def _float(data: JsonObject, key: str) -> float | None:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _proofs(proofs: Sequence[JsonObject], kind: str, role: str) -> list[JsonObject]:
    return [p for p in proofs if p.get("kind") == kind and p.get("role") == role]


def startup_finding(startup: JsonObject, *, bundled: bool) -> DoctorFinding | None:
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
        return None
    entry = str(startup.get("entry", "the entry point"))
    evidence = [
        f"{line.get('where')} `{line.get('statement')}`: {_exclusive(line):.2f} s alone, "
        f"{_float(line, 'cumulative_s') or 0.0:.2f} s with what it imports first"
        for line in lines[:6]
    ]
    if groups:
        group = groups[0]
        packages = ", ".join(str(p) for p in _list(group.get("packages"))[:6])
        evidence.append(
            f"deferred together, {len(_list(group.get('starts')))} statements drop "
            f"{packages or 'their packages'}: {_float(group, 'saving_s') or 0.0:.2f} s predicted"
        )
    markers = startup.get("markers")
    if isinstance(markers, dict):
        said = [
            f"{name.replace('_', ' ')} at {value:.2f} s"
            for name, value in markers.items()
            if isinstance(value, int | float) and name != "interpreter_ready"
        ]
        if said:
            evidence.append("after the process started: " + ", ".join(said))
    verified = startup.get("verified")
    source: GainSource = "estimated"
    measured = _float(verified, "measured_s") if isinstance(verified, dict) else None
    if measured is not None and measured >= CONFIRMED_SHARE * predicted:
        gain = (
            f"{measured:.2f} s less import time before the configuration is read (measured: "
            f"{entry} re-timed with those lines deferred; predicted {predicted:.2f} s)"
        )
        source = "measured"
    elif measured is not None:
        gain = (
            f"not confirmed: re-timed with those lines deferred, {entry} saved "
            f"{measured:.2f} s against {predicted:.2f} s predicted"
        )
    else:
        gain = f"about {predicted:.2f} s less import time before the configuration is read"
        if startup.get("verify_error"):
            evidence.append(f"re-timing with them deferred failed: {startup['verify_error']}")
    fix = (
        "import these where they are used, after the configuration is validated "
        "(function-level imports or trainperf.lazy_import), so a bad setting fails at once"
    )
    if bundled:
        fix += "; python -m trainperf.examples.ocr.train is this entry point with them deferred"
    return DoctorFinding(
        kind="startup-imports",
        title=f"heavy imports at the top of {entry}",
        evidence=tuple(evidence),
        fix=fix,
        gain=gain,
        gain_source=source,
    )


def input_finding(
    summary: RunSummary,
    proofs: Sequence[JsonObject],
    loaders: Sequence[JsonObject],
    *,
    data_share: float,
    cpus: float | None,
    bundled: bool,
) -> DoctorFinding | None:
    if summary.steps < MIN_STEPS or data_share < INPUT_SHARE:
        return None
    step_s = summary.step_median_s or 0.0
    train = next((d for d in loaders if d.get("role") == "training"), {})
    workers = train.get("num_workers", 0)
    evidence = [
        f"the median training step waits {data_share:.0%} of its {_ms(step_s)} for the DataLoader",
        f"training loader: {train.get('dataset', '?')}, batch_size={train.get('batch_size')}, "
        f"num_workers={workers}",
    ]
    replay = next((f for f in summary.findings if f.kind == "input-bound"), None)
    replay_s = replay.evidence.get("replay_step_s") if replay is not None else None
    if replay_s:
        evidence.append(
            f"the same step with its batches already in memory: {_ms(replay_s)} (replayed)"
        )
    fixes: list[str] = []
    gains: list[tuple[float, str, bool]] = []  # (factor, text, measured)
    overrides: list[str] = []
    if replay_s and step_s:
        gains.append(
            (
                step_s / replay_s,
                f"if input were free: {_percent(step_s / replay_s)} samples/s (measured by "
                "replaying batches already in memory)",
                True,
            )
        )
    for proof in _proofs(proofs, "calibration", "training"):
        if "error" in proof or "skipped" in proof:
            evidence.append(f"calibration not run: {proof.get('error') or proof.get('skipped')}")
            continue
        text, measured, chosen = _calibration_text(proof)
        evidence.append(text)
        if measured is None:
            evidence.append("the loader's own settings could not be timed: no gain to compare")
        elif measured >= WORKER_GAIN and chosen is not None:
            fixes.append(f"set {chosen} (calibrated)")
            gains.append(
                (measured, f"calibrated settings: {_percent(measured)} samples/s (measured)", True)
            )
            overrides.append(_workers_override(proof))
        else:
            on = f" on {cpus:g} CPUs" if cpus else ""
            fixes.append(
                f"keep num_workers={workers}: other loader settings measured no faster here{on}"
            )
            gains.append((measured, f"loader settings: {measured:.2f}x (measured)", True))
    for proof in _proofs(proofs, "cache", "training"):
        cached = _cache_text(proof, evidence)
        if cached is None:
            continue
        built_s, read_s = cached
        wait_s = data_share * step_s
        new_step = step_s - min(wait_s, max(built_s - read_s, 0.0))
        if replay_s:
            new_step = max(new_step, replay_s)
        factor = step_s / new_step if new_step > 0 else 1.0
        if factor >= CACHE_WORTH:
            fixes.append(
                "cache the deterministic per-sample work (trainperf.cache.CachedDataset): "
                f"a batch built in {_ms(built_s)} is read back in {_ms(read_s)}"
            )
            gains.append(
                (
                    factor,
                    f"cached batches: about {_percent(factor)} samples/s once the cache is "
                    "built (estimated from the measured batch times)",
                    False,
                )
            )
            overrides.append("data.cache=true")
    if not fixes:
        fixes.append(
            "more DataLoader workers or cheaper per-sample work; trainperf calibrate measures "
            "the loader settings"
        )
    ranked = sorted(gains, key=lambda g: g[0], reverse=True)
    gain = "; ".join(text for _, text, _ in ranked)
    if not gain:
        gain = f"if input were free: {_percent(1 / (1 - min(data_share, 0.95)))} samples/s"
    source: GainSource = "measured" if any(m for _, _, m in gains) else "estimated"
    advised = [f for f, _, _ in gains if f >= WORKER_GAIN]
    return DoctorFinding(
        kind="input-bound",
        title=f"training waits for its DataLoader (num_workers={workers})",
        evidence=tuple(evidence),
        fix="; ".join(fixes),
        gain=gain,
        gain_source=source,
        speedup=max(advised, default=None),
        overrides=tuple(overrides) if bundled else (),
    )


def _workers_override(proof: JsonObject) -> str:
    calibration = proof.get("calibration")
    chosen = calibration.get("chosen") if isinstance(calibration, dict) else None
    workers = chosen.get("num_workers") if isinstance(chosen, dict) else None
    return f"data.num_workers={workers}"


def _calibration_text(proof: JsonObject) -> tuple[str, float | None, str | None]:
    calibration = proof.get("calibration")
    if not isinstance(calibration, dict):
        return "calibration gave no result", None, None
    chosen = calibration.get("chosen")
    described = (
        " ".join(
            f"{k}={v}"
            for k, v in chosen.items()
            if v is not None and v is not False and k != "batch_size"
        )
        if isinstance(chosen, dict)
        else "?"
    )
    candidates = objects(calibration.get("candidates"))
    measured = [c for c in candidates if isinstance(c.get("samples_per_s"), int | float)]
    base = _float(proof, "baseline_samples_per_s")
    best = _float(proof, "chosen_samples_per_s")
    gain = _float(proof, "gain")
    mode = calibration.get("mode")
    text = (
        f"calibration ({mode}, {len(measured)} settings measured in "
        f"{_float(calibration, 'elapsed_s') or 0.0:.1f} s): the loader's own settings "
        f"{base or 0.0:.1f} samples/s, chosen {described} {best or 0.0:.1f} samples/s"
    )
    return text, gain, described


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
    if not proof.get("deterministic"):
        evidence.append(
            f"a {role} batch is built in {_ms(built_s)}, but not the same twice: "
            f"{proof.get('reason', 'not deterministic')}"
        )
        return None
    read_s = _float(proof, "cached_s") or 0.0
    evidence.append(
        f"a {role} batch ({proof.get('samples_per_batch')} samples) is built in "
        f"{_ms(built_s)}, the same every time, and read from a trainperf cache in "
        f"{_ms(read_s)} (measured on {proof.get('batches')} batches)"
    )
    if hot:
        evidence.append(f"where building a {role} batch spends its time: " + ", ".join(hot))
    return built_s, read_s


def validation_finding(
    periods: Sequence[Period],
    summary: RunSummary,
    proofs: Sequence[JsonObject],
    *,
    bundled: bool,
) -> DoctorFinding | None:
    val_s, val_data = validation_time(periods)
    share = summary.shares.get("validation", 0.0)
    if not val_s or share < VALIDATION_SHARE or val_data / val_s < INPUT_SHARE:
        return None
    total = summary.train_s + summary.val_s + summary.startup_s
    evidence = [
        f"validation takes {share:.0%} of the run ({val_s:.1f} s), {val_data / val_s:.0%} "
        f"of it waiting for its DataLoader"
    ]
    fix = "validate less often or on fewer batches"
    gain = f"if validation's loading were free: {val_data:.1f} s of {val_s:.1f} s (estimated)"
    source: GainSource = "estimated"
    speedup = total / (total - val_data) if total > val_data else None
    overrides: list[str] = []
    for proof in _proofs(proofs, "cache", "validation"):
        cached = _cache_text(proof, evidence)
        if cached is None:
            continue
        built_s, read_s = cached
        ratio = built_s / read_s if read_s > 0 else float("inf")
        saved = val_data * (1 - 1 / ratio) if ratio > 1 else 0.0
        fix = (
            "cache validation's deterministic preprocessing (trainperf.cache.CachedDataset): "
            "build it once, read it every epoch"
        )
        gain = (
            f"validation batches {_ms(built_s)} -> {_ms(read_s)} ({ratio:.1f}x, measured); "
            f"about {saved:.1f} s of this run's {val_s:.1f} s of validation saved (estimated "
            f"from it)"
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
    )


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
) -> tuple[DoctorFinding, ...]:
    """Every finding, those with the larger gain first; start-up's last but one."""
    found: list[DoctorFinding] = []
    if summary is not None:
        for made in (
            input_finding(
                summary,
                proofs,
                loaders,
                data_share=step_data_share(periods),
                cpus=cpus,
                bundled=bundled,
            ),
            validation_finding(periods, summary, proofs, bundled=bundled),
        ):
            if made is not None:
                found.append(made)
    found.sort(key=lambda f: f.speedup or 0.0, reverse=True)
    imports = startup_finding(startup, bundled=bundled)
    if imports is not None:
        found.append(imports)
    if summary is not None:
        covered = {f.kind for f in found}
        if "validation-preprocessing" in covered:
            covered.add("validation-bound")
        if "startup-imports" in covered:
            covered.add("startup-bound")
        for finding in summary.findings:
            if finding.kind in covered:
                continue
            measured = finding.gain.startswith("measured")
            fix = finding.fix
            evidence = [f"{k}={v:.3g}" for k, v in finding.evidence.items()]
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
                )
            )
    return tuple(found)


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
