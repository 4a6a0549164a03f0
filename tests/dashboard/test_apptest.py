"""Every dashboard page, run in-process by Streamlit's AppTest over real sample stores."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image
from streamlit.testing.v1 import AppTest

from ptpd_calibration.dashboard.upload import profile_upload, rank_uploads, size_class
from ptpd_calibration.monitoring import imaging
from ptpd_calibration.monitoring.imaging import MAX_IMAGE_SETTING, PIPELINE_STEPS, step_tablet_tiff
from ptpd_calibration.monitoring.profiler import operation_of
from ptpd_calibration.monitoring.settings import get_settings
from ptpd_calibration.monitoring.store import SampleStore

# Page file (also the key prefix of its "Generate demo data" button) and its title.
PAGES = [
    ("overview", "Overview"),
    ("latency", "Latency"),
    ("profiling", "Image profiling"),
    ("api", "API"),
    ("cache", "Cache"),
    ("reports", "Reports"),
]
NewApp = Callable[[], AppTest]


def _open(app: NewApp, page: str) -> AppTest:
    at = app().run()
    if page != "overview":  # the default page
        at.switch_page(f"app_pages/{page}.py").run()
    return at


def _charts(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(element.proto.spec) for element in at.get("plotly_chart")]


def _values(values: Any) -> np.ndarray:
    """A trace's y: a plain list or plotly's base64 typed array."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"]))
    return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)


def _chart_title(figure: dict[str, Any]) -> str:
    title = figure.get("layout", {}).get("title", {})
    return str(title.get("text", "")) if isinstance(title, dict) else str(title)


def _errors(at: AppTest) -> list[str]:
    """st.error texts, without the live resource alerts (this machine may be busy)."""
    return [e.value for e in at.error if "threshold" not in e.value]


# -- an empty store --------------------------------------------------------------------------


@pytest.mark.parametrize(("page", "title"), PAGES)
def test_every_page_explains_an_empty_store_and_offers_demo_data(
    app: NewApp, empty_store: Path, page: str, title: str
) -> None:
    at = _open(app, page)

    assert not at.exception
    assert [t.value for t in at.title] == [title]
    assert _errors(at) == []
    assert any(str(empty_store) in info.value and "No samples" in info.value for info in at.info)
    assert at.button(key=f"{page}_demo").label == "Generate demo data"


