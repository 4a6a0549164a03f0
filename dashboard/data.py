"""From the sample store to pandas: time windows, bucketing, alert history, headline numbers.

The functions here are pure (a store and a window in, DataFrames out) so they are tested
without Streamlit; the pages call the cached wrappers at the bottom, which key on the store
folder and a window rounded to the refresh period, so reruns within it read nothing again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from ptpd_calibration.monitoring import get_store
from ptpd_calibration.monitoring.api import APIPerformanceTracker
from ptpd_calibration.monitoring.models import ResourceUsage
from ptpd_calibration.monitoring.monitor import PerformanceMonitor
from ptpd_calibration.monitoring.profiler import operation_of
from ptpd_calibration.monitoring.resources import classify
from ptpd_calibration.monitoring.stats import percentiles
from ptpd_calibration.monitoring.store import METRIC, SampleStore

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
    "cached_api_frame",
    "cached_api_tracker",
    "cached_cache_stats",
    "cached_metrics_frame",
    "cached_monitor",
    "cached_profiles",
    "cached_resources",
    "has_metrics",
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

    ``samples`` is ``store.metrics_frame()``: timestamp, operation, value.
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
    """Per endpoint and bucket: requests, p95 latency (ms) and error rate (status ≥ 400)."""
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
                "error_rate": float((group["status_code"] >= 400).mean()),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _newest_per_process(snapshots: pd.DataFrame) -> pd.DataFrame:
    return snapshots.sort_values("timestamp").groupby(["cache", "pid"], as_index=False).last()


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
    newest = _newest_per_process(snapshots)
    totals = newest.groupby("cache", as_index=False).agg(
        hits=("hits", "sum"),
        misses=("misses", "sum"),
        evictions=("evictions", "sum"),
        expirations=("expirations", "sum"),
        size=("size", "sum"),
        max_size=("max_size", "sum"),
        processes=("pid", "nunique"),
    )
    if "backend" in newest:
        # A disk cache is one folder shared by its processes: each reports the same entries.
        shared = newest[newest["backend"] == "disk"].groupby("cache")[["size", "max_size"]].max()
        for name, row in shared.iterrows():
            totals.loc[totals["cache"] == name, ["size", "max_size"]] = [
                row["size"],
                row["max_size"],
            ]
    lookups = totals["hits"] + totals["misses"]
    totals["hit_rate"] = np.where(lookups > 0, totals["hits"] / lookups.where(lookups > 0, 1), 0.0)
    return totals[columns]


def cache_buckets(snapshots: pd.DataFrame, width_s: int) -> pd.DataFrame:
    """Hit rate per cache and bucket, from each process's newest snapshot in the bucket."""
    columns = ["bucket", "cache", "hits", "misses", "hit_rate"]
    if snapshots.empty or "cache" not in snapshots:
        return pd.DataFrame(columns=columns)
    frame = snapshots.assign(bucket=_bucketed(snapshots, width_s))
    newest = (
        frame.sort_values("timestamp").groupby(["cache", "pid", "bucket"], as_index=False).last()
    )
    summed = newest.groupby(["cache", "bucket"], as_index=False)[["hits", "misses"]].sum()
    lookups = summed["hits"] + summed["misses"]
    summed["hit_rate"] = np.where(lookups > 0, summed["hits"] / lookups.where(lookups > 0, 1), 0.0)
    return summed[columns]


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
    samples: pd.DataFrame, thresholds: dict[str, float], min_duration_s: float = 30.0
) -> pd.DataFrame:
    """When each resource crossed its threshold and for how long.

    A crossing is a run of consecutive samples at or above the threshold; one shorter than
    ``min_duration_s`` (a blip) is not an alert. ``thresholds`` maps "cpu"/"memory"/"disk" to
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
        above = values >= threshold
        # Runs of consecutive samples above: where `above` switches on, and where it switches off.
        edges = np.diff(np.r_[False, above, False].astype(np.int8))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        if starts.size == 0:
            continue
        durations = seconds[stops - 1] - seconds[starts]
        # reduceat spans a run and the samples below the threshold that follow it, up to the
        # next run: those can't exceed the run's own maximum.
        peaks = np.maximum.reduceat(values, starts)
        for start, stop, duration, peak in zip(starts, stops, durations, peaks, strict=True):
            if duration < min_duration_s:
                continue
            rows.append(
                {
                    "resource": resource,
                    "start": stamps.iloc[start],
                    "end": stamps.iloc[stop - 1],
                    "duration_s": float(duration),
                    "peak": float(peak),
                    "threshold": threshold,
                    "severity": classify(float(peak), threshold),
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


def headline(store: SampleStore, window: Window) -> dict[str, Any]:
    """The Overview's numbers for the window: operations timed, requests, errors, cache, images.

    Counted on the loaded monitor and tracker the other pages share, not on raw DataFrames.
    """
    directory = str(store.directory)
    monitor = cached_monitor(directory, window.since, window.until)
    tracker = cached_api_tracker(directory, window.since, window.until)
    totals = cache_totals(cached_cache_stats(directory, window.since, window.until))
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
        "images_profiled": _image_operations(
            cached_profiles(directory, window.since, window.until)
        ),
    }


# -- cached readers: keyed by store folder and window, bounded, refreshed every REFRESH_S ------
# cache_resource, not cache_data: cache_data hands out a pickled copy on every access, which for
# a week of samples costs more than reading them. Pages never mutate what they get.


# The window's end, rounded to its refresh period, is in every key: a key stands for data that
# no longer changes, so entries live until evicted (max_entries), not for a fixed ttl that
# would reload a week on every click. The ttl only frees memory of windows nobody looks at.
_TTL_S = 3600.0


@st.cache_resource(show_spinner=False)
def _store(directory: str) -> SampleStore:
    """One SampleStore per folder for the server's lifetime (the default one, in practice)."""
    default = get_store()
    return default if str(default.directory) == directory else SampleStore(directory)


