"""The exporter in-process: the collector over hand-written batches on a pinned clock, and the
exposition served over loopback HTTP. No external binary: Prometheus itself and ``promtool``
check the exporter in ``tests/e2e/test_prometheus.py``.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from ptpd_calibration.monitoring.exporter import StoreCollector, build_registry, serve
from ptpd_calibration.monitoring.store import (
    API,
    CACHE,
    METRIC,
    ColumnBatch,
    RecordBatch,
    SampleStore,
)

if TYPE_CHECKING:
    from conftest import FakeClock

T0 = 1_700_000_000.0


def _columns(kind: str, series: str, unit: str, *columns: list[float]) -> ColumnBatch:
    return ColumnBatch(kind, series, tuple(np.array(c, dtype=float) for c in columns), unit)


def _samples(collector: StoreCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in collector.collect()
        for s in family.samples
    }


def _key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


# -- the collector over hand-written batches and a pinned clock -----------------------------------


def test_counters_settle_then_grow_and_quantiles_cover_the_window(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = SampleStore(tmp_path / "store")
    assert store.write(
        [
            _columns(METRIC, "fit", "seconds", [T0, T0 + 1, T0 + 2], [1.0, 2.0, 4.0]),
            _columns(METRIC, "fit.memory_mb", "MB", [T0, T0 + 1], [50.0, 60.0]),
            _columns(API, "GET /x", "ms", [T0, T0 + 1, T0 + 2], [5.0, 2000.0, 30.0],
                     [200.0, 503.0, 404.0]),
        ]
    )  # fmt: skip
    clock.now = T0 + 4.0
    collector = StoreCollector(store, window_s=300, settle_s=5, clock=clock)
    summary = "ptpd_operation_duration_seconds"
    first = _samples(collector)
    assert first[_key("ptpd_store_up")] == 1
    assert first[_key(f"{summary}_count", operation="fit")] == 0  # not settled yet
    assert first[_key(summary, operation="fit", quantile="0.5")] == 2.0
    assert first[_key("ptpd_operation_value", operation="fit.memory_mb", unit="MB")] == 60

    clock.now = T0 + 8.0  # every sample is 5 s old now
    second = _samples(collector)
    assert second[_key(f"{summary}_count", operation="fit")] == 3
    assert second[_key(f"{summary}_sum", operation="fit")] == 7.0
    ok = {"method": "GET", "endpoint": "/x", "status_class": "2xx"}
    bad = {**ok, "status_class": "5xx"}
    histogram = "ptpd_http_request_duration_seconds"
    assert second[_key("ptpd_http_requests_total", **ok)] == 1
    assert second[_key("ptpd_http_request_errors_total", **ok)] == 0
    assert second[_key("ptpd_http_request_errors_total", **bad)] == 1
    assert second[_key(f"{histogram}_bucket", **ok, le="0.005")] == 1
    assert second[_key(f"{histogram}_bucket", **bad, le="1.0")] == 0
    assert second[_key(f"{histogram}_bucket", **bad, le="2.5")] == 1
    assert second[_key(f"{histogram}_bucket", **bad, le="+Inf")] == 1
    assert second[_key(f"{histogram}_sum", **bad)] == 2.0

    assert store.write([_columns(METRIC, "fit", "seconds", [T0 + 9], [8.0])])
    clock.now = T0 + 400.0  # the window has moved past every sample: no quantiles, counts stay
    third = _samples(collector)
    assert third[_key(f"{summary}_count", operation="fit")] == 4
    assert third[_key(f"{summary}_sum", operation="fit")] == 15.0
    assert not any(name in (summary, "ptpd_operation_value") for name, _ in third)


def test_cache_counters_keep_exited_processes_and_survive_pid_reuse(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = SampleStore(tmp_path / "store")

    def snapshot(ts: float, pid: int, hits: int, misses: int, size: int) -> dict[str, Any]:
        return {"ts": ts, "cache": "curves", "pid": pid, "backend": "memory", "hits": hits,
                "misses": misses, "evictions": 0, "size": size}  # fmt: skip

    assert store.write([RecordBatch(CACHE, "curves", [snapshot(T0, 7, 10, 5, 3)])])
    clock.now = T0 + 1.0
    collector = StoreCollector(store, window_s=60, clock=clock)
    assert _samples(collector)[_key("ptpd_cache_hits_total", cache="curves")] == 10
    # pid 7 exits; a new process gets pid 7 again (its counters restart), and pid 8 starts.
    assert store.write(
        [
            RecordBatch(
                CACHE, "curves", [snapshot(T0 + 100, 7, 2, 1, 4), snapshot(T0 + 101, 8, 4, 0, 6)]
            )
        ]
    )
    clock.now = T0 + 102.0
    samples = _samples(collector)
    assert samples[_key("ptpd_cache_hits_total", cache="curves")] == 10 + 2 + 4
    assert samples[_key("ptpd_cache_misses_total", cache="curves")] == 5 + 1
    assert samples[_key("ptpd_cache_size_entries", cache="curves")] == 4 + 6  # live ones only


def test_an_unreadable_store_scrapes_as_store_down(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "store"
    not_a_folder.write_text("a file")
    text = generate_latest(build_registry(SampleStore(not_a_folder))).decode()
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert samples == ["ptpd_store_up 0.0"]


# -- the exposition, served over loopback HTTP ----------------------------------------------------


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[str]:
    """``serve()`` on a free loopback port over a store of settled, recent samples; ``host:port``.

    ``serve`` reads the real clock, so the samples are a few seconds old: inside the window and
    past the settle time.
    """
    store = SampleStore(tmp_path / "store")
    now = time.time()
    assert store.write(
        [
            _columns(METRIC, "curve.fit", "seconds", [now - 20, now - 15], [0.25, 0.5]),
            _columns(API, "GET /api/curves", "ms", [now - 20, now - 10], [12.0, 900.0],
                     [200.0, 503.0]),
            RecordBatch(CACHE, "curves", [{"ts": now - 10, "cache": "curves", "pid": 1,
                                           "backend": "memory", "hits": 3, "misses": 1,
                                           "evictions": 0, "size": 2}]),
        ]
    )  # fmt: skip
    server, thread = serve(store, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _scrape(exporter: str, accept: str) -> bytes:
    request = urllib.request.Request(f"http://{exporter}/metrics", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


def test_openmetrics_exposition_parses(exporter: str) -> None:
    # promtool 2.42 lints the classic text format only: on OpenMetrics it looks for the HELP
    # of "x_total" where OpenMetrics names the counter family "x", and exits 3. Prometheus
    # itself scrapes OpenMetrics (tests/e2e/test_prometheus.py), and the reference parser must
    # accept it.
    text = _scrape(exporter, "application/openmetrics-text").decode()
    assert text.endswith("# EOF\n")
    parsed = text_string_to_metric_families(text)  # type: ignore[no-untyped-call]
    families = {f.name: f for f in parsed}
    assert families["ptpd_http_requests"].type == "counter"
    assert families["ptpd_http_request_duration_seconds"].type == "histogram"
    assert families["ptpd_operation_duration_seconds"].type == "summary"