def test_generate_demo_data_records_a_week_and_the_page_shows_it(
    app: NewApp, empty_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ptpd_calibration.monitoring.demo as demo

    real = demo.record_demo_week
    calls: list[dict[str, Any]] = []

    def repeatable(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        return real(seed=2, **kwargs)

    monkeypatch.setattr(demo, "record_demo_week", repeatable)
    at = _open(app, "latency")
    assert not at.get("plotly_chart")

    at.button(key="latency_demo").click().run()

    assert not at.exception
    assert len(calls) == 1
    assert not [info for info in at.info if "No samples" in info.value]
    assert not [b for b in at.button if b.key == "latency_demo"]
    titles = [_chart_title(figure) for figure in _charts(at)]
    assert titles == ["Percentiles over time", "Distribution"]
    chosen = at.multiselect(key="latency_ops").value
    # The default is where the time goes: the three operations with the most total time
    # (timings only: a profile's CPU-time series are not offered).
    stored = SampleStore(empty_store).load_monitor()
    total = {
        name: stats["mean"] * stats["count"]
        for name in stored.get_operation_names()
        if operation_of(stored, name) is not None and (stats := stored.get_statistics(name))
    }
    assert not [name for name in total if name.endswith("_cpu_time")]
    assert chosen == sorted(total, key=total.__getitem__, reverse=True)[:3]
    assert (empty_store / "cache.db").exists()

    at.switch_page("app_pages/overview.py").run()  # other pages see the data too
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Image operations profiled"] != "0"


# -- a populated store -----------------------------------------------------------------------

# The charts each page draws from the demo data (the Overview also has live gauges).
EXPECTED_CHARTS = {
    "latency": ["Percentiles over time", "Distribution"],
    # the demo's runs are not uploads: ranked apart from them
    "profiling": [
        "Bottlenecks of the demo and app runs, per megapixel "
        "(label: p90/median within a size class; amber: unstable)"
    ],
    "api": ["p95 latency over time", "Error rate over time"],
    "cache": ["Hit rate over time"],
    "reports": [],
}


@pytest.mark.parametrize(("page", "title"), PAGES)
def test_every_page_shows_a_populated_store(
    app: NewApp, populated_store: tuple[Path, dict[str, Any]], page: str, title: str
) -> None:
    at = _open(app, page)

    assert not at.exception
    assert [t.value for t in at.title] == [title]
    assert _errors(at) == []
    assert not [info for info in at.info if "No samples" in info.value]
    assert not [b for b in at.button if b.key == f"{page}_demo"]
    charts = _charts(at)
    if page == "overview":
        gauges = [f for f in charts if f["data"][0]["type"] == "indicator"]
        assert [g["data"][0]["title"]["text"] for g in gauges][:3] == ["CPU", "Memory", "Disk"]
    else:
        assert [_chart_title(figure) for figure in charts] == EXPECTED_CHARTS[page]


def test_overview_headline_numbers_match_the_recorded_session(
    app: NewApp, populated_store: tuple[Path, dict[str, Any]]
) -> None:
    _, summary = populated_store
    at = _open(app, "overview")

    metrics = {m.label: m.value for m in at.metric}
    assert metrics["API requests"] == f"{summary['requests']:,}"
    assert metrics["Image operations profiled"] == f"{7 * summary['pipeline_runs']:,}"
    assert metrics["Error rate"] == _percent(summary["request_errors"] / summary["requests"])
    cache = summary["cache"]
    assert metrics["Cache hit rate"] == _percent(cache["hits"] / (cache["hits"] + cache["misses"]))
    for figure in _charts(at):
        if figure["data"][0]["type"] == "indicator":
            assert 0.0 <= figure["data"][0]["value"] <= 100.0


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.1f} %"


def _column_formats(element: Any) -> dict[str, str]:
    """The printf format of each number column of an st.dataframe (its column_config)."""
    config = json.loads(element.proto.columns or "{}")
    return {
        name: column["type_config"]["format"]
        for name, column in config.items()
        if column.get("type_config", {}).get("format")
    }


def test_api_and_cache_pages_show_the_recorded_totals(
    app: NewApp, populated_store: tuple[Path, dict[str, Any]]
) -> None:
    _, summary = populated_store
    at = _open(app, "api")
    api = {m.label: m.value for m in at.metric}
    assert api["Requests"] == f"{summary['requests']:,}"
    assert api["Error rate"] == _percent(summary["request_errors"] / summary["requests"])

    at.switch_page("app_pages/cache.py").run()
    cache = {m.label: m.value for m in at.metric}
    stats = summary["cache"]
    # two metrics, not "21,530 / …" cut off in one column; the processes apart
    assert cache["Hits"] == f"{stats['hits']:,}"
    assert cache["Misses"] == f"{stats['misses']:,}"
    assert cache["Processes"] == "1"
    assert cache["Hit rate"] == _percent(stats["hits"] / (stats["hits"] + stats["misses"]))
    (size,) = at.get("progress")
    assert size.proto.text == f"size {stats['size']:,} of {stats['max_size']:,}"
    assert size.proto.value == int(100 * stats["size"] / stats["max_size"])


def test_api_tables_show_percentages_and_durations_with_their_unit(
    app: NewApp, populated_store: tuple[Path, dict[str, Any]]
) -> None:
    at = _open(app, "api")
    endpoints, slowest, failing = at.dataframe

    assert list(endpoints.value.columns) == [
        "endpoint",
        "requests",
        "errors",
        "error rate",
        "p50 (ms)",
        "p95 (ms)",
        "p99 (ms)",
    ]
    assert list(slowest.value.columns) == ["endpoint", "p95 (ms)", "mean (ms)"]
    assert list(failing.value.columns) == ["endpoint", "error rate", "errors"]
    # percentages in percent, shown as "6.3 %", not 0.0626
    rates = failing.value["error rate"]
    assert rates.max() > 1.0 and rates.max() <= 100.0
    assert _column_formats(failing)["error rate"] == "%.1f %%"
    assert _column_formats(endpoints) | {} == {
        "error rate": "%.1f %%",
        "p50 (ms)": "%.2f",
        "p95 (ms)": "%.2f",
        "p99 (ms)": "%.2f",
    }
    assert [h.value for h in at.subheader] == ["Slowest (p95, ms)", "Most failing"]
    latency, errors = _charts(at)
    assert latency["layout"]["yaxis"]["title"]["text"] == "ms"
    assert errors["layout"]["yaxis"]["title"]["text"] == "%"


def test_latency_statistics_match_the_charts_unit(
    app: NewApp, populated_store: tuple[Path, dict[str, Any]]
) -> None:
    at = _open(app, "latency")
    (table,) = at.dataframe
    assert [h.value for h in at.subheader] == ["Statistics (ms)"]
    assert all(c == "samples" or c.endswith(" (ms)") for c in table.value.columns)
    lines, _ = _charts(at)
    assert lines["layout"]["yaxis"]["title"]["text"] == "ms"
    subtitle = lines["layout"]["title"]["subtitle"]["text"]
    assert re.fullmatch(r"\d+ (s|min|h|d) buckets, times in UTC[+-]\d\d:\d\d", subtitle)
    # the chart's p99 and the table's are one scale: ms
    p99 = {t["name"]: np.nanmax(_values(t["y"])) for t in lines["data"]}
    for operation in table.value.index:
        assert p99[f"{operation} p99"] <= table.value.loc[operation, "max (ms)"] + 1e-9


@pytest.mark.parametrize("window", ["15 min", "1 h", "24 h", "7 d"])
def test_time_charts_are_lines_at_every_window(
    app: NewApp, populated_store: tuple[Path, dict[str, Any]], window: str
) -> None:
    """The issue: one dot per series in every window, ticks 1 ms apart."""
    at = app().run()
    at.selectbox(key="window_label").set_value(window).run()
    for page in ("latency", "api", "cache"):
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception
        for figure in _charts(at):
            if figure["data"][0]["type"] != "scatter":
                continue
            subtitle = figure["layout"]["title"]["subtitle"]["text"]
            assert " buckets, times in " in subtitle, (page, subtitle)
            for trace in figure["data"]:
                points = np.isfinite(_values(trace["y"])).sum()
                assert points >= 2, (page, trace["name"])  # a line, not a dot
                assert trace["connectgaps"] is False
            start, stop = (pd.Timestamp(t) for t in figure["layout"]["xaxis"]["range"])
            assert (stop - start).total_seconds() >= 10.0


@pytest.mark.parametrize("window", ["15 min", "1 h", "24 h", "7 d"])
def test_the_demo_week_draws_lines_with_shape_at_every_window(
    app: NewApp, demo_week_store: Path, window: str
) -> None:
    """What a printmaker sees on a fresh demo: every time chart a line of many buckets."""
    at = app().run()
    at.selectbox(key="window_label").set_value(window).run()
    for page in ("latency", "api", "cache"):
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception
        lines = [f for f in _charts(at) if f["data"][0]["type"] == "scatter"]
        assert lines, page
        for figure in lines:
            points = [int(np.isfinite(_values(t["y"])).sum()) for t in figure["data"]]
            assert min(points) >= 3, (page, window, points)  # lines, never lone dots
            assert max(points) >= 10, (page, window, points)  # and with shape


def _write_days(directory: Path, days: list[int]) -> None:
    """curve.fit samples at 10:00-10:10 local time ``days`` days ago (0: today)."""
    from datetime import date, datetime, time, timedelta

    from ptpd_calibration.monitoring.store import METRIC, ColumnBatch

    batches = []
    for back in days:
        start = datetime.combine(date.today() - timedelta(days=back), time(10)).astimezone()
        stamps = start.timestamp() + np.linspace(0, 600, 50)
        batches.append(ColumnBatch(METRIC, "curve.fit", (stamps, np.full(50, 0.1)), "seconds"))
    store = SampleStore(directory)
    try:
        assert store.write(batches)
    finally:
        store.close()


def test_compare_defaults_to_the_two_most_recent_days_with_data(
    app: NewApp, use_store: Callable[[Path], Path], tmp_path: Path
) -> None:
    from datetime import date, time, timedelta

    directory = use_store(tmp_path / "store")
    _write_days(directory, [2, 5, 9])  # nothing today or yesterday
    at = _open(app, "reports")

    today = date.today()
    assert at.date_input(key="reports_first_from_date").value == today - timedelta(days=5)
    assert at.date_input(key="reports_first_to_date").value == today - timedelta(days=4)
    assert at.date_input(key="reports_second_from_date").value == today - timedelta(days=2)
    assert at.time_input(key="reports_second_from_time").value == time(0, 0)
    tables = [d.value for d in at.dataframe]
    compared = tables[-1]  # the comparison (after the daily one)
    assert list(compared["operation"]) == ["curve.fit"]
    assert list(compared["first samples"]) == [50] and list(compared["second samples"]) == [50]
    assert "first mean (ms)" in compared.columns
    assert compared["first mean (ms)"][0] == pytest.approx(100.0)
    captions = [c.value for c in at.caption]
    assert f"{(today - timedelta(days=2)).day} " in " ".join(captions)
    assert any(c.endswith(", 00:00 – 24:00") for c in captions)

    # times, not only days: 10:05 onwards of the newer day holds half its samples
    at.time_input(key="reports_second_from_time").set_value(time(10, 5)).run()
    assert not at.exception
    compared = at.dataframe[-1].value
    assert compared["second samples"][0] == 25
    assert any(c.value.endswith(", 10:05 – 24:00") for c in at.caption)


def test_a_custom_window_is_headed_by_its_period(
    app: NewApp, populated_store: tuple[Path, dict[str, Any]]
) -> None:
    from datetime import date, time

    at = app().run()
    at.selectbox(key="window_label").set_value("custom").run()
    at.time_input(key="window_from_time").set_value(time(0, 0)).run()
    assert not at.exception
    today = date.today()
    (heading,) = [h.value for h in at.subheader if h.value != "Alert history"]
    assert heading == f"{today.day} {today:%b %Y}, 00:00 – 24:00"
    assert not heading.startswith("Last")


# -- a corrupt store -------------------------------------------------------------------------


@pytest.mark.parametrize(("page", "title"), PAGES)
def test_a_corrupt_store_gives_a_banner_on_every_page(
    app: NewApp, corrupt_store: Path, page: str, title: str
) -> None:
    at = _open(app, page)

    assert not at.exception
    assert [t.value for t in at.title] == [title]
    banners = [e for e in _errors(at) if str(corrupt_store) in e]
    assert len(banners) == 1, _errors(at)
    assert "can't be read" in banners[0]


# -- image profiling -------------------------------------------------------------------------

TABLET = step_tablet_tiff(600, 150, 7)


def _profile(at: AppTest, name: str, data: bytes, mime: str, runs: int | None = None) -> AppTest:
    at.file_uploader(key="profiling_upload").set_value((name, data, mime)).run()
    if runs is not None:
        at.slider(key="profiling_runs").set_value(runs).run()
    return at.button(key="profiling_run").click().run()


def test_profiling_an_upload_ranks_the_pipeline_steps(app: NewApp, empty_store: Path) -> None:
    at = _open(app, "profiling")
    assert [b.key for b in at.button if b.key == "profiling_run"] == []  # nothing uploaded yet

    _profile(at, "tablet.tif", TABLET, "image/tiff")

    assert not at.exception
    assert _errors(at) == []
    (success,) = at.success
    assert success.value == (
        "`tablet.tif`: 600×150 16-bit greyscale → 1800×450 negative, 3 run(s)."
    )
    assert not at.progress  # it reached 100 % and went
    steps = at.dataframe[0].value
    assert list(steps["step"]) == list(PIPELINE_STEPS)
    assert list(steps.columns) == [
        "step",
        "wall (ms)",
        "CPU (ms)",
        "peak memory (MB)",
        "megapixels/s",
    ]
    assert (steps["wall (ms)"] > 0).all()
    # the luminance step allocates its 16-bit output at least (the issue saw 0 MB)
    luminance = steps.set_index("step").loc["luminance", "peak memory (MB)"]
    assert luminance >= 600 * 150 * 2 / 2**20
    ranking, history = _charts(at)
    assert _chart_title(ranking).startswith("Bottlenecks")
    bars = ranking["data"][0]
    assert sorted(bars["y"]) == sorted(f"pipeline.{s}" for s in PIPELINE_STEPS)
    assert sum(bars["x"]) == pytest.approx(100.0)
    assert list(bars["x"]) == sorted(bars["x"])  # the worst drawn last, on top
    # the upload is published, so the ranking across uploads already holds it
    assert _chart_title(history).startswith("Bottlenecks across uploads, per megapixel")
    assert sorted(history["data"][0]["y"]) == sorted(bars["y"])
    assert any(c.value.startswith("1 upload(s), 3 pipeline run(s)") for c in at.caption)
    assert at.metric[0].label == "Estimated time for a batch of 24 such images"
    assert any(c.value.startswith("Median of 3 runs; p10–p90 range ") for c in at.caption)
    assert at.get("download_button")[0].label == "Download the negative (16-bit TIFF)"
    (upscaled,) = at.warning  # 600 pixels to a 1800-pixel print
    assert upscaled.value.startswith("The image is upscaled 3× (600×150 → 1800×450)")


def _png(image: Image.Image, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", **params)
    return out.getvalue()


def _noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(5)
    channels = len(mode)
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(), mode=mode if channels > 1 else "L")


def _truncated_png() -> bytes:
    whole = _png(_noise((200, 200)))
    return whole[: len(whole) // 2]


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("truncated.png", _truncated_png(), "truncated or corrupt"),
        ("zero.png", b"", "empty (0 bytes)"),
        ("notes.png", b"hello", "not an image"),
    ],
    ids=["truncated-png", "zero-bytes", "not-an-image"],
)
def test_a_bad_upload_gives_a_clear_error(
    app: NewApp, empty_store: Path, name: str, data: bytes, expected: str
) -> None:
    at = _profile(_open(app, "profiling"), name, data, "image/png")

    assert not at.exception
    assert not at.success
    (error,) = _errors(at)
    assert error.startswith(f"`{name}` can't be profiled:")
    assert expected in error


