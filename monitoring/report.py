"""PerformanceReport: daily, session and period-comparison reports, exported as JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import stats as _stats
from .monitor import PerformanceMonitor, window, write_text_atomically
from .profiler import rank_bottlenecks

if TYPE_CHECKING:
    from .api import APIPerformanceTracker
    from .resources import ResourceMonitor

__all__ = ["PerformanceReport", "Period"]

Period = tuple[datetime | float, datetime | float]
_FORMATS = ("json", "csv")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def day_window(day: date | str | None) -> tuple[date, float, float]:
    """A local calendar day (a date, "YYYY-MM-DD" or None for today) as epoch seconds."""
    if day is None:
        day = date.today()
    elif isinstance(day, str):
        try:
            day = date.fromisoformat(day)
        except ValueError:
            raise ValueError(f"date must be YYYY-MM-DD, got {day!r}") from None
    elif isinstance(day, datetime):
        day = day.date()
    elif not isinstance(day, date):
        raise ValueError(f"date must be a date or YYYY-MM-DD, got {day!r}")
    start = datetime.combine(day, time.min).astimezone()
    # The next local midnight, not start + 24 h: a day with a DST change has 23 or 25 hours.
    end = datetime.combine(day + timedelta(days=1), time.min).astimezone()
    return day, start.timestamp(), end.timestamp() - 1e-6


class PerformanceReport:
    """Reports over a monitor (live, or loaded from the store for every process).

    >>> report = PerformanceReport(monitor).generate_daily_report()  # doctest: +SKIP
    >>> PerformanceReport(monitor).export_report(report, format="csv")  # doctest: +SKIP
    """

    def __init__(
        self,
        monitor: PerformanceMonitor,
        api_tracker: APIPerformanceTracker | None = None,
        resource_monitor: ResourceMonitor | None = None,
    ) -> None:
        self.monitor = monitor
        self.api_tracker = api_tracker
        self.resource_monitor = resource_monitor

    def _operations(self, time_range: Period | None) -> dict[str, dict[str, Any]]:
        operations = {}
        for name in self.monitor.get_operation_names():
            stats = self.monitor.get_statistics(name, time_range)
            if stats["count"]:
                operations[name] = stats
        return operations

    def _window_report(self, kind: str, lo: float, hi: float) -> dict[str, Any]:
        time_range = (lo, hi)
        operations = self._operations(time_range)
        report: dict[str, Any] = {
            "report_type": kind,
            "generated_at": datetime.now(UTC).isoformat(),
            "period": {"start": _iso(lo), "end": _iso(hi)},
            "summary": {
                "operations": len(operations),
                "samples": sum(int(s["count"]) for s in operations.values()),
            },
            "operations": operations,
            "bottlenecks": rank_bottlenecks(self.monitor, list(operations), time_range=time_range),
        }
        if self.api_tracker is not None:
            report["api"] = self.api_tracker.generate_api_report(time_range)
        if self.resource_monitor is not None:
            usage = self.resource_monitor.check_resources()
            report["resources"] = {
                "current": usage.model_dump(mode="json"),
                "alerts": self.resource_monitor.get_alerts_for_high_usage(usage),
            }
        return report

    def generate_daily_report(self, date: date | str | None = None) -> dict[str, Any]:
        """Statistics of every operation (and API endpoint) on one local day; today by default."""
        day, lo, hi = day_window(date)
        report = self._window_report("daily", lo, hi)
        report["date"] = day.isoformat()
        return report

    def generate_period_report(self, period: Period) -> dict[str, Any]:
        """Like the daily report, for any ``(start, end)``."""
        lo, hi = window(period)
        return self._window_report("period", lo, hi)

    def generate_session_report(self, session_id: str) -> dict[str, Any]:
        """Statistics of the samples whose metadata carries ``session_id``.

        Raises:
            ValueError: ``session_id`` is empty.
        """
        if not isinstance(session_id, str) or not session_id.strip():
            raise ValueError(f"session_id must be a non-empty string, got {session_id!r}")
        samples = self.monitor.samples_with_metadata("session_id", session_id)
        operations: dict[str, Any] = {}
        stamps: list[float] = []
        for name, metrics in samples.items():
            values = np.array([m.value for m in metrics])
            operations[name] = _stats.summarize(values, metrics[0].unit)
            stamps.extend(m.timestamp.timestamp() for m in metrics)
        report: dict[str, Any] = {
            "report_type": "session",
            "session_id": session_id,
            "generated_at": datetime.now(UTC).isoformat(),
            "period": {"start": _iso(min(stamps)), "end": _iso(max(stamps))} if stamps else None,
            "summary": {
                "operations": len(operations),
                "samples": sum(int(s["count"]) for s in operations.values()),
            },
            "operations": operations,
        }
        if self.api_tracker is not None:
            requests = [
                r
                for r in self.api_tracker.get_requests()
                if r.metadata.get("session_id") == session_id
            ]
            errors = sum(1 for r in requests if r.is_error)
            report["api"] = {
                "total_requests": len(requests),
                "total_errors": errors,
                "error_rate": errors / len(requests) if requests else 0.0,
                "mean_ms": float(np.mean([r.duration_ms for r in requests])) if requests else None,
            }
        return report

    def compare_performance(
        self, period1: Period, period2: Period, tolerance_pct: float = 5.0
    ) -> dict[str, Any]:
        """Per operation: mean and count in both periods, and the change from the first.

        ``direction`` is "improved" when the mean fell by more than ``tolerance_pct`` percent
        (timings: lower is better), "degraded" when it rose by more, else "unchanged"; an
        operation seen in one period only has no change.
        """
        lo1, hi1 = window(period1)
        lo2, hi2 = window(period2)
        names = sorted(set(self._operations((lo1, hi1))) | set(self._operations((lo2, hi2))))
        operations: dict[str, Any] = {}
        for name in names:
            first = self.monitor.get_statistics(name, (lo1, hi1))
            second = self.monitor.get_statistics(name, (lo2, hi2))
            operations[name] = {
                "unit": self.monitor.get_unit(name),
                "period1": {"mean": first.get("mean"), "count": first["count"]},
                "period2": {"mean": second.get("mean"), "count": second["count"]},
                "change": _change(first.get("mean"), second.get("mean"), tolerance_pct),
            }
        directions = [op["change"]["direction"] for op in operations.values() if op["change"]]
        return {
            "report_type": "comparison",
            "generated_at": datetime.now(UTC).isoformat(),
            "period1": {"start": _iso(lo1), "end": _iso(hi1)},
            "period2": {"start": _iso(lo2), "end": _iso(hi2)},
            "summary": {d: directions.count(d) for d in ("improved", "degraded", "unchanged")},
            "operations": operations,
        }

    def export_report(
        self,
        report: Mapping[str, Any],
        format: str = "json",
        path: Path | str | None = None,
    ) -> str:
        """The report as JSON or CSV text (section, item, field, value); written to ``path``.

        Raises:
            ValueError: an unsupported format.
            FileNotFoundError: the folder of ``path`` does not exist.
        """
        if format not in _FORMATS:
            raise ValueError(f"Unsupported format {format!r}; use one of {', '.join(_FORMATS)}")
        text = json.dumps(report, indent=2, default=str) if format == "json" else _to_csv(report)
        if path is not None:
            write_text_atomically(text, Path(path))
        return text


def _change(
    before: float | None, after: float | None, tolerance_pct: float
) -> dict[str, Any] | None:
    if before is None or after is None:
        return None
    absolute = after - before
    # From a zero mean any change is infinitely many percent: say None (JSON has no infinity)
    # and let the direction carry the sign.
    percentage = absolute / before * 100.0 if before else (0.0 if absolute == 0 else None)
    if percentage is not None and abs(percentage) <= tolerance_pct:
        direction = "unchanged"
    else:
        direction = "improved" if absolute < 0 else "degraded"
    return {"absolute": absolute, "percentage": percentage, "direction": direction}


def _to_csv(report: Mapping[str, Any]) -> str:
    """Flatten a report into rows of section, item, field, value (spreadsheet friendly)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "item", "field", "value"])
    for section, content in report.items():
        if isinstance(content, Mapping):
            for item, value in content.items():
                for field, leaf in _leaves(value):
                    writer.writerow([section, item, field, leaf])
        elif isinstance(content, list):
            for index, value in enumerate(content):
                for field, leaf in _leaves(value):
                    writer.writerow([section, index, field, leaf])
        else:
            writer.writerow([section, "", "", content])
    return out.getvalue()


def _leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        rows: list[tuple[str, Any]] = []
        for key, inner in value.items():
            rows.extend(_leaves(inner, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        rows = []
        for index, inner in enumerate(value):
            rows.extend(_leaves(inner, f"{prefix}[{index}]"))
        return rows
    return [(prefix, json.dumps(value) if isinstance(value, list) else value)]
