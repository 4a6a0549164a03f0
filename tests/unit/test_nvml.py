"""Unit tests for the NVML wrapper (ptpd_calibration.monitoring._nvml) against a fake pynvml.

No GPU is needed: the fake stands in for the ``pynvml`` module, and one test runs the real module
on whatever this machine has (no driver on CI) to check that it fails quietly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from ptpd_calibration.monitoring import _nvml

_MIB = 1024 * 1024


class FakeNVMLError(Exception):
    """Stands in for pynvml.NVMLError."""


@dataclass
class FakeDevice:
    name: str
    gpu_util: int
    memory_used: int  # bytes
    memory_total: int  # bytes
    temperature: int  # °C
    power_mw: int


@dataclass
class _Utilization:
    gpu: int
    memory: int


@dataclass
class _Memory:
    total: int
    used: int
    free: int


@dataclass
class FakePynvml:
    """The slice of pynvml the wrapper uses, with two devices and call counters."""

    devices: list[FakeDevice] = field(
        default_factory=lambda: [
            FakeDevice("Fake A100", 37, 1024 * _MIB, 40960 * _MIB, 55, 123_456),
            FakeDevice("Fake T4", 0, 512 * _MIB, 15360 * _MIB, 41, 27_000),
        ]
    )
    init_error: bool = False
    failing: set[tuple[str, int]] = field(default_factory=set)  # (function name, device index)
    init_calls: int = 0
    shutdown_calls: int = 0

    NVMLError = FakeNVMLError
    NVML_TEMPERATURE_GPU = 0

    def nvmlInit(self) -> None:
        self.init_calls += 1
        time.sleep(0.01)  # widen the window in which racing threads could both start NVML
        if self.init_error:
            raise FakeNVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:
        self.shutdown_calls += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def _device(self, function: str, index: int) -> FakeDevice:
        if (function, index) in self.failing:
            raise FakeNVMLError("Not Supported")
        return self.devices[index]

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._device("nvmlDeviceGetHandleByIndex", index)
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self._device("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> _Utilization:
        return _Utilization(self._device("nvmlDeviceGetUtilizationRates", handle).gpu_util, 0)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> _Memory:
        device = self._device("nvmlDeviceGetMemoryInfo", handle)
        used, total = device.memory_used, device.memory_total
        return _Memory(total=total, used=used, free=total - used)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self._device("nvmlDeviceGetTemperature", handle).temperature

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return self._device("nvmlDeviceGetPowerUsage", handle).power_mw


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePynvml]:
    """A fresh fake pynvml wired into _nvml, with its init state forgotten before and after."""
    _nvml._reset_for_tests()
    fake = FakePynvml()
    monkeypatch.setattr(_nvml, "_pynvml", fake)
    yield fake
    _nvml._reset_for_tests()


def test_two_devices_converted_to_mb_watts_and_percent(fake: FakePynvml) -> None:
    assert _nvml.is_available()
    assert _nvml.device_count() == 2
    first, second = _nvml.gpu_snapshots()
    assert first.model_dump() == {
        "index": 0,
        "name": "Fake A100",
        "utilization_percent": 37.0,
        "memory_used_mb": 1024.0,
        "memory_total_mb": 40960.0,
        "temperature_c": 55.0,
        "power_w": 123.456,
        "memory_percent": 2.5,
    }
    assert (second.index, second.name, second.utilization_percent) == (1, "Fake T4", 0.0)
    assert (second.memory_used_mb, second.memory_total_mb) == (512.0, 15360.0)
    assert (second.temperature_c, second.power_w) == (41.0, 27.0)


def test_single_snapshot_and_out_of_range_index(fake: FakePynvml) -> None:
    snapshot = _nvml.gpu_snapshot(1)
    assert snapshot is not None and snapshot.name == "Fake T4"
    assert _nvml.gpu_snapshot(2) is None
    assert _nvml.gpu_snapshot(-1) is None


def test_bytes_name_from_old_pynvml_is_decoded(
    fake: FakePynvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake, "nvmlDeviceGetName", lambda handle: b"Old Card", raising=False)
    assert [gpu.name for gpu in _nvml.gpu_snapshots()] == ["Old Card", "Old Card"]


def test_init_runs_once_across_calls_and_threads(fake: FakePynvml) -> None:
    def poll(_: int) -> int:
        return len(_nvml.gpu_snapshots()) + int(_nvml.is_available())

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(poll, range(200)))
    assert results == [3] * 200
    assert fake.init_calls == 1


def test_failing_init_gives_no_gpus_and_is_not_retried(
    fake: FakePynvml, caplog: pytest.LogCaptureFixture
) -> None:
    fake.init_error = True
    with caplog.at_level(logging.DEBUG, logger=_nvml.__name__):
        for _ in range(50):
            assert _nvml.is_available() is False
            assert _nvml.gpu_snapshots() == []
            assert _nvml.gpu_snapshot(0) is None
            assert _nvml.nvml_query("nvmlDeviceGetCount") is None
    assert fake.init_calls == 1
    assert all(record.levelno <= logging.DEBUG for record in caplog.records)


def test_one_failing_query_leaves_that_field_none(fake: FakePynvml) -> None:
    fake.failing = {("nvmlDeviceGetPowerUsage", 1), ("nvmlDeviceGetTemperature", 0)}
    first, second = _nvml.gpu_snapshots()
    assert first.temperature_c is None
    assert first.power_w == pytest.approx(123.456)
    assert first.utilization_percent == 37.0
    assert second.power_w is None
    assert second.temperature_c == 41.0
    assert second.memory_total_mb == 15360.0


def test_failing_memory_query_gives_no_memory_percent(fake: FakePynvml) -> None:
    fake.failing = {("nvmlDeviceGetMemoryInfo", 0), ("nvmlDeviceGetName", 0)}
    first = _nvml.gpu_snapshots()[0]
    assert (first.memory_used_mb, first.memory_total_mb, first.memory_percent) == (None,) * 3
    assert first.name == "GPU 0"  # the unreadable name falls back to the index
    assert first.utilization_percent == 37.0


def test_unreadable_handle_still_reports_the_device(fake: FakePynvml) -> None:
    fake.failing = {("nvmlDeviceGetHandleByIndex", 1)}
    first, second = _nvml.gpu_snapshots()
    assert first.name == "Fake A100"
    assert second.index == 1
    assert second.utilization_percent is None and second.memory_total_mb is None


def test_non_nvml_exception_is_swallowed_too(
    fake: FakePynvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(handle: int) -> Any:
        raise RuntimeError("driver bug")

    monkeypatch.setattr(fake, "nvmlDeviceGetUtilizationRates", broken, raising=False)
    assert [gpu.utilization_percent for gpu in _nvml.gpu_snapshots()] == [None, None]


def test_reset_shuts_nvml_down(fake: FakePynvml) -> None:
    assert _nvml.is_available()
    _nvml._reset_for_tests()
    assert fake.shutdown_calls == 1
    assert _nvml.is_available()
    assert fake.init_calls == 2


def test_shutdown_at_exit_keeps_nvml_closed(fake: FakePynvml) -> None:
    assert _nvml.is_available()
    _nvml._shutdown()  # what atexit runs
    assert fake.shutdown_calls == 1
    assert _nvml.gpu_snapshots() == []  # a late sampler tick does not start NVML again
    assert fake.init_calls == 1


def test_missing_pynvml_module(monkeypatch: pytest.MonkeyPatch) -> None:
    _nvml._reset_for_tests()
    monkeypatch.setattr(_nvml, "_pynvml", None)
    try:
        assert _nvml.is_available() is False
        assert _nvml.gpu_snapshots() == []
    finally:
        _nvml._reset_for_tests()


def test_real_module_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    """On this machine as it is: no driver (CI) means no GPUs and nothing above debug."""
    _nvml._reset_for_tests()
    try:
        with caplog.at_level(logging.DEBUG):
            available = _nvml.is_available()
            snapshots = _nvml.gpu_snapshots()
    finally:
        _nvml._reset_for_tests()
    if available:
        assert len(snapshots) == _nvml.device_count() > 0
    else:
        assert snapshots == []
    assert all(record.levelno <= logging.DEBUG for record in caplog.records)


def test_concurrent_reset_and_queries_do_not_raise(fake: FakePynvml) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def poll() -> None:
        while not stop.is_set():
            try:
                _nvml.gpu_snapshots()
            except BaseException as exc:  # the test's point: nothing may escape
                errors.append(exc)

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(20):
        _nvml._reset_for_tests()
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