@st.cache_resource(ttl=_TTL_S, max_entries=16, show_spinner=False)
def cached_metrics_frame(directory: str, since: float, until: float) -> pd.DataFrame:
    """Raw metric samples of the window (see SampleStore.metrics_frame)."""
    return _store(directory).metrics_frame(since, until)


@st.cache_resource(ttl=_TTL_S, max_entries=16, show_spinner=False)
def cached_api_frame(directory: str, since: float, until: float) -> pd.DataFrame:
    """Raw requests of the window (see SampleStore.api_frame)."""
    return _store(directory).api_frame(since, until)


@st.cache_resource(ttl=_TTL_S, max_entries=16, show_spinner=False)
def cached_resources(directory: str, since: float, until: float) -> pd.DataFrame:
    """Resource samples of the window."""
    return _store(directory).resource_samples(since, until)


@st.cache_resource(ttl=_TTL_S, max_entries=16, show_spinner=False)
def cached_cache_stats(directory: str, since: float, until: float) -> pd.DataFrame:
    """Cache snapshots of the window."""
    return _store(directory).cache_stats(since, until)


@st.cache_resource(ttl=_TTL_S, max_entries=16, show_spinner=False)
def cached_profiles(directory: str, since: float, until: float) -> pd.DataFrame:
    """Profiles of the window."""
    return _store(directory).profiles(since, until)


@st.cache_resource(ttl=_TTL_S, max_entries=8, show_spinner=False)
def cached_monitor(directory: str, since: float, until: float) -> PerformanceMonitor:
    """A read-only monitor over the window (shared by sessions; never mutated)."""
    return _store(directory).load_monitor(since, until)


@st.cache_resource(ttl=_TTL_S, max_entries=8, show_spinner=False)
def cached_api_tracker(directory: str, since: float, until: float) -> APIPerformanceTracker:
    """A read-only API tracker over the window (shared by sessions; never mutated)."""
    return _store(directory).load_api_tracker(since, until)


def has_metrics(store: SampleStore) -> bool:
    """Whether the store holds any metric series (the pages' empty state asks this)."""
    return bool(store.directory.exists() and store.series_names(METRIC))
