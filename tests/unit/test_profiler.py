"""Unit tests for ImageProcessingProfiler (``ptpd_calibration.monitoring.profiler``).

Each test builds its own profiler and monitor (never ``get_profiler()``). Wall times that a test
needs exact come from a scripted clock patched into the profiler module, not from sleeping.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from ptpd_calibration.monitoring import frames
from ptpd_calibration.monitoring import profiler as profiler_module
from ptpd_calibration.monitoring.monitor import PerformanceMonitor
from ptpd_calibration.monitoring.profiler import ImageProcessingProfiler
from ptpd_calibration.monitoring.store import SampleStore

_MIB = 1024 * 1024
PROFILE_KEYS = {
    "operation",
    "success",
    "wall_time_s",
    "cpu_time_s",
    "memory_delta_mb",
    "peak_memory_mb",
    "pixels",
    "megapixels_per_s",
}


def _square(x: int) -> int:
    return x * x


def _allocate_and_free_200_mib() -> float:
    block = np.ones(200 * _MIB // 8)  # np.ones writes every page, so all 200 MiB are resident
    total = float(block[:: 4096 // 8].sum())
    del block
    return total


class _Kernels:
    def invert(self, image: np.ndarray) -> np.ndarray:
        return 1.0 - image


class ScriptedClock:
    """Stands in for the profiler module's ``time``: perf_counter walks through given walls."""

    def __init__(self, walls: list[float]) -> None:
        self._readings: Iterator[float] = iter(self._readings_for(walls))

    @staticmethod
    def _readings_for(walls: list[float]) -> list[float]:
        readings, now = [], 1000.0
        for wall in walls:
            readings += [now, now + wall]
            now += wall + 1.0
        return readings

    def perf_counter(self) -> float:
        return next(self._readings)

    @staticmethod
    def process_time() -> float:
        return 0.0

    time = staticmethod(time.time)


@pytest.fixture
def profiler() -> ImageProcessingProfiler:
    return ImageProcessingProfiler(PerformanceMonitor())


def scripted(monkeypatch: pytest.MonkeyPatch, walls: list[float]) -> None:
    monkeypatch.setattr(profiler_module, "time", ScriptedClock(walls))


# -- profile_operation ---------------------------------------------------------------------------


def test_profile_operation_returns_result_and_profile(profiler: ImageProcessingProfiler) -> None:
    image = np.zeros((120, 200))
    result, profile = profiler.profile_operation(
        np.add, image, 1.0, operation_name="brighten", image_size=(200, 120)
    )

    np.testing.assert_array_equal(result, np.ones((120, 200)))
    assert set(profile) >= PROFILE_KEYS
    assert profile["operation"] == "brighten"
    assert profile["success"] is True
    assert "error" not in profile
    assert profile["wall_time_s"] >= 0
    assert profile["cpu_time_s"] >= 0
    assert math.isfinite(profile["memory_delta_mb"])
    assert profile["peak_memory_mb"] >= 0
    assert profile["pixels"] == 24_000
    if profile["wall_time_s"] > 0:
        assert profile["megapixels_per_s"] == pytest.approx(24_000 / profile["wall_time_s"] / 1e6)
    # The wall time, CPU time and memory change went to the monitor under the original
    # module's series names; the profile is kept too.
    monitor = profiler.monitor
    assert monitor.get_operation_names() == [
        "brighten_cpu_time",
        "brighten_memory",
        "brighten_wall_time",
    ]
    stats = monitor.get_statistics("brighten_wall_time")
    assert stats["count"] == 1
    assert stats["unit"] == "seconds"
    assert stats["mean"] == profile["wall_time_s"]
    assert monitor.get_statistics("brighten_cpu_time")["mean"] == profile["cpu_time_s"]
    assert monitor.get_unit("brighten_cpu_time") == "seconds"
    assert monitor.get_statistics("brighten_memory")["mean"] == profile["memory_delta_mb"]
    assert monitor.get_unit("brighten_memory") == "MB"
    kept = profiler.get_profiles("brighten")
    assert len(kept) == 1
    assert kept[0]["wall_time_s"] == profile["wall_time_s"]


