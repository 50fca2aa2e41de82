"""The rewrite --verify uses: chosen import statements become lazy, nothing else changes."""

from __future__ import annotations

import ast
import builtins
import sys
import textwrap

import pytest

from trainperf.startup import _defer

SOURCE = textwrap.dedent(
    """
    import colorsys
    import xml.dom.minidom
    import email.mime.text as emt
    from json import dumps as to_json, loads
    import wave
    try:
        import calendar
    except ImportError:
        calendar = None
    VALUE = 1
    """
).encode()


@pytest.fixture
def lazy_env():
    saved = {k: builtins.__dict__.get(k) for k in ("__trainperf_lazy__", "__trainperf_lazy_attr__")}
    meta = list(sys.meta_path)
    _defer.install([])
    yield
    sys.meta_path[:] = meta
    for key, value in saved.items():
        if value is None:
            builtins.__dict__.pop(key, None)
        else:
            builtins.__dict__[key] = value


def test_only_the_chosen_lines_change() -> None:
    tree = _defer.rewrite(SOURCE, "x.py", {2, 5})
    text = ast.unparse(tree)
    assert "__trainperf_lazy__('colorsys', 'colorsys')" in text
    assert "__trainperf_lazy_attr__('json', 'dumps', None)" in text
    assert "import xml.dom.minidom" in text  # line 3 untouched
    assert "import wave" in text


def test_statements_inside_try_are_rewritten_too() -> None:
    text = ast.unparse(_defer.rewrite(SOURCE, "x.py", {8}))
    assert "calendar = __trainperf_lazy__('calendar', 'calendar')" in text


def test_deferred_code_runs_and_imports_on_use(lazy_env) -> None:
    fresh = [m for m in ("colorsys", "wave") if m not in sys.modules]
    every = set(range(1, 12))
    namespace: dict[str, object] = {}
    exec(compile(_defer.rewrite(SOURCE, "x.py", every), "x.py", "exec"), namespace)
    for module in fresh:
        assert module not in sys.modules
    assert namespace["to_json"]({"a": 1}) == '{"a": 1}'
    assert namespace["xml"].dom.minidom.parseString("<b/>").documentElement.tagName == "b"
    assert namespace["emt"].MIMEText("hi").get_payload() == "hi"
    assert namespace["colorsys"].rgb_to_hls(0, 0, 0) == (0.0, 0.0, 0.0)


def test_a_lazy_attribute_can_be_a_base_class(lazy_env) -> None:
    source = b"from collections import OrderedDict\nclass Mine(OrderedDict):\n    pass\n"
    namespace: dict[str, object] = {}
    exec(compile(_defer.rewrite(source, "y.py", {1}), "y.py", "exec"), namespace)
    from collections import OrderedDict

    assert issubclass(namespace["Mine"], OrderedDict)
