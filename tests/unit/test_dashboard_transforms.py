"""The dashboard's pure transforms: windows, bucketing, exact percentiles, cache sums, alerts."""

from __future__ import annotations

import itertools
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from ptpd_calibration.dashboard import transforms
from ptpd_calibration.monitoring.monitor import PerformanceMonitor

if TYPE_CHECKING:
    from conftest import FakeClock


def _ts(seconds: list[float]) -> pd.Series:
    return pd.Series(pd.to_datetime(seconds, unit="s", utc=True))


# -- windows and buckets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("span_s", "width"),
    [
        (30, 1),
        (198, 1),
        (199, 2),
        (15 * 60, 5),
        (3600, 30),
        (24 * 3600, 600),
        (7 * 86400, 3600),
        (10 * 365 * 86400, 86400),
    ],
)
def test_bucket_seconds_picks_the_smallest_round_width_under_the_most_points(
    span_s: float, width: int
) -> None:
    assert transforms.bucket_seconds(span_s) == width
    assert width in transforms.BUCKET_WIDTHS_S


def test_bucket_seconds_honours_the_target() -> None:
    assert transforms.bucket_seconds(3600, target_buckets=12) == 300
    assert transforms.bucket_seconds(3600, target_buckets=3600) == 1


def test_the_round_widths_are_clock_times_each_at_most_two_and_a_half_times_the_last() -> None:
    widths = transforms.BUCKET_WIDTHS_S
    for named in (1, 10, 15, 30, 60, 300, 900, 3600, 21600, 86400):
        assert named in widths
    assert all(86400 % width == 0 for width in widths)  # buckets start on round local times
    assert all(b / a <= 2.5 for a, b in itertools.pairwise(widths))


@pytest.mark.parametrize(
    ("seconds", "label"),
    [(1, "1 s"), (15, "15 s"), (60, "1 min"), (300, "5 min"), (3600, "1 h"), (86400, "1 d")],
)
def test_width_label(seconds: int, label: str) -> None:
    assert transforms.width_label(seconds) == label


WEEK = 7 * 86400
NOW = 1_764_576_000.0  # 2025-12-01 08:00 UTC


def _stamps(seconds: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(np.sort(seconds), unit="s", utc=True))


def _dense(window_s: float) -> np.ndarray:
    return NOW - window_s + np.linspace(0, window_s, 20_000)


def _sparse(window_s: float) -> np.ndarray:
    """Mostly idle: three short sessions (start, middle, end), a sample every 2 s in each."""
    session = np.arange(0, max(window_s / 50, 20), 2.0)
    starts = [0.0, window_s / 2, window_s - session[-1]]
    return NOW - window_s + np.concatenate([start + session for start in starts])


def _late(window_s: float) -> np.ndarray:
    """Data only in the last sixth of the window (a session after an idle day)."""
    return NOW - window_s / 6 + np.linspace(0, window_s / 6, 400)


@pytest.mark.parametrize("window_s", [900, 3600, 6 * 3600, 86400, 3 * 86400, WEEK])
@pytest.mark.parametrize("data", [_dense, _sparse, _late])
def test_time_grid_has_60_to_200_round_buckets_at_every_window(window_s: float, data: Any) -> None:
    seconds = data(window_s)
    grid = transforms.time_grid(_stamps(seconds), NOW - window_s, NOW, utc_offset_s=0)

    assert grid is not None
    assert transforms.MIN_POINTS <= grid.size <= transforms.MAX_POINTS
    assert grid.width in transforms.BUCKET_WIDTHS_S
    assert grid.start % grid.width == 0  # a round time (UTC here)
    assert grid.start <= seconds.min() and seconds.max() < grid.end  # every sample in a bucket
    assert grid.end - grid.width <= seconds.max()  # no trailing empty bucket
    assert grid.subtitle.startswith(f"{transforms.width_label(grid.width)} buckets")


