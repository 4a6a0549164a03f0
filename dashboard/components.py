"""Pieces every page shares: the window in use, the store guard, the empty state."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from ptpd_calibration.monitoring import StoreError, get_store
from ptpd_calibration.monitoring.store import SampleStore

from .readers import has_metrics, invalidate
from .transforms import (
    PRESET_WINDOWS,
    Window,
    column_formats,
    period_end,
    period_label,
    preset_window,
    refresh_seconds,
)

__all__ = [
    "current_window",
    "empty_state",
    "guarded",
    "local_epoch",
    "period_inputs",
    "progress_callback",
    "show_table",
    "sidebar_window",
    "store_in_use",
]

logger = logging.getLogger(__name__)
_WINDOW_KEY = "window_label"
_CUSTOM = "custom"


def store_in_use() -> SampleStore:
    """The store this dashboard reads (the default one, from the settings)."""
    return get_store()


def local_epoch(day: date, at: time) -> float:
    """Epoch seconds of a local date and time of day."""
    return datetime.combine(day, at).astimezone().timestamp()


def period_inputs(
    container: DeltaGenerator, key: str, start: datetime, end: datetime
) -> tuple[float, float]:
    """From and To, each a date and a time of day, defaulting to ``start`` and ``end`` (local);
    returns the period as epoch seconds, in order (the inputs swapped if To is before From).

    The end is exclusive: 00:00 of the next day closes a whole day.
    """
    values = []
    for label, default, part in (("From", start, "from"), ("To", end, "to")):
        day, clock = container.columns(2)
        chosen_day = day.date_input(label, value=default.date(), key=f"{key}_{part}_date")
        chosen_time = clock.time_input(
            f"{label} (time)",
            value=default.time(),
            key=f"{key}_{part}_time",
            label_visibility="hidden",
            step=60,  # any minute, as the CLI takes it
        )
        if not isinstance(chosen_day, date):  # cleared: back to the default
            chosen_day = default.date()
        values.append(local_epoch(chosen_day, chosen_time or default.time()))
    since, until = sorted(values)
    return since, until


def sidebar_window() -> None:
    """The window picker in the sidebar; pages read the choice with ``current_window()``.

    A custom window is a From and a To, each a date and a time (default: today, whole).
    """
    st.sidebar.selectbox(
        "Time window",
        [*PRESET_WINDOWS, _CUSTOM],
        index=1,
        key=_WINDOW_KEY,
        help="What every chart and table covers",
    )
    if st.session_state.get(_WINDOW_KEY) == _CUSTOM:
        midnight = datetime.combine(datetime.now().date(), time())
        period_inputs(st.sidebar, "window", midnight, midnight + timedelta(days=1))


def current_window() -> Window:
    """The window picked in the sidebar (1 h until the sidebar has run)."""
    label = st.session_state.get(_WINDOW_KEY, "1 h")
    if label != _CUSTOM:
        return preset_window(label)
    midnight = datetime.combine(datetime.now().date(), time())
    ends = []
    for part, default in (("from", midnight), ("to", midnight + timedelta(days=1))):
        day = st.session_state.get(f"window_{part}_date") or default.date()
        clock = st.session_state.get(f"window_{part}_time") or default.time()
        ends.append(local_epoch(day, clock))
    since, until = sorted(ends)
    heading = period_label(since, until)
    # A window reaching into the future ends now, rounded like the presets: cache keys move on.
    period = refresh_seconds(until - since)
    until = min(until - 1e-6, period_end(period))  # the end is exclusive
    return Window(heading, since, max(until, since), custom=True)


def show_table(
    frame: pd.DataFrame, container: DeltaGenerator | None = None, **kwargs: Any
) -> DeltaGenerator:
    """``st.dataframe`` with each number column formatted as its header says: durations to two
    decimals in the header's unit, percentages as "6.3 %" (``transforms.column_formats``)."""
    config: dict[str, Any] = {
        column: st.column_config.NumberColumn(format=fmt)
        for column, fmt in column_formats(frame).items()
    }
    config.update(kwargs.pop("column_config", None) or {})
    target = container if container is not None else st
    shown: DeltaGenerator = target.dataframe(frame, column_config=config, **kwargs)
    return shown


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
        "demo week here."
    )
    if st.button("Generate demo data", key=f"{key_prefix}_demo", type="primary"):
        from ptpd_calibration.monitoring.demo import record_demo_week

        bar = st.progress(0, text="Writing a demo week of calibration sessions…")
        summary = record_demo_week(progress=progress_callback(bar, "Writing…"))
        bar.empty()
        invalidate()
        st.success(
            f"Recorded {summary['pipeline_runs']} pipeline runs and {summary['requests']} requests."
        )
        st.rerun()
    return True
