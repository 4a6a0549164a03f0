"""Unit tests for ResourceMonitor (ptpd_calibration.monitoring.resources).

Live psutil readings are checked by invariants, GPUs come from a fake pynvml, and every store
is a temporary one. Nothing here asserts on timing: the sampler tests poll with a generous
deadline.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ptpd_calibration.monitoring import _nvml, frames
from ptpd_calibration.monitoring.models import GPUUsage, ResourceUsage
from ptpd_calibration.monitoring.resources import (
    MIN_ALERT_DURATION_S,
    ResourceMonitor,
    Severity,
    alert_runs,
    classify,
    critical_level,
    usage_to_record,
)
from ptpd_calibration.monitoring.settings import get_settings
from ptpd_calibration.monitoring.store import RESOURCE, SampleStore

_MIB = 1024 * 1024
_DEADLINE_S = 30.0


class _FakeNVMLError(Exception):
    pass


@dataclass
class _Reading:
    gpu: int
    memory: int = 0
    total: int = 0
    used: int = 0
    free: int = 0


@dataclass
class FakePynvml:
    """Two fake GPUs: 24 GiB with 6 GiB used at 71 %, and 8 GiB with 1 GiB used at 3 %."""

    init_calls: int = 0
    cards: list[tuple[str, int, int, int, int, int]] = field(
        default_factory=lambda: [
            ("Fake RTX 4090", 71, 6144, 24576, 64, 250_000),
            ("Fake RTX 3070", 3, 1024, 8192, 38, 20_000),
        ]
    )

    NVMLError = _FakeNVMLError
    NVML_TEMPERATURE_GPU = 0

    def nvmlInit(self) -> None:
        self.init_calls += 1

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return len(self.cards)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self.cards[handle][0]

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> _Reading:
        return _Reading(gpu=self.cards[handle][1])

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> _Reading:
        used, total = self.cards[handle][2] * _MIB, self.cards[handle][3] * _MIB
        return _Reading(gpu=0, total=total, used=used, free=total - used)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        return self.cards[handle][4]

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        if handle == 1:
            raise _FakeNVMLError("Not Supported")
        return self.cards[handle][5]


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePynvml]:
    _nvml._reset_for_tests()
    fake = FakePynvml()
    monkeypatch.setattr(_nvml, "_pynvml", fake)
    yield fake
    _nvml._reset_for_tests()


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No GPU whatever this machine has, so alert tests stay deterministic."""
    _nvml._reset_for_tests()
    monkeypatch.setattr(_nvml, "_pynvml", None)
    yield
    _nvml._reset_for_tests()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SampleStore]:
    sample_store = SampleStore(tmp_path / "store")
    yield sample_store
    sample_store.close()


def _usage(**fields: Any) -> ResourceUsage:
    base: dict[str, Any] = {"cpu_percent": 10.0, "memory_percent": 20.0, "memory_used_mb": 100.0}
    base["disk_percent"] = 30.0
    base.update(fields)
    return ResourceUsage(**base)


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + _DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.01)


def _stored_rows(store: SampleStore) -> int:
    # The folder appears with the first write; reading before that is a StoreError.
    return len(store.read_records(RESOURCE)) if store.directory.exists() else 0


# -- live readings, by invariants ------------------------------------------------------------


def test_cpu_usage_is_a_percentage_every_time() -> None:
    monitor = ResourceMonitor()
    readings = [monitor.get_cpu_usage() for _ in range(50)]
    time.sleep(0.15)  # let a measurement window pass, so a fresh reading is taken too
    readings.append(monitor.get_cpu_usage())
    assert all(isinstance(value, float) and 0.0 <= value <= 100.0 for value in readings)


def test_memory_usage_keys_and_ranges() -> None:
    memory = ResourceMonitor().get_memory_usage()
    assert set(memory) == {"percent", "used_mb", "available_mb", "total_mb"}
    assert 0.0 <= memory["percent"] <= 100.0
    assert 0.0 < memory["used_mb"] <= memory["total_mb"]
    assert 0.0 <= memory["available_mb"] <= memory["total_mb"]