def test_time_grid_follows_the_data_not_only_the_window() -> None:
    """The issue: two seconds of data in a 7 d window were one dot at 00:00 of the day."""
    seconds = NOW - 3600 + np.linspace(0, 2.0, 50)
    grid = transforms.time_grid(_stamps(seconds), NOW - WEEK, NOW, utc_offset_s=0)

    assert grid is not None
    assert grid.width == 1 and grid.size == 3
    assert grid.start == NOW - 3600


@pytest.mark.parametrize(
    ("interval_s", "span_s", "width"),
    [
        (2.0, 600, 5),  # the Overview's sampler: 1 s buckets made a dotted line
        (2.0, 90, 5),  # ... just after the server started
        (30.0, 900, 60),  # a pipeline run every 30 s in the 15 min window: 15 points
        (600.0, 4 * 3600, 900),  # a run every 10 min over 4 h: 16 points
    ],
)
def test_data_sampled_at_intervals_fills_every_bucket(
    interval_s: float, span_s: float, width: int
) -> None:
    rng = np.random.default_rng(2)
    count = int(span_s / interval_s) + 1
    seconds = NOW + np.arange(count) * interval_s + rng.uniform(-0.05, 0.05, count) * interval_s
    grid = transforms.time_grid(_stamps(seconds), utc_offset_s=0)

    assert grid is not None and grid.width == width
    assert grid.size >= transforms.MIN_FILLED_POINTS
    if grid.width >= 1.5 * interval_s:  # no gap that isn't idle time
        assert np.unique(grid.positions(_stamps(seconds))).size == grid.size


def test_each_series_interval_counts_not_the_mix() -> None:
    """Three operations timed once a run, a run every 30 s: 30 s apart each, not ms."""
    runs = NOW + np.arange(31) * 30.0
    seconds = np.concatenate([runs, runs + 0.01, runs + 0.02])
    names = pd.Series(np.repeat(["decode", "resize", "encode"], runs.size))
    assert transforms.typical_interval(seconds) == pytest.approx(0.01)
    assert transforms.typical_interval(seconds, names.to_numpy()) == pytest.approx(30.0)
    stamps = pd.Series(pd.to_datetime(seconds, unit="s", utc=True))  # in the names' order
    grid = transforms.time_grid(stamps, keys=names, utc_offset_s=0)
    assert grid is not None and grid.width == 60


def test_time_grid_aligns_to_the_local_clock() -> None:
    seconds = NOW + np.linspace(0, 3 * 86400, 500)  # days: 1 h buckets at whole local hours
    grid = transforms.time_grid(_stamps(seconds), utc_offset_s=5 * 3600 + 1800)  # UTC+05:30

    assert grid is not None and grid.width == 1800
    assert (grid.start + grid.utc_offset_s) % grid.width == 0
    assert grid.zone_label == "UTC+05:30"
    assert str(grid.times()[0].tz) == "UTC+05:30"
    assert grid.times()[0].minute in (0, 30)


def test_time_grid_of_nothing_or_outside_the_window_is_none() -> None:
    assert transforms.time_grid(_stamps(np.array([]))) is None
    assert transforms.time_grid(_stamps(np.array([NOW])), NOW + 1, NOW + 10) is None


def test_time_grid_keeps_only_the_window() -> None:
    seconds = np.array([NOW - 7200, NOW - 100, NOW - 50])
    grid = transforms.time_grid(_stamps(seconds), NOW - 3600, NOW, utc_offset_s=0)
    # two samples 50 s apart: 2 s buckets (no fewer than MIN_FILLED_POINTS)
    assert grid is not None and grid.start == NOW - 100 and grid.width == 2


