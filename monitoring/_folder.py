"""One open diskcache folder: the only module that touches diskcache's internals.

diskcache gives the store its file layout, its SQLite schema, expiry and size-limit culling.
What it lacks the store needs, so it is added here, behind one small class, against the
internals of the pinned diskcache 5.6 (``_sql``, ``_transact``, ``_disk``, ``_sql_retry``).
The cache's disk backend (``cache.py``) reaches them only through ``sql``, ``transaction``
and ``fetch`` below, so a diskcache upgrade is checked in this one file.

- **Range reads.** A window read is one ``SELECT`` over the key index, values included, so a
  reader gets one consistent snapshot (SQLite's WAL) and never a row whose bytes vanished.
- **Values inline.** ``disk_min_file_size`` is set past any batch, so every value lives in its
  row: a row and its bytes are written and removed in the same SQLite transaction. diskcache's
  default puts values over 32 KB in files, and a nested ``transact()`` removes a deleted row's
  file when the *inner* block ends, before the outer commit: a kill in between left committed
  rows without their files. Files of rows written that way are removed only after commit here.
- **Bounded waits.** diskcache retries a locked database for 60 s while it opens (its Issue
  #85); here any wait on a lock ends after ``timeout_s``, so a broken database fails fast.
- **No memory map.** A mapped database that someone truncates kills the process with SIGBUS.
- **Identity.** The folder's and database file's inode are kept, so a folder deleted or
  replaced under a running process is noticed and reopened rather than written into the void;
  a database truncated in place is noticed by its length.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import diskcache

__all__ = [
    "DB_NAME",
    "CacheFolder",
    "NoPickleDisk",
    "PickledRowError",
    "StoredRow",
    "Transaction",
    "fetch",
    "is_corruption",
    "sql",
    "transaction",
    "truncated_under_a_writer",
]

DB_NAME: str = diskcache.core.DBNAME
_INLINE_UP_TO = 2**40  # bytes: every value stays in its SQLite row
_SQLITE_HEADER_BYTES = 100


class PickledRowError(ValueError):
    """A row holds a pickle: somebody else wrote it, and unpickling could run their code."""


class NoPickleDisk(diskcache.Disk):  # type: ignore[misc]
    """diskcache's Disk restricted to bytes and text, both ways."""

    def store(self, value: Any, read: bool, key: Any = diskcache.UNKNOWN) -> Any:
        if not isinstance(value, bytes | str):
            raise TypeError(
                f"the sample store keeps bytes or JSON text, not {type(value).__name__}"
            )
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == diskcache.core.MODE_PICKLE:
            raise PickledRowError("pickled row refused")
        return super().fetch(mode, filename, value, read)


class _BoundedCache(diskcache.Cache):  # type: ignore[misc]
    """diskcache.Cache whose start-up retries on a locked database end after ``timeout``."""

    @property
    def _sql_retry(self) -> Callable[..., Any]:
        sql = self._sql
        deadline_s = _open_timeout_s

        def execute(statement: str, *args: Any) -> Any:
            start = time.monotonic()
            while True:
                try:
                    return sql(statement, *args)
                except sqlite3.OperationalError as exc:
                    if str(exc) != "database is locked" or time.monotonic() - start > deadline_s:
                        raise
                    time.sleep(0.01)

        return execute


_open_timeout_s = 5.0


# -- diskcache's internals for the cache's disk backend (``cache.py``), fenced here too ---------


def sql(cache: diskcache.Cache) -> Callable[..., Any]:
    """``cache``'s SQLite ``execute`` on this thread's connection (diskcache's ``_sql``)."""
    return cache._sql  # type: ignore[no-any-return]


def transaction(
    cache: diskcache.Cache,
) -> contextlib.AbstractContextManager[tuple[Callable[..., Any], Callable[[str | None], None]]]:
    """``(sql, cleanup)`` in one write transaction; files passed to ``cleanup`` go after commit.

    ``diskcache.Timeout`` when the lock stays taken past the cache's timeout (no retry loop).
    """
    return cache._transact(retry=False)  # type: ignore[no-any-return]


def fetch(cache: diskcache.Cache, mode: int, filename: str | None, stored: Any) -> Any:
    """A row's value (diskcache's ``Disk.fetch``): PickledRowError for a pickle."""
    return cache._disk.fetch(mode, filename, stored, False)


