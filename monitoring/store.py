"""The sample store: batched, columnar samples in a diskcache directory shared by processes.

One entry holds one flush of one series. Keys sort by kind, series and time::

    metric|pipeline.decode|1764102361.123456|4242|17
    ^kind  ^series (quoted) ^first sample   ^pid ^sequence

so a time-window read is one indexed range scan that touches only the window's batches. The
formats live in ``_codec.py``; every diskcache internal is fenced in ``_folder.py``.

What the store promises, and how:

- **A sample it accepted is written, or counted.** Writes never raise into the host app. A
  batch that cannot be encoded is counted in ``dropped_samples`` with the reason in
  ``last_error``, and the others are written. A write that fails (full disk, a lock held too
  long, a deleted or damaged folder) keeps its encoded batches, up to ``MAX_UNWRITTEN_BYTES``,
  and retries them at the next flush; only what passes that bound is dropped, and counted.
- **It recovers.** A folder deleted or replaced under a running process is noticed (its inode)
  and re-created user-only; a damaged database is moved aside as ``cache.db.corrupt-<time>``;
  in both cases writing goes on and the batches that were waiting are written.
- **Every rewrite is atomic.** Values live inline in their SQLite rows, so compaction writes
  the merged batch and deletes the old ones in one transaction: a kill at any instant leaves
  the old rows or the new one, and a reader's single range query never sees a count fall.
- **One bad row costs only itself.** Readers skip a malformed, pickled or file-less row, count
  it in ``refused_rows`` and warn once per row; ``check()`` lists such rows and ``repair()``
  removes them. Reads raise :class:`StoreError`, naming the folder and the reason, and never
  wait on a lock longer than a few seconds.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import shutil
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import diskcache
import numpy as np

from ._codec import (
    COLUMN_WIDTHS,
    COLUMNAR_KINDS,
    MAX_BATCH_SPAN_S,
    BadBatch,
    ColumnBatch,
    RecordBatch,
    SeriesData,
    decode_columns,
    decodes,
    encode_columns,
    in_time_order,
    merged_columns,
    merged_records,
    plain,
    record_columns,
    split_by_span,
    to_json,
)
from ._common import TimeBound, to_epoch
from ._folder import (
    DB_NAME,
    CacheFolder,
    PickledRowError,
    StoredRow,
    is_corruption,
    truncated_under_a_writer,
)
from ._forks import on_fork

if TYPE_CHECKING:
    import pandas as pd

    from .api import APIPerformanceTracker
    from .monitor import PerformanceMonitor

__all__ = [
    "MAX_BATCH_SPAN_S",
    "MAX_UNWRITTEN_BYTES",
    "STORES",
    "ColumnBatch",
    "RecordBatch",
    "RepairReport",
    "SampleStore",
    "SeriesData",
    "StoreError",
    "TimeBound",
    "to_epoch",
]

logger = logging.getLogger(__name__)


METRIC, API, RESOURCE, CACHE, PROFILE = "metric", "api", "resource", "cache", "profile"
# Things that happened (a watch fired, an alert began): JSON records like the record kinds.
EVENT = "event"
# Per-process loss counters (not samples: compaction and the readers of samples skip them).
HEALTH = "health"
# Batches older than COMPACT_AFTER_S are merged into one per series and clock hour, so a week
# of a slow series is about 170 entries to read rather than one per flush.
COMPACT_SPAN_S = 3600.0
COMPACT_AFTER_S = 600.0
_COMPACT_EVERY_S = 300.0
_FULL_COMPACT_EVERY = 12  # passes: about once an hour
# The longest a stored batch can span, so a window read starts this much before `since`.
READ_LOOKBACK_S = COMPACT_SPAN_S + MAX_BATCH_SPAN_S
_ALL_KINDS = (METRIC, API, RESOURCE, CACHE, PROFILE, EVENT)
# diskcache culls (retention, size limit) only when we ask, and we count what it removes.
_CULL_EVERY_S = 5.0
# Encoded batches a process keeps while its store cannot be written; past this the oldest go.
MAX_UNWRITTEN_BYTES = 64 * 1024 * 1024
# No read or write waits on a locked or broken database longer than this.
LOCK_TIMEOUT_S = 5.0


#: Every live store of this process (the flusher writes what they were handed at each flush).
STORES: weakref.WeakSet[SampleStore] = weakref.WeakSet()


def _count_waiting_at_exit() -> None:
    """Registered before the flusher's exit flush, so it runs after it (atexit is LIFO)."""
    for store in list(STORES):
        store.abandon_waiting()


atexit.register(_count_waiting_at_exit)


