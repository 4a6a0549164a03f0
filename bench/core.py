"""The monitoring core beside prometheus_client, the OpenTelemetry SDK, cachetools and numpy."""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from pathlib import Path

import diskcache
import numpy as np

from bench._harness import Row, per_call_ns, seconds
from ptpd_calibration.monitoring.cache import CacheManager
from ptpd_calibration.monitoring.monitor import PerformanceMonitor
from ptpd_calibration.monitoring.profiler import ImageProcessingProfiler
from ptpd_calibration.monitoring.resources import ResourceMonitor
from ptpd_calibration.monitoring.store import SampleStore

CALLS = 200_000


def _timer_rows(store_dir: Path) -> list[Row]:
    from prometheus_client import CollectorRegistry, Histogram

    histogram = Histogram("bench_seconds", "bench", registry=CollectorRegistry())
    monitor = PerformanceMonitor(max_history=10_000, store=SampleStore(store_dir / "timer"))

    def ours(n: int) -> None:
        timer = monitor.timer
        for _ in range(n):
            with timer("op"):
                pass
        monitor.flush()  # the store's share of the cost, paid here rather than by the flusher

    def peer(n: int) -> None:
        time_it = histogram.time
        for _ in range(n):
            with time_it():
                pass

    return [
        Row(
            "timer() per call, store on, flush included",
            per_call_ns(ours, CALLS),
            "ns",
            "prometheus_client Histogram.time()",
            per_call_ns(peer, CALLS),
            "≤ 0.5 × peer",
        ),
    ]


def _record_rows() -> list[Row]:
    from opentelemetry.sdk.metrics import MeterProvider

    otel = MeterProvider().get_meter("bench").create_histogram("bench")
    monitor = PerformanceMonitor(max_history=10_000)

    def ours(n: int) -> None:
        record = monitor.record_metric
        for i in range(n):
            record("op", 0.001 * (i & 1023))

    def peer(n: int) -> None:
        record = otel.record
        for i in range(n):
            record(0.001 * (i & 1023))

    return [
        Row(
            "record_metric per call",
            per_call_ns(ours, CALLS),
            "ns",
            "OpenTelemetry SDK histogram.record",
            per_call_ns(peer, CALLS),
            "≤ 0.5 × peer",
        ),
    ]


def _cache_rows() -> list[Row]:
    from cachetools import TTLCache

    cache = CacheManager(max_size=1000, default_ttl=600)
    peer_cache: TTLCache[str, int] = TTLCache(maxsize=1000, ttl=600)
    for i in range(1000):
        cache.set(f"k{i}", i)
        peer_cache[f"k{i}"] = i

    def ours(n: int) -> None:
        get = cache.get
        for _ in range(n):
            get("k500")

    def peer(n: int) -> None:
        get = peer_cache.get
        for _ in range(n):
            get("k500")

    return [
        Row(
            "CacheManager.get, hit",
            per_call_ns(ours, CALLS),
            "ns",
            "cachetools TTLCache.get",
            per_call_ns(peer, CALLS),
            "≤ 1 × peer",
        ),
    ]


def _persist_rows(store_dir: Path) -> list[Row]:
    """Per sample written to disk: our batched flush against one diskcache entry per sample."""
    store = SampleStore(store_dir / "persist")
    monitor = PerformanceMonitor(max_history=1000, store=store)
    batch = 100_000

    def ours() -> None:
        for i in range(batch):
            monitor.record_metric("op", float(i))
        monitor.flush()

    ours_s = seconds(ours, repeats=3)
    naive = diskcache.Cache(str(store_dir / "naive"))
    naive_n = 2000

    def peer() -> None:
        for i in range(naive_n):
            naive.set(f"op|{time.time():017.6f}|{i}", float(i))

    peer_s = seconds(peer, repeats=3)
    ours_ns, peer_ns = ours_s / batch * 1e9, peer_s / naive_n * 1e9
    return [
        Row(
            "persisting a sample (record + batched flush)",
            ours_ns,
            "ns",
            "naive writer: one diskcache entry per sample",
            peer_ns,
            "≤ 0.01 × peer",
        ),
        Row(
            "sustained samples per second, one process",
            batch / ours_s,
            "samples/s",
            goal="≥ 300,000 samples/s",
        ),
    ]


def _statistics_rows() -> list[Row]:
    rows = []
    rng = np.random.default_rng(1)
    for n, goal in ((10_000, "≤ 0.5 ms"), (1_000_000, "≤ 50 ms")):
        monitor = PerformanceMonitor(max_history=n)
        for value in rng.lognormal(-4, 0.5, n):
            monitor.record_metric("op", float(value))
        values = monitor._values("op")

        def ours(calls: int, m: PerformanceMonitor = monitor) -> None:
            for _ in range(calls):
                m.get_statistics("op")

        def naive(calls: int, values: np.ndarray = values) -> None:
            for _ in range(calls):
                np.percentile(values, [50, 90, 95, 99])
                values.mean(), values.std(), np.median(values), values.min(), values.max()

        calls = 200 if n <= 10_000 else 5  # per repeat, so one call's cold start doesn't count
        ours_ms = per_call_ns(ours, calls) / 1e6
        peer_ms = per_call_ns(naive, calls) / 1e6
        rows.append(
            Row(
                f"get_statistics over {n:,} samples",
                ours_ms,
                "ms",
                "numpy: np.percentile + mean/std/median",
                peer_ms,
                goal,
            )
        )
    return rows


def _resource_rows() -> list[Row]:
    import psutil

    monitor = ResourceMonitor()

    def ours(n: int) -> None:
        for _ in range(n):
            monitor.check_resources()

    def peer(n: int) -> None:
        for _ in range(n):
            psutil.cpu_percent(None), psutil.virtual_memory(), psutil.disk_usage("/")

    return [
        Row(
            "check_resources()",
            per_call_ns(ours, 500) / 1e6,
            "ms",
            "the three bare psutil calls",
            per_call_ns(peer, 500) / 1e6,
            "≤ 5 ms",
        ),
    ]


def _profile_rows() -> list[Row]:
    profiler = ImageProcessingProfiler()

    def noop() -> None:
        return None

    def ours(n: int) -> None:
        for _ in range(n):
            profiler.profile_operation(noop, operation_name="noop")

    def bare(n: int) -> None:
        for _ in range(n):
            noop()

    overhead_us = (per_call_ns(ours, 5000) - per_call_ns(bare, 5000)) / 1000
    return [Row("profile_operation overhead", overhead_us, "µs", goal="≤ 100 µs")]


def _memory_rows() -> list[Row]:
    n = 1_000_000

    def retained(build: object) -> float:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        kept = build()  # type: ignore[operator]
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del kept
        return (after - before) / n

    def ours() -> PerformanceMonitor:
        monitor = PerformanceMonitor(max_history=n)
        for i in range(n):
            monitor.record_metric("op", float(i))
        return monitor

    def naive() -> list[tuple[float, float]]:
        return [(time.time(), float(i)) for i in range(n)]

    return [
        Row(
            "memory per retained sample, no metadata",
            retained(ours),
            "bytes",
            "a list of (timestamp, value) tuples",
            retained(naive),
            "≤ 64 bytes",
        ),
    ]


def run() -> list[Row]:
    """Every core figure, each beside its peer measured in this same run."""
    with tempfile.TemporaryDirectory() as folder:
        store_dir = Path(folder)
        return [
            *_timer_rows(store_dir),
            *_record_rows(),
            *_cache_rows(),
            *_persist_rows(store_dir),
            *_statistics_rows(),
            *_resource_rows(),
            *_profile_rows(),
            *_memory_rows(),
        ]
