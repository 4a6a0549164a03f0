"""From the store's frames to what the pages show: time windows, bucketing, alert history, totals.

Everything here is pure (frames, monitors and windows in; DataFrames and numbers out) and
imports no Streamlit, so it is tested on its own; ``readers.py`` reads the store and caches.
The rules the core also applies come from it, so the dashboard and the exporter cannot
disagree: cache totals from ``_totals``, alert runs and severity bands from ``resources``,
what counts as an error from ``_common``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
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
    "BUCKET_WIDTHS_S",
    "MAX_POINTS",
    "MIN_FILLED_POINTS",
    "MIN_POINTS",
    "PERCENT_COLUMNS",
    "PRESET_WINDOWS",
    "REFRESH_S",
    "TimeGrid",
    "Window",
    "alert_history",
    "alert_table",
    "api_buckets",
    "api_tables",
    "bucket_seconds",
    "cache_buckets",
    "cache_totals",
    "column_formats",
    "comparison_tables",
    "duration_unit",
    "headline",
    "percentile_buckets",
    "period_end",
    "period_label",
    "preset_window",
    "recent_usage",
    "refresh_seconds",
    "resource_buckets",
    "session_ids",
    "statistics_tables",
    "time_grid",
    "typical_interval",
    "width_label",
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
    """A time window in epoch seconds, with the label the sidebar shows: a preset ("1 h") or,
    ``custom``, the period picked ("1 Dec 2026, 09:00 – 17:00", see ``period_label``)."""

    label: str
    since: float
    until: float
    custom: bool = False

    @property
    def seconds(self) -> float:
        return self.until - self.since

    @property
    def heading(self) -> str:
        """ "Last 1 h", or the custom period itself."""
        return self.label if self.custom else f"Last {self.label}"

    @property
    def within(self) -> str:
        """ "in the last 1 h", or "in 1 Dec 2026, 09:00 – 17:00": for sentences."""
        return f"in {self.label}" if self.custom else f"in the last {self.label}"


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment:%b %Y}"


def period_label(since: float, until: float) -> str:
    """A period in local time as people write it: "1 Dec 2026, 09:00 – 17:00", "1 Dec 2026,
    00:00 – 24:00" (an end at the next midnight), "30 Nov 2026, 22:00 – 1 Dec 2026, 06:00"."""
    start = datetime.fromtimestamp(since).astimezone()
    end = datetime.fromtimestamp(until).astimezone()
    if start.date() == end.date():
        return f"{_day(start)}, {start:%H:%M} – {end:%H:%M}"
    if end.time() == datetime.min.time() and (end.date() - start.date()).days == 1:
        return f"{_day(start)}, {start:%H:%M} – 24:00"
    return f"{_day(start)}, {start:%H:%M} – {_day(end)}, {end:%H:%M}"


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


# -- the one bucketing rule of every time chart ---------------------------------------------------

# Round widths: each divides the next one's day, so buckets start on round clock times.
BUCKET_WIDTHS_S: tuple[int, ...] = (
    1, 2, 5, 10, 15, 30,
    60, 120, 300, 600, 900, 1800,
    3600, 7200, 10800, 21600, 43200, 86400,
)  # fmt: skip
# A time chart shows MIN_POINTS to MAX_POINTS buckets (fewer only when the data spans less
# than MIN_POINTS seconds): each width is at most 2.5 times the one before.
MIN_POINTS, MAX_POINTS = 60, 200
# Data sampled at long intervals gets wider buckets, each with a sample, down to this many.
MIN_FILLED_POINTS = 12
# Shorter than this, a chart's x axis still spans this much: ticks a second or more apart.
MIN_AXIS_SPAN_S = 10.0


def bucket_seconds(span_s: float, target_buckets: int = MAX_POINTS - 2) -> int:
    """The smallest round width (``BUCKET_WIDTHS_S``) giving at most ``target_buckets``
    buckets over ``span_s`` seconds (one day for spans longer than the list covers)."""
    for width in BUCKET_WIDTHS_S:
        if span_s / width <= target_buckets:
            return width
    return BUCKET_WIDTHS_S[-1]


