"""Test-wide isolation: no test ever reads or writes the user's real sample store or settings.

Every test runs with ``PTPD_MONITORING_STORE_DIR`` and ``XDG_DATA_HOME`` pointing into a fresh
temporary folder, without any ``PTPD_MONITORING_*`` variable inherited from the shell, and with
the process-wide settings cache and the ``get_*()`` singletons dropped before and after, so each
test reads its own settings and builds its own instances.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import ptpd_calibration.monitoring as monitoring
from ptpd_calibration.monitoring.settings import get_settings

ENV_PREFIX = "PTPD_MONITORING_"


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
    get_settings.cache_clear()
    _forget_singletons()
    try:
        yield store_dir
    finally:
        _forget_singletons()
        get_settings.cache_clear()


def _forget_singletons() -> None:
    """Drop the ``get_*()`` instances, so each test builds its own from its own settings."""
    instances = getattr(monitoring, "_instances", None)
    if isinstance(instances, dict):
        instances.clear()
