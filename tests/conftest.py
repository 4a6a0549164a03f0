"""The test kit shared by every suite: isolation, a clock tests move by hand, no background flush.

- Every test runs with ``PTPD_MONITORING_STORE_DIR`` and ``XDG_DATA_HOME`` pointing into a fresh
  temporary folder, without any ``PTPD_MONITORING_*`` variable inherited from the shell, and with
  :func:`reset_monitoring` called before and after, so no test ever reads or writes the user's
  real sample store or settings, and each builds its own ``get_*()`` instances.
- ``clock``: a :class:`FakeClock` (epoch seconds that move only when the test says so), for the
  ``clock=`` of ``PerformanceMonitor``, ``APIPerformanceTracker``, ``ImageProcessingProfiler``,
  ``CacheManager``, ``StoreCollector`` and ``MonitoringMiddleware``. Tests pin time only this
  way, never by patching a module's ``time``.
- ``no_background_flush``: the process-wide flusher thread never takes a source, so only an
  explicit ``flush()`` writes to a store.
- ``reset_monitoring``: the public reset, as a function and as a fixture returning it.

Test modules cannot import this file at run time (every suite's conftest is a module named
``conftest``), so they import :class:`FakeClock` for annotations only::

    if TYPE_CHECKING:
        from conftest import FakeClock
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import ptpd_calibration.monitoring as monitoring
from ptpd_calibration.monitoring import _flusher
from ptpd_calibration.monitoring.settings import get_settings
from ptpd_calibration.monitoring.watches import clear_registered_watches

ENV_PREFIX = "PTPD_MONITORING_"
T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z: where a FakeClock starts


class FakeClock:
    """Epoch seconds that move only when a test says so: pass it as ``clock=``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now!r})"


def reset_monitoring() -> None:
    """Forget the ``get_*()`` instances, the watches declared in Python and the cached settings.

    The next ``get_monitor()`` (or any ``get_*()``) builds a new instance from the settings the
    environment holds then.
    """
    instances = getattr(monitoring, "_instances", None)
    if isinstance(instances, dict):
        instances.clear()
    clear_registered_watches()
    get_settings.cache_clear()


@pytest.fixture(name="reset_monitoring")
def reset_monitoring_fixture() -> Callable[[], None]:
    """:func:`reset_monitoring`, for a test that changes the environment halfway through."""
    return reset_monitoring


@pytest.fixture
def clock() -> FakeClock:
    """A :class:`FakeClock` at ``T0``; build the monitor, tracker or cache with ``clock=clock``."""
    return FakeClock()


@pytest.fixture
def no_background_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the process-wide flusher thread away, so only explicit ``flush()`` calls write."""
    monkeypatch.setattr(_flusher.FLUSHER, "register", lambda *args, **kwargs: None)


@pytest.fixture(autouse=True)
def isolated_monitoring_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """Point the store and the XDG data folder at a per-test temporary folder.

    Yields the store folder (``PTPD_MONITORING_STORE_DIR``); it is not created, so code that
    expects a missing store sees one.
    """
    root = tmp_path_factory.mktemp("ptpd-env")
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    store_dir = root / "store"
    monkeypatch.setenv(f"{ENV_PREFIX}STORE_DIR", str(store_dir))
    monkeypatch.setenv("XDG_DATA_HOME", str(root / "xdg-data"))
    reset_monitoring()
    try:
        yield store_dir
    finally:
        reset_monitoring()
