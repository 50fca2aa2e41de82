"""``trainperf lint-imports PATH ...``: heavy module-level imports, found without running."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trainperf.cli import EXIT_FINDING, EXIT_OK, Command
from trainperf.cli._render import emit_json
from trainperf.errors import UsageError

if TYPE_CHECKING:
    import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="entry-point scripts or folders")
    parser.add_argument(
        "--threshold",
        type=float,
        metavar="SECONDS",
        help="a package is heavy when importing it alone costs this much (default 0.1, or "
        "[tool.trainperf.lint-imports] threshold in pyproject.toml)",
    )
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="PACKAGE",
        help="never flag this package (plugins, registrations); repeatable",
    )


def _project_config(start: Path) -> dict[str, object]:
    import tomllib

    from trainperf.startup.probe import project_root

    pyproject = project_root(start) / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {pyproject}: {exc}; fix the file") from None
    section = data.get("tool", {}).get("trainperf", {}).get("lint-imports", {})
    return section if isinstance(section, dict) else {}


def run(args: argparse.Namespace) -> int:
    from trainperf.fingerprint import environment_fingerprint
    from trainperf.settings import Settings
    from trainperf.startup.costs import PackageCostStore
    from trainperf.startup.lint import DEFAULT_THRESHOLD_S, lint_imports

    config = _project_config(Path.cwd().resolve())
    threshold = args.threshold
    if threshold is None:
        value = config.get("threshold", DEFAULT_THRESHOLD_S)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(
                f"[tool.trainperf.lint-imports] threshold must be a number of seconds, "
                f"got {value!r}"
            )
        threshold = float(value)
    allowed = config.get("allow", [])
    if not isinstance(allowed, list):
        raise UsageError(f"[tool.trainperf.lint-imports] allow must be a list, got {allowed!r}")
    store = PackageCostStore(
        Settings.from_env().home() / "import_costs.json", environment_fingerprint().digest
    )
    result = lint_imports(
        [Path(p) for p in args.paths],
        cost_of=store.get,
        threshold_s=threshold,
        allow=[*map(str, allowed), *args.allow],
    )
    if args.json:
        emit_json(result.to_json())
    else:
        for finding in result.findings:
            via = " -> ".join(finding.chain)
            print(
                f"{finding.file}:{finding.line}: import of {finding.module} costs "
                f"{finding.cost_s:.2f} s at start-up; {finding.suggestion}  [{via}]"
            )
        for note in result.notes:
            print(f"note: {note}")
        if not result.findings:
            print(f"no deferrable import above {threshold:g} s")
    return EXIT_FINDING if result.findings else EXIT_OK


COMMAND = Command(configure, run)