class StoreError(RuntimeError):
    """The store cannot be read; ``path`` and ``reason`` say where and why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"Sample store at {path} is unusable: {reason}")
        self.path = path
        self.reason = reason


def _window_bounds(since: TimeBound, until: TimeBound) -> tuple[float, float]:
    lo, hi = to_epoch(since), to_epoch(until)
    lo = -math.inf if lo is None else lo
    hi = math.inf if hi is None else hi
    if lo > hi:
        raise ValueError(f"since ({since!r}) is after until ({until!r})")
    return lo, hi


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a positive, finite number, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class _Entry:
    """One encoded batch on its way to the folder."""

    key: str
    value: bytes | str
    samples: int
    first_ts: float


@dataclass(frozen=True, slots=True)
class RepairReport:
    """What ``SampleStore.repair()`` removed or moved."""

    rows_missing_files: int
    samples_estimated: int
    bad_rows: int
    orphan_files: int
    moved_database: Path | None

    @property
    def changed(self) -> bool:
        return bool(
            self.rows_missing_files or self.bad_rows or self.orphan_files or self.moved_database
        )


def _estimated_samples(key: str, size_bytes: int) -> int:
    """Samples a lost batch held, from its size (columnar: 16–24 bytes a sample)."""
    width = {METRIC: 2, API: 3}.get(key.split("|", 1)[0], 4)
    return max(size_bytes // (8 * width), 1)


class SampleStore:
    """Samples of every process on this machine, in one diskcache folder.

    >>> store = SampleStore(tmp_dir)                     # doctest: +SKIP
    >>> monitor = store.load_monitor(since=time.time() - 3600)  # doctest: +SKIP
    >>> monitor.get_statistics("pipeline.decode")["p95"]  # doctest: +SKIP

    Args:
        directory: the folder; created user-only (0700) when missing.
        size_limit_mb: the oldest batches go first once the folder grows past this.
        retention_days: batches older than this expire.

    Raises:
        ValueError: a limit is not a positive, finite number.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        size_limit_mb: float = 1024.0,
        retention_days: float = 30.0,
    ) -> None:
        size_mb = _positive("size_limit_mb", size_limit_mb)
        days = _positive("retention_days", retention_days)
        if not str(directory).strip():
            raise ValueError("directory must name a folder, got an empty path")
        self.directory = Path(directory).expanduser()
        self.size_limit_bytes = int(min(size_mb, 2.0**40) * 1024 * 1024)
        self.retention_s = days * 86400.0
        self.error_count = 0
        self.dropped_samples = 0
        self.culled_batches = 0
        self.refused_rows = 0
        self.last_error: str | None = None
        self._folder: CacheFolder | None = None
        self._open_lock = threading.Lock()
        self._seq_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._seq = 0
        self._unwritten: deque[_Entry] = deque()
        self._adopted: deque[Callable[[], Sequence[ColumnBatch | RecordBatch]]] = deque()
        self._inherited: CacheFolder | None = None
        self._unwritten_bytes = 0
        self._last_compact = time.monotonic()  # not at start: short processes skip it
        self._compacted: dict[tuple[str, str], float] = {}
        self._compact_passes = 0
        self._refused: set[str] = set()
        self._last_cull = 0.0
        self._warned = False
        self._warned_overflow = False
        self._health_written: tuple[int, int] = (0, 0)
        self._health_reported: tuple[int, int] = (0, 0)
        self._write_lock_at_fork = False
        self._started = time.time()
        STORES.add(self)
        on_fork(self)

    def __repr__(self) -> str:
        return f"SampleStore({str(self.directory)!r})"

    def _before_fork(self) -> None:
        # No fork in the middle of a write: the child would inherit a connection inside its
        # transaction, and SQLite's locks with it. Bounded, so a stuck writer cannot stop it.
        self._write_lock_at_fork = self._write_lock.acquire(timeout=2 * LOCK_TIMEOUT_S)

    def _after_fork_in_parent(self) -> None:
        if self._write_lock_at_fork:
            self._write_lock.release()

    def _after_fork(self) -> None:
        # A parent thread may have held a lock at the fork; what waits and what was counted
        # are the parent's, so the child starts from nothing. The inherited connection is
        # never used nor closed here (SQLite forbids both across a fork): kept, and a fresh
        # one opened.
        self._open_lock = threading.Lock()
        self._seq_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._inherited, self._folder = self._folder, None
        self._unwritten.clear()
        self._unwritten_bytes = 0
        self._adopted.clear()
        self.error_count = self.dropped_samples = 0
        self.last_error = None
        self._warned = self._warned_overflow = False
        self._started = time.time()
        self._health_written = (0, 0)

    # -- opening -----------------------------------------------------------------------------

    def _open(self, *, repair: bool = False) -> CacheFolder:
        """The open folder, reopened (and re-created 0700) when it was deleted or replaced.

        A database damaged in place is moved aside and started afresh when ``repair`` (the
        writers), and raises :class:`StoreError` otherwise (the readers).
        """
        folder = self._folder
        state = "ok" if folder is None else folder.state()
        if folder is not None and state == "ok":
            return folder
        if state == "truncated":
            damage = sqlite3.DatabaseError("file is not a database (truncated)")
            if not repair:
                raise StoreError(self.directory, _describe(damage))
            self._count_error(damage)
            self._move_aside_damaged(damage)
        with self._open_lock:
            if self._folder is not None and self._folder.state() == "moved":
                logger.warning(
                    "ptpd-monitor: the sample store at %s was deleted or replaced; reopening it",
                    self.directory,
                )
                self._folder.close()
                self._folder = None
            if self._folder is None:
                self._folder = self._create(repair=repair)
            return self._folder

    def _create(self, *, repair: bool) -> CacheFolder:
        path = self.directory
        if path.exists() and not path.is_dir():
            raise StoreError(path, "it is a file, not a folder; point STORE_DIR at a folder")
        try:
            self._refuse_headless_database(repair=repair)
            if not path.exists():
                # exist_ok: another process may create it between the check and here.
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
                path.chmod(0o700)  # mkdir's mode is filtered by the umask
            return CacheFolder(path, size_limit=self.size_limit_bytes, timeout_s=LOCK_TIMEOUT_S)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(path, _describe(exc)) from exc

    def _drop_handle(self) -> None:
        with self._open_lock:
            if self._folder is not None:
                with contextlib.suppress(Exception):
                    self._folder.close()
                self._folder = None

    def _refuse_headless_database(self, *, repair: bool) -> None:
        """Never let diskcache write its tables into a database truncated under a writer.

        Opening runs diskcache's set-up statements, which would make the truncated file look
        like a fresh, valid database to the writer that still holds its WAL: what it wrote
        next would land in a damaged file. A truncation in progress gets a second to settle.
        """
        deadline = time.monotonic() + 1.0
        while truncated_under_a_writer(self.directory):
            if time.monotonic() >= deadline:
                damage = sqlite3.DatabaseError("file is not a database (truncated)")
                if not repair:
                    raise StoreError(self.directory, _describe(damage))
                self._count_error(damage)
                self._move_aside_damaged(damage, locked=True)
                return
            time.sleep(0.05)

    def close(self) -> None:
        """Close this process's connections (a later call reopens)."""
        with self._open_lock:
            if self._folder is not None:
                self._folder.close()
                self._folder = None

    def _move_aside_damaged(self, exc: BaseException, *, locked: bool = False) -> Path | None:
        """Move a damaged database out of the way so a fresh one can take its place."""
        with contextlib.nullcontext() if locked else self._open_lock:
            if self._folder is not None:
                self._folder.close()
                self._folder = None
            database = self.directory / DB_NAME
            if not database.exists():
                return None
            stamp = time.strftime("%Y%m%dT%H%M%S")
            target = database.with_name(f"{DB_NAME}.corrupt-{stamp}-{os.getpid()}")
            for suffix in ("", "-wal", "-shm"):
                part = database.with_name(DB_NAME + suffix)
                if part.exists():
                    shutil.move(str(part), str(target) + suffix)
        logger.warning(
            "ptpd-monitor: the sample store database %s is damaged (%s); moved it to %s and "
            "started a new one",
            database,
            _describe(exc),
            target,
        )
        return target

    # -- writing (the flusher thread) ---------------------------------------------------------

    def _key(self, kind: str, series: str, first_ts: float) -> str:
        with self._seq_lock:
            self._seq += 1
            seq = self._seq
        return f"{kind}|{quote(series, safe='')}|{first_ts:017.6f}|{os.getpid()}|{seq}"

    def _encoded(self, item: ColumnBatch | RecordBatch) -> Iterator[_Entry]:
        if isinstance(item, RecordBatch):
            # Sorted and cut by span like columns, so a window read finds every record.
            rows = sorted(item.rows, key=lambda row: float(row["ts"]))
            stamps = np.array([float(row["ts"]) for row in rows])
            for part in split_by_span(stamps):
                chunk = rows[part]
                if chunk:
                    first = float(stamps[part.start])
                    key = self._key(item.kind, item.series, first)
                    yield _Entry(key, to_json(chunk), len(chunk), first)
            return
        item = in_time_order(item)
        ts = item.columns[0]
        for part in split_by_span(ts):
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
                first = float(piece.columns[0].min())
                key = self._key(item.kind, item.series, first)
                yield _Entry(key, encode_columns(piece), piece.size, first)

    def write(self, items: Sequence[ColumnBatch | RecordBatch]) -> bool:
        """Persist batches in one transaction; never raises.

        Returns True when everything waiting, these batches included, is now in the folder.
        A batch that cannot be encoded is dropped and counted; batches that could not be
        written wait for the next call (see the module docstring).
        """
        entries = self._entries(items)  # encoded outside the lock: other writers go on
        with self._write_lock:
            # Handed-over work is taken under the lock, so that a write() returning True
            # never leaves it taken by another thread and not yet written.
            entries += self._entries(self._adopted_batches())
            for entry in entries:
                self._keep(entry)
            if not self._unwritten and not self._health_changed():
                return True
            return self._write_waiting()

    def _entries(self, items: Sequence[ColumnBatch | RecordBatch]) -> list[_Entry]:
        entries: list[_Entry] = []
        for item in items:
            if not item.size:
                continue
            try:
                entries.extend(self._encoded(item))
            except Exception as exc:  # one bad batch must not cost the others their write
                self._count_dropped(item.size, f"could not encode {item.series!r}: {exc!r}")
        return entries

    def adopt(self, take: Callable[[], Sequence[ColumnBatch | RecordBatch]]) -> None:
        """Write what ``take()`` returns at the next write: for finalisers of dropped sources.

        A finaliser can run inside any thread, under any lock (the garbage collector runs
        where it allocates), so it must not write or lock: it hands its work over here.
        """
        self._adopted.append(take)

    def _adopted_batches(self) -> list[ColumnBatch | RecordBatch]:
        batches: list[ColumnBatch | RecordBatch] = []
        while self._adopted:
            take = self._adopted.popleft()
            try:
                batches.extend(take())
            except Exception:
                logger.exception("ptpd-monitor: could not collect a dropped source's samples")
        return batches

    def _keep(self, entry: _Entry) -> None:
        self._unwritten.append(entry)
        self._unwritten_bytes += len(entry.value)
        while self._unwritten_bytes > MAX_UNWRITTEN_BYTES and len(self._unwritten) > 1:
            oldest = self._unwritten.popleft()
            self._unwritten_bytes -= len(oldest.value)
            self._count_dropped(
                oldest.samples,
                f"the store stayed unwritable past {MAX_UNWRITTEN_BYTES // 2**20} MB of waiting "
                f"samples (last error: {self.last_error})",
            )

    def _write_waiting(self) -> bool:
        """Write every waiting entry; on failure keep them for the next flush."""
        entries = list(self._unwritten)
        moved_aside = False
        for _attempt in range(3):
            try:
                folder = self._open(repair=True)
                health = self._health_entry()
                with folder.transaction() as txn:
                    for entry in entries if health is None else [*entries, health]:
                        txn.put(
                            entry.key,
                            entry.value,
                            expire_at=time.time() + self.retention_s,
                            stored_at=entry.first_ts,
                        )
                if folder.state() != "ok":
                    continue  # deleted, replaced or truncated while we wrote: write them again
            except Exception as exc:  # never harm the host app: count, warn once, keep
                if is_corruption(exc) and not moved_aside:
                    moved_aside = True
                    self._count_error(exc)
                    try:
                        self._move_aside_damaged(exc)
                    except OSError as move_exc:
                        self._count_error(move_exc)
                        return False
                    continue
                self._count_error(exc)
                self._drop_handle()  # the next flush reopens: the files may be fixed by then
                return False
            self._unwritten.clear()
            self._unwritten_bytes = 0
            if health is not None:
                self._health_written = self._health_reported
            if self._warned:
                logger.warning("ptpd-monitor: sample store at %s works again", self.directory)
                self._warned = False
            self._housekeeping(folder)
            return True
        return False

    def _count_error(self, exc: BaseException) -> None:
        self.error_count += 1
        self.last_error = _describe(exc)
        if not self._warned:
            self._warned = True
            logger.warning(
                "ptpd-monitor: cannot write the sample store at %s (%s); samples wait in this "
                "process's memory (up to %d MB) and are written when it works again",
                self.directory,
                self.last_error,
                MAX_UNWRITTEN_BYTES // 2**20,
            )

    def _count_dropped(self, samples: int, reason: str) -> None:
        self.dropped_samples += samples
        self.last_error = reason
        logger.warning(
            "ptpd-monitor: %d samples were not written to %s: %s", samples, self.directory, reason
        )

    def count_overflow(self, samples: int) -> None:
        """Samples a buffer dropped because recording outran writing (warned once a process)."""
        self.dropped_samples += samples
        if not self._warned_overflow:
            self._warned_overflow = True
            logger.warning(
                "ptpd-monitor: samples are recorded faster than %s can take them; %d dropped "
                "so far, counted in dropped_samples (see BENCHMARKS.md for the rate it keeps)",
                self.directory,
                samples,
            )

    def _health_changed(self) -> bool:
        return (self.dropped_samples, self.error_count) != self._health_written

    def _health_entry(self) -> _Entry | None:
        """This process's loss counters, when they changed: other processes show them."""
        if not self._health_changed():
            return None
        # What the row says, whatever is counted meanwhile.
        self._health_reported = (self.dropped_samples, self.error_count)
        row = {
            "pid": os.getpid(),
            "started": self._started,
            "ts": time.time(),
            "dropped_samples": self.dropped_samples,
            "error_count": self.error_count,
            "last_error": self.last_error,
        }
        key = f"{HEALTH}|{os.getpid()}|{self._started:017.6f}"
        return _Entry(key, to_json(row), 0, self._started)

    def writer_health(self) -> list[dict[str, Any]]:
        """Every writing process's loss counters that were ever non-zero, newest first.

        Each row: pid, started, ts (when written), dropped_samples, error_count, last_error.
        A process records them with its next successful write after they change, so the
        doctor and the dashboard can say what another process could not store.
        """
        rows = []
        for key, value in self._rows(f"{HEALTH}|", f"{HEALTH}}}"):
            try:
                row = json.loads(value)
                if not isinstance(row, dict):
                    raise ValueError("not an object")
            except (TypeError, ValueError):
                self._refuse(key, "not a health record")
                continue
            rows.append(row)
        return sorted(rows, key=lambda row: -float(row.get("ts", 0)))

    def abandon_waiting(self) -> int:
        """Count what still waits as dropped (the process is ending); returns how many."""
        with self._write_lock:
            samples = sum(entry.samples for entry in self._unwritten)
            self._unwritten.clear()
            self._unwritten_bytes = 0
        if samples:
            self._count_dropped(samples, f"the process ended before {self.directory} worked again")
        return samples

    @property
    def waiting_samples(self) -> int:
        """Samples encoded but not yet written (the store is failing, or a write is due)."""
        return sum(entry.samples for entry in list(self._unwritten))

    def _housekeeping(self, folder: CacheFolder) -> None:
        now = time.monotonic()
        if now - self._last_cull >= _CULL_EVERY_S:
            self._last_cull = now
            try:
                self.culled_batches += folder.cull()
            except Exception as exc:
                self._count_error(exc)
        if now - self._last_compact >= _COMPACT_EVERY_S:
            self._last_compact = now
            self.compact()

    # -- compaction (the flusher thread, every few minutes) -------------------------------------

    def compact(self, older_than: float | None = None) -> int:
        """Merge each series' batches into one per clock hour; returns the batches merged away.

        Only hours that ended before ``older_than`` (default: COMPACT_AFTER_S ago) are touched,
        since writers still add to recent ones. Batches are read and merged outside any lock;
        the merged batch replaces them in one short transaction, taken only if they are all
        still there, so processes compacting at once cannot duplicate or lose samples. Never
        raises: a failure is counted in ``error_count`` and logged once.
        """
        cutoff = time.time() - COMPACT_AFTER_S if older_than is None else older_than
        last_hour = float(np.floor(cutoff / COMPACT_SPAN_S) * COMPACT_SPAN_S)
        merged = 0
        # Most passes start where the last ended; every _FULL_COMPACT_EVERY-th looks at every
        # hour again, for batches that arrived late (a store that was away, past timestamps).
        self._compact_passes += 1
        full = older_than is not None or self._compact_passes % _FULL_COMPACT_EVERY == 0
        try:
            folder = self._open()
            for kind in _ALL_KINDS:
                for series in self.series_names(kind):
                    prefix = f"{kind}|{quote(series, safe='')}|"
                    done = 0.0 if full else self._compacted.get((kind, series), 0.0)
                    keys = folder.keys(f"{prefix}{done:017.6f}", f"{prefix}{last_hour:017.6f}")
                    by_hour: dict[float, list[str]] = {}
                    for key in keys:
                        first_ts = float(key[len(prefix) :].split("|", 1)[0])
                        by_hour.setdefault(first_ts // COMPACT_SPAN_S, []).append(key)
                    for hour_keys in by_hour.values():
                        if len(hour_keys) > 1:
                            merged += self._merge_isolated(folder, kind, series, hour_keys)
                    self._compacted[(kind, series)] = last_hour
        except Exception as exc:  # compaction is housekeeping: it must not harm the host app
            self._count_error(exc)
        return merged

    def _merge_isolated(self, folder: CacheFolder, kind: str, series: str, keys: list[str]) -> int:
        """``_merge``; a failure costs this hour's merge only (its batches stay as they are)."""
        try:
            return self._merge(folder, kind, series, keys)
        except Exception as exc:
            self._count_error(exc)
            return 0

    def _merge(self, folder: CacheFolder, kind: str, series: str, keys: list[str]) -> int:
        """Replace ``keys`` by one batch holding all their samples."""
        present: list[tuple[StoredRow, Any]] = []
        for row in folder.lookup(keys):
            try:
                value = folder.value(row.mode, row.filename, row.stored)
            except (PickledRowError, OSError):
                continue  # not ours, or its file is gone: check() reports it
            if decodes(kind, value):
                present.append((row, value))
        if len(present) < 2:
            return 0
        values = [value for _, value in present]
        if kind in COLUMNAR_KINDS:
            value, first, _ = merged_columns(kind, series, values)
        else:
            value, first, _ = merged_records(kind, series, values)
        # The merged batch lives as long as the longest-lived of its parts: merging never
        # shortens a sample's life (retention counts from when a sample was written).
        expiries = [row.expire_time for row, _ in present]
        expire_at = None if None in expiries else max(e for e in expiries if e is not None)
        merged_key = self._key(kind, series, first)
        wanted = {(row.key, row.rowid) for row, _ in present}
        with folder.transaction() as txn:
            if {(row.key, row.rowid) for row in txn.present([k for k, _ in wanted])} != wanted:
                return 0  # another process merged some of them meanwhile: its turn
            txn.delete([key for key, _ in wanted])
            txn.put(merged_key, value, expire_at=expire_at, stored_at=first)
        return len(present) - 1

    # -- reading ------------------------------------------------------------------------------

    def _reading(self) -> CacheFolder:
        # A missing folder is an empty store (nothing recorded yet): opening creates it.
        return self._open()

    def _rows(self, low: str, high: str) -> Iterator[tuple[str, Any]]:
        """Keys in [low, high) and their values, in key order, from one snapshot."""
        for attempt in range(2):
            try:
                folder = self._reading()
                rows = folder.rows(low, high)
            except sqlite3.Error as exc:
                raise StoreError(self.directory, _describe(exc)) from exc
            values: list[tuple[str, Any]] = []
            gone: list[str] = []
            for key, mode, filename, stored in rows:
                try:
                    values.append((key, folder.value(mode, filename, stored)))
                except PickledRowError:
                    self._refuse(key, "it holds a pickle")
                except OSError:
                    gone.append(key)
            if not gone:
                break
            if attempt == 1:  # the row is still there a moment later: its file is lost
                for key in gone:
                    self._refuse(key, "its value file is missing (ptpd-monitor doctor --repair)")
            # else: a legacy file-backed row merged or culled between query and read: reread
        yield from values

    def _refuse(self, key: str, why: str) -> None:
        if key not in self._refused:
            self._refused.add(key)
            self.refused_rows += 1
            logger.warning("ptpd-monitor: skipped row %r in %s: %s", key, self.directory, why)

    def _window(
        self, kind: str, series: str, since: TimeBound, until: TimeBound
    ) -> tuple[Iterator[tuple[str, Any]], float, float]:
        lo, hi = _window_bounds(since, until)
        prefix = f"{kind}|{quote(series, safe='')}|"
        low_key = prefix if lo == -math.inf else f"{prefix}{max(lo - READ_LOOKBACK_S, 0):017.6f}"
        high_key = prefix + "~" if hi == math.inf else f"{prefix}{max(hi, 0):017.6f}~"
        return self._rows(low_key, high_key), lo, hi

    def series_names(self, kind: str) -> list[str]:
        """Every series of ``kind`` in the store: one indexed probe per series (a skip scan)."""
        names: list[str] = []
        low, high = f"{kind}|", f"{kind}}}"
        try:
            folder = self._reading()
            while True:
                key = folder.first_key(low, high)
                if key is None:
                    return names
                quoted = key[len(kind) + 1 :].split("|", 1)[0]
                names.append(unquote(quoted))
                # Every key of this series sorts below "kind|name}" ('}' follows '|').
                low = f"{kind}|{quoted}}}"
        except sqlite3.Error as exc:
            raise StoreError(self.directory, _describe(exc)) from exc

    def read_columns(
        self, kind: str, series: str, since: TimeBound = None, until: TimeBound = None
    ) -> SeriesData:
        """A columnar series' samples with ``since <= ts <= until``, oldest batch first."""
        rows, lo, hi = self._window(kind, series, since, until)
        unit, parts, meta, offset = "", [], {}, 0
        for key, value in rows:
            try:
                header, columns = decode_columns(value)
                width = COLUMN_WIDTHS.get(kind, len(columns))
                if len(columns) != width:
                    raise BadBatch(f"{len(columns)} columns where {kind} series have {width}")
            except BadBatch as exc:
                self._refuse(key, f"not a ptpd-monitor batch ({exc})")
                continue
            unit = header.get("unit", unit)
            keep = (columns[0] >= lo) & (columns[0] <= hi)
            # A sample's new position is the count of kept samples before it.
            new_position = np.cumsum(keep) - 1
            kept = int(new_position[-1]) + 1 if keep.size else 0
            if kept == 0:
                continue
            for index, item in header["meta"].items():
                if keep[index]:
                    meta[offset + int(new_position[index])] = item
            parts.append(columns if kept == keep.size else [c[keep] for c in columns])
            offset += kept
        if not parts:
            return SeriesData(unit, [], {})
        width = len(parts[0])
        merged = in_time_order(
            ColumnBatch(
                kind,
                series,
                tuple(np.concatenate([p[i] for p in parts]) for i in range(width)),
                unit,
                meta,
            )
        )  # batches of several processes overlap in time
        return SeriesData(unit, list(merged.columns), merged.meta or {})

    def read_records(
        self, kind: str, series: str | None = None, since: TimeBound = None, until: TimeBound = None
    ) -> list[dict[str, Any]]:
        """JSON records of one series (or of every series of ``kind``) in the window."""
        out: list[dict[str, Any]] = []
        for columns, keep in self.record_batches(kind, series, since, until):
            names = list(columns)
            out.extend(
                {name: plain(columns[name][i]) for name in names} for i in np.flatnonzero(keep)
            )
        out.sort(key=lambda r: float(r["ts"]))
        return out

    def record_batches(
        self, kind: str, series: str | None, since: TimeBound, until: TimeBound
    ) -> Iterator[tuple[dict[str, list[Any]], np.ndarray]]:
        """Each record batch in the window as columns, with the mask of its rows inside
        (the frames in ``frames.py`` are built from these)."""
        names = [series] if series is not None else self.series_names(kind)
        for name in names:
            rows, lo, hi = self._window(kind, name, since, until)
            for key, value in rows:
                try:
                    columns = record_columns(value)
                except BadBatch as exc:
                    self._refuse(key, f"not JSON records ({exc})")
                    continue
                stamps = np.asarray(columns["ts"], dtype=np.float64)
                keep = (stamps >= lo) & (stamps <= hi)
                if keep.any():
                    yield columns, keep

    # -- the QUICKREF objects over every process's samples (thin aliases for the README) ----

    def load_monitor(self, since: TimeBound = None, until: TimeBound = None) -> PerformanceMonitor:
        """``PerformanceMonitor.from_store(self, since, until)``."""
        from .monitor import PerformanceMonitor  # the one way up: an alias kept for users

        return PerformanceMonitor.from_store(self, since, until)

    def load_api_tracker(
        self, since: TimeBound = None, until: TimeBound = None
    ) -> APIPerformanceTracker:
        """``APIPerformanceTracker.from_store(self, since, until)``."""
        from .api import APIPerformanceTracker  # the one way up: an alias kept for users

        return APIPerformanceTracker.from_store(self, since, until)

    # The README's frames, kept as aliases of frames.py (the pandas layer above the store).

    def metrics_frame(
        self,
        since: TimeBound = None,
        until: TimeBound = None,
        operations: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """``frames.metrics_frame(self, ...)``: timestamp (UTC), operation, value, unit."""
        from . import frames  # the one way up: an alias kept for users

        return frames.metrics_frame(self, since, until, operations)

    def api_frame(self, since: TimeBound = None, until: TimeBound = None) -> pd.DataFrame:
        """``frames.api_frame(self, ...)``: one row a request."""
        from . import frames

        return frames.api_frame(self, since, until)

    def resource_samples(self, since: TimeBound = None, until: TimeBound = None) -> pd.DataFrame:
        """``frames.resource_samples(self, ...)``: one row a resource sample."""
        from . import frames

        return frames.resource_samples(self, since, until)

    def cache_stats(
        self, since: TimeBound = None, until: TimeBound = None, name: str | None = None
    ) -> pd.DataFrame:
        """``frames.cache_stats(self, ...)``: one row a cache-stats snapshot."""
        from . import frames

        return frames.cache_stats(self, since, until, name)

    def profiles(
        self, since: TimeBound = None, until: TimeBound = None, operation: str | None = None
    ) -> pd.DataFrame:
        """``frames.profiles(self, ...)``: one row a profiled operation."""
        from . import frames

        return frames.profiles(self, since, until, operation)

    # -- housekeeping -------------------------------------------------------------------------

    def enforce_limits(self) -> int:
        """Drop expired batches and, past the size limit, the oldest ones; returns how many."""
        try:
            removed = self._open().cull()
        except Exception as exc:
            self._count_error(exc)
            return 0
        self.culled_batches += removed
        return removed

    def clear(self) -> int:
        """Remove every sample (the demo and tests start clean); returns the entries removed."""
        with self._write_lock:
            self._unwritten.clear()
            self._unwritten_bytes = 0
        try:
            return self._reading().clear()
        except (sqlite3.Error, diskcache.Timeout) as exc:
            raise StoreError(self.directory, _describe(exc)) from exc

    def volume_bytes(self) -> int:
        """Bytes the store occupies on disk."""
        try:
            return self._reading().volume()
        except sqlite3.Error as exc:
            raise StoreError(self.directory, _describe(exc)) from exc

    def check(self) -> list[str]:
        """An integrity check of the folder: a list of problems, empty when healthy.

        Besides SQLite's own check: rows whose value file is gone, rows that are not batches
        of ours, and pickled rows (written by something else; refused on read).
        """
        try:
            folder = self._reading()
            problems = folder.integrity_problems()
            missing = folder.rows_missing_files()
            bad = self._bad_rows(folder)
            pickled = folder.pickled_rows()
        except sqlite3.Error as exc:
            raise StoreError(self.directory, _describe(exc)) from exc
        if missing:
            samples = sum(_estimated_samples(key, size) for key, size in missing)
            problems.append(
                f"{len(missing)} rows whose value file is missing (about {samples} samples "
                "lost); `ptpd-monitor doctor --repair` removes them"
            )
        if bad:
            problems.append(
                f"{len(bad)} rows that are not readable ptpd-monitor batches (skipped by "
                "readers); `ptpd-monitor doctor --repair` removes them"
            )
        if pickled:
            problems.append(f"{pickled} pickled rows (written by something else; refused on read)")
        return problems

    def _bad_rows(self, folder: CacheFolder) -> list[str]:
        bad = []
        for key, mode, filename, stored in folder.all_rows():
            kind = key.split("|", 1)[0]
            if kind not in _ALL_KINDS:
                continue  # not ours
            try:
                value = folder.value(mode, filename, stored)
            except (PickledRowError, OSError):
                continue  # counted as pickled or missing
            if not decodes(kind, value):
                bad.append(key)
        return bad

    def repair(self) -> RepairReport:
        """Remove what ``check()`` finds broken; returns what went.

        A database SQLite cannot open is moved aside (``cache.db.corrupt-<time>``) and a fresh
        one started; rows whose value file is gone, rows that are not our batches, and value
        files no row points at are removed. Pickled rows are left: they are not ours.

        Raises:
            StoreError: the folder cannot be opened even after moving the database aside.
        """
        moved: Path | None = None
        cause: BaseException | None = None
        try:
            folder = self._reading()
            damaged = bool(folder.integrity_problems())
        except (StoreError, sqlite3.Error, diskcache.Timeout) as exc:
            if not is_corruption(exc):  # merely busy or unreachable: never move data aside
                raise StoreError(self.directory, _describe(exc)) from exc
            damaged, cause = True, exc
        if damaged:
            moved = self._move_aside_damaged(cause or RuntimeError("integrity check failed"))
            folder = self._reading()
        try:
            missing = folder.rows_missing_files()
            bad = self._bad_rows(folder)
            with self._write_lock, folder.transaction() as txn:
                txn.delete([key for key, _ in missing] + bad)
            orphans = folder.orphan_files()
            for file in orphans:
                file.unlink(missing_ok=True)
        except (sqlite3.Error, diskcache.Timeout) as exc:
            raise StoreError(self.directory, _describe(exc)) from exc
        return RepairReport(
            rows_missing_files=len(missing),
            samples_estimated=sum(_estimated_samples(key, size) for key, size in missing),
            bad_rows=len(bad),
            orphan_files=len(orphans),
            moved_database=moved,
        )


def _describe(exc: BaseException) -> str:
    text = str(exc) or "no detail"
    if type(exc).__name__ == "Timeout":
        text = f"the database stayed locked for {LOCK_TIMEOUT_S:.0f} s"
    elif is_corruption(exc):
        text += (
            " (the database is damaged: the app moves it aside at its next write, or run "
            "`ptpd-monitor doctor --repair`)"
        )
    return f"{type(exc).__name__}: {text}"
