"""Unit tests for ptpd_calibration.monitoring.api.APIPerformanceTracker."""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from ptpd_calibration.monitoring.api import APIPerformanceTracker, RequestTimer
from ptpd_calibration.monitoring.models import APIMetric
from ptpd_calibration.monitoring.settings import get_settings
from ptpd_calibration.monitoring.store import SampleStore

if TYPE_CHECKING:
    from conftest import FakeClock

T0 = 1_750_000_000.0  # where the clock fixture starts
STATS_KEYS = {
    "count",
    "error_count",
    "error_rate",
    "min_ms",
    "max_ms",
    "mean_ms",
    "median_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
}
REPORT_KEYS = {
    "generated_at",
    "total_requests",
    "total_errors",
    "overall_error_rate",
    "overall_mean_ms",
    "overall_median_ms",
    "overall_p95_ms",
    "endpoints",
    "slowest_endpoints",
    "highest_error_endpoints",
}


@pytest.fixture
def tracker(clock: FakeClock) -> APIPerformanceTracker:
    """On the clock fixture: request timestamps and "now" of timedelta windows."""
    return APIPerformanceTracker(max_history=100_000, clock=clock)


def _ms(durations_s: list[float]) -> np.ndarray:
    """Durations as the tracker stores them."""
    return np.array(durations_s) * 1000.0


# ----------------------------------------------------------------------------- QUICKREF


def test_quickref_example() -> None:
    handled = []
    tracker = APIPerformanceTracker()

    with tracker.track("/api/endpoint", "POST"):
        handled.append(True)
    stats = tracker.get_endpoint_stats("/api/endpoint")
    report = tracker.generate_api_report()

    assert handled == [True]
    assert {"count", "error_rate", "mean_ms", "p90_ms", "p95_ms", "p99_ms"} <= set(stats)
    assert stats["count"] == 1
    assert stats["error_rate"] == 0.0
    assert stats["mean_ms"] >= 0.0
    assert {"total_requests", "overall_error_rate", "endpoints", "slowest_endpoints"} <= set(report)
    assert report["total_requests"] == 1
    assert list(report["endpoints"]) == ["/api/endpoint"]


def test_max_history_default_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTPD_MONITORING_MAX_HISTORY", "9")
    get_settings.cache_clear()

    assert APIPerformanceTracker().max_history == 9
    assert APIPerformanceTracker(max_history=2).max_history == 2
    for bad in (0, -5, True, 1.5, "3"):
        with pytest.raises(ValueError, match="max_history"):
            APIPerformanceTracker(max_history=bad)  # type: ignore[arg-type]
    assert APIPerformanceTracker().store is None


# ----------------------------------------------------------------------------- track()


def test_track_with(tracker: APIPerformanceTracker, clock: FakeClock) -> None:
    with tracker.track("/api/curves", "post", metadata={"session_id": "s1"}) as request:
        assert isinstance(request, RequestTimer)
        assert request.status_code == 200
        assert request.method == "POST"

    [metric] = tracker.get_requests()
    assert isinstance(metric, APIMetric)
    assert metric.endpoint == "/api/curves"
    assert metric.method == "POST"
    assert metric.status_code == 200
    assert metric.error is None
    assert metric.duration_ms >= 0.0
    assert metric.metadata == {"session_id": "s1"}
    assert metric.timestamp == datetime.fromtimestamp(T0, UTC)


def test_track_status_code_override(tracker: APIPerformanceTracker) -> None:
    with tracker.track("/api/x") as request:
        request.status_code = 201
    with tracker.track("/api/x") as request:
        request.status_code = 404

    assert [r.status_code for r in tracker.get_requests()] == [201, 404]
    stats = tracker.get_endpoint_stats("/api/x")
    assert stats["error_count"] == 1
    assert stats["error_rate"] == 0.5
    assert [r.error for r in tracker.get_requests()] == [None, None]


