"""Unit tests for ptpd_calibration.monitoring._series.SeriesBuffer (the in-memory sample rows)."""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from ptpd_calibration.monitoring._series import NO_META, SeriesBuffer


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Let the interpreter switch threads very often, so races actually interleave."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _fill(buffer: SeriesBuffer, start: int, stop: int, meta_every: int = 0) -> None:
    """Rows (ts=i, value=10*i); every ``meta_every``-th row carries {"i": i}."""
    for i in range(start, stop):
        meta = {"i": i} if meta_every and i % meta_every == 0 else None
        buffer.add((float(i), 10.0 * i), meta)


def _meta_by_ts(columns: list[np.ndarray], meta: dict[int, dict[str, object]]) -> dict[int, int]:
    """Metadata re-keyed by the row's timestamp, so positions can be checked against rows."""
    return {int(columns[0][pos]): item["i"] for pos, item in meta.items()}  # type: ignore[misc]


def test_add_view_and_values() -> None:
    buffer = SeriesBuffer(2, 100, unit="ms")

    buffer.add((1.0, 0.5))
    buffer.add((2.0, 1.5), {"session_id": "a"})
    buffer.add((3.0, 2.5))

    (ts, values), meta = buffer.view()
    assert ts.tolist() == [1.0, 2.0, 3.0]
    assert values.tolist() == [0.5, 1.5, 2.5]
    assert meta == {1: {"session_id": "a"}}
    assert buffer.values().tolist() == [0.5, 1.5, 2.5]
    assert buffer.values(0).tolist() == [1.0, 2.0, 3.0]
    assert len(buffer) == 3
    assert buffer.unit == "ms"


def test_empty_buffer() -> None:
    buffer = SeriesBuffer(2, 10)

    (ts, values), meta = buffer.view()

    assert ts.size == 0 and values.size == 0
    assert meta == {}
    assert buffer.values().size == 0
    assert len(buffer) == 0
    assert buffer.take_unflushed() is None


def test_wider_rows() -> None:
    buffer = SeriesBuffer(3, 10)
    buffer.add((1.0, 12.5, 200.0))
    buffer.add((2.0, 30.0, 503.0), {"error": "boom"})

    (ts, duration, status), meta = buffer.view()

    assert ts.tolist() == [1.0, 2.0]
    assert duration.tolist() == [12.5, 30.0]
    assert status.tolist() == [200.0, 503.0]
    assert meta == {1: {"error": "boom"}}
    assert buffer.values(2).tolist() == [200.0, 503.0]


def test_view_and_values_return_copies() -> None:
    buffer = SeriesBuffer(2, 10)
    _fill(buffer, 0, 3)

    (_, values), _ = buffer.view()
    values[:] = -1.0
    column = buffer.values()
    column[:] = -2.0

    assert buffer.values().tolist() == [0.0, 10.0, 20.0]
    buffer.add((3.0, 30.0))  # no view keeps the array from growing
    assert len(buffer) == 4


def test_empty_metadata_is_stored_as_none() -> None:
    buffer = SeriesBuffer(2, 10)
    buffer.add((1.0, 1.0), {})

    _, meta = buffer.view()

    assert meta == {}
    assert math.isnan(NO_META)


@pytest.mark.parametrize("max_history", [1, 2, 3, 10, 37])
@pytest.mark.parametrize("total", [1, 5, 50, 1000])
def test_max_history_keeps_the_newest(max_history: int, total: int) -> None:
    buffer = SeriesBuffer(2, max_history)

    _fill(buffer, 0, total)

    kept = min(total, max_history)
    (ts, values), _ = buffer.view()
    assert ts.tolist() == [float(i) for i in range(total - kept, total)]
    assert values.tolist() == [10.0 * i for i in range(total - kept, total)]
    assert buffer.values().tolist() == values.tolist()
    assert len(buffer) == kept
    # memory stays bounded: at most about twice the history is held
    assert len(buffer.data) <= 2 * max_history * buffer.stride + buffer.stride
    assert buffer.dropped == 0  # not persisted: old rows leave by design, not as drops


