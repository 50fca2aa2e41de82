from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainperf.kvlog import format_kv, log_kv, parse_kv


def test_formats_each_kind_of_value() -> None:
    line = format_kv(
        "dataloader_config",
        {
            "num_workers": 4,
            "pin": False,
            "prefetch": None,
            "rate": 1.5,
            "whole": 2.0,
            "path": "/data/a b",
            "quote": 'say "hi"',
        },
    )
    assert line == (
        "dataloader_config num_workers=4 pin=false prefetch=none rate=1.5 whole=2 "
        'path="/data/a b" quote="say \\"hi\\""'
    )


@given(
    st.dictionaries(
        st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True),
        st.text(max_size=20),
        max_size=5,
    )
)
def test_parse_inverts_format_for_strings(fields) -> None:
    line = format_kv("event", fields)
    assert "\n" not in line
    assert parse_kv(line) == ("event", fields)


def test_strings_that_look_like_none_or_booleans_are_quoted() -> None:
    line = format_kv("e", {"a": "none", "b": None, "c": "true", "d": True})
    assert line == 'e a="none" b=none c="true" d=true'


def test_whole_floats_print_as_integers() -> None:
    assert format_kv("e", {"big": 1e6, "small": 0.25, "nan": float("nan")}) == (
        "e big=1000000 small=0.25 nan=nan"
    )


@pytest.mark.parametrize("line", ['e a="open', "e novalue", 'e a="x\\'])
def test_parse_rejects_malformed_lines(line) -> None:
    with pytest.raises(ValueError, match="not a key=value log line"):
        parse_kv(line)


@pytest.mark.parametrize("event", ["", "two words"])
def test_event_must_be_one_word(event) -> None:
    with pytest.raises(ValueError, match="event must be one non-empty word"):
        format_kv(event, {})


def test_field_names_must_be_identifiers() -> None:
    with pytest.raises(ValueError, match="'a b'"):
        format_kv("e", {"a b": 1})


def test_log_kv_skips_formatting_when_disabled(caplog) -> None:
    logger = logging.getLogger("trainperf.test")
    with caplog.at_level(logging.WARNING, logger="trainperf.test"):
        log_kv(logger, "quiet", {"x": 1})
        log_kv(logger, "loud", {"x": 2}, level=logging.WARNING)
    assert [r.getMessage() for r in caplog.records] == ["loud x=2"]