def test_disk_usage_keys_and_ranges(tmp_path: Path) -> None:
    disk = ResourceMonitor().get_disk_usage(tmp_path)
    assert set(disk) == {"percent", "used_gb", "free_gb", "total_gb", "path"}
    assert disk["path"] == str(tmp_path)
    assert 0.0 <= disk["percent"] <= 100.0
    assert disk["total_gb"] > 0.0
    assert 0.0 <= disk["free_gb"] <= disk["total_gb"]
    assert 0.0 <= disk["used_gb"] <= disk["total_gb"]


def test_disk_usage_defaults_to_the_monitors_path(tmp_path: Path) -> None:
    assert ResourceMonitor(disk_path=tmp_path).get_disk_usage()["path"] == str(tmp_path)


def test_missing_disk_path_names_it_and_says_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "unmounted-drive"
    with pytest.raises(ValueError, match="unmounted-drive") as raised:
        ResourceMonitor().get_disk_usage(missing)
    assert "PTPD_MONITORING_DISK_PATH" in str(raised.value)
    # An OSError as well, as psutil (and the original module) raised it.
    assert isinstance(raised.value, FileNotFoundError)
    with pytest.raises(OSError, match="unmounted-drive"):
        ResourceMonitor().get_disk_usage(str(missing))
    (tmp_path / "a-file").write_text("")
    with pytest.raises(FileNotFoundError):
        ResourceMonitor().get_disk_usage(tmp_path / "a-file" / "below-it")  # not a directory
    with pytest.raises(ValueError, match=r"unmounted-drive.*PTPD_MONITORING_DISK_PATH"):
        ResourceMonitor(disk_path=missing)


def test_disk_path_removed_after_start_is_a_clear_error_when_asked_for(tmp_path: Path) -> None:
    folder = tmp_path / "usb"
    folder.mkdir()
    monitor = ResourceMonitor(disk_path=folder)
    folder.rmdir()
    with pytest.raises(ValueError, match="usb"):
        monitor.get_disk_usage()  # asked for by name: the caller hears why


def test_check_resources_without_gpu(no_gpu: None) -> None:
    monitor = ResourceMonitor()
    usage = monitor.check_resources()
    assert 0.0 <= usage.cpu_percent <= 100.0
    assert 0.0 <= usage.memory_percent <= 100.0
    assert 0.0 <= usage.disk_percent <= 100.0
    assert usage.memory_used_mb > 0.0 and usage.memory_available_mb >= 0.0
    assert usage.disk_used_gb >= 0.0 and usage.disk_free_gb >= 0.0
    assert usage.gpu_percent is None and usage.gpus == []
    assert usage.gpu_memory_mb is None
    assert monitor.get_gpu_usage() is None
    assert monitor.get_all_gpu_usage() == []


def test_check_resources_fills_gpu_fields(fake_nvml: FakePynvml) -> None:
    monitor = ResourceMonitor()
    usage = monitor.check_resources()
    assert usage.gpu_percent == 71.0
    assert usage.gpu_memory_used_mb == 6144.0
    assert usage.gpu_memory_mb == 6144.0  # the original module's name for GPU 0's memory used
    assert usage.gpu_memory_total_mb == 24576.0
    assert [gpu.name for gpu in usage.gpus] == ["Fake RTX 4090", "Fake RTX 3070"]
    assert usage.gpus[0].power_w == 250.0
    assert usage.gpus[1].power_w is None  # not supported on that card, the rest still read
    gpu = monitor.get_gpu_usage()
    assert gpu is not None
    assert gpu["name"] == "Fake RTX 4090" and gpu["memory_percent"] == 25.0
    assert [g.index for g in monitor.get_all_gpu_usage()] == [0, 1]
    assert fake_nvml.init_calls == 1


def test_check_resources_cost(no_gpu: None) -> None:
    """Prints the mean cost (see -s); speed is measured in bench/, never asserted here."""
    monitor = ResourceMonitor()
    calls = 1000
    start = time.perf_counter()
    for _ in range(calls):
        monitor.check_resources()
    mean_ms = (time.perf_counter() - start) / calls * 1000.0
    print(f"check_resources(): {mean_ms:.4f} ms per call (mean of {calls}, no GPU)")


