"""The HTML report opened from disk in the real Chromium, offline, every request recorded.

Two ways to get the file, as users do: ``ptpd-monitor report daily --format html`` over a store
the demo filled (plus an operation and an endpoint named like scripts), and the Reports page's
**Download HTML** button on a running dashboard. Either file must open with no console error,
no network request but the file itself, no dialog (nothing injected ran) and every chart drawn.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, Request, expect

from ptpd_calibration.dashboard.html_report import SECTIONS
from ptpd_calibration.monitoring.store import API, METRIC, ColumnBatch, SampleStore

pytestmark = pytest.mark.e2e

WAIT_MS = 30_000
EVIL = "<script>alert(1)</script>"
EVIL_ENDPOINT = '/api/<img src=x onerror="alert(2)">'
_CLI = [sys.executable, "-m", "ptpd_calibration.monitoring.cli"]


@dataclass
class Opened:
    """What Chromium saw while it opened a report."""

    page: Page
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture
def offline_page(chromium_browser: Browser) -> Iterator[Opened]:
    """A page in an offline context that records requests, console errors and dialogs, and
    refuses any request that is not a local file."""
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_offline(True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    opened = Opened(page)

    def on_request(request: Request) -> None:
        opened.requests.append(request.url)

    page.on("request", on_request)
    page.on(
        "console", lambda m: opened.errors.append(m.text) if m.type in ("error", "warning") else 0
    )
    page.on("pageerror", lambda e: opened.errors.append(f"page error: {e}"))

    def on_dialog(dialog: Any) -> None:
        opened.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    context.route(
        re.compile(r"^(?!file:).*"), lambda route: route.abort()
    )  # recorded above, then refused
    try:
        yield opened
    finally:
        context.close()


def _open(opened: Opened, path: Path) -> int:
    """Open ``path`` and wait for every chart; returns how many there are."""
    page = opened.page
    page.goto(path.as_uri(), wait_until="load")
    expected = path.read_text(encoding="utf-8").count("Plotly.newPlot(")
    assert expected >= 8
    plots = page.locator(".js-plotly-plot")
    expect(plots).to_have_count(expected, timeout=WAIT_MS)
    # Each drew its SVG and at least one trace or bar.
    expect(page.locator(".js-plotly-plot .main-svg").first).to_be_visible()
    drawn = page.locator(".js-plotly-plot").evaluate_all(
        "els => els.map(e => e.querySelectorAll('g.trace, g.point, path.js-line').length)"
    )
    assert all(count > 0 for count in drawn), drawn
    headings = page.locator("section > h2").all_text_contents()
    assert headings == [heading for _, heading in SECTIONS]
    page.wait_for_timeout(300)  # late console messages (a failed relayout) arrive here
    assert opened.errors == []
    assert opened.requests == [path.as_uri()]
    assert opened.dialogs == []
    return expected


@pytest.fixture(scope="module")
def cli_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``report daily --format html`` over a demo store with script-like names added."""
    root = tmp_path_factory.mktemp("html-report")
    store_dir = root / "store"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PTPD_")},
        "PTPD_MONITORING_STORE_DIR": str(store_dir),
        "XDG_DATA_HOME": str(root / "xdg"),
    }
    demo = subprocess.run(
        [*_CLI, "demo", "--seconds", "3", "--seed", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stderr
    now = datetime.now().timestamp()
    ts = now - 60 + np.arange(0, 60, 2.0)
    durations = np.full(ts.size, 12.0)
    assert SampleStore(store_dir).write(
        [
            ColumnBatch(METRIC, EVIL, (ts, np.full(ts.size, 0.05)), "seconds"),
            ColumnBatch(
                API, f"GET {EVIL_ENDPOINT}", (ts, durations, np.full(ts.size, 200.0)), "ms"
            ),
        ]
    )
    output = root / "daily.html"
    done = subprocess.run(
        [*_CLI, "report", "daily", "--date", date.today().isoformat(), "--format", "html",
         "--output", str(output)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return output


def test_the_cli_report_opens_offline_with_every_chart(
    offline_page: Opened, cli_report: Path
) -> None:
    _open(offline_page, cli_report)
    page = offline_page.page
    # The names show as text, in the tables and in the charts' titles and legends.
    expect(page.locator("#operations-table tr", has_text=EVIL)).to_have_count(1)
    expect(page.locator("#endpoints-table tr", has_text=EVIL_ENDPOINT)).to_have_count(1)
    expect(page.locator(".js-plotly-plot text.gtitle", has_text=EVIL)).to_have_count(1)
    expect(page.locator(".js-plotly-plot text.legendtext", has_text=EVIL_ENDPOINT)).to_have_count(
        2  # p95 and error-rate charts
    )
    # Time charts have date axes (from x0/dx on a regular grid), percentile charts four lines.
    percentiles = page.locator("#percentiles .js-plotly-plot")
    assert percentiles.count() >= 5
    legend = percentiles.first.locator("text.legendtext").all_text_contents()
    assert legend == ["p50", "p90", "p95", "p99"]
    ticks = percentiles.first.locator("g.xtick text").all_text_contents()
    assert ticks and all(re.search(r"\d{2}:\d{2}", tick) for tick in ticks), ticks
    # The data the numbers come from can be read back.
    data = page.locator("#report-data").text_content()
    report = json.loads(data or "{}")
    assert report["report_type"] == "daily" and EVIL in report["operations"]
    count = page.locator(f'#operations-table tr[data-key="{EVIL}"] td[data-col="count"]')
    expect(count).to_have_text(str(report["operations"][EVIL]["count"]))


def test_the_dashboards_html_download_opens_offline(
    browser_page: Page, demo_dashboard: Any, offline_page: Opened, tmp_path: Path
) -> None:
    page = browser_page
    page.goto(f"{demo_dashboard.url}/reports")
    expect(page.locator("h1")).to_have_text("Reports", timeout=WAIT_MS)
    page.locator("label:visible", has_text="Prepare the HTML report").first.click()
    button = page.locator(
        '[data-testid="stDownloadButton"] button:visible', has_text="Download HTML"
    )
    with page.expect_download(timeout=WAIT_MS) as info:
        button.first.click(timeout=WAIT_MS)
    download = info.value
    assert re.fullmatch(r"ptpd-daily-\d{4}-\d{2}-\d{2}\.html", download.suggested_filename)
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)

    _open(offline_page, saved)
    text = " ".join(offline_page.page.locator("#summary").all_text_contents())
    assert "daily" in text