@pytest.fixture
def image_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float], None]]:
    """Sets PTPD_MONITORING_MAX_IMAGE_MEGAPIXELS (the settings are read once a process)."""

    def set_limit(megapixels: float) -> None:
        monkeypatch.setenv(MAX_IMAGE_SETTING, str(megapixels))
        get_settings.cache_clear()

    yield set_limit
    monkeypatch.delenv(MAX_IMAGE_SETTING, raising=False)
    get_settings.cache_clear()


@pytest.mark.parametrize(("name", "mime"), [("huge.tif", "image/tiff"), ("huge.png", "image/png")])
def test_an_image_over_the_limit_names_size_limit_and_setting(
    app: NewApp, empty_store: Path, image_limit: Callable[[float], None], name: str, mime: str
) -> None:
    image_limit(0.05)  # the tablet has 90,000 pixels
    data = TABLET if name.endswith(".tif") else _png(Image.new("L", (600, 150)))
    at = _profile(_open(app, "profiling"), name, data, mime)

    assert not at.exception
    assert not at.success
    assert not at.progress
    (error,) = _errors(at)
    assert error == (
        f"`{name}` can't be profiled: The image is 0.09 megapixels (600 × 150 pixels), more "
        f"than the limit of 0.05 megapixels set by {MAX_IMAGE_SETTING}; raise that setting or "
        "upload a smaller image."
    )


