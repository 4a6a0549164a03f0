"""API: endpoints with their request counts, error rates and latency percentiles."""

from __future__ import annotations

import streamlit as st

from ptpd_calibration.dashboard import charts
from ptpd_calibration.dashboard.components import (
    current_window,
    empty_state,
    guarded,
    show_table,
    store_in_use,
)
from ptpd_calibration.dashboard.readers import cached_api_frame, cached_api_tracker
from ptpd_calibration.dashboard.transforms import api_buckets, api_tables, time_grid
from ptpd_calibration.dashboard.watch_view import add_watch_bands, watch_results

st.title("API")
store = store_in_use()
window = current_window()
with guarded("the API page"):
    if not empty_state(store, "api"):
        directory = str(store.directory)
        report = cached_api_tracker(directory, window.since, window.until).generate_api_report()
        if not report["total_requests"]:
            st.info(
                f"No requests {window.within}. Wrap the app with "
                "`MonitoringMiddleware` or use `get_api_tracker().track(...)`."
            )
        else:
            unit, table, slowest, failing = api_tables(report)
            factor = 0.001 if unit == "s" else 1.0
            a, b, c = st.columns(3)
            a.metric("Requests", f"{report['total_requests']:,}")
            b.metric("Error rate", f"{100 * report['overall_error_rate']:.1f} %")
            c.metric("p95", f"{report['overall_p95_ms'] * factor:,.1f} {unit}")
            show_table(table, hide_index=True, width="stretch")
            left, right = st.columns(2)
            left.subheader(f"Slowest (p95, {unit})")
            show_table(slowest, left, hide_index=True)
            right.subheader("Most failing")
            if failing.empty:
                right.caption("No errors.")
            else:
                show_table(failing, right, hide_index=True)
            requests = cached_api_frame(directory, window.since, window.until)
            grid = time_grid(
                requests["timestamp"], window.since, window.until, keys=requests["endpoint"]
            )
            if grid is not None:
                buckets = api_buckets(requests, grid)
                latency = charts.rate_lines(
                    buckets.assign(p95_shown=buckets["p95_ms"] * factor),
                    "bucket",
                    "p95_shown",
                    "endpoint",
                    "p95 latency over time",
                    unit,
                    grid=grid,
                )
                add_watch_bands(latency, watch_results(), list(report["endpoints"]), unit)
                st.plotly_chart(latency, key="api_latency")
                errors = charts.rate_lines(
                    buckets.assign(error_pct=buckets["error_rate"] * 100),
                    "bucket",
                    "error_pct",
                    "endpoint",
                    "Error rate over time",
                    "%",
                    grid=grid,
                )
                st.plotly_chart(errors, key="api_errors")
