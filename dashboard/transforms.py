"""From the store's frames to what the pages show: time windows, bucketing, alert history, totals.

Everything here is pure (frames, monitors and windows in; DataFrames and numbers out) and
imports no Streamlit, so it is tested on its own; ``readers.py`` reads the store and caches.
The rules the core also applies come from it, so the dashboard and the exporter cannot
disagree: cache totals from ``_totals``, alert runs and severity bands from ``resources``,
what counts as an error from ``_common``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, cast

import numpy as np
import pandas as pd

from ptpd_calibration.monitoring._common import error_mask
from ptpd_calibration.monitoring._totals import sum_cache_snapshots
from ptpd_calibration.monitoring.api import APIPerformanceTracker
from ptpd_calibration.monitoring.models import ResourceUsage
from ptpd_calibration.monitoring.monitor import PerformanceMonitor
from ptpd_calibration.monitoring.profiler import operation_of
from ptpd_calibration.monitoring.resources import MIN_ALERT_DURATION_S, alert_runs, classify
from ptpd_calibration.monitoring.stats import percentiles

__all__ = [
    "ALERT_RESOURCES",
    "PRESET_WINDOWS",
    "REFRESH_S",
    "Window",
    "alert_history",
    "api_buckets",
    "bucket_seconds",
    "cache_buckets",
    "cache_totals",
    "headline",
    "percentile_buckets",
    "period_end",
    "preset_window",
    "recent_usage",
    "refresh_seconds",
    "session_ids",
]

REFRESH_S = 2.0
PRESET_WINDOWS: dict[str, timedelta] = {
    "15 min": timedelta(minutes=15),
    "1 h": timedelta(hours=1),
    "24 h": timedelta(hours=24),
    "7 d": timedelta(days=7),
}
# Resource columns watched for alerts, and the threshold setting each is held to.
ALERT_RESOURCES = {"cpu_percent": "cpu", "memory_percent": "memory", "disk_percent": "disk"}


@dataclass(frozen=True)
class Window:
    """A time window in epoch seconds, with the label the sidebar shows."""

    label: str
    since: float
    until: float

    @property
    def seconds(self) -> float:
        return self.until - self.since


def refresh_seconds(window_s: float) -> float:
    """How often a window's data is read again: every REFRESH_S for short windows, about every
    1/1000 of the window for long ones (7 d: 10 min), whose charts a few seconds can't change.
    """
    return max(REFRESH_S, float(np.round(window_s / 1000 / REFRESH_S) * REFRESH_S))


def period_end(period: float, now: float | None = None) -> float:
    """``now`` rounded up to a multiple of ``period``: reads within one period share a key."""
    now = time.time() if now is None else now
    return float(np.ceil(now / period) * period)


def preset_window(label: str, now: float | None = None) -> Window:
    """The preset ending now, its end rounded up to its refresh period (cache-friendly)."""
    if label not in PRESET_WINDOWS:
        raise ValueError(f"Unknown window {label!r}; choose one of {', '.join(PRESET_WINDOWS)}")
    length = PRESET_WINDOWS[label].total_seconds()
    until = period_end(refresh_seconds(length), now)
    return Window(label, until - length, until)


def bucket_seconds(window_s: float, target_buckets: int = 60) -> int:
    """A round bucket width giving about ``target_buckets`` points over the window."""
    for width in (1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400):
        if window_s / width <= target_buckets:
            return width
    return 86400


def _bucketed(frame: pd.DataFrame, width_s: int) -> pd.Series:
    bucketed: pd.Series = frame["timestamp"].dt.floor(f"{width_s}s")
    return bucketed


def percentile_buckets(samples: pd.DataFrame, width_s: int, scale: float = 1000.0) -> pd.DataFrame:
    """Exact p50/p90/p95/p99 of each operation per time bucket (values times ``scale``).

    ``samples`` is ``frames.metrics_frame(store)``: timestamp, operation, value.
    """
    columns = ["bucket", "operation", "count", "p50", "p90", "p95", "p99"]
    if samples.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    grouped = samples.assign(bucket=_bucketed(samples, width_s)).groupby(["operation", "bucket"])
    for (operation, bucket), group in grouped:
        values = group["value"].to_numpy(dtype=np.float64) * scale
        rows.append(
            {"bucket": bucket, "operation": operation, "count": len(values), **percentiles(values)}
        )
    return pd.DataFrame(rows, columns=columns)


def api_buckets(requests: pd.DataFrame, width_s: int) -> pd.DataFrame:
    """Per endpoint and bucket: requests, p95 latency (ms) and error rate (``is_error``)."""
    columns = ["bucket", "endpoint", "requests", "p95_ms", "error_rate"]
    if requests.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    grouped = requests.assign(bucket=_bucketed(requests, width_s)).groupby(["endpoint", "bucket"])
    for (endpoint, bucket), group in grouped:
        durations = group["duration_ms"].to_numpy(dtype=np.float64)
        rows.append(
            {
                "bucket": bucket,
                "endpoint": endpoint,
                "requests": len(group),
                "p95_ms": percentiles(durations, [95])["p95"],
                "error_rate": float(
                    error_mask(group["status_code"].to_numpy(dtype=np.float64)).mean()
                ),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _summed(newest: pd.DataFrame, by: list[str]) -> list[dict[str, Any]]:
    """Per ``by`` group of newest snapshots (one per process), their totals as a row.

    Grouped here rather than by pandas: a few hundred rows at most, and a pandas group each
    would cost more than the sums.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for snapshot in cast(list[dict[str, Any]], newest.to_dict("records")):
        groups.setdefault(tuple(snapshot[key] for key in by), []).append(snapshot)
    rows = []
    for keys in sorted(groups):
        totals = sum_cache_snapshots(groups[keys])
        rows.append(
            {**dict(zip(by, keys, strict=True)), **asdict(totals), "hit_rate": totals.hit_rate}
        )
    return rows


