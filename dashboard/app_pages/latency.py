"""Latency: exact percentiles over time, the distribution and the statistics of each operation."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ptpd_calibration.dashboard import charts
from ptpd_calibration.dashboard.components import current_window, empty_state, guarded, store_in_use
from ptpd_calibration.dashboard.readers import cached_metrics_frame, cached_monitor
from ptpd_calibration.dashboard.transforms import bucket_seconds, percentile_buckets
from ptpd_calibration.monitoring.profiler import operation_of

st.title("Latency")
store = store_in_use()
window = current_window()
with guarded("latency"):
    if not empty_state(store, "latency"):
        directory = str(store.directory)
        monitor = cached_monitor(directory, window.since, window.until)
        # Timings in seconds, without a profile's CPU-time companions (see profiler.py).
        timed = [n for n in monitor.get_operation_names() if operation_of(monitor, n) is not None]
        if not timed:
            st.info(f"No timed operations in the last {window.label}; widen the window.")
        else:
            stats = {n: monitor.get_statistics(n) for n in timed}
            total_time = {n: stats[n]["mean"] * stats[n]["count"] for n in timed}
            default = sorted(timed, key=total_time.__getitem__, reverse=True)[:3]
            chosen = st.multiselect("Operations", timed, default=default, key="latency_ops")
            if chosen:
                samples = cached_metrics_frame(directory, window.since, window.until)
                samples = samples[samples["operation"].isin(chosen)]
                # Buckets follow the data's span, so a short session is not a single dot.
                span = (samples["timestamp"].max() - samples["timestamp"].min()).total_seconds()
                width = bucket_seconds(min(window.seconds, max(span, 1.0)))
                st.caption(f"{len(samples):,} samples, {width} s buckets, exact percentiles.")
                st.plotly_chart(
                    charts.percentile_lines(percentile_buckets(samples, width)), key="latency_lines"
                )
                st.plotly_chart(
                    charts.distribution(samples.assign(ms=samples["value"] * 1000), "ms"),
                    key="latency_hist",
                )
                table = pd.DataFrame([{"operation": n, **stats[n]} for n in chosen]).set_index(
                    "operation"
                )
                st.subheader("Statistics (seconds)")
                st.dataframe(table, width="stretch")
