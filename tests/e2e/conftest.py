"""Fixtures for the real-browser tests: a demo store, ``streamlit run`` over it, and Chromium.

The browser is Debian's ``chromium`` driven through Playwright's Python API with
``executable_path`` (``playwright install`` is never needed). Without it the tests fail, not
skip: ``make system-deps`` installs it.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT_MS = 30_000

# The demo week (what `ptpd-monitor demo` writes): the README screenshots are taken from it.
_DEMO = (
    "import ptpd_calibration.monitoring as m\n"
    "from ptpd_calibration.monitoring.demo import record_demo_week\n"
    "record_demo_week(seed=1)\n"
    "m.flush()\n"
)


@dataclass(frozen=True)
class Dashboard:
    """A running ``streamlit run dashboard/app.py`` over a demo store."""

    url: str
    store: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _child_env(store: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PTPD_MONITORING_")}
    env["PTPD_MONITORING_STORE_DIR"] = str(store)
    env["XDG_DATA_HOME"] = str(home / "xdg-data")
    return env


@pytest.fixture(scope="module")
def demo_dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """A demo session recorded by a child process, then the dashboard serving that store."""
    root = tmp_path_factory.mktemp("e2e-dashboard")
    store = root / "store"
    env = _child_env(store, root)
    demo = subprocess.run(
        [sys.executable, "-c", _DEMO],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert demo.returncode == 0, f"demo session failed:\n{demo.stderr}"

    with serving_dashboard(env, root / "streamlit.log") as url:
        yield Dashboard(url, store, root / "streamlit.log")


@contextmanager
def serving_dashboard(env: dict[str, str], log: Path) -> Iterator[str]:
    """``streamlit run dashboard/app.py`` with ``env``, until it answers; yields its URL."""
    port = _free_port()
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "dashboard/app.py",
                "--server.port",
                str(port),
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"streamlit exited with {server.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer /_stcore/health in 60 s:\n{log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


@pytest.fixture
def dashboard_server() -> Callable[[dict[str, str], Path], AbstractContextManager[str]]:
    """``serving_dashboard``: a test's own dashboard over its own store (env), by URL."""
    return serving_dashboard


PROMETHEUS = Path("/usr/bin/prometheus")


@contextmanager
def serving_prometheus(config: Path, root: Path) -> Iterator[str]:
    """Debian's Prometheus with ``config``, its data in ``root``, until ready; yields its URL.

    Fails (never skips) when the binary is missing: these tests need the real server.
    """
    if not PROMETHEUS.is_file():
        pytest.fail(
            f"{PROMETHEUS} is missing: run `make system-deps` (it installs Debian's prometheus "
            "package); this end-to-end test needs the real server and is never skipped"
        )
    log = root / "prometheus.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'data'}",
                "--web.listen-address=127.0.0.1:0",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        listening = re.compile(r'msg="Listening on" address=(127\.0\.0\.1:\d+)')
        deadline = time.monotonic() + 60
        base = ""
        while not base or not _answers(f"{base}/-/ready"):
            if server.poll() is not None:
                pytest.fail(f"prometheus exited with {server.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus was not ready in 60 s:\n{log.read_text()[-3000:]}")
            if not base and (match := listening.search(log.read_text(errors="replace"))):
                base = f"http://{match.group(1)}"
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def prometheus_server() -> Callable[[Path, Path], AbstractContextManager[str]]:
    """``serving_prometheus``: a real Prometheus over a test's own config, by URL."""
    return serving_prometheus


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Browser]:
    """Debian's Chromium under Playwright; fails (never skips) when it is not installed."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run make system-deps (installs Debian's chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium_browser: Browser) -> Iterator[Page]:
    """A fresh browser context (downloads allowed) and one page in it."""
    context = chromium_browser.new_context(
        viewport={"width": 1280, "height": 800}, accept_downloads=True
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()