# -- thresholds and alerts -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cpu_threshold", "memory_threshold", "disk_threshold"])
@pytest.mark.parametrize("bad", [0, -5.0, 100.5, math.nan, True, "80"])
def test_threshold_validation_names_the_argument(name: str, bad: object) -> None:
    with pytest.raises(ValueError, match=name):
        ResourceMonitor(**{name: bad})


def test_thresholds_from_arguments_and_settings() -> None:
    monitor = ResourceMonitor(cpu_threshold=75, memory_threshold=100.0)
    assert (monitor.cpu_threshold, monitor.memory_threshold) == (75.0, 100.0)
    assert 0.0 < monitor.disk_threshold <= 100.0  # from settings


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PTPD_MONITORING_CPU_THRESHOLD", "70")
    monkeypatch.setenv("PTPD_MONITORING_DISK_PATH", str(tmp_path))
    get_settings.cache_clear()
    try:
        monitor = ResourceMonitor()
        assert monitor.cpu_threshold == 70.0
        assert monitor.get_disk_usage()["path"] == str(tmp_path)
        monkeypatch.setenv("PTPD_MONITORING_DISK_PATH", str(tmp_path / "gone"))
        get_settings.cache_clear()
        with pytest.raises(ValueError, match=r"gone.*PTPD_MONITORING_DISK_PATH"):
            ResourceMonitor()
    finally:
        get_settings.cache_clear()


def test_max_history_validation() -> None:
    with pytest.raises(ValueError, match="max_history"):
        ResourceMonitor(max_history=0)


def test_classify_levels() -> None:
    assert classify(79.9, 80.0) is None
    assert classify(80.0, 80.0) == "warning"
    assert classify(89.9, 80.0) == "warning"
    assert classify(90.0, 80.0) == "critical"
    assert classify(100.0, 100.0) == "critical"
    assert classify(None, 80.0) is None
    assert classify(math.nan, 80.0) is None
    assert Severity.CRITICAL > Severity.WARNING


@pytest.mark.parametrize("threshold", [50.0, 80.0, 95.0, 100.0])
def test_critical_starts_at_the_critical_level(threshold: float) -> None:
    level = critical_level(threshold)
    assert level == threshold + (100.0 - threshold) / 2
    assert classify(level, threshold) == "critical"
    assert classify(math.nextafter(level, 0.0), threshold) == (
        "warning" if level > threshold else None
    )


def test_alert_runs_are_long_enough_runs_at_or_above_the_threshold() -> None:
    seconds = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
    values = [80, 95, 91, 85, 10, 99, 99, 20, 81, math.nan]
    assert alert_runs(seconds, values, 80.0) == [(0, 3)]  # 30 s; the 10 s blip is no alert
    assert alert_runs(seconds, values, 80.0, min_duration_s=10) == [(0, 3), (5, 6)]
    assert alert_runs(seconds, values, 80.0, min_duration_s=0) == [(0, 3), (5, 6), (8, 8)]
    assert MIN_ALERT_DURATION_S == 30.0
    assert alert_runs([], [], 80.0) == []


def test_no_alerts_below_thresholds() -> None:
    monitor = ResourceMonitor(80.0, 85.0, 90.0)
    assert monitor.get_alerts_for_high_usage(_usage()) == []


def test_warning_and_critical_alerts_worst_first() -> None:
    monitor = ResourceMonitor(80.0, 80.0, 90.0)
    usage = _usage(cpu_percent=85.0, memory_percent=93.0, disk_percent=90.0)
    alerts = monitor.get_alerts_for_high_usage(usage)
    assert [(a["resource"], a["severity"]) for a in alerts] == [
        ("memory", "critical"),
        ("cpu", "warning"),
        ("disk", "warning"),
    ]
    memory, cpu, disk = alerts
    assert memory == {
        "resource": "memory",
        "usage": 93.0,
        "threshold": 80.0,
        "severity": "critical",
        "message": "Memory usage 93.0% is above the 80.0% threshold (critical)",
    }
    assert cpu["message"] == "CPU usage 85.0% is above the 80.0% threshold (warning)"
    assert disk["message"] == "Disk usage 90.0% has reached the 90.0% threshold (warning)"


def test_cpu_critical_message_example() -> None:
    alerts = ResourceMonitor(cpu_threshold=80.0).get_alerts_for_high_usage(_usage(cpu_percent=93.0))
    assert [a["message"] for a in alerts] == [
        "CPU usage 93.0% is above the 80.0% threshold (critical)"
    ]


