"""Reports: daily, session and period comparison, previewed and downloadable as JSON, CSV and
HTML (one page with the charts, which opens offline)."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta

import streamlit as st

from ptpd_calibration.dashboard.components import (
    current_window,
    empty_state,
    guarded,
    period_inputs,
    show_table,
    store_in_use,
)
from ptpd_calibration.dashboard.html_report import build_html_report
from ptpd_calibration.dashboard.readers import cached_monitor, store_at
from ptpd_calibration.dashboard.reports import (
    comparison_report,
    daily_report,
    days_with_data,
    raw_metrics,
    session_report,
)
from ptpd_calibration.dashboard.transforms import (
    comparison_tables,
    period_label,
    session_ids,
    statistics_tables,
)


def downloads(stem: str, json_bytes: bytes, csv_bytes: bytes, key: str) -> None:
    """Two download buttons for one report."""
    left, right = st.columns(2)
    left.download_button(
        "Download JSON",
        json_bytes,
        file_name=f"{stem}.json",
        mime="application/json",
        key=f"{key}_json",
    )
    right.download_button(
        "Download CSV", csv_bytes, file_name=f"{stem}.csv", mime="text/csv", key=f"{key}_csv"
    )


@st.cache_data(ttl=600, max_entries=4, show_spinner="Building the HTML report…")
def html_bytes(directory: str, json_bytes: bytes) -> bytes:
    """The HTML report of a report built above, from its JSON: the same numbers, with the
    charts read from the store. Keyed by the JSON, so a rebuilt report gets a new page."""
    return build_html_report(json.loads(json_bytes), store_at(directory)).encode()


def html_download(directory: str, stem: str, json_bytes: bytes, key: str) -> None:
    """The HTML download, built only when asked for (about 5 MB: plotly is inside)."""
    if st.toggle(
        "Prepare the HTML report",
        key=f"{key}_html_ready",
        help="One page with the charts and tables, which opens offline in any browser",
    ):
        st.download_button(
            "Download HTML",
            html_bytes(directory, json_bytes),
            file_name=f"{stem}.html",
            mime="text/html",
            key=f"{key}_html",
        )


def operations_table(report: dict[str, object]) -> None:
    """The per-operation part of a report: a table per unit, the unit in every header
    (timings in ms, or s above 10 s)."""
    operations = report.get("operations") or {}
    assert isinstance(operations, dict)
    if not operations:
        st.caption("No samples in this report.")
    for title, table in statistics_tables(operations):
        st.markdown(f"**{title}**")
        show_table(table, width="stretch")


def compare_defaults(directory: str) -> tuple[date, date]:
    """The days the Compare tab opens on: the two most recent with samples (older first);
    with only one, the day before it and that day; with none, yesterday and today."""
    today = date.today()
    found = days_with_data(directory, today)
    newest = found[0] if found else today
    older = found[1] if len(found) > 1 else newest - timedelta(days=1)
    return older, newest


def whole_day(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time())
    return start, start + timedelta(days=1)


st.title("Reports")
store = store_in_use()
directory = str(store.directory)
with guarded("the reports"):
    if not empty_state(store, "reports"):
        daily, session, compare, raw = st.tabs(
            ["Daily", "Session", "Compare periods", "Raw metrics"]
        )
        with daily:
            day = st.date_input("Day", value=date.today(), key="reports_day")
            report, as_json, as_csv = daily_report(directory, day)
            operations_table(report)
            downloads(f"ptpd-daily-{day}", as_json, as_csv, "reports_daily")
            html_download(directory, f"ptpd-daily-{day}", as_json, "reports_daily")
        with session:
            window = current_window()
            sessions = session_ids(cached_monitor(directory, window.since, window.until))
            if not sessions:
                st.caption(f"No samples tagged with a session_id {window.within}.")
            else:
                chosen = st.selectbox("Session", sessions, key="reports_session")
                report, as_json, as_csv = session_report(
                    directory, chosen, window.since, window.until
                )
                operations_table(report)
                downloads(f"ptpd-session-{chosen}", as_json, as_csv, "reports_session")
                html_download(directory, f"ptpd-session-{chosen}", as_json, "reports_session")
        with compare:
            older, newer = compare_defaults(directory)
            left, right = st.columns(2)
            left.markdown("**First period**")
            first = period_inputs(left, "reports_first", *whole_day(older))
            left.caption(period_label(*first))
            right.markdown("**Second period**")
            second = period_inputs(right, "reports_second", *whole_day(newer))
            right.caption(period_label(*second))
            # The ends are exclusive: 00:00 of the next day closes a whole day.
            first = (first[0], max(first[0], first[1] - 1e-6))
            second = (second[0], max(second[0], second[1] - 1e-6))
            report, as_json, as_csv = comparison_report(directory, first, second)
            tables = comparison_tables(report)
            for title, table in tables:
                st.markdown(f"**{title}**")
                show_table(table, hide_index=True, width="stretch")
            if not tables:
                st.caption("Neither period has samples.")
            stem = (
                f"ptpd-compare-{datetime.fromtimestamp(first[0]):%Y-%m-%dT%H%M}"
                f"-{datetime.fromtimestamp(second[0]):%Y-%m-%dT%H%M}"
            )
            downloads(stem, as_json, as_csv, "reports_compare")
            html_download(directory, stem, as_json, "reports_compare")
        with raw:
            window = current_window()
            st.caption(f"Every sample {window.within}, with its metadata.")
            if st.toggle("Prepare the raw export", key="reports_raw_ready"):
                as_json, as_csv = raw_metrics(directory, window.since, window.until)
                downloads("ptpd-metrics", as_json, as_csv, "reports_raw")
