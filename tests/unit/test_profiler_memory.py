"""Peak memory per profiled call: numpy's and Pillow's allocations both count, within 10 %.

Each step allocates known sizes. numpy's buffers are seen by tracemalloc however briefly they
live; Pillow's are not, so they are seen by the sampled C heap and RSS, and the steps hold
them for a few sampling intervals (as a real step does while it works on them).
"""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from ptpd_calibration.monitoring import profiler as profiler_module
from ptpd_calibration.monitoring.imaging import resize_to_print, to_luminance16
from ptpd_calibration.monitoring.monitor import PerformanceMonitor
from ptpd_calibration.monitoring.profiler import ImageProcessingProfiler, PeakMemory

MIB = 1024 * 1024
HOLD_S = 0.05  # 25 sampling intervals


@pytest.fixture
def profiler() -> Iterator[ImageProcessingProfiler]:
    gc.collect()
    yield ImageProcessingProfiler(PerformanceMonitor())
    gc.collect()


def _numpy(mib: int) -> npt.NDArray[np.uint8]:
    return np.ones(mib * MIB, dtype=np.uint8)  # written, so resident as well as allocated


def _pillow(mib: int) -> Image.Image:
    return Image.new("L", (1024, mib * 1024), 7)  # Pillow's own buffers, unseen by tracemalloc


def _peak(profiler: ImageProcessingProfiler, step: Callable[[], Any]) -> float:
    _, profile = profiler.profile_operation(step, operation_name="step")
    return float(profile["peak_memory_mb"])


def test_numpy_and_pillow_allocations_both_count(profiler: ImageProcessingProfiler) -> None:
    def step() -> None:
        array, image = _numpy(200), _pillow(100)
        time.sleep(HOLD_S)
        del array, image

    assert _peak(profiler, step) == pytest.approx(300, rel=0.10)


def test_a_numpy_array_freed_at_once_still_counts(profiler: ImageProcessingProfiler) -> None:
    def step() -> float:
        return float(_numpy(200)[::4096].sum())  # allocated, read and freed between two samples

    assert _peak(profiler, step) == pytest.approx(200, rel=0.10)


def test_a_pillow_image_counts(profiler: ImageProcessingProfiler) -> None:
    def step() -> None:
        image = _pillow(100)
        time.sleep(HOLD_S)
        image.close()

    assert _peak(profiler, step) == pytest.approx(100, rel=0.10)


def test_memory_reused_from_an_earlier_step_counts(profiler: ImageProcessingProfiler) -> None:
    """Freed pages stay resident, so RSS alone showed 0 MB for a step that reused them."""

    def step() -> None:
        images = [_pillow(10) for _ in range(8)]  # blocks the allocator keeps and hands out again
        time.sleep(HOLD_S)
        del images

    first, second = _peak(profiler, step), _peak(profiler, step)

    assert first == pytest.approx(80, rel=0.10)
    assert second == pytest.approx(80, rel=0.10)


def test_nested_profiles_each_get_their_own_peak(profiler: ImageProcessingProfiler) -> None:
    inner: dict[str, Any] = {}

    def inner_step() -> None:
        block = _numpy(50)
        del block

    def outer_step() -> None:
        block = _numpy(100)
        _, inner["profile"] = profiler.profile_operation(inner_step, operation_name="inner")
        del block

    outer = _peak(profiler, outer_step)

    assert inner["profile"]["peak_memory_mb"] == pytest.approx(50, rel=0.10)
    assert outer == pytest.approx(150, rel=0.10)


def test_concurrent_profiles_each_get_their_own_peak(profiler: ImageProcessingProfiler) -> None:
    started, release = threading.Barrier(2), threading.Event()
    peaks: dict[str, float] = {}

    def small() -> None:
        started.wait()
        block = _numpy(20)
        del block
        release.wait(5)

    def run_small() -> None:
        peaks["small"] = _peak(profiler, small)

    thread = threading.Thread(target=run_small)
    thread.start()

    def big() -> None:
        started.wait()
        time.sleep(HOLD_S)  # the small one has allocated and freed by now
        block = _numpy(200)
        del block
        release.set()

    peaks["big"] = _peak(profiler, big)
    thread.join(10)

    assert peaks["big"] == pytest.approx(220, rel=0.10)  # the small one ran inside it
    # The small one overlapped the big one's 200 MiB, which counts as the process's memory
    # (an upper bound), but a mark reset by the other start never hides its own 20 MiB.
    assert peaks["small"] >= 18


def test_a_tiny_operation_reports_almost_nothing(profiler: ImageProcessingProfiler) -> None:
    assert _peak(profiler, lambda: sorted([3, 1, 2])) < 2


def test_luminance_of_a_12_megapixel_image_counts_its_output(
    profiler: ImageProcessingProfiler,
) -> None:
    """The issue's 0 MB for luminance: the uint16 result alone is 2 bytes a pixel (and the
    strips' temporaries add about 16 MiB)."""
    image = Image.new("RGB", (4000, 3000), (10, 200, 30))
    _, profile = profiler.profile_operation(to_luminance16, image, operation_name="luminance")
    output_mib = 4000 * 3000 * 2 / MIB
    assert output_mib <= profile["peak_memory_mb"] < output_mib * 2


def test_resizing_a_tiny_image_up_counts_the_print_size(
    profiler: ImageProcessingProfiler,
) -> None:
    """Upscaling 1x1 to 1800x1800 allocates print-size buffers: a few of 6.2 MiB, not more."""
    lum = np.full((1, 1), 1000, dtype=np.uint16)
    _, profile = profiler.profile_operation(resize_to_print, lum, 1800, operation_name="resize")
    print_mib = 1800 * 1800 * 2 / MIB
    assert print_mib <= profile["peak_memory_mb"] <= 4 * print_mib


def test_tracemalloc_runs_only_while_profiling(profiler: ImageProcessingProfiler) -> None:
    if tracemalloc.is_tracing():
        pytest.skip("this process traces allocations itself")
    seen: list[bool] = []
    profiler.profile_operation(lambda: seen.append(tracemalloc.is_tracing()), operation_name="x")
    assert seen == [True]
    assert not tracemalloc.is_tracing()


def test_tracing_started_elsewhere_is_left_running(profiler: ImageProcessingProfiler) -> None:
    if tracemalloc.is_tracing():
        pytest.skip("this process traces allocations itself")
    tracemalloc.start()
    try:

        def step() -> None:
            block = _numpy(100)
            time.sleep(HOLD_S)
            del block

        assert _peak(profiler, step) == pytest.approx(100, rel=0.10)
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()


def test_without_a_heap_reading_numpy_still_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the C library has no mallinfo2, tracemalloc and RSS are what is left."""
    peak = PeakMemory()
    peak._read_heap = None
    window = peak.begin()
    block = _numpy(200)
    del block
    assert peak.end(window) / MIB == pytest.approx(200, rel=0.10)
    assert window.heap is None


def test_the_sampler_thread_sleeps_between_profiles(profiler: ImageProcessingProfiler) -> None:
    profiler.profile_operation(lambda: time.sleep(0.01), operation_name="nap")
    assert not profiler_module._PEAK._wake.is_set()
    assert profiler_module._PEAK._windows == []


def test_the_step_before_does_not_count(profiler: ImageProcessingProfiler) -> None:
    """A sample read while one step held 100 MiB never lands on the next step."""

    def big() -> None:
        image = _pillow(100)
        time.sleep(HOLD_S)
        image.close()

    for _ in range(5):
        profiler.profile_operation(big, operation_name="big")
        assert _peak(profiler, lambda: time.sleep(0.005)) < 5
