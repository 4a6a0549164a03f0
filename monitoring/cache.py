"""CacheManager: an LRU cache with a TTL per entry, in this process's memory or in a shared folder.

The ``memory`` backend is an OrderedDict kept in recency order under one RLock: a hit costs one
lock, one dict lookup, one clock read, a ``move_to_end`` and a counter increment, which keeps it
no slower than a hit in cachetools' ``TTLCache`` (measured side by side with timeit).

The ``disk`` backend is a diskcache folder that every process on this machine shares and that
outlives them. Nothing is ever pickled: a row holds the bytes ``type tag | expiry | payload``,
where the payload is JSON, raw bytes or an ``.npy`` array saved with ``allow_pickle=False``; a
pickled row that something else planted in the folder is a miss, never unpickled. The expiry is
absolute time on the manager's clock, kept in the row and in diskcache's ``tag`` column (so the
clock can be injected), and passed to diskcache as ``expire=`` so its own culling also works.

Hits, misses, evictions and expirations are counted per process. A manager given a ``store``
publishes a snapshot of them whenever they change; the store adds up every process's snapshots.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import numbers
import os
import sqlite3
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import diskcache
import numpy as np

from . import _folder
from ._common import check_name
from ._folder import NoPickleDisk, PickledRowError
from ._publisher import Publisher
from .models import CacheStats
from .settings import get_settings
from .store import CACHE, RecordBatch, SampleStore

__all__ = ["BACKENDS", "CacheManager"]

logger = logging.getLogger(__name__)

BACKENDS = ("memory", "disk")
# Tell "absent" and "found expired" from a cached None.
_MISSING: Any = object()
_EXPIRED: Any = object()
# A disk row: a one-byte type tag, then the absolute expiry (epoch seconds), then the payload.
_ROW_HEADER = struct.Struct("<cd")
_JSON, _BYTES, _NUMPY = b"J", b"B", b"N"
_SUPPORTED = "None, bool, int, float, str, list, dict with str keys, bytes or a numpy array"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# What a broken, locked or vanished folder raises; the host app never sees these.
_DISK_ERRORS = (sqlite3.Error, OSError, diskcache.Timeout)
_SELECT_ROW = "SELECT rowid, mode, filename, value FROM Cache WHERE key = ? AND raw = 1"
# Counters of one process: hits, misses, evictions, expirations, size.
_Counters = tuple[int, int, int, int, int]
_SNAPSHOT_FIELDS = {"hits", "misses", "size", "max_size", "evictions", "expirations", "hit_rate"}
_OPEN_FAILED = "its entries stay in this process's memory instead"
_IO_FAILED = "lookups miss and sets are dropped while it fails"


def _positive_int(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _ttl_seconds(what: str, value: object) -> float:
    """A lifetime in seconds; 0 means the entry never expires (as in the original module)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what} must be a number of seconds (0: never expires), got {value!r}")
    seconds = float(value)
    if not 0.0 <= seconds < math.inf:
        raise ValueError(
            f"{what} must be a finite number of seconds, 0 or more (0: never expires), "
            f"got {value!r}"
        )
    return seconds


def _expiry(now: float, seconds: float) -> float:
    """When an entry set now for ``seconds`` expires; a TTL of 0 never does."""
    return now + seconds if seconds else math.inf


def _unsupported(value: object) -> ValueError:
    return ValueError(
        f"The disk cache stores {_SUPPORTED}; got {type(value).__name__} "
        "(values are never pickled, so other types cannot be stored)"
    )


def _check_json(value: object) -> None:
    """Only values that come back as they went in: a tuple would return as a list."""
    if value is None or isinstance(value, str | bool | int | float):
        return
    if isinstance(value, list):
        for item in value:
            _check_json(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"The disk cache stores dicts with str keys only, got {key!r}")
            _check_json(item)
    else:
        raise _unsupported(value)