def test_track_exception_records_500_and_reraises(tracker: APIPerformanceTracker) -> None:
    with (
        pytest.raises(RuntimeError, match="database away"),
        tracker.track("/api/x", "PUT") as request,
    ):
        request.status_code = 201  # an exception overrides whatever was set
        raise RuntimeError("database away")
    with pytest.raises(KeyError), tracker.track("/api/x", "PUT"):
        raise KeyError  # no message: the type alone

    requests = tracker.get_requests("/api/x")
    assert [r.status_code for r in requests] == [500, 500]
    assert [r.error for r in requests] == ["RuntimeError: database away", "KeyError"]
    assert all(r.is_error for r in requests)
    assert tracker.get_error_rate("/api/x") == 1.0


def test_track_async_with(tracker: APIPerformanceTracker) -> None:
    async def handler() -> None:
        async with tracker.track("/api/async", "GET") as request:
            await asyncio.sleep(0)
            request.status_code = 202
        with pytest.raises(ValueError, match="bad body"):
            async with tracker.track("/api/async", "POST"):
                await asyncio.sleep(0)
                raise ValueError("bad body")

    asyncio.run(handler())

    requests = tracker.get_requests("/api/async")
    assert [(r.method, r.status_code, r.error) for r in requests] == [
        ("GET", 202, None),
        ("POST", 500, "ValueError: bad body"),
    ]


def test_many_concurrent_async_requests(tracker: APIPerformanceTracker) -> None:
    async def one(i: int) -> None:
        async with tracker.track(f"/api/{i % 3}") as request:
            await asyncio.sleep(0)
            request.status_code = 500 if i % 10 == 0 else 200

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(60)))

    asyncio.run(main())

    report = tracker.generate_api_report()
    assert report["total_requests"] == 60
    assert report["total_errors"] == 6
    assert {name: s["count"] for name, s in report["endpoints"].items()} == {
        "/api/0": 20,
        "/api/1": 20,
        "/api/2": 20,
    }


def test_many_threads_tracking(tracker: APIPerformanceTracker) -> None:
    def work(worker: int) -> None:
        for _ in range(500):
            with tracker.track("/api/t"):
                pass

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(work, range(6)))

    assert tracker.get_endpoint_stats("/api/t")["count"] == 3000


@pytest.mark.parametrize("bad", ["", "  ", None, 5])
def test_track_rejects_bad_endpoint_and_method(tracker: APIPerformanceTracker, bad: Any) -> None:
    with pytest.raises(ValueError, match="Endpoint name must be a non-empty string"):
        tracker.track(bad)
    with pytest.raises(ValueError, match="Method name must be a non-empty string"):
        tracker.track("/api/x", bad)
    assert tracker.get_endpoints() == []


# ----------------------------------------------------------------------------- track_request


def test_track_request_records_milliseconds(
    tracker: APIPerformanceTracker, clock: FakeClock
) -> None:
    tracker.track_request("/api/a", 0.25, 200, "get", metadata={"session_id": "s1"})
    clock.now = T0 + 1
    tracker.track_request("/api/a", 1, 503, error="upstream timeout")

    requests = tracker.get_requests()
    assert [(r.endpoint, r.method, r.duration_ms, r.status_code) for r in requests] == [
        ("/api/a", "GET", 250.0, 200),
        ("/api/a", "GET", 1000.0, 503),
    ]
    assert [r.error for r in requests] == [None, "upstream timeout"]
    assert [r.metadata for r in requests] == [{"session_id": "s1"}, {}]
    assert [r.timestamp.timestamp() for r in requests] == [T0, T0 + 1]
    tracker.track_request("/api/a", 0, 200)  # zero is a valid duration
    assert tracker.get_endpoint_stats("/api/a")["min_ms"] == 0.0


