"""The dashboard in a real headless Chromium, served by ``streamlit run`` over a demo store.

Each page is screenshotted into a temporary folder; with ``PTPD_SCREENSHOTS_DIR`` set (``make
screenshots`` sets it to docs/screenshots/) the screenshots go there, refreshing the README's.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import tifffile
from PIL import Image
from playwright.sync_api import Page, Request, expect

from ptpd_calibration.monitoring.imaging import PIPELINE_STEPS

pytestmark = pytest.mark.e2e

SCREENSHOTS_ENV = "PTPD_SCREENSHOTS_DIR"
WAIT_MS = 30_000

# url path (also the screenshot's name), sidebar label, page title
PAGES = [
    ("overview", "Overview", "Overview"),
    ("latency", "Latency", "Latency"),
    ("profiling", "Image profiling", "Image profiling"),
    ("api", "API", "API"),
    ("cache", "Cache", "Cache"),
    ("reports", "Reports", "Reports"),
]

GAUGE_NUMBERS = '[data-testid="stPlotlyChart"] g.indicatorlayer text.number'
CHART_TITLES = '[data-testid="stPlotlyChart"] text.gtitle'


LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
DIALOG = '[role="dialog"]'


def _title(page: Page, title: str) -> None:
    expect(page.locator("h1")).to_have_text(title, timeout=WAIT_MS)


def _charts_titled(page: Page, *titles: str) -> None:
    """Wait until a drawn plotly chart carries each title."""
    for title in titles:
        page.locator(CHART_TITLES, has_text=title).first.wait_for(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go: ``$PTPD_SCREENSHOTS_DIR`` when set, else a temporary folder.

    So ``make test`` never rewrites the committed docs/screenshots/; ``make screenshots`` does.
    """
    chosen = os.environ.get(SCREENSHOTS_ENV)
    return Path(chosen).resolve() if chosen else tmp_path_factory.mktemp("screenshots")


