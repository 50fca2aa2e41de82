"""Rewriting: the planned edits applied with LibCST (every other byte of the file kept),
the fix's comment on each changed line, the YAML edits, and each result checked to
compile or read back before it is offered."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from trainperf.errors import TrainperfError
from trainperf.fix.loader.calls import (
    _add_arguments,
    _assigns,
    _find,
    _is_threads,
    _lines,
    _positions,
    _walk,
)
from trainperf.fix.loader.values import COMMENT, FileEdit
from trainperf.fix.loader.yaml_keys import _check_yaml, _edit_yaml

if TYPE_CHECKING:
    from collections.abc import Sequence

    import libcst as cst

    from trainperf.fix.loader.calls import Located
    from trainperf.fix.loader.planner import _Edits
    from trainperf.fix.loader.values import Calibrated


def _rewrite(located: Located, calibrated: Calibrated, edits: _Edits) -> tuple[FileEdit, ...]:
    out = []
    comment = calibrated.comment()
    if edits.replace or edits.add or edits.before is not None:
        code = _comment_sites(_transform(located, edits), edits.comments, comment)
        try:
            compile(code, str(located.path), "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            raise TrainperfError(
                f"the rewritten {located.path} does not compile ({exc}); nothing was "
                "written: please report this with the file"
            ) from None
        if code != located.source:
            out.append(FileEdit(located.path, located.source, code))
    for path, changes in edits.yaml.items():
        before = path.read_text(encoding="utf-8")
        after = _edit_yaml(before, changes, comment)
        _check_yaml(path, after, changes)
        out.append(FileEdit(path, before, after))
    return tuple(out)


def _transform(located: Located, edits: _Edits) -> str:
    import libcst as cst

    config = located.module.config_for_parsing
    statement = located.site.statement

    class Apply(cst.CSTTransformer):
        def on_leave(self, original_node: cst.CSTNodeT, updated_node: cst.CSTNodeT) -> cst.CSTNodeT:
            result = super().on_leave(original_node, updated_node)
            code = edits.replace.get(id(original_node))
            if code is not None:
                return cst.parse_expression(code, config)  # type: ignore[return-value]  # an expression for an expression
            added = edits.add.get(id(original_node))
            if added and isinstance(result, cst.Call):
                return _append(result, [_keyword(k, v, config) for k, v in added])  # type: ignore[return-value]  # a call for a call
            return result  # type: ignore[return-value]  # nothing is removed or flattened

        def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
            return updated_node.with_changes(
                body=self.insert(original_node.body, updated_node.body)
            )

        def leave_IndentedBlock(
            self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
        ) -> cst.IndentedBlock:
            return updated_node.with_changes(
                body=self.insert(original_node.body, updated_node.body)
            )

        def insert(
            self, old: Sequence[cst.BaseStatement], new: Sequence[cst.BaseStatement]
        ) -> list[cst.BaseStatement]:
            out: list[cst.BaseStatement] = []
            for was, now in zip(old, new, strict=True):
                if (
                    was is statement
                    and edits.before is not None
                    and isinstance(now, cst.SimpleStatementLine)
                ):
                    # The comments and blank lines above the statement stay above both.
                    out.append(edits.before.with_changes(leading_lines=now.leading_lines))
                    now = now.with_changes(leading_lines=())
                out.append(now)
            return out

    return located.module.visit(Apply()).code


def _keyword(name: str, code: str, config: cst.PartialParserConfig) -> cst.Arg:
    import libcst as cst

    nothing = cst.SimpleWhitespace("")
    return cst.Arg(
        value=cst.parse_expression(code, config),
        keyword=cst.Name(name),
        equal=cst.AssignEqual(whitespace_before=nothing, whitespace_after=nothing),
    )


def _append(call: cst.Call, added: Sequence[cst.Arg]) -> cst.Call:
    """``call`` with ``added`` after its last argument, laid out as its arguments are:
    on one line, or one a line (a comment after the last argument stays on its line)."""
    import libcst as cst

    args = list(call.args)
    nothing = cst.SimpleWhitespace("")
    if not args:
        commas = [
            a.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
            for a in added
        ]
        return call.with_changes(args=[*commas[:-1], added[-1]])
    last = args[-1]
    leading = [call.whitespace_before_args] + [
        a.comma.whitespace_after for a in args[:-1] if isinstance(a.comma, cst.Comma)
    ]
    lines = [w for w in leading if isinstance(w, cst.ParenthesizedWhitespace)]
    trailing_comma = isinstance(last.comma, cst.Comma)
    closing = last.comma.whitespace_after if isinstance(last.comma, cst.Comma) else None
    closing = closing if closing is not None else last.whitespace_after_arg
    before_comma = last.comma.whitespace_before if isinstance(last.comma, cst.Comma) else nothing
    if not lines:  # one line: ", name=value" after the last argument
        between: cst.BaseParenthesizableWhitespace = cst.SimpleWhitespace(" ")
        head = last.with_changes(
            comma=cst.Comma(whitespace_before=before_comma, whitespace_after=between),
            whitespace_after_arg=nothing,
        )
        tail = added[-1].with_changes(
            comma=last.comma, whitespace_after_arg=last.whitespace_after_arg
        )
    else:
        indent = lines[-1]
        between = cst.ParenthesizedWhitespace(indent=indent.indent, last_line=indent.last_line)
        # The last argument's own line keeps its comment; the new ones go on their own.
        if isinstance(closing, cst.ParenthesizedWhitespace):
            after_last: cst.BaseParenthesizableWhitespace = closing.with_changes(
                indent=indent.indent, last_line=indent.last_line
            )
            end: cst.BaseParenthesizableWhitespace = cst.ParenthesizedWhitespace(
                indent=closing.indent, last_line=closing.last_line
            )
        else:
            after_last, end = between, closing
        head = last.with_changes(
            comma=cst.Comma(whitespace_before=before_comma, whitespace_after=after_last),
            whitespace_after_arg=nothing,
        )
        if trailing_comma:
            tail = added[-1].with_changes(
                comma=cst.Comma(whitespace_after=end), whitespace_after_arg=nothing
            )
        else:
            tail = added[-1].with_changes(whitespace_after_arg=end)
    middle = [a.with_changes(comma=cst.Comma(whitespace_after=between)) for a in added[:-1]]
    return call.with_changes(args=[*args[:-1], head, *middle, tail])


def _comment_sites(code: str, sites: Sequence[tuple[str, int]], comment: str) -> str:
    """``comment`` at the end of each site's first line in ``code`` (the rewritten
    file); a site is (kind, ordinal): the n-th loader call, ``add_argument`` call,
    assignment or ``torch.set_num_threads`` call."""
    if not sites:
        return code
    import libcst as cst

    module = cst.parse_module(code)
    positions = _positions(module)
    nodes: dict[str, list[cst.CSTNode]] = {
        "loader": [s.call for s in _find(module)],
        "add_argument": list(_add_arguments(module)),
        "assign": list(_assigns(module)),
        "threads": [n for n in _walk(module) if isinstance(n, cst.Call) and _is_threads(n)],
    }
    lines = {positions[nodes[kind][ordinal]].start.line for kind, ordinal in sites}
    for line in sorted(lines, reverse=True):
        code = _comment_line(code, line, comment)
    return code


def _comment_line(code: str, line: int, comment: str) -> str:
    """``comment`` at the end of ``line`` (1-based): replacing an earlier comment of the
    fix, else above the line when it has a comment of its own or ends inside a string
    or after a backslash."""
    import tokenize

    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return code
    lines = _lines(code)
    text = lines[line - 1]
    body = text.rstrip("\r\n")
    eol = text[len(body) :]  # none on a last line without a newline
    comments = [t for t in tokens if t.type == tokenize.COMMENT and t.start[0] == line]
    spanning = [t for t in tokens if t.start[0] < t.end[0] and t.type != tokenize.NEWLINE]
    if comments and COMMENT in comments[-1].string:
        lines[line - 1] = body[: comments[-1].start[1]] + comment + eol
    elif (
        comments
        or body.rstrip().endswith("\\")
        or any(t.start[0] <= line < t.end[0] for t in spanning)
    ):
        if any(t.start[0] < line <= t.end[0] for t in spanning):
            return code  # the line starts inside a string: no room for a comment
        indent = body[: len(body) - len(body.lstrip())]
        lines.insert(line - 1, indent + comment + (eol or "\n"))
    else:
        lines[line - 1] = body.rstrip() + "  " + comment + eol
    return "".join(lines)