@pytest.mark.parametrize(
    ("span_s", "coarse", "fine"),
    [
        (5, "%H:%M", "%H:%M:%S"),
        (3600, "%H:%M", "%H:%M:%S"),
        (86400, "%a %H:%M", "%a %H:%M:%S"),  # across midnight: the weekday
        (WEEK, "%a %d %b %H:%M", "%d %b %H:%M:%S"),  # a week: the day and the hour
    ],
)
def test_the_x_axis_is_labelled_for_its_span(span_s: float, coarse: str, fine: str) -> None:
    seconds = NOW + np.linspace(0, span_s, 100)
    grid = transforms.time_grid(_stamps(seconds), utc_offset_s=0)
    assert grid is not None
    axis = grid.xaxis()

    assert axis["type"] == "date"
    assert axis["tickformat"] == coarse
    stops = {tuple(s["dtickrange"]): s["value"] for s in axis["tickformatstops"]}
    # the format follows the tick spacing plotly picks: a label never repeats
    assert stops == {(None, 1000): "%H:%M:%S.%L", (1000, 60_000): fine, (60_000, None): coarse}
    start, stop = (pd.Timestamp(t) for t in axis["range"])
    # never less than 10 s across: ticks a second apart at least, not fractions of one
    assert (stop - start).total_seconds() == max(grid.end - grid.start, 10.0)
    assert start == pd.Timestamp(grid.start, unit="s")


@pytest.mark.parametrize(
    ("label", "seconds"), [("15 min", 900), ("1 h", 3600), ("24 h", 86400), ("7 d", 7 * 86400)]
)
def test_preset_window_ends_at_now_rounded_up_to_the_refresh_period(
    label: str, seconds: int
) -> None:
    now = 1_700_000_000.5
    window = transforms.preset_window(label, now=now)

    period = transforms.refresh_seconds(seconds)
    assert window.label == label
    assert window.until % period == 0  # the next multiple of the window's refresh period
    assert window.until >= now
    assert window.until - now < period
    if period == transforms.REFRESH_S:
        assert window.until == 1_700_000_002.0  # short windows: every REFRESH_S (2 s)
    assert window.seconds == seconds
    assert window.since == window.until - seconds


def test_preset_window_on_a_period_boundary_keeps_now() -> None:
    assert transforms.preset_window("1 h", now=1_700_000_000.0).until == 1_700_000_000.0


def test_preset_window_within_one_period_is_the_same_window() -> None:
    """Reruns within the refresh period hit the same cache entries."""
    assert transforms.preset_window("1 h", now=100.1) == transforms.preset_window("1 h", now=101.9)


def test_long_windows_are_read_again_less_often() -> None:
    assert transforms.refresh_seconds(15 * 60) == transforms.REFRESH_S
    assert transforms.refresh_seconds(7 * 86400) == 604.0  # about a thousandth of a week
    week = transforms.preset_window("7 d", now=1_700_000_000.5)
    assert week.until % 604.0 == 0 and 0 <= week.until - 1_700_000_000.5 < 604.0
    assert transforms.preset_window("7 d", now=1_700_000_001.0) == week


def test_preset_window_rejects_an_unknown_label() -> None:
    with pytest.raises(ValueError, match="2 h"):
        transforms.preset_window("2 h")


# -- percentiles -----------------------------------------------------------------------------


def test_percentile_buckets_are_exact_numpy_percentiles_per_bucket() -> None:
    rng = np.random.default_rng(7)
    seconds = rng.uniform(0, 180, 600)
    operations = rng.choice(["pipeline.decode", "pipeline.resize"], 600)
    values = rng.lognormal(-4, 0.6, 600)
    samples = pd.DataFrame(
        {"timestamp": _ts(list(seconds)), "operation": operations, "value": values}
    )

    result = transforms.percentile_buckets(samples, 60)

    assert list(result.columns) == ["bucket", "operation", "count", "p50", "p90", "p95", "p99"]
    assert len(result) == 6  # two operations × three minutes
    assert result["count"].sum() == 600
    for row in result.itertuples():
        start = (row.bucket - pd.Timestamp(0, tz="UTC")).total_seconds()
        mask = (operations == row.operation) & (seconds >= start) & (seconds < start + 60)
        expected = np.percentile(values[mask] * 1000, [50, 90, 95, 99])
        assert row.count == mask.sum()
        assert [row.p50, row.p90, row.p95, row.p99] == pytest.approx(expected, rel=1e-12)