def _screenshot(page: Page, folder: Path, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to fit."""
    folder.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size or {"width": 1280, "height": 800}
    height = page.locator('[data-testid="stMainBlockContainer"]').evaluate(
        "e => Math.ceil(e.getBoundingClientRect().bottom)"
    )
    page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], height)})
    page.wait_for_timeout(500)  # let plotly relayout and transitions end (STREAMLIT.md pitfall 3)
    page.screenshot(path=folder / f"{name}.png", full_page=True, animations="disabled")
    page.set_viewport_size(viewport)


def test_overview_gauges_show_live_numbers(
    browser_page: Page, demo_dashboard: Any, screenshots: Path
) -> None:
    page = browser_page
    page.goto(demo_dashboard.url)

    _title(page, "Overview")
    numbers = page.locator(GAUGE_NUMBERS)
    expect(numbers.first).to_have_text(re.compile(r"^\d{1,3}\.\d%$"), timeout=WAIT_MS)
    texts = numbers.all_text_contents()
    assert len(texts) >= 3  # CPU, memory, disk (and two per GPU where there is one)
    for text in texts:
        assert re.fullmatch(r"\d{1,3}\.\d%", text), texts
        assert 0.0 <= float(text[:-1]) <= 100.0
    headline = page.locator('[data-testid="stMetric"]', has_text="API requests")
    expect(headline.locator('[data-testid="stMetricValue"]')).to_have_text(
        re.compile(r"^[1-9][\d,]*$"), timeout=WAIT_MS
    )
    _charts_titled(page, "CPU %, last 10 min")
    _screenshot(page, screenshots, "overview")


@pytest.mark.parametrize("path", ["/overview", "/no-such-page", "/overview/"])
def test_overview_and_unknown_paths_land_on_the_overview_without_a_dialog(
    browser_page: Page, demo_dashboard: Any, path: str
) -> None:
    page = browser_page
    page.goto(f"{demo_dashboard.url}{path}")

    _title(page, "Overview")
    page.locator(GAUGE_NUMBERS).first.wait_for(timeout=WAIT_MS)
    _charts_titled(page, "CPU %, last 10 min")
    page.wait_for_timeout(1000)  # a dialog comes with the first script run's messages
    expect(page.locator(DIALOG)).to_have_count(0)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    current = page.locator('[data-testid="stSidebarNavLink"][aria-current="page"]')
    expect(current).to_have_text(re.compile("Overview"))


def test_no_request_leaves_this_machine(browser_page: Page, demo_dashboard: Any) -> None:
    """The darkroom machine may have no internet: favicon, icons and fonts are local."""
    page = browser_page
    requests: list[str] = []

    def record(request: Request) -> None:
        requests.append(request.url)

    page.context.on("request", record)
    page.goto(demo_dashboard.url)
    _title(page, "Overview")
    page.locator(GAUGE_NUMBERS).first.wait_for(timeout=WAIT_MS)
    links = page.locator('[data-testid="stSidebarNavLink"]')
    for _, label, title in PAGES[1:]:
        links.filter(has_text=label).click()
        _title(page, title)
    page.wait_for_timeout(1000)

    outside = [u for u in requests if urlsplit(u).scheme in ("http", "https", "ws", "wss")]
    outside = [u for u in outside if urlsplit(u).hostname not in LOCAL_HOSTS]
    assert outside == []
    # the favicon is served here (a material icon favicon would come from fonts.gstatic.com)
    icons = page.locator('link[rel~="icon"]').evaluate_all("links => links.map(l => l.href)")
    assert icons and all(
        urlsplit(href).hostname in LOCAL_HOSTS or href.startswith("data:") for href in icons
    ), icons
    # the pages' icons are the bundled Material Symbols font
    assert [u for u in requests if "MaterialSymbols" in u]


def _tick_labels(page: Page, title: str) -> list[str]:
    chart = page.locator('[data-testid="stPlotlyChart"]').filter(has_text=title)
    texts: list[str] = chart.first.locator("g.xtick text").all_text_contents()
    return texts


@pytest.mark.parametrize("window", ["15 min", "7 d"])
def test_time_charts_have_readable_ticks_and_their_bucket_width(
    browser_page: Page, demo_dashboard: Any, window: str
) -> None:
    page = browser_page
    page.goto(f"{demo_dashboard.url}/latency")
    _title(page, "Latency")
    picker = page.locator('[data-testid="stSelectbox"]').filter(has_text="Time window")
    picker.click()
    page.get_by_role("option", name=window, exact=True).click()
    _charts_titled(page, "Percentiles over time")
    page.wait_for_timeout(500)

    subtitle = page.locator('[data-testid="stPlotlyChart"] text[class*="subtitle"]').first
    expect(subtitle).to_have_text(re.compile(r"^\d+ (s|min|h|d) buckets, times in UTC"))
    ticks = _tick_labels(page, "Percentiles over time")
    assert len(ticks) >= 2 and len(set(ticks)) == len(ticks), ticks  # none repeated
    for tick in ticks:  # whole seconds at least: no "02:52:59.9995"
        assert re.fullmatch(r"(\w{3} )?(\d{2} \w{3} )?\d{2}:\d{2}(:\d{2})?", tick), ticks


# What each page draws from the demo store, waited for before its screenshot.
CONTENT = {
    "latency": lambda page: _charts_titled(page, "Percentiles over time", "Distribution"),
    "profiling": lambda page: _charts_titled(page, "Bottlenecks"),
    "api": lambda page: _charts_titled(page, "p95 latency over time", "Error rate over time"),
    "cache": lambda page: _charts_titled(page, "Hit rate over time"),
    "reports": lambda page: page.locator(
        '[data-testid="stDownloadButton"] button:visible', has_text="Download JSON"
    ).first.wait_for(timeout=WAIT_MS),
}


def test_every_page_opens_from_the_sidebar(
    browser_page: Page, demo_dashboard: Any, screenshots: Path
) -> None:
    page = browser_page
    page.goto(demo_dashboard.url)
    _title(page, "Overview")
    links = page.locator('[data-testid="stSidebarNavLink"]')
    expect(links).to_have_count(len(PAGES), timeout=WAIT_MS)

    for url_path, label, title in [*PAGES[1:], PAGES[0]]:
        links.filter(has_text=label).click()
        # the default page lives at the root
        page.wait_for_url(
            re.compile(r":\d+/$" if url_path == "overview" else f"/{url_path}$"), timeout=WAIT_MS
        )
        _title(page, title)
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        if url_path in CONTENT:
            CONTENT[url_path](page)
        else:
            page.locator(GAUGE_NUMBERS).first.wait_for(timeout=WAIT_MS)
        if url_path not in ("overview", "profiling"):  # those two get theirs in their own test
            _screenshot(page, screenshots, url_path)


def _rgb16_tiff(width: int, height: int) -> bytes:
    """A 16-bit RGB TIFF: smooth ramps whose values are not multiples of 257."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 50 + 7, y * 70 + 11, (x + y) * 20 + 3], axis=-1) % 65536
    out = io.BytesIO()
    tifffile.imwrite(out, pixels.astype(np.uint16), photometric="rgb")
    return out.getvalue()


def test_profiling_a_16_bit_rgb_tiff_ranks_the_steps(
    browser_page: Page,
    demo_dashboard: Any,
    tmp_path: Path,
    screenshots: Path,
) -> None:
    scan = tmp_path / "scan-16bit.tif"
    scan.write_bytes(_rgb16_tiff(1200, 800))
    page = browser_page
    page.goto(f"{demo_dashboard.url}/profiling")
    _title(page, "Image profiling")

    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(scan)
    expect(page.locator('[data-testid="stFileChipName"]')).to_have_text(
        "scan-16bit.tif", timeout=WAIT_MS
    )
    page.get_by_role("button", name="Profile", exact=True).click()

    success = page.locator('[data-testid="stAlertContentSuccess"]')
    expect(success).to_contain_text("scan-16bit.tif", timeout=WAIT_MS)
    expect(success).to_contain_text("1200×800 16-bit RGB → 1800×1200 negative")
    # the progress bar reached 100 % and went away
    expect(page.locator('[data-testid="stProgress"]')).to_have_count(0, timeout=WAIT_MS)
    # this upload's ranking, the ranking across uploads, and the demo's runs apart from them
    bottlenecks = page.locator(CHART_TITLES, has_text="Bottlenecks")
    expect(bottlenecks).to_have_count(3, timeout=WAIT_MS)
    ranking = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="Bottlenecks").first
    bars = ranking.locator("g.ytick text").all_text_contents()
    assert sorted(bars) == sorted(f"pipeline.{step}" for step in PIPELINE_STEPS)
    expect(page.locator(CHART_TITLES, has_text="Bottlenecks across uploads")).to_have_count(1)
    expect(page.get_by_text("p10–p90 range", exact=False)).to_have_count(1)
    page.locator('[data-testid="stImage"] img').first.wait_for(timeout=WAIT_MS)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)

    button = page.locator(
        '[data-testid="stDownloadButton"] button', has_text="Download the negative"
    )
    with page.expect_download(timeout=WAIT_MS) as info:
        button.click()
    with Image.open(Path(info.value.path())) as negative:
        assert (negative.mode, negative.size) == ("I;16", (1800, 1200))
    _screenshot(page, screenshots, "profiling")


