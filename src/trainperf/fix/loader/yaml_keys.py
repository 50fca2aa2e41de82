"""The Hydra/OmegaConf YAML keys near the target that may set a loader setting, and their
edit: the value replaced on its line, every other byte kept, the file read back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainperf.errors import TrainperfError
from trainperf.fix.loader.calls import _lines
from trainperf.fix.loader.values import COMMENT

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from trainperf._json import JsonScalar
    from trainperf.fix.loader.values import Scalar


_CONF_DIRS = ("conf", "config", "configs")
_PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")
_MAX_YAML_FILES = 500
_LEVELS_UP = 4  # folders above the target searched for a conf/ folder
# A `key: value  # comment` line of a block mapping.
_YAML_LINE = re.compile(
    r"(?P<indent> *)(?P<key>[A-Za-z_][\w-]*)[ \t]*:(?P<gap>[ \t]*)"
    r"(?P<value>(?:\"[^\"\r\n]*\"|'[^'\r\n]*'|[^#\r\n])*?)"
    r"(?P<comment>[ \t]*#[^\r\n]*)?(?P<trail>[ \t]*)(?P<eol>\r\n|\r|\n)?\Z"
)
_YAML_SCALAR = re.compile(r"-?\d+|true|false|True|False|null|~|\"\w+\"|'\w+'|\w+")
_DEFAULTS_ENTRY = re.compile(
    r"\s*-\s*(?:override\s+)?/?(?P<group>[\w/.-]+?)(?:@[\w.]+)?\s*:\s*(?P<option>[\w.-]+)\s*(?:#.*)?"
)
_PACKAGE = re.compile(r"#\s*@package\s+(?P<package>\S+)")


@dataclass(frozen=True)
class _YamlKey:
    file: Path
    line: int  # 1-based
    path: str  # the full dotted key, the file's Hydra package included
    inner: tuple[str, ...]  # the key within the file
    value: str  # as written
    selected: bool  # loaded by default: a primary config or a group's default option
    selector: str  # "group=option", "" for a primary config


@dataclass(frozen=True)
class _YamlEdit:
    key: _YamlKey
    value: str


def _yaml_keys(target: Path) -> list[_YamlKey]:
    """The scalar keys of the YAML configurations near ``target``: ``conf/``,
    ``config/`` or ``configs/`` folders beside it or in the folders above it up to the
    project's root, and YAML files beside it."""
    start = target.resolve().parent
    roots: list[tuple[Path, bool]] = [(start, False)]
    for folder in (start, *start.parents)[:_LEVELS_UP]:
        roots += [(folder / name, True) for name in _CONF_DIRS if (folder / name).is_dir()]
        if any((folder / marker).exists() for marker in _PROJECT_MARKERS):
            break
    keys: list[_YamlKey] = []
    for root, deep in dict.fromkeys(roots):
        files = sorted(
            p
            for pattern in ("*.yaml", "*.yml")
            for p in (root.rglob(pattern) if deep else root.glob(pattern))
        )[:_MAX_YAML_FILES]
        texts = {}
        for path in files:
            try:
                texts[path] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
        defaults = {
            (m["group"], m["option"])
            for path, text in texts.items()
            if path.parent == root
            for m in map(_DEFAULTS_ENTRY.fullmatch, _defaults_lines(text))
            if m is not None
        }
        for path, text in texts.items():
            group = "/".join(path.relative_to(root).parts[:-1])
            package = _package(text, group)
            selected = not group or (group, path.stem) in defaults
            for line, inner, value in _yaml_scalars(text):
                keys.append(
                    _YamlKey(
                        path,
                        line,
                        ".".join(p for p in (package, *inner) if p),
                        tuple(inner),
                        value,
                        selected,
                        f"{group}={path.stem}" if group else "",
                    )
                )
    return keys


def _defaults_lines(text: str) -> list[str]:
    """The entries of a Hydra ``defaults:`` list at the top of a file."""
    out: list[str] = []
    inside = False
    for line in _lines(text):
        body = line.rstrip("\r\n")
        if body.startswith("defaults:"):
            inside = True
        elif inside and body.strip().startswith("-"):
            out.append(body)
        elif inside and body.strip() and not body.lstrip().startswith("#") and body[0] != " ":
            inside = False
    return out


def _package(text: str, group: str) -> str:
    """The Hydra package of a config file: its ``# @package`` header, else its group."""
    own = group.replace("/", ".")
    for line in _lines(text):
        if not line.strip():
            continue
        if not line.lstrip().startswith("#"):
            break
        found = _PACKAGE.match(line.strip())
        if found is not None:
            package = found["package"]
            if package == "_global_":
                return ""
            return package.replace("_group_", own)
    return own


def _yaml_scalars(text: str) -> Iterator[tuple[int, list[str], str]]:
    """(line, key path, value) of each ``key: scalar`` line of a block mapping; list
    items, block scalars and flow collections are passed over."""
    stack: list[tuple[int, str]] = []
    skip: int | None = None  # lines indented deeper than this belong to what is passed over
    for number, line in enumerate(_lines(text), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if skip is not None and indent > skip:
            continue
        skip = None
        if stripped.startswith(("---", "...")):
            stack = []
            continue
        found = _YAML_LINE.match(line)
        if stripped.startswith("-") or found is None:
            skip = indent
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key, value = found["key"], found["value"]
        if not value:
            stack.append((indent, key))
        elif not found["gap"] or value[0] in "|>{[&*!":
            skip = indent
        else:
            yield number, [k for _, k in stack] + [key], value


def _edit_yaml(text: str, edits: Sequence[_YamlEdit], comment: str) -> str:
    """``text`` with each edit's value on its line, the line's comment kept (or the fix's
    comment added); every other byte as it was."""
    lines = _lines(text)
    for edit in edits:
        line = lines[edit.key.line - 1]
        found = _YAML_LINE.match(line)
        assert found is not None  # the line was read as this key
        theirs = found["comment"] or ""
        if not theirs:
            after = f"  {comment}"
        elif COMMENT in theirs:
            after = theirs[: len(theirs) - len(theirs.lstrip())] + comment
        else:
            after = theirs
        lines[edit.key.line - 1] = (
            line[: found.start("value")]
            + edit.value
            + after
            + found["trail"]
            + (found["eol"] or "")
        )
    return "".join(lines)


def _check_yaml(path: Path, after: str, edits: Sequence[_YamlEdit]) -> None:
    import yaml  # type: ignore[import-untyped]  # PyYAML ships no types; a libcst dependency

    try:
        data = yaml.safe_load(after)
        for edit in edits:
            node = data
            for part in edit.key.inner:
                node = node[part]
            if node != yaml.safe_load(edit.value):
                raise TrainperfError(
                    f"the edit of {path}:{edit.key.line} reads back as {node!r}, not "
                    f"{edit.value}; nothing was written: please report this"
                )
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        raise TrainperfError(
            f"the edited {path} does not read back as YAML ({exc}); nothing was written: "
            "please report this"
        ) from None


def _suffix(path: Sequence[str], parts: Sequence[str]) -> int:
    """How many trailing components two dotted keys share."""
    count = 0
    while count < min(len(path), len(parts)) and path[-1 - count] == parts[-1 - count]:
        count += 1
    return count


def _yml(value: JsonScalar) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _from_yml(text: str) -> Scalar:
    if text in ("null", "~"):
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text.strip("\"'")
