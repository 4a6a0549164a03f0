"""The dashboard's plotly builders: pure functions from DataFrames to figures."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from ptpd_calibration.dashboard import charts

GREEN, AMBER, RED = "#4c9a6a", "#d9a441", "#c8553d"


@pytest.mark.parametrize(
    ("value", "colour"),
    [(12.3, GREEN), (79.9, GREEN), (80.0, AMBER), (85.0, AMBER), (90.0, RED), (99.0, RED)],
)
def test_gauge_value_and_colour_follow_the_threshold(value: float, colour: str) -> None:
    figure = charts.gauge("CPU", value, 80.0)

    assert isinstance(figure, go.Figure)
    (indicator,) = figure.data
    assert isinstance(indicator, go.Indicator)
    assert indicator.value == pytest.approx(value)
    assert indicator.gauge.bar.color == colour
    assert indicator.gauge.threshold.value == 80.0
    assert indicator.number.suffix == "%"
    assert indicator.title.text == "CPU"
    # warning band from the threshold, critical band from halfway to 100
    assert [tuple(step.range) for step in indicator.gauge.steps] == [(80, 90), (90, 100)]


def test_gauge_without_a_reading_shows_zero_in_the_normal_colour() -> None:
    (indicator,) = charts.gauge("GPU 0", None, 70.0).data
    assert indicator.value == 0.0
    assert indicator.gauge.bar.color == GREEN


def _percentile_frame() -> pd.DataFrame:
    buckets = pd.to_datetime([0, 60, 120], unit="s", utc=True)
    rows = []
    for operation, base in (("pipeline.resize", 10.0), ("pipeline.decode", 100.0)):
        for i, bucket in enumerate(buckets):
            rows.append(
                {
                    "bucket": bucket,
                    "operation": operation,
                    "count": 5,
                    "p50": base + i,
                    "p90": base + i + 1,
                    "p95": base + i + 2,
                    "p99": base + i + 3,
                }
            )
    return pd.DataFrame(rows)


def test_percentile_lines_has_one_trace_per_operation_and_percentile() -> None:
    figure = charts.percentile_lines(_percentile_frame())

    assert isinstance(figure, go.Figure)
    names = [trace.name for trace in figure.data]
    assert names == [
        f"{op} {p}"
        for op in ("pipeline.decode", "pipeline.resize")
        for p in ("p50", "p90", "p95", "p99")
    ]
    by_name = {trace.name: trace for trace in figure.data}
    assert list(by_name["pipeline.decode p99"].y) == [103.0, 104.0, 105.0]
    assert list(by_name["pipeline.resize p50"].y) == [10.0, 11.0, 12.0]
    assert len(by_name["pipeline.resize p50"].x) == 3
    assert figure.layout.yaxis.title.text == "ms"


def test_percentile_lines_of_nothing_is_an_empty_figure() -> None:
    empty = pd.DataFrame(columns=["bucket", "operation", "count", "p50", "p90", "p95", "p99"])
    assert len(charts.percentile_lines(empty).data) == 0


def test_bottleneck_bar_puts_the_worst_on_top_and_unstable_steps_in_amber() -> None:
    ranking = [  # identify_bottlenecks order: worst first
        {
            "operation": "pipeline.resize",
            "share_of_total": 0.6,
            "slowdown_factor": 1.1,
            "unstable": False,
        },
        {
            "operation": "pipeline.decode",
            "share_of_total": 0.3,
            "slowdown_factor": 2.0,
            "unstable": True,
        },
        {
            "operation": "pipeline.invert",
            "share_of_total": 0.1,
            "slowdown_factor": 1.0,
            "unstable": False,
        },
    ]
    figure = charts.bottleneck_bar(ranking)

    (bar,) = figure.data
    assert isinstance(bar, go.Bar)
    assert bar.orientation == "h"
    # plotly draws the first category at the bottom, so the worst is last
    assert list(bar.y) == ["pipeline.invert", "pipeline.decode", "pipeline.resize"]
    assert list(bar.x) == pytest.approx([10.0, 30.0, 60.0])
    assert list(bar.marker.color) == [GREEN, AMBER, GREEN]
    assert list(bar.text) == ["×1.00", "×2.00", "×1.10"]


def test_bottleneck_bar_of_an_empty_ranking_has_no_bars() -> None:
    (bar,) = charts.bottleneck_bar([]).data
    assert list(bar.y) == []


def test_cache_hit_rate_lines_are_percentages_per_cache() -> None:
    buckets = pd.to_datetime([0, 60], unit="s", utc=True)
    frame = pd.DataFrame(
        {
            "bucket": [*buckets, *buckets],
            "cache": ["default", "default", "curves", "curves"],
            "hits": [1, 3, 0, 9],
            "misses": [1, 1, 0, 1],
            "hit_rate": [0.5, 0.75, 0.0, 0.9],
        }
    )
    figure = charts.cache_hit_rate_lines(frame)

    by_name = {trace.name: trace for trace in figure.data}
    assert sorted(by_name) == ["curves", "default"]
    assert list(by_name["default"].y) == pytest.approx([50.0, 75.0])
    assert list(by_name["curves"].y) == pytest.approx([0.0, 90.0])
    assert tuple(figure.layout.yaxis.range) == (0, 100)
    assert figure.layout.yaxis.title.text == "%"


def test_rate_lines_has_one_line_per_series() -> None:
    frame = pd.DataFrame(
        {"bucket": [1, 2, 1], "endpoint": ["/a", "/a", "/b"], "p95_ms": [3.0, 4.0, 5.0]}
    )
    figure = charts.rate_lines(frame, "bucket", "p95_ms", "endpoint", "p95", "ms")
    assert [(t.name, list(t.y)) for t in figure.data] == [("/a", [3.0, 4.0]), ("/b", [5.0])]


def test_distribution_overlays_one_histogram_per_operation_on_shared_bins() -> None:
    samples = pd.DataFrame({"operation": ["a", "a", "b"], "ms": [1.0, 2.0, 3.0]})
    figure = charts.distribution(samples, "ms", bins=2)
    # Shared edges 1, 2, 3: "a" has one sample per bin, "b" its one in the upper bin.
    assert [(t.name, list(t.x), list(t.y)) for t in figure.data] == [
        ("a", [1.5, 2.5], [1, 1]),
        ("b", [1.5, 2.5], [0, 1]),
    ]
    assert all(isinstance(t, go.Bar) for t in figure.data)
    assert figure.layout.barmode == "overlay"


def test_distribution_of_nothing_is_an_empty_figure() -> None:
    empty = pd.DataFrame(
        {"operation": pd.Series([], dtype=object), "ms": pd.Series([], dtype=float)}
    )
    assert len(charts.distribution(empty, "ms").data) == 0


def test_sparkline_plots_the_column_over_time() -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime([0, 1, 2], unit="s", utc=True),
            "cpu_percent": [5.0, 50.0, 95.0],
        }
    )
    figure = charts.sparkline(frame, "cpu_percent", "CPU %")
    (line,) = figure.data
    assert list(line.y) == [5.0, 50.0, 95.0]
    assert figure.layout.title.text == "CPU %"