def test_percentile_buckets_scale_and_single_sample() -> None:
    samples = pd.DataFrame({"timestamp": _ts([5.0]), "operation": ["x"], "value": [0.25]})
    (row,) = transforms.percentile_buckets(samples, 10, scale=1.0).itertuples()
    assert (row.count, row.p50, row.p99) == (1, 0.25, 0.25)


def test_percentile_buckets_of_nothing_is_empty_with_the_columns() -> None:
    empty = pd.DataFrame({"timestamp": _ts([]), "operation": [], "value": []})
    result = transforms.percentile_buckets(empty, 60)
    assert result.empty
    assert "p95" in result.columns


def test_percentile_buckets_over_a_grid_leave_gaps_as_nan_rows() -> None:
    """An idle stretch is a gap in the line: NaN rows, never values carried across it."""
    seconds = [0.0, 1.0, 2.0, 600.0, 601.0]  # ten idle minutes between two bursts
    samples = pd.DataFrame(
        {"timestamp": _ts(seconds), "operation": ["a", "a", "b", "a", "b"], "value": [0.1] * 5}
    )
    grid = transforms.time_grid(samples["timestamp"], utc_offset_s=0)
    assert grid is not None and grid.width == 5 and grid.size == 121

    result = transforms.percentile_buckets(samples, grid)

    assert len(result) == 2 * grid.size  # every bucket of every operation
    a = result[result["operation"] == "a"].reset_index(drop=True)
    assert list(a["bucket"]) == list(grid.times())
    assert a.loc[0, "count"] == 2 and a.loc[120, "count"] == 1
    assert a["p95"].notna().sum() == 2
    assert a.loc[1:119, "p95"].isna().all()
    assert (a.loc[1:119, "count"] == 0).all()


def test_resource_buckets_are_means_with_gaps() -> None:
    samples = pd.DataFrame(
        {
            "timestamp": _ts([0, 1, 2, 3, 40, 41]),
            "cpu_percent": [10.0, 30.0, 50.0, 70.0, 90.0, 90.0],
            "memory_percent": [1.0] * 6,
        }
    )
    grid = transforms.TimeGrid(0.0, 2, 21, 0)
    result = transforms.resource_buckets(samples, grid)
    assert list(result.columns) == ["bucket", "cpu_percent", "memory_percent"]
    assert len(result) == 21
    assert list(result["cpu_percent"][:2]) == [20.0, 60.0]
    assert result["cpu_percent"][2:20].isna().all()
    assert result["cpu_percent"][20] == 90.0


# -- API -------------------------------------------------------------------------------------


def test_api_buckets_count_requests_and_error_rates_per_endpoint_and_bucket() -> None:
    requests = pd.DataFrame(
        {
            "timestamp": _ts([1, 2, 3, 4, 65, 70, 5]),
            "endpoint": ["/a", "/a", "/a", "/a", "/a", "/a", "/b"],
            "duration_ms": [10.0, 20.0, 30.0, 40.0, 5.0, 7.0, 1.0],
            "status_code": [200, 404, 500, 201, 200, 200, 399],
        }
    )

    result = transforms.api_buckets(requests, 60).sort_values(
        ["endpoint", "bucket"], ignore_index=True
    )

    assert list(result["endpoint"]) == ["/a", "/a", "/b"]
    assert list(result["requests"]) == [4, 2, 1]
    assert list(result["error_rate"]) == pytest.approx([0.5, 0.0, 0.0])  # 399 is no error
    assert result["p95_ms"][0] == pytest.approx(np.percentile([10, 20, 30, 40], 95))
    assert result["p95_ms"][1] == pytest.approx(np.percentile([5, 7], 95))


def test_api_buckets_of_nothing_is_empty() -> None:
    empty = pd.DataFrame(
        {"timestamp": _ts([]), "endpoint": [], "duration_ms": [], "status_code": []}
    )
    assert transforms.api_buckets(empty, 60).empty


