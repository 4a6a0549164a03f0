"""Watches on the dashboard, run in-process by Streamlit's AppTest over real sample stores.

Each store holds a week of ``curve.fit`` timings written with past timestamps (the baseline)
and a last hour that is normal or three times slower, so the built-in regression watch judges
them as it judges the app's own samples.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from ptpd_calibration.monitoring.store import API, METRIC, ColumnBatch, SampleStore
from ptpd_calibration.monitoring.watches import watch_history

NewApp = Callable[[], AppTest]
HOUR = 3600.0


def _write_week(directory: Path, last_hour_s: float, *, requests_ms: float | None = None) -> None:
    """A normal week of curve.fit at 0.1 s, then 120 timings at ``last_hour_s`` from 50 to 10
    minutes ago; with ``requests_ms``, 60 requests of GET /api/curves in the last 10 minutes."""
    now = time.time()
    rng = np.random.default_rng(3)
    starts = [now - hour * HOUR for hour in range(2, 24 * 7)]
    week = np.concatenate([start + np.linspace(0.0, 30.0, 60) for start in starts])
    hour = now - 3000.0 + np.linspace(0.0, 2400.0, 120)
    batches = [
        ColumnBatch(METRIC, "curve.fit", (week, rng.normal(0.1, 0.005, week.size)), "seconds"),
        ColumnBatch(
            METRIC,
            "curve.fit",
            (hour, rng.normal(last_hour_s, last_hour_s * 0.05, hour.size)),
            "seconds",
        ),
    ]
    if requests_ms is not None:
        ts = now - 600.0 + np.linspace(0.0, 590.0, 60)
        columns = (ts, np.full(60, requests_ms), np.full(60, 200.0))
        batches.append(ColumnBatch(API, "GET /api/curves", columns, "ms"))
    store = SampleStore(directory)
    try:
        assert store.write(batches)
    finally:
        store.close()


def _open(app: NewApp, page: str = "overview") -> AppTest:
    at = app().run()
    if page != "overview":
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _chart(at: AppTest, key: str) -> dict[str, Any]:
    for element in at.get("plotly_chart"):
        spec: dict[str, Any] = json.loads(element.proto.spec)
        if element.proto.id and key in element.proto.id:
            return spec
    raise AssertionError(f"no chart with key {key!r}")


def _shapes(figure: dict[str, Any]) -> list[dict[str, Any]]:
    shapes: list[dict[str, Any]] = figure.get("layout", {}).get("shapes", [])
    return shapes


def _watch_block(at: AppTest) -> list[str]:
    texts = [w.value for w in at.warning] + [e.value for e in at.error]
    return [text for text in texts if "regression" in text or "curve.fit" in text]


def test_the_overview_shows_a_firing_regression_watch(
    app: NewApp, use_store: Callable[[Path], Path], tmp_path: Path
) -> None:
    directory = use_store(tmp_path / "store")
    _write_week(directory, 0.3)

    at = _open(app)

    (shown,) = _watch_block(at)
    assert shown.startswith("**regression:curve.fit (built-in)** (warning): curve.fit p95 ")
    assert "above 1.5×" in shown and "previous 7d" in shown
    assert not [c for c in at.caption if c.value.startswith("No watch is firing")]
    assert [m.value for m in at.markdown if m.value == "**Watches**"]
    # the dashboard's evaluation stored the firing: watches have a history
    (event,) = watch_history(SampleStore(directory))
    assert event["watch"] == "regression:curve.fit" and event["builtin"] is True


def test_a_normal_week_says_no_watch_is_firing(
    app: NewApp, use_store: Callable[[Path], Path], tmp_path: Path
) -> None:
    directory = use_store(tmp_path / "store")
    _write_week(directory, 0.1)

    at = _open(app)

    assert _watch_block(at) == []
    (caption,) = [c.value for c in at.caption if c.value.startswith("No watch is firing")]
    assert "1 watch (1 built-in) judged at " in caption
    assert watch_history(SampleStore(directory)) == []


def test_an_empty_store_says_no_watch_is_firing(app: NewApp, empty_store: Path) -> None:
    at = _open(app)

    assert [c for c in at.caption if c.value.startswith("No watch is firing: 0 watches")]
    assert _watch_block(at) == []


def test_a_configured_threshold_is_drawn_on_the_latency_chart(
    app: NewApp,
    use_store: Callable[[Path], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "PTPD_MONITORING_WATCHES",
        json.dumps(
            [
                {"target": "curve.fit", "stat": "p95", "above_ms": 250, "window": "1h"},
                {"target": "GET /api/curves", "stat": "p95", "above": 500, "severity": "critical"},
            ]
        ),
    )
    directory = use_store(tmp_path / "store")
    _write_week(directory, 0.3, requests_ms=900.0)

    at = _open(app, "latency")
    shapes = _shapes(_chart(at, "latency_lines"))

    lines = [s for s in shapes if s["type"] == "line"]
    assert [(s["y0"], s["name"]) for s in lines] == [
        (250.0, "watch: p95 > 250 ms · curve.fit — firing")
    ]
    (band,) = [s for s in shapes if s["type"] == "rect"]  # the built-in regression watch
    assert band["name"] == "baseline 1.5× of 7-day p95 · curve.fit (built-in) — firing"
    assert 95 < band["y0"] < 110 and band["y1"] == pytest.approx(1.5 * band["y0"])
    texts = [a["text"] for a in _chart(at, "latency_lines")["layout"]["annotations"]]
    assert sorted(texts) == sorted(s["name"] for s in shapes)

    at.switch_page("app_pages/api.py").run()
    assert not at.exception
    (line,) = _shapes(_chart(at, "api_latency"))
    assert (line["y0"], line["name"]) == (500.0, "watch: p95 > 500 ms · GET /api/curves — firing")
    assert line["line"]["color"] == "#c8553d"  # critical
    assert not _shapes(_chart(at, "api_errors"))

    at.switch_page("app_pages/overview.py").run()
    shown = [e.value for e in at.error if "GET /api/curves" in e.value]
    assert len(shown) == 1 and shown[0].startswith("**GET /api/curves:p95>500** (critical): ")
    warned = sorted(w.value.split("**")[1] for w in at.warning if "curve.fit" in w.value)
    assert warned == ["curve.fit:p95>250ms", "regression:curve.fit (built-in)"]


def test_a_malformed_watch_is_a_warning_naming_it_and_the_page_goes_on(
    app: NewApp,
    use_store: Callable[[Path], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "PTPD_MONITORING_WATCHES", '[{"name": "fit too slow", "target": "curve.fit"}]'
    )
    directory = use_store(tmp_path / "store")
    _write_week(directory, 0.3)

    at = _open(app)

    (warning,) = [w.value for w in at.warning if "not judged" in w.value]
    assert "PTPD_MONITORING_WATCHES" in warning and "'fit too slow'" in warning
    assert "needs a threshold" in warning
    assert [m.label for m in at.metric]  # the rest of the Overview is there

    at.switch_page("app_pages/latency.py").run()
    assert not at.exception
    assert not _shapes(_chart(at, "latency_lines"))
