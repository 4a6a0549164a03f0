"""``ptpd-monitor demo``: a realistic past week, recorded by the CLI into a temporary store.

One child process records the week (``demo --seed 7``); the tests read the store it wrote as
the dashboard and the reports do, and run the commands a user would run next (the session
report, the watch) against it, concurrently. What they hold the week to: it spans seven days,
its nights are quiet, one day is slow for one operation, one afternoon's CPU raised an alert,
the API had a burst of errors, the cache warmed up and evicted, the latest session covers
every operation, every window of the dashboard has data in enough buckets to draw a line,
and the built-in regression watch fires on the operation made slow in the last hour.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ptpd_calibration.dashboard.transforms import PRESET_WINDOWS, preset_window
from ptpd_calibration.monitoring import frames
from ptpd_calibration.monitoring.cache import CacheManager
from ptpd_calibration.monitoring.demo import (
    ERROR_BURST_OFFSET,
    HIGH_CPU_OFFSET,
    REGRESSED_OPERATION,
    SLOW_DAY_OFFSET,
    SLOW_DAY_OPERATION,
    record_demo_week,
)
from ptpd_calibration.monitoring.imaging import PIPELINE_STEPS
from ptpd_calibration.monitoring.profiler import WALL_TIME_SUFFIX, ImageProcessingProfiler
from ptpd_calibration.monitoring.resources import ResourceMonitor, alert_runs, usage_to_record
from ptpd_calibration.monitoring.settings import get_settings
from ptpd_calibration.monitoring.store import API, CACHE, METRIC, PROFILE, RESOURCE, SampleStore

CLI = [sys.executable, "-m", "ptpd_calibration.monitoring.cli"]
SEED = 7
DAY_S = 86400.0


def _env(store: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTPD_MONITORING_")}
    env.update(PTPD_MONITORING_STORE_DIR=str(store), XDG_DATA_HOME=str(home), PYTHONUNBUFFERED="1")
    return env


def _run(
    args: Sequence[str], env: Mapping[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=180
    )


@dataclass(frozen=True)
class Week:
    store: SampleStore
    demo: subprocess.CompletedProcess[str]
    session_id: str
    today: date  # the local day the week ends on
    ended: float  # epoch seconds just after the demo finished
    outputs: dict[str, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Week:
    root = tmp_path_factory.mktemp("demo-week")
    cwd = root / "cwd"
    cwd.mkdir()
    env = _env(root / "store", root / "xdg")
    demo = _run(["demo", "--seed", str(SEED)], env, cwd)
    ended = time.time()
    assert demo.returncode == 0, demo.stderr
    match = re.search(r"the latest session, (\S+), covers every operation", demo.stdout)
    assert match, demo.stdout
    cases = {
        "session": ["report", "session", match.group(1)],
        "watch": ["watch", "--no-record"],
        "if_empty": ["demo", "--if-empty"],
    }
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        futures = {name: pool.submit(_run, args, env, cwd) for name, args in cases.items()}
        outputs = {name: future.result() for name, future in futures.items()}
    return Week(
        SampleStore(root / "store"),
        demo,
        match.group(1),
        datetime.fromtimestamp(ended).date(),
        ended,
        outputs,
    )


def _local(stamps: pd.Series) -> pd.Series:
    """UTC timestamps as naive local times (the week is planned in local time, DST included)."""
    local = [datetime.fromtimestamp(epoch) for epoch in _epoch(stamps).tolist()]
    return pd.Series(pd.to_datetime(local), index=stamps.index)


def _epoch(stamps: pd.Series) -> np.ndarray:
    return stamps.astype("int64").to_numpy() / 1e9


def test_the_demo_reports_what_it_wrote(week: Week) -> None:
    assert "recording demo data" in week.demo.stderr and "100%" in week.demo.stderr
    assert "Traceback" not in week.demo.stderr
    line = week.demo.stdout.strip()
    assert re.search(r"recorded a demo week into .+ in [\d.]+ s: \d+ sessions over 7 days", line)
    assert re.search(r"\d+ pipeline runs, \d+ requests \(\d+ errors\)", line)


def test_the_week_spans_seven_days_of_working_hours_with_quiet_nights(week: Week) -> None:
    metrics = frames.metrics_frame(week.store)
    requests = frames.api_frame(week.store)
    stamps = _epoch(metrics["timestamp"])
    span_days = (stamps.max() - stamps.min()) / DAY_S
    assert 6.3 <= span_days <= 7.6, span_days
    assert stamps.max() >= week.ended - 120  # it runs until now
    for frame in (metrics, requests):
        local = _local(frame["timestamp"])
        # The current session runs until now, whatever the hour: the nights before it count.
        earlier = _epoch(frame["timestamp"]) < week.ended - 2 * 3600
        night = (local.dt.hour < 6).to_numpy() & earlier
        assert night.sum() <= 0.01 * len(frame), int(night.sum())
        days = set(local[earlier].dt.date)
        assert len(days) >= 5, sorted(days)


def test_one_operation_is_slow_on_one_day(week: Week) -> None:
    series = SLOW_DAY_OPERATION + WALL_TIME_SUFFIX
    samples = frames.metrics_frame(week.store, operations=[series])
    days = _local(samples["timestamp"]).dt.date
    p95 = {
        day: float(np.percentile(group["value"], 95))
        for day, group in samples.groupby(days)
        if len(group) >= 20
    }
    slow_day = week.today - timedelta(days=SLOW_DAY_OFFSET)
    others = {day: value for day, value in p95.items() if day != slow_day}
    assert len(others) >= 4, p95
    assert all(p95[slow_day] >= 1.5 * value for value in others.values()), p95


def test_an_afternoon_of_high_cpu_raised_an_alert(week: Week) -> None:
    samples = frames.resource_samples(week.store).sort_values("timestamp", ignore_index=True)
    seconds = _epoch(samples["timestamp"])
    threshold = get_settings().CPU_THRESHOLD
    runs = alert_runs(seconds, samples["cpu_percent"].to_numpy(), threshold)
    local = _local(samples["timestamp"])
    afternoon = week.today - timedelta(days=HIGH_CPU_OFFSET)
    assert runs, "no CPU alert in the week"
    for first, _ in runs:  # every alert is that afternoon's
        assert local[first].date() == afternoon and 12 <= local[first].hour < 18
    assert max(seconds[last] - seconds[first] for first, last in runs) >= 1800


def test_a_burst_of_api_errors(week: Week) -> None:
    requests = frames.api_frame(week.store)
    error = requests["status_code"] >= 400
    bins = requests.assign(error=error, bin=requests["timestamp"].dt.floor("10min"))
    per_bin = bins.groupby("bin")["error"].agg(["size", "mean"])
    burst = per_bin[(per_bin["size"] >= 30) & (per_bin["mean"] >= 0.25)]
    assert not burst.empty, per_bin.sort_values("mean").tail()
    burst_day = week.today - timedelta(days=ERROR_BURST_OFFSET)
    assert set(_local(burst.index.to_series()).dt.date) == {burst_day}
    outside = ~bins["bin"].isin(burst.index)
    assert error[outside].mean() < 0.05
    server_errors = requests[requests["status_code"] >= 500]
    assert server_errors["error"].notna().all()  # as the tracker records a 5xx


def test_the_cache_warms_up_every_day_and_evicts(week: Week) -> None:
    snapshots = frames.cache_stats(week.store).sort_values("timestamp")
    processes = list(snapshots.groupby("pid"))
    assert len(processes) >= 5  # the app is opened anew each working day
    for _, rows in processes:
        assert rows["hit_rate"].iloc[0] < rows["hit_rate"].iloc[-1]  # a cold start, warming up
        assert rows["hits"].is_monotonic_increasing  # a process's counters only grow
    assert snapshots["evictions"].max() > 0
    assert (snapshots["size"] == snapshots["max_size"]).any()  # full, at times


def test_the_latest_session_covers_every_operation(week: Week) -> None:
    done = week.outputs["session"]
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    operations = set(report["operations"])
    assert operations == set(week.store.series_names(METRIC))
    for step in PIPELINE_STEPS:  # the pipeline's steps are tagged with the session too
        assert f"pipeline.{step}{WALL_TIME_SUFFIX}" in operations
    assert {"calibration.read_step_tablet", "curve.fit"} <= operations
    assert report["api"]["total_requests"] > 100


def _stamps(store: SampleStore, kind: str, since: float, until: float) -> np.ndarray:
    if kind in (METRIC, API):
        parts = [store.read_columns(kind, name, since, until) for name in store.series_names(kind)]
        return np.concatenate([p.columns[0] for p in parts if p.size] + [np.empty(0)])
    return np.array([row["ts"] for row in store.read_records(kind, None, since, until)])


@pytest.mark.parametrize("label", list(PRESET_WINDOWS))
def test_every_window_has_data_in_enough_buckets_to_draw_lines(week: Week, label: str) -> None:
    window = preset_window(label)
    width = window.seconds / 60  # about 60 buckets a window
    for kind in (METRIC, API, RESOURCE, CACHE):
        stamps = _stamps(week.store, kind, window.since, window.until)
        buckets = np.unique(np.floor(stamps / width)).size
        assert buckets >= 10, (kind, buckets)


def test_the_regression_watch_fires_on_the_last_hour(week: Week) -> None:
    done = week.outputs["watch"]
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stdout.strip().splitlines()
    assert lines
    for line in lines:  # only the operation made slow in the last hour
        assert re.match(rf"WARNING regression:{re.escape(REGRESSED_OPERATION)}_\w+: ", line), line
    assert any(f"regression:{REGRESSED_OPERATION}{WALL_TIME_SUFFIX}:" in line for line in lines)


def test_if_empty_leaves_the_week_alone(week: Week) -> None:
    done = week.outputs["if_empty"]
    assert done.returncode == 0, done.stderr
    assert "already has" in done.stdout and "recording" not in done.stderr


def _one_row(store: SampleStore, kind: str) -> dict[str, Any]:
    name = store.series_names(kind)[0]
    return store.read_records(kind, name)[0]


def test_rows_are_the_ones_live_recording_writes(week: Week, tmp_path: Path) -> None:
    """Same fields as the live publishers write, in the same series."""
    live = SampleStore(tmp_path / "live")
    profiler = ImageProcessingProfiler()
    _, profile = profiler.profile_operation(sum, [1, 2], operation_name="pipeline.decode")
    stored = _one_row(week.store, PROFILE)
    assert set(stored) == set(profile)
    assert set(_one_row(week.store, RESOURCE)) == set(
        usage_to_record(ResourceMonitor().check_resources())
    )
    cache = CacheManager(name="demo-curves", store=live)
    cache.get("x")
    cache.flush()
    assert set(_one_row(week.store, CACHE)) == set(_one_row(live, CACHE))
    units = {name: week.store.read_columns(METRIC, name).unit for name in ("curve.fit",)}
    assert units == {"curve.fit": "seconds"}
    assert week.store.read_columns(API, "GET /api/health").unit == "ms"


def test_a_seed_makes_the_week_repeatable(tmp_path: Path) -> None:
    now = time.time()
    first, second = SampleStore(tmp_path / "a"), SampleStore(tmp_path / "b")
    one = record_demo_week(seed=3, now=now, store=first)
    two = record_demo_week(seed=3, now=now, store=second)
    for key in ("sessions", "pipeline_runs", "requests", "request_errors", "metric_samples"):
        assert one[key] == two[key], key
    pd.testing.assert_frame_equal(frames.metrics_frame(first), frames.metrics_frame(second))
    pd.testing.assert_frame_equal(frames.api_frame(first), frames.api_frame(second))
