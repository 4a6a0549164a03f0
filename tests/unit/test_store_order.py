"""Store reads come back in time order, and window reads find every sample, however they arrived.

Threads appending to one series at once can leave a flushed batch out of order, and after a
long pause a batch can span far more than ``MAX_BATCH_SPAN_S``. The store sorts such a batch
before cutting it into pieces (``in_time_order``), and compaction sorts what it merges: without
that, pieces would span more than a window read looks back (``READ_LOOKBACK_S``) and samples
would be missed, and a series would read back out of order. Each test below fails when
``in_time_order`` returns its input unchanged, on the write path
(``ptpd_calibration.monitoring.store.in_time_order``) or in compaction
(``ptpd_calibration.monitoring._codec.in_time_order``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ptpd_calibration.monitoring.store import (
    METRIC,
    READ_LOOKBACK_S,
    ColumnBatch,
    SampleStore,
)

T0 = 1_700_000_000.0  # 800 s into a clock hour (compaction merges per hour)
PROCESSES = 3


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SampleStore]:
    s = SampleStore(tmp_path / "store")
    yield s
    s.close()


def _batch(ts: np.ndarray, values: np.ndarray, meta: dict[int, dict[str, Any]] | None = None):
    return ColumnBatch(METRIC, "op", (np.asarray(ts, float), np.asarray(values, float)), "s", meta)


def _non_decreasing(ts: np.ndarray) -> bool:
    return bool(np.all(np.diff(ts) >= 0))


def _interleaved(process: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One process's flush: a sample every ~5 s over ``seconds``, in shuffled order."""
    ts = T0 + process + np.arange(0.0, seconds, 5.0)
    return rng.permutation(ts)


def test_an_unsorted_batch_longer_than_the_lookback_reads_back_in_time_order(
    store: SampleStore,
) -> None:
    gap = READ_LOOKBACK_S + 1000.0  # a pause longer than any window read looks back
    offsets = np.array([gap, 0.0, gap + 1, 1.0, 2.0, 2 * gap, gap - 1])
    ts = T0 + offsets
    meta = {0: {"i": 0}, 3: {"i": 3}, 5: {"i": 5}}  # positions in the batch as written
    assert store.write([_batch(ts, offsets, meta)])

    data = store.read_columns(METRIC, "op")

    stamps, values = data.columns
    assert _non_decreasing(stamps), stamps - T0
    np.testing.assert_array_equal(np.sort(stamps), np.sort(ts))  # every sample, once
    np.testing.assert_array_equal(values, stamps - T0)  # each value stays with its time
    assert {float(values[i]): item["i"] for i, item in data.meta.items()} == {
        float(offsets[i]): i for i in meta
    }
    for t in ts:  # a window around any one sample finds it
        window = store.read_columns(METRIC, "op", since=t, until=t)
        np.testing.assert_array_equal(window.columns[0], [t])
    loaded = [m.timestamp.timestamp() for m in store.load_monitor().get_metrics("op")]
    assert loaded == sorted(loaded)  # "oldest first", as PerformanceMonitor.get_metrics says


def test_interleaved_batches_of_several_processes_read_back_in_order_per_process(
    store: SampleStore,
) -> None:
    rng = np.random.default_rng(7)
    written = {p: _interleaved(p, 600.0, rng) for p in range(PROCESSES)}
    # The value says which process wrote the sample, so each one's samples can be told apart.
    for process, ts in written.items():
        assert store.write([_batch(ts, np.full(ts.size, process))])

    stamps, values = store.read_columns(METRIC, "op").columns

    for process, ts in written.items():
        mine = stamps[values == process]
        assert _non_decreasing(mine), mine - T0
        np.testing.assert_array_equal(mine, np.sort(ts))
    late = store.read_columns(METRIC, "op", since=T0 + 500, until=T0 + 510)
    assert sorted(late.columns[0].tolist()) == sorted(
        float(t) for ts in written.values() for t in ts if T0 + 500 <= t <= T0 + 510
    )


def test_compacted_batches_of_several_processes_read_back_in_time_order(
    store: SampleStore,
) -> None:
    rng = np.random.default_rng(11)
    written = np.concatenate([_interleaved(p, 600.0, rng) for p in range(PROCESSES)])
    for process in range(PROCESSES):
        part = written[process::PROCESSES]  # each flush holds samples of the whole span
        assert store.write([_batch(part, part - T0)])
    assert store.compact(older_than=T0 + 10 * 3600.0) > 0  # the hour is merged into one batch

    stamps, values = store.read_columns(METRIC, "op").columns

    assert _non_decreasing(stamps), stamps - T0
    np.testing.assert_array_equal(stamps, np.sort(written))
    np.testing.assert_array_equal(values, stamps - T0)


def test_overlapping_batches_of_several_processes_read_back_in_time_order(
    store: SampleStore,
) -> None:
    rng = np.random.default_rng(3)
    written = [_interleaved(p, 30.0, rng) for p in range(PROCESSES)]  # each within one batch
    for ts in written:
        assert store.write([_batch(ts, ts - T0)])
    everything = np.sort(np.concatenate(written))

    stamps = store.read_columns(METRIC, "op").columns[0]
    loaded = [m.timestamp.timestamp() for m in store.load_monitor().get_metrics("op")]
    store.compact(older_than=T0 + 10 * 3600.0)
    compacted = store.read_columns(METRIC, "op").columns[0]

    np.testing.assert_array_equal(stamps, everything)
    assert loaded == sorted(loaded)
    np.testing.assert_array_equal(compacted, everything)