def truncated_under_a_writer(path: Path) -> bool:
    """Whether ``path``'s database is shorter than SQLite's header while a WAL beside it says
    a writer had it open: truncated in place, not merely new.

    A 0-byte database alone is an empty one (a creator killed in its first transaction leaves
    one, with a rollback journal). Only ``stat``: opening and closing the file from outside
    SQLite would drop every POSIX lock this process holds on it (SQLite's documented pitfall),
    and another process would then delete the WAL under our connection.
    """
    try:
        short = os.stat(path / DB_NAME).st_size < _SQLITE_HEADER_BYTES
    except FileNotFoundError:
        return False
    return short and os.path.exists(path / f"{DB_NAME}-wal")


def is_corruption(exc: BaseException | None) -> bool:
    """Whether SQLite says the database file itself is damaged (not busy, full or misused).

    SQLITE_NOTADB and SQLITE_CORRUPT only: every other error leaves the file where it is.
    """
    while exc is not None:
        if isinstance(exc, sqlite3.DatabaseError):
            text = str(exc)
            if "file is not a database" in text or "malformed" in text:
                return True
        exc = exc.__cause__
    return False


@dataclass
class Transaction:
    """Writes inside one SQLite transaction; files of removed rows go once it has committed."""

    _sql: Callable[..., Any]
    _disk: NoPickleDisk
    _removed_files: list[str] = field(default_factory=list)

    def put(
        self, key: str, value: bytes | str, *, expire_at: float | None, stored_at: float
    ) -> None:
        """Insert or replace ``key``'s row, its value inline.

        ``stored_at`` is the batch's first sample time rather than the clock, so that culling
        past the size limit ("least recently stored") removes the oldest samples first, also
        after compaction rewrote them.
        """
        now = time.time()
        size, mode, filename, db_value = self._disk.store(value, False, key=key)
        if filename is not None:  # cannot happen with _INLINE_UP_TO; never leave a stray file
            self._removed_files.append(filename)
            raise RuntimeError("a batch went to a file; the store keeps values inline")
        for (old_file,) in self._sql(
            "SELECT filename FROM Cache WHERE key = ? AND raw = 1", (key,)
        ).fetchall():
            if old_file:
                self._removed_files.append(old_file)
        self._sql(
            "INSERT OR REPLACE INTO Cache(key, raw, store_time, expire_time, access_time, "
            "access_count, tag, size, mode, filename, value) "
            "VALUES (?, 1, ?, ?, ?, 0, NULL, ?, ?, NULL, ?)",
            (key, stored_at, expire_at, now, size, mode, db_value),
        )

    def delete(self, keys: list[str]) -> int:
        """Remove the rows of ``keys`` (those present); returns how many went."""
        removed = 0
        for key in keys:
            row = self._sql(
                "SELECT rowid, filename FROM Cache WHERE key = ? AND raw = 1", (key,)
            ).fetchone()
            if row is None:
                continue
            self._sql("DELETE FROM Cache WHERE rowid = ?", (row[0],))
            if row[1]:
                self._removed_files.append(row[1])
            removed += 1
        return removed

    def present(self, keys: list[str]) -> list[StoredRow]:
        """The rows of ``keys`` that are present, read inside the transaction."""
        return _lookup(self._sql, keys)


class StoredRow(NamedTuple):
    """A row as SQLite holds it; ``CacheFolder.value`` turns it into the value."""

    key: str
    rowid: int
    expire_time: float | None
    mode: int
    filename: str | None
    stored: Any


def _lookup(sql: Callable[..., Any], keys: list[str]) -> list[StoredRow]:
    found = []
    for key in keys:
        row = sql(
            "SELECT rowid, expire_time, mode, filename, value FROM Cache WHERE key = ? AND raw = 1",
            (key,),
        ).fetchone()
        if row is not None:
            found.append(StoredRow(key, *row))
    return found


