"""``ptpd-monitor watch`` end to end: real processes write a week of timings into a store, the
command judges it as cron or CI would, and its exit status and lines say what fired.

Two writer processes share each store: one writes seven days of normal ``curve.fit`` timings
(the baseline), another the last hour, normal or three times slower. The timestamps are the
writers' clock, so the built-in regression watch (p95 of the last hour against the previous
7 days) judges them as it would judge the app's own samples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ptpd_calibration.monitoring.store import SampleStore
from ptpd_calibration.monitoring.watches import watch_history

CLI = [sys.executable, "-m", "ptpd_calibration.monitoring.cli"]

WRITER = r"""
import sys
import time

import numpy as np

from ptpd_calibration.monitoring import get_store
from ptpd_calibration.monitoring.store import METRIC, ColumnBatch

part, seconds = sys.argv[1], float(sys.argv[2])
now = time.time()
rng = np.random.default_rng(1 if part == "week" else 2)
if part == "week":  # 60 timings in each hour of the 7 days before the last hour
    starts = [now - hour * 3600.0 for hour in range(2, 24 * 7)]
    stamps = np.concatenate([start + np.linspace(0.0, 30.0, 60) for start in starts])
else:  # 120 timings from 50 to 10 minutes ago
    stamps = now - 3000.0 + np.linspace(0.0, 2400.0, 120)
values = rng.normal(seconds, seconds * 0.05, stamps.size)
store = get_store()
assert store.write([ColumnBatch(METRIC, "curve.fit", (stamps, values), "seconds")])
print(stamps.size)
"""


def _env(store: Path, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTPD_MONITORING_")}
    env.update(PTPD_MONITORING_STORE_DIR=str(store), XDG_DATA_HOME=str(home), **extra)
    return env


def _write(store: Path, home: Path, part: str, seconds: float) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WRITER, part, str(seconds)],
        env=_env(store, home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def _store(root: Path, name: str, last_hour_s: float) -> Path:
    """A store holding a normal week and a last hour at ``last_hour_s`` (two processes)."""
    store = root / name
    _write(store, root / "xdg", "week", 0.1)
    _write(store, root / "xdg", "hour", last_hour_s)
    return store


def _run(
    args: Sequence[str], store: Path, home: Path, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=_env(store, home, **extra),
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _run_all(
    cases: Mapping[str, tuple[Sequence[str], Path, dict[str, str]]], home: Path
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Independent commands run concurrently (each child spends most of its time importing)."""
    with ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 1)) as pool:
        futures = {
            name: pool.submit(_run, args, store, home, **extra)
            for name, (args, store, extra) in cases.items()
        }
        return {name: future.result() for name, future in futures.items()}


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ptpd-monitor: error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("watch-cli")
    with ThreadPoolExecutor(max_workers=2) as pool:
        regressed = pool.submit(_store, root, "regressed", 0.3)
        normal = pool.submit(_store, root, "normal", 0.1)
        return {"regressed": regressed.result(), "normal": normal.result(), "root": root}


def test_a_regression_exits_1_naming_the_operation_and_is_stored(stores: dict[str, Path]) -> None:
    home = stores["root"] / "xdg"

    done = _run(["watch"], stores["regressed"], home)

    assert done.returncode == 1, done.stderr
    (line,) = done.stdout.strip().splitlines()
    assert line.startswith("WARNING regression:curve.fit: curve.fit p95 over the last 1h is ")
    assert "its p95 over the previous 7d" in line
    assert "above 1.5×" in line
    assert "1 firing" in done.stderr  # the summary line
    # the firing is an event in the store: watches have a history
    (event,) = watch_history(SampleStore(stores["regressed"]))
    assert (event["watch"], event["target"], event["builtin"]) == (
        "regression:curve.fit",
        "curve.fit",
        True,
    )
    assert event["value"] > 1.5 * event["baseline"]


def test_normal_timings_exit_0_and_print_nothing(stores: dict[str, Path]) -> None:
    home = stores["root"] / "xdg"
    results = _run_all(
        {
            "normal": (["watch"], stores["normal"], {}),
            "normal-json": (["watch", "--format", "json", "--no-record"], stores["normal"], {}),
            "quiet": (["watch", "--quiet"], stores["normal"], {}),
            "regressed-no-defaults": (["watch", "--no-defaults"], stores["regressed"], {}),
            "regressed-defaults-off": (
                ["watch"],
                stores["regressed"],
                {"PTPD_MONITORING_DEFAULT_WATCHES": "false"},
            ),
        },
        home,
    )

    for name, done in results.items():
        assert done.returncode == 0, (name, done.stdout, done.stderr)
    assert results["normal"].stdout == ""
    assert "0 firing" in results["normal"].stderr
    assert (results["quiet"].stdout, results["quiet"].stderr) == ("", "")
    (result,) = json.loads(results["normal-json"].stdout)
    assert (result["watch"], result["status"], result["firing"]) == (
        "regression:curve.fit",
        "ok",
        False,
    )
    assert result["samples"] == 120 and result["baseline_samples"] == 166 * 60
    assert watch_history(SampleStore(stores["normal"])) == []


