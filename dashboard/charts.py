"""Plotly figures built from DataFrames: pure functions, testable without Streamlit."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ptpd_calibration.monitoring.resources import classify, critical_level

__all__ = [
    "PERCENTILE_COLUMNS",
    "bottleneck_bar",
    "cache_hit_rate_lines",
    "distribution",
    "gauge",
    "percentile_lines",
    "rate_lines",
    "sparkline",
]

PERCENTILE_COLUMNS = ("p50", "p90", "p95", "p99")
_SEVERITY_COLOURS = {None: "#4c9a6a", "warning": "#d9a441", "critical": "#c8553d"}
# No template: Streamlit themes every chart, and resolving a named plotly template made each
# figure six times slower to build (18 ms for a gauge), which the 2 s live refresh pays.
_LAYOUT = {"margin": {"l": 30, "r": 30, "t": 40, "b": 10}}


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


def sparkline(frame: pd.DataFrame, column: str, title: str) -> go.Figure:
    """A small line of ``column`` over ``timestamp`` (the last minutes of a resource)."""
    figure = go.Figure(
        go.Scatter(x=frame["timestamp"], y=frame[column], mode="lines", line={"width": 1.5})
    )
    figure.update_layout(height=120, title={"text": title, "font": {"size": 12}}, **_LAYOUT)
    figure.update_yaxes(range=[0, 100], showgrid=False)
    figure.update_xaxes(showgrid=False, tickformat="%H:%M:%S")  # the date would be cut off
    return figure


def percentile_lines(buckets: pd.DataFrame, unit: str = "ms") -> go.Figure:
    """p50/p90/p95/p99 per time bucket, one line per operation and percentile.

    ``buckets`` has columns bucket, operation and the PERCENTILE_COLUMNS.
    """
    figure = go.Figure()
    for operation, group in buckets.groupby("operation", sort=True):
        for column in PERCENTILE_COLUMNS:
            figure.add_trace(
                go.Scatter(
                    x=group["bucket"],
                    y=group[column],
                    mode="lines+markers",
                    name=f"{operation} {column}",
                    marker={"size": 4},
                )
            )
    figure.update_layout(
        height=380,
        yaxis_title=unit,
        legend={"orientation": "h"},
        title="Percentiles over time",
        **_LAYOUT,
    )
    return figure


def distribution(
    samples: pd.DataFrame, value_column: str = "value", unit: str = "ms", bins: int = 60
) -> go.Figure:
    """Each operation's histogram over shared bins, overlaid.

    Binned here with numpy: sending a week of raw samples to the browser for plotly to bin
    would cost seconds; the bars are the same.
    """
    figure = go.Figure()
    values = samples[value_column].to_numpy(dtype=np.float64)
    if values.size == 0:
        return figure
    edges = np.histogram_bin_edges(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    for operation, group in samples.groupby("operation", sort=True):
        counts, _ = np.histogram(group[value_column].to_numpy(dtype=np.float64), bins=edges)
        figure.add_trace(
            go.Bar(x=centres, y=counts, width=np.diff(edges), name=str(operation), opacity=0.6)
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
    frame: pd.DataFrame, x: str, y: str, series: str, title: str, unit: str
) -> go.Figure:
    """One line per ``series`` value: the shape of latency, error rate and hit rate charts."""
    figure = go.Figure()
    for name, group in frame.groupby(series, sort=True):
        figure.add_trace(go.Scatter(x=group[x], y=group[y], mode="lines+markers", name=str(name)))
    figure.update_layout(
        height=320, yaxis_title=unit, title=title, legend={"orientation": "h"}, **_LAYOUT
    )
    return figure


def cache_hit_rate_lines(frame: pd.DataFrame) -> go.Figure:
    """Hit rate (%) over time per cache, from bucketed snapshots."""
    figure = rate_lines(
        frame.assign(hit_pct=frame["hit_rate"] * 100),
        "bucket",
        "hit_pct",
        "cache",
        "Hit rate over time",
        "%",
    )
    figure.update_yaxes(range=[0, 100])
    return figure
