"""A self-contained HTML report: ``ptpd-monitor report ... --format html`` and the Reports page.

One file that opens offline in any browser, to mail to a colleague:

- **Nothing is fetched.** plotly's JavaScript is embedded once (the first chart carries it,
  the others reuse it); no CDN, web font or image. A Content-Security-Policy in the page
  forbids any request, so a browser would refuse one rather than make it.
- **The report's numbers.** Tables and headline figures come from the report dict the JSON
  export writes (``PerformanceReport.generate_daily_report()`` and co.), which the file also
  embeds whole (``<script type="application/json" id="report-data">``); each numeric cell
  carries its exact value in ``data-value``. The charts come from the store over the report's
  window, as the dashboard's pages draw them, with the same transforms and chart builders.
- **Small enough to mail.** Each time series is cut into at most about ``MAX_POINTS`` buckets
  (exact p50/p90/p95/p99 per bucket, so no percentile is dropped), laid on a regular grid and
  sent as float32 (``x0`` + ``dx`` instead of one timestamp per point). plotly's bundle
  (about 4.6 MiB) is most of the file.
- **Escaped.** Every name a user chose (operations, endpoints, watches, metadata, settings) is
  HTML-escaped, in the tables and in the charts (plotly renders entities as text), so an
  operation named ``<script>alert(1)</script>`` shows as just that.

Times show in one fixed UTC offset, the local one at the window's start, named on every axis.

>>> from ptpd_calibration.monitoring import get_store
>>> from ptpd_calibration.monitoring.report import PerformanceReport
>>> store = get_store()  # doctest: +SKIP
>>> reporter = PerformanceReport(store.load_monitor(), store.load_api_tracker())  # doctest: +SKIP
>>> write_html_report(reporter.generate_daily_report(), store, "daily.html")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
import math
import numbers
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import psutil

from ptpd_calibration.monitoring import _nvml, frames
from ptpd_calibration.monitoring._common import write_text_atomically
from ptpd_calibration.monitoring.monitor import PerformanceMonitor
from ptpd_calibration.monitoring.profiler import operation_of, rank_bottlenecks
from ptpd_calibration.monitoring.resources import MIN_ALERT_DURATION_S
from ptpd_calibration.monitoring.settings import MonitoringSettings, get_settings
from ptpd_calibration.monitoring.store import SampleStore
from ptpd_calibration.monitoring.watches import watch_history

from . import charts, transforms

__all__ = ["MAX_POINTS", "SECTIONS", "build_html_report", "machine_facts", "write_html_report"]

#: (id, heading) of every section, in page order; each report has all of them.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary"),
    ("watches", "Fired watches"),
    ("percentiles", "Percentiles over time"),
    ("bottlenecks", "Bottlenecks"),
    ("operations", "Operation statistics"),
    ("api", "API latency and errors"),
    ("cache", "Cache hit rate"),
    ("resources", "Resource use"),
    ("machine", "Machine"),
    ("settings", "Settings"),
)
#: The most points a series of a time chart has (resource lines; the others have half).
MAX_POINTS = 240
_SERIES_POINTS = MAX_POINTS // 2
_MAX_OPERATION_CHARTS = 24
_MAX_WATCH_TRACES = 12
_MAX_SHADED = 200
_MAX_ROWS = 50
_MAX_SETTING_CHARS = 2000
_CONFIG = {"displaylogo": False, "responsive": True}
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
_SEVERITY_FILL = {"warning": "rgba(217, 164, 65, 0.25)", "critical": "rgba(200, 85, 61, 0.3)"}
_PERIOD_FILL = ("rgba(99, 110, 250, 0.08)", "rgba(0, 204, 150, 0.08)")
_PERCENT_KEYS = frozenset({"error_rate", "share_of_total", "hit_rate", "overall_error_rate"})
# Nothing may be fetched: inline scripts and styles only; images only as data or blob URLs
# (plotly's "download as PNG" draws on a canvas).
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)

_STYLE = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif;
  margin: 0; color: #1f2933; background: #f7f8fa; line-height: 1.45; }
header { background: #263238; color: #fff; padding: 1.2rem 2rem; }
header h1 { margin: 0 0 .3rem; font-size: 1.6rem; }
header p { margin: .2rem 0; color: #cfd8dc; }
nav { margin-top: .7rem; display: flex; flex-wrap: wrap; gap: .4rem 1rem; }
nav a { color: #b3e5fc; text-decoration: none; font-size: .9rem; }
main { padding: 1rem 2rem 3rem; max-width: 1400px; }
section { background: #fff; border: 1px solid #e3e7eb; border-radius: 6px;
  padding: .8rem 1.2rem 1.2rem; margin: 1rem 0; }
h2 { font-size: 1.25rem; margin: .3rem 0 .6rem; }
h3 { font-size: 1rem; margin: 1rem 0 .4rem; }
.note { color: #52606d; font-size: .9rem; }
.empty { background: #fff8e1; border-left: 4px solid #d9a441; padding: .6rem .9rem; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: .6rem 0; }
.card { border: 1px solid #e3e7eb; border-radius: 6px; padding: .5rem .9rem; min-width: 9rem; }
.card .label { color: #52606d; font-size: .8rem; }
.card .value { font-size: 1.3rem; font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: .6rem; }
@media (max-width: 1000px) { .charts { grid-template-columns: minmax(0, 1fr); } }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .85rem; margin: .4rem 0; }
th, td { border-bottom: 1px solid #e3e7eb; padding: .25rem .6rem; text-align: left;
  vertical-align: top; }
th { background: #f1f3f5; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text { overflow-wrap: break-word; max-width: 40rem; }
.critical { color: #b3261e; font-weight: 600; }
.warning { color: #9a6b00; font-weight: 600; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1.2rem;
  margin: .4rem 0; }
dl.facts dt { color: #52606d; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
footer { color: #52606d; font-size: .8rem; padding: 0 2rem 2rem; }
"""


# -- formatting ---------------------------------------------------------------------------------


