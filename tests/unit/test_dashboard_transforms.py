"""The dashboard's pure transforms: windows, bucketing, exact percentiles, cache sums, alerts."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

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
    ("window_s", "width"),
    [
        (30, 1),
        (60, 1),
        (61, 5),
        (15 * 60, 30),
        (3600, 60),
        (24 * 3600, 1800),
        (7 * 86400, 21600),
        (10 * 365 * 86400, 86400),
    ],
)
def test_bucket_seconds_picks_a_round_width_for_about_60_points(
    window_s: float, width: int
) -> None:
    assert transforms.bucket_seconds(window_s) == width


def test_bucket_seconds_honours_the_target() -> None:
    assert transforms.bucket_seconds(3600, target_buckets=12) == 300
    assert transforms.bucket_seconds(3600, target_buckets=3600) == 1


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