def test_pillows_own_bomb_limit_does_not_apply(
    app: NewApp, empty_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pillow would refuse the 2-megapixel upload (not the page's 800-pixel preview of it).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500_000)
    data = _png(Image.new("L", (2000, 1000)))
    at = _profile(_open(app, "profiling"), "scan.png", data, "image/png", runs=1)

    assert not at.exception
    assert _errors(at) == []
    assert at.success[0].value.startswith("`scan.png`: 2000×1000 8-bit greyscale")


def test_an_image_the_memory_cannot_hold_is_refused(
    app: NewApp, empty_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imaging, "_available_memory", lambda: 50 * 2**20)
    at = _profile(_open(app, "profiling"), "tablet.tif", TABLET, "image/tiff")

    assert not at.exception
    (error,) = _errors(at)
    assert error.startswith("`tablet.tif` can't be profiled: The image (0.09 megapixels, 16-bit ")
    assert "but only 50 MB is available" in error


def test_a_120_megapixel_image_is_profiled(app: NewApp, empty_store: Path) -> None:
    out = io.BytesIO()
    tifffile.imwrite(out, np.full((10_000, 12_000), 200, dtype=np.uint8))  # 120 MB, cheaply
    at = _open(app, "profiling")
    at.file_uploader(key="profiling_upload").set_value(("scan.tif", out.getvalue(), "image/tiff"))
    at.run(timeout=120)
    at.slider(key="profiling_runs").set_value(1).run(timeout=120)
    at.button(key="profiling_run").click().run(timeout=300)

    assert not at.exception
    assert _errors(at) == []
    (success,) = at.success
    assert success.value == (
        "`scan.tif`: 12000×10000 8-bit greyscale → 1800×1500 negative, 1 run(s)."
    )
    assert not at.warning
    steps = at.dataframe[0].value.set_index("step")
    assert steps.loc["luminance", "peak memory (MB)"] >= 12_000 * 10_000 * 2 / 2**20
    assert any(c.value.startswith("From one run, which gives no range") for c in at.caption)


def _rgb16_tiff() -> bytes:
    pixels = np.random.default_rng(3).integers(0, 65536, (200, 300, 3), dtype=np.uint16)
    out = io.BytesIO()
    tifffile.imwrite(out, pixels, photometric="rgb")
    return out.getvalue()


def test_a_tiny_image_says_it_is_upscaled(app: NewApp, empty_store: Path) -> None:
    at = _profile(_open(app, "profiling"), "dot.png", _png(Image.new("L", (1, 1))), "image/png")

    assert at.success[0].value.startswith("`dot.png`: 1×1 8-bit greyscale → 1800×1800 negative")
    (upscaled,) = at.warning
    assert upscaled.value.startswith("The image is upscaled 1.8e+03× (1×1 → 1800×1800)")


def test_the_ranking_across_uploads_counts_uploads_only(
    app: NewApp, populated_store: tuple[Path, dict[str, Any]]
) -> None:
    _, summary = populated_store
    at = _profile(_open(app, "profiling"), "tablet.tif", TABLET, "image/tiff", runs=2)

    assert not at.exception
    titles = [_chart_title(figure) for figure in _charts(at)]
    assert [t.split(",")[0].split(" (")[0] for t in titles] == [
        "Bottlenecks",  # this upload's runs
        "Bottlenecks across uploads",  # uploads only: the demo's tablets are not among them
        "Bottlenecks of the demo and app runs",  # ranked apart
    ]
    captions = [c.value for c in at.caption]
    assert any(c.startswith("1 upload(s), 2 pipeline run(s) in the last") for c in captions)
    assert any(c.startswith(f"{summary['pipeline_runs']} pipeline run(s)") for c in captions)
    by_size = at.dataframe[1].value
    assert list(by_size.columns) == ["under 1 MP"]
    assert list(by_size.index) == list(PIPELINE_STEPS)


def _stored_profiles(runs: list[tuple[int, float, str | None]]) -> pd.DataFrame:
    """Profiles as the store returns them: (source pixels, ms per megapixel, source) per run."""
    rows = []
    for index, (pixels, ms_per_mp, source) in enumerate(runs):
        for step in PIPELINE_STEPS:
            rows.append(
                {
                    "operation": f"pipeline.{step}",
                    "success": True,
                    "pixels": pixels,
                    "wall_time_s": ms_per_mp * pixels / 1e6 / 1000,
                    "source": source,
                    "upload_id": f"u{index // 3}" if source else None,
                    "image_pixels": pixels if source else None,
                }
            )
    return pd.DataFrame(rows)


def test_size_differences_do_not_pass_for_jitter() -> None:
    """The issue: tablets and 88 MP scans ranked together made every step 'unstable'."""
    tablet, scan = 1200 * 300, 88_000_000
    runs = [(tablet, 100.0 + i, "upload") for i in range(6)]
    runs += [(scan, 10.0 + i / 10, "upload") for i in range(6)]
    ranked = rank_uploads(_stored_profiles(runs))

    assert ranked.runs == 12 and ranked.uploads == 4 and ranked.left_out == 0
    assert not [entry for entry in ranked.ranking if entry["unstable"]]
    assert max(entry["slowdown_factor"] for entry in ranked.ranking) < 1.1
    assert list(ranked.by_size.columns) == ["under 1 MP", "30–100 MP"]
    assert ranked.by_size.loc["decode", "30–100 MP"] == pytest.approx(10.25)
    assert sum(entry["share_of_total"] for entry in ranked.ranking) == pytest.approx(1.0)


def test_jitter_within_a_size_class_is_unstable() -> None:
    runs = [(4_000_000, ms, "upload") for ms in (10, 10, 10, 11, 30, 31)]
    ranked = rank_uploads(_stored_profiles(runs))
    assert all(entry["unstable"] for entry in ranked.ranking)


def test_runs_that_are_not_uploads_are_ranked_apart() -> None:
    runs = [(360_000, 50.0, None)] * 4 + [(24_000_000, 20.0, "upload")] * 2
    profiles = _stored_profiles(runs)

    uploads = rank_uploads(profiles)
    assert (uploads.runs, uploads.left_out) == (2, 4)
    assert uploads.by_size.columns.tolist() == ["10–30 MP"]
    others = rank_uploads(profiles, uploads=False)
    assert (others.runs, others.left_out, others.uploads) == (4, 2, 0)
    assert others.by_size.columns.tolist() == ["under 1 MP"]
    assert rank_uploads(profiles.drop(columns=["source", "image_pixels"])).runs == 0
    assert size_class(999_999) == "under 1 MP" and size_class(100e6) == "100 MP and over"


def test_the_batch_estimate_has_a_range_from_two_runs_on(empty_store: Path) -> None:
    three = profile_upload(TABLET, runs=3, batch_size=10)
    assert three.batch is not None
    assert three.batch.p10_s is not None and three.batch.p90_s is not None
    assert three.batch.p10_s <= three.batch.median_s <= three.batch.p90_s
    assert three.batch.runs == 3 and three.batch.batch_size == 10
    one = profile_upload(TABLET, runs=1)
    assert one.batch is not None and one.batch.p10_s is None and one.batch.runs == 1


def test_a_session_keeps_only_what_the_page_shows(empty_store: Path) -> None:
    data = _png(Image.new("L", (3000, 2000), 90))
    outcome = profile_upload(data, runs=1, gamma=1.4)
    kept = [v for v in vars(outcome).values() if isinstance(v, bytes | np.ndarray)]
    assert kept == [outcome.preview_png]  # no pixel arrays, no negative: an 800-pixel preview
    with Image.open(io.BytesIO(outcome.preview_png)) as preview:
        assert max(preview.size) == 800
    # the download makes the negative again, the same as profiled
    with Image.open(io.BytesIO(outcome.negative_tiff(data))) as negative:
        assert (negative.mode, negative.size) == ("I;16", (1800, 1200))
        expected = imaging.run_pipeline(data, long_edge_px=1800, gamma=1.4).negative
        np.testing.assert_array_equal(np.asarray(negative), expected)


def test_a_failed_upload_replaces_the_previous_result(app: NewApp, empty_store: Path) -> None:
    at = _profile(_open(app, "profiling"), "tablet.tif", TABLET, "image/tiff", runs=1)
    assert len(at.success) == 1

    _profile(at, "notes.png", b"hello", "image/png")

    assert not at.exception
    assert not at.success
    assert [e for e in _errors(at) if "notes.png" in e]


def _animated_gif() -> bytes:
    frames = [Image.new("L", (90, 60), shade) for shade in (0, 128, 255)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def _cmyk_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("CMYK", (90, 60), (0, 50, 100, 20)).save(out, format="JPEG")
    return out.getvalue()


def _rgba_png() -> bytes:
    image = _noise((90, 60), "RGBA")
    image.putalpha(Image.linear_gradient("L").resize((90, 60)))
    return _png(image)


def _palette_png() -> bytes:
    return _png(_noise((90, 60)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16))


def _exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to view
    out = io.BytesIO()
    _noise((90, 60)).save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def test_the_unusual_inputs_are_what_they_claim() -> None:
    with Image.open(io.BytesIO(_animated_gif())) as gif:
        assert gif.n_frames == 3
    with Image.open(io.BytesIO(_cmyk_jpeg())) as jpeg:
        assert jpeg.mode == "CMYK"
    with Image.open(io.BytesIO(TABLET)) as tiff:
        assert tiff.mode == "I;16"
    with Image.open(io.BytesIO(_rgba_png())) as png:
        assert png.mode == "RGBA"
        low, high = png.getextrema()[3]
        assert low < 10 and high > 245  # nearly transparent to opaque
    with Image.open(io.BytesIO(_palette_png())) as png:
        assert png.mode == "P"
    with Image.open(io.BytesIO(_exif_rotated_jpeg())) as jpeg:
        assert jpeg.size == (90, 60)
        assert jpeg.getexif()[0x0112] == 6


@pytest.mark.parametrize(
    ("name", "data", "mime", "source"),
    [
        ("animated.gif", _animated_gif(), "image/gif", "90×60 8-bit"),
        ("cmyk.jpg", _cmyk_jpeg(), "image/jpeg", "90×60 8-bit CMYK"),
        ("tablet16.tif", TABLET, "image/tiff", "600×150 16-bit greyscale"),
        ("rgb16.tif", _rgb16_tiff(), "image/tiff", "300×200 16-bit RGB →"),
        ("alpha.png", _rgba_png(), "image/png", "90×60 8-bit RGBA"),
        ("palette.png", _palette_png(), "image/png", "90×60 8-bit palette"),
        ("rotated.jpg", _exif_rotated_jpeg(), "image/jpeg", "60×90 8-bit RGB"),  # upright
    ],
    ids=[
        "animated-gif",
        "cmyk-jpeg",
        "16-bit-tiff",
        "16-bit-rgb-tiff",
        "rgba-png",
        "palette-png",
        "exif-rotated",
    ],
)
def test_unusual_but_valid_images_are_profiled(
    app: NewApp, empty_store: Path, name: str, data: bytes, mime: str, source: str
) -> None:
    at = _profile(_open(app, "profiling"), name, data, mime, runs=1)

    assert not at.exception
    assert _errors(at) == []
    (success,) = at.success
    assert success.value.startswith(f"`{name}`: {source}")
    assert "1 run(s)" in success.value
    assert len(at.dataframe[0].value) == len(PIPELINE_STEPS)


# -- reports ---------------------------------------------------------------------------------


def _check_csv(data: bytes) -> dict[str, list[dict[str, str]]]:
    """The wide tables of a report CSV by title ("" for the first, one row per operation)."""
    blocks = data.decode().split("\n\n")
    tables: dict[str, list[dict[str, str]]] = {}
    for index, block in enumerate(blocks):
        title, body = ("", block) if index == 0 else block.split("\n", 1)
        rows = list(csv.reader(io.StringIO(body)))
        assert all(len(row) == len(rows[0]) for row in rows)  # wide: every row fills the header
        tables[title] = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert next(csv.reader(io.StringIO(blocks[0])))[0] == "operation"
    return tables


def test_report_downloads_are_parseable_json_and_csv(
    app: NewApp, populated_store: tuple[Path, dict[str, Any]], media: Callable[[str], bytes]
) -> None:
    _, summary = populated_store
    at = _open(app, "reports")
    assert not at.exception

    buttons = at.get("download_button")
    assert [b.label for b in buttons] == ["Download JSON", "Download CSV"] * 3
    payloads = [media(b.proto.url) for b in buttons]
    daily, session, comparison = (json.loads(payloads[i]) for i in (0, 2, 4))
    for csv_bytes in payloads[1::2]:
        _check_csv(csv_bytes)

    assert daily["report_type"] == "daily"
    assert "pipeline.decode_wall_time" in daily["operations"]  # a profile's wall times
    assert session["report_type"] == "session"
    assert session["session_id"] == summary["session_id"]
    assert at.selectbox(key="reports_session").value == summary["session_id"]
    assert comparison["report_type"] == "comparison"
    daily_tables = _check_csv(payloads[1])
    decode = next(r for r in daily_tables[""] if r["operation"] == "pipeline.decode_wall_time")
    assert decode["unit"] == "seconds"
    assert int(decode["count"]) == daily["operations"]["pipeline.decode_wall_time"]["count"]
    assert "pipeline.decode" in [r["operation"] for r in daily_tables["Bottlenecks"]]
    assert daily_tables["Report"][0]["report_type"] == "daily"

    at.toggle(key="reports_raw_ready").set_value(True).run()
    assert not at.exception
    raw = [media(b.proto.url) for b in at.get("download_button")][-2:]
    raw_json = json.loads(raw[0])
    assert "pipeline.decode_wall_time" in {sample["metric_name"] for sample in raw_json}
    header = next(csv.reader(io.StringIO(raw[1].decode())))
    assert header == ["metric_name", "value", "unit", "timestamp", "metadata"]
