"""One cache's totals across processes (monitoring/_totals.py), and the exporter and the
dashboard, which both take them from there, agreeing over one store."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ptpd_calibration.dashboard.transforms import cache_totals
from ptpd_calibration.monitoring import frames
from ptpd_calibration.monitoring._totals import CacheTotals, sum_cache_snapshots
from ptpd_calibration.monitoring.exporter import StoreCollector
from ptpd_calibration.monitoring.store import CACHE, RecordBatch, SampleStore


def _snapshot(
    pid: int, hits: int, misses: int, size: int, backend: str = "memory"
) -> dict[str, Any]:
    return {"pid": pid, "backend": backend, "hits": hits, "misses": misses, "evictions": pid,
            "expirations": 2 * pid, "size": size, "max_size": 100}  # fmt: skip


def test_counters_and_sizes_of_processes_add_up() -> None:
    totals = sum_cache_snapshots([_snapshot(1, 30, 10, 40), _snapshot(2, 8, 2, 10)])
    assert totals == CacheTotals(
        hits=38, misses=12, evictions=3, expirations=6, size=50, max_size=200, processes=2
    )
    assert totals.hit_rate == pytest.approx(38 / 50)


def test_a_disk_cache_is_one_folder_counted_once() -> None:
    totals = sum_cache_snapshots([_snapshot(1, 3, 1, 40, "disk"), _snapshot(2, 5, 1, 42, "disk")])
    assert (totals.hits, totals.misses, totals.size, totals.max_size) == (8, 2, 42, 100)


def test_no_snapshot_or_no_lookup_gives_zeros_not_nan() -> None:
    assert sum_cache_snapshots([]) == CacheTotals()
    assert CacheTotals().hit_rate == 0.0


@pytest.mark.parametrize("bad", [None, "12", True, math.nan, math.inf, [1]])
def test_a_missing_or_odd_field_counts_zero(bad: object) -> None:
    assert sum_cache_snapshots([{"hits": bad, "misses": 1}]).hits == 0


def test_numpy_numbers_count_like_python_ones() -> None:
    row = {"hits": np.int64(5), "misses": np.float64(2.0), "size": np.int32(3)}
    totals = sum_cache_snapshots([row])
    assert (totals.hits, totals.misses, totals.size) == (5, 2, 3)


def test_the_exporter_and_the_dashboard_agree(tmp_path: Path) -> None:
    t0 = 1_700_000_000.0
    store = SampleStore(tmp_path / "store")
    rows = [
        {"ts": t0 + i, "cache": name, **_snapshot(pid, hits, misses, size, backend)}
        for i, (name, pid, hits, misses, size, backend) in enumerate(
            [
                ("curves", 1, 5, 5, 10, "memory"),
                ("curves", 1, 30, 10, 40, "memory"),  # the newest of pid 1
                ("curves", 2, 8, 2, 10, "memory"),
                ("tiles", 3, 7, 1, 20, "disk"),
                ("tiles", 4, 9, 3, 25, "disk"),
            ]
        )
    ]
    assert store.write([RecordBatch(CACHE, row["cache"], [row]) for row in rows])

    dashboard = cache_totals(frames.cache_stats(store)).set_index("cache")
    collector = StoreCollector(store, window_s=300, clock=lambda: t0 + 60)
    exported = {
        (s.name, s.labels["cache"]): s.value
        for family in collector.collect()
        for s in family.samples
        if s.name.startswith("ptpd_cache_")
    }
    for cache in ("curves", "tiles"):
        for counter in ("hits", "misses", "evictions"):
            assert exported[(f"ptpd_cache_{counter}_total", cache)] == dashboard.loc[cache, counter]
        assert exported[("ptpd_cache_size_entries", cache)] == dashboard.loc[cache, "size"]
    assert dashboard.loc["tiles", "size"] == 25  # one shared folder
    assert dashboard.loc["curves", "hits"] == 38
