"""Reports: daily, session and period comparison, previewed and downloadable as JSON and CSV."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from ptpd_calibration.dashboard.components import current_window, empty_state, guarded, store_in_use
from ptpd_calibration.dashboard.data import cached_monitor, session_ids
from ptpd_calibration.dashboard.reports import (
    comparison_report,
    daily_report,
    raw_metrics,
    session_report,
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
                downloads(
                    f"ptpd-compare-{first[0]}-{second[1]}", as_json, as_csv, "reports_compare"
                )
            else:
                st.caption("Pick a start and an end for both periods.")
        with raw:
            window = current_window()
            st.caption(f"Every sample of the last {window.label}, with its metadata.")
            if st.toggle("Prepare the raw export", key="reports_raw_ready"):
                as_json, as_csv = raw_metrics(directory, window.since, window.until)
                downloads("ptpd-metrics", as_json, as_csv, "reports_raw")
