"""Pieces every page shares: the window in use, the store guard, the empty state."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from ptpd_calibration.monitoring import StoreError, get_store
from ptpd_calibration.monitoring._common import day_window
from ptpd_calibration.monitoring.store import SampleStore

from .readers import has_metrics, invalidate
from .transforms import PRESET_WINDOWS, Window, period_end, preset_window, refresh_seconds

__all__ = [
    "current_window",
    "empty_state",
    "guarded",
    "progress_callback",
    "sidebar_window",
    "store_in_use",
]

logger = logging.getLogger(__name__)
_WINDOW_KEY = "window_label"
_CUSTOM = "custom"


def store_in_use() -> SampleStore:
    """The store this dashboard reads (the default one, from the settings)."""
    return get_store()


def sidebar_window() -> None:
    """The window picker in the sidebar; pages read the choice with ``current_window()``."""
    st.sidebar.selectbox(
        "Time window",
        [*PRESET_WINDOWS, _CUSTOM],
        index=1,
        key=_WINDOW_KEY,
        help="What every chart and table covers",
    )
    if st.session_state.get(_WINDOW_KEY) == _CUSTOM:
        today = datetime.now().date()
        st.sidebar.date_input("From", value=today, key="window_from")
        st.sidebar.date_input("To (inclusive)", value=today, key="window_to")


def current_window() -> Window:
    """The window picked in the sidebar (1 h until the sidebar has run)."""
    label = st.session_state.get(_WINDOW_KEY, "1 h")
    if label != _CUSTOM:
        return preset_window(label)
    start = st.session_state.get("window_from") or datetime.now().date()
    end = st.session_state.get("window_to") or start
    if end < start:
        start, end = end, start
    _, since, _ = day_window(start)
    _, _, until = day_window(end)
    # A window reaching into the future ends now, rounded like the presets: cache keys move on.
    period = refresh_seconds(until - since)
    until = min(until, period_end(period))
    return Window(f"{start} to {end}", since, until)


@contextmanager
def guarded(what: str) -> Iterator[None]:
    """Show a failure as a banner with its reason, never as an exception box."""
    try:
        yield
    except StoreError as exc:
        st.error(
            f"The sample store at `{exc.path}` can't be read: {exc.reason}. "
            "Check the folder (`ptpd-monitor doctor` tells more), or point "
            "`PTPD_MONITORING_STORE_DIR` at another one."
        )
    except Exception as exc:  # a page must degrade, not crash
        logger.exception("dashboard: %s failed", what)
        st.error(f"Could not show {what}: {type(exc).__name__}: {exc}")


def progress_callback(bar: DeltaGenerator, text: str) -> Callable[[float], None]:
    """Feed a fraction done (0.0-1.0) to ``st.progress`` as a percentage."""

    def update(fraction: float) -> None:
        bar.progress(int(fraction * 100), text=text)

    return update


def empty_state(store: SampleStore, key_prefix: str) -> bool:
    """When the store has no samples, say how to get some and offer demo data; True if empty."""
    if has_metrics(store):
        return False
    st.info(
        f"No samples in the store at `{store.directory}` yet. Time operations in the calibration "
        "app (`with get_monitor().timer('resize'): ...`), run `ptpd-monitor demo`, or generate a "
        "short demo session here."
    )
    if st.button("Generate demo data", key=f"{key_prefix}_demo", type="primary"):
        from ptpd_calibration.monitoring.demo import record_demo_session

        bar = st.progress(0, text="Recording a demo calibration session…")
        summary = record_demo_session(seconds=4.0, progress=progress_callback(bar, "Recording…"))
        invalidate()
        st.success(
            f"Recorded {summary['pipeline_runs']} pipeline runs and {summary['requests']} requests."
        )
        st.rerun()
    return True
