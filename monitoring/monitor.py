"""PerformanceMonitor: time operations and answer exact statistics over their samples."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import numbers
import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter, time
from types import TracebackType
from typing import Any, overload

import numpy as np

from . import stats as _stats
from ._common import Clock, TimeBound, TimeRange, check_name, window, write_text_atomically
from ._metadata import copy_metadata, short_repr
from ._publisher import SeriesPublisher
from ._series import NO_META, SeriesBuffer
from .models import PerformanceMetric
from .store import METRIC, SampleStore

__all__ = ["PerformanceMonitor", "TimeRange", "Timer", "write_text_atomically"]

_EXPORT_FORMATS = ("json", "csv")
_EXPORT_COLUMNS = ("metric_name", "value", "unit", "timestamp", "metadata")
# A unit is a chart label and a store header field: "seconds", "ms", "MB", "%", "px/s", "°C".
_UNIT = re.compile(r"[A-Za-z%°µμ][A-Za-z0-9_%/.°µμ-]{0,31}")


def _check_unit(name: str, unit: object) -> str:
    """Called when a series is created or a unit differs, never on the hot path."""
    if not isinstance(unit, str) or not _UNIT.fullmatch(unit):
        raise ValueError(
            f"Metric {name!r}: unit must be a short name such as 'seconds', 'ms', 'MB' or '%' "
            f"(a letter or % and up to 31 letters, digits or _%/.-), got {short_repr(unit)}"
        )
    return unit


def _unit_mismatch(name: str, recorded: str, given: str) -> ValueError:
    return ValueError(f"Metric {name!r} is recorded in {recorded!r}; got a value in {given!r}")


def _metrics_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2, default=str)


def _metrics_csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row["metric_name"],
                repr(row["value"]),  # exact: the CSV round-trips to the same float
                row["unit"],
                row["timestamp"],
                json.dumps(row["metadata"], default=str),
            ]
        )
    return out.getvalue()


def _context_id() -> int:
    """Who is timing: the running asyncio task, or else the thread."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return id(task) if task is not None else threading.get_ident()


class Timer:
    """Times one block; a fresh instance per ``timer()`` call, so concurrent blocks never mix.

    The block is recorded also when it raises, with the exception type in the metadata.
    ``elapsed`` holds the seconds once the block has ended.
    """

    __slots__ = ("_metadata", "_series", "_start", "elapsed")

    def __init__(self, series: SeriesBuffer, metadata: dict[str, Any] | None) -> None:
        self._series = series
        self._metadata = metadata
        self.elapsed: float | None = None

    def __enter__(self) -> Timer:
        self._start = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = perf_counter() - self._start
        self.elapsed = elapsed
        series = self._series
        if exc_type is None and self._metadata is None:
            # The hot path, inlined: one C call appends the whole row (see _series.py).
            data = series.data
            data.frombytes(series.pack_row(series.clock(), elapsed, NO_META))
            if len(data) > series.trim_at:
                series.trim()
            return
        # Copied now, when the sample is recorded: the block may still have filled the dict in.
        metadata = copy_metadata(self._metadata, "Timer") if self._metadata else {}
        if exc_type is not None:
            metadata["error"] = exc_type.__name__
        series.add((series.clock(), elapsed), metadata)


