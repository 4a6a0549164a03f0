"""Latency: exact percentiles over time, the distribution and the statistics of each operation."""

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
from ptpd_calibration.dashboard.readers import cached_metrics_frame, cached_monitor
from ptpd_calibration.dashboard.transforms import (
    duration_unit,
    percentile_buckets,
    statistics_tables,
    time_grid,
)
from ptpd_calibration.dashboard.watch_view import add_watch_bands, watch_results
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
            st.info(f"No timed operations {window.within}; widen the window.")
        else:
            stats = {n: monitor.get_statistics(n) for n in timed}
            total_time = {n: stats[n]["mean"] * stats[n]["count"] for n in timed}
            default = sorted(timed, key=total_time.__getitem__, reverse=True)[:3]
            left, right = st.columns([3, 2])
            chosen = left.multiselect("Operations", timed, default=default, key="latency_ops")
            shown = right.pills(
                "Percentiles",
                list(charts.PERCENTILE_COLUMNS),
                selection_mode="multi",
                default=list(charts.PERCENTILE_COLUMNS),
                key="latency_percentiles",
                help="p50 solid, p90 dotted, p95 dashed, p99 dash-dotted",
            )
            if chosen:
                samples = cached_metrics_frame(directory, window.since, window.until)
                samples = samples[samples["operation"].isin(chosen)]
                # One unit for the chart and the table: ms, or s when a p99 is above 10 s.
                unit, factor = duration_unit(max(stats[n]["p99"] for n in chosen) * 1000)
                grid = time_grid(
                    samples["timestamp"], window.since, window.until, keys=samples["operation"]
                )
                st.caption(f"{len(samples):,} samples, exact percentiles per bucket.")
                if grid is not None:
                    lines = charts.percentile_lines(
                        percentile_buckets(samples, grid),
                        unit,
                        grid=grid,
                        percentiles=shown or charts.PERCENTILE_COLUMNS,
                    )
                    add_watch_bands(lines, watch_results(), chosen, unit)  # the chart's unit
                    st.plotly_chart(lines, key="latency_lines")
                    st.plotly_chart(
                        charts.distribution(
                            samples.assign(shown=samples["value"] * 1000 * factor), "shown", unit
                        ),
                        key="latency_hist",
                    )
                for title, table in statistics_tables({n: stats[n] for n in chosen}):
                    st.subheader(title.replace("Timings", "Statistics"))  # "Statistics (ms)"
                    show_table(table, width="stretch")
