"""Plotly figures built from DataFrames: pure functions, testable without Streamlit.

Every builder returns its figure, so a page can add to it (watch bands, shapes) before drawing.
The time charts take their buckets from ``transforms.time_grid`` (the one bucketing rule) and,
given its grid, say the bucket width in their subtitle and label their x axis for the span.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

from ptpd_calibration.dashboard.transforms import TimeGrid, duration_unit
from ptpd_calibration.monitoring.resources import classify, critical_level

__all__ = [
    "PERCENTILE_COLUMNS",
    "PERCENTILE_DASHES",
    "bottleneck_bar",
    "cache_hit_rate_lines",
    "distribution",
    "gauge",
    "percentile_lines",
    "rate_lines",
    "series_colours",
    "sparkline",
]

PERCENTILE_COLUMNS = ("p50", "p90", "p95", "p99")
# One dash per percentile; the operation gets the colour.
PERCENTILE_DASHES = {"p50": "solid", "p90": "dot", "p95": "dash", "p99": "dashdot"}
_SEVERITY_COLOURS = {None: "#4c9a6a", "warning": "#d9a441", "critical": "#c8553d"}
# No template: Streamlit themes every chart, and resolving a named plotly template made each
# figure six times slower to build (18 ms for a gauge), which the 2 s live refresh pays.
_LAYOUT = {"margin": {"l": 30, "r": 30, "t": 40, "b": 10}}
_TIME_LAYOUT = {"margin": {"l": 30, "r": 30, "t": 64, "b": 10}}
# Distinct colours, series after series: Tableau's ten, then plotly's Dark24 (then generated).
_PALETTE = tuple(
    dict.fromkeys(
        c.lower() for c in (*plotly.colors.qualitative.D3, *plotly.colors.qualitative.Dark24)
    )
)


def series_colours(count: int) -> list[str]:
    """``count`` distinct colours (hex), the same first ones for the same order of series."""
    colours = list(_PALETTE[:count])
    hue = 0.0
    while len(colours) < count:  # more series than the palette: spread hues (golden angle)
        hue = (hue + 0.381966) % 1.0
        red, green, blue = colorsys.hls_to_rgb(hue, 0.42, 0.65)
        colour = f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"
        if colour not in colours:
            colours.append(colour)
    return colours


def _isolated(values: np.ndarray) -> np.ndarray:
    """Which points have no neighbour to draw a line to (a marker shows them)."""
    present = np.isfinite(values)
    before = np.concatenate([[False], present[:-1]])
    after = np.concatenate([present[1:], [False]])
    isolated: np.ndarray = present & ~before & ~after
    return isolated


def _line(
    x: pd.Series | pd.Index,
    y: pd.Series,
    *,
    name: str,
    colour: str,
    dash: str = "solid",
    group: str | None = None,
    width: float = 2.0,
    unit: str = "",
) -> go.Scatter:
    """A line that breaks where a bucket is empty (NaN) and marks the points it can't join;
    its hover says the value with ``unit``."""
    values = y.to_numpy(dtype=np.float64)
    sizes = np.where(_isolated(values), 6, 0)
    digits = ".1f" if unit == "%" else ".2f"
    return go.Scatter(
        x=x,
        y=values,
        mode="lines+markers" if sizes.any() else "lines",
        name=name,
        legendgroup=group,
        connectgaps=False,
        line={"color": colour, "dash": dash, "width": width},
        marker={"size": sizes.tolist(), "color": colour},
        hovertemplate=f"%{{y:{digits}}} {unit}".rstrip() + "<extra>%{fullData.name}</extra>",
    )


def _over_time(figure: go.Figure, title: str, grid: TimeGrid | None) -> go.Figure:
    """The title, and with a grid the bucket width under it and an x axis for its span."""
    if grid is None:
        figure.update_layout(title={"text": title})
        return figure
    figure.update_layout(
        title={
            "text": title,
            "subtitle": {"text": grid.subtitle, "font": {"size": 12}},
        },
        **_TIME_LAYOUT,
    )
    figure.update_xaxes(**grid.xaxis())
    return figure


def gauge(title: str, value: float | None, threshold: float, *, suffix: str = "%") -> go.Figure:
    """A 0-100 gauge coloured by the alert level ``value`` reaches against ``threshold``."""
    colour = _SEVERITY_COLOURS[classify(value, threshold)]
    critical = critical_level(threshold)
    figure = go.Figure(
        go.Indicator(
            mode="gauge+number",
            value=value if value is not None else 0.0,
            number={"suffix": suffix, "valueformat": ".1f"},
            title={"text": title},
            gauge={
                "axis": {"range": [0, 100]},
                "bar": {"color": colour},
                "steps": [
                    {"range": [threshold, critical], "color": "#f6ecd4"},
                    {"range": [critical, 100], "color": "#f3d9d2"},
                ],
                "threshold": {"line": {"color": "#c8553d", "width": 2}, "value": threshold},
            },
        )
    )
    figure.update_layout(height=210, **_LAYOUT)
    return figure


def sparkline(
    frame: pd.DataFrame,
    column: str,
    title: str,
    *,
    grid: TimeGrid | None = None,
    x: str = "timestamp",
) -> go.Figure:
    """A small line of ``column`` over ``x`` (the last minutes of a resource, 0-100 %).

    With ``grid`` (``frame`` from ``transforms.resource_buckets``), its bucket width in the
    subtitle and an x axis whose ticks never repeat, even over the first seconds.
    """
    figure = go.Figure(
        _line(frame[x], frame[column], name=title, colour=series_colours(1)[0], width=1.5, unit="%")
    )
    figure.update_layout(height=160, showlegend=False)
    _over_time(figure, title, grid)
    figure.update_layout(title={"font": {"size": 12}}, margin={"l": 30, "r": 10, "t": 58, "b": 10})
    if grid is not None:
        figure.update_layout(title={"subtitle": {"font": {"size": 10}}})
    else:
        figure.update_xaxes(tickformat="%H:%M:%S")
    figure.update_yaxes(range=[0, 100], showgrid=False)
    figure.update_xaxes(showgrid=False, nticks=4)
    return figure


def percentile_lines(
    buckets: pd.DataFrame,
    unit: str | None = "ms",
    *,
    grid: TimeGrid | None = None,
    percentiles: Sequence[str] = PERCENTILE_COLUMNS,
) -> go.Figure:
    """p50/p90/p95/p99 per time bucket: one colour per operation, one dash per percentile
    (``PERCENTILE_DASHES``), the legend grouped by operation.

    ``buckets`` has columns bucket, operation and the PERCENTILE_COLUMNS, in ms
    (``transforms.percentile_buckets``). ``unit`` is the y axis': "ms", or "s" to show the
    values in seconds; None picks by the largest value (``transforms.duration_unit``).
    """
    shown = [p for p in PERCENTILE_COLUMNS if p in percentiles]
    if unit is None:
        largest = buckets[shown].max().max() if not buckets.empty and shown else None
        unit = duration_unit(float(largest) if largest is not None else None)[0]
    factor = 0.001 if unit == "s" else 1.0
    figure = go.Figure()
    groups = list(buckets.groupby("operation", sort=True))
    for (operation, group), colour in zip(groups, series_colours(len(groups)), strict=True):
        for column in shown:
            figure.add_trace(
                _line(
                    group["bucket"],
                    group[column].astype(np.float64) * factor,
                    name=f"{operation} {column}",
                    colour=colour,
                    dash=PERCENTILE_DASHES[column],
                    group=str(operation),
                    unit=unit,
                )
            )
    figure.update_layout(
        height=400,
        yaxis_title=unit,
        legend={"orientation": "h", "groupclick": "toggleitem", "tracegroupgap": 4},
        meta={"unit": unit},
        **_LAYOUT,
    )
    return _over_time(figure, "Percentiles over time", grid)


def distribution(
    samples: pd.DataFrame, value_column: str = "value", unit: str = "ms", bins: int = 60
) -> go.Figure:
    """Each operation's histogram over shared bins, overlaid, in the operation's colour of the
    percentile chart.

    Binned here with numpy: sending a week of raw samples to the browser for plotly to bin
    would cost seconds; the bars are the same.
    """
    figure = go.Figure()
    values = samples[value_column].to_numpy(dtype=np.float64)
    if values.size == 0:
        return figure
    edges = np.histogram_bin_edges(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    groups = list(samples.groupby("operation", sort=True))
    for (operation, group), colour in zip(groups, series_colours(len(groups)), strict=True):
        counts, _ = np.histogram(group[value_column].to_numpy(dtype=np.float64), bins=edges)
        figure.add_trace(
            go.Bar(
                x=centres,
                y=counts,
                width=np.diff(edges),
                name=str(operation),
                opacity=0.6,
                marker={"color": colour},
            )
        )
    figure.update_layout(
        barmode="overlay",
        height=320,
        xaxis_title=unit,
        yaxis_title="samples",
        title="Distribution",
        **_LAYOUT,
    )
    return figure


def bottleneck_bar(ranking: Sequence[dict[str, object]]) -> go.Figure:
    """Share of total time per operation, worst on top; unstable steps in the warning colour."""
    rows = list(reversed(list(ranking)))
    colours = [
        _SEVERITY_COLOURS["warning"] if row.get("unstable") else _SEVERITY_COLOURS[None]
        for row in rows
    ]
    figure = go.Figure(
        go.Bar(
            x=[100 * float(str(row["share_of_total"])) for row in rows],
            y=[str(row["operation"]) for row in rows],
            orientation="h",
            marker={"color": colours},
            text=[f"×{float(str(row['slowdown_factor'])):.2f}" for row in rows],
            textposition="auto",
            hovertemplate="%{y}: %{x:.1f}% of the time<extra></extra>",
        )
    )
    figure.update_layout(
        height=max(220, 40 * len(rows) + 80),
        xaxis_title="share of total time (%)",
        title="Bottlenecks (label: p90/median slowdown; amber: unstable)",
        **_LAYOUT,
    )
    return figure


def rate_lines(
    frame: pd.DataFrame,
    x: str,
    y: str,
    series: str,
    title: str,
    unit: str,
    *,
    grid: TimeGrid | None = None,
) -> go.Figure:
    """One line per ``series`` value, each its own colour, breaking at empty buckets: the
    shape of the latency, error rate and hit rate charts."""
    figure = go.Figure()
    groups = list(frame.groupby(series, sort=True))
    for (name, group), colour in zip(groups, series_colours(len(groups)), strict=True):
        figure.add_trace(
            _line(
                group[x],
                group[y].astype(np.float64),
                name=str(name),
                colour=colour,
                group=str(name),
                unit=unit,
            )
        )
    figure.update_layout(
        height=340, yaxis_title=unit, legend={"orientation": "h"}, meta={"unit": unit}, **_LAYOUT
    )
    return _over_time(figure, title, grid)


def cache_hit_rate_lines(frame: pd.DataFrame, *, grid: TimeGrid | None = None) -> go.Figure:
    """Hit rate (%) over time per cache, from bucketed snapshots."""
    figure = rate_lines(
        frame.assign(hit_pct=frame["hit_rate"].astype(np.float64) * 100),
        "bucket",
        "hit_pct",
        "cache",
        "Hit rate over time",
        "%",
        grid=grid,
    )
    figure.update_yaxes(range=[0, 100])
    return figure