def test_gpu_alerts_per_device() -> None:
    gpus = [
        GPUUsage(
            index=0, name="A", utilization_percent=95.0, memory_used_mb=10, memory_total_mb=100
        ),
        GPUUsage(
            index=1, name="B", utilization_percent=50.0, memory_used_mb=86, memory_total_mb=100
        ),
        GPUUsage(index=2, name="C"),  # nothing readable: no alert, no error
    ]
    monitor = ResourceMonitor(cpu_threshold=80.0, memory_threshold=85.0)
    alerts = monitor.get_alerts_for_high_usage(_usage(gpus=gpus))
    by_resource = {a["resource"]: a for a in alerts}
    assert set(by_resource) == {"gpu0", "gpu1_memory"}
    assert by_resource["gpu0"]["severity"] == "critical"
    assert by_resource["gpu0"]["threshold"] == 80.0
    assert by_resource["gpu0"]["message"].startswith("GPU 0 (A) utilisation 95.0%")
    assert by_resource["gpu1_memory"]["severity"] == "warning"
    assert by_resource["gpu1_memory"]["usage"] == pytest.approx(86.0)
    assert by_resource["gpu1_memory"]["threshold"] == 85.0


def test_gpu_alert_from_summary_fields_alone() -> None:
    usage = _usage(gpu_percent=99.0, gpu_memory_used_mb=10.0, gpu_memory_total_mb=100.0)
    alerts = ResourceMonitor(cpu_threshold=80.0).get_alerts_for_high_usage(usage)
    assert [(a["resource"], a["severity"]) for a in alerts] == [("gpu0", "critical")]


def test_alerts_take_a_fresh_snapshot_by_default(fake_nvml: FakePynvml) -> None:
    fake_nvml.cards[0] = ("Hot", 99, 100, 24576, 90, 300_000)
    alerts = ResourceMonitor(cpu_threshold=80.0).get_alerts_for_high_usage()
    assert "gpu0" in {a["resource"] for a in alerts}


# -- records ---------------------------------------------------------------------------------


def test_usage_to_record_is_flat_json() -> None:
    gpu = GPUUsage(index=0, name="A", utilization_percent=5.0, memory_used_mb=1.0)
    usage = _usage(gpus=[gpu], memory_available_mb=7.0, disk_used_gb=2.0, disk_free_gb=3.0)
    row = usage_to_record(usage)
    assert row == {
        "ts": usage.timestamp.timestamp(),
        "cpu_percent": 10.0,
        "memory_percent": 20.0,
        "memory_used_mb": 100.0,
        "memory_available_mb": 7.0,
        "disk_percent": 30.0,
        "disk_used_gb": 2.0,
        "disk_free_gb": 3.0,
        "gpu_count": 1,
        "gpu0_utilization_percent": 5.0,
        "gpu0_memory_used_mb": 1.0,
        "gpu0_memory_total_mb": None,
        "gpu0_temperature_c": None,
        "gpu0_power_w": None,
        "gpu0_name": "A",
    }


# -- the sampler -----------------------------------------------------------------------------


