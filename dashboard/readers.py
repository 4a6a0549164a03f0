"""The store, read for the pages: Streamlit-cached readers keyed by store folder and window.

The window's end, rounded up to its refresh period (see ``transforms.preset_window``), is in
every key, so reruns within a period read nothing again. When the pages write to the store
themselves (demo data, a profiled upload), ``invalidate()`` forgets every cached read at once:
the readers here and the reports built from them (``reports.py`` registers its own with
``cleared_by_invalidate``).
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import pandas as pd
import streamlit as st

from ptpd_calibration.monitoring import frames, get_store
from ptpd_calibration.monitoring.api import APIPerformanceTracker
from ptpd_calibration.monitoring.monitor import PerformanceMonitor
from ptpd_calibration.monitoring.store import METRIC, SampleStore

from . import transforms
from .transforms import Window

__all__ = [
    "cached_api_frame",
    "cached_api_tracker",
    "cached_cache_stats",
    "cached_metrics_frame",
    "cached_monitor",
    "cached_profiles",
    "cached_resources",
    "cleared_by_invalidate",
    "has_metrics",
    "invalidate",
    "store_at",
    "window_headline",
]


class _Cached(Protocol):
    """A Streamlit-cached function: what ``invalidate()`` needs of it."""

    def clear(self) -> None: ...


_C = TypeVar("_C", bound=_Cached)
_CACHED: list[_Cached] = []


def cleared_by_invalidate(cached: _C) -> _C:
    """Have ``invalidate()`` clear ``cached`` (a function under ``st.cache_data`` or
    ``st.cache_resource``) with the readers; returns it, so it stacks as a decorator."""
    _CACHED.append(cached)
    return cached


def invalidate() -> None:
    """Forget every cached read of the store, so the next run sees what was just written.

    The stores themselves (``store_at``) stay: they hold no samples, only the connection.
    """
    for cached in _CACHED:
        cached.clear()


# cache_resource, not cache_data: cache_data hands out a pickled copy on every access, which for
# a week of samples costs more than reading them. Pages never mutate what they get.
# A key stands for data that no longer changes, so entries live until evicted (max_entries),
# not for a fixed ttl that would reload a week on every click. The ttl only frees memory of
# windows nobody looks at.
_TTL_S = 3600.0


@st.cache_resource(show_spinner=False)
def store_at(directory: str) -> SampleStore:
    """One SampleStore per folder for the server's lifetime (the default one, in practice)."""
    default = get_store()
    return default if str(default.directory) == directory else SampleStore(directory)


@cleared_by_invalidate
@st.cache_resource(ttl=_TTL_S, max_entries=16, show_spinner=False)
def cached_metrics_frame(directory: str, since: float, until: float) -> pd.DataFrame:
    """Raw metric samples of the window (see frames.metrics_frame)."""
    return frames.metrics_frame(store_at(directory), since, until)


@cleared_by_invalidate
@st.cache_resource(ttl=_TTL_S, max_entries=16, show_spinner=False)
def cached_api_frame(directory: str, since: float, until: float) -> pd.DataFrame:
    """Raw requests of the window (see frames.api_frame)."""
    return frames.api_frame(store_at(directory), since, until)


@cleared_by_invalidate
@st.cache_resource(ttl=_TTL_S, max_entries=16, show_spinner=False)
def cached_resources(directory: str, since: float, until: float) -> pd.DataFrame:
    """Resource samples of the window."""
    return frames.resource_samples(store_at(directory), since, until)


@cleared_by_invalidate
@st.cache_resource(ttl=_TTL_S, max_entries=16, show_spinner=False)
def cached_cache_stats(directory: str, since: float, until: float) -> pd.DataFrame:
    """Cache snapshots of the window."""
    return frames.cache_stats(store_at(directory), since, until)


@cleared_by_invalidate
@st.cache_resource(ttl=_TTL_S, max_entries=16, show_spinner=False)
def cached_profiles(directory: str, since: float, until: float) -> pd.DataFrame:
    """Profiles of the window."""
    return frames.profiles(store_at(directory), since, until)


@cleared_by_invalidate
@st.cache_resource(ttl=_TTL_S, max_entries=8, show_spinner=False)
def cached_monitor(directory: str, since: float, until: float) -> PerformanceMonitor:
    """A read-only monitor over the window (shared by sessions; never mutated)."""
    return store_at(directory).load_monitor(since, until)


@cleared_by_invalidate
@st.cache_resource(ttl=_TTL_S, max_entries=8, show_spinner=False)
def cached_api_tracker(directory: str, since: float, until: float) -> APIPerformanceTracker:
    """A read-only API tracker over the window (shared by sessions; never mutated)."""
    return store_at(directory).load_api_tracker(since, until)


def window_headline(store: SampleStore, window: Window) -> dict[str, Any]:
    """The Overview's numbers for the window (``transforms.headline``), from the cached reads
    the other pages share."""
    directory, since, until = str(store.directory), window.since, window.until
    return transforms.headline(
        cached_monitor(directory, since, until),
        cached_api_tracker(directory, since, until),
        cached_cache_stats(directory, since, until),
        cached_profiles(directory, since, until),
    )


def has_metrics(store: SampleStore) -> bool:
    """Whether the store holds any metric series (the pages' empty state asks this)."""
    return bool(store.directory.exists() and store.series_names(METRIC))