def test_api_buckets_over_a_grid_have_every_bucket_of_every_endpoint() -> None:
    requests = pd.DataFrame(
        {
            "timestamp": _ts([0, 1, 300]),
            "endpoint": ["/a", "/b", "/a"],
            "duration_ms": [10.0, 20.0, 30.0],
            "status_code": [500, 200, 200],
        }
    )
    grid = transforms.time_grid(requests["timestamp"], utc_offset_s=0)
    assert grid is not None
    result = transforms.api_buckets(requests, grid)
    a = result[result["endpoint"] == "/a"].reset_index(drop=True)
    assert len(a) == grid.size == len(result) / 2
    assert a["requests"].sum() == 2 and a["error_rate"].notna().sum() == 2
    assert a["error_rate"][0] == 1.0 and a["p95_ms"].iloc[-1] == 30.0
    assert a["p95_ms"][1:-1].isna().all()


# -- cache -----------------------------------------------------------------------------------


def _snapshots() -> pd.DataFrame:
    rows = [
        # cache, pid, t, hits, misses, evictions, expirations, size, max_size
        ("default", 1, 10, 5, 5, 0, 0, 10, 100),
        ("default", 1, 70, 30, 10, 2, 1, 40, 100),  # newest of pid 1 (cumulative counters)
        ("default", 2, 20, 8, 2, 0, 0, 10, 100),  # only snapshot of pid 2
        ("default", 1, 40, 20, 8, 1, 0, 28, 100),  # out of order on purpose
        ("curves", 3, 30, 0, 0, 0, 0, 0, 50),
    ]
    return pd.DataFrame(
        [
            {
                "timestamp": pd.Timestamp(t, unit="s", tz="UTC"),
                "cache": c,
                "pid": p,
                "hits": h,
                "misses": m,
                "evictions": e,
                "expirations": x,
                "size": s,
                "max_size": ms,
            }
            for c, p, t, h, m, e, x, s, ms in rows
        ]
    )


def test_cache_totals_sum_the_newest_snapshot_of_each_process() -> None:
    totals = transforms.cache_totals(_snapshots()).set_index("cache")

    default = totals.loc["default"]
    assert (default["hits"], default["misses"]) == (38, 12)
    assert (default["evictions"], default["expirations"]) == (2, 1)
    assert (default["size"], default["max_size"]) == (50, 200)
    assert default["processes"] == 2
    assert default["hit_rate"] == pytest.approx(38 / 50)
    curves = totals.loc["curves"]
    assert curves["hit_rate"] == 0.0  # no lookups: 0, not NaN or a division error
    assert curves["processes"] == 1


def test_cache_totals_of_nothing_is_empty() -> None:
    assert transforms.cache_totals(pd.DataFrame({"timestamp": _ts([])})).empty


def test_cache_buckets_use_each_process_newest_snapshot_in_the_bucket() -> None:
    result = transforms.cache_buckets(_snapshots(), 60)
    default = result[result["cache"] == "default"].sort_values("bucket", ignore_index=True)

    # bucket 0-60 s: pid 1 newest at 40 s (20/8) + pid 2 at 20 s (8/2); bucket 60-120: pid 1 only
    assert list(default["hits"]) == [28, 30]
    assert list(default["misses"]) == [10, 10]
    assert list(default["hit_rate"]) == pytest.approx([28 / 38, 30 / 40])
    assert list(result[result["cache"] == "curves"]["hit_rate"]) == [0.0]


def test_cache_buckets_over_a_grid_are_nan_where_nothing_was_published() -> None:
    grid = transforms.TimeGrid(0.0, 30, 3, 0)
    result = transforms.cache_buckets(_snapshots(), grid)
    default = result[result["cache"] == "default"].reset_index(drop=True)
    assert len(default) == 3
    # 0-30 s: pid 1 at 10 s (5/5) + pid 2 at 20 s (8/2); 30-60: pid 1 at 40 s; 60-90: pid 1
    assert list(default["hits"]) == [13, 20, 30]
    curves = result[result["cache"] == "curves"].reset_index(drop=True)
    assert curves["hit_rate"].isna().tolist() == [True, False, True]