class PerformanceMonitor(SeriesPublisher):
    """Timings and other values of named operations, with exact percentiles.

    >>> monitor = PerformanceMonitor(max_history=5000)
    >>> with monitor.timer("resize"):
    ...     pass
    >>> monitor.get_statistics("resize")["count"]
    1

    A monitor built directly keeps its samples in memory only; give it a ``store`` (or use
    ``get_monitor()``) to publish them to the sample store for the dashboard.
    """

    KIND = METRIC
    WIDTH = 2

    def __init__(
        self,
        max_history: int | None = None,
        *,
        store: SampleStore | None = None,
        clock: Clock = time,
    ) -> None:
        super().__init__(max_history, store=store, clock=clock)
        self._running: dict[tuple[str, int], float] = {}

    def __repr__(self) -> str:
        return f"PerformanceMonitor(operations={len(self._series)}, store={self._store!r})"

    # -- recording ----------------------------------------------------------------------------

    def _buffer(self, name: str, unit: str = "seconds") -> SeriesBuffer:
        check_name("Metric", name)
        try:
            return self._series[name]
        except KeyError:
            pass
        with self._lock:
            series = self._series.get(name)
            if series is None:
                series = self._new_buffer(unit)
                self._series[name] = series
            return series

    def timer(self, name: str, metadata: dict[str, Any] | None = None) -> Timer:
        """A context manager timing its block into ``name`` (seconds).

        ``metadata`` is copied when the block ends (see ``_metadata.py`` for what is kept), so
        the block may still add to it.

        Raises:
            ValueError: the name is empty or not a string, or ``name`` holds another unit.
        """
        series = self._series.get(name) if type(name) is str else None
        if series is None:
            series = self._buffer(name)
        if series.unit != "seconds":
            raise _unit_mismatch(name, series.unit, "seconds")
        if metadata is not None and not isinstance(metadata, dict):
            raise ValueError(
                f"Metric {name!r}: metadata must be a dict, got {short_repr(metadata)}"
            )
        return Timer(series, metadata)

    def start_timer(self, name: str) -> None:
        """Start timing ``name`` in this thread or asyncio task; ``stop_timer`` records it."""
        check_name("Metric", name)
        self._running[(name, _context_id())] = perf_counter()

    def stop_timer(self, name: str, metadata: dict[str, Any] | None = None) -> float | None:
        """Record and return the seconds since ``start_timer(name)``; None if it was not started."""
        if metadata is not None:
            metadata = copy_metadata(metadata, "Metric", name)
        start = self._running.pop((name, _context_id()), None)
        if start is None:
            return None
        elapsed = perf_counter() - start
        series = self._buffer(name)
        if series.unit != "seconds":
            raise _unit_mismatch(name, series.unit, "seconds")
        series.add((self._clock(), elapsed), metadata)
        return elapsed

    def record_metric(
        self,
        name: str,
        value: float,
        unit: str = "seconds",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Record one value of ``name``.

        Raises:
            ValueError: the name is empty or not a string, the value is not a finite number, or
                the series was recorded in another unit before.
        """
        series = self._series.get(name) if type(name) is str else None  # lists don't hash
        if series is None:
            check_name("Metric", name)
        # Everything is checked before a new series is made: a refused call leaves no trace.
        if (
            type(value) is float
            or type(value) is int
            or (isinstance(value, numbers.Real) and not isinstance(value, bool))
        ):  # the fast path skips the ABC check
            try:
                number = float(value)
            except OverflowError:  # an int or Fraction past 1.8e308
                raise ValueError(
                    f"Metric {name!r}: value must be a finite number, got a "
                    f"{type(value).__name__} too large for a float"
                ) from None
        else:
            raise ValueError(f"Metric {name!r}: value must be a number, got {short_repr(value)}")
        if not math.isfinite(number):
            raise ValueError(f"Metric {name!r}: value must be finite, got {number!r}")
        if metadata is not None:
            metadata = copy_metadata(metadata, "Metric", name)
        if series is None:
            series = self._buffer(name, _check_unit(name, unit))
        if series.unit != unit:
            raise _unit_mismatch(name, series.unit, _check_unit(name, unit))
        if metadata is None:
            data = series.data
            data.frombytes(series.pack_row(self._clock(), number, NO_META))
            if len(data) > series.trim_at:
                series.trim()
        else:
            series.add((self._clock(), number), metadata)

    # -- queries ------------------------------------------------------------------------------

    def _live_series(self) -> list[tuple[str, SeriesBuffer]]:
        """A snapshot of the series with samples: other threads may add or clear meanwhile."""
        return [(name, series) for name, series in list(self._series.items()) if len(series)]

    def get_operation_names(self) -> list[str]:
        """Every operation with samples, sorted."""
        return sorted(name for name, _ in self._live_series())

    def get_unit(self, name: str) -> str | None:
        """The unit ``name`` is recorded in, or None for an unknown operation."""
        series = self._series.get(name)
        return series.unit if series is not None else None

    def _values(self, name: str, time_range: TimeRange = None) -> np.ndarray:
        series = self._series.get(name)
        if series is None:
            return np.empty(0)
        if time_range is None:
            return series.values()
        (timestamps, values), _ = series.view()
        lo, hi = window(time_range, self._clock)
        return values[(timestamps >= lo) & (timestamps <= hi)]

    def get_metrics(self, name: str, time_range: TimeRange = None) -> list[PerformanceMetric]:
        """The samples of ``name`` as models, oldest first (``time_range``: pair or timedelta)."""
        series = self._series.get(name)
        if series is None:
            return []
        (timestamps, values), meta = series.view()
        lo, hi = window(time_range, self._clock)
        return [
            PerformanceMetric(
                metric_name=name,
                value=float(values[i]),
                unit=series.unit,
                timestamp=datetime.fromtimestamp(float(timestamps[i]), UTC),
                metadata=meta.get(int(i), {}),
            )
            for i in np.flatnonzero((timestamps >= lo) & (timestamps <= hi))
        ]

    def get_average(self, name: str, time_range: TimeRange = None) -> float | None:
        """The mean of ``name``'s samples; None when there are none."""
        values = self._values(name, time_range)
        return float(values.mean()) if values.size else None

    def get_percentiles(
        self,
        name: str,
        percentiles: Sequence[float] = _stats.DEFAULT_PERCENTILES,
        time_range: TimeRange = None,
    ) -> dict[str, float]:
        """Exact percentiles, e.g. ``{"p50": ..., "p99": ...}``; ``{}`` without samples."""
        return _stats.percentiles(self._values(name, time_range), percentiles)

    def get_statistics(self, name: str, time_range: TimeRange = None) -> dict[str, Any]:
        """count, min, max, mean, median, std, p50-p99 and unit; ``{"count": 0}`` if empty."""
        values = self._values(name, time_range)
        return _stats.summarize(values, self.get_unit(name)) if values.size else {"count": 0}

    def samples_with_metadata(
        self, key: str, value: Any, time_range: TimeRange = None
    ) -> dict[str, list[PerformanceMetric]]:
        """Per operation, the samples whose metadata has ``key == value`` (session reports).

        Only the sparse metadata is scanned; models are built for the matches alone.
        """
        lo, hi = window(time_range, self._clock)
        found: dict[str, list[PerformanceMetric]] = {}
        for name, series in sorted(self._live_series()):
            (timestamps, values), meta = series.view()
            matches = [
                PerformanceMetric(
                    metric_name=name,
                    value=float(values[i]),
                    unit=series.unit,
                    timestamp=datetime.fromtimestamp(float(timestamps[i]), UTC),
                    metadata=item,
                )
                for i, item in sorted(meta.items())
                if item.get(key) == value and lo <= timestamps[i] <= hi
            ]
            if matches:
                found[name] = matches
        return found

    def metadata_values(self, key: str) -> dict[Any, float]:
        """Each value ``key`` takes in the samples' metadata, with its newest epoch timestamp."""
        newest: dict[Any, float] = {}
        for _, series in self._live_series():
            (timestamps, _), meta = series.view()
            for i, item in meta.items():
                value = item.get(key)
                if isinstance(value, str | int | float):  # hashable, chart-friendly
                    newest[value] = max(float(timestamps[i]), newest.get(value, -math.inf))
        return newest

    # -- export, reset, flush -----------------------------------------------------------------

    @overload
    def export_metrics(
        self,
        format: str = ...,
        output_path: None = None,
        operation_name: str | None = None,
    ) -> str: ...

    @overload
    def export_metrics(
        self, format: str, output_path: Path | str, operation_name: str | None = None
    ) -> None: ...

    @overload
    def export_metrics(
        self, format: str = ..., *, output_path: Path | str, operation_name: str | None = None
    ) -> None: ...

    def export_metrics(
        self,
        format: str = "json",
        output_path: Path | str | None = None,
        operation_name: str | None = None,
    ) -> str | None:
        """Every sample (or ``operation_name``'s) as JSON or CSV, oldest first per operation.

        JSON is an array of ``{metric_name, value, unit, timestamp, metadata}``; CSV has the
        header ``metric_name,value,unit,timestamp,metadata`` (metadata as JSON) and is ``""``
        without samples. Values are written exactly; timestamps as ISO 8601 with ``+00:00``.

        Returns:
            The text, or None when it was written to ``output_path``.

        Raises:
            ValueError: ``format`` is neither "json" nor "csv" (in any case).
            FileNotFoundError: the folder of ``output_path`` does not exist.
        """
        kind = format.lower() if isinstance(format, str) else format
        if kind not in _EXPORT_FORMATS:
            raise ValueError(
                f"Unsupported format {format!r}; use one of {', '.join(_EXPORT_FORMATS)}"
            )
        names = [operation_name] if operation_name is not None else self.get_operation_names()
        rows = [row for name in names for row in self._export_rows(name)]
        text = _metrics_json(rows) if kind == "json" else _metrics_csv(rows)
        if output_path is None:
            return text
        write_text_atomically(text, Path(output_path))
        return None

    def _export_rows(self, name: str) -> list[dict[str, Any]]:
        series = self._series.get(name)
        if series is None:
            return []
        (timestamps, values), meta = series.view()
        return [
            {
                "metric_name": name,
                "value": float(values[i]),
                "unit": series.unit,
                "timestamp": datetime.fromtimestamp(float(timestamps[i]), UTC).isoformat(),
                "metadata": meta.get(i, {}),
            }
            for i in range(len(values))
        ]

    def clear_metrics(self, name: str | None = None) -> None:
        """Forget the samples of ``name`` (or of every operation); stored ones are flushed first."""
        self.flush()
        with self._lock:
            targets = list(self._series) if name is None else [name]
            for target in targets:
                series = self._series.pop(target, None)
                if series is not None:
                    series.clear()

    # -- every process's samples, from the store ------------------------------------------------

    @classmethod
    def from_store(
        cls, store: SampleStore, since: TimeBound = None, until: TimeBound = None
    ) -> PerformanceMonitor:
        """A read-only monitor holding every process's metrics with ``since <= ts <= until``.

        Every query works as on a live monitor; recording into it raises ``ValueError``.

        Raises:
            StoreError: the store cannot be read.
        """
        series = {
            name: store.read_columns(METRIC, name, since, until)
            for name in store.series_names(METRIC)
        }
        return _StoredMonitor._loaded(series)

    # -- watches --------------------------------------------------------------------------------

    # Imported in the class, for the annotation below (watches.py imports nothing of this module).
    from .watches import Watch as _Watch

    def watch(
        self,
        target: str,
        stat: str = "p95",
        *,
        above: float | None = None,
        above_ms: float | None = None,
        window: float | str | None = None,
        baseline: float | str | None = None,
        factor: float | None = None,
        min_samples: int | None = None,
        for_s: float | str = 0.0,
        severity: str = "warning",
        kind: str | None = None,
        name: str | None = None,
    ) -> _Watch:
        """Declare a watch on ``target`` and register it in this process; returns the Watch.

        >>> get_monitor().watch("curve.fit", "p95", above_ms=250)  # doctest: +SKIP
        >>> get_monitor().watch("curve.fit", "p95", baseline="7d", factor=1.5)  # doctest: +SKIP

        The fields are those of ``[[watch]]`` in a watches file (``watches.py`` tells what each
        means); a target ``"GET /path"`` is an endpoint. Declaring a name again replaces the
        watch. ``watches.evaluate()`` in this process judges it; ``ptpd-monitor watch`` and
        other processes see only the configured watches (``PTPD_MONITORING_WATCHES``, the file).

        Raises:
            WatchError: a ValueError naming the rule and what is wrong with it.
        """
        from .watches import parse_watch, register_watch

        rule = {
            "name": name,
            "target": target,
            "kind": kind,
            "stat": stat,
            "window": window,
            "above": above,
            "above_ms": above_ms,
            "baseline": baseline,
            "factor": factor,
            "min_samples": min_samples,
            "for_s": for_s,
            "severity": severity,
        }
        return register_watch(parse_watch({k: v for k, v in rule.items() if v is not None}))


class _StoredMonitor(PerformanceMonitor):
    """What ``PerformanceMonitor.from_store`` returns: queries only."""

    def _buffer(self, name: str, unit: str = "seconds") -> SeriesBuffer:
        raise ValueError("This monitor was loaded from the store and is read-only")

    def timer(self, name: str, metadata: dict[str, Any] | None = None) -> Timer:
        return Timer(self._buffer(name), metadata)

    def record_metric(
        self,
        name: str,
        value: float,
        unit: str = "seconds",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._buffer(name)