def test_sampler_fills_history_without_a_store(no_gpu: None) -> None:
    monitor = ResourceMonitor(max_history=3)
    assert not monitor.is_sampling
    monitor.start_sampling(0.01)
    try:
        assert monitor.is_sampling
        monitor.start_sampling(0.01)  # idempotent
        _wait_for(lambda: len(monitor.get_history()) == 3, "three samples")
    finally:
        monitor.stop_sampling()
    assert not monitor.is_sampling
    history = monitor.get_history()
    assert len(history) == 3  # bounded
    assert [u.timestamp for u in history] == sorted(u.timestamp for u in history)
    assert monitor.pending_batches() == []  # in-memory only: nothing queued for a store


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, True])
def test_sampler_interval_validation(bad: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        ResourceMonitor().start_sampling(bad)


def test_sampler_writes_gpu_rows_to_the_store(fake_nvml: FakePynvml, store: SampleStore) -> None:
    monitor = ResourceMonitor(store=store)
    assert monitor.store is store
    monitor.start_sampling(0.05)
    try:
        _wait_for(lambda: _stored_rows(store) >= 2, "rows in the store")
    finally:
        monitor.stop_sampling()
    frame = frames.resource_samples(store)
    for column in (
        "timestamp",
        "cpu_percent",
        "memory_percent",
        "memory_used_mb",
        "memory_available_mb",
        "disk_percent",
        "disk_used_gb",
        "disk_free_gb",
        "gpu_count",
        "gpu0_utilization_percent",
        "gpu0_memory_used_mb",
        "gpu0_memory_total_mb",
        "gpu0_temperature_c",
        "gpu0_power_w",
        "gpu0_name",
        "gpu1_name",
    ):
        assert column in frame.columns, column
    assert (frame["gpu_count"] == 2).all()
    assert (frame["gpu0_utilization_percent"] == 71.0).all()
    assert (frame["gpu1_memory_total_mb"] == 8192.0).all()
    assert frame["gpu1_power_w"].isna().all()
    assert (frame["gpu0_name"] == "Fake RTX 4090").all()
    assert frame["cpu_percent"].between(0.0, 100.0).all()
    assert frame["timestamp"].is_monotonic_increasing
    rows = store.read_records(RESOURCE)
    assert len(rows) == len(frame)


@pytest.mark.usefixtures("no_background_flush")
def test_stop_sampling_flushes_what_is_pending(no_gpu: None, store: SampleStore) -> None:
    # Without the background flusher, only stop_sampling() can have written the row.
    monitor = ResourceMonitor(store=store)
    monitor.start_sampling(3600.0)  # one sample at start, the next an hour later
    _wait_for(lambda: len(monitor.get_history()) >= 1, "the first sample")
    assert not store.directory.exists()  # nothing written yet: the store opens on first write
    monitor.stop_sampling()
    assert monitor.pending_batches() == []
    assert len(frames.resource_samples(store)) == len(monitor.get_history()) == 1


def test_flush_writes_pending_rows(no_gpu: None, store: SampleStore) -> None:
    monitor = ResourceMonitor(store=store)
    monitor._tick()  # one sampler tick, without the thread
    monitor.flush()
    assert len(store.read_records(RESOURCE)) == 1
    ResourceMonitor().flush()  # an in-memory monitor: nothing to do, no error


def test_a_failing_tick_does_not_kill_the_sampler(
    no_gpu: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = ResourceMonitor()
    real = monitor.check_resources
    calls = {"n": 0}

    def flaky() -> ResourceUsage:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("psutil hiccup")
        return real()

    monkeypatch.setattr(monitor, "check_resources", flaky)
    with caplog.at_level(logging.WARNING):
        monitor.start_sampling(0.01)
        try:
            _wait_for(lambda: len(monitor.get_history()) >= 2, "samples after the failure")
            assert monitor.is_sampling
        finally:
            monitor.stop_sampling()
    assert monitor.sample_errors == 1
    assert "resource sample failed" in caplog.text
    assert "psutil hiccup" in caplog.text


def test_sampler_restarts_after_stop(no_gpu: None) -> None:
    monitor = ResourceMonitor()
    monitor.start_sampling(0.01)
    monitor.stop_sampling()
    count = len(monitor.get_history())
    monitor.start_sampling(0.01)
    try:
        _wait_for(lambda: len(monitor.get_history()) > count, "a sample after the restart")
    finally:
        monitor.stop_sampling()
    monitor.stop_sampling()  # stopping twice is harmless


def test_a_disk_path_that_goes_away_reads_as_nan_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watched = tmp_path / "usb-drive"
    watched.mkdir()
    monitor = ResourceMonitor(disk_path=watched)
    watched.rmdir()  # unmounted while the app runs

    with caplog.at_level(logging.WARNING):
        first = monitor.check_resources()
        second = monitor.check_resources()
        alerts = monitor.get_alerts_for_high_usage()

    assert math.isnan(first.disk_percent) and math.isnan(second.disk_free_gb)
    assert first.cpu_percent >= 0  # the rest of the snapshot is still read
    assert monitor.disk_errors == 3
    assert not [a for a in alerts if a["resource"] == "disk"]
    assert len([r for r in caplog.records if "usb-drive" in r.getMessage()]) == 1