def width_label(seconds: float) -> str:
    """A bucket width as people write it: ``1 s``, ``5 min``, ``6 h``, ``1 d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


def local_utc_offset(epoch: float) -> int:
    """This machine's UTC offset (seconds) at ``epoch``: what its clocks show then."""
    offset = datetime.fromtimestamp(epoch).astimezone().utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def epoch_seconds(stamps: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Epoch seconds of a timezone-aware timestamp column (any zone)."""
    delta = pd.DatetimeIndex(stamps) - pd.Timestamp(0, tz="UTC")
    return np.asarray(delta.total_seconds(), dtype=np.float64)


def _tick_formats(span_s: float) -> list[tuple[float | None, float | None, str]]:
    """(from, to) tick spacing in ms -> the tick label format: the weekday once a chart spans
    more than half a day, the date too once it spans more than three."""
    if span_s > 3 * 86400:
        seconds, minutes = "%d %b %H:%M:%S", "%a %d %b %H:%M"
    elif span_s > 12 * 3600:
        seconds, minutes = "%a %H:%M:%S", "%a %H:%M"
    else:
        seconds, minutes = "%H:%M:%S", "%H:%M"
    return [
        (None, 1000, "%H:%M:%S.%L"),  # only when zoomed in below a second
        (1000, 60_000, seconds),
        (60_000, None, minutes),
    ]


@dataclass(frozen=True)
class TimeGrid:
    """Regular buckets ``start + i * width`` (epoch seconds), ``size`` of them, shown in the
    fixed UTC offset ``utc_offset_s`` (the local one where the data starts)."""

    start: float
    width: int
    size: int
    utc_offset_s: int = 0

    @property
    def end(self) -> float:
        """Where the last bucket ends."""
        return self.start + self.size * self.width

    @property
    def zone(self) -> timezone:
        return timezone(timedelta(seconds=self.utc_offset_s))

    @property
    def zone_label(self) -> str:
        sign = "+" if self.utc_offset_s >= 0 else "-"
        hours, minutes = divmod(abs(self.utc_offset_s) // 60, 60)
        return f"UTC{sign}{hours:02d}:{minutes:02d}"

    @property
    def subtitle(self) -> str:
        """What every time chart says under its title: the bucket width and the clock."""
        return f"{width_label(self.width)} buckets, times in {self.zone_label}"

    def positions(self, stamps: pd.Series | pd.DatetimeIndex) -> np.ndarray:
        """The bucket of each timestamp (outside the grid: below 0 or from ``size`` on)."""
        index: np.ndarray = np.floor((epoch_seconds(stamps) - self.start) / self.width).astype(
            np.int64
        )
        return index

    def times(self) -> pd.DatetimeIndex:
        """Each bucket's start, as a timestamp in the grid's zone (what the x axis shows)."""
        stamps = pd.to_datetime(self.start + self.width * np.arange(self.size), unit="s", utc=True)
        return pd.DatetimeIndex(stamps).tz_convert(self.zone)

    def xaxis(self) -> dict[str, Any]:
        """The x axis of a chart over this grid: its range (at least ``MIN_AXIS_SPAN_S``, so a
        few seconds of data get ticks a second apart, never fractions of one), and tick labels
        whose format follows the spacing plotly picks (dates added once the chart spans days).
        """
        zone = self.zone
        stop = max(self.end, self.start + MIN_AXIS_SPAN_S)
        span = stop - self.start
        formats = _tick_formats(span)
        return {
            "type": "date",
            "range": [
                datetime.fromtimestamp(self.start, zone).isoformat(timespec="milliseconds")[:23],
                datetime.fromtimestamp(stop, zone).isoformat(timespec="milliseconds")[:23],
            ],
            "tickformat": formats[-1][2],
            "tickformatstops": [
                {"dtickrange": [lo, hi], "value": value} for lo, hi, value in formats
            ],
            "hoverformat": "%a %d %b %Y, %H:%M:%S",
            "showgrid": True,
        }


def typical_interval(seconds: np.ndarray, keys: np.ndarray | None = None) -> float | None:
    """The usual time between a series' consecutive samples (epoch ``seconds``), the median
    over the series when ``keys`` names each sample's: None with fewer than two samples."""
    frame = pd.DataFrame({"t": seconds, "key": 0 if keys is None else keys}).drop_duplicates()
    frame = frame.sort_values(["key", "t"])
    gaps = frame.groupby("key")["t"].diff().dropna()
    if gaps.empty:
        return None
    per_series = gaps.groupby(frame.loc[gaps.index, "key"]).median()
    return float(per_series.median())


def time_grid(
    stamps: pd.Series | pd.DatetimeIndex,
    since: float | None = None,
    until: float | None = None,
    *,
    keys: pd.Series | None = None,
    utc_offset_s: int | None = None,
) -> TimeGrid | None:
    """THE bucketing rule of every time chart: round buckets over the data in the window.

    Over the part of the window (``since``-``until``, epoch seconds) where ``stamps`` has
    data, the smallest round width (``BUCKET_WIDTHS_S``) giving at most ``MAX_POINTS``
    buckets, starting on round local times: 60 to 200 points wherever the data is dense
    enough to fill them. Data sampled at longer intervals (a sampler every 2 s, a pipeline
    run a minute) gets buckets at least 1.5 times its typical interval (``keys``: each
    sample's series, whose intervals count apart), so a bucket holds a sample and a gap in a
    line is idle time, not the sampling rhythm; never fewer than ``MIN_FILLED_POINTS`` for
    that. None when the window holds no timestamp.

    ``utc_offset_s`` is the clock the buckets align to and the charts show (default: this
    machine's, where the data starts).
    """
    seconds = epoch_seconds(stamps)
    names = None if keys is None else np.asarray(keys.astype(str))
    inside = np.ones(seconds.size, dtype=bool)
    if since is not None:
        inside &= seconds >= since
    if until is not None:
        inside &= seconds <= until
    seconds = seconds[inside]
    if seconds.size == 0:
        return None
    lo, hi = float(seconds.min()), float(seconds.max())
    span = max(hi - lo, 1.0)
    offset = local_utc_offset(lo) if utc_offset_s is None else utc_offset_s
    # floor(hi) - floor(lo) can exceed the span by a bucket each end: keep 2 in hand.
    width = bucket_seconds(span, MAX_POINTS - 2)
    interval = typical_interval(seconds, None if names is None else names[inside])
    if interval is not None:
        filled = next((w for w in BUCKET_WIDTHS_S if w >= 1.5 * interval), BUCKET_WIDTHS_S[-1])
        widest = max(
            (w for w in BUCKET_WIDTHS_S if span / w >= MIN_FILLED_POINTS),
            default=BUCKET_WIDTHS_S[0],
        )
        width = max(width, min(filled, widest))
    first = np.floor((lo + offset) / width)
    last = np.floor((hi + offset) / width)
    return TimeGrid(float(first * width - offset), width, int(last - first) + 1, offset)


def _grid_of(frame: pd.DataFrame, grid: TimeGrid | int) -> TimeGrid:
    """``grid`` itself, or for a bare width the UTC-aligned grid over the frame's timestamps."""
    if isinstance(grid, TimeGrid):
        return grid
    seconds = epoch_seconds(frame["timestamp"])
    first, last = np.floor(seconds.min() / grid), np.floor(seconds.max() / grid)
    return TimeGrid(float(first * grid), int(grid), int(last - first) + 1, 0)


def _on_grid(
    rows: list[dict[str, Any]], key: str, columns: list[str], grid: TimeGrid, fill: bool
) -> pd.DataFrame:
    """Rows (each with its ``key`` and bucket ``position``) as the bucket frame: with ``fill``,
    every bucket of every key, NaN where a bucket had nothing (a gap in the line)."""
    frame = pd.DataFrame(rows, columns=[key, "position", *columns[2:]])
    if fill:
        keys = sorted(frame[key].unique(), key=str)
        full = pd.MultiIndex.from_product([keys, range(grid.size)], names=[key, "position"])
        frame = frame.set_index([key, "position"]).reindex(full).reset_index()
    times = grid.times() if fill else grid.times().tz_convert("UTC")
    frame.insert(0, "bucket", times[frame["position"].to_numpy(dtype=np.int64)])
    return frame.drop(columns="position")[columns].reset_index(drop=True)


def _groups(
    frame: pd.DataFrame, key: str, grid: TimeGrid
) -> Iterator[tuple[Any, int, pd.DataFrame]]:
    """(key, bucket position, rows) of ``frame`` for each bucket of the grid it has rows in."""
    positions = grid.positions(frame["timestamp"])
    inside = (positions >= 0) & (positions < grid.size)
    located = frame.assign(position=positions)[inside]
    for (name, position), group in located.groupby([key, "position"], sort=True):
        yield name, int(cast(int, position)), group


def percentile_buckets(
    samples: pd.DataFrame, grid: TimeGrid | int, scale: float = 1000.0
) -> pd.DataFrame:
    """Exact p50/p90/p95/p99 of each operation per time bucket (values times ``scale``).

    ``samples`` is ``frames.metrics_frame(store)``: timestamp, operation, value. Over a
    ``TimeGrid`` (``time_grid()``) every bucket of every operation has a row, NaN (and a count
    of 0) where the operation had no sample: the chart's line breaks there. Over a bare width
    in seconds, only the buckets with samples, in UTC.
    """
    columns = ["bucket", "operation", "count", "p50", "p90", "p95", "p99"]
    if samples.empty:
        return pd.DataFrame(columns=columns)
    on = _grid_of(samples, grid)
    rows = []
    for operation, position, group in _groups(samples, "operation", on):
        values = group["value"].to_numpy(dtype=np.float64) * scale
        rows.append(
            {"operation": operation, "position": position, "count": len(values)}
            | percentiles(values)
        )
    frame = _on_grid(rows, "operation", columns, on, isinstance(grid, TimeGrid))
    frame["count"] = frame["count"].fillna(0).astype(np.int64)
    return frame


def api_buckets(requests: pd.DataFrame, grid: TimeGrid | int) -> pd.DataFrame:
    """Per endpoint and bucket: requests, p95 latency (ms) and error rate (``is_error``).

    Over a ``TimeGrid``, every bucket of every endpoint: 0 requests and NaN rates in the gaps.
    """
    columns = ["bucket", "endpoint", "requests", "p95_ms", "error_rate"]
    if requests.empty:
        return pd.DataFrame(columns=columns)
    on = _grid_of(requests, grid)
    rows = []
    for endpoint, position, group in _groups(requests, "endpoint", on):
        durations = group["duration_ms"].to_numpy(dtype=np.float64)
        rows.append(
            {
                "endpoint": endpoint,
                "position": position,
                "requests": len(group),
                "p95_ms": percentiles(durations, [95])["p95"],
                "error_rate": float(
                    error_mask(group["status_code"].to_numpy(dtype=np.float64)).mean()
                ),
            }
        )
    frame = _on_grid(rows, "endpoint", columns, on, isinstance(grid, TimeGrid))
    frame["requests"] = frame["requests"].fillna(0).astype(np.int64)
    return frame


def resource_buckets(
    samples: pd.DataFrame, grid: TimeGrid, columns: Sequence[str] = tuple(ALERT_RESOURCES)
) -> pd.DataFrame:
    """The mean of each resource column per bucket of ``grid``; NaN where nothing was sampled.

    ``samples`` has a timestamp and the ``columns`` (``recent_usage()`` or the store's).
    """
    present = [c for c in columns if c in samples]
    positions = grid.positions(samples["timestamp"]) if not samples.empty else np.array([])
    inside = (positions >= 0) & (positions < grid.size)
    means = (
        samples.loc[inside, present]
        .astype(np.float64)
        .groupby(positions[inside])
        .mean()
        .reindex(range(grid.size))
    )
    means.insert(0, "bucket", grid.times())
    return means.reset_index(drop=True)


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


def cache_buckets(snapshots: pd.DataFrame, grid: TimeGrid | int) -> pd.DataFrame:
    """Hit rate per cache and bucket, from each process's newest snapshot in the bucket.

    Over a ``TimeGrid``, every bucket of every cache: NaN where no process published.
    """
    columns = ["bucket", "cache", "hits", "misses", "hit_rate"]
    if snapshots.empty or "cache" not in snapshots:
        return pd.DataFrame(columns=columns)
    on = _grid_of(snapshots, grid)
    positions = on.positions(snapshots["timestamp"])
    inside = (positions >= 0) & (positions < on.size)
    frame = snapshots.assign(position=positions)[inside]
    newest = (
        frame.sort_values("timestamp").groupby(["cache", "pid", "position"], as_index=False).last()
    )
    rows = _summed(newest, ["cache", "position"])
    return _on_grid(rows, "cache", columns, on, isinstance(grid, TimeGrid))


# -- units and tables -----------------------------------------------------------------------

# Durations are shown in ms, or in s when the largest is above this (ms).
SECONDS_ABOVE_MS = 10_000.0
# Table columns holding percentages (6.3 for 6.3 %): shown as "6.3 %" (``column_formats``).
PERCENT_COLUMNS = ("error rate", "change", "peak", "threshold", "hit rate")
_UNIT_SUFFIXES = (" (ms)", " (s)", " (MB)")


def column_formats(frame: pd.DataFrame) -> dict[str, str]:
    """printf formats for a table's number columns: percentages as "6.3 %", values with a unit
    in their header ("p95 (ms)") to two decimals."""
    formats = {}
    for column in frame.columns:
        name = str(column)
        if name in PERCENT_COLUMNS:
            formats[name] = "%.1f %%"
        elif name.endswith(_UNIT_SUFFIXES):
            formats[name] = "%.2f"
    return formats


def duration_unit(largest_ms: float | None) -> tuple[str, float]:
    """The unit durations are shown in, and the factor from ms to it: ("ms", 1.0), or ("s",
    0.001) when ``largest_ms`` is above 10 s."""
    if largest_ms is not None and np.isfinite(largest_ms) and largest_ms > SECONDS_ABOVE_MS:
        return "s", 0.001
    return "ms", 1.0


# The statistics a table shows, in this order, and their headers.
_STATISTICS = {
    "mean": "mean",
    "p50": "p50",
    "p90": "p90",
    "p95": "p95",
    "p99": "p99",
    "min": "min",
    "max": "max",
    "std": "std dev",
}
_UNIT_NAMES = {"seconds": "s", "second": "s", "s": "s", "ms": "ms"}


def _shown_unit(stored: str, values: Sequence[Mapping[str, Any]]) -> tuple[str, float]:
    """(unit shown, factor from the stored unit) for a group of statistics in ``stored``:
    timings by their largest p99 (``duration_unit``), other units as stored."""
    to_ms = {"s": 1000.0, "ms": 1.0}.get(_UNIT_NAMES.get(stored, ""))
    if to_ms is None:
        return stored, 1.0
    largest = max((float(v.get("p99") or 0.0) for v in values), default=0.0) * to_ms
    unit, factor = duration_unit(largest)
    return unit, factor * to_ms


def statistics_tables(
    operations: Mapping[str, Mapping[str, Any]], default_unit: str = "seconds"
) -> list[tuple[str, pd.DataFrame]]:
    """Per stored unit, a table of the operations' statistics with the unit in every header:
    timings in ms (or s above 10 s, see ``duration_unit``), other units as stored.

    ``operations`` maps each operation to ``get_statistics()``-like numbers (count, mean,
    p50...), with its ``unit`` or ``default_unit``. Returns (title, table indexed by
    operation): "Timings (ms)", "Memory (MB)"...
    """
    by_unit: dict[str, dict[str, Mapping[str, Any]]] = {}
    for name, stats in operations.items():
        by_unit.setdefault(str(stats.get("unit") or default_unit), {})[name] = stats
    tables = []
    for stored, group in sorted(by_unit.items(), key=lambda item: _UNIT_NAMES.get(item[0]) != "s"):
        unit, factor = _shown_unit(stored, list(group.values()))
        rows = []
        for name, stats in group.items():
            row: dict[str, Any] = {"operation": name, "samples": int(stats.get("count") or 0)}
            for key, header in _STATISTICS.items():
                value = stats.get(key)
                row[f"{header} ({unit})" if unit else header] = (
                    float(value) * factor if value is not None else np.nan
                )
            rows.append(row)
        kind = "Timings" if _UNIT_NAMES.get(stored) else "Memory" if stored == "MB" else "Values"
        title = f"{kind} ({unit})" if unit else kind
        tables.append((title, pd.DataFrame(rows).set_index("operation")))
    return tables


def comparison_tables(report: Mapping[str, Any]) -> list[tuple[str, pd.DataFrame]]:
    """A comparison report's operations per unit: both means in the unit of the page, the
    change in percent (6.3 for 6.3 %, see ``PERCENT_COLUMNS``) and its direction."""
    operations = cast(Mapping[str, Mapping[str, Any]], report.get("operations") or {})
    by_unit: dict[str, dict[str, Mapping[str, Any]]] = {}
    for name, op in operations.items():
        by_unit.setdefault(str(op.get("unit") or "seconds"), {})[name] = op
    tables = []
    for stored, group in sorted(by_unit.items(), key=lambda item: _UNIT_NAMES.get(item[0]) != "s"):
        means = [
            {"p99": max(op["period1"].get("mean") or 0.0, op["period2"].get("mean") or 0.0)}
            for op in group.values()
        ]
        unit, factor = _shown_unit(stored, means)
        suffix = f" ({unit})" if unit else ""
        rows = []
        for name, op in group.items():
            change = op.get("change") or {}
            first, second = op["period1"].get("mean"), op["period2"].get("mean")
            rows.append(
                {
                    "operation": name,
                    f"first mean{suffix}": float(first) * factor if first is not None else np.nan,
                    f"second mean{suffix}": (
                        float(second) * factor if second is not None else np.nan
                    ),
                    "first samples": int(op["period1"].get("count") or 0),
                    "second samples": int(op["period2"].get("count") or 0),
                    "change": change.get("percentage", np.nan),
                    "direction": change.get("direction", "–"),
                }
            )
        kind = "Timings" if _UNIT_NAMES.get(stored) else "Memory" if stored == "MB" else "Values"
        tables.append((f"{kind}{suffix}", pd.DataFrame(rows)))
    return tables


def api_tables(report: Mapping[str, Any]) -> tuple[str, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The API report's tables as the page shows them: (duration unit, endpoints, slowest,
    most failing), durations in that unit and error rates in percent (6.3 for 6.3 %, see
    ``PERCENT_COLUMNS``)."""
    endpoints = cast(Mapping[str, Mapping[str, Any]], report.get("endpoints") or {})
    unit, factor = duration_unit(
        max((float(s.get("p99_ms") or 0.0) for s in endpoints.values()), default=0.0)
    )
    table = pd.DataFrame(
        [
            {
                "endpoint": name,
                "requests": int(s["count"]),
                "errors": int(s["error_count"]),
                "error rate": 100.0 * float(s["error_rate"]),
                f"p50 ({unit})": float(s["p50_ms"]) * factor,
                f"p95 ({unit})": float(s["p95_ms"]) * factor,
                f"p99 ({unit})": float(s["p99_ms"]) * factor,
            }
            for name, s in endpoints.items()
        ],
        columns=[
            "endpoint",
            "requests",
            "errors",
            "error rate",
            f"p50 ({unit})",
            f"p95 ({unit})",
            f"p99 ({unit})",
        ],
    ).sort_values("requests", ascending=False, ignore_index=True)
    slowest = pd.DataFrame(
        [
            {
                "endpoint": row["endpoint"],
                f"p95 ({unit})": float(row["p95_ms"]) * factor,
                f"mean ({unit})": float(row["mean_ms"]) * factor,
            }
            for row in report.get("slowest_endpoints") or []
        ],
        columns=["endpoint", f"p95 ({unit})", f"mean ({unit})"],
    )
    failing = pd.DataFrame(
        [
            {
                "endpoint": row["endpoint"],
                "error rate": 100.0 * float(row["error_rate"]),
                "errors": int(row["error_count"]),
            }
            for row in report.get("highest_error_endpoints") or []
        ],
        columns=["endpoint", "error rate", "errors"],
    )
    return unit, table, slowest, failing


def alert_table(history: pd.DataFrame, utc_offset_s: int | None = None) -> pd.DataFrame:
    """``alert_history()`` as the Overview shows it: local times, the duration with its unit
    (``duration (s)``), peak and threshold in percent."""
    offset = (
        local_utc_offset(time.time()) if utc_offset_s is None else utc_offset_s
    )  # the clock of the page
    zone = timezone(timedelta(seconds=offset))
    return pd.DataFrame(
        {
            "resource": history["resource"],
            "start": pd.DatetimeIndex(history["start"]).tz_convert(zone),
            "end": pd.DatetimeIndex(history["end"]).tz_convert(zone),
            "duration (s)": history["duration_s"].astype(np.float64),
            "peak": history["peak"].astype(np.float64),
            "threshold": history["threshold"].astype(np.float64),
            "severity": history["severity"],
        }
    ).reset_index(drop=True)


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
