"""Unit tests for CacheManager (ptpd_calibration.monitoring.cache), both backends.

Expiry runs on an injected clock, every folder lives under ``tmp_path``, and nothing asserts on
timing.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import diskcache
import numpy as np
import pytest

from ptpd_calibration.monitoring import frames
from ptpd_calibration.monitoring.cache import CacheManager
from ptpd_calibration.monitoring.models import CacheStats
from ptpd_calibration.monitoring.settings import get_settings
from ptpd_calibration.monitoring.store import CACHE, SampleStore

if TYPE_CHECKING:
    from conftest import FakeClock

BACKENDS = ["memory", "disk"]

# ----------------------------------------------------------------------------- helpers


MakeCache = Callable[..., CacheManager]


@pytest.fixture(params=BACKENDS)
def make_cache(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> MakeCache:
    """Builds caches of the parametrised backend on the fake clock (disk: in ``tmp_path``)."""
    backend: str = request.param

    def make(max_size: int = 100, default_ttl: float = 60.0, **kwargs: Any) -> CacheManager:
        if backend == "disk":
            kwargs.setdefault("directory", tmp_path / "cache")
        return CacheManager(max_size, default_ttl, backend, clock=clock, **kwargs)

    return make


def _counts(cache: CacheManager) -> tuple[int, int, int, int, int]:
    stats = cache.get_stats()
    return stats.hits, stats.misses, stats.evictions, stats.expirations, stats.size


# ----------------------------------------------------------------------------- basics


def test_set_get_delete_clear_and_size(make_cache: MakeCache) -> None:
    cache = make_cache()
    assert cache.get("missing") is None
    assert cache.get("missing", "fallback") == "fallback"
    cache.set("a", 1)
    cache.set("b", {"curve": [0.0, 0.5, 1.0], "name": "Pt/Pd 50%"})
    assert cache.get("a") == 1
    assert cache.get("b") == {"curve": [0.0, 0.5, 1.0], "name": "Pt/Pd 50%"}
    assert cache.get_size() == len(cache) == 2
    assert "a" in cache and "zzz" not in cache

    cache.set("a", 2)
    assert cache.get("a") == 2 and len(cache) == 2

    assert cache.delete("a") is True
    assert cache.delete("a") is False
    assert "a" not in cache and len(cache) == 1

    cache.clear()
    assert len(cache) == 0 and cache.get("b") is None


def test_cached_none_is_a_hit(make_cache: MakeCache) -> None:
    cache = make_cache()
    cache.set("nothing", None)
    assert cache.get("nothing", "absent") is None
    assert "nothing" in cache
    stats = cache.get_stats()
    assert (stats.hits, stats.misses) == (1, 0)


def test_membership_touches_neither_counters_nor_recency(make_cache: MakeCache) -> None:
    cache = make_cache(max_size=2)
    cache.set("old", 1)
    cache.set("new", 2)
    assert "old" in cache and "nope" not in cache
    cache.set("newest", 3)  # "old" is still the least recently used
    assert "old" not in cache
    assert _counts(cache)[:2] == (0, 0)


def test_stats_rates_and_fields(make_cache: MakeCache) -> None:
    cache = make_cache(max_size=10, name="thumbs")
    empty = cache.get_stats()
    assert isinstance(empty, CacheStats)
    assert (empty.hit_rate, empty.miss_rate) == (0.0, 0.0)
    cache.set("k", "v")
    for _ in range(3):
        cache.get("k")
    cache.get("other")
    stats = cache.get_stats()
    assert (stats.hits, stats.misses, stats.size, stats.max_size) == (3, 1, 1, 10)
    assert stats.name == "thumbs"
    assert stats.hit_rate == pytest.approx(0.75)
    assert stats.miss_rate == pytest.approx(0.25)


# ----------------------------------------------------------------------------- LRU


def test_lru_evicts_least_recently_used_and_get_refreshes(make_cache: MakeCache) -> None:
    cache = make_cache(max_size=3)
    for key in ("a", "b", "c"):
        cache.set(key, key.upper())
    assert cache.get("a") == "A"  # "b" is now the least recently used
    cache.set("d", "D")
    assert "b" not in cache
    assert all(key in cache for key in ("a", "c", "d"))
    assert cache.get_stats().evictions == 1

    cache.set("c", "C2")  # setting refreshes too: "a" is now the oldest
    cache.set("e", "E")
    assert "a" not in cache and cache.get("c") == "C2"
    stats = cache.get_stats()
    assert (stats.evictions, stats.size) == (2, 3)


def test_overwriting_a_key_never_evicts(make_cache: MakeCache) -> None:
    cache = make_cache(max_size=2)
    cache.set("a", 1)
    cache.set("b", 2)
    for value in range(5):
        cache.set("b", value)
    assert cache.get("a") == 1 and cache.get("b") == 4
    assert cache.get_stats().evictions == 0


# ----------------------------------------------------------------------------- TTL


def test_default_and_per_key_ttl(make_cache: MakeCache, clock: FakeClock) -> None:
    cache = make_cache(default_ttl=10.0)
    cache.set("short", "s", ttl=2)
    cache.set("default", "d")
    cache.set("long", "l", ttl=100.0)

    clock.advance(1.999)
    assert cache.get("short") == "s"
    clock.advance(0.001)  # an entry expires at exactly set time + ttl
    assert cache.get("short") is None
    assert "short" not in cache
    assert cache.get("default") == "d"

    clock.advance(8.0)
    assert "default" not in cache
    assert cache.get("default", "gone") == "gone"
    assert cache.get("long") == "l"

    hits, misses, evictions, expirations, size = _counts(cache)
    assert (hits, misses, evictions, expirations, size) == (3, 2, 0, 2, 1)


def test_cleanup_expired_counts_what_it_removes(make_cache: MakeCache, clock: FakeClock) -> None:
    cache = make_cache(default_ttl=5.0)
    for i in range(4):
        cache.set(f"soon{i}", i)
    cache.set("later", "x", ttl=50)
    assert cache.cleanup_expired() == 0

    clock.advance(5.0)
    assert len(cache) == 5  # expired entries stay until looked up or cleaned up
    assert cache.cleanup_expired() == 4
    assert cache.cleanup_expired() == 0
    assert len(cache) == 1 and cache.get("later") == "x"
    assert cache.get_stats().expirations == 4


def test_expired_entries_pushed_out_count_as_expirations(
    make_cache: MakeCache, clock: FakeClock
) -> None:
    cache = make_cache(max_size=2)
    cache.set("stale", 1, ttl=1)
    cache.set("fresh", 2)
    clock.advance(1)
    cache.set("newer", 3)  # pushes out "stale", which had expired anyway
    cache.set("newest", 4)  # pushes out "fresh", which was live
    stats = cache.get_stats()
    assert (stats.expirations, stats.evictions) == (1, 1)


def test_delete_of_an_expired_entry(make_cache: MakeCache, clock: FakeClock) -> None:
    cache = make_cache()
    cache.set("k", "v", ttl=1)
    clock.advance(2)
    assert cache.delete("k") is False
    assert len(cache) == 0
    assert cache.get_stats().expirations == 1


@pytest.mark.parametrize("how", ["default_ttl=0", "ttl=0"])
def test_a_ttl_of_zero_never_expires(make_cache: MakeCache, clock: FakeClock, how: str) -> None:
    # As in the original module: 0 means "keep until evicted or deleted", not an error.
    cache = make_cache(max_size=2, default_ttl=0 if how == "default_ttl=0" else 10.0)
    if how == "default_ttl=0":
        cache.set("forever", "f")
    else:
        cache.set("forever", "f", ttl=0)
    cache.set("short", "s", ttl=1)

    clock.advance(10 * 365 * 86_400.0)
    assert cache.cleanup_expired() == 1  # "short" only
    assert "forever" in cache
    assert cache.get("forever") == "f"
    cache.set("a", 1, ttl=0)
    cache.set("b", 2, ttl=0)  # LRU eviction still applies
    assert "forever" not in cache
    assert cache.get_stats().evictions == 1
    assert cache.delete("b") is True


def test_reset_after_expiry_lives_again(make_cache: MakeCache, clock: FakeClock) -> None:
    cache = make_cache()
    cache.set("k", "old", ttl=1)
    clock.advance(1)
    cache.set("k", "new", ttl=1)
    assert cache.get("k") == "new"


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_size": 0}, "max_size"),
        ({"max_size": -5}, "max_size"),
        ({"max_size": 2.5}, "max_size"),
        ({"max_size": True}, "max_size"),
        ({"max_size": "100"}, "max_size"),
        ({"default_ttl": -1.0}, "default_ttl"),
        ({"default_ttl": float("nan")}, "default_ttl"),
        ({"default_ttl": float("inf")}, "default_ttl"),
        ({"default_ttl": "60"}, "default_ttl"),
        ({"backend": "redis"}, "backend"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": 3}, "name"),
        ({"clock": 12.0}, "clock"),
    ],
)
def test_bad_arguments_fail_up_front(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CacheManager(**kwargs)


@pytest.mark.parametrize("ttl", [-1, -0.5, float("nan"), float("inf"), True, "10"])
def test_bad_ttl_on_set(make_cache: MakeCache, ttl: Any) -> None:
    cache = make_cache()
    with pytest.raises(ValueError, match="ttl"):
        cache.set("k", "v", ttl=ttl)
    assert len(cache) == 0


def test_numpy_numbers_are_fine_arguments() -> None:
    cache = CacheManager(np.int64(5), np.float64(1.5))
    assert (cache.max_size, cache.default_ttl) == (5, 1.5)


def test_defaults_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTPD_MONITORING_CACHE_SIZE", "7")
    monkeypatch.setenv("PTPD_MONITORING_CACHE_TTL", "12.5")
    get_settings.cache_clear()
    cache = CacheManager()
    assert (cache.max_size, cache.default_ttl, cache.backend) == (7, 12.5, "memory")
    assert cache.store is None and cache.name == "default"


# ----------------------------------------------------------------------------- threads


@pytest.mark.parametrize(
    ("backend", "threads", "per_thread"), [("memory", 8, 2000), ("disk", 4, 60)]
)
def test_threads_hammering_keep_exact_counts(
    tmp_path: Path, backend: str, threads: int, per_thread: int
) -> None:
    max_size = per_thread // 4
    cache = CacheManager(max_size, 3600, backend, directory=tmp_path / "cache")

    def work(worker: int) -> int:
        gets = 0
        for i in range(per_thread):
            key = f"{worker}:{i}"
            cache.set(key, [worker, i])
            value = cache.get(key)
            assert value is None or value == [worker, i]
            cache.get(f"{(worker + 1) % threads}:{i}")
            gets += 2
        return gets

    with ThreadPoolExecutor(max_workers=threads) as pool:
        gets = sum(pool.map(work, range(threads)))

    hits, misses, evictions, expirations, size = _counts(cache)
    assert hits + misses == gets
    assert size <= max_size
    # Every key was set once and nothing expired: what is not here was evicted.
    assert evictions == threads * per_thread - size
    assert expirations == 0


# ----------------------------------------------------------------------------- disk backend


def _disk(directory: Path, **kwargs: Any) -> CacheManager:
    kwargs.setdefault("max_size", 100)
    return CacheManager(backend="disk", directory=directory, **kwargs)


def test_disk_entries_persist_across_managers(tmp_path: Path) -> None:
    first = _disk(tmp_path / "shared", default_ttl=600)
    first.set("result:42", {"dmax": 1.62, "steps": [0.1, 0.2]})
    first.set(7, b"\x00\x01 raw bytes")
    second = _disk(tmp_path / "shared")
    assert second.get("result:42") == {"dmax": 1.62, "steps": [0.1, 0.2]}
    assert second.get(7) == b"\x00\x01 raw bytes"
    assert second.get("7") is None  # int and str keys stay distinct
    assert len(second) == 2
    second.delete("result:42")
    assert "result:42" not in first


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        -3,
        2.5,
        "text ✓",
        [1, "two", None, [3.0]],
        {"nested": {"list": [1, 2], "flag": False}},
        b"",
        b"\xff" * 100_000,  # large enough for diskcache to keep it in a file
    ],
)
def test_disk_round_trips_supported_values(tmp_path: Path, value: Any) -> None:
    cache = _disk(tmp_path / "cache")
    cache.set("k", value)
    got = cache.get("k", "absent")
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    "array",
    [
        np.linspace(0.0, 1.0, 21),
        np.arange(256 * 256, dtype=np.uint16).reshape(256, 256),  # stored in a file
        np.array([[True, False], [False, True]]),
        np.array(["Pt", "Pd", "Au"]),
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        np.zeros((0, 3), dtype=np.float32),
    ],
)
def test_disk_numpy_array_round_trip(tmp_path: Path, array: np.ndarray) -> None:
    cache = _disk(tmp_path / "cache")
    cache.set("arr", array)
    got = _disk(tmp_path / "cache").get("arr")
    assert isinstance(got, np.ndarray)
    assert got.dtype == array.dtype and got.shape == array.shape
    np.testing.assert_array_equal(got, array)
    assert got.flags.writeable


@pytest.mark.parametrize(
    "value",
    [
        (1, 2),
        {1, 2},
        object(),
        {1: "int key"},
        [("tuple", "inside")],
        bytearray(b"abc"),
        np.float32(1.0),
        np.array([object()], dtype=object),
    ],
)
def test_disk_refuses_values_it_would_have_to_pickle(tmp_path: Path, value: Any) -> None:
    cache = _disk(tmp_path / "cache")
    with pytest.raises(ValueError, match="disk cache"):
        cache.set("k", value)
    assert len(cache) == 0


@pytest.mark.parametrize("key", [("tuple",), 1.5, True, b"bytes", 2**70, None])
def test_disk_refuses_keys_other_than_str_and_int(tmp_path: Path, key: Any) -> None:
    cache = _disk(tmp_path / "cache")
    with pytest.raises(ValueError, match="keys must be str or"):
        cache.set(key, "v")
    with pytest.raises(ValueError, match="keys must be str or"):
        cache.get(key)


UNPICKLED: list[str] = []


def _mark_unpickled() -> str:
    UNPICKLED.append("unpickled")
    return "payload ran"


class _Payload:
    """Whoever unpickles this runs _mark_unpickled: what a planted pickle could do."""

    def __reduce__(self) -> tuple[Callable[[], str], tuple[()]]:
        return _mark_unpickled, ()


def test_disk_pickled_row_is_a_miss_not_an_unpickle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "cache"
    cache = _disk(directory)
    with diskcache.Cache(str(directory)) as plain:
        plain.set("planted", _Payload())
        plain.set("planted-too", _Payload())
        plain.set("text", "a plain diskcache str value")
        (mode,) = plain._sql("SELECT mode FROM Cache WHERE key = 'planted'").fetchone()
        assert mode == diskcache.core.MODE_PICKLE

    caplog.set_level(logging.WARNING, logger="ptpd_calibration.monitoring.cache")
    assert cache.get("planted", "miss") == "miss"
    assert cache.get("planted-too", "miss") == "miss"
    assert cache.get("text", "miss") == "miss"
    assert "planted" not in cache
    assert UNPICKLED == []
    assert cache.refused_rows == 3
    assert cache.get_stats().misses == 3
    warnings = [r for r in caplog.records if "pickle" in r.getMessage()]
    assert len(warnings) == 1  # logged once

    cache.set("planted", "ours now")
    assert cache.get("planted") == "ours now"


def test_disk_folder_is_created_user_only(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "nested" / "cache"
    _disk(directory).set("k", 1)
    for folder in (tmp_path / "new", tmp_path / "new" / "nested", directory):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_disk_default_folder_sits_beside_the_store(isolated_monitoring_env: Path) -> None:
    cache = CacheManager(backend="disk", name="thumbnails")
    expected = isolated_monitoring_env.parent / "ptpd-monitor-cache" / "thumbnails"
    assert cache.directory == expected
    cache.set("k", "v")
    assert (expected / "cache.db").exists()
    assert stat.S_IMODE(expected.stat().st_mode) == 0o700
    assert stat.S_IMODE(expected.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("name", ["../escape", "a/b", ".."])
def test_disk_default_folder_needs_a_plain_name(name: str) -> None:
    with pytest.raises(ValueError, match="folder"):
        CacheManager(backend="disk", name=name)


def test_disk_backend_from_settings(
    monkeypatch: pytest.MonkeyPatch, isolated_monitoring_env: Path
) -> None:
    monkeypatch.setenv("PTPD_MONITORING_CACHE_BACKEND", "disk")
    get_settings.cache_clear()
    cache = CacheManager()
    assert cache.backend == "disk"
    assert cache.directory == isolated_monitoring_env.parent / "ptpd-monitor-cache" / "default"


def test_unusable_folder_falls_back_to_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    caplog.set_level(logging.WARNING, logger="ptpd_calibration.monitoring.cache")
    cache = _disk(blocker)
    assert cache.backend == "memory" and cache.error_count == 1
    assert len([r for r in caplog.records if "cannot use its folder" in r.getMessage()]) == 1
    cache.set("k", (1, 2))  # the memory backend takes any value
    assert cache.get("k") == (1, 2)


# ----------------------------------------------------------------------------- stats publishing


def test_pending_batches_only_when_something_changed(clock: FakeClock) -> None:
    cache = CacheManager(10, 60, name="curves", clock=clock)
    assert cache.pending_batches() == []  # nothing happened yet

    cache.set("k", "v")
    cache.get("k")
    cache.get("nope")
    (batch,) = cache.pending_batches()
    assert (batch.kind, batch.series) == (CACHE, "curves")
    (row,) = batch.rows
    assert row["pid"] == os.getpid()
    del row["ts"], row["pid"]
    assert row == {
        "cache": "curves",
        "backend": "memory",
        "hits": 1,
        "misses": 1,
        "size": 1,
        "max_size": 10,
        "evictions": 0,
        "expirations": 0,
        "hit_rate": 0.5,
    }
    assert cache.pending_batches() == []

    cache.set("k2", "v2")  # only the size changed
    (batch,) = cache.pending_batches()
    assert batch.rows[0]["size"] == 2
    assert cache.pending_batches() == []


def test_snapshots_reach_the_store_on_flush(tmp_path: Path) -> None:
    store = SampleStore(tmp_path / "store")
    cache = CacheManager(5, 60, name="negatives", store=store)
    assert cache.store is store
    cache.set("a", 1)
    cache.get("a")
    cache.get("a")
    cache.get("b")
    cache.flush()

    frame = frames.cache_stats(store, name="negatives")
    latest = frame.iloc[-1]
    assert latest["cache"] == "negatives" and latest["pid"] == os.getpid()
    assert (latest["hits"], latest["misses"], latest["size"]) == (2, 1, 1)
    assert latest["hit_rate"] == pytest.approx(2 / 3)
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"

    # The background flusher may have published too, but never a snapshot that did not change.
    rows = len(frame)
    cache.flush()
    cache.flush()
    assert len(frames.cache_stats(store, name="negatives")) == rows


def test_a_cache_without_a_store_publishes_nowhere(isolated_monitoring_env: Path) -> None:
    cache = CacheManager(5, 60)
    cache.set("a", 1)
    cache.flush()
    assert cache.store is None
    assert not isolated_monitoring_env.exists()  # the default store stays untouched
    assert cache.pending_batches()  # the snapshot is still there for whoever asks
