"""In-memory sample buffers: the hot path appends here, queries and the flusher read from here.

A series is one ``array('d')`` of interleaved rows ``(timestamp, value..., metadata id)``: 8
bytes a field and no Python object per sample. The metadata id is NaN for the usual sample
without metadata; otherwise it keys a dict that holds the metadata.

Appending takes no lock: a row is packed to bytes and added with one ``array.frombytes``, a
memcpy in C that runs without releasing the GIL, so a row lands whole; a lock around it would
cost more than the rest of a timer. (``frombytes(pack(...))`` costs half of ``extend`` with a
tuple, which parses float by float through the iterator protocol.) Trimming and copying take
the buffer's lock among themselves; an append racing them only adds rows at the end, which
both allow for.

The newest ``max_history`` rows answer queries. Rows the store has not taken yet are kept past
that bound, up to ``max_pending`` (and half as much again between two trims, which keeps a
trim's copy amortised); anything dropped beyond it is counted in ``dropped``. Once
``EARLY_FLUSH_ROWS`` wait, ``on_backlog`` is called (the publisher wakes the flusher), so a
fast series is written in several smaller batches a second rather than dropped.
"""

from __future__ import annotations

import itertools
import math
import struct
import threading
import time
from array import array
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["DEFAULT_MAX_PENDING", "EARLY_FLUSH_ROWS", "NO_META", "SeriesBuffer"]

# Unflushed rows a series holds at most while the store is slow or away.
DEFAULT_MAX_PENDING = 2_000_000
# Unflushed rows past which the flusher is woken before its interval is up.
EARLY_FLUSH_ROWS = 100_000
NO_META = math.nan
_meta_ids = itertools.count()