def test_cache_buckets_of_nothing_is_empty() -> None:
    assert transforms.cache_buckets(pd.DataFrame({"timestamp": _ts([])}), 60).empty


# -- alert history ---------------------------------------------------------------------------


def _resources(
    cpu: list[float], memory: list[float] | None = None, step_s: float = 5.0
) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "timestamp": _ts([1000 + i * step_s for i in range(len(cpu))]),
            "cpu_percent": cpu,
            "memory_percent": memory if memory is not None else [10.0] * len(cpu),
            "disk_percent": [50.0] * len(cpu),
        }
    )
    return frame.sample(frac=1.0, random_state=3)  # order must not matter


THRESHOLDS = {"cpu": 80.0, "memory": 80.0, "disk": 95.0}


def test_alert_history_reports_runs_above_the_threshold() -> None:
    cpu = [10.0] * 3 + [85.0, 88.0, 82.0, 87.0, 84.0, 86.0, 81.0] + [20.0] * 3  # 7 samples: 30 s
    cpu += [95.0] * 10 + [30.0]  # 45 s, critical
    alerts = transforms.alert_history(_resources(cpu), THRESHOLDS, min_duration_s=30)

    assert list(alerts.columns) == [
        "resource",
        "start",
        "end",
        "duration_s",
        "peak",
        "threshold",
        "severity",
    ]
    assert len(alerts) == 2
    newest, oldest = alerts.iloc[0], alerts.iloc[1]  # newest first
    assert oldest["resource"] == "cpu"
    assert oldest["start"] == pd.Timestamp(1015, unit="s", tz="UTC")
    assert oldest["end"] == pd.Timestamp(1045, unit="s", tz="UTC")
    assert oldest["duration_s"] == 30.0
    assert oldest["peak"] == 88.0
    assert oldest["threshold"] == 80.0
    assert oldest["severity"] == "warning"
    assert newest["start"] == pd.Timestamp(1065, unit="s", tz="UTC")
    assert newest["duration_s"] == 45.0
    assert newest["peak"] == 95.0
    assert newest["severity"] == "critical"


def test_a_short_blip_is_not_an_alert() -> None:
    cpu = [10.0] * 5 + [99.0] * 3 + [10.0] * 5  # 10 s above
    assert transforms.alert_history(_resources(cpu), THRESHOLDS, min_duration_s=30).empty
    assert len(transforms.alert_history(_resources(cpu), THRESHOLDS, min_duration_s=10)) == 1


def test_alert_history_watches_each_resource_and_only_those_with_a_threshold() -> None:
    high = [90.0] * 10
    frame = _resources(high, memory=high)
    alerts = transforms.alert_history(frame, THRESHOLDS, min_duration_s=30)
    assert sorted(alerts["resource"]) == ["cpu", "memory"]
    only_memory = transforms.alert_history(frame, {"memory": 80.0}, min_duration_s=30)
    assert list(only_memory["resource"]) == ["memory"]


def test_at_the_threshold_counts_as_above() -> None:
    alerts = transforms.alert_history(_resources([80.0] * 8), THRESHOLDS, min_duration_s=30)
    assert list(alerts["severity"]) == ["warning"]


def test_alert_history_of_nothing_is_empty() -> None:
    assert transforms.alert_history(pd.DataFrame({"timestamp": _ts([])}), THRESHOLDS).empty


# -- sessions --------------------------------------------------------------------------------


def test_session_ids_are_ordered_most_recent_first(clock: FakeClock) -> None:
    monitor = PerformanceMonitor(clock=clock)

    def record(name: str, value: float, metadata: dict[str, object] | None = None) -> None:
        clock.advance(1.0)  # each sample a second after the one before
        monitor.record_metric(name, value, metadata=metadata)

    for session in ["old", "middle", "newest-but-one", "middle", "newest"]:
        record("calibration.step", 0.1, metadata={"session_id": session})
    record("curve.fit", 0.2, metadata={"session_id": "other-op"})
    record("curve.fit", 0.2, metadata={"session_id": 42})  # not a string
    record("curve.fit", 0.2)  # no metadata

    assert transforms.session_ids(monitor) == [
        "other-op",
        "newest",
        "middle",
        "newest-but-one",
        "old",
    ]


