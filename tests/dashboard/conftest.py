"""Fixtures for the in-process dashboard tests (Streamlit's AppTest).

AppTest runs the app's script in this process, so the package's process-wide instances
(``get_store()``, ``get_resource_monitor()``, ...) and Streamlit's caches are shared with the
test. Every fixture here points the settings at its own store folder, and resets the instances
and caches before and after, so no test sees another's store or sampler thread.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

import ptpd_calibration.monitoring as monitoring
from ptpd_calibration.monitoring.settings import get_settings

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


_DEMO = (
    "import json, ptpd_calibration.monitoring as m\n"
    "from ptpd_calibration.monitoring.demo import record_demo_session\n"
    "summary = record_demo_session(seconds=2, seed=1)\n"
    "m.flush()\n"
    "print(json.dumps(summary))\n"
)


def _reset() -> None:
    """Stop this process's sampler, write what is pending, forget instances and caches."""
    resources = monitoring._instances.get("resource_monitor")
    if isinstance(resources, monitoring.ResourceMonitor) and resources.is_sampling:
        resources.stop_sampling()
    monitoring.flush()
    store = monitoring._instances.get("store")
    if isinstance(store, monitoring.SampleStore):
        store.close()
    monitoring._instances.clear()
    st.cache_data.clear()
    st.cache_resource.clear()  # the app's machine_sampler starts anew on the next run
    get_settings.cache_clear()


@pytest.fixture
def use_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], Path]]:
    """Point the dashboard (and this process's instances) at a store folder."""

    def point_at(directory: Path) -> Path:
        _reset()
        monkeypatch.setenv("PTPD_MONITORING_STORE_DIR", str(directory))
        get_settings.cache_clear()
        return directory

    yield point_at
    _reset()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A store holding a 2 s demo session, recorded once by a child process; and its summary."""
    directory = tmp_path_factory.mktemp("demo-template") / "store"
    env = {**os.environ, "PTPD_MONITORING_STORE_DIR": str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", _DEMO],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return directory, summary


@pytest.fixture(scope="session")
def demo_week_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the demo week (what `ptpd-monitor demo` writes), once per session."""
    directory = tmp_path_factory.mktemp("demo-week") / "store"
    env = {**os.environ, "PTPD_MONITORING_STORE_DIR": str(directory)}
    code = (
        "from ptpd_calibration.monitoring.demo import record_demo_week\nrecord_demo_week(seed=3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    return directory


@pytest.fixture
def demo_week_store(
    use_store: Callable[[Path], Path], demo_week_template: Path, tmp_path: Path
) -> Path:
    """A private copy of the demo week's store."""
    copy = tmp_path / "week"
    shutil.copytree(demo_week_template, copy)
    return use_store(copy)


@pytest.fixture
def empty_store(use_store: Callable[[Path], Path], tmp_path: Path) -> Path:
    """A store folder that does not exist yet."""
    return use_store(tmp_path / "empty-store")


@pytest.fixture
def populated_store(
    use_store: Callable[[Path], Path],
    demo_template: tuple[Path, dict[str, Any]],
    tmp_path: Path,
) -> tuple[Path, dict[str, Any]]:
    """A private copy of the demo store (tests may write to it), and the demo's summary."""
    template, summary = demo_template
    copy = tmp_path / "store"
    shutil.copytree(template, copy)
    return use_store(copy), summary


@pytest.fixture
def corrupt_store(
    use_store: Callable[[Path], Path], tmp_path: Path, no_background_flush: None
) -> Path:
    """A store folder whose database is garbage, and stays so while the page renders.

    The dashboard's own resource sampler writes to the store, and a write moves a damaged
    database aside and starts afresh (the store's recovery); without the background flusher
    nothing writes, so each page meets the garbage.
    """
    directory = tmp_path / "corrupt-store"
    directory.mkdir(mode=0o700)
    (directory / "cache.db").write_bytes(b"this is not an SQLite database\x00" * 64)
    return use_store(directory)


@pytest.fixture
def app() -> Callable[[], AppTest]:
    """A fresh AppTest of the dashboard (not yet run)."""
    return lambda: AppTest.from_file(str(APP), default_timeout=60)


@pytest.fixture
def media(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], bytes]:
    """The bytes behind a download button's URL in AppTest (which has no data accessor).

    AppTest builds a MemoryMediaFileStorage per run; recording them lets a test read a file
    back by the id at the end of the button's ``/mock/media/<id>.<ext>`` URL.
    """
    import streamlit.testing.v1.app_test as app_test

    storages: list[MemoryMediaFileStorage] = []

    class Recording(MemoryMediaFileStorage):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            storages.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Recording)

    def read(url: str) -> bytes:
        file_id = url.rsplit("/", 1)[-1].split(".", 1)[0]
        for storage in reversed(storages):
            try:
                return bytes(storage.get_file(file_id).content)
            except Exception:  # not in this run's storage
                continue
        raise AssertionError(f"no media file behind {url!r}")

    return read
