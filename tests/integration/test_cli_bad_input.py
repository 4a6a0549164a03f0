"""Bad input to ``ptpd-monitor``, as real processes: a clear one-line error, never a traceback,
and the store's data untouched.

Exit 2 is a usage error (argparse adds its usage lines above the one error line); exit 1 a
runtime failure, exactly one line (see the CLI module docstring). The library's cases are in
``tests/unit/test_bad_input.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ptpd_calibration.monitoring.api import APIPerformanceTracker
from ptpd_calibration.monitoring.monitor import PerformanceMonitor
from ptpd_calibration.monitoring.store import SampleStore

CLI = [sys.executable, "-m", "ptpd_calibration.monitoring.cli"]
TODAY = date.today().isoformat()


def _env(store: Path, home: Path, **extra: str) -> dict[str, str]:
    """The parent's environment without PTPD_MONITORING_*, pointing at ``store``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTPD_MONITORING_")}
    env.update(PTPD_MONITORING_STORE_DIR=str(store), XDG_DATA_HOME=str(home), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _run(
    args: Sequence[str], env: Mapping[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=60
    )


def _run_all(
    cases: Mapping[str, tuple[Sequence[str], Mapping[str, str]]], cwd: Path
) -> dict[str, subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 1)) as pool:
        futures = {name: pool.submit(_run, args, env, cwd) for name, (args, env) in cases.items()}
        return {name: future.result() for name, future in futures.items()}


def _error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The one error line of a failed command (after argparse's usage lines for exit 2)."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and errors[0] == lines[-1], result.stderr
    assert errors[0].startswith("ptpd-monitor"), result.stderr
    if code == 1:
        assert len(lines) == 1, result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store with valid samples, recorded beside refused bad input and odd metadata."""
    root = tmp_path_factory.mktemp("bad-input")
    store = SampleStore(root / "store")
    monitor = PerformanceMonitor(store=store)
    tracker = APIPerformanceTracker(store=store)
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    monitor.record_metric("curve.fit", 0.5)
    monitor.record_metric("curve.fit", 0.7, metadata={"deep": deep, "session_id": "s1"})
    monitor.record_metric("memory", 12.0, unit="MB")
    for unit in (None, 123, ["ms"]):
        with pytest.raises(ValueError, match="unit"):
            monitor.record_metric("broken", 1.0, unit=unit)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="value"):
        monitor.record_metric("curve.fit", 10**400)
    tracker.track_request("/api/curves", 0.02, 200, metadata={"deep": deep})
    monitor.flush()
    tracker.flush()
    assert store.error_count == 0, store.last_error
    store.close()
    cwd = root / "cwd"
    cwd.mkdir()
    return {"root": root, "store": root / "store", "cwd": cwd, "env": _env(root / "store", root)}


@pytest.fixture(scope="module")
def results(populated: dict[str, Any]) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every bad command, run concurrently once; then an export to check the store."""
    root: Path = populated["root"]
    env: dict[str, str] = populated["env"]
    tokyo = {**env, "TZ": "Asia/Tokyo"}
    folder = root / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    a_file = root / "a-file"
    a_file.write_text("not a folder")
    cases: dict[str, tuple[Sequence[str], Mapping[str, str]]] = {
        "since year 1": (["export", "--since", "0001-01-01", "--until", "0001-01-02"], tokyo),
        "until year 9999": (["export", "--until", "9999-12-31"], tokyo),
        "compare year 1": (
            ["report", "compare", "--from", "0001-01-01", "--to", "0001-01-02",
             "--vs-from", TODAY, "--vs-to", TODAY],
            tokyo,
        ),
        "daily year 1": (["report", "daily", "--date", "0001-01-01"], tokyo),
        "daily last date": (["report", "daily", "--date", "9999-12-31"], env),
        "output folder": (["export", "--output", str(folder)], env),
        "demo unwritable": (["demo", "--seconds", "5", "--store-dir", "/proc/nope"], env),
        "demo under a file": (["demo", "--seconds", "5", "--store-dir", str(a_file / "s")], env),
        "size limit inf": (["export"], {**env, "PTPD_MONITORING_STORE_SIZE_LIMIT_MB": "inf"}),
        "cache ttl inf": (["export"], {**env, "PTPD_MONITORING_CACHE_TTL": "inf"}),
        "empty store dir": (["demo", "--seconds", "5"], {**env, "PTPD_MONITORING_STORE_DIR": ""}),
        "empty --store-dir": (["--store-dir", "", "demo", "--seconds", "5"], env),
    }  # fmt: skip
    done = _run_all(cases, populated["cwd"])
    done["export after"] = _run(["export"], env, populated["cwd"])
    return done


@pytest.mark.parametrize(
    ("case", "option", "value"),
    [
        ("since year 1", "--since", "0001-01-01"),
        ("until year 9999", "--until", "9999-12-31"),
        ("compare year 1", "--from", "0001-01-01"),
        ("daily year 1", "--date", "0001-01-01"),
        ("daily last date", "--date", "9999-12-31"),
    ],
)
def test_a_time_out_of_range_is_a_usage_error(
    results: dict[str, subprocess.CompletedProcess[str]], case: str, option: str, value: str
) -> None:
    result = results[case]
    line = _error_line(result, 2)
    assert f"argument {option}: '{value}' is out of range" in line, line
    assert result.stdout == ""


def test_an_output_folder_is_a_one_line_usage_error(
    results: dict[str, subprocess.CompletedProcess[str]], populated: dict[str, Any]
) -> None:
    result = results["output folder"]
    folder = populated["root"] / "out"
    assert result.stderr.count("\n") == 1  # one line, without argparse's usage
    line = _error_line(result, 2)
    assert f"argument --output: {folder} is a folder" in line, line
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]
    assert result.stdout == ""


@pytest.mark.parametrize("case", ["demo unwritable", "demo under a file"])
def test_demo_refuses_an_unwritable_store_before_recording(
    results: dict[str, subprocess.CompletedProcess[str]], case: str
) -> None:
    result = results[case]
    line = _error_line(result, 1)
    assert "sample store at" in line and "is unusable" in line, line
    assert "recording" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    ("case", "variable"),
    [
        ("size limit inf", "PTPD_MONITORING_STORE_SIZE_LIMIT_MB='inf'"),
        ("cache ttl inf", "PTPD_MONITORING_CACHE_TTL='inf'"),
        ("empty store dir", "PTPD_MONITORING_STORE_DIR=''"),
    ],
)
def test_bad_settings_name_the_variable(
    results: dict[str, subprocess.CompletedProcess[str]],
    populated: dict[str, Any],
    case: str,
    variable: str,
) -> None:
    line = _error_line(results[case], 1)
    assert variable in line, line
    assert list(populated["cwd"].iterdir()) == []  # no store in the working folder


def test_an_empty_store_dir_option_is_a_usage_error(
    results: dict[str, subprocess.CompletedProcess[str]], populated: dict[str, Any]
) -> None:
    result = results["empty --store-dir"]
    assert result.returncode == 2
    assert "--store-dir: must name a folder" in result.stderr
    assert list(populated["cwd"].iterdir()) == []  # no store in the working folder


def test_the_store_is_intact_after_the_refusals(
    results: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = results["export after"]
    assert result.returncode == 0, result.stderr
    exported = json.loads(result.stdout)
    text = json.dumps(exported)
    assert "broken" not in text
    assert "<unprintable dict>" in text  # the 5,000-deep metadata, as it was kept
    assert _count(exported, "curve.fit") == 2
    assert _count(exported, "memory") == 1


def _count(exported: Any, name: str) -> int:
    """Samples of ``name`` in an export: a list of rows, or ``{"metrics": {name: ...}}``."""
    if isinstance(exported, dict):
        return int(exported["metrics"][name]["statistics"]["count"])
    return sum(1 for row in exported if row.get("metric_name") == name)
