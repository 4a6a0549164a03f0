"""The dashboard in a real headless Chromium, served by ``streamlit run`` over a demo store.

Also refreshes the README's screenshots in docs/screenshots/.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from ptpd_calibration.monitoring.imaging import PIPELINE_STEPS, step_tablet_tiff

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
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


def _title(page: Page, title: str) -> None:
    expect(page.locator("h1")).to_have_text(title, timeout=WAIT_MS)


def _charts_titled(page: Page, *titles: str) -> None:
    """Wait until a drawn plotly chart carries each title."""
    for title in titles:
        page.locator(CHART_TITLES, has_text=title).first.wait_for(timeout=WAIT_MS)


def _screenshot(page: Page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to fit."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size or {"width": 1280, "height": 800}
    height = page.locator('[data-testid="stMainBlockContainer"]').evaluate(
        "e => Math.ceil(e.getBoundingClientRect().bottom)"
    )
    page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], height)})
    page.wait_for_timeout(500)  # let plotly relayout and transitions end (STREAMLIT.md pitfall 3)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True, animations="disabled")
    page.set_viewport_size(viewport)


def test_overview_gauges_show_live_numbers(browser_page: Page, demo_dashboard: Any) -> None:
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
    _screenshot(page, "overview")


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


def test_every_page_opens_from_the_sidebar(browser_page: Page, demo_dashboard: Any) -> None:
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
            _screenshot(page, url_path)


def test_profiling_a_16_bit_tiff_ranks_the_steps(
    browser_page: Page,
    demo_dashboard: Any,
    tmp_path: Path,
) -> None:
    tablet = tmp_path / "step-tablet.tif"
    tablet.write_bytes(step_tablet_tiff(1200, 300, 21))
    page = browser_page
    page.goto(f"{demo_dashboard.url}/profiling")
    _title(page, "Image profiling")

    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(tablet)
    expect(page.locator('[data-testid="stFileChipName"]')).to_have_text(
        "step-tablet.tif", timeout=WAIT_MS
    )
    page.get_by_role("button", name="Profile", exact=True).click()

    success = page.locator('[data-testid="stAlertContentSuccess"]')
    expect(success).to_contain_text("step-tablet.tif", timeout=WAIT_MS)
    expect(success).to_contain_text("1200×300 I;16")
    expect(page.locator('[data-testid="stProgress"] [role="progressbar"]')).to_have_attribute(
        "aria-valuenow", "100", timeout=WAIT_MS
    )
    # this upload's ranking plus the ranking across uploads
    bottlenecks = page.locator(CHART_TITLES, has_text="Bottlenecks")
    expect(bottlenecks).to_have_count(2, timeout=WAIT_MS)
    ranking = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="Bottlenecks").first
    bars = ranking.locator("g.ytick text").all_text_contents()
    assert sorted(bars) == sorted(f"pipeline.{step}" for step in PIPELINE_STEPS)
    page.locator('[data-testid="stImage"] img').first.wait_for(timeout=WAIT_MS)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    _screenshot(page, "profiling")


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