def test_session_ids_of_an_empty_monitor() -> None:
    assert transforms.session_ids(PerformanceMonitor()) == []


def test_recent_usage_keeps_the_last_seconds_of_the_sampler_history() -> None:
    from datetime import UTC, datetime, timedelta

    from ptpd_calibration.monitoring.models import ResourceUsage

    start = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    history = [
        ResourceUsage(
            cpu_percent=float(i),
            memory_percent=50.0,
            memory_used_mb=1.0,
            disk_percent=70.0,
            timestamp=start + timedelta(seconds=2 * i),
        )
        for i in range(400)  # 800 s of samples
    ]
    frame = transforms.recent_usage(history, 600)
    assert len(frame) == 301  # the newest 600 s, both ends included
    assert frame["cpu_percent"].iloc[0] == 99.0 and frame["cpu_percent"].iloc[-1] == 399.0
    assert transforms.recent_usage([], 600).empty


def test_the_transforms_import_no_streamlit() -> None:
    """They are tested, and usable, without a Streamlit runtime (readers.py is the cached side)."""
    code = (
        "import sys, ptpd_calibration.dashboard.transforms\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] == 'streamlit'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# -- units, formats and labels ---------------------------------------------------------------


def test_durations_are_ms_or_seconds_above_ten_seconds() -> None:
    assert transforms.duration_unit(9_999.0) == ("ms", 1.0)
    assert transforms.duration_unit(10_001.0) == ("s", 0.001)
    assert transforms.duration_unit(None) == ("ms", 1.0)
    assert transforms.duration_unit(float("nan")) == ("ms", 1.0)


def _stats(scale: float, unit: str = "seconds") -> dict[str, Any]:
    return {
        "count": 4,
        **{k: v * scale for k, v in [("mean", 2.0), ("p50", 2.0), ("p90", 3.0), ("p95", 3.5)]},
        **{k: v * scale for k, v in [("p99", 4.0), ("min", 1.0), ("max", 4.0), ("std", 1.0)]},
        "median": 2.0 * scale,
        "unit": unit,
    }


def test_statistics_tables_put_the_unit_in_every_header() -> None:
    tables = dict(
        transforms.statistics_tables(
            {"curve.fit": _stats(0.001), "decode": _stats(0.01), "decode_memory": _stats(1, "MB")}
        )
    )
    assert list(tables) == ["Timings (ms)", "Memory (MB)"]
    timings = tables["Timings (ms)"]
    assert list(timings.columns) == [
        "samples",
        "mean (ms)",
        "p50 (ms)",
        "p90 (ms)",
        "p95 (ms)",
        "p99 (ms)",
        "min (ms)",
        "max (ms)",
        "std dev (ms)",
    ]
    assert timings.loc["decode", "p95 (ms)"] == pytest.approx(35.0)
    assert timings.loc["curve.fit", "samples"] == 4
    assert tables["Memory (MB)"].loc["decode_memory", "mean (MB)"] == 2.0
    slow = dict(transforms.statistics_tables({"scan": _stats(4.0)}))  # p99 16 s
    assert slow["Timings (s)"].loc["scan", "p99 (s)"] == pytest.approx(16.0)


def test_api_tables_show_percent_and_durations_with_units() -> None:
    report = {
        "endpoints": {
            "/a": {
                "count": 160,
                "error_count": 10,
                "error_rate": 0.0626,
                "p50_ms": 1.0,
                "p95_ms": 2.0,
                "p99_ms": 3.0,
            }
        },
        "slowest_endpoints": [{"endpoint": "/a", "p95_ms": 2.0, "mean_ms": 1.5}],
        "highest_error_endpoints": [{"endpoint": "/a", "error_rate": 0.0626, "error_count": 10}],
    }
    unit, table, slowest, failing = transforms.api_tables(report)
    assert unit == "ms"
    assert list(table.columns) == [
        "endpoint",
        "requests",
        "errors",
        "error rate",
        "p50 (ms)",
        "p95 (ms)",
        "p99 (ms)",
    ]
    assert list(slowest.columns) == ["endpoint", "p95 (ms)", "mean (ms)"]
    assert list(failing.columns) == ["endpoint", "error rate", "errors"]
    assert failing["error rate"][0] == pytest.approx(6.26)
    formats = transforms.column_formats(failing)
    assert formats == {"error rate": "%.1f %%"}  # shows "6.3 %"
    assert "%.1f %%" % failing["error rate"][0] == "6.3 %"  # noqa: UP031 (the printf format)
    assert transforms.column_formats(slowest) == {"p95 (ms)": "%.2f", "mean (ms)": "%.2f"}


def test_comparison_tables_have_units_and_percent_changes() -> None:
    report = {
        "operations": {
            "curve.fit": {
                "unit": "seconds",
                "period1": {"mean": 0.1, "count": 3},
                "period2": {"mean": 0.12, "count": 4},
                "change": {"percentage": 20.0, "direction": "degraded"},
            },
            "new": {
                "unit": "seconds",
                "period1": {"mean": None, "count": 0},
                "period2": {"mean": 0.5, "count": 1},
                "change": None,
            },
        }
    }
    ((title, table),) = transforms.comparison_tables(report)
    assert title == "Timings (ms)"
    assert list(table.columns) == [
        "operation",
        "first mean (ms)",
        "second mean (ms)",
        "first samples",
        "second samples",
        "change",
        "direction",
    ]
    assert list(table["second mean (ms)"]) == pytest.approx([120.0, 500.0])
    assert table["change"][0] == 20.0 and np.isnan(table["change"][1])
    assert transforms.column_formats(table)["change"] == "%.1f %%"


def _local(text: str) -> float:
    return pd.Timestamp(text).tz_localize(None).to_pydatetime().astimezone().timestamp()


@pytest.mark.parametrize(
    ("since", "until", "label"),
    [
        ("2026-12-01 09:00", "2026-12-01 17:00", "1 Dec 2026, 09:00 – 17:00"),
        ("2026-12-01 00:00", "2026-12-02 00:00", "1 Dec 2026, 00:00 – 24:00"),
        ("2026-11-30 22:00", "2026-12-01 06:30", "30 Nov 2026, 22:00 – 1 Dec 2026, 06:30"),
    ],
)
def test_period_label_reads_like_people_write_it(since: str, until: str, label: str) -> None:
    assert transforms.period_label(_local(since), _local(until)) == label


def test_window_headings() -> None:
    preset = transforms.Window("1 h", 0.0, 3600.0)
    assert (preset.heading, preset.within) == ("Last 1 h", "in the last 1 h")
    custom = transforms.Window("1 Dec 2026, 09:00 – 17:00", 0.0, 1.0, custom=True)
    assert custom.heading == "1 Dec 2026, 09:00 – 17:00"
    assert custom.within == "in 1 Dec 2026, 09:00 – 17:00"


def test_alert_table_has_units_in_headers_and_local_times() -> None:
    cpu = [10.0] * 3 + [95.0] * 10 + [30.0]
    history = transforms.alert_history(_resources(cpu), THRESHOLDS, min_duration_s=30)
    table = transforms.alert_table(history, utc_offset_s=3600)
    assert list(table.columns) == [
        "resource",
        "start",
        "end",
        "duration (s)",
        "peak",
        "threshold",
        "severity",
    ]
    assert str(table["start"].dt.tz) == "UTC+01:00"
    assert table["start"][0] == history["start"][0]  # the same moment, shown in local time
    assert table["duration (s)"][0] == 45.0
    assert transforms.column_formats(table) == {
        "duration (s)": "%.2f",
        "peak": "%.1f %%",
        "threshold": "%.1f %%",
    }
