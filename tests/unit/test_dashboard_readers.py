"""The dashboard's cached readers of the store: the headline over a real store, the empty-store
probe, and one ``invalidate()`` that forgets every cached read."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit.runtime.caching.cache_utils import CachedFunc

from ptpd_calibration.dashboard import readers, reports
from ptpd_calibration.dashboard.transforms import Window
from ptpd_calibration.monitoring.store import CACHE, RecordBatch, SampleStore


@pytest.fixture
def demo_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[SampleStore, dict[str, Any]]]:
    import ptpd_calibration.monitoring as monitoring
    from ptpd_calibration.monitoring.demo import record_demo_session
    from ptpd_calibration.monitoring.settings import get_settings

    monkeypatch.setenv("PTPD_MONITORING_STORE_DIR", str(tmp_path / "store"))
    get_settings.cache_clear()
    monitoring._instances.clear()
    try:
        summary = record_demo_session(seconds=0.3, seed=1)
        monitoring.flush()
        yield monitoring.get_store(), summary
    finally:
        monitoring.flush()
        monitoring._instances.clear()
        get_settings.cache_clear()


def test_has_metrics_is_false_for_a_missing_store(tmp_path: Path) -> None:
    assert not readers.has_metrics(SampleStore(tmp_path / "nowhere"))
    assert not (tmp_path / "nowhere").exists()  # probing does not create it


def test_headline_counts_what_the_window_holds(
    demo_store: tuple[SampleStore, dict[str, Any]],
) -> None:
    store, summary = demo_store
    assert readers.has_metrics(store)
    window = Window("test", time.time() - 600, time.time() + 60)
    numbers = readers.window_headline(store, window)

    assert numbers["requests"] == summary["requests"]
    assert numbers["error_rate"] == pytest.approx(summary["request_errors"] / summary["requests"])
    # Every pipeline step works on an image: seven profiled image operations a run.
    assert numbers["images_profiled"] == 7 * summary["pipeline_runs"]
    # 7 steps and 2 timers a run; a profile's CPU-time and memory samples are no timings
    assert numbers["operations_timed"] == 9 * summary["pipeline_runs"]
    stats = summary["cache"]
    assert numbers["cache_hit_rate"] == pytest.approx(
        stats["hits"] / (stats["hits"] + stats["misses"])
    )

    past = Window("past", window.since - 86400, window.since - 3600)
    assert readers.window_headline(store, past) == {
        "operations_timed": 0,
        "requests": 0,
        "error_rate": None,
        "cache_hit_rate": None,
        "images_profiled": 0,
    }


def test_every_cached_reader_and_report_is_cleared_by_invalidate() -> None:
    cached = [
        value
        for module in (readers, reports)
        for name, value in vars(module).items()
        if isinstance(value, CachedFunc) and name != "store_at"  # a store holds no samples
    ]
    assert len(cached) >= 11  # seven readers, four reports
    assert all(any(c is r for r in readers._CACHED) for c in cached)


def test_invalidate_makes_the_next_read_see_new_samples(tmp_path: Path) -> None:
    store = SampleStore(tmp_path / "store")
    directory, now = str(store.directory), time.time()

    def snapshot(hits: int) -> RecordBatch:
        row = {"ts": time.time(), "cache": "c", "pid": 1, "backend": "memory", "hits": hits}
        return RecordBatch(CACHE, "c", [row])

    assert store.write([snapshot(1)])
    before: pd.DataFrame = readers.cached_cache_stats(directory, now - 60, now + 60)
    assert store.write([snapshot(2)])
    assert readers.cached_cache_stats(directory, now - 60, now + 60) is before  # a cached read

    readers.invalidate()
    assert sorted(readers.cached_cache_stats(directory, now - 60, now + 60)["hits"]) == [1, 2]
