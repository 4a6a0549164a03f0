"""The sample store: batched, columnar samples in a diskcache directory shared by processes.

One entry holds one flush of one series. Keys sort by kind, series and time::

    metric|pipeline.decode|1764102361.123456|4242|17
    ^kind  ^series (quoted) ^first sample   ^pid ^sequence

so a time-window read is one indexed range scan that touches only the window's batches.
Columnar values are packed float64 bytes behind a small JSON header; record values (resource
samples, cache snapshots, profiles) are JSON rows when fresh and columnar once compacted.
Nothing is ever pickled, and a pickled row found on read is refused.

Writes never raise into the host app: a failure is logged once, counted, and the batch's
samples are counted in ``dropped_samples`` (they are not retried; the process's own history
still answers its queries). Reads raise
:class:`StoreError`, naming the folder and the reason, for the dashboard and CLI to show.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import diskcache
import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from .api import APIPerformanceTracker
    from .monitor import PerformanceMonitor

__all__ = [
    "ColumnBatch",
    "RecordBatch",
    "SampleStore",
    "SeriesData",
    "StoreError",
    "TimeBound",
    "to_epoch",
]

logger = logging.getLogger(__name__)

TimeBound = datetime | float | int | None

METRIC, API, RESOURCE, CACHE, PROFILE = "metric", "api", "resource", "cache", "profile"
_COLUMNAR_KINDS = frozenset({METRIC, API})
_MAGIC = b"PTPD1"
# A fresh batch (one flush) never spans more than this: a longer pause cuts it.
MAX_BATCH_SPAN_S = 60.0
# Batches older than COMPACT_AFTER_S are merged into one per series and clock hour, so a week
# of a slow series is about 170 entries to read rather than one per flush.
COMPACT_SPAN_S = 3600.0
COMPACT_AFTER_S = 600.0
_COMPACT_EVERY_S = 300.0
# The longest a stored batch can span, so a window read starts this much before `since`.
READ_LOOKBACK_S = COMPACT_SPAN_S + MAX_BATCH_SPAN_S
_ALL_KINDS = (METRIC, API, RESOURCE, CACHE, PROFILE)
# diskcache culls (retention, size limit) only when we ask, and we count what it removes.
_CULL_EVERY_S = 5.0


_STORES: weakref.WeakSet[SampleStore] = weakref.WeakSet()


def _renew_locks_after_fork() -> None:
    # A parent thread may have held one of these at the fork; the child's would never open.
    for store in list(_STORES):
        store._open_lock = threading.Lock()
        store._seq_lock = threading.Lock()


os.register_at_fork(after_in_child=_renew_locks_after_fork)


class StoreError(RuntimeError):
    """The store cannot be read; ``path`` and ``reason`` say where and why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"Sample store at {path} is unusable: {reason}")
        self.path = path
        self.reason = reason


class _PickledRowError(ValueError):
    """A row holds a pickle: somebody else wrote it, and unpickling could run their code."""


class _NoPickleDisk(diskcache.Disk):  # type: ignore[misc]
    """diskcache's Disk restricted to bytes and text, both ways."""

    def store(self, value: Any, read: bool, key: Any = diskcache.UNKNOWN) -> Any:
        if not isinstance(value, bytes | str):
            raise TypeError(
                f"the sample store keeps bytes or JSON text, not {type(value).__name__}"
            )
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == diskcache.core.MODE_PICKLE:
            raise _PickledRowError("pickled row refused")
        return super().fetch(mode, filename, value, read)


def to_epoch(bound: TimeBound) -> float | None:
    """A datetime (naive means local time) or epoch seconds as epoch seconds; None stays None."""
    if bound is None:
        return None
    if isinstance(bound, datetime):
        return bound.timestamp()
    if isinstance(bound, int | float) and np.isfinite(bound):
        return float(bound)
    raise ValueError(f"A time bound must be a datetime or epoch seconds, got {bound!r}")


