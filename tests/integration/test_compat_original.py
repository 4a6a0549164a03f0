"""Code written against the original in-memory module runs unchanged on this package.

The original is ``src/ptpd_calibration/monitoring/performance.py`` of the calibration app. Each
test here calls the public API the way that module's users (and its own tests) did, and checks
the shapes they relied on, one test group per point of issue 8. Nothing reaches into private
attributes; the only liberty taken is an injected cache clock instead of sleeping past a TTL.
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

import ptpd_calibration.monitoring as monitoring
from ptpd_calibration.monitoring import (
    APIPerformanceTracker,
    CacheManager,
    ImageProcessingProfiler,
    PerformanceMonitor,
    PerformanceReport,
    ResourceMonitor,
    ResourceUsage,
    get_api_tracker,
    get_cache,
    get_monitor,
    get_profiler,
    get_resource_monitor,
)

if TYPE_CHECKING:
    from conftest import FakeClock

STATS_COLUMNS = [
    "operation",
    "count",
    "min",
    "max",
    "mean",
    "median",
    "std",
    "p50",
    "p90",
    "p95",
    "p99",
    "unit",
]


def csv_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """A report CSV's tables by title; the first (per operation) has the title ""."""
    blocks = text.split("\n\n")
    tables = {"": list(csv.DictReader(io.StringIO(blocks[0])))}
    for block in blocks[1:]:
        title, _, body = block.partition("\n")
        tables[title] = list(csv.DictReader(io.StringIO(body)))
    return tables


# -- 1. export_metrics -----------------------------------------------------------------------


def test_export_metrics_json_is_one_object_per_sample() -> None:
    monitor = PerformanceMonitor()
    monitor.record_metric("test1", 10.0, "ms")
    monitor.record_metric("test2", 20.0, "ms", {"key": "value"})

    data = json.loads(monitor.export_metrics(format="json"))

    assert len(data) == 2
    assert data[0]["metric_name"] == "test1"
    assert data[0]["value"] == 10.0
    assert data[1] == {
        "metric_name": "test2",
        "value": 20.0,
        "unit": "ms",
        "timestamp": data[1]["timestamp"],
        "metadata": {"key": "value"},
    }
    assert datetime.fromisoformat(data[1]["timestamp"]).utcoffset() == timedelta(0)


def test_export_metrics_csv_header_rows_and_empty_export() -> None:
    monitor = PerformanceMonitor()
    assert monitor.export_metrics(format="csv") == ""

    monitor.record_metric("test1", 10.0, "ms", {"key": "value"})
    monitor.record_metric("test2", 20.0, "s")
    csv_str = monitor.export_metrics(format="csv")

    lines = csv_str.strip().split("\n")
    assert len(lines) == 3  # header + 2 data rows
    assert lines[0] == "metric_name,value,unit,timestamp,metadata"
    rows = list(csv.DictReader(io.StringIO(csv_str)))
    assert [(r["metric_name"], float(r["value"]), r["unit"]) for r in rows] == [
        ("test1", 10.0, "ms"),
        ("test2", 20.0, "s"),
    ]
    assert json.loads(rows[0]["metadata"]) == {"key": "value"}
    assert json.loads(rows[1]["metadata"]) == {}


def test_export_metrics_filter_and_files(tmp_path: Path) -> None:
    monitor = PerformanceMonitor()
    monitor.record_metric("op1", 10.0, "ms")
    monitor.record_metric("op2", 20.0, "ms")
    monitor.record_metric("op1", 30.0, "ms")

    data = json.loads(monitor.export_metrics(format="json", operation_name="op1"))
    assert len(data) == 2
    assert all(m["metric_name"] == "op1" for m in data)

    json_path, csv_path = tmp_path / "metrics.json", tmp_path / "metrics.csv"
    assert monitor.export_metrics(format="json", output_path=json_path) is None
    assert len(json.loads(json_path.read_text())) == 3
    assert monitor.export_metrics(format="csv", output_path=csv_path) is None
    content = csv_path.read_text()
    assert "metric_name" in content and "op2" in content

    with pytest.raises(ValueError, match="Unsupported format"):
        monitor.export_metrics(format="xml")


# -- 2. the profiler's series names ------------------------------------------------------------


