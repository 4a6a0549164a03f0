"""The dashboard left open: its server's CPU and memory while a browser shows the Overview.

A real ``streamlit run`` over a demo store, Debian's Chromium on the Overview (whose live panel
reruns every 2 s), and the server process measured with psutil: CPU over the run, and resident
memory sampled every 10 s with a least-squares slope (MB per hour).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil

from bench._harness import Row

_ROOT = Path(__file__).resolve().parent.parent
_CHROMIUM = "/usr/bin/chromium"
_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
         "--server.headless", "true"],
        cwd=_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("streamlit did not start")


def run(seconds: float = 120.0) -> list[Row]:
    """Server CPU (% of one core) and memory slope while the Overview stays open."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, PTPD_MONITORING_STORE_DIR=folder)
        subprocess.run(
            [sys.executable, "-m", "ptpd_calibration.monitoring.cli", "demo", "--seconds", "3"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        port = _free_port()
        server = _serve(env, port)
        process = psutil.Process(server.pid)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=_CHROMIUM, args=_ARGS)
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/")
                page.locator('[data-testid="stPlotlyChart"] text.number').first.wait_for()
                time.sleep(20)  # warm up: imports, first reruns, caches filled
                cpu_start, wall_start = sum(process.cpu_times()[:2]), time.monotonic()
                stamps, rss = [], []
                while time.monotonic() - wall_start < seconds:
                    stamps.append(time.monotonic() - wall_start)
                    rss.append(process.memory_info().rss / 2**20)
                    time.sleep(10)
                if server.poll() is not None:
                    raise RuntimeError(f"the dashboard server exited ({server.returncode})")
                cpu = (sum(process.cpu_times()[:2]) - cpu_start) / (time.monotonic() - wall_start)
                browser.close()
        finally:
            server.terminate()
            server.wait(15)
    slope_mb_per_h = float(np.polyfit(stamps, rss, 1)[0] * 3600)
    return [
        Row(
            f"dashboard server CPU, Overview open {seconds:.0f} s (2 s refresh)",
            100 * cpu,
            "% of a core",
            goal="≤ 3 %",
        ),
        Row("dashboard server memory trend while open", slope_mb_per_h, "MB/h", goal="flat (≈ 0)"),
        Row("dashboard server memory at the end", rss[-1], "MB"),
    ]