@dataclass(frozen=True, slots=True)
class ColumnBatch:
    """New samples of one columnar series; ``columns[0]`` holds the epoch timestamps."""

    kind: str
    series: str
    columns: tuple[np.ndarray, ...]
    unit: str = ""
    meta: dict[int, dict[str, Any]] | None = None

    @property
    def size(self) -> int:
        return int(self.columns[0].size)


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """New JSON records of one series; every record carries its epoch time under ``"ts"``."""

    kind: str
    series: str
    rows: list[dict[str, Any]]

    @property
    def size(self) -> int:
        return len(self.rows)


@dataclass(slots=True)
class SeriesData:
    """A columnar series read back for a window: parallel arrays plus sparse metadata."""

    unit: str
    columns: list[np.ndarray]
    meta: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.columns[0].size) if self.columns else 0


def _json(value: Any) -> str:
    """Compact JSON; values JSON lacks become their str(), and so do keys it refuses (tuples)."""
    try:
        return json.dumps(value, separators=(",", ":"), default=str)
    except TypeError:
        return json.dumps(_str_keys(value), separators=(",", ":"), default=str)


def _str_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _str_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_str_keys(v) for v in value]
    return value


def _encode_columns(batch: ColumnBatch, extra: dict[str, Any] | None = None) -> bytes:
    header = {"unit": batch.unit, "n": batch.size, "k": len(batch.columns), **(extra or {})}
    if batch.meta:
        header["meta"] = {str(i): m for i, m in batch.meta.items()}
    head = _json(header).encode()
    body = b"".join(np.ascontiguousarray(c, dtype="<f8").tobytes() for c in batch.columns)
    return _MAGIC + len(head).to_bytes(4, "little") + head + body


def _decode_columns(blob: bytes) -> tuple[dict[str, Any], list[np.ndarray]]:
    if not blob.startswith(_MAGIC):
        raise ValueError("not a ptpd-monitor batch")
    start = len(_MAGIC) + 4
    head_len = int.from_bytes(blob[len(_MAGIC) : start], "little")
    header = json.loads(blob[start : start + head_len])
    n, k = int(header["n"]), int(header["k"])
    flat = np.frombuffer(blob, dtype="<f8", offset=start + head_len, count=n * k)
    return header, [flat[i * n : (i + 1) * n] for i in range(k)]