def sample_func(x: int, y: int) -> int:
    return x + y


def test_profile_operation_is_named_after_the_function_and_recorded_as_wall_time() -> None:
    profiler = ImageProcessingProfiler()

    result, profile_data = profiler.profile_operation(sample_func, 5, 10)

    assert result == 15
    assert profile_data["success"] is True
    assert profile_data["operation"] == "sample_func"
    assert {"wall_time_s", "cpu_time_s", "memory_delta_mb"} <= set(profile_data)
    stats = profiler.monitor.get_statistics("sample_func_wall_time")
    assert stats["count"] == 1
    assert stats["mean"] == profile_data["wall_time_s"]
    assert stats["unit"] == "seconds"
    [memory] = profiler.monitor.get_metrics("sample_func_memory")
    assert (memory.value, memory.unit) == (profile_data["memory_delta_mb"], "MB")
    assert profiler.monitor.get_statistics("sample_func_cpu_time")["count"] == 1


def test_a_method_is_named_by_its_own_name() -> None:
    class Kernels:
        def invert(self, value: float) -> float:
            return 1.0 - value

    _, profile = ImageProcessingProfiler().profile_operation(Kernels().invert, 0.25)
    assert profile["operation"] == "invert"


def test_processing_speed_and_batch_time_from_recorded_wall_times() -> None:
    profiler = ImageProcessingProfiler()
    assert profiler.get_processing_speed((1000, 1000), "nonexistent") is None
    assert profiler.estimate_batch_time([(100, 100)], "nonexistent") is None

    # Simulate processing a 1000x1000 image in 0.1 seconds
    profiler.monitor.record_metric("process_wall_time", 0.1, "seconds")
    assert profiler.get_processing_speed((1000, 1000), "process") == pytest.approx(1e6 / 0.1)

    profiler.monitor.record_metric("instant_wall_time", 0.0, "seconds")
    assert profiler.get_processing_speed((100, 100), "instant") is None

    for _ in range(5):
        profiler.monitor.record_metric("batch_wall_time", 0.1, "seconds")
    estimated = profiler.estimate_batch_time([(1000, 1000)] * 10, "batch")
    # ten images at the measured 0.1 s (the original padded this by 10 %; see the README)
    assert estimated == pytest.approx(1.0)


def test_bottlenecks_of_operations_recorded_under_the_original_names() -> None:
    profiler = ImageProcessingProfiler()
    for _ in range(10):
        profiler.monitor.record_metric("fast_op_wall_time", 0.01, "seconds")
    for _ in range(2):
        profiler.monitor.record_metric("fast_op_wall_time", 0.5, "seconds")
    for _ in range(10):
        profiler.monitor.record_metric("consistent_op_wall_time", 0.01, "seconds")

    bottlenecks = profiler.identify_bottlenecks(["fast_op", "consistent_op"])

    assert bottlenecks[0]["operation"] == "fast_op"
    assert bottlenecks[0]["slowdown_factor"] > 2.0
    assert {"operation", "median_time", "p90_time", "max_time", "slowdown_factor", "count"} <= set(
        bottlenecks[0]
    )
    assert bottlenecks[0]["max_time"] == 0.5
    assert profiler.identify_bottlenecks(["nonexistent"]) == []
    assert profiler.identify_bottlenecks([]) == []


def test_profiled_operations_are_ranked_by_operation_name() -> None:
    profiler = ImageProcessingProfiler()

    def slow_step() -> None:
        time.sleep(0.002)

    for _ in range(3):
        profiler.profile_operation(slow_step)
    [entry] = profiler.identify_bottlenecks(["slow_step"])
    assert entry["count"] == 3
    assert [b["operation"] for b in profiler.identify_bottlenecks()] == ["slow_step"]


def test_track_memory_usage_records_a_snapshot_series() -> None:
    profiler = ImageProcessingProfiler()

    profiler.track_memory_usage("test_op")

    metrics = profiler.monitor.get_metrics("test_op_memory_snapshot")
    assert len(metrics) == 1
    assert metrics[0].unit == "MB" and metrics[0].value > 0


# -- 3. memory statistics ------------------------------------------------------------------------


