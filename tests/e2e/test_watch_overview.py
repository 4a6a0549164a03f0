"""Operation watches end to end: real processes write a regressed week into a store,
``ptpd-monitor watch`` exits 1, and the dashboard served by ``streamlit run`` over that store
shows the firing watch on its Overview in a real Chromium.

Two writer processes share the store: one writes seven days of normal ``curve.fit`` timings
(the baseline), the other a last hour three times slower, with the writers' clock, so the
built-in regression watch (p95 of the last hour against the previous 7 days) judges them as it
judges the app's own samples.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ptpd_calibration.monitoring.store import SampleStore
from ptpd_calibration.monitoring.watches import watch_history

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 60_000

WRITER = r"""
import sys
import time

import numpy as np

from ptpd_calibration.monitoring import get_store
from ptpd_calibration.monitoring.store import METRIC, ColumnBatch

part, seconds = sys.argv[1], float(sys.argv[2])
now = time.time()
rng = np.random.default_rng(1 if part == "week" else 2)
if part == "week":  # 60 timings in each hour of the 7 days before the last hour
    starts = [now - hour * 3600.0 for hour in range(2, 24 * 7)]
    stamps = np.concatenate([start + np.linspace(0.0, 30.0, 60) for start in starts])
else:  # 120 timings from 50 to 10 minutes ago
    stamps = now - 3000.0 + np.linspace(0.0, 2400.0, 120)
values = rng.normal(seconds, seconds * 0.05, stamps.size)
assert get_store().write([ColumnBatch(METRIC, "curve.fit", (stamps, values), "seconds")])
"""


def _env(store: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PTPD_MONITORING_")}
    env["PTPD_MONITORING_STORE_DIR"] = str(store)
    env["XDG_DATA_HOME"] = str(home / "xdg-data")
    return env


def _ptpd_monitor() -> list[str]:
    """The installed ``ptpd-monitor`` command beside this interpreter (the module without it)."""
    script = Path(sys.executable).parent / "ptpd-monitor"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "ptpd_calibration.monitoring.cli"]


def test_a_regressed_week_fires_the_watch_and_the_overview_shows_it(
    tmp_path: Path,
    browser_page: Page,
    dashboard_server: Callable[[dict[str, str], Path], AbstractContextManager[str]],
) -> None:
    store = tmp_path / "store"
    env = _env(store, tmp_path)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, part, seconds],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for part, seconds in (("week", "0.1"), ("hour", "0.3"))
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr

    done = subprocess.run(
        [*_ptpd_monitor(), "watch"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 1, done.stderr
    (line,) = done.stdout.strip().splitlines()
    assert line.startswith("WARNING regression:curve.fit: curve.fit p95 over the last 1h is ")
    assert "1 firing" in done.stderr

    with dashboard_server(env, tmp_path / "streamlit.log") as url:
        browser_page.goto(url)
        expect(browser_page.locator("h1")).to_have_text("Overview", timeout=WAIT_MS)
        alert = browser_page.locator('[data-testid="stAlert"]', has_text="regression:curve.fit")
        expect(alert).to_have_count(1, timeout=WAIT_MS)
        text = alert.inner_text()
        assert "regression:curve.fit (built-in) (warning): curve.fit p95 over the last 1h" in text
        assert "its p95 over the previous 7d" in text and "above 1.5×" in text
        expect(browser_page.get_by_text("Watches", exact=True)).to_be_visible()
        expect(browser_page.get_by_text("1 firing of 1 watch (1 built-in)")).to_be_visible()

    # the command's firing is in the store's history (the dashboard's, within the minute, is
    # the same firing: one event per watch a minute)
    events = watch_history(SampleStore(store), watch="regression:curve.fit")
    assert events and events[0]["builtin"] is True
    assert events[0]["value"] > 1.5 * events[0]["baseline"]
