"""API: endpoints with their request counts, error rates and latency percentiles."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ptpd_calibration.dashboard import charts
from ptpd_calibration.dashboard.components import current_window, empty_state, guarded, store_in_use
from ptpd_calibration.dashboard.readers import cached_api_frame, cached_api_tracker
from ptpd_calibration.dashboard.transforms import api_buckets, bucket_seconds

st.title("API")
store = store_in_use()
window = current_window()
with guarded("the API page"):
    if not empty_state(store, "api"):
        directory = str(store.directory)
        report = cached_api_tracker(directory, window.since, window.until).generate_api_report()
        if not report["total_requests"]:
            st.info(
                f"No requests in the last {window.label}. Wrap the app with "
                "`MonitoringMiddleware` or use `get_api_tracker().track(...)`."
            )
        else:
            a, b, c = st.columns(3)
            a.metric("Requests", f"{report['total_requests']:,}")
            b.metric("Error rate", f"{report['overall_error_rate']:.1%}")
            c.metric("p95", f"{report['overall_p95_ms']:.1f} ms")
            table = pd.DataFrame(
                [
                    {
                        "endpoint": name,
                        "requests": s["count"],
                        "errors": s["error_count"],
                        "error rate": s["error_rate"],
                        "p50 ms": s["p50_ms"],
                        "p95 ms": s["p95_ms"],
                        "p99 ms": s["p99_ms"],
                    }
                    for name, s in report["endpoints"].items()
                ]
            ).sort_values("requests", ascending=False)
            st.dataframe(
                table,
                hide_index=True,
                width="stretch",
                column_config={"error rate": st.column_config.NumberColumn(format="percent")},
            )
            left, right = st.columns(2)
            left.subheader("Slowest (p95)")
            left.dataframe(pd.DataFrame(report["slowest_endpoints"]), hide_index=True)
            right.subheader("Most failing")
            failing = pd.DataFrame(report["highest_error_endpoints"])
            if failing.empty:
                right.caption("No errors.")
            else:
                right.dataframe(failing, hide_index=True)
            buckets = api_buckets(
                cached_api_frame(directory, window.since, window.until),
                bucket_seconds(window.seconds),
            )
            st.plotly_chart(
                charts.rate_lines(
                    buckets, "bucket", "p95_ms", "endpoint", "p95 latency over time", "ms"
                ),
                key="api_latency",
            )
            st.plotly_chart(
                charts.rate_lines(
                    buckets.assign(error_pct=buckets["error_rate"] * 100),
                    "bucket",
                    "error_pct",
                    "endpoint",
                    "Error rate over time",
                    "%",
                ),
                key="api_errors",
            )