def test_daily_report_downloads_parse(browser_page: Page, demo_dashboard: Any) -> None:
    page = browser_page
    page.goto(f"{demo_dashboard.url}/reports")
    _title(page, "Reports")
    expect(page.get_by_role("tab", name="Daily")).to_have_attribute("aria-selected", "true")

    def download(label: str) -> tuple[str, bytes]:
        button = page.locator('[data-testid="stDownloadButton"] button:visible', has_text=label)
        with page.expect_download(timeout=WAIT_MS) as info:
            button.first.click()
        return info.value.suggested_filename, Path(info.value.path()).read_bytes()

    json_name, json_bytes = download("Download JSON")
    assert re.fullmatch(r"ptpd-daily-\d{4}-\d{2}-\d{2}\.json", json_name)
    report = json.loads(json_bytes)
    assert report["report_type"] == "daily"
    assert "pipeline.decode_wall_time" in report["operations"]  # the step's profiled wall times

    csv_name, csv_bytes = download("Download CSV")
    assert csv_name == json_name.removesuffix(".json") + ".csv"
    # Wide tables: one row per operation first, then each section after a blank line and a title.
    first, *others = csv_bytes.decode().split("\n\n")
    operations = {r["operation"]: r for r in csv.DictReader(io.StringIO(first))}
    decode = operations["pipeline.decode_wall_time"]
    assert int(decode["count"]) == report["operations"]["pipeline.decode_wall_time"]["count"]
    assert decode["unit"] == "seconds" and "e-" not in decode["mean"]
    tables = {
        title: list(csv.DictReader(io.StringIO(body)))
        for title, _, body in (block.partition("\n") for block in others)
    }
    assert "pipeline.decode" in [r["operation"] for r in tables["Bottlenecks"]]
    assert tables["Report"][0]["report_type"] == "daily"
