"""The dashboard's plotly builders: pure functions from DataFrames to figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from ptpd_calibration.dashboard import charts, transforms

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


def _many_operations(count: int) -> pd.DataFrame:
    frames = [_percentile_frame().assign(operation=f"op{i:02d}") for i in range(count)]
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("operations", [1, 3, 12, 40])
def test_percentile_lines_colour_the_operation_and_dash_the_percentile(operations: int) -> None:
    """The issue: 12 lines in 10 cycling colours, two of them the same dark blue."""
    figure = charts.percentile_lines(_many_operations(operations))

    pairs = [(trace.line.color, trace.line.dash) for trace in figure.data]
    assert len(pairs) == 4 * operations
    assert len(set(pairs)) == len(pairs)  # never two series alike
    by_operation: dict[str, set[str]] = {}
    for trace in figure.data:
        operation, percentile = str(trace.name).rsplit(" ", 1)
        assert trace.legendgroup == operation  # the legend grouped by operation
        assert trace.line.dash == charts.PERCENTILE_DASHES[percentile]
        by_operation.setdefault(operation, set()).add(trace.line.color)
    assert all(len(colours) == 1 for colours in by_operation.values())  # one colour each
    assert len({c for colours in by_operation.values() for c in colours}) == operations
    assert charts.PERCENTILE_DASHES == {
        "p50": "solid",
        "p90": "dot",
        "p95": "dash",
        "p99": "dashdot",
    }
    assert figure.layout.legend.groupclick == "toggleitem"


def test_series_colours_are_distinct_and_stable() -> None:
    colours = charts.series_colours(60)
    assert len(set(colours)) == 60
    assert charts.series_colours(3) == colours[:3]


def test_percentile_lines_in_seconds_and_a_choice_of_percentiles() -> None:
    frame = _percentile_frame()
    frame[["p50", "p90", "p95", "p99"]] *= 1000  # 10 s to 105 s
    figure = charts.percentile_lines(frame, None, percentiles=["p50", "p99"])

    assert figure.layout.yaxis.title.text == "s"
    assert figure.layout.meta["unit"] == "s"
    assert [t.name.rsplit(" ", 1)[1] for t in figure.data] == ["p50", "p99"] * 2
    decode_p99 = next(t for t in figure.data if t.name == "pipeline.decode p99")
    assert list(decode_p99.y) == pytest.approx([103.0, 104.0, 105.0])


def test_time_charts_break_at_gaps_and_say_their_bucket_width() -> None:
    seconds = [0.0, 1.0, 2.0, 600.0, 601.0]
    samples = pd.DataFrame(
        {
            "timestamp": pd.Series(pd.to_datetime(seconds, unit="s", utc=True)),
            "operation": ["a", "a", "a", "a", "a"],
            "value": [0.1, 0.2, 0.3, 0.1, 0.2],
        }
    )
    grid = transforms.time_grid(samples["timestamp"], utc_offset_s=0)
    assert grid is not None
    figure = charts.percentile_lines(transforms.percentile_buckets(samples, grid), grid=grid)

    p50 = figure.data[0]
    assert p50.connectgaps is False
    y = np.asarray(p50.y, dtype=float)
    assert len(y) == grid.size and np.isnan(y[1:-1]).all()  # the idle ten minutes: a gap
    # both ends are lone points, which a line can't show: they get a marker
    assert p50.mode == "lines+markers"
    assert list(p50.marker.size)[:2] == [6, 0] and list(p50.marker.size)[-1] == 6
    assert figure.layout.title.text == "Percentiles over time"
    assert figure.layout.title.subtitle.text == "5 s buckets, times in UTC+00:00"
    assert figure.layout.xaxis.tickformat == "%H:%M"
    assert [s.value for s in figure.layout.xaxis.tickformatstops][1] == "%H:%M:%S"
    assert figure.layout.xaxis.range[0] == "1970-01-01T00:00:00.000"


def test_rate_lines_colour_each_series_and_group_its_legend() -> None:
    frame = pd.DataFrame(
        {"bucket": [1, 2, 1], "endpoint": ["/a", "/a", "/b"], "p95_ms": [3.0, np.nan, 5.0]}
    )
    figure = charts.rate_lines(frame, "bucket", "p95_ms", "endpoint", "p95", "ms")
    assert [t.legendgroup for t in figure.data] == ["/a", "/b"]
    assert len({t.line.color for t in figure.data}) == 2
    assert all(t.connectgaps is False for t in figure.data)
    assert figure.layout.meta["unit"] == "ms"


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
    assert figure.layout.title.text == "p95"


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


def test_a_sparkline_of_a_few_seconds_has_whole_second_ticks() -> None:
    """The issue: on a fresh start, the sparklines repeated their tick labels."""
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime([100.0, 101.5, 103.0], unit="s", utc=True),
            "cpu_percent": [5.0, 50.0, 95.0],
        }
    )
    grid = transforms.time_grid(frame["timestamp"], utc_offset_s=0)
    assert grid is not None
    buckets = transforms.resource_buckets(frame, grid)
    figure = charts.sparkline(buckets, "cpu_percent", "CPU %", grid=grid, x="bucket")

    start, stop = (pd.Timestamp(t) for t in figure.layout.xaxis.range)
    assert (stop - start).total_seconds() == 10.0  # ticks can't fall under a second apart
    assert figure.layout.xaxis.nticks == 4
    assert figure.layout.title.subtitle.text.startswith("1 s buckets")
    assert np.isnan(np.asarray(figure.data[0].y, dtype=float)).sum() == 1  # 102 s: no sample