def cache_totals(snapshots: pd.DataFrame) -> pd.DataFrame:
    """Per cache: the newest counters of each process, summed, and the hit rate they give."""
    columns = [
        "cache",
        "hits",
        "misses",
        "evictions",
        "expirations",
        "size",
        "max_size",
        "hit_rate",
        "processes",
    ]
    if snapshots.empty or "cache" not in snapshots:
        return pd.DataFrame(columns=columns)
    newest = snapshots.sort_values("timestamp").groupby(["cache", "pid"], as_index=False).last()
    return pd.DataFrame(_summed(newest, ["cache"]), columns=columns)


def cache_buckets(snapshots: pd.DataFrame, width_s: int) -> pd.DataFrame:
    """Hit rate per cache and bucket, from each process's newest snapshot in the bucket."""
    columns = ["bucket", "cache", "hits", "misses", "hit_rate"]
    if snapshots.empty or "cache" not in snapshots:
        return pd.DataFrame(columns=columns)
    frame = snapshots.assign(bucket=_bucketed(snapshots, width_s))
    newest = (
        frame.sort_values("timestamp").groupby(["cache", "pid", "bucket"], as_index=False).last()
    )
    return pd.DataFrame(_summed(newest, ["cache", "bucket"]), columns=columns)


def recent_usage(history: list[ResourceUsage], seconds: float) -> pd.DataFrame:
    """The last ``seconds`` of a sampler's in-memory snapshots as a frame for the sparklines."""
    if not history:
        return pd.DataFrame(columns=["timestamp", "cpu_percent", "memory_percent", "disk_percent"])
    cutoff = history[-1].timestamp.timestamp() - seconds
    kept = [u for u in history if u.timestamp.timestamp() >= cutoff]
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime([u.timestamp for u in kept], utc=True),
            "cpu_percent": [u.cpu_percent for u in kept],
            "memory_percent": [u.memory_percent for u in kept],
            "disk_percent": [u.disk_percent for u in kept],
        }
    )


def alert_history(
    samples: pd.DataFrame,
    thresholds: dict[str, float],
    min_duration_s: float = MIN_ALERT_DURATION_S,
) -> pd.DataFrame:
    """When each resource crossed its threshold and for how long, newest first.

    The crossings are ``resources.alert_runs``: runs of consecutive samples at or above the
    threshold lasting at least ``min_duration_s``. ``thresholds`` maps "cpu"/"memory"/"disk" to
    the warning level; severity is the worst level the run reached.
    """
    columns = ["resource", "start", "end", "duration_s", "peak", "threshold", "severity"]
    if samples.empty:
        return pd.DataFrame(columns=columns)
    ordered = samples.sort_values("timestamp")
    stamps = ordered["timestamp"]
    seconds = (stamps - stamps.iloc[0]).dt.total_seconds().to_numpy()
    rows = []
    for column, resource in ALERT_RESOURCES.items():
        if column not in ordered or resource not in thresholds:
            continue
        threshold = thresholds[resource]
        values = ordered[column].to_numpy(dtype=np.float64)
        for first, last in alert_runs(seconds, values, threshold, min_duration_s):
            peak = float(values[first : last + 1].max())
            rows.append(
                {
                    "resource": resource,
                    "start": stamps.iloc[first],
                    "end": stamps.iloc[last],
                    "duration_s": float(seconds[last] - seconds[first]),
                    "peak": peak,
                    "threshold": threshold,
                    "severity": classify(peak, threshold),
                }
            )
    return pd.DataFrame(rows, columns=columns).sort_values(
        "start", ascending=False, ignore_index=True
    )


def session_ids(monitor: PerformanceMonitor) -> list[str]:
    """Session ids found in the metadata of the monitor's samples, most recent first."""
    newest = monitor.metadata_values("session_id")
    return sorted((s for s in newest if isinstance(s, str)), key=newest.__getitem__, reverse=True)


def _image_operations(profiles: pd.DataFrame) -> int:
    """Profiled operations that worked on an image (they carry a pixel count) and succeeded."""
    if profiles.empty or "pixels" not in profiles:
        return 0
    worked = profiles["pixels"].notna()
    if "success" in profiles:
        worked &= profiles["success"].astype(bool)
    return int(worked.sum())


def headline(
    monitor: PerformanceMonitor,
    tracker: APIPerformanceTracker,
    cache_snapshots: pd.DataFrame,
    profiles: pd.DataFrame,
) -> dict[str, Any]:
    """The Overview's numbers: operations timed, requests, errors, cache hit rate, images.

    Counted on a window's monitor and tracker (the ones the other pages share, not raw
    DataFrames), its cache snapshots and its profiles.
    """
    totals = cache_totals(cache_snapshots)
    lookups = int(totals["hits"].sum() + totals["misses"].sum()) if not totals.empty else 0
    requests = tracker.sample_count()
    return {
        "operations_timed": sum(
            monitor.sample_count(name)
            for name in monitor.get_operation_names()
            if operation_of(monitor, name) is not None  # no memory or profile CPU-time samples
        ),
        "requests": requests,
        "error_rate": tracker.get_error_rate() if requests else None,
        "cache_hit_rate": float(totals["hits"].sum()) / lookups if lookups else None,
        "images_profiled": _image_operations(profiles),
    }