@pytest.mark.parametrize("duration", [-0.001, -1, math.nan, math.inf, -math.inf, "0.1", None, True])
def test_track_request_rejects_bad_durations(tracker: APIPerformanceTracker, duration: Any) -> None:
    with pytest.raises(ValueError, match=r"'/api/a'.*duration"):
        tracker.track_request("/api/a", duration, 200)
    assert tracker.get_endpoint_stats("/api/a")["count"] == 0


@pytest.mark.parametrize("status", [99, 600, 0, -200, "200", True, False, 200.0, None])
def test_track_request_rejects_bad_statuses(tracker: APIPerformanceTracker, status: Any) -> None:
    with pytest.raises(ValueError, match=r"'/api/a'.*status"):
        tracker.track_request("/api/a", 0.1, status)
    assert tracker.get_endpoint_stats("/api/a")["count"] == 0
    assert tracker.get_endpoints() == []


@pytest.mark.parametrize("status", [100, 101, 200, 302, 399, 400, 404, 500, 599])
def test_track_request_accepts_every_http_status(
    tracker: APIPerformanceTracker, status: int
) -> None:
    tracker.track_request("/api/a", 0.1, status)
    assert tracker.get_requests()[0].status_code == status


@pytest.mark.parametrize("endpoint", ["", "   ", None, 7])
def test_track_request_rejects_bad_endpoints(tracker: APIPerformanceTracker, endpoint: Any) -> None:
    with pytest.raises(ValueError, match="Endpoint name must be a non-empty string"):
        tracker.track_request(endpoint, 0.1, 200)
    with pytest.raises(ValueError, match="Method name must be a non-empty string"):
        tracker.track_request("/api/a", 0.1, 200, method="")
    assert tracker.get_endpoints() == []


def test_error_threshold_is_400(tracker: APIPerformanceTracker) -> None:
    tracker.track_request("/api/a", 0.1, 399)
    assert tracker.get_error_rate("/api/a") == 0.0
    assert tracker.get_endpoint_stats("/api/a")["error_count"] == 0

    tracker.track_request("/api/a", 0.1, 400)
    assert tracker.get_endpoint_stats("/api/a")["error_count"] == 1
    assert tracker.get_error_rate("/api/a") == 0.5


# ----------------------------------------------------------------------------- queries


def test_get_endpoint_stats_exact_values(tracker: APIPerformanceTracker) -> None:
    durations = [0.010, 0.020, 0.030, 0.040, 0.100]
    statuses = [200, 200, 404, 200, 500]
    for duration, status in zip(durations, statuses, strict=True):
        tracker.track_request("/api/a", duration, status)
    ms = _ms(durations)

    stats = tracker.get_endpoint_stats("/api/a")

    assert set(stats) == STATS_KEYS
    assert stats["count"] == 5
    assert stats["error_count"] == 2
    assert stats["error_rate"] == 0.4
    assert stats["min_ms"] == pytest.approx(10.0)
    assert stats["max_ms"] == pytest.approx(100.0)
    assert stats["mean_ms"] == pytest.approx(40.0)
    assert stats["median_ms"] == pytest.approx(30.0)
    assert stats["p90_ms"] == pytest.approx(76.0)
    assert stats["p95_ms"] == pytest.approx(88.0)
    assert stats["p99_ms"] == pytest.approx(97.6)
    # and exactly numpy's numbers over the stored milliseconds
    assert stats["min_ms"] == ms.min()
    assert stats["max_ms"] == ms.max()
    assert stats["mean_ms"] == np.mean(ms)
    assert [stats["median_ms"], stats["p90_ms"], stats["p95_ms"], stats["p99_ms"]] == np.percentile(
        ms, [50, 90, 95, 99]
    ).tolist()


def test_get_endpoint_stats_combines_methods_unless_asked(tracker: APIPerformanceTracker) -> None:
    tracker.track_request("/api/a", 0.001, 200, "GET")
    tracker.track_request("/api/a", 0.003, 500, "POST")
    tracker.track_request("/api/b", 0.5, 200, "GET")

    assert tracker.get_endpoint_stats("/api/a")["count"] == 2
    assert tracker.get_endpoint_stats("/api/a")["mean_ms"] == pytest.approx(2.0)
    get_only = tracker.get_endpoint_stats("/api/a", method="get")
    assert get_only["count"] == 1
    assert get_only["error_count"] == 0
    assert tracker.get_endpoint_stats("/api/a", method="POST")["error_rate"] == 1.0


