"""Unit tests for ptpd_calibration.monitoring.settings (environment, .env, overrides, errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptpd_calibration.monitoring.settings import (
    MonitoringSettings,
    SettingsError,
    default_store_dir,
    get_settings,
    load_settings,
)


@pytest.fixture
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a folder without a .env file, so only the environment counts."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.mark.usefixtures("empty_cwd")
def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PTPD_MONITORING_STORE_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))

    settings = load_settings()

    assert settings.MAX_HISTORY == 10_000
    assert settings.CPU_THRESHOLD == 80.0
    assert settings.MEMORY_THRESHOLD == 85.0
    assert settings.DISK_THRESHOLD == 90.0
    assert settings.CACHE_SIZE == 1000
    assert settings.CACHE_TTL == 3600.0
    assert settings.CACHE_BACKEND == "memory"
    assert tmp_path / "xdg" / "ptpd-monitor" == settings.STORE_DIR
    assert settings.STORE_ENABLED is True
    assert settings.STORE_SIZE_LIMIT_MB == 1024.0
    assert settings.RETENTION_DAYS == 30.0
    assert settings.FLUSH_INTERVAL_S == 1.0
    assert settings.SAMPLE_INTERVAL_S == 2.0
    assert Path("/") == settings.DISK_PATH


def test_conftest_keeps_tests_off_the_real_store(isolated_monitoring_env: Path) -> None:
    real = Path.home() / ".local" / "share" / "ptpd-monitor"

    assert isolated_monitoring_env == load_settings().STORE_DIR
    assert isolated_monitoring_env == get_settings().STORE_DIR
    assert default_store_dir() != real
    assert default_store_dir().parent.parent == isolated_monitoring_env.parent


def test_store_dir_default_under_xdg_data_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_store_dir() == tmp_path / "data" / "ptpd-monitor"

    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_store_dir() == Path.home() / ".local" / "share" / "ptpd-monitor"

    monkeypatch.setenv("XDG_DATA_HOME", "")  # empty means unset, per the XDG spec
    assert default_store_dir() == Path.home() / ".local" / "share" / "ptpd-monitor"


@pytest.mark.usefixtures("empty_cwd")
def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "MAX_HISTORY": "5000",
        "CPU_THRESHOLD": "75.0",
        "MEMORY_THRESHOLD": "85.5",
        "DISK_THRESHOLD": "99",
        "CACHE_SIZE": "2000",
        "CACHE_TTL": "1800",
        "CACHE_BACKEND": "disk",
        "STORE_DIR": str(tmp_path / "elsewhere"),
        "STORE_ENABLED": "false",
        "STORE_SIZE_LIMIT_MB": "64",
        "RETENTION_DAYS": "0.5",
        "FLUSH_INTERVAL_S": "0.25",
        "SAMPLE_INTERVAL_S": "10",
        "DISK_PATH": str(tmp_path),
    }
    for name, value in env.items():
        monkeypatch.setenv(f"PTPD_MONITORING_{name}", value)

    settings = load_settings()

    assert settings.MAX_HISTORY == 5000
    assert settings.CPU_THRESHOLD == 75.0
    assert settings.MEMORY_THRESHOLD == 85.5
    assert settings.DISK_THRESHOLD == 99.0
    assert settings.CACHE_SIZE == 2000
    assert settings.CACHE_TTL == 1800.0
    assert settings.CACHE_BACKEND == "disk"
    assert tmp_path / "elsewhere" == settings.STORE_DIR
    assert settings.STORE_ENABLED is False
    assert settings.STORE_SIZE_LIMIT_MB == 64.0
    assert settings.RETENTION_DAYS == 0.5
    assert settings.FLUSH_INTERVAL_S == 0.25
    assert settings.SAMPLE_INTERVAL_S == 10.0
    assert tmp_path == settings.DISK_PATH


@pytest.mark.usefixtures("empty_cwd")
def test_variable_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ptpd_monitoring_max_history", "42")
    assert load_settings().MAX_HISTORY == 42


@pytest.mark.usefixtures("empty_cwd")
def test_paths_expand_the_home_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTPD_MONITORING_STORE_DIR", "~/ptpd-store")
    monkeypatch.setenv("PTPD_MONITORING_DISK_PATH", "~")

    settings = load_settings()

    assert Path.home() / "ptpd-store" == settings.STORE_DIR
    assert Path.home() == settings.DISK_PATH


def test_dotenv_in_the_working_folder_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(
        "PTPD_MONITORING_MAX_HISTORY=123\n"
        "PTPD_MONITORING_CACHE_BACKEND=disk\n"
        "UNRELATED_SETTING=whatever\n"
        "PTPD_MONITORING_NOT_A_FIELD=1\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)

    settings = load_settings()

    assert settings.MAX_HISTORY == 123
    assert settings.CACHE_BACKEND == "disk"
    # the environment wins over .env
    monkeypatch.setenv("PTPD_MONITORING_MAX_HISTORY", "7")
    assert load_settings().MAX_HISTORY == 7


def test_bad_value_in_dotenv_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("PTPD_MONITORING_DISK_THRESHOLD=lots\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    with pytest.raises(SettingsError, match="PTPD_MONITORING_DISK_THRESHOLD='lots'"):
        load_settings()


@pytest.mark.usefixtures("empty_cwd")
def test_constructor_arguments_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTPD_MONITORING_CPU_THRESHOLD", "75")
    monkeypatch.setenv("PTPD_MONITORING_MAX_HISTORY", "5000")

    settings = load_settings(CPU_THRESHOLD=50.0)

    assert settings.CPU_THRESHOLD == 50.0
    assert settings.MAX_HISTORY == 5000  # the rest still comes from the environment
    assert MonitoringSettings(CPU_THRESHOLD=75.0).CPU_THRESHOLD == 75.0  # the docstring example
    with pytest.raises(SettingsError, match="PTPD_MONITORING_CPU_THRESHOLD=500"):
        load_settings(CPU_THRESHOLD=500)


@pytest.mark.usefixtures("empty_cwd")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CPU_THRESHOLD", "abc"),
        ("CPU_THRESHOLD", "0"),
        ("CPU_THRESHOLD", "150"),
        ("CPU_THRESHOLD", "-5"),
        ("MEMORY_THRESHOLD", "100.1"),
        ("CACHE_BACKEND", "redis"),
        ("MAX_HISTORY", "-1"),
        ("MAX_HISTORY", "0"),
        ("MAX_HISTORY", "1.5"),
        ("MAX_HISTORY", "many"),
        ("CACHE_SIZE", "0"),
        ("CACHE_TTL", "0"),
        ("FLUSH_INTERVAL_S", "0"),
        ("FLUSH_INTERVAL_S", "3601"),
        ("SAMPLE_INTERVAL_S", "-1"),
        ("RETENTION_DAYS", "0"),
        ("STORE_SIZE_LIMIT_MB", "0"),
        ("STORE_ENABLED", "maybe"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"PTPD_MONITORING_{name}", value)

    with pytest.raises(SettingsError) as caught:
        load_settings()

    message = str(caught.value)
    assert f"PTPD_MONITORING_{name}={value!r}" in message
    assert isinstance(caught.value, ValueError)
    assert caught.value.__cause__ is None  # one readable line, not pydantic's report


@pytest.mark.usefixtures("empty_cwd")
def test_every_bad_variable_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTPD_MONITORING_CPU_THRESHOLD", "abc")
    monkeypatch.setenv("PTPD_MONITORING_CACHE_BACKEND", "redis")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert "PTPD_MONITORING_CPU_THRESHOLD='abc'" in str(caught.value)
    assert "PTPD_MONITORING_CACHE_BACKEND='redis'" in str(caught.value)


@pytest.mark.usefixtures("empty_cwd")
def test_get_settings_reads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTPD_MONITORING_MAX_HISTORY", "11")
    first = get_settings()
    monkeypatch.setenv("PTPD_MONITORING_MAX_HISTORY", "22")

    assert get_settings() is first
    assert get_settings().MAX_HISTORY == 11
    get_settings.cache_clear()
    assert get_settings().MAX_HISTORY == 22


@pytest.mark.usefixtures("empty_cwd")
def test_get_settings_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTPD_MONITORING_CPU_THRESHOLD", "abc")

    with pytest.raises(SettingsError, match="PTPD_MONITORING_CPU_THRESHOLD"):
        get_settings()
