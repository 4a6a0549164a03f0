"""Unit tests for the dashboard's watches (``ptpd_calibration.dashboard.watch_view``): the bands
drawn on a chart, the firing list of the Overview, and the once-a-minute evaluator.

Samples carry fixed timestamps and each evaluation an explicit ``now`` where a value is checked;
the evaluator's own thread only runs where the test is about it.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
import streamlit as st

from ptpd_calibration.dashboard import watch_view
from ptpd_calibration.dashboard.watch_view import (
    WatchEvaluator,
    WatchSnapshot,
    add_watch_bands,
    band_label,
    current_watches,
    firing_watches,
)
from ptpd_calibration.monitoring.settings import get_settings
from ptpd_calibration.monitoring.store import API, METRIC, ColumnBatch, SampleStore
from ptpd_calibration.monitoring.watches import (
    Watch,
    WatchResult,
    clear_registered_watches,
    default_watches,
    evaluate,
    parse_watch,
    watch_history,
)

NOW = 1_700_000_000.0
HOUR, DAY = 3600.0, 86400.0


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    clear_registered_watches()
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()  # the evaluators go with it (their threads stop)
    clear_registered_watches()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SampleStore]:
    sample_store = SampleStore(tmp_path / "store")
    yield sample_store
    sample_store.close()


def _put(store: SampleStore, series: str, ts: np.ndarray, values: np.ndarray) -> None:
    assert store.write([ColumnBatch(METRIC, series, (ts, values), "seconds")])


def _regressed_week(store: SampleStore, now: float, last_hour_s: float = 0.3) -> None:
    """60 timings of 0.1 s in each hour of the week before the last hour, then 120 at
    ``last_hour_s`` in the last hour: the shape of a regression."""
    rng = np.random.default_rng(1)
    starts = [now - hour * HOUR for hour in range(2, 24 * 7)]
    week = np.concatenate([start + np.linspace(0.0, 30.0, 60) for start in starts])
    _put(store, "curve.fit", week, rng.normal(0.1, 0.005, week.size))
    hour = now - 3000.0 + np.linspace(0.0, 2400.0, 120)
    _put(store, "curve.fit", hour, rng.normal(last_hour_s, last_hour_s * 0.05, hour.size))


def _figure() -> go.Figure:
    return go.Figure(go.Scatter(x=[0, 1], y=[90.0, 120.0], name="curve.fit p95"))


def _lines(fig: go.Figure) -> list[tuple[Any, str]]:
    return [(s.y0, s.name) for s in fig.layout.shapes if s.type == "line"]


def _rects(fig: go.Figure) -> list[tuple[float, float, str]]:
    return [(s.y0, s.y1, s.name) for s in fig.layout.shapes if s.type == "rect"]


def _result(watch: Watch, status: str = "ok", **fields: object) -> WatchResult:
    values: dict[str, object] = {
        "value": None,
        "threshold": None,
        "unit": "seconds",
        "samples": 100,
        "message": f"{watch.target} {watch.stat} ...",
    }
    values.update(fields)
    return WatchResult(watch, status, NOW, **values)  # type: ignore[arg-type]


# -- the bands -------------------------------------------------------------------------------------


def test_a_threshold_is_a_labelled_line_at_its_value_in_the_charts_unit() -> None:
    watch = parse_watch({"target": "curve.fit", "stat": "p95", "above_ms": 250})

    in_ms = add_watch_bands(_figure(), [watch], "curve.fit", "ms")
    in_s = add_watch_bands(_figure(), [watch], ["curve.fit"], "s")

    assert _lines(in_ms) == [(250.0, "watch: p95 > 250 ms · curve.fit")]
    (annotation,) = in_ms.layout.annotations
    assert annotation.text == "watch: p95 > 250 ms · curve.fit"
    assert annotation.y == 250.0
    assert _lines(in_s) == [(pytest.approx(0.25), "watch: p95 > 0.25 s · curve.fit")]
    assert in_ms.layout.shapes[0].line.dash == "dash"
    assert len(in_ms.data) == 1  # the chart's own traces are untouched


def test_a_threshold_in_the_series_unit_converts_to_the_chart(store: SampleStore) -> None:
    ts = NOW - 200.0 + np.arange(10.0)
    _put(store, "curve.fit", ts, np.full(10, 0.4))
    watch = parse_watch(
        {"target": "curve.fit", "stat": "p95", "above": 0.3, "severity": "critical"}
    )
    (result,) = evaluate(store, [watch], now=NOW, record=False)
    assert result.firing

    fig = add_watch_bands(_figure(), [result], "curve.fit", "ms")

    ((y, name),) = _lines(fig)
    assert y == pytest.approx(300.0)
    assert name == "watch: p95 > 300 ms · curve.fit — firing"
    assert fig.layout.shapes[0].line.color == "#c8553d"  # critical and firing


def test_a_baseline_is_a_band_from_the_baseline_to_the_firing_level(store: SampleStore) -> None:
    _regressed_week(store, NOW)
    (result,) = evaluate(store, default_watches(store), now=NOW, record=False)
    assert result.firing and result.baseline is not None

    fig = add_watch_bands(_figure(), [result], ["curve.fit", "pipeline.decode"], "ms")

    ((low, high, name),) = _rects(fig)
    assert low == pytest.approx(result.baseline * 1000)
    assert high == pytest.approx(result.baseline * 1500)
    assert 95 < low < 110  # the week's p95 of ~0.1 s timings, in ms
    assert name == "baseline 1.5× of 7-day p95 · curve.fit (built-in) — firing"
    assert fig.layout.shapes[0].fillcolor == "#d9a441"  # a warning, firing
    assert [a.text for a in fig.layout.annotations] == [name]
    assert not _lines(fig)


def test_band_labels_name_the_rule() -> None:
    threshold = parse_watch({"target": "curve.fit", "above_ms": 250})
    baseline = parse_watch({"target": "curve.fit", "stat": "p99", "baseline": "1d", "factor": 2})
    rate = parse_watch({"target": "GET /x", "stat": "error_rate", "above": 0.05})

    assert band_label(threshold, 250.0, "ms") == "watch: p95 > 250 ms"
    assert band_label(baseline, None, "ms") == "baseline 2× of 1-day p99"
    assert band_label(rate, 5.0, "%") == "watch: error_rate > 5%"


def test_a_baseline_not_yet_judged_draws_nothing(store: SampleStore) -> None:
    _put(store, "curve.fit", NOW - 100.0 + np.arange(60.0), np.full(60, 0.3))  # no history
    (result,) = evaluate(store, default_watches(store), now=NOW, record=False)
    assert result.status == "insufficient"

    fig = add_watch_bands(_figure(), [result], "curve.fit", "ms")
    bare = add_watch_bands(_figure(), list(default_watches(store)), "curve.fit", "ms")

    assert not fig.layout.shapes and not bare.layout.shapes


def test_only_the_charted_series_and_fitting_statistics_are_drawn() -> None:
    watches = [
        parse_watch({"target": "curve.fit", "above_ms": 250}),
        parse_watch({"target": "other.op", "above_ms": 100}),
        parse_watch({"target": "curve.fit", "stat": "count_per_min", "above": 30}),
        parse_watch({"target": "GET /api/curves", "stat": "error_rate", "above": 0.05}),
        parse_watch({"target": "GET /api/curves", "stat": "p99", "above": 800}),
    ]

    latency = add_watch_bands(_figure(), watches, ["curve.fit"], "ms")
    api = add_watch_bands(_figure(), watches, ["GET /api/curves"], "ms")
    errors = add_watch_bands(_figure(), watches, ["GET /api/curves"], "%")

    assert [name for _, name in _lines(latency)] == ["watch: p95 > 250 ms · curve.fit"]
    # an endpoint's `above` is in milliseconds, the unit requests are recorded in
    assert _lines(api) == [(800.0, "watch: p99 > 800 ms · GET /api/curves")]
    assert _lines(errors) == [(pytest.approx(5.0), "watch: error_rate > 5% · GET /api/curves")]


@pytest.mark.parametrize(
    ("target", "charted", "drawn"),
    [
        ("/api/curves", "GET /api/curves", True),  # a path covers every method
        ("/api/curves", "/api/curves", True),
        ("GET /api/curves", "/api/curves", True),  # a chart of paths mixes the methods
        ("GET /api/curves", "get /api/curves", True),
        ("POST /api/curves", "GET /api/curves", False),
        ("GET /api/curves", "GET /api/other", False),
    ],
)
def test_endpoint_watches_match_methods_and_paths(target: str, charted: str, drawn: bool) -> None:
    watch = parse_watch({"target": target, "kind": "endpoint", "above_ms": 500})

    fig = add_watch_bands(_figure(), [watch], charted, "ms")

    assert bool(fig.layout.shapes) is drawn


def test_an_operation_watch_is_not_drawn_for_an_endpoint_of_the_same_name() -> None:
    watch = parse_watch({"target": "/health", "kind": "operation", "above_ms": 5})

    assert not add_watch_bands(_figure(), [watch], "GET /health", "ms").layout.shapes
    assert add_watch_bands(_figure(), [watch], "/health", "ms").layout.shapes


# -- the firing list -------------------------------------------------------------------------------


def test_firing_watches_are_alert_dicts_critical_first_with_builtin_labelled() -> None:
    builtin = Watch(
        name="regression:curve.fit",
        target="curve.fit",
        baseline=7 * DAY,
        window=HOUR,
        factor=1.5,
        min_samples=50,
        builtin=True,
    )
    critical = parse_watch(
        {"name": "slow fit", "target": "curve.fit", "above_ms": 250, "severity": "critical"}
    )
    quiet = parse_watch({"target": "other.op", "above_ms": 250})
    results = [
        _result(builtin, "firing", value=0.3, threshold=0.15, baseline=0.1),
        _result(quiet, "ok", value=0.1, threshold=0.25),
        _result(critical, "firing", value=0.3, threshold=0.25),
    ]

    alerts = firing_watches(results)

    assert [a["watch"] for a in alerts] == ["slow fit", "regression:curve.fit"]
    assert [a["label"] for a in alerts] == ["slow fit", "regression:curve.fit (built-in)"]
    assert [a["severity"] for a in alerts] == ["critical", "warning"]
    assert alerts[0]["resource"] == "curve.fit" and alerts[0]["usage"] == 0.3
    assert alerts[0]["rule"] == "p95 over 5m above 250 ms"
    assert firing_watches(WatchSnapshot(NOW, tuple(results))) == alerts
    assert firing_watches([results[1]]) == []


def test_firing_watches_without_an_argument_judge_the_dashboards_store(
    isolated_monitoring_env: Path,
) -> None:
    store = SampleStore(isolated_monitoring_env)
    _regressed_week(store, time.time())
    store.close()

    (alert,) = firing_watches()

    assert alert["label"] == "regression:curve.fit (built-in)"
    assert "above 1.5×" in alert["message"]
    # judged once for this server: a second call reads the same evaluation
    assert current_watches() is current_watches()


# -- the evaluator ---------------------------------------------------------------------------------


def test_an_evaluation_judges_every_active_watch_and_stores_the_firing(
    store: SampleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    _regressed_week(store, now)
    monkeypatch.setenv(
        "PTPD_MONITORING_WATCHES",
        '[{"target": "curve.fit", "stat": "p95", "above_ms": 250, "window": "1h"}]',
    )
    get_settings.cache_clear()

    snapshot = WatchEvaluator(store).evaluate(now)

    assert snapshot.problem is None and snapshot.ts == now
    assert {r.watch.name: r.status for r in snapshot.results} == {
        "curve.fit:p95>250ms": "firing",
        "regression:curve.fit": "firing",
    }
    history = watch_history(store)
    assert {row["watch"] for row in history} == {"curve.fit:p95>250ms", "regression:curve.fit"}


def test_a_malformed_watch_is_a_problem_naming_the_rule_not_an_exception(
    store: SampleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTPD_MONITORING_WATCHES", '[{"name": "bad", "target": "x", "stat": "p42"}]')
    get_settings.cache_clear()

    snapshot = WatchEvaluator(store).evaluate(NOW)

    assert snapshot.results == () and not snapshot.store_unreadable
    assert snapshot.problem is not None and "'bad'" in snapshot.problem
    assert "PTPD_MONITORING_WATCHES" in snapshot.problem


def test_an_unreadable_store_is_a_problem(tmp_path: Path) -> None:
    directory = tmp_path / "corrupt"
    directory.mkdir()
    (directory / "cache.db").write_bytes(b"this is not an SQLite database\x00" * 64)

    snapshot = WatchEvaluator(SampleStore(directory)).evaluate(NOW)

    assert snapshot.store_unreadable and snapshot.problem
    assert snapshot.results == ()


def test_the_thread_judges_at_once_then_every_period_and_stops(store: SampleStore) -> None:
    evaluator = WatchEvaluator(store, period_s=0.05, record=False).start()
    try:
        first = evaluator.latest(wait_s=10.0)
        assert first is not None and first.problem is None
        deadline = time.monotonic() + 10.0
        while evaluator.latest() is first and time.monotonic() < deadline:
            time.sleep(0.01)
        second = evaluator.latest()
        assert second is not None and second is not first and second.ts >= first.ts
    finally:
        evaluator.stop()
    assert not evaluator.running


def test_a_forgotten_evaluator_stops_its_thread(store: SampleStore) -> None:
    evaluator = WatchEvaluator(store, period_s=3600.0, record=False).start()
    assert evaluator.latest(wait_s=10.0) is not None
    thread = evaluator._thread
    assert thread is not None and thread.is_alive()

    del evaluator
    gc.collect()
    thread.join(10.0)

    assert not thread.is_alive()


def test_one_evaluator_per_store_folder_and_server(store: SampleStore) -> None:
    first = watch_view.watch_evaluator(str(store.directory))

    assert watch_view.watch_evaluator(str(store.directory)) is first
    assert first.running
    st.cache_resource.clear()
    assert watch_view.watch_evaluator(str(store.directory)) is not first


def test_the_period_must_be_positive(store: SampleStore) -> None:
    with pytest.raises(ValueError, match="period_s"):
        WatchEvaluator(store, period_s=0)


def test_requests_are_judged_and_drawn_in_milliseconds(store: SampleStore) -> None:
    ts = NOW - 100.0 + np.arange(20.0)
    columns = (ts, np.full(20, 900.0), np.full(20, 200.0))
    assert store.write([ColumnBatch(API, "GET /api/curves", columns, "ms")])
    watch = parse_watch({"target": "/api/curves", "kind": "endpoint", "stat": "p95", "above": 500})
    (result,) = evaluate(store, [watch], now=NOW, record=False)
    assert result.firing

    fig = add_watch_bands(_figure(), [result], ["/api/curves"], "ms")

    assert _lines(fig) == [(500.0, "watch: p95 > 500 ms · /api/curves — firing")]
