"""Performance monitoring for the platinum/palladium print-calibration app.

>>> from ptpd_calibration.monitoring import get_monitor
>>> with get_monitor().timer("my_operation"):  # doctest: +SKIP
...     expensive_operation()

The ``get_*()`` instances are built once per process from the settings and publish what they
record to the default sample store, where the dashboard, the reports and the exporter read every
process's samples. Classes built directly keep their data in memory unless given a store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from ._flusher import FLUSHER
from .api import APIPerformanceTracker
from .asgi import MonitoringMiddleware
from .cache import CacheManager
from .decorators import profiled, timed
from .models import APIMetric, CacheStats, GPUUsage, PerformanceMetric, ResourceUsage
from .monitor import PerformanceMonitor
from .profiler import ImageProcessingProfiler
from .report import PerformanceReport
from .resources import ResourceMonitor
from .settings import MonitoringSettings, SettingsError, get_settings
from .store import SampleStore, StoreError
from .watches import Watch, WatchError, WatchResult, watch_history
from .watches import evaluate as evaluate_watches

__all__ = [
    "APIMetric",
    "APIPerformanceTracker",
    "CacheManager",
    "CacheStats",
    "GPUUsage",
    "ImageProcessingProfiler",
    "MonitoringMiddleware",
    "MonitoringSettings",
    "PerformanceMetric",
    "PerformanceMonitor",
    "PerformanceReport",
    "ResourceMonitor",
    "ResourceUsage",
    "SampleStore",
    "SettingsError",
    "StoreError",
    "Watch",
    "WatchError",
    "WatchResult",
    "evaluate_watches",
    "flush",
    "get_api_tracker",
    "get_cache",
    "get_monitor",
    "get_profiler",
    "get_resource_monitor",
    "get_settings",
    "get_store",
    "profiled",
    "timed",
    "watch_history",
]

_T = TypeVar("_T")
_lock = threading.RLock()
_instances: dict[str, object] = {}


def _once(name: str, build: Callable[[], _T]) -> _T:
    """Build the process-wide instance ``name`` on first use, exactly once across threads."""
    instance = _instances.get(name)
    if instance is None:
        with _lock:
            instance = _instances.get(name)
            if instance is None:
                instance = build()
                _instances[name] = instance
    return instance  # type: ignore[return-value]


def get_store() -> SampleStore:
    """The default sample store (``PTPD_MONITORING_STORE_DIR``), shared by every process."""
    settings = get_settings()
    return _once(
        "store",
        lambda: SampleStore(
            settings.STORE_DIR,
            size_limit_mb=settings.STORE_SIZE_LIMIT_MB,
            retention_days=settings.RETENTION_DAYS,
        ),
    )


def _publishing_store() -> SampleStore | None:
    return get_store() if get_settings().STORE_ENABLED else None


def get_monitor() -> PerformanceMonitor:
    """The process-wide PerformanceMonitor, publishing to the default store."""
    return _once("monitor", lambda: PerformanceMonitor(store=_publishing_store()))


def get_profiler() -> ImageProcessingProfiler:
    """The process-wide ImageProcessingProfiler; its timings land in ``get_monitor()``."""
    return _once("profiler", lambda: ImageProcessingProfiler(get_monitor()))


def get_api_tracker() -> APIPerformanceTracker:
    """The process-wide APIPerformanceTracker, publishing to the default store."""
    return _once("api_tracker", lambda: APIPerformanceTracker(store=_publishing_store()))


def get_cache() -> CacheManager:
    """The process-wide CacheManager ("default"), sized and backed as the settings say."""
    return _once("cache", lambda: CacheManager(store=_publishing_store()))


def get_resource_monitor() -> ResourceMonitor:
    """The process-wide ResourceMonitor; ``start_sampling()`` records to the default store."""
    return _once("resource_monitor", lambda: ResourceMonitor(store=_publishing_store()))


def flush() -> None:
    """Push every buffered sample of this process to its store now (also run at exit)."""
    FLUSHER.flush_all()