class SeriesBuffer:
    """One series: ``width`` float columns (timestamp first) plus the metadata-id column."""

    __slots__ = (
        "base",
        "clock",
        "data",
        "dropped",
        "flushed",
        "lock",
        "max_history",
        "max_pending",
        "meta",
        "on_backlog",
        "pack_row",
        "persist",
        "reported_drops",
        "stride",
        "trim_at",
        "unit",
        "width",
    )

    def __init__(
        self,
        width: int,
        max_history: int,
        *,
        unit: str = "",
        persist: bool = False,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.lock = threading.Lock()
        self.clock: Callable[[], float] = time.time  # stamps the rows (the owner's clock=)
        self.width = width
        self.stride = width + 1
        self.pack_row = struct.Struct(f"{self.stride}d").pack  # native doubles, as array('d')
        self.data: array[float] = array("d")
        self.meta: dict[int, dict[str, Any]] = {}
        self.base = 0  # absolute row index of data's first row
        self.flushed = 0  # absolute row index of the first row the store has not taken
        self.dropped = 0
        self.reported_drops = 0  # of ``dropped``, those the store has counted
        self.max_history = max_history
        self.max_pending = max(max_pending, max_history)
        self.persist = persist
        self.unit = unit
        self.on_backlog: Callable[[], None] | None = None
        # Trimming by halves keeps appends amortised O(1); compared in elements, not rows.
        self.trim_at = 2 * max_history * self.stride

    def __len__(self) -> int:
        return min(len(self.data) // self.stride, self.max_history)

    def add(self, row: tuple[float, ...], meta: dict[str, Any] | None = None) -> None:
        """Append one row of ``width`` values, and its metadata when there is some."""
        if meta:
            meta_id = next(_meta_ids)
            self.meta[meta_id] = meta
            self.data.frombytes(self.pack_row(*row, meta_id))
        else:
            self.data.frombytes(self.pack_row(*row, NO_META))
        if len(self.data) > self.trim_at:
            self.trim()

    def trim(self) -> None:
        """Drop the oldest rows past the history bound, keeping those the store still needs."""
        with self.lock:
            rows = len(self.data) // self.stride
            if rows * self.stride <= self.trim_at:
                return  # another thread trimmed first
            unflushed = self.base + rows - self.flushed if self.persist else 0
            keep = max(self.max_history, min(unflushed, self.max_pending))
            self.dropped += max(unflushed - keep, 0)
            cut = rows - keep
            dropped_ids = self._meta_ids(0, cut)
            del self.data[: cut * self.stride]
            self.base += cut
            self.flushed = max(self.flushed, self.base)
            for meta_id in dropped_ids:
                self.meta.pop(meta_id, None)
            # The next trim when the kept rows have grown by half: each trim moves what it
            # keeps, so a fixed step would copy the whole backlog every max_history appends.
            self.trim_at = (keep + max(self.max_history, keep // 2)) * self.stride
        if unflushed >= EARLY_FLUSH_ROWS and self.on_backlog is not None:
            self.on_backlog()

    def _meta_ids(self, start: int, stop: int) -> list[int]:
        if not self.meta:
            return []
        ids = np.frombuffer(self.data[start * self.stride : stop * self.stride])[
            self.width :: self.stride
        ]
        return [int(i) for i in ids[~np.isnan(ids)]]

    def _rows(self, start: int) -> tuple[list[np.ndarray], dict[int, dict[str, Any]]]:
        """Columns of rows ``start:`` (copies) and their metadata keyed by position from 0."""
        table = np.frombuffer(self.data[start * self.stride :]).reshape(-1, self.stride)
        columns = [np.ascontiguousarray(table[:, i]) for i in range(self.width)]
        meta: dict[int, dict[str, Any]] = {}
        if self.meta:
            ids = table[:, self.width]
            for position in np.flatnonzero(~np.isnan(ids)):
                item = self.meta.get(int(ids[position]))
                if item is not None:
                    meta[int(position)] = item
        return columns, meta

    def view(self) -> tuple[list[np.ndarray], dict[int, dict[str, Any]]]:
        """Copies of the newest ``max_history`` rows' columns, and their metadata by position."""
        with self.lock:
            rows = len(self.data) // self.stride
            return self._rows(max(rows - self.max_history, 0))

    def values(self, column: int = 1) -> np.ndarray:
        """A copy of one column of the newest ``max_history`` rows."""
        with self.lock:
            rows = len(self.data) // self.stride
            start = max(rows - self.max_history, 0) * self.stride
            return np.frombuffer(self.data[start:])[column :: self.stride].copy()

    def take_unflushed(self) -> tuple[list[np.ndarray], dict[int, dict[str, Any]]] | None:
        """The rows the store has not taken yet (copies), marking them taken."""
        with self.lock:
            start = self.flushed - self.base
            columns, meta = self._rows(start)
            if columns[0].size == 0:
                return None
            self.flushed += int(columns[0].size)
            return columns, meta

    def load(self, columns: list[np.ndarray], meta: dict[int, dict[str, Any]]) -> None:
        """Fill from stored columns (a read-only view): every row counts as history."""
        table = np.empty((columns[0].size, self.stride))
        for i, column in enumerate(columns):
            table[:, i] = column
        table[:, self.width] = NO_META
        with self.lock:
            self.meta = {}
            for position, item in meta.items():
                meta_id = next(_meta_ids)
                self.meta[meta_id] = item
                table[position, self.width] = meta_id
            self.data = array("d", table.tobytes())
            self.max_history = max(self.max_history, columns[0].size)
            self.trim_at = 2 * self.max_history * self.stride
            self.base = 0
            self.flushed = columns[0].size

    def drop_inherited(self) -> None:
        """After a fork: a new lock, and the parent's unflushed rows count as flushed."""
        self.lock = threading.Lock()
        self.flushed = self.base + len(self.data) // self.stride

    def clear(self) -> None:
        """Forget every row, flushed or not."""
        with self.lock:
            del self.data[:]
            self.base = self.flushed = 0
            self.meta = {}