def test_get_memory_stats_keys() -> None:
    stats = ImageProcessingProfiler().get_memory_stats()

    assert {"rss_mb", "vms_mb", "percent", "available_mb"} <= set(stats)
    assert stats["rss_mb"] > 0
    # percent: this process's resident memory as a share of the machine's
    assert 0.0 < stats["percent"] <= 100.0
    assert stats["percent"] == pytest.approx(
        100.0 * stats["rss_mb"] * 1024 * 1024 / psutil.virtual_memory().total, rel=0.5
    )
    assert 0.0 < stats["available_mb"] <= psutil.virtual_memory().total / 1024 / 1024


# -- 4. response times ---------------------------------------------------------------------------


def test_get_response_times_of_every_endpoint() -> None:
    tracker = APIPerformanceTracker()
    tracker.track_request("/api/test1", 0.1, 200, "GET")
    tracker.track_request("/api/test1", 0.2, 200, "GET")
    tracker.track_request("/api/test2", 0.3, 200, "POST")

    response_times = tracker.get_response_times()

    assert set(response_times) == {"/api/test1", "/api/test2"}
    assert response_times["/api/test1"] == pytest.approx([100.0, 200.0])
    assert response_times["/api/test2"] == pytest.approx([300.0])


# -- 5. a TTL of 0 -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "disk"])
def test_ttl_zero_never_expires(backend: str, tmp_path: Path, clock: FakeClock) -> None:
    cache = CacheManager(default_ttl=0, backend=backend, directory=tmp_path, clock=clock)
    cache.set("key1", "value1")
    cache.set("key2", "value2", ttl=0)
    cache.set("key3", "value3", ttl=1)

    clock.advance(100 * 365 * 86_400.0)

    assert cache.get("key1") == "value1"
    assert cache.get("key2") == "value2"
    assert cache.get("key3") is None
    assert cache.cleanup_expired() == 0  # key3 was already counted as expired by the get
    assert cache.get_stats().expirations == 1