def test_configured_watches_fire_from_a_file_and_from_the_environment(
    stores: dict[str, Path], tmp_path: Path
) -> None:
    home = stores["root"] / "xdg"
    rules = tmp_path / "watches.toml"
    rules.write_text(
        '[[watch]]\nname = "fit-over-50ms"\ntarget = "curve.fit"\nstat = "p95"\n'
        'above_ms = 50\nwindow = "1h"\nseverity = "critical"\n',
        encoding="utf-8",
    )
    env_rule = json.dumps([{"target": "curve.fit", "stat": "mean", "above": 0.2, "window": "1h"}])
    results = _run_all(
        {
            "file": (["watch", "--watches", str(rules), "--no-defaults"], stores["normal"], {}),
            "setting-file": (
                ["watch", "--no-defaults", "--format", "json"],
                stores["normal"],
                {"PTPD_MONITORING_WATCHES_FILE": str(rules)},
            ),
            "env-normal": (["watch"], stores["normal"], {"PTPD_MONITORING_WATCHES": env_rule}),
            "env-regressed": (
                ["watch", "--no-defaults", "--no-record"],
                stores["regressed"],
                {"PTPD_MONITORING_WATCHES": env_rule},
            ),
        },
        home,
    )

    assert results["file"].returncode == 1, results["file"].stderr
    (line,) = results["file"].stdout.strip().splitlines()
    assert line.startswith("CRITICAL fit-over-50ms: curve.fit p95 over the last 1h is ")
    assert "above the 50 ms threshold" in line
    assert results["setting-file"].returncode == 1
    (fired,) = json.loads(results["setting-file"].stdout)
    assert (fired["resource"], fired["severity"], fired["threshold"]) == (
        "curve.fit",
        "critical",
        0.05,
    )
    assert {"usage", "message"} <= set(fired)
    assert results["env-normal"].returncode == 0, results["env-normal"].stdout
    assert results["env-regressed"].returncode == 1
    assert results["env-regressed"].stdout.startswith("WARNING curve.fit:mean>0.2: curve.fit")


def test_bad_configuration_exits_2_in_one_line(stores: dict[str, Path], tmp_path: Path) -> None:
    home = stores["root"] / "xdg"
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text('[[watch]]\nname = "slow-fit"\ntarget = "curve.fit"\nwindow = "5x"\n')
    not_toml = tmp_path / "not.toml"
    not_toml.write_text("[[watch]\n")
    bad_json = '[{"name": "curve-fit-p95", "target": "curve.fit", "stat": "p90", "above": 1}]'
    store = stores["normal"]
    results = _run_all(
        {
            "env": (["watch"], store, {"PTPD_MONITORING_WATCHES": bad_json}),
            "not-json": (["watch"], store, {"PTPD_MONITORING_WATCHES": "[{"}),
            "rule": (["watch", "--watches", str(bad_toml)], store, {}),
            "toml": (["watch", "--watches", str(not_toml)], store, {}),
            "missing": (["watch", "--watches", str(tmp_path / "absent.toml")], store, {}),
            "setting-missing": (
                ["watch"],
                store,
                {"PTPD_MONITORING_WATCHES_FILE": str(tmp_path / "absent.toml")},
            ),
            "format": (["watch", "--format", "xml"], store, {}),
        },
        home,
    )

    for name, done in results.items():
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        assert done.stdout == "", name
    assert _one_error_line(results["env"]).startswith(
        "ptpd-monitor: error: PTPD_MONITORING_WATCHES: watch 'curve-fit-p95': stat must be one of"
    )
    assert "not valid JSON" in _one_error_line(results["not-json"])
    line = _one_error_line(results["rule"])
    assert f"{bad_toml}: watch 'slow-fit': window must be a duration" in line
    assert "not valid TOML" in _one_error_line(results["toml"])
    assert "no such watches file" in _one_error_line(results["missing"])
    assert "no such watches file" in _one_error_line(results["setting-missing"])
    assert "invalid choice: 'xml'" in results["format"].stderr


def test_without_a_store_nothing_fires_and_no_store_is_created(tmp_path: Path) -> None:
    missing = tmp_path / "no-store"

    done = _run(["watch"], missing, tmp_path / "xdg")

    assert done.returncode == 0, done.stderr
    assert "no sample store at" in done.stderr
    assert not missing.exists()
