"""The ptpd-monitor dashboard: ``streamlit run dashboard/app.py`` or ``ptpd-monitor dashboard``."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ptpd_calibration.dashboard.components import guarded, sidebar_window, store_in_use
from ptpd_calibration.monitoring import (
    ResourceMonitor,
    SettingsError,
    get_resource_monitor,
    get_settings,
)

_PAGES = Path(__file__).parent / "app_pages"


@st.cache_resource(show_spinner=False)
def machine_sampler() -> ResourceMonitor:
    """One resource sampler per server (not per browser tab), writing this machine to the store."""
    monitor = get_resource_monitor()
    monitor.start_sampling()
    return monitor


def run() -> None:
    """Build the navigation and the sidebar, then run the chosen page."""
    st.set_page_config(page_title="ptpd-monitor", page_icon=":material/monitoring:", layout="wide")
    try:
        get_settings()
    except SettingsError as exc:  # nothing works without settings: say which one, and stop
        st.error(f"The monitoring settings are invalid. {exc}")
        st.stop()
    with guarded("this machine's resource sampler"):
        machine_sampler()
    pages = [
        st.Page(
            _PAGES / "overview.py",
            title="Overview",
            icon=":material/speed:",
            url_path="overview",
            default=True,
        ),
        st.Page(
            _PAGES / "latency.py", title="Latency", icon=":material/timer:", url_path="latency"
        ),
        st.Page(
            _PAGES / "profiling.py",
            title="Image profiling",
            icon=":material/image:",
            url_path="profiling",
        ),
        st.Page(_PAGES / "api.py", title="API", icon=":material/api:", url_path="api"),
        st.Page(_PAGES / "cache.py", title="Cache", icon=":material/cached:", url_path="cache"),
        st.Page(
            _PAGES / "reports.py",
            title="Reports",
            icon=":material/description:",
            url_path="reports",
        ),
    ]
    navigation = st.navigation(pages)
    st.sidebar.caption("Platinum/palladium print-calibration monitor")
    sidebar_window()
    store = store_in_use()
    st.sidebar.caption(f"Store: `{store.directory}`")
    if not get_settings().STORE_ENABLED:
        st.sidebar.warning(
            "PTPD_MONITORING_STORE_ENABLED is off: the app's processes don't publish."
        )
    navigation.run()


run()