def test_kwargs_reach_the_function(profiler: ImageProcessingProfiler) -> None:
    result, profile = profiler.profile_operation(sorted, [3, 1, 2], reverse=True)
    assert result == [3, 2, 1]
    assert profile["pixels"] is None
    assert profile["megapixels_per_s"] is None


def test_peak_memory_of_an_allocate_and_free_operation(profiler: ImageProcessingProfiler) -> None:
    gc.collect()
    _, profile = profiler.profile_operation(_allocate_and_free_200_mib, operation_name="alloc")

    # 200 MiB were resident at once. The peak is measured above the RSS at the start; allow
    # 10 MiB for pages the allocator reused from memory that was already resident.
    if not profiler_module._PEAK.supported:
        pytest.skip("this kernel keeps no resettable high-water mark (VmHWM)")
    assert profile["peak_memory_mb"] >= 190
    assert profile["peak_memory_mb"] < 400
    # ...and freed again before the call returned: the RSS barely moved.
    assert abs(profile["memory_delta_mb"]) < 50


def test_lifetime_peak_survives_later_profiles(profiler: ImageProcessingProfiler) -> None:
    if not profiler_module._PEAK.supported:
        pytest.skip("this kernel keeps no resettable high-water mark (VmHWM)")
    gc.collect()
    rss_before_mb = psutil.Process().memory_info().rss / _MIB
    profiler.profile_operation(_allocate_and_free_200_mib, operation_name="alloc")
    profiler.profile_operation(_square, 3)  # resets the kernel's mark again

    stats = profiler.get_memory_stats()

    assert stats["peak_rss_mb"] >= rss_before_mb + 190
    assert stats["peak_rss_mb"] >= stats["rss_mb"]


def test_failed_operation_reraises_and_records_no_timing(profiler: ImageProcessingProfiler) -> None:
    def explode() -> None:
        raise KeyError("missing curve")

    with pytest.raises(KeyError, match="missing curve"):
        profiler.profile_operation(explode, operation_name="load_curve", image_size=(10, 10))

    (profile,) = profiler.get_profiles("load_curve")
    assert profile["success"] is False
    assert profile["error"] == "KeyError: 'missing curve'"
    assert profile["wall_time_s"] >= 0
    assert profile["pixels"] == 100
    assert profiler.monitor.get_operation_names() == []
    assert profiler.monitor.get_statistics("load_curve_wall_time") == {"count": 0}


def test_failed_operations_do_not_change_timings_of_successful_ones(
    profiler: ImageProcessingProfiler,
) -> None:
    def sometimes(fail: bool) -> str:
        if fail:
            raise RuntimeError("boom")
        return "ok"

    for fail in (False, True, False, True, True):
        with contextlib.suppress(RuntimeError):
            profiler.profile_operation(sometimes, fail, operation_name="op")
    assert profiler.monitor.get_statistics("op_wall_time")["count"] == 2
    assert profiler.monitor.get_statistics("op_memory")["count"] == 2
    assert [p["success"] for p in profiler.get_profiles("op")] == [True, False, True, False, False]


def _wall_time_series(profiler: ImageProcessingProfiler) -> set[str]:
    return {n for n in profiler.monitor.get_operation_names() if n.endswith("_wall_time")}


def test_operation_name_defaults_to_the_function_name(profiler: ImageProcessingProfiler) -> None:
    def local_step() -> int:
        return 1

    # func.__name__, as the original module named profiles (not the qualified name)
    assert profiler.profile_operation(_square, 4) == (16, profiler.get_profiles()[-1])
    assert profiler.get_profiles()[-1]["operation"] == "_square"
    _, profile = profiler.profile_operation(_Kernels().invert, np.zeros(3))
    assert profile["operation"] == "invert"
    _, profile = profiler.profile_operation(local_step)
    assert profile["operation"] == "local_step"
    assert _wall_time_series(profiler) == {
        "_square_wall_time",
        "invert_wall_time",
        "local_step_wall_time",
    }


