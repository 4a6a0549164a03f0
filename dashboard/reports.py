"""Report bytes for the Reports page, built once per choice and cached."""

from __future__ import annotations

from datetime import date, timedelta

import streamlit as st

from ptpd_calibration.monitoring._common import day_window
from ptpd_calibration.monitoring.report import PerformanceReport
from ptpd_calibration.monitoring.store import METRIC

from .readers import cleared_by_invalidate, store_at

__all__ = ["comparison_report", "daily_report", "days_with_data", "raw_metrics", "session_report"]


def _reporter(directory: str, since: float, until: float) -> PerformanceReport:
    """A reporter over the window a report covers: reading more would only cost time."""
    store = store_at(directory)
    return PerformanceReport(store.load_monitor(since, until), store.load_api_tracker(since, until))


def _both(
    reporter: PerformanceReport, report: dict[str, object]
) -> tuple[dict[str, object], bytes, bytes]:
    return (
        report,
        reporter.export_report(report, "json").encode(),
        reporter.export_report(report, "csv").encode(),
    )


@cleared_by_invalidate
@st.cache_data(ttl=60, max_entries=16, show_spinner="Building the report…")
def daily_report(directory: str, day: date) -> tuple[dict[str, object], bytes, bytes]:
    """The daily report and its JSON and CSV bytes."""
    _, since, until = day_window(day)
    reporter = _reporter(directory, since, until)
    return _both(reporter, reporter.generate_daily_report(day))


@cleared_by_invalidate
@st.cache_data(ttl=60, max_entries=16, show_spinner="Building the report…")
def session_report(
    directory: str, session_id: str, since: float, until: float
) -> tuple[dict[str, object], bytes, bytes]:
    """The report of a session seen in the window, and its JSON and CSV bytes."""
    reporter = _reporter(directory, since, until)
    return _both(reporter, reporter.generate_session_report(session_id))


@cleared_by_invalidate
@st.cache_data(ttl=60, max_entries=16, show_spinner="Building the report…")
def comparison_report(
    directory: str, first: tuple[float, float], second: tuple[float, float]
) -> tuple[dict[str, object], bytes, bytes]:
    """The comparison of two periods (epoch seconds, any times) and its JSON and CSV bytes."""
    reporter = _reporter(directory, min(first[0], second[0]), max(first[1], second[1]))
    return _both(reporter, reporter.compare_performance(first, second))


@cleared_by_invalidate
@st.cache_data(ttl=60, max_entries=4, show_spinner=False)
def days_with_data(directory: str, newest: date, wanted: int = 2, horizon: int = 60) -> list[date]:
    """The ``wanted`` most recent local days up to ``newest`` with a metric sample, newest
    first, looking back ``horizon`` days at most.

    Each day is probed series by series, stopping at the first sample: a day with data costs
    one series' day, an empty one an indexed probe per series.
    """
    store = store_at(directory)
    names = store.series_names(METRIC) if store.directory.exists() else []
    found: list[date] = []
    for back in range(horizon):
        day = newest - timedelta(days=back)
        _, since, until = day_window(day)
        if any(store.read_columns(METRIC, name, since, until).size for name in names):
            found.append(day)
            if len(found) == wanted:
                break
    return found


@cleared_by_invalidate
@st.cache_data(ttl=60, max_entries=8, show_spinner="Exporting…")
def raw_metrics(directory: str, since: float, until: float) -> tuple[bytes, bytes]:
    """Every raw metric sample of the window as JSON and CSV bytes."""
    monitor = store_at(directory).load_monitor(since, until)
    return monitor.export_metrics("json").encode(), monitor.export_metrics("csv").encode()
