"""The exporter under a real Prometheus server (Debian's ``prometheus``), queried with PromQL.

A demo session is recorded into a temporary store by the CLI in a child process; the exporter
serves that store on a free loopback port; Prometheus scrapes it every second. The expected
numbers come straight from the store's raw samples, so the test checks the whole path: store,
exporter, exposition format, Prometheus' parser and PromQL.

This test must never be skipped in CI: without the server it fails and says how to install it.
The exporter's in-process tests (no external binary) are in ``tests/unit/test_exporter.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ptpd_calibration.monitoring.exporter import HTTP_BUCKETS_S, serve
from ptpd_calibration.monitoring.store import API, CACHE, METRIC, SampleStore

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "ptpd_calibration.monitoring.cli"]
PROMTOOL = Path("/usr/bin/promtool")
JOB = "ptpd"
OPERATION = "curve.fit"
# The first scrape lands about 5-6 s after start (a fixed target-reload tick in 2.42), and the
# exporter counts a sample once it is 5 s old: 30 s leaves room for a slow CI machine.
QUERY_TIMEOUT_S = 30.0


def _require(binary: Path) -> Path:
    if not binary.is_file():
        pytest.fail(
            f"{binary} is missing: run `make system-deps` (it installs Debian's prometheus "
            "package); the exporter's end-to-end test needs the real server and is never skipped"
        )
    return binary


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding one 2-second demo session, recorded by the CLI in a child process."""
    root = tmp_path_factory.mktemp("prometheus-e2e")
    store = root / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTPD_MONITORING_")}
    env.update(PTPD_MONITORING_STORE_DIR=str(store), XDG_DATA_HOME=str(root / "xdg"))
    result = subprocess.run(
        [*CLI, "demo", "--seconds", "2", "--seed", "1"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return store


@pytest.fixture(scope="module")
def store(store_dir: Path) -> SampleStore:
    return SampleStore(store_dir)


@pytest.fixture(scope="module")
def exporter(store: SampleStore) -> Iterator[str]:
    """The exporter over the store on a free loopback port; yields ``host:port``."""
    server, thread = serve(store, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def prometheus(
    exporter: str,
    tmp_path_factory: pytest.TempPathFactory,
    prometheus_server: Callable[[Path, Path], AbstractContextManager[str]],
) -> Iterator[str]:
    """A real Prometheus scraping the exporter every second; yields its base URL."""
    root = tmp_path_factory.mktemp("prometheus-server")
    config = root / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        f"    static_configs: [{{targets: ['{exporter}']}}]\n"
    )
    with prometheus_server(config, root) as base:
        yield base


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bytes(response.read())
    except OSError:
        return None


def _wait_until(condition: Callable[[], bool], what: str, log_path: Path | None = None) -> None:
    deadline = time.monotonic() + QUERY_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            log = log_path.read_text(errors="replace")[-3000:] if log_path else ""
            pytest.fail(f"timed out waiting for {what}\n{log}")
        time.sleep(0.2)


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    body = _get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    if body is None:
        return []
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def _value_when(base: str, promql: str, expected: float | None = None) -> float:
    """The single value of ``promql`` once it exists (and equals ``expected``, when given)."""
    seen: list[list[dict[str, Any]]] = []

    def ready() -> bool:
        result = _query(base, promql)
        seen.append(result)
        if len(result) != 1:
            return False
        value = float(result[0]["value"][1])
        return expected is None or value == pytest.approx(expected)

    deadline = time.monotonic() + QUERY_TIMEOUT_S
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"{promql}: expected {expected}, last result {seen[-1]}")
        time.sleep(0.25)
    return float(seen[-1][0]["value"][1])


def _requests(store: SampleStore) -> tuple[np.ndarray, np.ndarray]:
    """Every stored request: durations in milliseconds (as stored) and status codes."""
    parts = [store.read_columns(API, name) for name in store.series_names(API)]
    durations = np.concatenate([p.columns[1] for p in parts])
    statuses = np.concatenate([p.columns[2] for p in parts])
    return durations, statuses


def _histogram_quantile(q: float, durations_ms: np.ndarray) -> float:
    """PromQL's ``histogram_quantile`` over the exporter's buckets, computed from raw samples."""
    bounds = [float(b) for b in HTTP_BUCKETS_S]
    counts = [int(np.count_nonzero(durations_ms <= b * 1000.0)) for b in bounds]
    rank = q * int(durations_ms.size)
    for i, count in enumerate(counts):
        if count >= rank:
            below = counts[i - 1] if i else 0
            start = bounds[i - 1] if i else 0.0
            return start + (bounds[i] - start) * (rank - below) / (count - below)
    return bounds[-1]  # in the +Inf bucket: Prometheus answers the highest finite bound


def test_requests_total_equals_the_recorded_requests(prometheus: str, store: SampleStore) -> None:
    durations, statuses = _requests(store)
    assert durations.size > 100
    _value_when(prometheus, f'sum(ptpd_http_requests_total{{job="{JOB}"}})', durations.size)
    errors = int(np.count_nonzero(statuses >= 400))
    _value_when(prometheus, f'sum(ptpd_http_request_errors_total{{job="{JOB}"}})', errors)
    by_class = _query(
        prometheus, f'sum by (status_class) (ptpd_http_requests_total{{job="{JOB}"}})'
    )
    assert {r["metric"]["status_class"] for r in by_class} <= {"2xx", "4xx", "5xx"}


def test_operation_count_and_exact_quantiles(prometheus: str, store: SampleStore) -> None:
    values = store.read_columns(METRIC, OPERATION).columns[1]
    selector = f'job="{JOB}",operation="{OPERATION}"'
    _value_when(prometheus, f"ptpd_operation_duration_seconds_count{{{selector}}}", values.size)
    _value_when(
        prometheus, f"ptpd_operation_duration_seconds_sum{{{selector}}}", float(values.sum())
    )
    for q in ("0.5", "0.99"):
        exact = float(np.percentile(values, float(q) * 100))  # linear, over the raw samples
        promql = f'ptpd_operation_duration_seconds{{{selector},quantile="{q}"}}'
        assert _value_when(prometheus, promql) == pytest.approx(exact, rel=1e-12)


def test_histogram_quantile_works(prometheus: str, store: SampleStore) -> None:
    durations, _ = _requests(store)
    _value_when(prometheus, f'sum(ptpd_http_requests_total{{job="{JOB}"}})', durations.size)
    for q in (0.5, 0.9):
        promql = (
            f"histogram_quantile({q}, sum by (le) "
            f'(ptpd_http_request_duration_seconds_bucket{{job="{JOB}"}}))'
        )
        expected = _histogram_quantile(q, durations)
        assert _value_when(prometheus, promql) == pytest.approx(expected, rel=1e-9)


def test_cache_counters_and_store_up(prometheus: str, store: SampleStore) -> None:
    newest: dict[tuple[str, int], dict[str, Any]] = {}
    for row in store.read_records(CACHE):
        newest[(row["cache"], row["pid"])] = row  # sorted by time: the last one wins
    hits = sum(int(row["hits"]) for row in newest.values())
    misses = sum(int(row["misses"]) for row in newest.values())
    assert hits + misses > 0
    _value_when(prometheus, f'sum(ptpd_cache_hits_total{{job="{JOB}"}})', hits)
    _value_when(prometheus, f'sum(ptpd_cache_misses_total{{job="{JOB}"}})', misses)
    _value_when(prometheus, f'ptpd_store_up{{job="{JOB}"}}', 1)
    _value_when(prometheus, f'up{{job="{JOB}"}}', 1)


def _scrape(exporter: str, accept: str) -> bytes:
    request = urllib.request.Request(f"http://{exporter}/metrics", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


def test_promtool_check_metrics_passes(exporter: str) -> None:
    promtool = _require(PROMTOOL)
    text = _scrape(exporter, "text/plain")
    assert b"ptpd_http_request_duration_seconds_bucket" in text
    check = subprocess.run(
        [str(promtool), "check", "metrics"], input=text, capture_output=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr
