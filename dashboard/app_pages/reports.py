"""Reports: daily, session and period comparison, previewed and downloadable as JSON, CSV and
HTML (one page with the charts, which opens offline)."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pandas as pd
import streamlit as st

from ptpd_calibration.dashboard.components import current_window, empty_state, guarded, store_in_use
from ptpd_calibration.dashboard.html_report import build_html_report
from ptpd_calibration.dashboard.readers import cached_monitor, store_at
from ptpd_calibration.dashboard.reports import (
    comparison_report,
    daily_report,
    raw_metrics,
    session_report,
)
from ptpd_calibration.dashboard.transforms import session_ids


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
    """The per-operation part of a report as a table."""
    operations = report.get("operations") or {}
    assert isinstance(operations, dict)
    if operations:
        st.dataframe(pd.DataFrame(operations).T, width="stretch")
    else:
        st.caption("No samples in this report.")


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
                st.caption(f"No samples tagged with a session_id in the last {window.label}.")
            else:
                chosen = st.selectbox("Session", sessions, key="reports_session")
                report, as_json, as_csv = session_report(
                    directory, chosen, window.since, window.until
                )
                operations_table(report)
                downloads(f"ptpd-session-{chosen}", as_json, as_csv, "reports_session")
                html_download(directory, f"ptpd-session-{chosen}", as_json, "reports_session")
        with compare:
            today = date.today()
            left, right = st.columns(2)
            first = left.date_input(
                "First period", value=(today - timedelta(days=1),) * 2, key="reports_first"
            )
            second = right.date_input("Second period", value=(today, today), key="reports_second")
            if len(first) == 2 and len(second) == 2:
                report, as_json, as_csv = comparison_report(
                    directory, (first[0], first[1]), (second[0], second[1])
                )
                compared = report["operations"]
                assert isinstance(compared, dict)
                rows = [
                    {
                        "operation": name,
                        "first mean": op["period1"]["mean"],
                        "second mean": op["period2"]["mean"],
                        "change %": (op["change"] or {}).get("percentage"),
                        "direction": (op["change"] or {}).get("direction", "–"),
                    }
                    for name, op in compared.items()
                ]
                if rows:
                    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
                else:
                    st.caption("Neither period has samples.")
                stem = f"ptpd-compare-{first[0]}-{second[1]}"
                downloads(stem, as_json, as_csv, "reports_compare")
                html_download(directory, stem, as_json, "reports_compare")
            else:
                st.caption("Pick a start and an end for both periods.")
        with raw:
            window = current_window()
            st.caption(f"Every sample of the last {window.label}, with its metadata.")
            if st.toggle("Prepare the raw export", key="reports_raw_ready"):
                as_json, as_csv = raw_metrics(directory, window.since, window.until)
                downloads("ptpd-metrics", as_json, as_csv, "reports_raw")