def test_get_endpoint_stats_unknown_endpoint(tracker: APIPerformanceTracker) -> None:
    # Every key is there, so QUICKREF's `stats["p95_ms"]` works before the first request.
    empty = {
        f"{field}_ms": None
        for field in ("min", "max", "mean", "median", "p50", "p90", "p95", "p99")
    }
    assert tracker.get_endpoint_stats("/nope") == {
        "count": 0,
        "error_count": 0,
        "error_rate": 0.0,
        **empty,
    }
    assert tracker.get_error_rate("/nope") == 0.0
    assert tracker.get_error_rate() == 0.0
    assert tracker.get_response_times("/nope") == []


def test_endpoint_with_a_space_and_prefix_names(tracker: APIPerformanceTracker) -> None:
    tracker.track_request("/api/a b", 0.001, 200)
    tracker.track_request("/api/a", 0.002, 200)

    assert tracker.get_endpoints() == ["/api/a", "/api/a b"]
    assert tracker.get_endpoint_stats("/api/a b")["count"] == 1
    assert tracker.get_endpoint_stats("/api/a")["count"] == 1


def test_get_error_rate_overall_and_per_endpoint(tracker: APIPerformanceTracker) -> None:
    for status in (200, 200, 200, 500):
        tracker.track_request("/api/a", 0.01, status)
    for status in (404, 200):
        tracker.track_request("/api/b", 0.01, status, "POST")

    assert tracker.get_error_rate("/api/a") == 0.25
    assert tracker.get_error_rate("/api/b") == 0.5
    assert tracker.get_error_rate() == pytest.approx(2 / 6)


def test_get_response_times(tracker: APIPerformanceTracker) -> None:
    for duration in (0.003, 0.001, 0.002):
        tracker.track_request("/api/a", duration, 200)
    tracker.track_request("/api/other", 9.0, 200)

    times = tracker.get_response_times("/api/a")

    assert times == _ms([0.003, 0.001, 0.002]).tolist()  # oldest first, in milliseconds
    # Without an endpoint: every endpoint's list, as the original module answered.
    assert tracker.get_response_times() == {
        "/api/a": times,
        "/api/other": _ms([9.0]).tolist(),
    }
    assert APIPerformanceTracker().get_response_times() == {}


def test_time_range_filters(tracker: APIPerformanceTracker, clock: FakeClock) -> None:
    for offset, duration, status in ((0, 0.001, 200), (10, 0.002, 500), (20, 0.003, 200)):
        clock.now = T0 + offset
        tracker.track_request("/api/a", duration, status)
    clock.now = T0 + 20

    window = (T0 + 5, T0 + 25)
    assert tracker.get_endpoint_stats("/api/a", window)["count"] == 2
    assert tracker.get_error_rate("/api/a", window) == 0.5
    assert tracker.get_error_rate(None, (T0 + 15, T0 + 25)) == 0.0
    assert tracker.get_response_times("/api/a", window) == _ms([0.002, 0.003]).tolist()
    assert [r.status_code for r in tracker.get_requests("/api/a", window)] == [500, 200]
    assert tracker.get_endpoint_stats("/api/a", timedelta(seconds=15))["count"] == 2
    utc = datetime.fromtimestamp(T0, UTC)
    assert tracker.generate_api_report((utc, utc + timedelta(seconds=1)))["total_requests"] == 1
    with pytest.raises(ValueError):
        tracker.get_endpoint_stats("/api/a", (T0 + 25, T0 + 5))


