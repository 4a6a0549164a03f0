"""PerformanceReport: daily, session and period-comparison reports, exported as JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from . import stats as _stats
from ._common import day_window, window, write_text_atomically
from .monitor import PerformanceMonitor
from .profiler import rank_bottlenecks

if TYPE_CHECKING:
    from .api import APIPerformanceTracker
    from .resources import ResourceMonitor

__all__ = ["PerformanceReport", "Period"]

Period = tuple[datetime | float, datetime | float]
_FORMATS = ("json", "csv")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


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
            "bottlenecks": rank_bottlenecks(self.monitor, time_range=time_range),
        }
        if self.api_tracker is not None:
            report["api"] = self.api_tracker.generate_api_report(time_range)
        if self.resource_monitor is not None:
            usage = self.resource_monitor.check_resources()
            # The original module's shape: the snapshot's fields, and the alerts beside them.
            report["resources"] = usage.model_dump(mode="json")
            report["resource_alerts"] = self.resource_monitor.get_alerts_for_high_usage(usage)
        return report

    def generate_daily_report(self, date: date | str | None = None) -> dict[str, Any]:
        """Statistics of every operation (and API endpoint) on one local day; today by default.

        The report holds report_type, date, generated_at, period, summary, operations
        (``{name: get_statistics}``) and bottlenecks; with an API tracker ``api`` (its
        ``generate_api_report``), with a resource monitor ``resources`` (a ``ResourceUsage``
        snapshot's fields) and ``resource_alerts`` (``get_alerts_for_high_usage``).
        """
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

        Each operation has the statistics of ``get_statistics`` and the ``total`` of its values.

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
            operations[name] = {
                **_stats.summarize(values, metrics[0].unit),
                "total": float(values.sum()),
            }
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
        """Per operation: mean and count in each period, and the change from the first.

        As in the original module, ``period1`` and ``period2`` map each operation with samples
        in that period to ``{mean, count}``, and ``changes`` maps each operation seen in both
        to ``{absolute, percentage, direction}``: "improved" when the mean fell (timings: lower
        is better), else "degraded"; ``percentage`` is 0.0 when the first mean is 0.

        Beside them: ``periods`` (each period's start and end), and ``operations``, every
        operation of either period with its unit, both ``{mean, count}`` and a ``change`` that
        calls a move within ``tolerance_pct`` percent "unchanged" (None for an operation seen in
        one period only), which ``summary`` counts.
        """
        lo1, hi1 = window(period1)
        lo2, hi2 = window(period2)
        first, second = self._operations((lo1, hi1)), self._operations((lo2, hi2))
        empty: dict[str, Any] = {"count": 0}
        operations: dict[str, Any] = {}
        for name in sorted(set(first) | set(second)):
            before, after = first.get(name, empty), second.get(name, empty)
            operations[name] = {
                "unit": self.monitor.get_unit(name),
                "period1": {"mean": before.get("mean"), "count": before["count"]},
                "period2": {"mean": after.get("mean"), "count": after["count"]},
                "change": _change(before.get("mean"), after.get("mean"), tolerance_pct),
            }
        directions = [op["change"]["direction"] for op in operations.values() if op["change"]]
        return {
            "report_type": "comparison",
            "generated_at": datetime.now(UTC).isoformat(),
            "periods": {
                "period1": {"start": _iso(lo1), "end": _iso(hi1)},
                "period2": {"start": _iso(lo2), "end": _iso(hi2)},
            },
            "period1": {n: {"mean": s["mean"], "count": s["count"]} for n, s in first.items()},
            "period2": {n: {"mean": s["mean"], "count": s["count"]} for n, s in second.items()},
            "changes": {
                name: _plain_change(first[name]["mean"], second[name]["mean"])
                for name in sorted(set(first) & set(second))
            },
            "summary": {d: directions.count(d) for d in ("improved", "degraded", "unchanged")},
            "operations": operations,
        }

    @overload
    def export_report(
        self, report: Mapping[str, Any], format: str = ..., path: None = None
    ) -> str: ...

    @overload
    def export_report(self, report: Mapping[str, Any], format: str, path: Path | str) -> None: ...

    @overload
    def export_report(
        self, report: Mapping[str, Any], format: str = ..., *, path: Path | str
    ) -> None: ...

    def export_report(
        self,
        report: Mapping[str, Any],
        format: str = "json",
        path: Path | str | None = None,
    ) -> str | None:
        """The report as JSON or CSV; written to ``path`` when given.

        The CSV is a set of wide tables, as a spreadsheet opens them. It starts with one row
        per operation (``operation`` then count, min, max, mean, median, std, p50, p90, p95,
        p99 and unit, in the operation's own unit; for a comparison, each period's mean and
        count and the change). Each other section follows as its own table after a blank line
        and a row holding its title: API, API endpoints (``*_ms`` columns), Bottlenecks,
        Resources, Resource alerts, ..., and last Report (report type, dates, summary).
        Numbers have 4 significant digits, never an exponent; counts are whole.

        Returns:
            The text, or None when it was written to ``path``.

        Raises:
            ValueError: an unsupported format (json and csv are, in any case).
            FileNotFoundError: the folder of ``path`` does not exist.
        """
        kind = format.lower() if isinstance(format, str) else format
        if kind not in _FORMATS:
            raise ValueError(f"Unsupported format {format!r}; use one of {', '.join(_FORMATS)}")
        text = json.dumps(report, indent=2, default=str) if kind == "json" else _to_csv(report)
        if path is None:
            return text
        write_text_atomically(text, Path(path))
        return None


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


def _plain_change(before: float, after: float) -> dict[str, Any]:
    """The original module's change: improved when the mean fell, else degraded."""
    absolute = after - before
    return {
        "absolute": absolute,
        "percentage": absolute / abs(before) * 100.0 if before else 0.0,
        "direction": "improved" if absolute < 0 else "degraded",
    }


# -- CSV ----------------------------------------------------------------------------------------

_STAT_COLUMNS = ("count", "min", "max", "mean", "median", "std", "p50", "p90", "p95", "p99", "unit")
_COMPARISON_COLUMNS = (
    "period1_mean",
    "period1_count",
    "period2_mean",
    "period2_count",
    "absolute",
    "percentage",
    "direction",
    "unit",
)
_ENDPOINT_COLUMNS = (
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
)
# Columns a known table always has, in this order, even when it has no rows.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "bottlenecks": (
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
    ),
    "resource_alerts": ("resource", "usage", "threshold", "severity", "message"),
}
_TITLES = {"api": "API", "gpus": "GPUs"}
# The first column of a table made from a mapping of mappings.
_KEY_COLUMNS = {"periods": "period"}
# Sections the first table covers, and the API lists that repeat rows of its endpoint table.
_FIRST_TABLE_SECTIONS = frozenset({"operations", "period1", "period2", "changes"})
_DERIVED_API_LISTS = frozenset({"slowest_endpoints", "highest_error_endpoints"})
# Sections that are a table even when they hold scalars only (a session report's API totals).
_TABLE_SECTIONS = frozenset({"api", "resources"})


