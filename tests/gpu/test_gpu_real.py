"""GPU monitoring against a real NVIDIA GPU and driver (``pytest -m gpu``; skipped elsewhere).

The load test needs CuPy or PyTorch with CUDA to put work on the card; without either it skips.
Nothing asserts on timing: readings are polled until they show the load or a generous deadline
passes.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ptpd_calibration.monitoring import _nvml
from ptpd_calibration.monitoring.models import GPUUsage
from ptpd_calibration.monitoring.resources import ResourceMonitor

pytestmark = pytest.mark.gpu

_LOAD_BYTES = 1024**3  # 1 GiB on the card
_EXPECTED_RISE_MB = 512.0  # well below the allocation: allocators and other tenants vary
_DEADLINE_S = 60.0

# (allocate the 1 GiB block, one round of busy work on a matrix, make that matrix)
_Load = tuple[Callable[[], Any], Callable[[Any], None], Callable[[], Any]]


@pytest.fixture(autouse=True)
def _needs_gpu() -> None:
    if not _nvml.is_available():
        pytest.skip("no NVIDIA GPU: NVML did not start or reports no device (driver missing?)")


def _check_real_numbers(gpu: GPUUsage) -> None:
    assert gpu.name.strip(), gpu
    assert gpu.memory_total_mb is not None and gpu.memory_total_mb > 0, gpu
    assert gpu.memory_used_mb is not None and 0 <= gpu.memory_used_mb <= gpu.memory_total_mb
    assert gpu.utilization_percent is not None and 0 <= gpu.utilization_percent <= 100, gpu
    assert gpu.temperature_c is not None and 0 < gpu.temperature_c < 120, gpu
    if gpu.power_w is not None:  # some cards have no power sensor
        assert 0 < gpu.power_w < 2000, gpu


def test_every_device_reports_real_numbers() -> None:
    gpus = _nvml.gpu_snapshots()
    assert [gpu.index for gpu in gpus] == list(range(_nvml.device_count()))
    for gpu in gpus:
        _check_real_numbers(gpu)


def test_resource_monitor_sees_the_gpus() -> None:
    monitor = ResourceMonitor()
    usage = monitor.check_resources()
    assert len(usage.gpus) == _nvml.device_count()
    assert usage.gpu_memory_total_mb == usage.gpus[0].memory_total_mb
    first = monitor.get_gpu_usage()
    assert first is not None and first["name"] == usage.gpus[0].name


def _cupy_load() -> _Load | None:
    try:
        cp: Any = importlib.import_module("cupy")
        if cp.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception:
        return None

    def allocate() -> Any:
        block = cp.empty(_LOAD_BYTES // 4, dtype=cp.float32)
        block.fill(1.0)
        return block

    def work(matrix: Any) -> None:
        for _ in range(10):
            matrix = matrix @ matrix
            matrix /= cp.abs(matrix).max() + 1
        cp.cuda.Device().synchronize()

    def setup() -> Any:
        return cp.random.rand(4096, 4096, dtype=cp.float32)

    return allocate, work, setup


def _torch_load() -> _Load | None:
    try:
        torch: Any = importlib.import_module("torch")
        if not torch.cuda.is_available():
            return None
    except Exception:
        return None

    def allocate() -> Any:
        return torch.ones(_LOAD_BYTES // 4, dtype=torch.float32, device="cuda")

    def work(matrix: Any) -> None:
        for _ in range(10):
            matrix = matrix @ matrix
            matrix = matrix / (matrix.abs().max() + 1)
        torch.cuda.synchronize()

    def setup() -> Any:
        return torch.rand(4096, 4096, dtype=torch.float32, device="cuda")

    return allocate, work, setup


@contextmanager
def _busy_gpu() -> Iterator[None]:
    """Hold 1 GiB on the card and keep it computing until the block ends."""
    load = _cupy_load() or _torch_load()
    if load is None:
        pytest.skip("putting load on the GPU needs CuPy or PyTorch with CUDA; neither imports")
    allocate, work, setup = load
    block = allocate()
    matrix = setup()
    stop = threading.Event()
    failures: list[BaseException] = []

    def spin() -> None:
        try:
            while not stop.is_set():
                work(matrix)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=spin, name="gpu-load", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(_DEADLINE_S)
        del block
    assert failures == [], failures


def test_utilisation_and_memory_follow_a_load() -> None:
    # The load may land on any card (CUDA and NVML can number them differently): sum and max.
    before = sum(gpu.memory_used_mb or 0.0 for gpu in _nvml.gpu_snapshots())
    peak_rise, peak_util = 0.0, 0.0
    with _busy_gpu():
        deadline = time.monotonic() + _DEADLINE_S
        while time.monotonic() < deadline:
            gpus = _nvml.gpu_snapshots()
            for gpu in gpus:
                _check_real_numbers(gpu)
            used = sum(gpu.memory_used_mb or 0.0 for gpu in gpus)
            peak_rise = max(peak_rise, used - before)
            peak_util = max([peak_util, *(gpu.utilization_percent or 0.0 for gpu in gpus)])
            if peak_rise >= _EXPECTED_RISE_MB and peak_util > 0:
                break
            time.sleep(0.1)
    assert peak_rise >= _EXPECTED_RISE_MB, f"GPU memory rose by only {peak_rise:.0f} MB"
    assert peak_util > 0, "GPU utilisation stayed at 0 % under load"