def test_metadata_survives_trims_and_is_reindexed() -> None:
    buffer = SeriesBuffer(2, 10)

    _fill(buffer, 0, 95, meta_every=3)

    columns, meta = buffer.view()
    assert columns[0].tolist() == [float(i) for i in range(85, 95)]
    # every position points at its own row's metadata, for exactly the rows that had some
    assert _meta_by_ts(columns, meta) == {i: i for i in range(85, 95) if i % 3 == 0}
    # metadata of trimmed rows is released, not kept forever
    assert len(buffer.meta) <= 2 * 10
    assert all(item["i"] >= 95 - 2 * 10 - 1 for item in buffer.meta.values())


def test_persist_keeps_unflushed_rows_past_max_history_until_taken() -> None:
    buffer = SeriesBuffer(2, 10, persist=True)

    _fill(buffer, 0, 50, meta_every=7)

    # Queries still see only the newest max_history rows...
    (ts, _), _ = buffer.view()
    assert ts.tolist() == [float(i) for i in range(40, 50)]
    assert len(buffer) == 10
    # ...but every row is kept for the store, with its metadata.
    taken = buffer.take_unflushed()
    assert taken is not None
    columns, meta = taken
    assert columns[0].tolist() == [float(i) for i in range(50)]
    assert columns[1].tolist() == [10.0 * i for i in range(50)]
    assert _meta_by_ts(columns, meta) == {i: i for i in range(50) if i % 7 == 0}
    assert buffer.dropped == 0
    assert buffer.take_unflushed() is None  # each row is taken once

    # Once taken, those rows may go: the buffer shrinks back to about its history.
    _fill(buffer, 50, 120)
    taken = buffer.take_unflushed()
    assert taken is not None
    assert taken[0][0].tolist() == [float(i) for i in range(50, 120)]
    seen: list[float] = []
    for start in range(120, 400, 5):  # a flusher keeping up: a few rows per take
        _fill(buffer, start, start + 5)
        taken = buffer.take_unflushed()
        assert taken is not None
        seen.extend(taken[0][0].tolist())
    assert seen == [float(i) for i in range(120, 400)]
    assert len(buffer.data) <= (2 * 10 + 1) * buffer.stride
    (ts, _), _ = buffer.view()
    assert ts.tolist() == [float(i) for i in range(390, 400)]
    assert buffer.dropped == 0


def test_take_unflushed_returns_new_rows_only() -> None:
    buffer = SeriesBuffer(2, 100, persist=True)
    _fill(buffer, 0, 3)
    first = buffer.take_unflushed()
    _fill(buffer, 3, 5, meta_every=4)

    second = buffer.take_unflushed()

    assert first is not None and second is not None
    assert first[0][0].tolist() == [0.0, 1.0, 2.0]
    assert second[0][0].tolist() == [3.0, 4.0]
    assert second[1] == {1: {"i": 4}}  # position within the batch, not within the buffer
    assert buffer.take_unflushed() is None
    # taking does not remove rows from the live view
    assert buffer.values(0).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_max_pending_drops_the_oldest_and_counts_them() -> None:
    buffer = SeriesBuffer(2, 10, persist=True, max_pending=25)

    _fill(buffer, 0, 200, meta_every=5)

    taken = buffer.take_unflushed()
    assert taken is not None
    columns, meta = taken
    kept = columns[0].astype(int).tolist()
    # the newest rows survive, contiguous, and no more than max_pending and the slack that
    # keeps trimming amortised (half the kept rows) between trims
    assert 10 <= len(kept) <= 25 + 25 // 2
    assert kept == list(range(200 - len(kept), 200))
    # nothing disappears without being counted
    assert buffer.dropped == 200 - len(kept)
    assert _meta_by_ts(columns, meta) == {i: i for i in kept if i % 5 == 0}


def test_max_pending_never_below_max_history() -> None:
    buffer = SeriesBuffer(2, 50, persist=True, max_pending=5)

    _fill(buffer, 0, 60)

    assert buffer.max_pending == 50
    taken = buffer.take_unflushed()
    assert taken is not None
    assert taken[0][0].size + buffer.dropped == 60
    assert taken[0][0].size >= 50