class CacheFolder:
    """A diskcache folder opened for the sample store (see the module docstring)."""

    def __init__(self, path: Path, *, size_limit: int, timeout_s: float) -> None:
        self.path = path
        self._cache = _BoundedCache(
            str(path),
            disk=NoPickleDisk,
            timeout=timeout_s,
            size_limit=size_limit,
            cull_limit=0,
            eviction_policy="least-recently-stored",
            statistics=False,
            tag_index=False,
            disk_min_file_size=_INLINE_UP_TO,
            # No memory map: a database file truncated under a running process turns a read
            # of a mapped page into SIGBUS, which kills the host app (diskcache maps 64 MB).
            sqlite_mmap_size=0,
        )
        current = self._stat()
        self._identity = None if current is None else current[0]

    def _stat(self) -> tuple[tuple[int, int, int], int] | None:
        """The folder's and database's identity (device, inodes) and the database's length."""
        try:
            folder = os.stat(self.path)
            db = os.stat(self.path / DB_NAME)
        except OSError:
            return None
        return (folder.st_dev, folder.st_ino, db.st_ino), db.st_size

    def state(self) -> str:
        """Whether this handle's database is still "ok", "moved" (the folder or its database
        is not the one it opened: deleted, replaced) or "truncated" (the same file, cut
        shorter than SQLite's header: it keeps its inode, and SQLite may go on writing into
        it through the pages and WAL it holds, so only the length tells).
        """
        current = self._stat()
        if current is None or current[0] != self._identity:
            return "moved"
        return "truncated" if current[1] < _SQLITE_HEADER_BYTES else "ok"

    def close(self) -> None:
        self._cache.close()

    # -- reading ------------------------------------------------------------------------------

    def rows(self, low: str, high: str) -> list[tuple[str, int, str | None, Any]]:
        """Live rows with keys in [low, high), in key order, values included: one snapshot."""
        return list(
            self._cache._sql(
                "SELECT key, mode, filename, value FROM Cache WHERE key >= ? AND key < ? "
                "AND raw = 1 AND (expire_time IS NULL OR expire_time > ?) ORDER BY key",
                (low, high, time.time()),
            ).fetchall()
        )

    def keys(self, low: str, high: str) -> list[str]:
        """Keys in [low, high), in order."""
        return [
            row[0]
            for row in self._cache._sql(
                "SELECT key FROM Cache WHERE key >= ? AND key < ? AND raw = 1 ORDER BY key",
                (low, high),
            ).fetchall()
        ]

    def first_key(self, low: str, high: str) -> str | None:
        """The smallest key in [low, high): one probe of the key index."""
        row = self._cache._sql(
            "SELECT key FROM Cache WHERE key >= ? AND key < ? AND raw = 1 ORDER BY key LIMIT 1",
            (low, high),
        ).fetchone()
        return None if row is None else str(row[0])

    def lookup(self, keys: list[str]) -> list[StoredRow]:
        """The rows of ``keys`` that are present (outside any transaction)."""
        return _lookup(self._cache._sql, keys)

    def value(self, mode: int, filename: str | None, stored: Any) -> Any:
        """A row's value; PickledRowError for a pickle, OSError when its file is gone."""
        return self._cache._disk.fetch(mode, filename, stored, False)

    # -- writing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One SQLite write transaction; ``diskcache.Timeout`` when the lock stays taken."""
        with self._cache._transact(retry=False) as (sql, cleanup):
            txn = Transaction(sql, self._cache._disk)
            yield txn
            # diskcache removes these only after COMMIT (this is the outermost transaction).
            for name in txn._removed_files:
                cleanup(name)

    def cull(self) -> int:
        """Expired rows, then the oldest past the size limit; returns how many went."""
        return int(self._cache.cull())

    def volume(self) -> int:
        return int(self._cache.volume())

    def clear(self) -> int:
        """Every row; ``diskcache.Timeout`` when the lock stays taken (no endless retry)."""
        return int(self._cache.clear(retry=False))

    # -- checks and repair --------------------------------------------------------------------

    def integrity_problems(self) -> list[str]:
        rows = self._cache._sql("PRAGMA integrity_check").fetchall()
        return [str(r[0]) for r in rows if r[0] != "ok"]

    def pickled_rows(self) -> int:
        row = self._cache._sql(
            "SELECT count(*) FROM Cache WHERE mode = ?", (diskcache.core.MODE_PICKLE,)
        ).fetchone()
        return int(row[0])

    def rows_missing_files(self) -> list[tuple[str, int]]:
        """``(key, size in bytes)`` of rows that point at a file that is not there."""
        rows = self._cache._sql(
            "SELECT key, filename, size FROM Cache WHERE filename IS NOT NULL"
        ).fetchall()
        return [
            (str(key), int(size or 0))
            for key, filename, size in rows
            if not (self.path / filename).is_file()
        ]

    def orphan_files(self) -> list[Path]:
        """Value files no row points at (left by a kill between a commit and their removal)."""
        named = {
            str(row[0])
            for row in self._cache._sql(
                "SELECT filename FROM Cache WHERE filename IS NOT NULL"
            ).fetchall()
        }
        found = []
        for file in self.path.rglob("*.val"):
            if str(file.relative_to(self.path)) not in named:
                found.append(file)
        return found

    def all_rows(self) -> Iterator[tuple[str, int, str | None, Any]]:
        """Every row with its value, one at a time (for checks over the whole store)."""
        cursor = self._cache._sql("SELECT key, mode, filename, value FROM Cache WHERE raw = 1")
        yield from cursor
