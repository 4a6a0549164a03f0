"""Unit tests for ptpd_calibration.monitoring.models (the QUICKREF data models)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from ptpd_calibration.monitoring.models import (
    APIMetric,
    CacheStats,
    GPUUsage,
    PerformanceMetric,
    ResourceUsage,
)

WHEN = datetime(2025, 6, 15, 12, 30, 45, 123456, tzinfo=UTC)


def test_performance_metric_fields_and_defaults() -> None:
    before = datetime.now(UTC)
    metric = PerformanceMetric(metric_name="decode", value=0.25)
    after = datetime.now(UTC)

    assert metric.metric_name == "decode"
    assert metric.value == 0.25
    assert metric.unit == "seconds"
    assert metric.metadata == {}
    assert metric.timestamp.tzinfo is not None
    assert before <= metric.timestamp <= after


def test_default_metadata_is_not_shared() -> None:
    first = PerformanceMetric(metric_name="a", value=1.0)
    second = PerformanceMetric(metric_name="b", value=2.0)
    first.metadata["x"] = 1

    assert second.metadata == {}


def test_performance_metric_is_frozen() -> None:
    metric = PerformanceMetric(metric_name="decode", value=0.25)
    with pytest.raises(ValidationError):
        metric.value = 1.0  # type: ignore[misc]


def test_performance_metric_rejects_non_numbers() -> None:
    with pytest.raises(ValidationError):
        PerformanceMetric(metric_name="decode", value="fast")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "model",
    [
        PerformanceMetric(
            metric_name="decode",
            value=0.1,
            unit="ms",
            timestamp=WHEN,
            metadata={"session_id": "s", "n": [1, 2]},
        ),
        GPUUsage(
            index=0,
            name="H100",
            utilization_percent=55.5,
            memory_used_mb=1024.0,
            memory_total_mb=4096.0,
        ),
        ResourceUsage(
            cpu_percent=12.5,
            memory_percent=40.0,
            memory_used_mb=2048.0,
            disk_percent=70.0,
            gpu_percent=55.5,
            gpus=[GPUUsage(index=0, name="H100", memory_used_mb=1.0, memory_total_mb=4.0)],
            timestamp=WHEN,
        ),
        APIMetric(
            endpoint="/api/curves",
            duration_ms=12.5,
            status_code=503,
            method="POST",
            error="RuntimeError: away",
            timestamp=WHEN,
            metadata={"session_id": "s"},
        ),
        CacheStats(
            hits=3,
            misses=1,
            size=4,
            max_size=10,
            evictions=2,
            expirations=1,
            name="curves",
            timestamp=WHEN,
        ),
    ],
    ids=lambda model: type(model).__name__,
)
def test_json_round_trip(
    model: PerformanceMetric | GPUUsage | ResourceUsage | APIMetric | CacheStats,
) -> None:
    text = model.model_dump_json()

    json.loads(text)  # plain JSON
    again = type(model).model_validate_json(text)

    assert again == model
    assert again.model_dump() == model.model_dump()


def test_timestamps_serialise_as_iso_with_offset() -> None:
    data = json.loads(
        PerformanceMetric(metric_name="a", value=1.0, timestamp=WHEN).model_dump_json()
    )
    assert datetime.fromisoformat(data["timestamp"]) == WHEN
    # datetime.isoformat(), as the original module wrote it: "+00:00", never pydantic's "Z"
    for model in (
        PerformanceMetric(metric_name="a", value=1.0, timestamp=WHEN),
        APIMetric(endpoint="/a", duration_ms=1.0, status_code=200, timestamp=WHEN),
        CacheStats(timestamp=WHEN),
        ResourceUsage(
            cpu_percent=1, memory_percent=2, memory_used_mb=3, disk_percent=4, timestamp=WHEN
        ),
    ):
        assert model.model_dump(mode="json")["timestamp"] == WHEN.isoformat()


def test_cache_stats_rates() -> None:
    stats = CacheStats(hits=3, misses=1)

    assert stats.hit_rate == 0.75
    assert stats.miss_rate == 0.25
    assert CacheStats(hits=5, misses=0).hit_rate == 1.0
    assert CacheStats(hits=0, misses=5).miss_rate == 1.0


def test_cache_stats_rates_without_lookups() -> None:
    stats = CacheStats()

    assert stats.hit_rate == 0.0
    assert stats.miss_rate == 0.0
    assert (stats.hits, stats.misses, stats.size, stats.evictions) == (0, 0, 0, 0)


def test_cache_stats_rates_are_derived_and_serialised() -> None:
    stats = CacheStats(hits=1, misses=3)

    dumped = stats.model_dump()
    assert dumped["hit_rate"] == 0.25
    assert dumped["miss_rate"] == 0.75
    # rates follow the counters; they are never stored
    changed = stats.model_copy(update={"hits": 3, "misses": 1})
    assert changed.hit_rate == 0.75
    # a dump with the computed fields still validates back
    assert CacheStats.model_validate(dumped).hit_rate == 0.25


def test_gpu_memory_percent() -> None:
    assert (
        GPUUsage(index=0, name="g", memory_used_mb=1024.0, memory_total_mb=4096.0).memory_percent
        == 25.0
    )
    assert (
        GPUUsage(index=0, name="g", memory_used_mb=0.0, memory_total_mb=4096.0).memory_percent
        == 0.0
    )
    assert (
        GPUUsage(index=0, name="g", memory_used_mb=None, memory_total_mb=4096.0).memory_percent
        is None
    )
    assert (
        GPUUsage(index=0, name="g", memory_used_mb=10.0, memory_total_mb=None).memory_percent
        is None
    )
    assert (
        GPUUsage(index=0, name="g", memory_used_mb=10.0, memory_total_mb=0.0).memory_percent is None
    )
    assert GPUUsage(index=1, name="g").model_dump()["memory_percent"] is None


def test_resource_usage_quickref_fields() -> None:
    usage = ResourceUsage(
        cpu_percent=10.0, memory_percent=20.0, memory_used_mb=300.0, disk_percent=40.0
    )

    assert usage.gpu_percent is None
    assert usage.gpus == []
    assert usage.memory_available_mb == 0.0
    assert datetime.now(UTC) - usage.timestamp < timedelta(minutes=1)
    with pytest.raises(ValidationError):
        ResourceUsage(cpu_percent=10.0, memory_percent=20.0, disk_percent=40.0)  # type: ignore[call-arg]


def test_resource_usage_takes_the_original_modules_fields() -> None:
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

    assert (usage.gpu_percent, usage.gpu_memory_mb) == (80.0, 4096.0)
    assert usage.gpu_memory_used_mb == 4096.0  # one reading under both names
    newer = ResourceUsage(
        cpu_percent=1, memory_percent=1, memory_used_mb=1, disk_percent=1, gpu_memory_used_mb=5.0
    )
    assert newer.gpu_memory_mb == 5.0
    assert "gpu_memory_mb" in usage.model_dump()


@pytest.mark.parametrize(
    ("status", "is_error"),
    [(100, False), (200, False), (399, False), (400, True), (404, True), (500, True), (599, True)],
)
def test_api_metric_is_error(status: int, is_error: bool) -> None:
    metric = APIMetric(endpoint="/api/x", duration_ms=1.0, status_code=status)

    assert metric.is_error is is_error
    assert metric.method == "GET"
    assert metric.error is None
    assert metric.metadata == {}


def test_cache_stats_read_as_a_mapping_too() -> None:
    stats = CacheStats(hits=3, misses=1, size=2, evictions=1)
    assert stats["hits"] == 3 and stats["hit_rate"] == 0.75 and stats["miss_rate"] == 0.25
    with pytest.raises(KeyError):
        stats["nope"]