def _in_time_order(batch: ColumnBatch) -> ColumnBatch:
    """The batch sorted by time where it needs cutting (threads may interleave their appends)."""
    ts = batch.columns[0]
    if ts.size < 2 or float(ts.max() - ts.min()) <= MAX_BATCH_SPAN_S or np.all(np.diff(ts) >= 0):
        return batch
    order = np.argsort(ts, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    meta = {int(rank[i]): m for i, m in batch.meta.items()} if batch.meta else None
    columns = tuple(np.asarray(c)[order] for c in batch.columns)
    return ColumnBatch(batch.kind, batch.series, columns, batch.unit, meta)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _record_columns(value: bytes | str) -> dict[str, Any]:
    """A record batch as columns (numpy arrays where numeric), however it was written.

    A flush writes a JSON list of rows, a few at a time. Compaction writes the columnar batch
    format, numbers as packed float64 and the rest as JSON in the header: a week of resource
    samples then reads in a fraction of the time JSON number parsing takes.
    """
    if isinstance(value, bytes):
        header, arrays = _decode_columns(value)
        columns: dict[str, Any] = dict(header.get("text", {}))
        ints = set(header.get("ints", ()))
        for name, array in zip(header["names"], arrays, strict=True):
            columns[name] = array.astype(np.int64) if name in ints else array
        return columns
    data = json.loads(value)
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise ValueError("not JSON records")
    keys = list(dict.fromkeys(key for row in data for key in row))
    return {key: [row.get(key) for row in data] for key in keys}


def _encode_records(kind: str, series: str, columns: dict[str, list[Any]]) -> bytes:
    numeric = [
        n for n, values in columns.items() if all(v is None or _is_number(v) for v in values)
    ]
    ints = [
        n
        for n in numeric
        if all(isinstance(v, int) and not isinstance(v, bool) for v in columns[n])
    ]
    arrays = tuple(
        np.array([np.nan if v is None else v for v in columns[n]], dtype=np.float64)
        for n in numeric
    )
    text = {n: values for n, values in columns.items() if n not in numeric}
    extra = {"names": numeric, "ints": ints, "text": text}
    return _encode_columns(ColumnBatch(kind, series, arrays), extra)


def _decodes(kind: str, value: Any) -> bool:
    """Whether a stored value is a batch of ours that compaction can merge."""
    try:
        if kind in _COLUMNAR_KINDS:
            _decode_columns(value)
        else:
            _record_columns(value)["ts"]
    except (TypeError, ValueError, KeyError):
        return False
    return True


def _merged_records(
    kind: str, series: str, values: list[bytes | str]
) -> tuple[bytes, float, float]:
    """One columnar record batch from several, in time order; its first and newest times."""
    parts = [_record_columns(value) for value in values]
    keys = list(dict.fromkeys(key for part in parts for key in part))
    joined: dict[str, list[Any]] = {key: [] for key in keys}
    for part in parts:
        size = len(part["ts"])
        for key in keys:
            column = part.get(key, [None] * size)
            joined[key].extend(_plain(v) for v in column)
    order = sorted(range(len(joined["ts"])), key=lambda i: float(joined["ts"][i]))
    columns = {key: [column[i] for i in order] for key, column in joined.items()}
    return _encode_records(kind, series, columns), float(columns["ts"][0]), float(columns["ts"][-1])


def _plain(value: Any) -> Any:
    """A numpy scalar as the JSON value it was written as (NaN stood for None)."""
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _merged_columns(kind: str, series: str, blobs: list[bytes]) -> tuple[bytes, float, float]:
    """One encoded batch from several, in time order; with its first and newest timestamps."""
    columns: list[list[np.ndarray]] = []
    meta: dict[int, dict[str, Any]] = {}
    unit, offset = "", 0
    for blob in blobs:
        header, parts = _decode_columns(blob)
        unit = header.get("unit", unit)
        for index, item in header.get("meta", {}).items():
            meta[offset + int(index)] = item
        columns.append(parts)
        offset += int(parts[0].size)
    width = len(columns[0])
    joined = tuple(np.concatenate([c[i] for c in columns]) for i in range(width))
    batch = _in_time_order(ColumnBatch(kind, series, joined, unit, meta or None))
    stamps = batch.columns[0]
    return _encode_columns(batch), float(stamps.min()), float(stamps.max())


def _split_by_span(ts: np.ndarray) -> list[slice]:
    """Cut a batch where it would span more than MAX_BATCH_SPAN_S (a rare, long pause)."""
    if ts.size == 0 or float(ts.max() - ts.min()) <= MAX_BATCH_SPAN_S:
        return [slice(0, ts.size)]
    cuts, start = [], 0  # ts is in order here: _in_time_order sorted it
    for i in range(1, ts.size):
        if ts[i] - ts[start] > MAX_BATCH_SPAN_S:
            cuts.append(slice(start, i))
            start = i
    cuts.append(slice(start, ts.size))
    return cuts


class SampleStore:
    """Samples of every process on this machine, in one diskcache folder.

    >>> store = SampleStore(tmp_dir)                     # doctest: +SKIP
    >>> monitor = store.load_monitor(since=time.time() - 3600)  # doctest: +SKIP
    >>> monitor.get_statistics("pipeline.decode")["p95"]  # doctest: +SKIP

    Args:
        directory: the folder; created user-only (0700) when missing.
        size_limit_mb: the oldest batches go first once the folder grows past this.
        retention_days: batches older than this expire.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        size_limit_mb: float = 1024.0,
        retention_days: float = 30.0,
    ) -> None:
        if size_limit_mb <= 0 or retention_days <= 0:
            raise ValueError("size_limit_mb and retention_days must be positive")
        self.directory = Path(directory).expanduser()
        self.size_limit_bytes = int(size_limit_mb * 1024 * 1024)
        self.retention_s = float(retention_days) * 86400.0
        self.error_count = 0
        self.dropped_samples = 0
        self.culled_batches = 0
        self.refused_rows = 0
        self.last_error: str | None = None
        self._cache: diskcache.Cache | None = None
        self._open_lock = threading.Lock()
        self._seq_lock = threading.Lock()
        self._seq = 0
        self._last_compact = time.monotonic()  # not at start: short processes skip it
        self._compacted: dict[tuple[str, str], float] = {}
        _STORES.add(self)
        self._last_cull = 0.0
        self._warned = False

    def __repr__(self) -> str:
        return f"SampleStore({str(self.directory)!r})"

    # -- opening -----------------------------------------------------------------------------

    def _open(self) -> diskcache.Cache:
        if self._cache is not None:
            return self._cache
        with self._open_lock:
            if self._cache is None:
                self._cache = self._create()
            return self._cache

    def _create(self) -> diskcache.Cache:
        path = self.directory
        if path.exists() and not path.is_dir():
            raise StoreError(path, "it is a file, not a folder; point STORE_DIR at a folder")
        try:
            if not path.exists():
                # exist_ok: another process may create it between the check and here.
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
                path.chmod(0o700)  # mkdir's mode is filtered by the umask
            return diskcache.Cache(
                str(path),
                disk=_NoPickleDisk,
                timeout=10,
                size_limit=self.size_limit_bytes,
                cull_limit=0,
                eviction_policy="least-recently-stored",
                statistics=False,
                tag_index=False,
            )
        except StoreError:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(path, f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Close this process's connections (a later call reopens)."""
        with self._open_lock:
            if self._cache is not None:
                self._cache.close()
                self._cache = None

    # -- writing (the flusher thread) ---------------------------------------------------------

    def _key(self, kind: str, series: str, first_ts: float) -> str:
        with self._seq_lock:
            self._seq += 1
            seq = self._seq
        return f"{kind}|{quote(series, safe='')}|{first_ts:017.6f}|{os.getpid()}|{seq}"

    def _encoded(self, item: ColumnBatch | RecordBatch) -> Iterator[tuple[str, bytes | str]]:
        if isinstance(item, RecordBatch):
            # Sorted and cut by span like columns, so a window read finds every record.
            rows = sorted(item.rows, key=lambda row: float(row["ts"]))
            stamps = np.array([float(row["ts"]) for row in rows])
            for part in _split_by_span(stamps):
                chunk = rows[part]
                if chunk:
                    text = _json(chunk)
                    yield self._key(item.kind, item.series, float(stamps[part.start])), text
            return
        item = _in_time_order(item)
        ts = item.columns[0]
        for part in _split_by_span(ts):
            sub_meta = None
            if item.meta:
                sub_meta = {
                    i - part.start: m
                    for i, m in item.meta.items()
                    if part.start <= i < (part.stop or ts.size)
                }
            piece = ColumnBatch(
                item.kind, item.series, tuple(c[part] for c in item.columns), item.unit, sub_meta
            )
            if piece.size:
                yield (
                    self._key(item.kind, item.series, float(piece.columns[0].min())),
                    (_encode_columns(piece)),
                )

    def write(self, items: Sequence[ColumnBatch | RecordBatch]) -> bool:
        """Persist batches in one transaction; never raises (False, counted drops on failure)."""
        items = [item for item in items if item.size]
        if not items:
            return True
        entries: list[tuple[str, bytes | str]] = []
        samples = 0  # in the entries, counted as dropped if the transaction fails
        for item in items:
            try:
                entries.extend(self._encoded(item))
                samples += item.size
            except (TypeError, ValueError) as exc:  # e.g. metadata JSON cannot hold
                # One bad batch must not cost the others their write: count it and go on.
                self._record_failure(exc, item.size)
        if not entries:
            return False
        try:
            cache = self._open()
            with cache.transact(retry=True):
                for key, value in entries:
                    cache.set(key, value, expire=self.retention_s)
            self._maybe_cull(cache)
        except Exception as exc:  # never harm the host app: count, warn once, carry on
            self._record_failure(exc, samples)
            return False
        if self._warned:
            logger.warning("ptpd-monitor: sample store at %s works again", self.directory)
            self._warned = False
        return True

    def _record_failure(self, exc: BaseException, samples: int) -> None:
        self.error_count += 1
        self.dropped_samples += samples
        self.last_error = f"{type(exc).__name__}: {exc}"
        if not self._warned:
            self._warned = True
            logger.warning(
                "ptpd-monitor: cannot write the sample store at %s (%s); samples stay in this "
                "process's memory only, and the error counter rises until it works again",
                self.directory,
                self.last_error,
            )

    def _maybe_cull(self, cache: diskcache.Cache) -> None:
        now = time.monotonic()
        if now - self._last_cull >= _CULL_EVERY_S:
            self._last_cull = now
            self.culled_batches += int(cache.cull())
        if now - self._last_compact >= _COMPACT_EVERY_S:
            self._last_compact = now
            self.compact()

    # -- compaction (the flusher thread, every few minutes) -------------------------------------

    def compact(self, older_than: float | None = None) -> int:
        """Merge each series' batches into one per clock hour; returns the batches merged away.

        Only hours that ended before ``older_than`` (default: COMPACT_AFTER_S ago) are touched,
        since writers still add to recent ones. Each hour is merged in one transaction, so
        processes compacting at once cannot duplicate or lose samples. Never raises: a failure
        is counted in ``error_count`` and logged once.
        """
        cutoff = time.time() - COMPACT_AFTER_S if older_than is None else older_than
        last_hour = float(np.floor(cutoff / COMPACT_SPAN_S) * COMPACT_SPAN_S)
        merged = 0
        try:
            cache = self._open()
            for kind in _ALL_KINDS:
                for series in self.series_names(kind):
                    prefix = f"{kind}|{quote(series, safe='')}|"
                    done = self._compacted.get((kind, series), 0.0)
                    keys = [
                        row[0]
                        for row in cache._sql(
                            "SELECT key FROM Cache WHERE key >= ? AND key < ? AND raw = 1",
                            (f"{prefix}{done:017.6f}", f"{prefix}{last_hour:017.6f}"),
                        ).fetchall()
                    ]
                    by_hour: dict[float, list[str]] = {}
                    for key in keys:
                        first_ts = float(key[len(prefix) :].split("|", 1)[0])
                        by_hour.setdefault(first_ts // COMPACT_SPAN_S, []).append(key)
                    for hour_keys in by_hour.values():
                        if len(hour_keys) > 1:
                            merged += self._merge(cache, kind, series, hour_keys)
                    self._compacted[(kind, series)] = last_hour
        except Exception as exc:  # compaction is housekeeping: it must not harm the host app
            self._record_failure(exc, 0)
        return merged

    def _merge(self, cache: diskcache.Cache, kind: str, series: str, keys: list[str]) -> int:
        """Replace ``keys`` by one batch holding all their samples, in one transaction."""
        with cache.transact(retry=True):
            present: list[tuple[str, Any]] = []
            for key in keys:
                try:
                    value = cache.get(key, default=None)
                except _PickledRowError:
                    continue  # not ours: leave it where it is, readers refuse it
                if value is None:  # another process may have merged it already
                    continue
                if not _decodes(kind, value):
                    continue  # not a batch of ours: leave it for readers to refuse
                present.append((key, value))
            if len(present) < 2:
                return 0
            if kind in _COLUMNAR_KINDS:
                value, first, newest = _merged_columns(kind, series, [v for _, v in present])
            else:
                value, first, newest = _merged_records(kind, series, [v for _, v in present])
            for key, _ in present:
                cache.delete(key)
            expire = max(self.retention_s - (time.time() - newest), 1.0)
            cache.set(self._key(kind, series, first), value, expire=expire)
        return len(present) - 1

    # -- reading ------------------------------------------------------------------------------

    def _reading(self) -> diskcache.Cache:
        # A missing folder is an empty store (nothing recorded yet): opening creates it.
        return self._open()

    def _rows(self, low: str, high: str) -> Iterator[tuple[str, Any]]:
        """Keys in [low, high) and their values, in key order.

        diskcache has no range read, so this runs one query on its ``Cache`` table through its
        connection (``_sql``): the key index makes it a range scan.
        """
        cache = self._reading()
        try:
            rows = cache._sql(
                "SELECT key, mode, filename, value FROM Cache WHERE key >= ? AND key < ? "
                "AND raw = 1 AND (expire_time IS NULL OR expire_time > ?) ORDER BY key",
                (low, high, time.time()),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(self.directory, f"{type(exc).__name__}: {exc}") from exc
        for key, mode, filename, value in rows:
            try:
                yield key, cache._disk.fetch(mode, filename, value, False)
            except _PickledRowError:
                self._refuse(key, "it holds a pickle")
            except OSError:
                continue  # its file was culled between the query and the read

    def _refuse(self, key: str, why: str) -> None:
        self.refused_rows += 1
        logger.warning("ptpd-monitor: skipped row %r in %s: %s", key, self.directory, why)

    def _window(
        self, kind: str, series: str, since: TimeBound, until: TimeBound
    ) -> tuple[Iterator[tuple[str, Any]], float, float]:
        lo, hi = to_epoch(since), to_epoch(until)
        lo = -np.inf if lo is None else lo
        hi = np.inf if hi is None else hi
        prefix = f"{kind}|{quote(series, safe='')}|"
        low_key = prefix if lo == -np.inf else f"{prefix}{max(lo - READ_LOOKBACK_S, 0):017.6f}"
        high_key = prefix + "~" if hi == np.inf else f"{prefix}{hi:017.6f}~"
        return self._rows(low_key, high_key), lo, hi

    def series_names(self, kind: str) -> list[str]:
        """Every series of ``kind`` in the store: one indexed probe per series (a skip scan)."""
        cache = self._reading()
        names: list[str] = []
        low, high = f"{kind}|", f"{kind}}}"
        try:
            while True:
                row = cache._sql(
                    "SELECT key FROM Cache WHERE key >= ? AND key < ? AND raw = 1 "
                    "ORDER BY key LIMIT 1",
                    (low, high),
                ).fetchone()
                if row is None:
                    return names
                quoted = row[0][len(kind) + 1 :].split("|", 1)[0]
                names.append(unquote(quoted))
                # Every key of this series sorts below "kind|name}" ('}' follows '|').
                low = f"{kind}|{quoted}}}"
        except sqlite3.Error as exc:
            raise StoreError(self.directory, f"{type(exc).__name__}: {exc}") from exc

    def read_columns(
        self, kind: str, series: str, since: TimeBound = None, until: TimeBound = None
    ) -> SeriesData:
        """A columnar series' samples with ``since <= ts <= until``, oldest batch first."""
        rows, lo, hi = self._window(kind, series, since, until)
        unit, parts, meta, offset = "", [], {}, 0
        for key, value in rows:
            try:
                header, columns = _decode_columns(value)
            except (ValueError, KeyError, TypeError):
                self._refuse(key, "not a ptpd-monitor batch")
                continue
            unit = header.get("unit", unit)
            keep = (columns[0] >= lo) & (columns[0] <= hi)
            # A sample's new position is the count of kept samples before it.
            new_position = np.cumsum(keep) - 1
            kept = int(new_position[-1]) + 1 if keep.size else 0
            if kept == 0:
                continue
            for index, item in header.get("meta", {}).items():
                if keep[int(index)]:
                    meta[offset + int(new_position[int(index)])] = item
            parts.append(columns if kept == keep.size else [c[keep] for c in columns])
            offset += kept
        if not parts:
            return SeriesData(unit, [], {})
        width = len(parts[0])
        merged = [np.concatenate([p[i] for p in parts]) for i in range(width)]
        return SeriesData(unit, merged, meta)

    def read_records(
        self, kind: str, series: str | None = None, since: TimeBound = None, until: TimeBound = None
    ) -> list[dict[str, Any]]:
        """JSON records of one series (or of every series of ``kind``) in the window."""
        out: list[dict[str, Any]] = []
        for columns, keep in self._record_batches(kind, series, since, until):
            names = list(columns)
            out.extend(
                {name: _plain(columns[name][i]) for name in names} for i in np.flatnonzero(keep)
            )
        out.sort(key=lambda r: float(r["ts"]))
        return out

    def _record_batches(
        self, kind: str, series: str | None, since: TimeBound, until: TimeBound
    ) -> Iterator[tuple[dict[str, list[Any]], np.ndarray]]:
        """Each record batch in the window as columns, with the mask of its rows inside."""
        names = [series] if series is not None else self.series_names(kind)
        for name in names:
            rows, lo, hi = self._window(kind, name, since, until)
            for key, value in rows:
                try:
                    columns = _record_columns(value)
                    stamps = np.asarray(columns["ts"], dtype=np.float64)
                except (TypeError, ValueError, KeyError):
                    self._refuse(key, "not JSON records")
                    continue
                keep = (stamps >= lo) & (stamps <= hi)
                if keep.any():
                    yield columns, keep

    # -- the QUICKREF objects, rebuilt from every process's samples ------------------------------

    def load_monitor(self, since: TimeBound = None, until: TimeBound = None) -> PerformanceMonitor:
        """A read-only PerformanceMonitor holding every process's metrics in the window."""
        from .monitor import PerformanceMonitor

        series = {
            name: self.read_columns(METRIC, name, since, until)
            for name in self.series_names(METRIC)
        }
        return PerformanceMonitor._from_store(series)

    def load_api_tracker(
        self, since: TimeBound = None, until: TimeBound = None
    ) -> APIPerformanceTracker:
        """A read-only APIPerformanceTracker holding every process's requests in the window."""
        from .api import APIPerformanceTracker

        series = {
            name: self.read_columns(API, name, since, until) for name in self.series_names(API)
        }
        return APIPerformanceTracker._from_store(series)

    def metrics_frame(
        self,
        since: TimeBound = None,
        until: TimeBound = None,
        operations: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Raw metric samples: columns timestamp (UTC), operation, value, unit."""
        import pandas as pd

        names = list(operations) if operations is not None else self.series_names(METRIC)
        frames = []
        for name in names:
            data = self.read_columns(METRIC, name, since, until)
            if data.size:
                frames.append(
                    pd.DataFrame(
                        {
                            "timestamp": pd.to_datetime(data.columns[0], unit="s", utc=True),
                            "operation": name,
                            "value": data.columns[1],
                            "unit": data.unit,
                        }
                    )
                )
        if not frames:
            return pd.DataFrame(
                {
                    "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
                    "operation": pd.Series([], dtype=object),
                    "value": pd.Series([], dtype=float),
                    "unit": pd.Series([], dtype=object),
                }
            )
        return pd.concat(frames, ignore_index=True).sort_values("timestamp", ignore_index=True)

    def api_frame(self, since: TimeBound = None, until: TimeBound = None) -> pd.DataFrame:
        """Raw requests: timestamp (UTC), endpoint, method, duration_ms, status_code, error."""
        import pandas as pd

        frames = []
        for name in self.series_names(API):
            data = self.read_columns(API, name, since, until)
            if not data.size:
                continue
            method, _, endpoint = name.partition(" ")
            errors = [data.meta.get(i, {}).get("error") for i in range(data.size)]
            frames.append(
                pd.DataFrame(
                    {
                        "timestamp": pd.to_datetime(data.columns[0], unit="s", utc=True),
                        "endpoint": endpoint,
                        "method": method,
                        "duration_ms": data.columns[1],
                        "status_code": data.columns[2].astype(int),
                        "error": errors,
                    }
                )
            )
        columns = ["timestamp", "endpoint", "method", "duration_ms", "status_code", "error"]
        if not frames:
            return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns}).astype(
                {"timestamp": "datetime64[ns, UTC]", "duration_ms": float, "status_code": int}
            )
        return pd.concat(frames, ignore_index=True).sort_values("timestamp", ignore_index=True)

    def _records_frame(
        self, kind: str, series: str | None, since: TimeBound, until: TimeBound
    ) -> pd.DataFrame:
        import pandas as pd

        frames = [
            pd.DataFrame(columns)[keep]
            for columns, keep in self._record_batches(kind, series, since, until)
        ]
        if not frames:
            return pd.DataFrame({"timestamp": pd.Series([], dtype="datetime64[ns, UTC]")})
        frame = pd.concat(frames, ignore_index=True).sort_values("ts", ignore_index=True)
        frame.insert(0, "timestamp", pd.to_datetime(frame.pop("ts"), unit="s", utc=True))
        return frame

    def resource_samples(self, since: TimeBound = None, until: TimeBound = None) -> pd.DataFrame:
        """Resource samples: timestamp plus the ResourceUsage fields (GPU columns per device)."""
        return self._records_frame(RESOURCE, None, since, until)

    def cache_stats(
        self, since: TimeBound = None, until: TimeBound = None, name: str | None = None
    ) -> pd.DataFrame:
        """Cache-stats snapshots: timestamp, cache, pid, hits, misses, size, max_size, ..."""
        return self._records_frame(CACHE, name, since, until)

    def profiles(
        self, since: TimeBound = None, until: TimeBound = None, operation: str | None = None
    ) -> pd.DataFrame:
        """Profiled operations: timestamp, operation, wall/cpu time, memory, pixels, success."""
        return self._records_frame(PROFILE, operation, since, until)

    # -- housekeeping -------------------------------------------------------------------------

    def enforce_limits(self) -> int:
        """Drop expired batches and, past the size limit, the oldest ones; returns how many."""
        try:
            removed = int(self._open().cull())
        except Exception as exc:
            self._record_failure(exc, 0)
            return 0
        self.culled_batches += removed
        return removed

    def clear(self) -> int:
        """Remove every sample (the demo and tests start clean); returns the entries removed."""
        try:
            return int(self._reading().clear())
        except sqlite3.Error as exc:
            raise StoreError(self.directory, f"{type(exc).__name__}: {exc}") from exc

    def volume_bytes(self) -> int:
        """Bytes the store occupies on disk."""
        try:
            return int(self._reading().volume())
        except sqlite3.Error as exc:
            raise StoreError(self.directory, f"{type(exc).__name__}: {exc}") from exc

    def check(self) -> list[str]:
        """An integrity check of the folder: a list of problems, empty when healthy."""
        cache = self._reading()
        try:
            rows = cache._sql("PRAGMA integrity_check").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(self.directory, f"{type(exc).__name__}: {exc}") from exc
        problems = [str(r[0]) for r in rows if r[0] != "ok"]
        pickled = cache._sql(
            "SELECT count(*) FROM Cache WHERE mode = ?", (diskcache.core.MODE_PICKLE,)
        )
        count = int(pickled.fetchone()[0])
        if count:
            problems.append(f"{count} pickled rows (written by something else; refused on read)")
        return problems