def test_get_requests_sorted_across_endpoints(
    tracker: APIPerformanceTracker, clock: FakeClock
) -> None:
    for offset, endpoint in ((3, "/b"), (1, "/a"), (2, "/b"), (0, "/c")):
        clock.now = T0 + offset
        tracker.track_request(endpoint, 0.001, 200)

    requests = tracker.get_requests()

    assert [r.endpoint for r in requests] == ["/c", "/a", "/b", "/b"]
    assert [r.endpoint for r in tracker.get_requests("/b")] == ["/b", "/b"]


def test_max_history_bounds_each_series(clock: FakeClock) -> None:
    tracker = APIPerformanceTracker(max_history=5, clock=clock)
    for i in range(50):
        tracker.track_request("/api/a", i / 1000, 200)

    assert tracker.get_response_times("/api/a") == pytest.approx([45.0, 46.0, 47.0, 48.0, 49.0])


# ----------------------------------------------------------------------------- report


def test_generate_api_report(tracker: APIPerformanceTracker) -> None:
    # /fast: 4 quick, 1 error; /slow: 3 slow, 0 errors; /broken: 2, both errors
    for duration, status in ((0.001, 200), (0.002, 200), (0.003, 500), (0.004, 200)):
        tracker.track_request("/fast", duration, status)
    for duration in (0.5, 0.6, 0.7):
        tracker.track_request("/slow", duration, 200, "POST")
    for duration in (0.05, 0.06):
        tracker.track_request("/broken", duration, 502)
    all_ms = _ms([0.001, 0.002, 0.003, 0.004, 0.5, 0.6, 0.7, 0.05, 0.06])

    report = tracker.generate_api_report()

    assert set(report) == REPORT_KEYS
    assert report["total_requests"] == 9
    assert report["total_errors"] == 3
    assert report["overall_error_rate"] == pytest.approx(3 / 9)
    # the overall numbers are over every request (fast, slow, broken, in this order)
    assert report["overall_mean_ms"] == pytest.approx(float(np.mean(all_ms)))
    assert report["overall_median_ms"] == pytest.approx(float(np.median(all_ms)))
    assert report["overall_p95_ms"] == pytest.approx(float(np.percentile(all_ms, 95)))
    assert set(report["endpoints"]) == {"/fast", "/slow", "/broken"}
    assert report["endpoints"]["/slow"] == tracker.get_endpoint_stats("/slow")
    assert [e["endpoint"] for e in report["slowest_endpoints"]] == ["/slow", "/broken", "/fast"]
    assert report["slowest_endpoints"][0] == {
        "endpoint": "/slow",
        "p95_ms": report["endpoints"]["/slow"]["p95_ms"],
        "mean_ms": report["endpoints"]["/slow"]["mean_ms"],
    }
    # only endpoints with errors, highest rate first
    assert report["highest_error_endpoints"] == [
        {"endpoint": "/broken", "error_rate": 1.0, "error_count": 2},
        {"endpoint": "/fast", "error_rate": 0.25, "error_count": 1},
    ]
    datetime.fromisoformat(report["generated_at"])


def test_generate_api_report_top_and_ties(tracker: APIPerformanceTracker) -> None:
    # equal error rates: the endpoint with more errors ranks first
    tracker.track_request("/one", 0.001, 500)
    for _ in range(3):
        tracker.track_request("/three", 0.001, 500)
    for i in range(8):
        tracker.track_request(f"/e{i}", (i + 1) / 100, 200)

    report = tracker.generate_api_report(top=2)

    assert [e["endpoint"] for e in report["highest_error_endpoints"]] == ["/three", "/one"]
    assert [e["endpoint"] for e in report["slowest_endpoints"]] == ["/e7", "/e6"]
    assert len(report["endpoints"]) == 10