def _encode(value: object, expires_at: float) -> bytes:
    """A disk row for ``value``.

    Raises:
        ValueError: the value is of a type the disk cache cannot store without pickle.
    """
    if isinstance(value, bytes):
        return _ROW_HEADER.pack(_BYTES, expires_at) + value
    if isinstance(value, np.ndarray):
        buffer = io.BytesIO()
        try:
            np.save(buffer, value, allow_pickle=False)
        except ValueError:
            raise ValueError(
                f"The disk cache cannot store a numpy array of dtype {value.dtype} "
                "(it would need pickle); use a numeric, bool or string dtype"
            ) from None
        return _ROW_HEADER.pack(_NUMPY, expires_at) + buffer.getvalue()
    _check_json(value)
    text = json.dumps(value, separators=(",", ":"))
    return _ROW_HEADER.pack(_JSON, expires_at) + text.encode()


def _split_row(blob: object) -> tuple[bytes, float, memoryview]:
    """(type tag, expiry, payload) of a row this module wrote; ValueError for anything else."""
    if not isinstance(blob, bytes) or len(blob) < _ROW_HEADER.size:
        raise ValueError("it is not a ptpd-monitor cache entry")
    kind, expires_at = _ROW_HEADER.unpack_from(blob)
    return kind, expires_at, memoryview(blob)[_ROW_HEADER.size :]