@pytest.mark.parametrize(
    "bad",
    [(0, 10), (10, 0), (-1, 5), (1.5, 2), (2, 2.0), (True, 3), "ab", (1, 2, 3), (5,), 7, [None, 1]],
)
def test_image_size_is_validated(profiler: ImageProcessingProfiler, bad: Any) -> None:
    calls = []
    with pytest.raises(ValueError, match="image_size"):
        profiler.profile_operation(calls.append, 1, image_size=bad)
    assert calls == []  # refused before running the operation
    with pytest.raises(ValueError, match="image_size"):
        profiler.get_processing_speed(bad, "op")


def test_numpy_integer_image_sizes_are_accepted(profiler: ImageProcessingProfiler) -> None:
    _, profile = profiler.profile_operation(_square, 2, image_size=(np.int64(640), np.int32(480)))
    assert profile["pixels"] == 307_200
    assert type(profile["pixels"]) is int
    shape = np.zeros((480, 640)).shape
    _, profile = profiler.profile_operation(_square, 2, image_size=(shape[1], shape[0]))
    assert profile["pixels"] == 307_200


# -- speed and batch estimates -------------------------------------------------------------------


def test_processing_speed_is_pixels_over_the_median(profiler: ImageProcessingProfiler) -> None:
    assert profiler.get_processing_speed((100, 50), "tone") is None
    for seconds in (1.0, 4.0, 2.0, 3.0):
        profiler.monitor.record_metric("tone_wall_time", seconds)

    assert profiler.get_processing_speed((100, 50), "tone") == 5000 / 2.5
    assert profiler.get_processing_speed((100, 50), "unknown") is None


def test_timings_of_a_plain_timer_series_count_too(profiler: ImageProcessingProfiler) -> None:
    for seconds in (1.0, 3.0):
        profiler.monitor.record_metric("blur", seconds)  # e.g. monitor.timer("blur")
    assert profiler.get_processing_speed((100, 50), "blur") == 5000 / 2.0
    # Where both exist, the profile's own series wins.
    profiler.monitor.record_metric("blur_wall_time", 0.5)
    assert profiler.get_processing_speed((100, 50), "blur") == 5000 / 0.5
    [entry] = profiler.identify_bottlenecks(["blur"])
    assert (entry["operation"], entry["count"]) == ("blur", 1)


def test_series_in_another_unit_are_no_timings(profiler: ImageProcessingProfiler) -> None:
    profiler.monitor.record_metric("big_wall_time", 2.0, "ms")
    assert profiler.get_processing_speed((10, 10), "big") is None
    assert profiler.estimate_batch_time([(10, 10)], "big") is None
    assert profiler.identify_bottlenecks(["big"]) == []


