"""APIPerformanceTracker: latency and error rates of the app's HTTP endpoints."""

from __future__ import annotations

import math
import numbers
from datetime import UTC, datetime
from time import perf_counter
from types import TracebackType
from typing import Any, overload

import numpy as np

from . import stats as _stats
from ._common import (
    TimeRange,
    check_name,
    endpoint_key,
    error_mask,
    split_endpoint_key,
    window,
)
from ._metadata import copy_metadata, short_repr
from ._publisher import SeriesPublisher
from ._series import SeriesBuffer
from .models import APIMetric
from .store import API, SampleStore, TimeBound

__all__ = ["APIPerformanceTracker", "RequestTimer"]

_TIME, _DURATION, _STATUS = 0, 1, 2


class RequestTimer:
    """Times one request as ``with`` or ``async with``; a raised exception records a 500.

    Set ``status_code`` inside the block to record the real status (the middleware does).
    """

    __slots__ = ("_metadata", "_start", "_tracker", "endpoint", "method", "status_code")

    def __init__(
        self,
        tracker: APIPerformanceTracker,
        endpoint: str,
        method: str,
        metadata: dict[str, Any] | None,
    ) -> None:
        self._tracker = tracker
        self.endpoint = endpoint
        self.method = method
        self._metadata = metadata
        self.status_code = 200

    def __enter__(self) -> RequestTimer:
        self._start = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        duration = perf_counter() - self._start
        error = None
        status = self.status_code
        if exc_type is not None:
            status = 500
            error = f"{exc_type.__name__}: {exc}" if str(exc) else exc_type.__name__
        self._tracker.track_request(
            self.endpoint, duration, status, self.method, error=error, metadata=self._metadata
        )

    async def __aenter__(self) -> RequestTimer:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class APIPerformanceTracker(SeriesPublisher):
    """Requests per endpoint and method: durations, status codes and errors.

    >>> tracker = APIPerformanceTracker()
    >>> with tracker.track("/api/curves", "POST"):
    ...     pass
    >>> tracker.get_endpoint_stats("/api/curves")["count"]
    1

    Status 400 and above counts as an error. Built directly, a tracker keeps its requests in
    memory; ``get_api_tracker()`` also publishes them to the sample store.
    """

    KIND = API
    WIDTH = 3

    # -- recording ----------------------------------------------------------------------------

    def track(
        self, endpoint: str, method: str = "GET", metadata: dict[str, Any] | None = None
    ) -> RequestTimer:
        """A context manager (``with`` or ``async with``) timing one request to ``endpoint``."""
        check_name("Endpoint", endpoint)
        check_name("Method", method)
        if metadata is not None and not isinstance(metadata, dict):
            raise ValueError(
                f"Endpoint {endpoint!r}: metadata must be a dict, got {short_repr(metadata)}"
            )
        return RequestTimer(self, endpoint, method.upper(), metadata)

    def track_request(
        self,
        endpoint: str,
        duration_s: float,
        status: int,
        method: str = "GET",
        error: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Record a finished request.

        Raises:
            ValueError: an empty endpoint or method, a negative or non-finite duration, a
                status outside 100-599, or metadata that is not a dict (a dict is copied, see
                ``_metadata.py``).
        """
        check_name("Endpoint", endpoint)
        check_name("Method", method)
        if isinstance(duration_s, bool) or not isinstance(duration_s, numbers.Real):
            raise ValueError(
                f"Endpoint {endpoint!r}: duration_s must be a number of seconds, "
                f"got {short_repr(duration_s)}"
            )
        try:
            duration_s = float(duration_s)
        except OverflowError:  # an int or Fraction past 1.8e308
            raise ValueError(
                f"Endpoint {endpoint!r}: duration_s must be a finite number of seconds, got a "
                f"{type(duration_s).__name__} too large for a float"
            ) from None
        if not math.isfinite(duration_s) or duration_s < 0:
            raise ValueError(
                f"Endpoint {endpoint!r}: duration_s must be a finite, non-negative number of "
                f"seconds, got {duration_s!r}"
            )
        if (
            isinstance(status, bool)
            or not isinstance(status, numbers.Integral)
            or not 100 <= status <= 599
        ):
            raise ValueError(
                f"Endpoint {endpoint!r}: status must be an HTTP status 100-599, "
                f"got {short_repr(status)}"
            )
        extra = copy_metadata(metadata, "Endpoint", endpoint) if metadata is not None else {}
        if error is not None:
            extra["error"] = str(error)
        self._buffer(endpoint_key(endpoint, method.upper())).add(
            (self._clock(), duration_s * 1000.0, float(status)), extra or None
        )

    def _buffer(self, key: str) -> SeriesBuffer:
        series = self._series.get(key)
        if series is None:
            with self._lock:
                series = self._series.setdefault(
                    key,
                    self._new_buffer("ms"),
                )
        return series

    # -- queries ------------------------------------------------------------------------------

    def _keys_for(self, endpoint: str | None, method: str | None = None) -> list[str]:
        keys = []
        for key in list(self._series):
            key_method, key_endpoint = split_endpoint_key(key)
            if (endpoint is None or key_endpoint == endpoint) and (
                method is None or key_method == method.upper()
            ):
                keys.append(key)
        return keys

    def _columns(
        self, endpoint: str | None, time_range: TimeRange = None, method: str | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Timestamps, durations (ms) and statuses of one endpoint (every method) or all."""
        buffers = [self._series.get(key) for key in self._keys_for(endpoint, method)]
        parts = [series.view()[0] for series in buffers if series is not None]
        if not parts:
            empty = np.empty(0)
            return empty, empty, empty
        ts, duration, status = (np.concatenate([p[i] for p in parts]) for i in range(3))
        if time_range is not None:
            lo, hi = window(time_range, self._clock)
            keep = (ts >= lo) & (ts <= hi)
            ts, duration, status = ts[keep], duration[keep], status[keep]
        return ts, duration, status

    def get_endpoints(self) -> list[str]:
        """Every endpoint with requests, sorted."""
        return sorted(
            {split_endpoint_key(key)[1] for key, s in list(self._series.items()) if len(s)}
        )

    def get_endpoint_stats(
        self, endpoint: str, time_range: TimeRange = None, method: str | None = None
    ) -> dict[str, Any]:
        """count, error_count, error_rate and min/max/mean/median/p90/p95/p99 in milliseconds."""
        _, duration, status = self._columns(endpoint, time_range, method)
        return _request_stats(duration, status)

    def get_error_rate(self, endpoint: str | None = None, time_range: TimeRange = None) -> float:
        """Errors (status ≥ 400) over requests, for one endpoint or all; 0.0 without requests."""
        _, _, status = self._columns(endpoint, time_range)
        return float(np.mean(error_mask(status))) if status.size else 0.0

    @overload
    def get_response_times(self, endpoint: str, time_range: TimeRange = None) -> list[float]: ...

    @overload
    def get_response_times(
        self, endpoint: None = None, time_range: TimeRange = None
    ) -> dict[str, list[float]]: ...

    def get_response_times(
        self, endpoint: str | None = None, time_range: TimeRange = None
    ) -> list[float] | dict[str, list[float]]:
        """Recorded durations in milliseconds, oldest first per method.

        With an ``endpoint``, its list; without one, ``{endpoint: [ms, ...]}`` for every
        endpoint with requests (the original module's shape).
        """
        if endpoint is None:
            every = {
                name: self.get_response_times(name, time_range) for name in self.get_endpoints()
            }
            return {name: times for name, times in every.items() if times}
        return [float(v) for v in self._columns(endpoint, time_range)[1]]

    def get_requests(
        self, endpoint: str | None = None, time_range: TimeRange = None
    ) -> list[APIMetric]:
        """The requests as models (every endpoint when None), oldest first."""
        lo, hi = window(time_range, self._clock)
        requests = []
        for key in self._keys_for(endpoint):
            method, name = split_endpoint_key(key)
            (ts, duration, status), meta = self._series[key].view()
            for i in np.flatnonzero((ts >= lo) & (ts <= hi)):
                extra = dict(meta.get(int(i), {}))
                error = extra.pop("error", None)
                requests.append(
                    APIMetric(
                        endpoint=name,
                        duration_ms=float(duration[i]),
                        status_code=int(status[i]),
                        method=method,
                        error=error,
                        timestamp=datetime.fromtimestamp(float(ts[i]), UTC),
                        metadata=extra,
                    )
                )
        requests.sort(key=lambda r: r.timestamp)
        return requests

    def generate_api_report(self, time_range: TimeRange = None, top: int = 5) -> dict[str, Any]:
        """Totals, per-endpoint statistics, and the slowest and most failing endpoints."""
        _, duration, status = self._columns(None, time_range)
        endpoints = {
            name: self.get_endpoint_stats(name, time_range) for name in self.get_endpoints()
        }
        endpoints = {name: s for name, s in endpoints.items() if s["count"]}
        overall = _request_stats(duration, status)
        slowest = sorted(endpoints, key=lambda n: endpoints[n]["p95_ms"], reverse=True)
        failing = sorted(
            (n for n in endpoints if endpoints[n]["error_count"]),
            key=lambda n: (endpoints[n]["error_rate"], endpoints[n]["error_count"]),
            reverse=True,
        )
        return {
            "generated_at": datetime.now(UTC).isoformat(),
            "total_requests": overall["count"],
            "total_errors": overall["error_count"],
            "overall_error_rate": overall["error_rate"],
            "overall_mean_ms": overall.get("mean_ms"),
            "overall_median_ms": overall.get("median_ms"),
            "overall_p95_ms": overall.get("p95_ms"),
            "endpoints": endpoints,
            "slowest_endpoints": [
                {
                    "endpoint": n,
                    "p95_ms": endpoints[n]["p95_ms"],
                    "mean_ms": endpoints[n]["mean_ms"],
                }
                for n in slowest[:top]
            ],
            "highest_error_endpoints": [
                {
                    "endpoint": n,
                    "error_rate": endpoints[n]["error_rate"],
                    "error_count": endpoints[n]["error_count"],
                }
                for n in failing[:top]
            ],
        }

    # -- reset, flush -------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget every request (stored ones are flushed first)."""
        self.flush()
        with self._lock:
            for series in self._series.values():
                series.clear()
            self._series.clear()

    # -- every process's requests, from the store -----------------------------------------------

    @classmethod
    def from_store(
        cls, store: SampleStore, since: TimeBound = None, until: TimeBound = None
    ) -> APIPerformanceTracker:
        """A read-only tracker holding every process's requests with ``since <= ts <= until``.

        Raises:
            StoreError: the store cannot be read.
        """
        series = {
            name: store.read_columns(API, name, since, until) for name in store.series_names(API)
        }
        return _StoredTracker._loaded(series)


class _StoredTracker(APIPerformanceTracker):
    """What ``APIPerformanceTracker.from_store`` returns: queries only."""

    def _buffer(self, key: str) -> SeriesBuffer:
        raise ValueError("This tracker was loaded from the store and is read-only")

    def track(
        self, endpoint: str, method: str = "GET", metadata: dict[str, Any] | None = None
    ) -> RequestTimer:
        self._buffer(endpoint)
        raise AssertionError("unreachable")


def _request_stats(duration_ms: np.ndarray, status: np.ndarray) -> dict[str, Any]:
    count = int(duration_ms.size)
    errors = int(np.count_nonzero(error_mask(status)))
    result: dict[str, Any] = {
        "count": count,
        "error_count": errors,
        "error_rate": errors / count if count else 0.0,
    }
    # Every key always: QUICKREF callers read p95_ms without asking whether there were requests.
    summary = _stats.summarize(duration_ms) if count else {}
    for field in ("min", "max", "mean", "median", "p50", "p90", "p95", "p99"):
        result[f"{field}_ms"] = summary.get(field)
    return result
