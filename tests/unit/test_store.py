"""Unit tests for the sample store (``ptpd_calibration.monitoring.store``) and the flusher.

Every test gets its own store folder under ``tmp_path``; nothing touches the default store.
Time windows use fixed epochs (the store's expiry is relative to the write, not to the sample
timestamps), and expiry is tested by patching ``time.time``, never by sleeping on a timing.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import stat
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import diskcache
import numpy as np
import pandas as pd
import pytest

from ptpd_calibration.monitoring import _flusher, frames
from ptpd_calibration.monitoring._folder import Transaction
from ptpd_calibration.monitoring.monitor import PerformanceMonitor
from ptpd_calibration.monitoring.store import (
    API,
    CACHE,
    MAX_BATCH_SPAN_S,
    METRIC,
    PROFILE,
    RESOURCE,
    ColumnBatch,
    RecordBatch,
    SampleStore,
    StoreError,
    to_epoch,
)

T0 = 1_700_000_000.0  # a fixed epoch: sample times are data, not the clock
STORE_LOGGER = "ptpd_calibration.monitoring.store"


def metric(series: str, ts: Any, values: Any = None, unit: str = "seconds", meta=None):
    ts = np.asarray(ts, dtype=float)
    values = ts - T0 if values is None else np.asarray(values, dtype=float)
    return ColumnBatch(METRIC, series, (ts, values), unit, meta)


def requests(series: str, ts: Any, ms: Any, status: Any, meta=None) -> ColumnBatch:
    return ColumnBatch(
        API,
        series,
        tuple(np.asarray(c, dtype=float) for c in (ts, ms, status)),
        "ms",
        meta,
    )


def warnings_from_store(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == STORE_LOGGER and r.levelno == logging.WARNING]


@pytest.fixture
def store(tmp_path: Path) -> SampleStore:
    s = SampleStore(tmp_path / "store")
    yield s
    s.close()


# -- round trips -------------------------------------------------------------------------------


def test_columns_round_trip_in_batch_order(store: SampleStore) -> None:
    assert store.write([metric("decode", T0 + np.arange(5), [1, 2, 3, 4, 5])])
    assert store.write([metric("decode", T0 + 5 + np.arange(3), [6, 7, 8])])

    data = store.read_columns(METRIC, "decode")

    assert data.unit == "seconds"
    assert data.size == 8
    np.testing.assert_array_equal(data.columns[0], T0 + np.arange(8))
    np.testing.assert_array_equal(data.columns[1], np.arange(1, 9, dtype=float))
    assert data.meta == {}
    assert store.series_names(METRIC) == ["decode"]
    assert store.series_names(API) == []


def test_unknown_series_reads_empty(store: SampleStore) -> None:
    store.write([metric("a", [T0])])
    assert store.read_columns(METRIC, "b").size == 0
    assert store.read_records(PROFILE, "b") == []


def test_missing_folder_reads_as_an_empty_store(tmp_path: Path) -> None:
    missing = tmp_path / "never-written"
    s = SampleStore(missing)
    assert s.series_names(METRIC) == []
    assert s.read_columns(METRIC, "op").size == 0
    assert s.load_monitor().get_operation_names() == []
    assert frames.metrics_frame(s).empty
    if missing.exists():  # reading may create it: then user-only, like a write would
        assert stat.S_IMODE(missing.stat().st_mode) == 0o700
    s.close()


def test_empty_write_is_a_success_and_creates_nothing(tmp_path: Path) -> None:
    s = SampleStore(tmp_path / "store")
    assert s.write([])
    assert s.write([metric("x", [])])
    assert not (tmp_path / "store").exists()


def test_records_round_trip(store: SampleStore) -> None:
    resource_rows = [
        {"ts": T0 + 2, "cpu_percent": 12.5, "memory_percent": 40.0},
        {"ts": T0 + 1, "cpu_percent": 10.0, "memory_percent": 41.0},
    ]
    cache_rows = [
        {"ts": T0 + 1, "cache": "curves", "pid": 7, "hits": 3, "misses": 1},
        {"ts": T0 + 1, "cache": "images", "pid": 7, "hits": 0, "misses": 5},
    ]
    profile_rows = [
        {"ts": T0 + 3, "operation": "tone", "wall_time_s": 0.5, "success": True},
        {"ts": T0 + 4, "operation": "tone", "wall_time_s": 0.7, "success": False},
    ]
    assert store.write(
        [
            RecordBatch(RESOURCE, "local", resource_rows),
            RecordBatch(CACHE, "curves", cache_rows[:1]),
            RecordBatch(CACHE, "images", cache_rows[1:]),
            RecordBatch(PROFILE, "tone", profile_rows),
            RecordBatch(PROFILE, "invert", [{"ts": T0, "operation": "invert", "success": True}]),
        ]
    )

    # read_records sorts by time, across series when no series is named
    assert store.read_records(RESOURCE) == sorted(resource_rows, key=lambda r: r["ts"])
    assert [r["operation"] for r in store.read_records(PROFILE)] == ["invert", "tone", "tone"]
    assert store.read_records(PROFILE, "tone") == profile_rows
    assert store.series_names(CACHE) == ["curves", "images"]

    resources = frames.resource_samples(store)
    assert list(resources.columns[:1]) == ["timestamp"]
    assert isinstance(resources["timestamp"].dtype, pd.DatetimeTZDtype)
    assert str(resources["timestamp"].dtype.tz) == "UTC"
    assert resources["cpu_percent"].tolist() == [10.0, 12.5]
    assert resources["timestamp"].iloc[0] == pd.Timestamp(T0 + 1, unit="s", tz="UTC")

    caches = frames.cache_stats(store)
    assert sorted(caches["cache"]) == ["curves", "images"]
    only_images = frames.cache_stats(store, name="images")
    assert only_images["cache"].tolist() == ["images"]
    assert only_images["misses"].tolist() == [5]

    profiles = frames.profiles(store, operation="tone")
    assert profiles["wall_time_s"].tolist() == [0.5, 0.7]
    assert profiles["success"].tolist() == [True, False]
    assert len(frames.profiles(store)) == 3
    assert frames.profiles(store, since=T0 + 3.5)["wall_time_s"].tolist() == [0.7]


def test_record_frames_are_empty_with_a_timestamp_column(store: SampleStore) -> None:
    store.write([metric("x", [T0])])  # the folder exists, but holds no records
    for frame in (
        frames.resource_samples(store),
        frames.cache_stats(store),
        frames.profiles(store),
    ):
        assert frame.empty
        assert "timestamp" in frame.columns


def test_load_monitor_rebuilds_exact_statistics(store: SampleStore) -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(size=1000)
    ts = T0 + np.arange(1000) * 0.01
    store.write([metric("decode", ts[:600], values[:600])])
    store.write([metric("decode", ts[600:], values[600:])])
    store.write([metric("memory", [T0, T0 + 1], [100.0, 120.0], unit="MB")])

    monitor = store.load_monitor()

    assert monitor.get_operation_names() == ["decode", "memory"]
    stats = monitor.get_statistics("decode")
    assert stats["count"] == 1000
    assert stats["unit"] == "seconds"
    assert stats["mean"] == pytest.approx(values.mean())
    for p in (50, 90, 95, 99):
        assert stats[f"p{p}"] == np.percentile(values, p)
    assert monitor.get_unit("memory") == "MB"
    assert monitor.get_average("memory") == 110.0
    with pytest.raises(ValueError, match="read-only"):
        monitor.record_metric("decode", 1.0)


def test_load_monitor_window(store: SampleStore) -> None:
    store.write([metric("op", T0 + np.arange(10), np.arange(10))])
    monitor = store.load_monitor(since=T0 + 3, until=T0 + 6)
    assert monitor.get_statistics("op")["count"] == 4
    assert [m.value for m in monitor.get_metrics("op")] == [3.0, 4.0, 5.0, 6.0]


def test_load_api_tracker_and_api_frame(store: SampleStore) -> None:
    store.write(
        [
            requests(
                "POST /api/curves",
                T0 + np.arange(4),
                [10, 20, 30, 40],
                [200, 200, 500, 404],
                meta={2: {"error": "ValueError: bad curve"}},
            ),
            requests("GET /api/curves", [T0 + 10], [5], [200]),
            requests("GET /health", [T0 + 0.5], [1], [200]),
        ]
    )

    tracker = store.load_api_tracker()

    assert tracker.get_endpoints() == ["/api/curves", "/health"]
    stats = tracker.get_endpoint_stats("/api/curves")
    assert stats["count"] == 5
    assert stats["error_count"] == 2
    assert stats["error_rate"] == pytest.approx(0.4)
    assert stats["median_ms"] == 20.0
    post = tracker.get_endpoint_stats("/api/curves", method="POST")
    assert post["count"] == 4
    errors = [r.error for r in tracker.get_requests("/api/curves")]
    assert errors == [None, None, "ValueError: bad curve", None, None]
    assert tracker.get_endpoint_stats("/api/curves", time_range=(T0 + 1, T0 + 2))["count"] == 2

    frame = frames.api_frame(store)
    assert list(frame.columns) == [
        "timestamp",
        "endpoint",
        "method",
        "duration_ms",
        "status_code",
        "error",
    ]
    assert frame["endpoint"].tolist() == [
        "/api/curves",
        "/health",
        "/api/curves",
        "/api/curves",
        "/api/curves",
        "/api/curves",
    ]
    assert frame["status_code"].tolist() == [200, 200, 200, 500, 404, 200]
    assert frame["error"].tolist()[3] == "ValueError: bad curve"
    assert frame["method"].tolist()[-1] == "GET"
    assert len(frames.api_frame(store, since=T0 + 5)) == 1


def test_empty_frames_have_their_columns(tmp_path: Path) -> None:
    s = SampleStore(tmp_path / "s")
    s.write([RecordBatch(PROFILE, "x", [{"ts": T0}])])
    metrics = frames.metrics_frame(s)
    assert metrics.empty
    assert list(metrics.columns) == ["timestamp", "operation", "value", "unit"]
    api = frames.api_frame(s)
    assert api.empty
    assert list(api.columns) == [
        "timestamp",
        "endpoint",
        "method",
        "duration_ms",
        "status_code",
        "error",
    ]


def test_metrics_frame(store: SampleStore) -> None:
    store.write(
        [
            metric("b", [T0 + 1, T0 + 3], [10.0, 30.0]),
            metric("a", [T0 + 2], [20.0], unit="MB"),
        ]
    )
    frame = frames.metrics_frame(store)
    assert list(frame.columns) == ["timestamp", "operation", "value", "unit"]
    assert frame["operation"].tolist() == ["b", "a", "b"]  # sorted by time
    assert frame["value"].tolist() == [10.0, 20.0, 30.0]
    assert frame["unit"].tolist() == ["seconds", "MB", "seconds"]
    assert frame["timestamp"].iloc[0] == pd.Timestamp(T0 + 1, unit="s", tz="UTC")
    assert frames.metrics_frame(store, operations=["a"])["value"].tolist() == [20.0]
    assert frames.metrics_frame(store, since=T0 + 2.5)["value"].tolist() == [30.0]


# -- time windows -------------------------------------------------------------------------------


def _bounds(kind: str, lo: float | None, hi: float | None) -> tuple[Any, Any]:
    def conv(x: float | None) -> Any:
        if x is None:
            return None
        if kind == "epoch_int":
            return int(x)
        if kind == "naive_datetime":
            return datetime.fromtimestamp(x)  # naive means local time
        if kind == "aware_datetime":
            return datetime.fromtimestamp(x, UTC)
        return x

    return conv(lo), conv(hi)


@pytest.mark.parametrize("bound_kind", ["epoch", "epoch_int", "naive_datetime", "aware_datetime"])
@pytest.mark.parametrize(
    ("lo", "hi"),
    [
        (T0 + 5, T0 + 14),  # starts inside the first batch, ends inside the second
        (T0 + 10, T0 + 10),  # exactly one sample, the first of a batch
        (T0 + 9, None),
        (None, T0 + 3),
        (T0 - 100, T0 + 100),
        (T0 + 30, T0 + 40),  # after everything
        (T0 - 40, T0 - 1),  # before everything
    ],
)
def test_window_reads_exactly_the_samples_inside(
    store: SampleStore, bound_kind: str, lo: float | None, hi: float | None
) -> None:
    ts = T0 + np.arange(20.0)
    store.write([metric("op", ts[:10])])
    store.write([metric("op", ts[10:])])
    since, until = _bounds(bound_kind, lo, hi)

    got = store.read_columns(METRIC, "op", since=since, until=until).columns
    got_ts = got[0] if got else np.empty(0)

    low = -np.inf if lo is None else lo
    high = np.inf if hi is None else hi
    expected = ts[(ts >= low) & (ts <= high)]
    np.testing.assert_array_equal(got_ts, expected)
    if got:
        np.testing.assert_array_equal(got[1], expected - T0)


def test_window_finds_a_batch_that_began_up_to_a_full_span_before_since(store: SampleStore) -> None:
    # The batch's key is its first sample, MAX_BATCH_SPAN_S before `since`; its last sample is
    # inside the window and must still be found.
    early = [T0, T0 + MAX_BATCH_SPAN_S / 2, T0 + MAX_BATCH_SPAN_S]
    store.write([metric("op", early)])
    store.write([metric("op", [T0 - 500, T0 - 499])])  # long before: never part of the answer

    data = store.read_columns(METRIC, "op", since=T0 + MAX_BATCH_SPAN_S - 1)

    np.testing.assert_array_equal(data.columns[0], [T0 + MAX_BATCH_SPAN_S])


def test_window_of_other_series_and_kinds_is_untouched(store: SampleStore) -> None:
    store.write([metric("op", [T0, T0 + 1]), requests("GET /op", [T0], [1], [200])])
    store.write([RecordBatch(PROFILE, "op", [{"ts": T0, "operation": "op"}])])
    assert store.read_columns(METRIC, "op").size == 2
    assert store.read_columns(API, "GET /op").size == 1
    assert len(store.read_records(PROFILE, "op")) == 1


@pytest.mark.parametrize("bad", ["yesterday", float("nan"), float("inf"), [T0]])
def test_bad_time_bounds_are_value_errors(store: SampleStore, bad: Any) -> None:
    store.write([metric("op", [T0])])
    with pytest.raises(ValueError):
        store.read_columns(METRIC, "op", since=bad)
    with pytest.raises(ValueError):
        to_epoch(bad)


def test_to_epoch() -> None:
    assert to_epoch(None) is None
    assert to_epoch(5) == 5.0
    assert to_epoch(datetime.fromtimestamp(T0, UTC)) == T0
    assert to_epoch(datetime.fromtimestamp(T0)) == T0


# -- series names --------------------------------------------------------------------------------

AWKWARD_NAMES = [
    "op",
    "op2",
    "op|x",
    "op|",
    "op~",
    "op~x",
    "op}",
    "o",
    "a/b/c",
    "50%",
    "%7C",  # what "|" quotes to: must stay apart from "|"
    "|",
    "with space",
    "tab\tand\nnewline",
    "ünïcødé 画像 🎞",
    "metric|op|1700000000.000000",
]


def test_awkward_series_names_are_listed_and_read_separately(store: SampleStore) -> None:
    batches = [
        metric(name, T0 + np.arange(i + 1), np.full(i + 1, float(i)))
        for i, name in enumerate(AWKWARD_NAMES)
    ]
    assert store.write(batches)
    # A second flush of some of them must not create duplicate names.
    assert store.write([metric("op", [T0 + 100], [0.0]), metric("op~", [T0 + 100], [4.0])])

    assert sorted(store.series_names(METRIC)) == sorted(AWKWARD_NAMES)
    for i, name in enumerate(AWKWARD_NAMES):
        data = store.read_columns(METRIC, name)
        extra = 1 if name in ("op", "op~") else 0
        assert data.size == i + 1 + extra, name
        assert set(data.columns[1].tolist()) == {float(i)}, name
        assert frames.metrics_frame(store, operations=[name])["operation"].eq(name).all()
    monitor = store.load_monitor()
    assert monitor.get_operation_names() == sorted(AWKWARD_NAMES)


def test_awkward_names_for_records_and_windows(store: SampleStore) -> None:
    for name in ("op", "op|x", "op~", "op2"):
        store.write([RecordBatch(PROFILE, name, [{"ts": T0 + 1, "operation": name}])])
    assert sorted(store.series_names(PROFILE)) == ["op", "op2", "op|x", "op~"]
    for name in ("op", "op|x", "op~", "op2"):
        assert [r["operation"] for r in store.read_records(PROFILE, name, since=T0)] == [name]
        assert store.read_records(PROFILE, name, since=T0 + 2) == []


# -- long batches and metadata -------------------------------------------------------------------


def test_batch_spanning_more_than_max_span_is_split_and_reads_back_whole(
    store: SampleStore, tmp_path: Path
) -> None:
    ts = T0 + np.arange(0.0, 4 * MAX_BATCH_SPAN_S + 1)  # 241 samples over 240 s
    meta = {0: {"i": 0}, 61: {"i": 61}, 200: {"i": 200}, 240: {"i": 240}}
    assert store.write([metric("long", ts, ts - T0, meta=meta)])

    data = store.read_columns(METRIC, "long")
    np.testing.assert_array_equal(data.columns[0], ts)
    np.testing.assert_array_equal(data.columns[1], ts - T0)
    assert data.meta == meta
    with diskcache.Cache(str(tmp_path / "store")) as raw:
        assert len(raw) >= 4  # stored as several batches
    # A window read late in the batch still finds its samples (its piece starts near them).
    late = store.read_columns(METRIC, "long", since=T0 + 200)
    np.testing.assert_array_equal(late.columns[0], ts[200:])
    assert late.meta == {0: {"i": 200}, 40: {"i": 240}}


def test_unordered_batch_spanning_more_than_max_span_is_found_by_window(
    store: SampleStore,
) -> None:
    # Threads appending concurrently may leave a batch slightly out of order; after a long pause
    # it can also span more than MAX_BATCH_SPAN_S. Every sample must stay findable.
    ts = np.array([T0 + 1, T0, T0 + 100, T0 + 99, T0 + 200])
    meta = {2: {"tag": "at100"}}
    assert store.write([metric("op", ts, ts - T0, meta=meta)])

    late = store.read_columns(METRIC, "op", since=T0 + 150)
    np.testing.assert_array_equal(late.columns[0], [T0 + 200])
    middle = store.read_columns(METRIC, "op", since=T0 + 95, until=T0 + 150)
    assert sorted(middle.columns[0].tolist()) == [T0 + 99, T0 + 100]
    assert list(middle.meta.values()) == [{"tag": "at100"}]
    assert middle.columns[1][next(iter(middle.meta))] == 100.0
    everything = store.read_columns(METRIC, "op")
    assert sorted(everything.columns[0].tolist()) == sorted(ts.tolist())
    assert dict(zip(everything.columns[0] - T0, everything.columns[1], strict=True)) == {
        float(t - T0): float(t - T0) for t in ts
    }


def test_record_batch_spanning_more_than_max_span_is_found_by_window(store: SampleStore) -> None:
    # A long flush interval (FLUSH_INTERVAL_S may be up to an hour) gives long record batches.
    rows = [{"ts": T0 + t, "operation": "op", "n": t} for t in (200, 0, 30, 90, 150, 61)]
    assert store.write([RecordBatch(PROFILE, "op", rows)])

    assert [r["n"] for r in store.read_records(PROFILE, "op", since=T0 + 140)] == [150, 200]
    assert [r["n"] for r in store.read_records(PROFILE, "op", since=T0 + 61, until=T0 + 90)] == [
        61,
        90,
    ]
    assert [r["n"] for r in store.read_records(PROFILE, "op")] == [0, 30, 61, 90, 150, 200]
    assert frames.profiles(store, since=T0 + 199)["n"].tolist() == [200]


def test_metadata_survives_sparse_and_reindexed_by_window(store: SampleStore) -> None:
    store.write([metric("op", T0 + np.arange(10), meta={0: {"k": "a"}, 7: {"k": "b", "n": 2}})])
    store.write([metric("op", T0 + 10 + np.arange(5), meta={1: {"k": "c"}})])
    store.write([metric("op", T0 + 15 + np.arange(5))])  # no metadata at all

    everything = store.read_columns(METRIC, "op")
    assert everything.meta == {0: {"k": "a"}, 7: {"k": "b", "n": 2}, 11: {"k": "c"}}

    window = store.read_columns(METRIC, "op", since=T0 + 2, until=T0 + 17)
    assert window.columns[0][0] == T0 + 2
    assert window.meta == {5: {"k": "b", "n": 2}, 9: {"k": "c"}}
    for position, item in window.meta.items():
        expected = {7: {"k": "b", "n": 2}, 11: {"k": "c"}}[int(window.columns[0][position] - T0)]
        assert item == expected

    monitor = store.load_monitor(since=T0 + 2, until=T0 + 17)
    metas = [m.metadata for m in monitor.get_metrics("op")]
    assert metas[5] == {"k": "b", "n": 2}
    assert metas[9] == {"k": "c"}
    assert sum(1 for m in metas if m) == 2


def test_non_json_metadata_is_stored_as_text(store: SampleStore) -> None:
    stamp = datetime(2024, 1, 2, tzinfo=UTC)
    store.write([metric("op", [T0], meta={0: {"when": stamp, "path": Path("/x")}})])
    assert store.read_columns(METRIC, "op").meta == {0: {"when": str(stamp), "path": "/x"}}


# -- security: permissions and pickles ------------------------------------------------------------


def test_folder_is_created_user_only(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # even with a permissive umask
    try:
        path = tmp_path / "nested" / "store"
        s = SampleStore(path)
        assert s.write([metric("op", [T0])])
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    s.close()


class _Exploit:
    """Unpickling this creates its marker file: the proof that a pickle was run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def _plant(folder: Path, key: str, value: Any) -> None:
    with diskcache.Cache(str(folder)) as plain:  # the default Disk pickles non-bytes values
        plain.set(key, value)


