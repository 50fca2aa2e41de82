from __future__ import annotations

from pathlib import Path

import pytest

from trainperf.errors import UsageError
from trainperf.settings import Settings


def test_defaults(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.home() == tmp_path / ".trainperf"
    assert settings.cpus is None
    assert settings.no_color is False


def test_values() -> None:
    settings = Settings.from_env(
        {"TRAINPERF_HOME": "/srv/tp", "TRAINPERF_CPUS": " 2.5 ", "NO_COLOR": "1"}
    )
    assert settings.home() == Path("/srv/tp")
    assert settings.cpus == 2.5
    assert settings.no_color is True


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "nan", "inf"])
def test_bad_cpus_names_variable_value_and_fix(raw) -> None:
    with pytest.raises(UsageError, match=rf"TRAINPERF_CPUS must be a positive .* got '{raw}'"):
        Settings.from_env({"TRAINPERF_CPUS": raw})


def test_home_expands_the_user_folder() -> None:
    assert Settings.from_env({"TRAINPERF_HOME": "~/tp"}).home() == Path.home() / "tp"


def test_a_bad_home_only_fails_where_the_home_is_used() -> None:
    settings = Settings.from_env({"TRAINPERF_HOME": "~no-such-user-here/tp"})
    with pytest.raises(UsageError, match="TRAINPERF_HOME='~no-such-user-here/tp' cannot be used"):
        settings.home()


def test_a_deleted_working_folder_is_a_usage_error(tmp_path, monkeypatch) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    with pytest.raises(UsageError, match="working folder is gone"):
        Settings.from_env({}).home()


def test_validated_at_construction_too() -> None:
    with pytest.raises(UsageError, match="TRAINPERF_CPUS must be a positive number"):
        Settings(cpus=-3.0)
