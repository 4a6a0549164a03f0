"""Unit tests of ``@timed`` and ``@profiled`` on plain and ``async def`` functions.

Every test swaps the package's ``get_monitor``/``get_profiler`` for fresh in-memory instances,
so nothing reaches a store, and the decorators prove they look the singletons up at call time.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

import ptpd_calibration.monitoring as monitoring
from ptpd_calibration.monitoring import decorators
from ptpd_calibration.monitoring.decorators import profiled, timed
from ptpd_calibration.monitoring.monitor import PerformanceMonitor
from ptpd_calibration.monitoring.profiler import ImageProcessingProfiler

if TYPE_CHECKING:
    from conftest import FakeClock

Decorator = Callable[..., Any]


@pytest.fixture
def monitor(monkeypatch: pytest.MonkeyPatch) -> PerformanceMonitor:
    fresh = PerformanceMonitor()
    monkeypatch.setattr(monitoring, "get_monitor", lambda: fresh)
    return fresh


@pytest.fixture
def profiler(monkeypatch: pytest.MonkeyPatch) -> ImageProcessingProfiler:
    fresh = ImageProcessingProfiler(PerformanceMonitor())
    monkeypatch.setattr(monitoring, "get_profiler", lambda: fresh)
    return fresh


def develop(seconds: float, *, agent: str = "ferric oxalate") -> str:
    """Develop a print."""
    return f"{agent} for {seconds}s"


async def develop_async(seconds: float, *, agent: str = "ferric oxalate") -> str:
    """Develop a print, asynchronously."""
    await asyncio.sleep(0)
    return f"{agent} for {seconds}s"


# -- @timed ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decorate", "name"),
    [
        (timed, "develop"),
        (timed(), "develop"),
        (timed("darkroom.develop"), "darkroom.develop"),
        (timed(name="darkroom.develop"), "darkroom.develop"),
    ],
    ids=["bare", "called", "named", "keyword"],
)
def test_timed_records_a_plain_call(
    decorate: Decorator, name: str, monitor: PerformanceMonitor
) -> None:
    wrapped = decorate(develop)

    assert wrapped(90, agent="EDTA") == "EDTA for 90s"
    assert monitor.get_operation_names() == [name]
    assert monitor.get_statistics(name)["count"] == 1
    assert monitor.get_unit(name) == "seconds"


@pytest.mark.parametrize(
    ("decorate", "name"),
    [(timed, "develop_async"), (timed(), "develop_async"), (timed("fit"), "fit")],
    ids=["bare", "called", "named"],
)
def test_timed_records_an_async_call(
    decorate: Decorator, name: str, monitor: PerformanceMonitor
) -> None:
    wrapped = decorate(develop_async)

    assert inspect.iscoroutinefunction(wrapped)
    assert asyncio.run(wrapped(60)) == "ferric oxalate for 60s"
    assert monitor.get_statistics(name)["count"] == 1


def test_timed_keeps_the_functions_identity() -> None:
    for original in (develop, develop_async):
        wrapped = timed(original)
        assert wrapped.__name__ == original.__name__
        assert wrapped.__qualname__ == original.__qualname__
        assert wrapped.__doc__ == original.__doc__
        assert inspect.unwrap(wrapped) is original
        assert inspect.signature(wrapped) == inspect.signature(original)
    assert not inspect.iscoroutinefunction(timed(develop))


def test_a_method_is_named_by_its_qualname(monitor: PerformanceMonitor) -> None:
    class Darkroom:
        @timed
        def expose(self, minutes: int) -> int:
            return minutes * 60

    assert Darkroom().expose(3) == 180
    [name] = monitor.get_operation_names()
    assert name.endswith("Darkroom.expose")  # the qualname, e.g. "test_...<locals>.Darkroom.expose"
    assert name == Darkroom.expose.__qualname__


def test_timed_records_and_re_raises_an_exception(monitor: PerformanceMonitor) -> None:
    @timed("coat")
    def coat() -> None:
        raise ValueError("paper too dry")

    @timed("coat_async")
    async def coat_async() -> None:
        raise ValueError("paper too dry")

    with pytest.raises(ValueError, match="paper too dry"):
        coat()
    with pytest.raises(ValueError, match="paper too dry"):
        asyncio.run(coat_async())

    for name in ("coat", "coat_async"):
        [sample] = monitor.get_metrics(name)
        assert sample.metadata == {"error": "ValueError"}


def test_the_async_timer_spans_the_await(monitor: PerformanceMonitor) -> None:
    order: list[str] = []

    @timed("wait")
    async def wait() -> None:
        order.append("started")
        await asyncio.sleep(0)
        assert monitor.get_statistics("wait")["count"] == 0  # not recorded before it ends
        order.append("finished")

    asyncio.run(wait())

    assert order == ["started", "finished"]
    assert monitor.get_statistics("wait")["count"] == 1


def test_timed_looks_the_monitor_up_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = PerformanceMonitor(), PerformanceMonitor()
    wrapped = timed(develop)  # decorated before any monitor exists

    monkeypatch.setattr(monitoring, "get_monitor", lambda: first)
    wrapped(1)
    monkeypatch.setattr(monitoring, "get_monitor", lambda: second)
    wrapped(2)
    wrapped(3)

    assert first.get_statistics("develop")["count"] == 1
    assert second.get_statistics("develop")["count"] == 2


@pytest.mark.parametrize("decorator", [timed, profiled])
@pytest.mark.parametrize("name", ["", "   ", 42])
def test_a_bad_name_is_refused(decorator: Decorator, name: object) -> None:
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        decorator(name)


@pytest.mark.parametrize("decorator", [timed, timed("gen"), profiled, profiled("gen")])
def test_generator_functions_are_refused(decorator: Decorator) -> None:
    def frames() -> Iterator[int]:
        yield 1

    async def async_frames() -> object:
        yield 1

    for func in (frames, async_frames):
        with pytest.raises(ValueError, match="generator function"):
            decorator(func)


# -- @profiled ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decorate", "name"),
    [
        (profiled, "develop"),
        (profiled(), "develop"),
        (profiled("negative.invert"), "negative.invert"),
    ],
    ids=["bare", "called", "named"],
)
def test_profiled_profiles_a_plain_call(
    decorate: Decorator, name: str, profiler: ImageProcessingProfiler
) -> None:
    wrapped = decorate(develop)

    assert wrapped(30, agent="oxalate") == "oxalate for 30s"
    [profile] = profiler.get_profiles(name)
    assert profile["success"] is True
    assert profile["wall_time_s"] >= 0 and profile["cpu_time_s"] >= 0
    assert profiler.monitor.get_statistics(f"{name}_wall_time")["count"] == 1


def test_profiled_passes_every_argument_through(profiler: ImageProcessingProfiler) -> None:
    # These names are profile_operation's own keywords; they must reach the function.
    @profiled
    def resize(func: str, image_size: tuple[int, int], operation_name: str) -> tuple[object, ...]:
        return func, image_size, operation_name

    assert resize(func="lanczos", image_size=(8, 10), operation_name="mine") == (
        "lanczos",
        (8, 10),
        "mine",
    )
    assert [p["operation"] for p in profiler.get_profiles()] == [resize.__qualname__]


def test_profiled_records_a_failed_call_and_re_raises(profiler: ImageProcessingProfiler) -> None:
    @profiled("coat")
    def coat() -> None:
        raise RuntimeError("puddling")

    with pytest.raises(RuntimeError, match="puddling"):
        coat()

    [profile] = profiler.get_profiles("coat")
    assert profile["success"] is False
    assert profile["error"] == "RuntimeError: puddling"
    assert profiler.monitor.get_operation_names() == []  # failures add no timing


def test_profiled_measures_around_the_await(
    profiler: ImageProcessingProfiler, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    monkeypatch.setattr(decorators, "_wall_clock", clock)  # the async profile's documented pin

    @profiled("scan")
    async def scan(dpi: int) -> int:
        clock.advance(1.5)
        await asyncio.sleep(0)
        clock.advance(2.5)
        return dpi * 2

    assert inspect.iscoroutinefunction(scan)
    assert scan.__name__ == "scan"
    assert asyncio.run(scan(300)) == 600

    [sample] = profiler.monitor.get_metrics("scan_wall_time")
    assert sample.value == 4.0
    assert sample.unit == "seconds"
    [profile] = profiler.get_profiles("scan")  # the full profile joins the profiler's
    assert profile["success"] is True
    assert profile["wall_time_s"] == 4.0
    assert profile["cpu_time_s"] >= 0
    assert "memory_delta_mb" in profile


def test_profiled_async_bare_and_called(profiler: ImageProcessingProfiler) -> None:
    for wrapped in (profiled(develop_async), profiled()(develop_async)):
        assert inspect.iscoroutinefunction(wrapped)
        assert asyncio.run(wrapped(5)) == "ferric oxalate for 5s"
    assert profiler.monitor.get_statistics("develop_async_wall_time")["count"] == 2


def test_profiled_async_re_raises_and_adds_no_timing(profiler: ImageProcessingProfiler) -> None:
    @profiled("scan")
    async def scan() -> None:
        await asyncio.sleep(0)
        raise OSError("scanner offline")

    with pytest.raises(OSError, match="scanner offline"):
        asyncio.run(scan())

    assert profiler.monitor.get_operation_names() == []
    [profile] = profiler.get_profiles("scan")
    assert profile["success"] is False
    assert profile["error"] == "OSError: scanner offline"


def test_profiled_looks_the_profiler_up_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    wrapped = profiled(develop)
    first, second = ImageProcessingProfiler(), ImageProcessingProfiler()

    monkeypatch.setattr(monitoring, "get_profiler", lambda: first)
    wrapped(1)
    monkeypatch.setattr(monitoring, "get_profiler", lambda: second)
    wrapped(2)

    assert len(first.get_profiles("develop")) == 1
    assert len(second.get_profiles("develop")) == 1