def test_dropped_rows_are_never_taken_later() -> None:
    buffer = SeriesBuffer(2, 4, persist=True, max_pending=6)
    seen: list[int] = []

    for chunk in range(20):
        _fill(buffer, chunk * 7, chunk * 7 + 7)
        if chunk % 3 == 0:
            taken = buffer.take_unflushed()
            if taken is not None:
                seen.extend(taken[0][0].astype(int).tolist())
    taken = buffer.take_unflushed()
    if taken is not None:
        seen.extend(taken[0][0].astype(int).tolist())

    assert seen == sorted(set(seen))  # in order, no row twice
    assert len(seen) + buffer.dropped == 140


@pytest.mark.usefixtures("busy_switching")
def test_take_unflushed_exactly_once_under_concurrent_appends() -> None:
    """4 appending threads race a flusher thread: every row is taken exactly once."""
    buffer = SeriesBuffer(2, 50, persist=True)
    writers, per_writer = 4, 20_000
    start = threading.Barrier(writers + 1)
    done = threading.Event()
    batches: list[np.ndarray] = []

    def write(worker: int) -> None:
        start.wait()
        for i in range(per_writer):
            value = float(worker * per_writer + i)
            buffer.add((value, value), {"w": worker} if i % 1000 == 0 else None)

    def flush() -> None:
        start.wait()
        while not done.is_set():
            taken = buffer.take_unflushed()
            if taken is not None:
                batches.append(taken[0][1])
        taken = buffer.take_unflushed()
        if taken is not None:
            batches.append(taken[0][1])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    flusher = threading.Thread(target=flush)
    for thread in [*threads, flusher]:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    flusher.join()

    taken_values = np.concatenate(batches) if batches else np.empty(0)
    expected = set(range(writers * per_writer))
    assert taken_values.size == writers * per_writer  # exact: no row lost, none twice
    assert set(taken_values.astype(int).tolist()) == expected
    assert buffer.dropped == 0
    assert buffer.take_unflushed() is None
    # each row's timestamp and value stayed together
    (ts, values), _ = buffer.view()
    assert np.array_equal(ts, values)
    assert len(buffer) == 50


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_appends_without_flusher_keep_whole_rows() -> None:
    buffer = SeriesBuffer(2, 1_000_000)
    writers, per_writer = 4, 10_000
    start = threading.Barrier(writers)

    def write(worker: int) -> None:
        start.wait()
        for i in range(per_writer):
            value = float(worker * per_writer + i)
            buffer.add((value, -value))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    (ts, values), _ = buffer.view()
    assert ts.size == writers * per_writer
    assert np.array_equal(ts, -values)
    assert set(ts.astype(int).tolist()) == set(range(writers * per_writer))


def test_load_fills_a_read_only_view() -> None:
    buffer = SeriesBuffer(3, 1, unit="ms")
    columns = [np.array([1.0, 2.0, 3.0, 4.0]), np.array([5.0, 6.0, 7.0, 8.0]), np.full(4, 200.0)]

    buffer.load(columns, {0: {"a": 1}, 3: {"b": 2}})

    (ts, duration, status), meta = buffer.view()
    assert ts.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert duration.tolist() == [5.0, 6.0, 7.0, 8.0]
    assert status.tolist() == [200.0] * 4
    assert meta == {0: {"a": 1}, 3: {"b": 2}}
    assert len(buffer) == 4  # every loaded row counts as history, whatever max_history was
    assert buffer.max_history == 4
    assert buffer.take_unflushed() is None  # loaded rows came from the store already


def test_load_replaces_previous_rows() -> None:
    buffer = SeriesBuffer(2, 10)
    _fill(buffer, 0, 5, meta_every=1)

    buffer.load([np.array([9.0]), np.array([90.0])], {})

    (ts, values), meta = buffer.view()
    assert ts.tolist() == [9.0]
    assert values.tolist() == [90.0]
    assert meta == {}


def test_clear_forgets_everything() -> None:
    buffer = SeriesBuffer(2, 10, persist=True)
    _fill(buffer, 0, 30, meta_every=2)

    buffer.clear()

    assert len(buffer) == 0
    assert buffer.view()[1] == {}
    assert buffer.take_unflushed() is None
    _fill(buffer, 100, 103)
    taken = buffer.take_unflushed()
    assert taken is not None
    assert taken[0][0].tolist() == [100.0, 101.0, 102.0]