def test_processing_speed_from_profiled_timings(
    profiler: ImageProcessingProfiler, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted(monkeypatch, [0.5, 0.25, 1.0])
    for _ in range(3):
        profiler.profile_operation(_square, 2, operation_name="curve")
    assert profiler.get_processing_speed((1000, 1000), "curve") == 1e6 / 0.5


def test_estimate_batch_time_uses_per_profile_pixel_rates(
    profiler: ImageProcessingProfiler, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert profiler.estimate_batch_time([(10, 10)], "tone") is None
    # Three 1-megapixel runs at 1e6, 5e5 and 2.5e5 pixels/s, and a failure that must not count.
    scripted(monkeypatch, [1.0, 2.0, 4.0, 0.001])
    for _ in range(3):
        profiler.profile_operation(_square, 1, operation_name="tone", image_size=(1000, 1000))
    with pytest.raises(ZeroDivisionError):
        profiler.profile_operation(lambda: 1 / 0, operation_name="tone", image_size=(1000, 1000))

    # The median rate is 5e5 pixels/s: two megapixels take 4 s, whatever their shapes.
    assert profiler.estimate_batch_time([(1000, 1000), (2000, 500)], "tone") == 4.0
    assert profiler.estimate_batch_time([(4000, 250)], "tone") == 2.0
    assert profiler.estimate_batch_time([], "tone") == 0.0


def test_estimate_batch_time_without_pixel_counts_uses_the_median_time(
    profiler: ImageProcessingProfiler,
) -> None:
    for seconds in (0.5, 1.5, 1.0):
        profiler.monitor.record_metric("blur_wall_time", seconds)
    assert profiler.estimate_batch_time([(10, 10), (20, 20), (30, 30)], "blur") == 3.0


# -- memory --------------------------------------------------------------------------------------


def test_track_memory_usage_records_megabytes(profiler: ImageProcessingProfiler) -> None:
    rss_mb = profiler.track_memory_usage("decode")

    actual_mb = psutil.Process().memory_info().rss / _MIB
    assert abs(rss_mb - actual_mb) < 100  # in MB, not bytes or KB
    assert 1 < rss_mb < 1e6
    monitor = profiler.monitor
    assert monitor.get_unit("decode_memory_snapshot") == "MB"  # the original module's name
    assert monitor.get_statistics("decode_memory_snapshot")["mean"] == rss_mb
    profiler.track_memory_usage("decode")
    assert monitor.get_statistics("decode_memory_snapshot")["count"] == 2


def test_memory_stats_invariants(profiler: ImageProcessingProfiler) -> None:
    stats = profiler.get_memory_stats()

    assert set(stats) == {
        "rss_mb",
        "vms_mb",
        "peak_rss_mb",
        "percent",
        "available_mb",
        "system_percent",
    }
    assert all(isinstance(v, float) for v in stats.values())
    assert 0 < stats["rss_mb"] <= stats["vms_mb"]
    assert stats["peak_rss_mb"] >= stats["rss_mb"]
    assert 0 <= stats["percent"] <= 100
    assert 0 <= stats["system_percent"] <= 100
    assert 0 < stats["available_mb"] <= psutil.virtual_memory().total / _MIB


# -- bottlenecks ---------------------------------------------------------------------------------


@pytest.fixture
def recorded() -> tuple[ImageProcessingProfiler, dict[str, list[float]]]:
    monitor = PerformanceMonitor()
    values = {
        "spiky": [1.0, 1.0, 1.0, 1.0, 10.0],  # total 14, p90 6.4 over median 1
        "steady": [2.0, 2.0, 2.0],  # total 6
        "quick": [0.1] * 10,  # total ~1
        "slightly_uneven": [1.0, 1.2, 1.1, 1.3],
    }
    for name, series in values.items():
        for v in series:
            monitor.record_metric(name, v)
    monitor.record_metric("decode.memory_mb", 900.0, "MB")  # not a time: never ranked
    monitor.record_metric("zero", 0.0)
    return ImageProcessingProfiler(monitor), values


def test_bottlenecks_ranked_by_total_time_worst_first(recorded: Any) -> None:
    profiler, values = recorded

    ranking = profiler.identify_bottlenecks()
    grand_total = sum(sum(v) for v in values.values())

    assert [r["operation"] for r in ranking] == [
        "spiky",
        "steady",
        "slightly_uneven",
        "quick",
        "zero",
    ]
    assert sum(r["share_of_total"] for r in ranking) == pytest.approx(1.0)
    for entry in ranking:
        v = np.array(values.get(entry["operation"], [0.0]))
        assert set(entry) >= {
            "operation",
            "count",
            "median_time",
            "p90_time",
            "max_time",
            "mean_time",
            "total_time",
            "share_of_total",
            "slowdown_factor",
            "unstable",
        }
        assert entry["count"] == v.size
        assert entry["max_time"] == v.max()
        assert entry["median_time"] == np.percentile(v, 50)
        assert entry["p90_time"] == np.percentile(v, 90)
        assert entry["total_time"] == pytest.approx(v.sum())
        assert entry["share_of_total"] == pytest.approx(v.sum() / grand_total)
        if entry["median_time"] > 0:
            assert entry["slowdown_factor"] == np.percentile(v, 90) / np.percentile(v, 50)
    by_name = {r["operation"]: r for r in ranking}
    assert by_name["spiky"]["slowdown_factor"] == pytest.approx(6.4)
    assert by_name["spiky"]["unstable"] is True
    assert by_name["steady"]["slowdown_factor"] == 1.0
    assert by_name["steady"]["unstable"] is False
    assert by_name["slightly_uneven"]["unstable"] is False
    assert by_name["zero"]["slowdown_factor"] == 1.0  # no division by a zero median
    assert "decode.memory_mb" not in by_name


def test_bottlenecks_for_chosen_operations_and_threshold(recorded: Any) -> None:
    profiler, _ = recorded

    ranking = profiler.identify_bottlenecks(
        ["steady", "decode.memory_mb", "missing", "slightly_uneven"],
        unstable_factor=1.1,
        min_samples=4,
    )

    assert [r["operation"] for r in ranking] == ["steady", "slightly_uneven"]
    assert sum(r["share_of_total"] for r in ranking) == pytest.approx(1.0)
    uneven = ranking[1]
    assert uneven["slowdown_factor"] == np.percentile([1.0, 1.2, 1.1, 1.3], 90) / np.percentile(
        [1.0, 1.2, 1.1, 1.3], 50
    )
    assert uneven["unstable"] is (uneven["slowdown_factor"] >= 1.1)
    assert uneven["unstable"] is True
    # Four runs are too few by default: p90 of four runs is little more than the slowest one.
    [few] = profiler.identify_bottlenecks(["slightly_uneven"], unstable_factor=1.1)
    assert few["slowdown_factor"] == uneven["slowdown_factor"]
    assert few["unstable"] is False
    assert profiler.identify_bottlenecks([]) == []
    assert profiler.identify_bottlenecks(["missing"]) == []


def test_bottlenecks_time_range(recorded: Any) -> None:
    profiler, _ = recorded
    assert profiler.identify_bottlenecks(time_range=(0, 1)) == []
    now = time.time()
    assert len(profiler.identify_bottlenecks(time_range=(now - 3600, now + 3600))) == 5


def test_bottlenecks_from_profiled_operations(
    profiler: ImageProcessingProfiler, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted(monkeypatch, [0.1, 0.1, 0.1, 3.0, 3.0])
    for _ in range(3):
        profiler.profile_operation(_square, 1, operation_name="fast")
    for _ in range(2):
        profiler.profile_operation(_square, 1, operation_name="slow")
    ranking = profiler.identify_bottlenecks()
    # Operations, not series: the CPU-time and memory series of a profile are not ranked.
    assert [r["operation"] for r in ranking] == ["slow", "fast"]
    assert ranking[0]["total_time"] == 6.0
    assert ranking[0]["share_of_total"] == pytest.approx(6.0 / 6.3)
    assert profiler.identify_bottlenecks(["slow", "fast"]) == ranking


def test_bottlenecks_from_samples_recorded_under_the_original_names(
    profiler: ImageProcessingProfiler,
) -> None:
    monitor = profiler.monitor
    for seconds in [0.01] * 10 + [0.5] * 2:
        monitor.record_metric("fast_op_wall_time", seconds, "seconds")
    for _ in range(10):
        monitor.record_metric("consistent_op_wall_time", 0.01, "seconds")
        monitor.record_metric("consistent_op_cpu_time", 0.009, "seconds")

    ranking = profiler.identify_bottlenecks(["fast_op", "consistent_op"])

    assert [r["operation"] for r in ranking] == ["fast_op", "consistent_op"]
    assert ranking[0]["slowdown_factor"] > 2.0
    assert ranking[0]["max_time"] == 0.5
    assert [r["operation"] for r in profiler.identify_bottlenecks()] == ["fast_op", "consistent_op"]


# -- profiles reach the store ----------------------------------------------------------------------


def test_profiles_reach_the_store_through_flush(tmp_path: Path) -> None:
    store = SampleStore(tmp_path / "store")
    profiler = ImageProcessingProfiler(PerformanceMonitor(store=store))
    assert profiler.store is store
    for size in ((100, 100), (200, 100)):
        profiler.profile_operation(_square, 3, operation_name="tone", image_size=size)
    profiler.profile_operation(_square, 3, operation_name="invert")
    with pytest.raises(ValueError):
        profiler.profile_operation(int, "x", operation_name="parse")

    profiler.flush()

    frame = frames.profiles(store)
    assert len(frame) == 4
    assert sorted(frame["operation"]) == ["invert", "parse", "tone", "tone"]
    assert {
        "timestamp",
        "operation",
        "wall_time_s",
        "cpu_time_s",
        "memory_delta_mb",
        "peak_memory_mb",
        "pixels",
        "megapixels_per_s",
        "success",
    } <= set(frame.columns)
    tone = frames.profiles(store, operation="tone")
    assert tone["pixels"].tolist() == [10_000, 20_000]
    assert tone["wall_time_s"].tolist() == [p["wall_time_s"] for p in profiler.get_profiles("tone")]
    parse = frames.profiles(store, operation="parse").iloc[0]
    assert not parse["success"]
    assert parse["error"].startswith("ValueError")
    # The timings went to the same store, and a failure left none.
    stored = store.load_monitor()
    assert stored.get_statistics("tone_wall_time")["count"] == 2
    assert stored.get_statistics("tone_cpu_time")["count"] == 2
    assert stored.get_statistics("invert_wall_time")["count"] == 1
    assert not [n for n in stored.get_operation_names() if n.startswith("parse")]

    profiler.flush()  # nothing new: nothing written twice
    assert len(frames.profiles(store)) == 4
    store.close()


def test_in_memory_profiler_has_no_store_and_flush_is_a_no_op(
    profiler: ImageProcessingProfiler,
) -> None:
    profiler.profile_operation(_square, 2)
    assert profiler.store is None
    profiler.flush()
    assert profiler.pending_batches() == []


def test_max_profiles_bounds_the_kept_profiles() -> None:
    profiler = ImageProcessingProfiler(PerformanceMonitor(), max_profiles=3)
    for i in range(5):
        profiler.profile_operation(_square, i, operation_name=f"op{i}")
    assert [p["operation"] for p in profiler.get_profiles()] == ["op2", "op3", "op4"]
    assert _wall_time_series(profiler) == {f"op{i}_wall_time" for i in range(5)}


def test_profiler_doctest_example_holds() -> None:
    result, profile = ImageProcessingProfiler().profile_operation(
        sorted, [3, 1, 2], operation_name="sort"
    )
    assert (result, profile["success"]) == ([1, 2, 3], True)


def test_returned_profile_is_the_callers_copy(profiler: ImageProcessingProfiler) -> None:
    _, profile = profiler.profile_operation(_square, 2, operation_name="op")
    profile["operation"] = "tampered"
    assert profiler.get_profiles()[0]["operation"] == "op"
    assert _wall_time_series(profiler) == {"op_wall_time"}


def test_partials_and_callable_objects_get_stable_names() -> None:
    import functools

    class Sharpen:
        def __call__(self, amount: int) -> int:
            return amount

    profiler = ImageProcessingProfiler()
    profiler.profile_operation(functools.partial(sorted, [2, 1]))
    profiler.profile_operation(functools.partial(sorted, [3, 1]))
    profiler.profile_operation(Sharpen(), 3)
    assert _wall_time_series(profiler) == {"sorted_wall_time", "Sharpen_wall_time"}
    assert profiler.monitor.get_statistics("sorted_wall_time")["count"] == 2
