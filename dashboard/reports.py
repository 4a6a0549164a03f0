"""Report bytes for the Reports page, built once per choice and cached."""

from __future__ import annotations

from datetime import date

import streamlit as st

from ptpd_calibration.monitoring._common import day_window
from ptpd_calibration.monitoring.report import PerformanceReport

from .readers import cleared_by_invalidate, store_at

__all__ = ["comparison_report", "daily_report", "raw_metrics", "session_report"]


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


def _day_bounds(start: date, end: date) -> tuple[float, float]:
    """From the first local day's start to the last one's end."""
    return day_window(start)[1], day_window(end)[2]


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
    directory: str, first: tuple[date, date], second: tuple[date, date]
) -> tuple[dict[str, object], bytes, bytes]:
    """The comparison of two day ranges and its JSON and CSV bytes."""
    periods = _day_bounds(*first), _day_bounds(*second)
    reporter = _reporter(directory, min(p[0] for p in periods), max(p[1] for p in periods))
    return _both(reporter, reporter.compare_performance(*periods))


@cleared_by_invalidate
@st.cache_data(ttl=60, max_entries=8, show_spinner="Exporting…")
def raw_metrics(directory: str, since: float, until: float) -> tuple[bytes, bytes]:
    """Every raw metric sample of the window as JSON and CSV bytes."""
    monitor = store_at(directory).load_monitor(since, until)
    return monitor.export_metrics("json").encode(), monitor.export_metrics("csv").encode()