class _Table:
    """One wide table: a title row (none for the first table), a header and the rows."""

    def __init__(
        self, title: str | None, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = ()
    ) -> None:
        header = list(columns)
        for row in rows:
            header.extend(k for k in row if k not in header and not _nested(row[k]))
        self.title, self.header = title, header
        self.rows = [[_cell(row.get(column)) for column in header] for row in rows]

    def write(self, writer: Any) -> None:
        if self.title is not None:
            writer.writerow([])
            writer.writerow([self.title])
        writer.writerow(self.header)
        writer.writerows(self.rows)


def _to_csv(report: Mapping[str, Any]) -> str:
    """The report as wide tables (see ``export_report``)."""
    tables = [_comparison_table(report) if "changes" in report else _operations_table(report)]
    about: dict[str, Any] = {}  # the report's own scalars, the last table
    for section, content in report.items():
        if section not in _FIRST_TABLE_SECTIONS:
            tables.extend(_section_tables(section, content, about))
    if about:
        tables.append(_Table("Report", [about]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for table in tables:
        table.write(writer)
    return out.getvalue()


def _operations_table(report: Mapping[str, Any]) -> _Table:
    operations = report.get("operations") or {}
    rows = [{"operation": name, **stats} for name, stats in operations.items()]
    return _Table(None, rows, ("operation", *_STAT_COLUMNS))


def _comparison_table(report: Mapping[str, Any]) -> _Table:
    """One row per operation of either period: both means and counts, and the change."""
    detailed = report.get("operations") or {}
    first, second = report.get("period1") or {}, report.get("period2") or {}
    changes = report.get("changes") or {}
    rows = []
    for name in sorted(set(first) | set(second) | set(detailed)):
        op = detailed.get(name) or {}
        before = op.get("period1") or first.get(name) or {}
        after = op.get("period2") or second.get(name) or {}
        change = op.get("change") if "change" in op else changes.get(name)
        rows.append(
            {
                "operation": name,
                "period1_mean": before.get("mean"),
                "period1_count": before.get("count", 0),
                "period2_mean": after.get("mean"),
                "period2_count": after.get("count", 0),
                **(change or {}),
                "unit": op.get("unit"),
            }
        )
    return _Table(None, rows, ("operation", *_COMPARISON_COLUMNS))


def _section_tables(section: str, content: Any, about: dict[str, Any]) -> list[_Table]:
    """The tables of one report section; its scalars go to ``about`` instead."""
    title = _TITLES.get(section, section.replace("_", " ").capitalize())
    if isinstance(content, list):
        if content and not all(isinstance(item, Mapping) for item in content):
            about[section] = content
            return []
        return [_Table(title, content, _COLUMNS.get(section, ()))]
    if not isinstance(content, Mapping):
        about[section] = content
        return []
    scalars = {k: v for k, v in content.items() if not _nested(v)}
    nested = {k: v for k, v in content.items() if _nested(v)}
    if not nested and section not in _TABLE_SECTIONS:  # period, summary: the report's own
        about.update({f"{section}_{key}": value for key, value in scalars.items()})
        return []
    if not scalars and all(isinstance(v, Mapping) for v in nested.values()):
        key_column = _KEY_COLUMNS.get(section, "name")
        rows = [{key_column: key, **value} for key, value in nested.items()]
        return [_Table(title, rows, (key_column,))]
    tables = [_Table(title, [scalars])] if scalars else []
    for key, value in nested.items():
        inner = f"{title} {_TITLES.get(key, key.replace('_', ' '))}"
        if section == "api" and key == "endpoints":
            rows = [{"endpoint": name, **stats} for name, stats in value.items()]
            tables.append(_Table(inner, rows, ("endpoint", *_ENDPOINT_COLUMNS)))
        elif section == "api" and key in _DERIVED_API_LISTS:
            continue  # the endpoint table has these numbers; the JSON keeps the rankings
        elif isinstance(value, list) and all(isinstance(item, Mapping) for item in value):
            if value:
                tables.append(_Table(inner, value))
        else:
            about[f"{section}_{key}"] = value
    return tables


def _nested(value: Any) -> bool:
    return isinstance(value, Mapping | list)


def _cell(value: Any) -> str:
    """A CSV cell: whole numbers as they are, others to 4 significant digits, no exponent."""
    if value is None:
        return ""
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            return str(number)
        return np.format_float_positional(
            number, precision=4, unique=False, fractional=False, trim="-"
        )
    if isinstance(value, Mapping | list):
        return json.dumps(value, default=str)
    return str(value)
