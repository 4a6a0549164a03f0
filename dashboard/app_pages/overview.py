"""Overview: live gauges, recent sparklines, alerts and the window's headline numbers."""

from __future__ import annotations

import contextlib

import streamlit as st

from ptpd_calibration.dashboard import charts
from ptpd_calibration.dashboard.components import (
    current_window,
    empty_state,
    guarded,
    show_table,
    store_in_use,
)
from ptpd_calibration.dashboard.readers import cached_resources, window_headline
from ptpd_calibration.dashboard.transforms import (
    REFRESH_S,
    alert_history,
    alert_table,
    period_end,
    recent_usage,
    resource_buckets,
    time_grid,
)
from ptpd_calibration.dashboard.watch_view import show_watches
from ptpd_calibration.monitoring import StoreError, get_resource_monitor
from ptpd_calibration.monitoring.resources import MIN_ALERT_DURATION_S

_SPARK_S = 10 * 60
_FEW_SAMPLES = 30
_STORE_PERIOD_S = 30.0


@st.fragment(run_every=REFRESH_S)
def live_panel() -> None:
    """Gauges and alerts of this machine, rerun every few seconds without reloading the page."""
    with guarded("the live resource gauges"):
        _gauges_and_alerts()


def _gauges_and_alerts() -> None:
    monitor = get_resource_monitor()
    usage = monitor.check_resources()
    gauges: list[tuple[str, float | None, float]] = [
        ("CPU", usage.cpu_percent, monitor.cpu_threshold),
        ("Memory", usage.memory_percent, monitor.memory_threshold),
        ("Disk", usage.disk_percent, monitor.disk_threshold),
    ]
    for gpu in usage.gpus:
        gauges.append((f"GPU {gpu.index}", gpu.utilization_percent, monitor.cpu_threshold))
        gauges.append((f"GPU {gpu.index} memory", gpu.memory_percent, monitor.memory_threshold))
    for column, (title, value, threshold) in zip(st.columns(len(gauges)), gauges, strict=True):
        column.plotly_chart(charts.gauge(title, value, threshold), key=f"overview_gauge_{title}")
    if not usage.gpus:
        st.caption("No NVIDIA GPU detected.")
    alerts = monitor.get_alerts_for_high_usage(usage)
    for alert in alerts:
        show = st.error if alert["severity"] == "critical" else st.warning
        show(alert["message"])
    if not alerts:
        st.caption("No resource above its threshold.")
    with guarded("the watches"):
        show_watches()  # judged once a minute per server (watch_view), read here
    # This server's own sampler keeps the last minutes in memory: no store read every refresh.
    # Just after start it holds a few seconds; then the store has the minutes before (read at
    # most every _STORE_PERIOD_S, so the 2 s refresh stays cheap).
    recent = recent_usage(monitor.get_history(), _SPARK_S)
    with guarded("the recent resource lines"):
        if len(recent) < _FEW_SAMPLES:
            until = period_end(_STORE_PERIOD_S)
            with contextlib.suppress(StoreError):  # the page's own section shows that banner
                stored = cached_resources(
                    str(store_in_use().directory), until - _SPARK_S - _STORE_PERIOD_S, until
                )
                if len(stored) > len(recent):
                    recent = stored
        grid = time_grid(recent["timestamp"]) if not recent.empty else None
        if grid is not None:
            buckets = resource_buckets(recent, grid)
            lines = st.columns(3)
            for column, (field, title) in zip(
                lines,
                [
                    ("cpu_percent", "CPU %"),
                    ("memory_percent", "Memory %"),
                    ("disk_percent", "Disk %"),
                ],
                strict=True,
            ):
                if field in buckets:
                    column.plotly_chart(
                        charts.sparkline(
                            buckets, field, f"{title}, last 10 min", grid=grid, x="bucket"
                        ),
                        key=f"overview_spark_{field}",
                    )


st.title("Overview")
live_panel()

store = store_in_use()
window = current_window()
with guarded("the overview"):
    if not empty_state(store, "overview"):
        numbers = window_headline(store, window)
        st.subheader(window.heading)
        a, b, c, d, e = st.columns(5)
        a.metric("Operations timed", f"{numbers['operations_timed']:,}")
        b.metric("API requests", f"{numbers['requests']:,}")
        rate = numbers["error_rate"]
        c.metric("Error rate", "–" if rate is None else f"{100 * rate:.1f} %")
        hit = numbers["cache_hit_rate"]
        d.metric("Cache hit rate", "–" if hit is None else f"{100 * hit:.1f} %")
        e.metric("Image operations profiled", f"{numbers['images_profiled']:,}")

    monitor = get_resource_monitor()
    st.subheader("Alert history")
    history = alert_history(
        cached_resources(str(store.directory), window.since, window.until),
        {
            "cpu": monitor.cpu_threshold,
            "memory": monitor.memory_threshold,
            "disk": monitor.disk_threshold,
        },
    )
    if history.empty:
        st.caption(f"No threshold crossing of {MIN_ALERT_DURATION_S:g} s or more in this window.")
    else:
        show_table(
            alert_table(history),
            hide_index=True,
            width="stretch",
            column_config={
                "start": st.column_config.DatetimeColumn(format="D MMM YYYY, HH:mm:ss"),
                "end": st.column_config.DatetimeColumn(format="D MMM YYYY, HH:mm:ss"),
            },
        )