def test_pickled_rows_are_refused_not_unpickled(
    store: SampleStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.write([metric("x", [T0, T0 + 2], [1.0, 2.0])])
    store.write([RecordBatch(PROFILE, "x", [{"ts": T0, "operation": "x"}])])
    marker = tmp_path / "pwned"
    _plant(store.directory, f"metric|x|{T0 + 1:017.6f}|1|1", _Exploit(marker))
    _plant(store.directory, f"metric|x|{T0 + 3:017.6f}|1|2", {"a": 1})
    _plant(store.directory, f"profile|x|{T0 + 1:017.6f}|1|3", _Exploit(marker))
    assert not marker.exists()
    caplog.set_level(logging.WARNING, logger=STORE_LOGGER)

    data = store.read_columns(METRIC, "x")
    np.testing.assert_array_equal(data.columns[1], [1.0, 2.0])
    assert store.refused_rows == 2
    assert store.read_records(PROFILE, "x") == [{"ts": T0, "operation": "x"}]
    assert store.refused_rows == 3
    assert store.load_monitor().get_statistics("x")["count"] == 2
    assert frames.metrics_frame(store)["value"].tolist() == [1.0, 2.0]

    assert not marker.exists()
    assert any("pickle" in r.getMessage() for r in warnings_from_store(caplog))
    assert any("3 pickled rows" in problem for problem in store.check())


def test_healthy_store_checks_clean(store: SampleStore) -> None:
    store.write([metric("x", [T0])])
    assert store.check() == []
    assert store.volume_bytes() > 0
    assert store.clear() == 1
    assert store.series_names(METRIC) == []


def test_values_are_never_pickled(store: SampleStore) -> None:
    store.write([metric("x", [T0]), RecordBatch(PROFILE, "x", [{"ts": T0}])])
    with sqlite3.connect(store.directory / "cache.db") as con:
        rows = con.execute("SELECT mode, filename FROM Cache").fetchall()
    assert diskcache.core.MODE_PICKLE not in {mode for mode, _ in rows}
    assert {filename for _, filename in rows} == {None}  # values inline: no file to outlive


# -- retention and the size limit ----------------------------------------------------------------


def test_expired_batches_are_not_read_and_enforce_limits_removes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = SampleStore(tmp_path / "store", retention_days=1.0)
    real_time = time.time
    assert s.write([metric("old", [T0]), RecordBatch(PROFILE, "old", [{"ts": T0}])])
    monkeypatch.setattr(time, "time", lambda: real_time() + 0.6 * 86400)
    assert s.write([metric("new", [T0 + 1])])
    assert s.read_columns(METRIC, "old").size == 1  # not expired yet

    monkeypatch.setattr(time, "time", lambda: real_time() + 1.2 * 86400)

    assert s.read_columns(METRIC, "old").size == 0
    assert s.read_records(PROFILE, "old") == []
    assert s.load_monitor().get_operation_names() == ["new"]
    assert s.culled_batches == 0
    assert s.enforce_limits() == 2
    assert s.culled_batches == 2
    assert s.series_names(METRIC) == ["new"]
    assert s.series_names(PROFILE) == []
    assert s.read_columns(METRIC, "new").size == 1
    assert s.enforce_limits() == 0
    s.close()


def test_tiny_retention_expires_for_real(tmp_path: Path) -> None:
    s = SampleStore(tmp_path / "store", retention_days=1e-6)  # 86 ms
    assert s.write([metric("op", [T0, T0 + 1])])
    deadline = time.monotonic() + 30
    while s.read_columns(METRIC, "op").size and time.monotonic() < deadline:
        time.sleep(0.05)
    assert s.read_columns(METRIC, "op").size == 0
    removed = s.enforce_limits()
    assert removed == 1
    assert s.culled_batches >= 1
    s.close()


def test_size_limit_culls_the_oldest_batches(tmp_path: Path) -> None:
    limit_mb = 0.5
    s = SampleStore(tmp_path / "store", size_limit_mb=limit_mb)
    # 16 KB of values a batch, 1.6 MB in all. (diskcache culls ten entries at a time, so the
    # batches must be many and small for "the oldest go first" to show.)
    n, per_batch = 100, 1000
    for i in range(n):
        ts = T0 + 10 * i + np.arange(per_batch) * 1e-3
        assert s.write([metric("big", ts, np.full(per_batch, float(i)))])

    removed = s.enforce_limits()
    culled = s.culled_batches

    assert culled >= removed
    assert culled > 0
    assert s.volume_bytes() <= limit_mb * 1024 * 1024
    kept = sorted({int(v) for v in s.read_columns(METRIC, "big").columns[1]})
    assert 0 not in kept
    assert kept[-1] == n - 1  # the newest survive...
    assert kept == list(range(kept[0], n))  # ...as one run: the oldest went first
    assert len(kept) == n - culled
    for i in kept:
        assert s.read_columns(METRIC, "big", since=T0 + 10 * i, until=T0 + 10 * i + 5).size == (
            per_batch
        )
    s.close()


@pytest.mark.parametrize(("size", "days"), [(0, 1), (-1, 1), (1, 0), (1, -5)])
def test_limits_must_be_positive(tmp_path: Path, size: float, days: float) -> None:
    with pytest.raises(ValueError):
        SampleStore(tmp_path, size_limit_mb=size, retention_days=days)


# -- never harm the host app ---------------------------------------------------------------------


def _fail_many_writes(s: SampleStore, times: int = 6) -> int:
    """Failed writes; returns the samples they hold, which wait for the store to work again."""
    samples = 0
    for i in range(times):
        batch = [metric("op", T0 + i + np.arange(3)), RecordBatch(PROFILE, "op", [{"ts": T0}])]
        samples += 4
        assert s.write(batch) is False
    return samples


def test_store_under_a_regular_file_fails_writes_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    s = SampleStore(blocker / "store")  # works as root too: nothing can create this folder
    caplog.set_level(logging.WARNING, logger=STORE_LOGGER)

    waiting = _fail_many_writes(s)

    assert s.error_count == 6
    assert s.waiting_samples == waiting
    assert s.dropped_samples == 0  # nothing is lost yet: they wait in memory
    assert s.last_error
    assert len(warnings_from_store(caplog)) == 1
    assert str(blocker / "store") in warnings_from_store(caplog)[0].getMessage()
    with pytest.raises(StoreError) as info:
        s.read_columns(METRIC, "op")
    assert str(blocker / "store") in str(info.value)
    assert s.enforce_limits() == 0  # housekeeping does not raise either


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_unwritable_parent_folder_fails_writes_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("permissions do not apply to this user (root)")
        s = SampleStore(parent / "store")
        caplog.set_level(logging.WARNING, logger=STORE_LOGGER)
        waiting = _fail_many_writes(s)
        assert s.error_count == 6
        assert s.waiting_samples == waiting
        assert len(warnings_from_store(caplog)) == 1
    finally:
        parent.chmod(0o700)


def test_full_disk_fails_writes_quietly_then_recovers(
    store: SampleStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert store.write([metric("op", [T0 - 10], [1.0])])
    caplog.set_level(logging.WARNING, logger=STORE_LOGGER)

    def no_space(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(Transaction, "put", no_space)
        waiting = _fail_many_writes(store)

    assert store.error_count == 6
    assert store.waiting_samples == waiting
    assert store.dropped_samples == 0
    assert "No space" in (store.last_error or "")
    assert len(warnings_from_store(caplog)) == 1
    # Nothing half-written: the failed transactions left no samples behind.
    assert store.read_columns(METRIC, "op").columns[1].tolist() == [1.0]

    assert store.write([metric("op", [T0 + 100], [2.0])])  # the disk has room again
    # What waited is written with it, each sample once.
    values = store.read_columns(METRIC, "op").columns[1].tolist()
    assert sorted(values) == sorted([1.0, 2.0] + [i + j for i in range(6) for j in range(3)])
    assert len(store.read_records(PROFILE, "op")) == 6
    assert store.waiting_samples == 0
    assert store.error_count == 6
    assert len(warnings_from_store(caplog)) == 2  # "works again"


def test_corrupt_store_raises_on_read_and_writing_moves_it_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "store"
    folder.mkdir(mode=0o700)
    (folder / "cache.db").write_bytes(b"\x00garbage, not SQLite\xff" * 512)
    s = SampleStore(folder)
    caplog.set_level(logging.WARNING, logger=STORE_LOGGER)

    readers = [
        lambda: s.read_columns(METRIC, "op"),
        lambda: s.read_records(PROFILE),
        lambda: s.series_names(METRIC),
        s.load_monitor,
        s.load_api_tracker,
        lambda: frames.metrics_frame(s),
        lambda: frames.api_frame(s),
        lambda: frames.profiles(s),
        s.check,
    ]
    for read in readers:
        with pytest.raises(StoreError) as info:
            read()
        assert str(folder) in str(info.value)

    assert s.write([metric("op", [T0, T0 + 1])]) is True  # moved aside, started afresh
    assert s.read_columns(METRIC, "op").size == 2
    assert s.error_count == 1
    assert s.dropped_samples == 0
    (aside,) = folder.glob("cache.db.corrupt-*")
    assert aside.read_bytes().startswith(b"\x00garbage")
    assert any("damaged" in r.getMessage() for r in warnings_from_store(caplog))


def test_store_folder_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "store"
    path.write_text("oops")
    s = SampleStore(path)

    with pytest.raises(StoreError) as info:
        s.series_names(METRIC)
    assert str(path) in str(info.value)
    assert "file" in info.value.reason
    assert s.write([metric("op", [T0])]) is False
    assert s.error_count == 1
    assert path.read_text() == "oops"


def test_monitor_with_a_failing_store_keeps_recording_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    s = SampleStore(blocker / "store")
    monitor = PerformanceMonitor(store=s)
    caplog.set_level(logging.WARNING, logger=STORE_LOGGER)
    values = [0.5, 1.5, 2.5, 3.5]

    for round_ in range(3):
        for v in values:
            monitor.record_metric("op", v)
        with monitor.timer("timed"):
            pass
        monitor.flush()  # must not raise
        assert monitor.get_statistics("op")["count"] == 4 * (round_ + 1)

    stats = monitor.get_statistics("op")
    assert stats["mean"] == 2.0
    assert stats["median"] == 2.0
    assert stats["p90"] == np.percentile(values * 3, 90)
    assert monitor.get_statistics("timed")["count"] == 3
    assert s.error_count >= 3
    assert s.waiting_samples == 15  # waiting for the folder to become writable
    assert len(warnings_from_store(caplog)) == 1


# -- the flusher's grouping ------------------------------------------------------------------------


class _Source:
    def __init__(self, store: SampleStore | None, batches: list[Any], fail: bool = False) -> None:
        self.store = store
        self._batches = batches
        self.fail = fail
        self.calls = 0

    def pending_batches(self) -> list[Any]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("source bug")
        batches, self._batches = self._batches, []
        return batches


def test_flush_sources_groups_by_store_and_survives_a_broken_source(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = SampleStore(tmp_path / "a"), SampleStore(tmp_path / "b")
    writes: list[tuple[SampleStore, int]] = []
    real_write = SampleStore.write

    def counting_write(self: SampleStore, items: Any) -> bool:
        writes.append((self, len(items)))
        return real_write(self, items)

    monkeypatch.setattr(SampleStore, "write", counting_write)
    sources = [
        _Source(a, [metric("x", [T0])]),
        _Source(None, [metric("never", [T0])]),
        _Source(a, [], fail=True),
        _Source(a, [metric("y", [T0])]),
        _Source(b, [metric("z", [T0])]),
    ]

    with caplog.at_level(logging.ERROR):
        _flusher.flush_sources(sources)

    assert sorted((s.directory.name, n) for s, n in writes) == [("a", 2), ("b", 1)]
    assert a.series_names(METRIC) == ["x", "y"]
    assert b.series_names(METRIC) == ["z"]
    assert sources[1].calls == 0  # no store: its samples stay where they are
    assert any(r.exc_info and "source bug" in str(r.exc_info[1]) for r in caplog.records)


def test_flusher_background_thread_writes_registered_sources(tmp_path: Path) -> None:
    s = SampleStore(tmp_path / "store")
    flusher = _flusher._Flusher()
    source = _Source(s, [metric("bg", [T0])])
    flusher.register(source, interval_s=0.05)
    try:
        deadline = time.monotonic() + 30
        while not (s.directory.exists() and s.series_names(METRIC)):
            assert time.monotonic() < deadline, "the flusher thread never wrote"
            time.sleep(0.02)
        assert s.read_columns(METRIC, "bg").size == 1
        assert flusher._thread is not None and flusher._thread.daemon
    finally:
        flusher._wake.set()
        if flusher._thread is not None:
            flusher._thread.join(10)


def test_flusher_forgets_dropped_sources(tmp_path: Path) -> None:
    flusher = _flusher._Flusher()
    flusher.interval_s = 3600
    source = _Source(SampleStore(tmp_path / "store"), [])
    flusher.register(source, interval_s=3600)
    assert len(flusher._sources) == 1
    del source
    import gc

    gc.collect()
    assert len(flusher._sources) == 0
    flusher.flush_all()  # nothing left: no error
    flusher._wake.set()


# -- compaction --------------------------------------------------------------------------------


def _entries(store: SampleStore) -> int:
    return len(diskcache.Cache(str(store.directory)))


def test_compaction_merges_each_hour_into_one_batch_and_keeps_every_sample(
    store: SampleStore,
) -> None:
    hour = 3600.0
    start = np.floor(T0 / hour) * hour
    # A slow series: one flush per sample for three hours, some with metadata.
    stamps = start + np.arange(0.0, 3 * hour, 90.0)
    for i, ts in enumerate(stamps):
        meta = {0: {"session_id": f"s{i}"}} if i % 10 == 0 else None
        store.write([metric("slow", [ts], [float(i)], meta=meta)])
    store.write(
        [
            RecordBatch(PROFILE, "decode", [{"ts": float(ts), "n": i}])
            for i, ts in enumerate(stamps[:40])
        ]
    )
    before = store.read_columns(METRIC, "slow")
    records_before = store.read_records(PROFILE, "decode")
    assert _entries(store) == len(stamps) + 40

    merged = store.compact(older_than=start + 3 * hour)

    assert merged == len(stamps) - 3 + 40 - 1  # three hours of metrics, one of profiles
    assert _entries(store) == 3 + 1
    after = store.read_columns(METRIC, "slow")
    np.testing.assert_array_equal(after.columns[0], before.columns[0])
    np.testing.assert_array_equal(after.columns[1], before.columns[1])
    assert after.meta == before.meta and len(after.meta) == len(stamps) // 10
    assert store.read_records(PROFILE, "decode") == records_before
    # A window inside the second hour still reads exactly its samples.
    window = store.read_columns(METRIC, "slow", since=start + hour + 1, until=start + 2 * hour)
    expected = stamps[(stamps >= start + hour + 1) & (stamps <= start + 2 * hour)]
    np.testing.assert_array_equal(window.columns[0], expected)
    # Nothing left to do: a second pass, here or from another process, merges nothing.
    assert store.compact(older_than=start + 3 * hour) == 0
    assert SampleStore(store.directory).compact(older_than=start + 3 * hour) == 0
    np.testing.assert_array_equal(store.read_columns(METRIC, "slow").columns[0], stamps)


def test_compaction_leaves_recent_hours_alone(store: SampleStore) -> None:
    now = time.time()
    store.write([metric("fresh", [now - 5.0]), metric("fresh", [now - 4.0])])
    assert store.compact() == 0
    assert _entries(store) == 2


def test_compaction_skips_rows_it_cannot_read(store: SampleStore) -> None:
    store.write([metric("op", [T0]), metric("op", [T0 + 1])])
    planted = f"metric|op|{T0 + 2:017.6f}|1|1"
    diskcache.Cache(str(store.directory)).set(planted, {"a": 1})  # pickled by diskcache
    assert store.compact(older_than=T0 + 7200) == 1
    assert planted in diskcache.Cache(str(store.directory))  # left for readers to refuse
    np.testing.assert_array_equal(store.read_columns(METRIC, "op").columns[0], [T0, T0 + 1])


def test_compacted_records_read_back_with_their_types(store: SampleStore) -> None:
    rows = [
        {
            "ts": T0 + i,
            "cache": "curves",
            "pid": 7,
            "hits": i,
            "hit_rate": i / 10,
            "gpu0_power_w": None if i % 2 else 41.5,
        }
        for i in range(10)
    ]
    store.write([RecordBatch(CACHE, "curves", [row]) for row in rows])
    assert store.compact(older_than=T0 + 7200) == 9

    assert store.read_records(CACHE, "curves") == rows  # ints stay ints, None stays None
    frame = frames.cache_stats(store)
    assert frame["hits"].tolist() == list(range(10))
    assert frame["pid"].dtype == np.int64
    assert frame["cache"].tolist() == ["curves"] * 10
    assert frame["gpu0_power_w"].isna().tolist() == [i % 2 == 1 for i in range(10)]


def test_compaction_leaves_foreign_rows_and_goes_on(store: SampleStore) -> None:
    store.write(
        [metric("a", [T0]), metric("a", [T0 + 1]), metric("b", [T0]), metric("b", [T0 + 1])]
    )
    foreign = f"metric|a|{T0 + 2:017.6f}|1|1"
    diskcache.Cache(str(store.directory)).set(foreign, b"not a batch")
    assert store.compact(older_than=T0 + 7200) == 2  # one merge in each series
    assert store.error_count == 0
    assert foreign in diskcache.Cache(str(store.directory))
    np.testing.assert_array_equal(store.read_columns(METRIC, "b").columns[0], [T0, T0 + 1])


def test_a_dropped_monitor_still_writes_what_it_held(store: SampleStore) -> None:
    def record() -> None:
        monitor = PerformanceMonitor(store=store)
        for i in range(50):
            monitor.record_metric("short_lived", float(i))

    record()
    import gc

    gc.collect()  # its finaliser hands its samples to the store and wakes the flusher
    deadline = time.monotonic() + 20
    while store.read_columns(METRIC, "short_lived").size < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.read_columns(METRIC, "short_lived").size == 50
    assert store.dropped_samples == 0
