from __future__ import annotations

from pathlib import Path

import pytest

from trainperf.errors import UsageError
from trainperf.settings import Settings


def test_defaults(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.home == tmp_path / ".trainperf"
    assert settings.cpus is None
    assert settings.no_color is False


def test_values() -> None:
    settings = Settings.from_env(
        {"TRAINPERF_HOME": "/srv/tp", "TRAINPERF_CPUS": " 2.5 ", "NO_COLOR": "1"}
    )
    assert settings.home == Path("/srv/tp")
    assert settings.cpus == 2.5
    assert settings.no_color is True


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "nan", "inf"])
def test_bad_cpus_names_variable_value_and_fix(raw) -> None:
    with pytest.raises(UsageError, match=rf"TRAINPERF_CPUS must be a positive .* got '{raw}'"):
        Settings.from_env({"TRAINPERF_CPUS": raw})
