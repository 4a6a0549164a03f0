"""The ptpd-monitor dashboard: ``streamlit run dashboard/app.py`` or ``ptpd-monitor dashboard``."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import streamlit as st
from PIL import Image, ImageDraw
from streamlit.navigation.page import StreamlitPage
from streamlit.runtime.scriptrunner import get_script_run_ctx

from ptpd_calibration.dashboard.components import guarded, sidebar_window, store_in_use
from ptpd_calibration.dashboard.watch_view import watch_evaluator
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


@cache
def favicon() -> Image.Image:
    """The tab's icon, drawn here: a material icon as favicon is fetched from Google's font
    server, which the darkroom machine may not reach (the pages' icons are bundled fonts)."""
    size = 64
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, size - 1, size - 1), radius=12, fill="#7a5c3e")
    # a step tablet: the darkroom's calibration target, light to dark
    for step, shade in enumerate((245, 205, 160, 115, 70)):
        x0 = 8 + step * 10
        draw.rectangle((x0, 34, x0 + 9, 54), fill=(shade, shade, shade, 255))
    draw.line([(8, 28), (20, 24), (30, 17), (42, 14), (56, 9)], fill="#fbfaf7", width=4)
    return image


def land_unknown_paths_on_the_default(pages: Sequence[StreamlitPage]) -> None:
    """Have a URL path that names no page (``/overview``, an old bookmark) run the default
    page, the Overview, without Streamlit's "Page not found" dialog.

    Streamlit (1.67) shows that dialog, then runs the default page, for any path but the
    pages' ``url_path``s, and the default page's is "" whatever ``url_path`` says. Forgetting
    the unknown name before ``st.navigation`` resolves it leaves only the default. Through
    Streamlit's internals (guarded: without them, the dialog comes back and nothing breaks);
    tests/e2e/test_browser.py opens /overview and an unknown path to check.
    """
    manager = getattr(get_script_run_ctx(), "pages_manager", None)
    name = getattr(manager, "intended_page_name", None)
    if not name or getattr(manager, "intended_page_script_hash", None):
        return  # the root, or a page picked in the sidebar (an unknown one falls back quietly)
    if name in {page.url_path for page in pages if page.url_path}:
        return
    setter = getattr(manager, "set_script_intent", None)
    if callable(setter):
        setter("", "")


def run() -> None:
    """Build the navigation and the sidebar, then run the chosen page."""
    st.set_page_config(page_title="ptpd-monitor", page_icon=favicon(), layout="wide")
    try:
        get_settings()
    except SettingsError as exc:  # nothing works without settings: say which one, and stop
        st.error(f"The monitoring settings are invalid. {exc}")
        st.stop()
    with guarded("this machine's resource sampler"):
        machine_sampler()
    with guarded("the watches"):
        watch_evaluator(str(store_in_use().directory))  # judged once a minute from the start
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
    land_unknown_paths_on_the_default(pages)
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