@pytest.mark.parametrize("backend", ["memory", "disk"])
@pytest.mark.parametrize("ttl", [-1, float("nan"), float("inf")])
def test_bad_ttls_still_raise(backend: str, ttl: float, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ttl"):
        CacheManager(default_ttl=ttl, backend=backend, directory=tmp_path)
    cache = CacheManager(backend=backend, directory=tmp_path)
    with pytest.raises(ValueError, match="ttl"):
        cache.set("key", "value", ttl=ttl)


def test_ttl_expiration_and_cleanup_as_the_original_tests_did(clock: FakeClock) -> None:
    cache = CacheManager(default_ttl=1, clock=clock)
    cache.set("key1", "value1")
    cache.set("key2", "value2")
    cache.set("key3", "value3", ttl=10)
    assert cache.get("key1") == "value1"

    clock.advance(1.1)

    assert cache.cleanup_expired() == 2
    assert cache.get_size() == 1
    assert cache.get("key3") == "value3"
    cache.set("none", None)
    assert cache.get("none") is None
    assert cache.get_stats().hits == 3  # None is a cached value


# -- 6. ResourceUsage ----------------------------------------------------------------------------


def test_resource_usage_with_gpu_fields() -> None:
    usage = ResourceUsage(
        cpu_percent=50.0,
        memory_percent=60.0,
        memory_used_mb=8192.0,
        memory_available_mb=4096.0,
        disk_percent=70.0,
        disk_used_gb=500.0,
        disk_free_gb=200.0,
        gpu_percent=80.0,
        gpu_memory_mb=4096.0,
    )

    assert usage.gpu_percent == 80.0
    assert usage.gpu_memory_mb == 4096.0


def test_check_resources_fills_the_original_fields() -> None:
    resources = ResourceMonitor().check_resources()

    assert isinstance(resources, ResourceUsage)
    assert resources.cpu_percent >= 0.0
    assert resources.memory_used_mb > 0
    assert resources.memory_available_mb > 0
    assert resources.disk_used_gb >= 0.0 and resources.disk_free_gb >= 0.0
    if resources.gpus:  # GPU 0 beside the list of every GPU
        assert resources.gpu_percent == resources.gpus[0].utilization_percent
        assert resources.gpu_memory_mb == resources.gpus[0].memory_used_mb
    else:
        assert resources.gpu_percent is None and resources.gpu_memory_mb is None


# -- 7. a missing disk path ----------------------------------------------------------------------


def test_missing_disk_path_is_an_os_error_and_a_value_error() -> None:
    monitor = ResourceMonitor()
    path = "/nonexistent/path/that/does/not/exist"

    with pytest.raises(OSError) as raised:
        monitor.get_disk_usage(path)

    assert isinstance(raised.value, FileNotFoundError)
    assert isinstance(raised.value, ValueError)
    assert path in str(raised.value) and "PTPD_MONITORING_DISK_PATH" in str(raised.value)
    try:  # the original test's way of accepting either outcome
        disk = monitor.get_disk_usage(path)
        raise AssertionError(f"no error for a missing path: {disk}")
    except (FileNotFoundError, OSError):
        pass


# -- 8. resource alerts in the daily report --------------------------------------------------------


def test_daily_report_with_a_resource_monitor_has_resources_and_alerts() -> None:
    monitor = PerformanceMonitor()
    with monitor.timer("image_processing"):
        pass
    api_tracker = APIPerformanceTracker()
    api_tracker.track_request("/api/process", 0.1, 200, "POST")
    report_gen = PerformanceReport(
        monitor=monitor, api_tracker=api_tracker, resource_monitor=ResourceMonitor()
    )

    report = report_gen.generate_daily_report()

    assert {"date", "generated_at", "operations", "api", "resources", "resource_alerts"} <= set(
        report
    )
    assert "image_processing" in report["operations"]
    assert report["api"]["total_requests"] > 0
    assert 0.0 <= report["resources"]["cpu_percent"] <= 100.0
    assert isinstance(report["resource_alerts"], list)
    for alert in report["resource_alerts"]:
        assert {"resource", "usage", "threshold", "severity", "message"} <= set(alert)
    assert "resource_alerts" not in PerformanceReport(monitor).generate_daily_report()


def test_session_report_as_the_original_tests_read_it() -> None:
    monitor = PerformanceMonitor()
    monitor.record_metric("op1", 10.0, "ms", {"session_id": "session_123"})
    monitor.record_metric("op1", 20.0, "ms", {"session_id": "session_123"})
    monitor.record_metric("op2", 5.0, "s", {"session_id": "session_456"})

    report = PerformanceReport(monitor).generate_session_report("session_123")

    assert report["session_id"] == "session_123"
    assert report["operations"]["op1"]["count"] == 2
    assert report["operations"]["op1"]["total"] == 30.0
    assert report["operations"]["op1"]["mean"] == 15.0
    assert report["operations"]["op1"]["unit"] == "ms"
    assert "op2" not in report["operations"]


# -- 9. compare_performance ------------------------------------------------------------------------


def _two_periods(
    monitor: PerformanceMonitor, first: dict[str, list[float]], second: dict[str, list[float]]
) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    """Record ``first`` then ``second`` between datetime.now() readings, as the original did."""
    periods = []
    for values in (first, second):
        start = datetime.now()
        for name, series in values.items():
            for value in series:
                monitor.record_metric(name, value, "ms")
        periods.append((start, datetime.now()))
        time.sleep(0.01)
    return periods[0], periods[1]


def test_compare_performance_period_means_and_changes() -> None:
    monitor = PerformanceMonitor()
    period1, period2 = _two_periods(
        monitor,
        {"op1": [10.0, 12.0], "faster": [20.0], "gone": [1.0]},
        {"op1": [20.0, 22.0], "faster": [10.0], "new": [3.0]},
    )

    comparison = PerformanceReport(monitor).compare_performance(period1, period2)

    assert comparison["period1"]["op1"] == {"mean": 11.0, "count": 2}
    assert comparison["period2"]["op1"] == {"mean": 21.0, "count": 2}
    assert comparison["changes"]["op1"]["direction"] == "degraded"  # got slower
    assert comparison["changes"]["op1"]["absolute"] == 10.0
    assert comparison["changes"]["op1"]["percentage"] == pytest.approx(100 * 10 / 11)
    assert comparison["changes"]["faster"] == {
        "absolute": -10.0,
        "percentage": -50.0,
        "direction": "improved",
    }
    assert set(comparison["changes"]) == {"op1", "faster"}  # only operations in both periods
    assert "gone" in comparison["period1"] and "new" in comparison["period2"]


# -- 10. export_report -----------------------------------------------------------------------------


def test_export_report_json_and_files(tmp_path: Path) -> None:
    report_gen = PerformanceReport(PerformanceMonitor())

    data = json.loads(report_gen.export_report({"test": "data", "value": 123}, format="json"))
    assert data == {"test": "data", "value": 123}
    path = tmp_path / "report.json"
    assert report_gen.export_report({"test": "data"}, format="json", path=path) is None
    assert json.loads(path.read_text())["test"] == "data"
    with pytest.raises(ValueError, match="Unsupported format"):
        report_gen.export_report({}, format="xml")


def test_export_report_csv_is_one_wide_row_per_operation(tmp_path: Path) -> None:
    monitor = PerformanceMonitor()
    tracker = APIPerformanceTracker()
    monitor.record_metric("op1", 10.0, "ms")
    monitor.record_metric("op1", 0.05764, "ms")
    monitor.record_metric("tiny", 5.7639000260678586e-05, "seconds")
    tracker.track_request("/api/test", 0.1, 200, "GET")
    report_gen = PerformanceReport(monitor, api_tracker=tracker)
    report = report_gen.generate_daily_report()

    csv_str = report_gen.export_report(report, format="csv")

    assert "operation" in csv_str and "op1" in csv_str
    assert csv_str.splitlines()[0] == ",".join(STATS_COLUMNS)
    assert "e-" not in csv_str and "e+" not in csv_str
    tables = csv_tables(csv_str)
    rows = {row["operation"]: row for row in tables[""]}
    assert rows["op1"]["count"] == "2"
    assert rows["op1"]["unit"] == "ms"  # values stay in the operation's own unit
    assert rows["op1"]["max"] == "10"
    assert rows["op1"]["min"] == "0.05764"
    assert rows["tiny"]["mean"] == "0.00005764"
    [endpoint] = tables["API endpoints"]
    assert endpoint["endpoint"] == "/api/test"
    assert float(endpoint["mean_ms"]) == pytest.approx(100.0)
    assert tables["Report"][0]["generated_at"].endswith("+00:00")

    path = tmp_path / "report.csv"
    assert report_gen.export_report(report, format="csv", path=path) is None
    assert path.read_text() == csv_str


# -- 11. process-wide instances ------------------------------------------------------------------


def test_module_level_getters_return_process_wide_singletons() -> None:
    getters = [get_monitor, get_profiler, get_api_tracker, get_cache, get_resource_monitor]
    first = [getter() for getter in getters]

    assert [getter() for getter in getters] == first
    assert all(a is b for a, b in zip(first, (getter() for getter in getters), strict=True))
    assert get_profiler().monitor is get_monitor()
    assert monitoring.get_monitor() is first[0]


def test_singletons_are_shared_by_threads() -> None:
    barrier = threading.Barrier(8)

    def build() -> list[Any]:
        barrier.wait()
        return [get_monitor(), get_cache(), get_api_tracker()]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: build(), range(8)))

    for column in zip(*results, strict=True):
        assert len({id(instance) for instance in column}) == 1


# -- the original's end-to-end workflow ------------------------------------------------------------


def test_full_workflow_of_the_original_tests() -> None:
    monitor = PerformanceMonitor()
    ImageProcessingProfiler(monitor=monitor)
    api_tracker = APIPerformanceTracker()
    cache = CacheManager()
    report_gen = PerformanceReport(
        monitor=monitor, api_tracker=api_tracker, resource_monitor=ResourceMonitor()
    )

    with monitor.timer("image_processing"):
        time.sleep(0.001)
    api_tracker.track_request("/api/process", 0.1, 200, "POST")
    cache.set("result_123", {"data": "processed"})
    assert monitor.stop_timer("never_started") is None
    assert monitor.get_statistics("nonexistent") == {"count": 0}
    assert monitor.get_percentiles("nonexistent") == {}

    report = report_gen.generate_daily_report()

    assert "image_processing" in report["operations"]
    assert "api" in report and "resources" in report
    stats = report["operations"]["image_processing"]
    assert stats["unit"] == "seconds" and math.isfinite(stats["p99"])