def _decode_payload(kind: bytes, payload: memoryview) -> Any:
    try:
        if kind == _JSON:
            return json.loads(bytes(payload))
        if kind == _BYTES:
            return bytes(payload)
        if kind == _NUMPY:
            return np.load(io.BytesIO(payload), allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise ValueError(f"its payload is corrupt ({type(exc).__name__}: {exc})") from None
    raise ValueError(f"unknown type tag {kind!r}")


def _disk_key(key: object) -> str | int:
    """A key diskcache keeps as itself: other types it would pickle, and pickles can differ."""
    if isinstance(key, str):
        return str.__str__(key)  # a str subclass would be pickled
    if isinstance(key, int) and not isinstance(key, bool) and _INT64_MIN <= key <= _INT64_MAX:
        return int(key)
    raise ValueError(f"Disk cache keys must be str or 64-bit int, got {type(key).__name__}")


def _default_directory(store_dir: Path, name: str) -> Path:
    if name in (".", "..") or "/" in name or os.sep in name or "\0" in name:
        raise ValueError(
            f"Cache name {name!r} cannot name a folder; pass directory= or use a plain name"
        )
    return store_dir.parent / "ptpd-monitor-cache" / name


def _make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents user-only (mkdir's mode is cut by the umask)."""
    missing = []
    while not path.exists() and path.parent != path:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)  # another process may be creating it too
        folder.chmod(0o700)


def _delete_rows(
    sql: Callable[..., sqlite3.Cursor],
    cleanup: Callable[[str | None], None],
    where: str,
    params: tuple[Any, ...],
    now: float,
) -> tuple[int, int]:
    """Delete the rows ``where`` selects inside a transaction; returns (live, expired) counts.

    diskcache has no delete-by-query, so this goes through its ``Cache`` table like its own
    ``cull`` does: triggers keep its count and size, ``cleanup`` removes value files at commit.
    """
    rows = sql(f"SELECT rowid, filename, tag FROM Cache {where}", params).fetchall()
    expired = 0
    for rowid, filename, tag in rows:
        sql("DELETE FROM Cache WHERE rowid = ?", (rowid,))
        cleanup(filename)
        if isinstance(tag, float) and tag <= now:
            expired += 1
    return len(rows) - expired, expired


class CacheManager(Publisher):
    """An LRU cache with a TTL per entry and hit/miss counters.

    >>> cache = CacheManager(max_size=2, default_ttl=60)
    >>> cache.set("curve:a", [0.1, 0.5, 0.9])
    >>> cache.get("curve:a")
    [0.1, 0.5, 0.9]
    >>> cache.get_stats().hits
    1

    Args:
        max_size: entries kept; the least recently used go first (settings' CACHE_SIZE).
        default_ttl: seconds an entry lives unless ``set`` says otherwise (CACHE_TTL); 0
            keeps entries until they are evicted or deleted.
        backend: "memory" (this process, any value, stored by reference) or "disk" (a folder
            shared by processes and kept across restarts; JSON-able values, bytes or numpy
            arrays under str or int keys) (CACHE_BACKEND).
        name: the cache's name in stats and in the default disk folder.
        directory: the disk backend's folder (default: ``ptpd-monitor-cache/<name>`` beside
            STORE_DIR); created user-only (0700). The memory backend ignores it.
        store: publish stats snapshots there (``get_cache()`` passes the default store); a
            manager built without one keeps its stats in memory only.
        clock: epoch seconds for expiry; tests inject a fake one.

    Raises:
        ValueError: an argument is out of range, or the name cannot name a folder.

    A disk folder that cannot be opened does not fail the host app: one warning is logged,
    ``error_count`` rises and the manager keeps its entries in memory instead.
    """

    def __init__(
        self,
        max_size: int | None = None,
        default_ttl: float | None = None,
        backend: str | None = None,
        *,
        name: str = "default",
        directory: str | Path | None = None,
        store: SampleStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings = get_settings()
        self.max_size = _positive_int(
            "max_size", settings.CACHE_SIZE if max_size is None else max_size
        )
        self.default_ttl = _ttl_seconds(
            "default_ttl", settings.CACHE_TTL if default_ttl is None else default_ttl
        )
        chosen = settings.CACHE_BACKEND if backend is None else backend
        if chosen not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.name = check_name("Cache", name)
        if not callable(clock):
            raise ValueError(f"clock must be a callable returning epoch seconds, got {clock!r}")
        self._clock = clock
        super().__init__(store)
        self._data: OrderedDict[Hashable, tuple[Any, float]] = OrderedDict()
        self._hits = self._misses = self._evictions = self._expirations = 0
        self._published: _Counters = (0, 0, 0, 0, 0)
        self.error_count = 0
        self.refused_rows = 0
        self._warned: set[str] = set()
        self.directory: Path | None = None
        self._disk: diskcache.Cache | None = None
        if chosen == "disk":
            self.directory = (
                Path(directory).expanduser()
                if directory is not None
                else _default_directory(settings.STORE_DIR, self.name)
            )
            self._disk = self._open(self.directory)
        self.backend = "disk" if self._disk is not None else "memory"

    def __repr__(self) -> str:
        where = f", directory={str(self.directory)!r}" if self._disk is not None else ""
        return f"CacheManager(name={self.name!r}, backend={self.backend!r}{where})"

    @staticmethod
    def _new_lock() -> threading.RLock:
        return threading.RLock()  # re-entrant: see the module docstring

    # -- the memory backend inline; every method hands the disk backend to a _disk_* twin --------

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is absent or expired (a miss).

        Raises:
            ValueError: a disk cache key that is not a str or int.
        """
        if self._disk is not None:
            return self._disk_get(key, default)
        # acquire/release rather than `with`: it makes this hit path about a fifth cheaper.
        lock = self._lock
        lock.acquire()
        try:
            entry = self._data.get(key)
            if entry is not None and entry[1] > self._clock():
                self._data.move_to_end(key)
                self._hits += 1
                return entry[0]
            if entry is not None:
                del self._data[key]
                self._expirations += 1
            self._misses += 1
            return default
        finally:
            lock.release()

    def set(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (``default_ttl`` when None; 0: never
        expires, only eviction or ``delete`` removes it).

        Raises:
            ValueError: ``ttl`` is negative, infinite or not a number; for the disk backend
                also a key that is not a str or int, or a value it cannot store without pickle.
        """
        seconds = self.default_ttl if ttl is None else _ttl_seconds("ttl", ttl)
        now = self._clock()
        if self._disk is not None:
            self._disk_set(key, value, now, seconds)
            return
        with self._lock:
            data = self._data
            data[key] = (value, _expiry(now, seconds))
            data.move_to_end(key)
            while len(data) > self.max_size:
                _, (_, expires_at) = data.popitem(last=False)
                if expires_at <= now:
                    self._expirations += 1
                else:
                    self._evictions += 1

    def delete(self, key: Hashable) -> bool:
        """Remove ``key``; True when a live entry was removed (an expired one counts as expired)."""
        if self._disk is not None:
            return self._disk_delete(key)
        with self._lock:
            entry = self._data.pop(key, None)
            if entry is None:
                return False
            if entry[1] <= self._clock():
                self._expirations += 1
                return False
            return True

    def clear(self) -> None:
        """Remove every entry (the counters keep counting: they are cumulative)."""
        if self._disk is None:
            with self._lock:
                self._data.clear()
            return
        try:
            self._disk.clear(retry=True)
        except _DISK_ERRORS as exc:
            self._failed(exc)

    def get_size(self) -> int:
        """Entries held, including expired ones nobody has looked up or cleaned up yet."""
        if self._disk is None:
            return len(self._data)
        try:
            return len(self._disk)
        except _DISK_ERRORS as exc:
            self._failed(exc)
            return 0

    def cleanup_expired(self) -> int:
        """Remove every expired entry now; returns how many (counted as expirations)."""
        now = self._clock()
        if self._disk is not None:
            return self._disk_remove("WHERE tag <= ?", (now,), now)[1]
        with self._lock:
            expired = [key for key, (_, expires_at) in self._data.items() if expires_at <= now]
            for key in expired:
                del self._data[key]
            self._expirations += len(expired)
        return len(expired)

    def __contains__(self, key: Hashable) -> bool:
        """A live entry exists; touches neither the counters nor the recency order."""
        if self._disk is not None:
            return self._disk_contains(key)
        with self._lock:
            entry = self._data.get(key)
            return entry is not None and entry[1] > self._clock()

    def __len__(self) -> int:
        return self.get_size()

    # -- stats ----------------------------------------------------------------------------------

    def _counters(self) -> _Counters:
        size = self.get_size()  # outside the lock: for the disk backend it reads the folder
        with self._lock:
            return self._hits, self._misses, self._evictions, self._expirations, size

    def get_stats(self) -> CacheStats:
        """This process's counters and the current size."""
        return self._stats(self._counters())

    def _stats(self, counters: _Counters) -> CacheStats:
        hits, misses, evictions, expirations, size = counters
        return CacheStats(
            hits=hits,
            misses=misses,
            size=size,
            max_size=self.max_size,
            evictions=evictions,
            expirations=expirations,
            name=self.name,
        )

    def pending_batches(self) -> list[RecordBatch]:
        """A stats snapshot for the store when anything changed since the last one (the flusher)."""
        counters = self._counters()
        with self._lock:
            if counters == self._published:
                return []
            self._published = counters
        stats = self._stats(counters)
        row = {
            "ts": stats.timestamp.timestamp(),
            "cache": self.name,
            "pid": os.getpid(),
            "backend": self.backend,
            **stats.model_dump(include=_SNAPSHOT_FIELDS),
        }
        return [RecordBatch(CACHE, self.name, [row])]

    # -- the disk backend -------------------------------------------------------------------------

    def _open(self, path: Path) -> diskcache.Cache | None:
        try:
            _make_private_dirs(path)
            return diskcache.Cache(
                str(path),
                disk=NoPickleDisk,
                # get/set run on the host's thread: wait at most a second for another
                # process's write lock, then count a miss or a dropped set (no retry loop).
                timeout=1,
                eviction_policy="least-recently-used",  # get() stamps access_time
                statistics=False,
                tag_index=False,
                # No memory map: a cache.db truncated under the app would kill it with SIGBUS.
                sqlite_mmap_size=0,
            )
        except _DISK_ERRORS as exc:
            self._failed(exc, _OPEN_FAILED)
            return None

    def _disk_get(self, key: Hashable, default: Any) -> Any:
        db_key = _disk_key(key)
        now = self._clock()
        try:
            value = self._disk_lookup(db_key, now)
        except _DISK_ERRORS as exc:
            self._failed(exc)
            value = _MISSING
        if value is _EXPIRED:  # counted as an expiration by whichever process removes it
            self._disk_remove("WHERE key = ? AND raw = 1 AND tag <= ?", (db_key, now), now)
        with self._lock:
            if value is _MISSING or value is _EXPIRED:
                self._misses += 1
                return default
            self._hits += 1
            return value

    def _disk_lookup(self, db_key: str | int, now: float) -> Any:
        """The live value of ``db_key``, _EXPIRED, or _MISSING (absent or not ours to read)."""
        assert self._disk is not None
        cache = self._disk
        row = _folder.sql(cache)(_SELECT_ROW, (db_key,)).fetchone()
        if row is None:
            return _MISSING
        rowid, mode, filename, stored = row
        try:
            kind, expires_at, payload = _split_row(_folder.fetch(cache, mode, filename, stored))
            if expires_at <= now:
                return _EXPIRED
            value = _decode_payload(kind, payload)
        except PickledRowError:
            self._refuse(db_key, "it holds a pickle (written by something else; never unpickled)")
            return _MISSING
        except FileNotFoundError:  # another process removed it between the query and the read
            return _MISSING
        except ValueError as exc:
            self._refuse(db_key, str(exc))
            return _MISSING
        # Recency for LRU, on diskcache's own clock; best effort: the value is good anyway.
        with contextlib.suppress(sqlite3.Error):
            _folder.sql(cache)(
                "UPDATE Cache SET access_time = ? WHERE rowid = ?", (time.time(), rowid)
            )
        return value

    def _disk_set(self, key: Hashable, value: Any, now: float, seconds: float) -> None:
        assert self._disk is not None
        cache = self._disk
        db_key = _disk_key(key)
        expires_at = _expiry(now, seconds)
        row = _encode(value, expires_at)  # refuses unsupported values before any I/O
        try:
            # One transaction, so processes setting at once never leave more than max_size.
            # (diskcache's own cull inside set() may drop rows past their expire= first; those
            # are not counted here.)
            with _folder.transaction(cache) as (sql, cleanup):
                cache.set(db_key, row, expire=seconds or None, tag=expires_at)
                excess = len(cache) - self.max_size
                if excess <= 0:
                    return
                evicted, expired = _delete_rows(
                    sql,
                    cleanup,
                    "WHERE NOT (key = ? AND raw = 1) ORDER BY access_time LIMIT ?",
                    (db_key, excess),
                    now,
                )
        except _DISK_ERRORS as exc:
            self._failed(exc)
            return
        with self._lock:
            self._evictions += evicted
            self._expirations += expired

    def _disk_remove(self, where: str, params: tuple[Any, ...], now: float) -> tuple[int, int]:
        """Delete the rows ``where`` selects; (live, expired) removed, expired ones counted."""
        assert self._disk is not None
        try:
            with _folder.transaction(self._disk) as (sql, cleanup):
                live, expired = _delete_rows(sql, cleanup, where, params, now)
        except _DISK_ERRORS as exc:
            self._failed(exc)
            return 0, 0
        if expired:
            with self._lock:
                self._expirations += expired
        return live, expired

    def _disk_delete(self, key: Hashable) -> bool:
        db_key = _disk_key(key)
        return self._disk_remove("WHERE key = ? AND raw = 1", (db_key,), self._clock())[0] > 0

    def _disk_contains(self, key: Hashable) -> bool:
        assert self._disk is not None
        db_key = _disk_key(key)
        try:
            row = _folder.sql(self._disk)(
                "SELECT 1 FROM Cache WHERE key = ? AND raw = 1 AND tag > ?", (db_key, self._clock())
            ).fetchone()
        except _DISK_ERRORS as exc:
            self._failed(exc)
            return False
        return row is not None

    # -- failures: never the host app's problem ---------------------------------------------------

    def _warn_once(self, kind: str, message: str, *args: object) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning(message, *args)

    def _failed(self, exc: BaseException, consequence: str = _IO_FAILED) -> None:
        with self._lock:
            self.error_count += 1
        self._warn_once(
            "disk",
            "ptpd-monitor: cache %r cannot use its folder %s (%s: %s); %s, and error_count rises",
            self.name,
            self.directory,
            type(exc).__name__,
            exc,
            consequence,
        )

    def _refuse(self, db_key: str | int, why: str) -> None:
        with self._lock:
            self.refused_rows += 1
        self._warn_once(
            "refused",
            "ptpd-monitor: cache %r treats entry %r in %s as a miss: %s (logged once)",
            self.name,
            db_key,
            self.directory,
            why,
        )

    def _forget_inherited(self) -> None:
        # Counters are per process: the child starts from zero (the parent's are its own), so
        # no parent snapshot is published again.
        self._hits = self._misses = self._evictions = self._expirations = 0
        self._published = (0, 0, 0, 0, self._published[4])