def _e(value: object) -> str:
    """Any value as escaped HTML text (quotes too: the result may sit in an attribute)."""
    return html.escape(str(value), quote=True)


def _chart_text(value: object) -> str:
    """A name for plotly: it renders tags and entities it knows (``&lt;``, ``&amp;``, numeric
    ones, not ``&quot;``), so ``<`` and ``&`` become entities and the name shows as typed."""
    return html.escape(str(value), quote=False)


def _finite(value: object) -> float | None:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _number(value: object, key: str = "") -> str:
    """A number as a reader wants it: counts whole with separators, fractions of a rate as
    percentages, others to 4 significant digits (as the CSV export), never an exponent."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return f"{int(value):,}"
    number = _finite(value)
    if number is None:
        return "–" if value is None else _e(value)
    if key in _PERCENT_KEYS:
        return f"{number:.2%}"
    return str(
        np.format_float_positional(number, precision=4, unique=False, fractional=False, trim="-")
    )


def _cell(value: object, key: str = "") -> str:
    """One ``<td>``: a number right-aligned with its exact value in ``data-value``."""
    column = f' data-col="{_e(key)}"' if key else ""
    if isinstance(value, np.generic):  # repr(np.float64(1.5)) is not a number
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f'<td class="num"{column} data-value="{_e(repr(value))}">{_number(value, key)}</td>'
    if isinstance(value, bool):
        return f'<td{column} data-value="{str(value).lower()}">{"yes" if value else "no"}</td>'
    if value is None:
        return f'<td class="num"{column}>–</td>'
    if key == "severity" and isinstance(value, str) and value in _SEVERITY_FILL:
        return f'<td{column} class="{_e(value)}">{_e(value)}</td>'
    return f'<td class="text"{column}>{_e(value)}</td>'


def _table(
    table_id: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Mapping[str, Any]],
    key: str | None = None,
    limit: int | None = None,
) -> str:
    """A table of ``rows`` with ``columns`` ``(key, heading)``; ``key`` names each row's
    ``data-key`` (the operation, the endpoint) for whoever reads the file back."""
    shown = rows if limit is None else rows[:limit]
    head = "".join(f'<th scope="col">{_e(heading)}</th>' for _, heading in columns)
    body = []
    for row in shown:
        marker = f' data-key="{_e(row[key])}"' if key is not None else ""
        cells = "".join(_cell(row.get(column), column) for column, _ in columns)
        body.append(f"<tr{marker}>{cells}</tr>")
    more = ""
    if len(rows) > len(shown):
        more = f'<p class="note">and {len(rows) - len(shown):,} more (not shown).</p>'
    return (
        f'<div class="scroll"><table id="{_e(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{more}"
    )


def _cards(items: Sequence[tuple[str, object, str]]) -> str:
    """Headline numbers: (label, value, key for the format)."""
    cards = "".join(
        f'<div class="card" data-key="{_e(key)}"><div class="label">{_e(label)}</div>'
        f'<div class="value">{_number(value, key)}</div></div>'
        for label, value, key in items
    )
    return f'<div class="cards">{cards}</div>'


def _facts(items: Sequence[tuple[str, str]]) -> str:
    """A definition list; the values are already HTML."""
    rows = "".join(f"<dt>{_e(label)}</dt><dd>{value}</dd>" for label, value in items)
    return f'<dl class="facts">{rows}</dl>'


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def _empty(text: str) -> str:
    return f'<p class="empty">{text}</p>'


# -- time ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Clock:
    """Epoch seconds shown in one fixed UTC offset (the local one at the window's start)."""

    offset: timedelta

    @property
    def zone(self) -> timezone:
        return timezone(self.offset)

    @property
    def label(self) -> str:
        seconds = int(self.offset.total_seconds())
        sign = "+" if seconds >= 0 else "-"
        hours, minutes = divmod(abs(seconds) // 60, 60)
        return f"UTC{sign}{hours:02d}:{minutes:02d}"

    def text(self, epoch: float) -> str:
        return datetime.fromtimestamp(epoch, self.zone).strftime("%Y-%m-%d %H:%M:%S")

    def wall(self, epoch: float) -> str:
        """A plotly date: the wall time in this offset, to the millisecond."""
        return datetime.fromtimestamp(epoch, self.zone).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _epoch(iso: str) -> float:
    moment = datetime.fromisoformat(iso)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _seconds(stamps: pd.Series) -> np.ndarray:
    """Epoch seconds of a UTC timestamp column."""
    delta = stamps - pd.Timestamp(0, tz="UTC")
    return np.asarray(delta.dt.total_seconds(), dtype=np.float64)


@dataclass(frozen=True)
class _Grid:
    """Regular buckets ``start + i * width`` (epoch seconds) covering a span, ``size`` of them."""

    start: float
    width: int
    size: int

    @classmethod
    def over(cls, lo: float, hi: float, points: int) -> _Grid:
        # The widths, and the epoch-aligned floor, are the dashboard's (transforms).
        width = transforms.bucket_seconds(max(hi - lo, 1.0), points)
        first, last = math.floor(lo / width), math.floor(hi / width)
        return cls(float(first * width), width, int(last - first) + 1)

    def index(self, seconds: np.ndarray) -> np.ndarray:
        return np.floor((seconds - self.start) / self.width).astype(np.int64)


def _on_grid(buckets: pd.DataFrame, key: str, grid: _Grid) -> pd.DataFrame:
    """``buckets`` (a transforms frame: bucket, key, values) with every grid bucket of every
    key, the bucket as its grid index and NaN where a bucket had no samples (a gap)."""
    indexed = buckets.assign(bucket=grid.index(_seconds(buckets["bucket"])))
    keys = sorted(indexed[key].unique(), key=str)
    full = pd.MultiIndex.from_product([keys, range(grid.size)], names=[key, "bucket"])
    return indexed.set_index([key, "bucket"]).reindex(full).reset_index()


def _compact(figure: go.Figure, grid: _Grid, clock: _Clock) -> go.Figure:
    """Each trace's x (grid indices) becomes ``x0`` + ``dx`` and its y float32: a series costs
    about 5 bytes a point, not one timestamp string each."""
    for trace in figure.data:
        y = np.asarray(trace.y, dtype=np.float32)
        trace.y = None  # plotly skips a new value equal to the old one: float64 would stay
        trace.update(x=None, x0=clock.wall(grid.start), dx=grid.width * 1000, y=y)
    figure.update_xaxes(type="date", title_text=f"time ({clock.label})")
    return figure


# -- what the report covers -------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    """The report's windows: labelled as the report names them, and merged for reading."""

    kind: str
    periods: tuple[tuple[str, float, float], ...]
    clock: _Clock

    @property
    def windows(self) -> list[tuple[float, float]]:
        """The periods, overlapping ones merged, oldest first (each read once)."""
        merged: list[tuple[float, float]] = []
        for _, lo, hi in sorted(self.periods, key=lambda p: p[1]):
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        return merged


def _scope(report: Mapping[str, Any]) -> _Scope:
    kind = str(report.get("report_type", "report"))
    periods: list[tuple[str, float, float]] = []
    if kind == "comparison":
        for key, label in (("period1", "First period"), ("period2", "Second period")):
            period = (report.get("periods") or {}).get(key)
            if period:
                periods.append((label, _epoch(period["start"]), _epoch(period["end"])))
    elif report.get("period"):
        period = report["period"]
        label = "Day" if kind == "daily" else "Period"
        periods.append((label, _epoch(period["start"]), _epoch(period["end"])))
    first = periods[0][1] if periods else datetime.now().timestamp()
    offset = datetime.fromtimestamp(first).astimezone().utcoffset() or timedelta(0)
    return _Scope(kind, tuple(periods), _Clock(offset))


class _Reads:
    """The store's frames over the report's windows (empty without a store: never creates one)."""

    def __init__(self, store: SampleStore, scope: _Scope) -> None:
        self.store, self.scope = store, scope
        self.exists = store.directory.is_dir()

    def _over(self, read: Callable[[float, float], pd.DataFrame]) -> pd.DataFrame:
        if not self.exists or not self.scope.windows:
            return pd.DataFrame()
        parts = [read(lo, hi) for lo, hi in self.scope.windows]
        kept = [part for part in parts if not part.empty]
        if not kept:
            return parts[0]
        return kept[0] if len(kept) == 1 else pd.concat(kept, ignore_index=True)

    def metrics(self, operations: Sequence[str]) -> pd.DataFrame:
        if not operations:
            return pd.DataFrame()
        return self._over(lambda lo, hi: frames.metrics_frame(self.store, lo, hi, operations))

    def requests(self) -> pd.DataFrame:
        return self._over(lambda lo, hi: frames.api_frame(self.store, lo, hi))

    def caches(self) -> pd.DataFrame:
        return self._over(lambda lo, hi: frames.cache_stats(self.store, lo, hi))

    def resources(self) -> pd.DataFrame:
        return self._over(lambda lo, hi: frames.resource_samples(self.store, lo, hi))

    def watch_events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for lo, hi in self.scope.windows:
            events.extend(watch_history(self.store, lo, hi))
        return events


def _clipped(seconds: np.ndarray, scope: _Scope) -> tuple[float, float]:
    """The span of non-empty ``seconds``, within the report's windows."""
    lo, hi = float(seconds.min()), float(seconds.max())
    if scope.windows:
        lo, hi = max(lo, scope.windows[0][0]), min(hi, scope.windows[-1][1])
    return lo, max(hi, lo)


def _span(frame: pd.DataFrame, scope: _Scope) -> tuple[float, float] | None:
    """The time a frame's samples cover (a chart's x axis), None without samples."""
    if frame.empty or "timestamp" not in frame:
        return None
    return _clipped(_seconds(frame["timestamp"]), scope)


# -- charts -------------------------------------------------------------------------------------


class _Figures:
    """Figures as HTML: the first carries plotly's bundle, the rest use it."""

    def __init__(self, clock: _Clock, periods: Sequence[tuple[str, float, float]]) -> None:
        self.clock, self.periods, self.count = clock, periods, 0

    def html(self, figure: go.Figure, *, timeline: bool = False) -> str:
        figure.update_layout(
            template="none",
            font={"family": _FONT, "size": 12},
            paper_bgcolor="white",
            plot_bgcolor="white",
            hoverlabel={"namelength": -1},
        )
        # The "none" template has no automargin: long labels would be cut off.
        figure.update_xaxes(gridcolor="#eceff1", zeroline=False, automargin=True)
        figure.update_yaxes(gridcolor="#eceff1", zeroline=False, automargin=True)
        # The legend at the figure's foot, below the axis, its labels and its title.
        figure.update_layout(
            legend={
                "orientation": "h",
                "yref": "container",
                "y": 0,
                "yanchor": "bottom",
                "x": 0,
                "xanchor": "left",
            }
        )
        if timeline:
            figure.update_layout(margin={"l": 50, "r": 20, "t": 40, "b": 10})
            self._shade_periods(figure)
        self.count += 1
        text: str = figure.to_html(
            full_html=False,
            include_plotlyjs=self.count == 1,
            config=_CONFIG,
            div_id=f"chart-{self.count}",
        )
        return f'<div class="chart">{text}</div>'

    def _shade_periods(self, figure: go.Figure) -> None:
        """A comparison's two periods, lightly shaded and labelled, behind its time charts."""
        if len(self.periods) < 2:
            return
        shapes = list(figure.layout.shapes or ())
        for index, (label, lo, hi) in enumerate(self.periods):
            shapes.append(
                {
                    "type": "rect",
                    "xref": "x",
                    "yref": "paper",
                    "x0": self.clock.wall(lo),
                    "x1": self.clock.wall(hi),
                    "y0": 0,
                    "y1": 1,
                    "fillcolor": _PERIOD_FILL[index % 2],
                    "line": {"width": 0},
                    "layer": "below",
                    "label": {"text": label, "textposition": "top left", "font": {"size": 10}},
                }
            )
        figure.update_layout(shapes=shapes)


def _escaped_column(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """``column`` as chart text (see ``_chart_text``)."""
    return frame.assign(**{column: frame[column].map(_chart_text)})


def _percentile_figures(
    samples: pd.DataFrame, order: Sequence[str], figures: _Figures, span: tuple[float, float]
) -> tuple[list[str], _Grid | None]:
    """One chart per operation (the most total time first): exact percentiles per bucket."""
    if samples.empty:
        return [], None
    grid = _Grid.over(*span, _SERIES_POINTS)
    buckets = transforms.percentile_buckets(samples, grid.width)
    shown = [name for name in order if name in set(buckets["operation"])][:_MAX_OPERATION_CHARTS]
    parts = []
    for name in shown:
        mine = _on_grid(buckets[buckets["operation"] == name], "operation", grid)
        figure = charts.percentile_lines(_escaped_column(mine, "operation"), unit="ms")
        for trace in figure.data:  # "p95": the title names the operation
            trace.name = str(trace.name).rsplit(" ", 1)[-1]
        figure.update_layout(title={"text": _chart_text(name)}, height=320)
        parts.append(figures.html(_compact(figure, grid, figures.clock), timeline=True))
    return parts, grid


def _bottleneck_figure(ranking: Sequence[Mapping[str, Any]], title: str, figures: _Figures) -> str:
    rows = [{**row, "operation": _chart_text(row["operation"])} for row in ranking]
    figure = charts.bottleneck_bar(rows)
    figure.update_layout(title={"text": _chart_text(title)})
    return figures.html(figure)


def _rate_figures(
    requests: pd.DataFrame, figures: _Figures, span: tuple[float, float]
) -> tuple[list[str], _Grid | None]:
    if requests.empty:
        return [], None
    grid = _Grid.over(*span, _SERIES_POINTS)
    buckets = _on_grid(transforms.api_buckets(requests, grid.width), "endpoint", grid)
    buckets = _escaped_column(buckets, "endpoint")
    latency = charts.rate_lines(
        buckets, "bucket", "p95_ms", "endpoint", "p95 latency over time", "ms"
    )
    errors = charts.rate_lines(
        buckets.assign(error_pct=buckets["error_rate"] * 100),
        "bucket",
        "error_pct",
        "endpoint",
        "Error rate over time",
        "%",
    )
    return [
        figures.html(_compact(latency, grid, figures.clock), timeline=True),
        figures.html(_compact(errors, grid, figures.clock), timeline=True),
    ], grid


def _resource_columns(samples: pd.DataFrame) -> dict[str, pd.Series]:
    """The percentages a resource sample holds: CPU, memory, disk, and each GPU's."""
    columns: dict[str, pd.Series] = {}
    for column, label in (
        ("cpu_percent", "CPU %"),
        ("memory_percent", "Memory %"),
        ("disk_percent", "Disk %"),
    ):
        if column in samples:
            columns[label] = pd.to_numeric(samples[column], errors="coerce")
    index = 0
    while f"gpu{index}_utilization_percent" in samples:
        prefix = f"gpu{index}_"
        columns[f"GPU {index} %"] = pd.to_numeric(
            samples[prefix + "utilization_percent"], errors="coerce"
        )
        used, total = prefix + "memory_used_mb", prefix + "memory_total_mb"
        if used in samples and total in samples:
            share = pd.to_numeric(samples[used], errors="coerce") / pd.to_numeric(
                samples[total], errors="coerce"
            )
            columns[f"GPU {index} memory %"] = share * 100
        index += 1
    return columns


def _resource_figure(
    samples: pd.DataFrame,
    history: pd.DataFrame,
    figures: _Figures,
    span: tuple[float, float],
) -> tuple[str, _Grid]:
    """Bucket means of each percentage, with the alert periods shaded by severity."""
    grid = _Grid.over(*span, MAX_POINTS)
    index = grid.index(_seconds(samples["timestamp"]))
    figure = go.Figure()
    for label, values in _resource_columns(samples).items():
        means = values.groupby(index).mean().reindex(range(grid.size))
        figure.add_trace(go.Scatter(x=np.arange(grid.size), y=means, mode="lines", name=label))
    _compact(figure, grid, figures.clock)
    clock = figures.clock
    shapes = [
        {
            "type": "rect",
            "xref": "x",
            "yref": "paper",
            "x0": clock.wall(pd.Timestamp(row["start"]).timestamp()),
            "x1": clock.wall(pd.Timestamp(row["end"]).timestamp()),
            "y0": 0,
            "y1": 1,
            "fillcolor": _SEVERITY_FILL.get(str(row["severity"]), _SEVERITY_FILL["warning"]),
            "line": {"width": 0},
            "layer": "below",
        }
        for row in history.head(_MAX_SHADED).to_dict("records")
    ]
    figure.update_layout(
        shapes=shapes,
        height=360,
        title={"text": "Resource use (bucket means; shaded: alert periods)"},
        yaxis={"title": {"text": "%"}, "range": [0, 100]},
        legend={"orientation": "h"},
        margin={"l": 40, "r": 30, "t": 40, "b": 10},
    )
    return figures.html(figure, timeline=True), grid


def _watch_figure(
    events: Sequence[Mapping[str, Any]], figures: _Figures, span: tuple[float, float]
) -> str:
    """Firings per bucket of each watch (the most firing ones; the rest summed)."""
    grid = _Grid.over(*span, _SERIES_POINTS)
    frame = pd.DataFrame(
        {
            "watch": [str(event.get("watch", "?")) for event in events],
            "ts": [float(event.get("ts", 0.0)) for event in events],
        }
    )
    top = list(frame["watch"].value_counts().index[:_MAX_WATCH_TRACES])
    frame["watch"] = frame["watch"].where(frame["watch"].isin(top), "other watches")
    frame["bucket"] = grid.index(frame["ts"].to_numpy(dtype=np.float64))
    figure = go.Figure()
    for name in [*top, "other watches"]:
        mine = frame[frame["watch"] == name]
        if mine.empty:
            continue
        counts = mine.groupby("bucket").size().reindex(range(grid.size), fill_value=0)
        figure.add_trace(go.Bar(x=np.arange(grid.size), y=counts, name=_chart_text(name)))
    _compact(figure, grid, figures.clock)
    figure.update_layout(
        barmode="stack",
        height=300,
        title={"text": "Watch firings over time"},
        yaxis={"title": {"text": "firings"}},
        legend={"orientation": "h"},
        margin={"l": 40, "r": 30, "t": 40, "b": 10},
    )
    return figures.html(figure, timeline=True)


def _mean_comparison_figure(operations: Mapping[str, Any], figures: _Figures) -> str | None:
    """Each timed operation's mean in both periods (ms), side by side."""
    timed = [
        (name, op)
        for name, op in operations.items()
        if op.get("unit") == "seconds"
        and op["period1"].get("mean") is not None
        and op["period2"].get("mean") is not None
    ]
    if not timed:
        return None
    names = [_chart_text(name) for name, _ in timed]
    figure = go.Figure(
        [
            go.Bar(
                x=names,
                y=[1000 * float(op[key]["mean"]) for _, op in timed],
                name=label,
            )
            for key, label in (("period1", "first period"), ("period2", "second period"))
        ]
    )
    figure.update_layout(
        barmode="group",
        height=360,
        title={"text": "Mean per operation, both periods"},
        yaxis={"title": {"text": "ms"}},
        legend={"orientation": "h"},
        margin={"l": 40, "r": 30, "t": 40, "b": 10},
    )
    return figures.html(figure)


# -- the machine and the settings ---------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version() -> str:
    try:
        return metadata.version("ptpd-monitor")
    except metadata.PackageNotFoundError:
        return "unknown"


def machine_facts() -> list[tuple[str, str]]:
    """(label, plain text) of the machine building the report: host, OS, CPU model and cores,
    memory and GPU names (NVML; none without an NVIDIA driver)."""
    physical = psutil.cpu_count(logical=False)
    logical = psutil.cpu_count(logical=True) or os.cpu_count()
    cores = f"{physical or '?'} physical, {logical or '?'} logical"
    memory = psutil.virtual_memory().total
    gpus = [
        f"GPU {gpu.index}: {gpu.name}"
        + (f" ({gpu.memory_total_mb / 1024:.0f} GiB)" if gpu.memory_total_mb else "")
        for gpu in _nvml.gpu_snapshots()
    ]
    return [
        ("Host", platform.node() or "unknown"),
        ("Operating system", platform.platform()),
        ("CPU", _cpu_model()),
        ("CPU cores", cores),
        ("Memory", f"{memory / 2**30:.1f} GiB"),
        ("GPUs", "; ".join(gpus) if gpus else "none detected (no NVIDIA driver or GPU)"),
        ("Python", platform.python_version()),
        ("ptpd-monitor", _version()),
    ]


def _setting_text(value: object) -> str:
    text = str(value)
    if len(text) > _MAX_SETTING_CHARS:
        text = text[:_MAX_SETTING_CHARS] + f"… ({len(text):,} characters)"
    return text


# -- the sections -------------------------------------------------------------------------------


@dataclass
class _Context:
    report: Mapping[str, Any]
    scope: _Scope
    reads: _Reads
    figures: _Figures
    monitor: PerformanceMonitor | None
    settings: MonitoringSettings
    grids: dict[str, _Grid]

    def loaded_monitor(self) -> PerformanceMonitor:
        """The monitor over the report's windows (the one given, else read once)."""
        if self.monitor is None:
            windows = self.scope.windows
            if self.reads.exists and windows:
                self.monitor = self.reads.store.load_monitor(windows[0][0], windows[-1][1])
            else:
                self.monitor = PerformanceMonitor(max_history=1)
        return self.monitor


def _is_empty(report: Mapping[str, Any]) -> bool:
    api = report.get("api") or {}
    if report.get("report_type") == "comparison":
        return not report.get("period1") and not report.get("period2")
    return not (report.get("summary") or {}).get("samples") and not api.get("total_requests")


def _window_html(scope: _Scope) -> str:
    clock = scope.clock
    if not scope.periods:
        return "no samples, so no period"
    parts = [
        f"{_e(label)}: {_e(clock.text(lo))} → {_e(clock.text(hi))} ({_e(clock.label)}); "
        f"UTC {_e(datetime.fromtimestamp(lo, UTC).isoformat(timespec='seconds'))} → "
        f"{_e(datetime.fromtimestamp(hi, UTC).isoformat(timespec='seconds'))}"
        for label, lo, hi in scope.periods
    ]
    return "<br>".join(parts)


def _summary(ctx: _Context) -> str:
    report, scope = ctx.report, ctx.scope
    facts = [("Report", _e(scope.kind))]
    if "date" in report:
        facts.append(("Day", _e(report["date"])))
    if "session_id" in report:
        facts.append(("Session", f"<code>{_e(report['session_id'])}</code>"))
    facts.append(("Window", _window_html(scope)))
    facts.append(("Generated", _e(report.get("generated_at", "-"))))
    parts = [_facts(facts)]
    if _is_empty(report):
        what = (
            f"with session_id {_e(report['session_id'])}"
            if scope.kind == "session"
            else "in this window"
        )
        parts.append(
            _empty(
                f"No samples {what}: no operation was timed and no request tracked. "
                "The app records into the store while it runs (or try <code>ptpd-monitor "
                "demo</code>)."
            )
        )
    if scope.kind == "comparison":
        summary = report.get("summary") or {}
        parts.append(
            _cards(
                [
                    ("Operations, first period", len(report.get("period1") or {}), ""),
                    ("Operations, second period", len(report.get("period2") or {}), ""),
                    ("Improved", summary.get("improved", 0), ""),
                    ("Degraded", summary.get("degraded", 0), ""),
                    ("Unchanged", summary.get("unchanged", 0), ""),
                ]
            )
        )
    else:
        summary = report.get("summary") or {}
        api = report.get("api") or {}
        cards: list[tuple[str, object, str]] = [
            ("Operations", summary.get("operations", 0), "operations"),
            ("Samples", summary.get("samples", 0), "samples"),
        ]
        if api:
            rate_key = "overall_error_rate" if "overall_error_rate" in api else "error_rate"
            cards += [
                ("API requests", api.get("total_requests", 0), "total_requests"),
                ("API errors", api.get("total_errors", 0), "total_errors"),
                ("API error rate", api.get(rate_key), "error_rate"),
            ]
            if "overall_p95_ms" in api:
                cards.append(("API p95 (ms)", api.get("overall_p95_ms"), "overall_p95_ms"))
            elif "mean_ms" in api:
                cards.append(("API mean (ms)", api.get("mean_ms"), "mean_ms"))
        parts.append(_cards(cards))
    return "".join(parts)


def _watches(ctx: _Context) -> str:
    events = ctx.reads.watch_events()
    if not events:
        return _note(
            "No watch fired in this window. (Watches: PTPD_MONITORING_WATCHES, the watches "
            "file and the built-in regression watches; <code>ptpd-monitor watch</code> and "
            "the dashboard judge them and store each firing.)"
        )
    clock = ctx.scope.clock
    summary: dict[str, dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: float(e.get("ts", 0.0))):
        name = str(event.get("watch", "?"))
        row = summary.get(name)
        if row is None:
            row = summary[name] = {
                "watch": name,
                "target": event.get("target"),
                "stat": event.get("stat"),
                "firings": 0,
                "severity": "warning",
                "first": float(event.get("ts", 0.0)),
            }
        row["firings"] += 1
        if event.get("severity") == "critical":
            row["severity"] = "critical"
        row["last"] = float(event.get("ts", 0.0))
        row["message"] = event.get("message")
        row["builtin"] = bool(event.get("builtin"))
    rows = sorted(summary.values(), key=lambda r: float(r["last"]), reverse=True)
    for row in rows:
        row["first"], row["last"] = clock.text(row["first"]), clock.text(row["last"])
    stamps = np.array([float(e.get("ts", 0.0)) for e in events])
    parts = [_watch_figure(events, ctx.figures, _clipped(stamps, ctx.scope))]
    parts.append(
        _table(
            "watches-table",
            [
                ("watch", "watch"),
                ("target", "target"),
                ("stat", "statistic"),
                ("severity", "worst severity"),
                ("firings", "firings stored"),
                ("first", f"first ({clock.label})"),
                ("last", f"last ({clock.label})"),
                ("builtin", "built-in"),
                ("message", "last message"),
            ],
            rows,
            key="watch",
            limit=_MAX_ROWS,
        )
    )
    parts.append(_note(f"{len(events):,} firings stored (at most one per watch a minute)."))
    return "".join(parts)


def _timed_operations(ctx: _Context) -> list[str]:
    """Timed series (no memory, no profile CPU-time companions), the most total time first."""
    monitor = ctx.loaded_monitor()
    operations = ctx.report.get("operations") or {}
    timed = [n for n in monitor.get_operation_names() if operation_of(monitor, n) is not None]
    if ctx.scope.kind == "comparison":
        timed = [n for n in timed if n in operations]

    def total(name: str) -> float:
        stats = operations.get(name) or {}
        if ctx.scope.kind == "comparison":
            stats = stats.get("period2") or {}
        mean, count = _finite(stats.get("mean")), stats.get("count") or 0
        return (mean or 0.0) * float(count)

    return sorted(timed, key=total, reverse=True)


def _session_samples(ctx: _Context, timed: Sequence[str]) -> pd.DataFrame:
    """The session's own timed samples (those whose metadata carries its session_id)."""
    found = ctx.loaded_monitor().samples_with_metadata("session_id", ctx.report["session_id"])
    parts = [
        pd.DataFrame(
            {
                "timestamp": pd.to_datetime([m.timestamp for m in metrics], utc=True),
                "operation": name,
                "value": [m.value for m in metrics],
            }
        )
        for name, metrics in found.items()
        if name in timed and metrics
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _percentiles(ctx: _Context) -> str:
    order = _timed_operations(ctx)
    if ctx.scope.kind == "session":
        samples = _session_samples(ctx, order)
        source = "the session's own samples"
    else:
        samples = ctx.reads.metrics(order)
        source = "every sample in the window"
    span = _span(samples, ctx.scope)
    if span is None:
        return _note("No timed operation in this window.")
    parts, grid = _percentile_figures(samples, order, ctx.figures, span)
    assert grid is not None
    ctx.grids["percentiles"] = grid
    shown = min(len(parts), _MAX_OPERATION_CHARTS)
    note = (
        f"Exact p50, p90, p95 and p99 of {source} per {grid.width:,} s bucket, in ms; "
        f"{shown} operation(s), the most total time first."
    )
    if len(order) > shown:
        note += f" {len(order) - shown} more in the statistics table."
    return _note(note) + f'<div class="charts">{"".join(parts)}</div>'


_BOTTLENECK_COLUMNS = [
    ("operation", "operation"),
    ("count", "count"),
    ("share_of_total", "share of time"),
    ("total_time", "total (s)"),
    ("mean_time", "mean (s)"),
    ("median_time", "median (s)"),
    ("p90_time", "p90 (s)"),
    ("max_time", "max (s)"),
    ("slowdown_factor", "p90 / median"),
    ("unstable", "unstable"),
]


def _bottlenecks(ctx: _Context) -> str:
    report = ctx.report
    if ctx.scope.kind == "session":
        return _note("A session report ranks no bottlenecks; see the statistics below.")
    if ctx.scope.kind == "comparison":
        monitor = ctx.loaded_monitor()
        parts = []
        for index, (label, lo, hi) in enumerate(ctx.scope.periods, start=1):
            ranking = rank_bottlenecks(monitor, time_range=(lo, hi))
            parts.append(f"<h3>{_e(label)}</h3>")
            if not ranking:
                parts.append(_note("No timed operation in this period."))
                continue
            parts.append(_bottleneck_figure(ranking, f"Bottlenecks, {label.lower()}", ctx.figures))
            parts.append(
                _table(f"bottlenecks-table-{index}", _BOTTLENECK_COLUMNS, ranking, key="operation")
            )
        return "".join(parts)
    ranking = report.get("bottlenecks") or []
    if not ranking:
        return _note("No timed operation in this window.")
    return _bottleneck_figure(ranking, "Bottlenecks", ctx.figures) + _table(
        "bottlenecks-table", _BOTTLENECK_COLUMNS, ranking, key="operation"
    )


_STAT_COLUMNS = [
    ("count", "count"),
    ("mean", "mean"),
    ("median", "median"),
    ("p50", "p50"),
    ("p90", "p90"),
    ("p95", "p95"),
    ("p99", "p99"),
    ("min", "min"),
    ("max", "max"),
    ("std", "std"),
]


def _operations(ctx: _Context) -> str:
    report = ctx.report
    operations: Mapping[str, Any] = report.get("operations") or {}
    if not operations:
        return _note("No operation has samples in this report.")
    if ctx.scope.kind == "comparison":
        rows = [
            {
                "operation": name,
                "unit": op.get("unit"),
                "period1_mean": op["period1"].get("mean"),
                "period1_count": op["period1"].get("count", 0),
                "period2_mean": op["period2"].get("mean"),
                "period2_count": op["period2"].get("count", 0),
                **{k: v for k, v in (op.get("change") or {}).items()},
            }
            for name, op in operations.items()
        ]
        figure = _mean_comparison_figure(operations, ctx.figures)
        table = _table(
            "operations-table",
            [
                ("operation", "operation"),
                ("unit", "unit"),
                ("period1_mean", "first mean"),
                ("period1_count", "first count"),
                ("period2_mean", "second mean"),
                ("period2_count", "second count"),
                ("absolute", "change"),
                ("percentage", "change %"),
                ("direction", "direction"),
            ],
            rows,
            key="operation",
        )
        note = _note("Means in each operation's unit; within ±5 % is unchanged.")
        return (figure or "") + note + table
    columns = [("operation", "operation"), ("unit", "unit"), *_STAT_COLUMNS]
    if any("total" in stats for stats in operations.values()):
        columns.append(("total", "total"))
    rows = [{"operation": name, **stats} for name, stats in operations.items()]
    return _note("In each operation's own unit (timings in seconds).") + _table(
        "operations-table", columns, rows, key="operation"
    )


def _api(ctx: _Context) -> str:
    report = ctx.report
    requests = ctx.reads.requests()
    span = _span(requests, ctx.scope)
    parts: list[str] = []
    api = report.get("api") or {}
    if ctx.scope.kind == "comparison":
        parts.append(_note("A comparison report covers operations; the charts show both periods."))
    elif ctx.scope.kind == "session":
        parts.append(
            _note(
                "The totals are the session's requests; the charts every request in the "
                "session's period."
            )
        )
    if span is not None:
        charts_html, grid = _rate_figures(requests, ctx.figures, span)
        if grid is not None:
            ctx.grids["api"] = grid
            parts.append(f'<div class="charts">{"".join(charts_html)}</div>')
            parts.append(_note(f"p95 and error rate (status ≥ 400) per {grid.width:,} s bucket."))
    endpoints: Mapping[str, Any] = api.get("endpoints") or {}
    if endpoints:
        rows = sorted(
            ({"endpoint": name, **stats} for name, stats in endpoints.items()),
            key=lambda row: -int(row.get("count", 0)),
        )
        parts.append(
            _table(
                "endpoints-table",
                [
                    ("endpoint", "endpoint"),
                    ("count", "requests"),
                    ("error_count", "errors"),
                    ("error_rate", "error rate"),
                    ("mean_ms", "mean ms"),
                    ("p50_ms", "p50 ms"),
                    ("p90_ms", "p90 ms"),
                    ("p95_ms", "p95 ms"),
                    ("p99_ms", "p99 ms"),
                    ("max_ms", "max ms"),
                ],
                rows,
                key="endpoint",
            )
        )
    if span is None and not endpoints:
        parts.append(_note("No request tracked in this window."))
    return "".join(parts)


def _cache(ctx: _Context) -> str:
    snapshots = ctx.reads.caches()
    totals = transforms.cache_totals(snapshots)
    span = _span(snapshots, ctx.scope)
    if totals.empty or span is None:
        return _note("No cache statistics in this window.")
    grid = _Grid.over(*span, _SERIES_POINTS)
    ctx.grids["cache"] = grid
    buckets = _on_grid(transforms.cache_buckets(snapshots, grid.width), "cache", grid)
    figure = charts.cache_hit_rate_lines(_escaped_column(buckets, "cache"))
    chart = ctx.figures.html(_compact(figure, grid, ctx.figures.clock), timeline=True)
    rows = totals.to_dict("records")
    table = _table(
        "cache-table",
        [
            ("cache", "cache"),
            ("hit_rate", "hit rate"),
            ("hits", "hits"),
            ("misses", "misses"),
            ("evictions", "evictions"),
            ("expirations", "expirations"),
            ("size", "size"),
            ("max_size", "max size"),
            ("processes", "processes"),
        ],
        [{str(k): v for k, v in row.items()} for row in rows],
        key="cache",
    )
    return (
        chart
        + _note(
            f"Hit rate per {grid.width:,} s bucket from each process's newest counters; "
            "the table: the newest counters in the window, summed over processes."
        )
        + table
    )


def _resources(ctx: _Context) -> str:
    samples = ctx.reads.resources()
    span = _span(samples, ctx.scope)
    settings = ctx.settings
    thresholds = {
        "cpu": settings.CPU_THRESHOLD,
        "memory": settings.MEMORY_THRESHOLD,
        "disk": settings.DISK_THRESHOLD,
    }
    if span is None:
        return _note(
            "No resource samples in this window (the dashboard and "
            "<code>ptpd-monitor sample</code> record them)."
        )
    history = transforms.alert_history(samples, thresholds)
    chart, grid = _resource_figure(samples, history, ctx.figures, span)
    ctx.grids["resources"] = grid
    clock = ctx.scope.clock
    parts = [
        chart,
        _note(
            f"Means per {grid.width:,} s bucket of {len(samples):,} samples. Shaded: a "
            f"resource at or above its threshold (CPU {thresholds['cpu']:g} %, memory "
            f"{thresholds['memory']:g} %, disk {thresholds['disk']:g} %) for "
            f"{MIN_ALERT_DURATION_S:g} s or more; red where it reached critical."
        ),
    ]
    if history.empty:
        parts.append(_note("No alert period in this window."))
    else:
        rows = [
            {
                **{str(k): v for k, v in row.items()},
                "start": clock.text(pd.Timestamp(row["start"]).timestamp()),
                "end": clock.text(pd.Timestamp(row["end"]).timestamp()),
            }
            for row in history.to_dict("records")
        ]
        parts.append(
            _table(
                "alerts-table",
                [
                    ("resource", "resource"),
                    ("severity", "severity"),
                    ("start", f"start ({clock.label})"),
                    ("end", f"end ({clock.label})"),
                    ("duration_s", "seconds"),
                    ("peak", "peak %"),
                    ("threshold", "threshold %"),
                ],
                rows,
                limit=_MAX_ROWS,
            )
        )
    return "".join(parts)


def _machine(ctx: _Context) -> str:
    facts = [(label, _e(value)) for label, value in machine_facts()]
    return _note(
        "The machine this report was built on (the samples may come from its processes)."
    ) + _facts(facts)


def _settings(ctx: _Context) -> str:
    rows = [
        {"setting": f"PTPD_MONITORING_{name}", "value": _setting_text(value)}
        for name, value in ctx.settings.model_dump().items()
    ]
    widths = ", ".join(f"{name} {grid.width:,} s" for name, grid in ctx.grids.items())
    how = _note(
        "Charts: at most "
        f"{MAX_POINTS} points per series (bucket widths: {_e(widths or 'no charts')}); "
        f"resource alerts last {MIN_ALERT_DURATION_S:g} s or more; times in "
        f"{_e(ctx.scope.clock.label)}."
    )
    return how + _table("settings-table", [("setting", "setting"), ("value", "value")], rows)


_BUILDERS: dict[str, Callable[[_Context], str]] = {
    "summary": _summary,
    "watches": _watches,
    "percentiles": _percentiles,
    "bottlenecks": _bottlenecks,
    "operations": _operations,
    "api": _api,
    "cache": _cache,
    "resources": _resources,
    "machine": _machine,
    "settings": _settings,
}


# -- the page -----------------------------------------------------------------------------------


def _title(report: Mapping[str, Any]) -> str:
    kind = str(report.get("report_type", "report"))
    if kind == "daily":
        return f"Daily report, {report.get('date', '')}"
    if kind == "session":
        return f"Session report, {report.get('session_id', '')}"
    if kind == "comparison":
        return "Comparison report"
    return f"{kind.capitalize()} report"


def _json_for_script(report: Mapping[str, Any]) -> str:
    """The report as JSON that cannot end its ``<script>`` element early."""
    text = json.dumps(report, default=str, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def build_html_report(
    report: Mapping[str, Any],
    store: SampleStore,
    *,
    monitor: PerformanceMonitor | None = None,
    settings: MonitoringSettings | None = None,
) -> str:
    """The report as one self-contained HTML page (see the module docstring).

    Args:
        report: a dict of ``PerformanceReport`` (daily, period, session or comparison), or the
            same read back from its JSON export.
        store: the store it was built from: the charts read it over the report's window.
        monitor: the monitor the report was built on, when at hand (saves reading it again);
            it must cover the report's window.
        settings: the settings to show and to judge the resource alerts by (default: this
            process's).

    Returns:
        The HTML text (UTF-8 when written).

    Raises:
        StoreError: the store cannot be read.
    """
    scope = _scope(report)
    ctx = _Context(
        report=report,
        scope=scope,
        reads=_Reads(store, scope),
        figures=_Figures(scope.clock, scope.periods if scope.kind == "comparison" else ()),
        monitor=monitor,
        settings=settings if settings is not None else get_settings(),
        grids={},
    )
    sections = []
    for section_id, heading in SECTIONS:
        body = _BUILDERS[section_id](ctx)
        sections.append(f'<section id="{section_id}"><h2>{_e(heading)}</h2>{body}</section>')
    nav = "".join(f'<a href="#{section_id}">{_e(heading)}</a>' for section_id, heading in SECTIONS)
    title = _title(report)
    built = datetime.now().astimezone().isoformat(timespec="seconds")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="ptpd-monitor {_e(_version())}">\n'
        f"<title>ptpd-monitor: {_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<header><h1>{_e(title)}</h1>"
        f"<p>{_window_html(scope)}</p>"
        f"<p>Pt/Pd calibration app performance, built {_e(built)} by ptpd-monitor. "
        "This file needs no network: open it anywhere.</p>"
        f"<nav>{nav}</nav></header>\n<main>\n" + "\n".join(sections) + "\n</main>\n"
        f"<footer>The report as JSON: the <code>report-data</code> script element of this file. "
        f"{ctx.figures.count} chart(s).</footer>\n"
        f'<script type="application/json" id="report-data">{_json_for_script(report)}</script>\n'
        # Charts drawn while the page was still loading fit the layout of that moment.
        "<script>window.dispatchEvent(new Event('resize'));</script>\n"
        "</body>\n</html>\n"
    )


def write_html_report(
    report: Mapping[str, Any],
    store: SampleStore,
    path: str | os.PathLike[str],
    **options: Any,
) -> None:
    """``build_html_report`` written to ``path`` atomically (readers never see half a file).

    Raises:
        FileNotFoundError: the folder of ``path`` does not exist.
    """
    write_text_atomically(build_html_report(report, store, **options), Path(path))