def test_generate_api_report_empty(tracker: APIPerformanceTracker) -> None:
    report = tracker.generate_api_report()

    assert report["total_requests"] == 0
    assert report["total_errors"] == 0
    assert report["overall_error_rate"] == 0.0
    assert report["overall_mean_ms"] is None
    assert report["overall_median_ms"] is None
    assert report["overall_p95_ms"] is None
    assert report["endpoints"] == {}
    assert report["slowest_endpoints"] == []
    assert report["highest_error_endpoints"] == []


def test_generate_api_report_window_drops_idle_endpoints(
    tracker: APIPerformanceTracker, clock: FakeClock
) -> None:
    tracker.track_request("/old", 0.1, 200)
    clock.now = T0 + 100
    tracker.track_request("/new", 0.2, 200)

    report = tracker.generate_api_report((T0 + 50, T0 + 150))

    assert list(report["endpoints"]) == ["/new"]
    assert report["total_requests"] == 1


def test_clear(tracker: APIPerformanceTracker) -> None:
    tracker.track_request("/api/a", 0.1, 200)

    tracker.clear()

    assert tracker.get_endpoints() == []
    assert tracker.generate_api_report()["total_requests"] == 0
    tracker.track_request("/api/a", 0.1, 200)
    assert tracker.get_endpoint_stats("/api/a")["count"] == 1


# ----------------------------------------------------------------------------- store


@pytest.mark.usefixtures("no_background_flush")
def test_store_round_trip(tmp_path: Path, clock: FakeClock) -> None:
    store = SampleStore(tmp_path / "s")
    tracker = APIPerformanceTracker(store=store, clock=clock)
    assert tracker.store is store
    tracker.track_request("/api/a", 0.010, 200, metadata={"session_id": "s1"})
    clock.now = T0 + 1
    tracker.track_request("/api/a", 0.020, 500, "POST", error="boom", metadata={"session_id": "s1"})
    clock.now = T0 + 2
    tracker.track_request("/api/b", 0.030, 404, metadata={"session_id": "s2", "user": "ada"})
    clock.now = T0 + 3
    with pytest.raises(RuntimeError), tracker.track("/api/b", metadata={"session_id": "s2"}):
        raise RuntimeError("kaput")

    tracker.flush()
    loaded = store.load_api_tracker()

    assert loaded.get_requests() == tracker.get_requests()
    assert loaded.get_endpoints() == ["/api/a", "/api/b"]
    for endpoint in ("/api/a", "/api/b"):
        assert loaded.get_endpoint_stats(endpoint) == tracker.get_endpoint_stats(endpoint)
    requests = loaded.get_requests()
    assert [r.error for r in requests] == [None, "boom", None, "RuntimeError: kaput"]
    assert [r.metadata.get("session_id") for r in requests] == ["s1", "s1", "s2", "s2"]
    assert requests[2].metadata == {"session_id": "s2", "user": "ada"}
    assert [r.method for r in requests] == ["GET", "POST", "GET", "GET"]
    report = loaded.generate_api_report()
    assert report["total_requests"] == 4
    assert report["total_errors"] == 3

    # read-only
    with pytest.raises(ValueError, match="read-only"):
        loaded.track_request("/api/a", 0.1, 200)
    with pytest.raises(ValueError, match="read-only"), loaded.track("/api/a"):
        pass
    assert loaded.get_endpoint_stats("/api/a")["count"] == 2


@pytest.mark.usefixtures("no_background_flush")
def test_store_window_and_incremental_flush(tmp_path: Path, clock: FakeClock) -> None:
    store = SampleStore(tmp_path / "s")
    tracker = APIPerformanceTracker(store=store, clock=clock)
    tracker.track_request("/api/a", 0.010, 200)
    tracker.flush()
    clock.now = T0 + 100
    tracker.track_request("/api/a", 0.020, 200)
    tracker.flush()
    tracker.flush()  # nothing new: nothing written twice

    assert store.load_api_tracker().get_endpoint_stats("/api/a")["count"] == 2
    recent = store.load_api_tracker(since=T0 + 50)
    assert recent.get_response_times("/api/a") == _ms([0.020]).tolist()
