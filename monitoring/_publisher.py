"""The one lifecycle every source of samples shares on its way to the store.

A :class:`Publisher` built without a store keeps everything in memory. Given one, it is
registered with the background flusher, which asks it for ``pending_batches()`` every
``FLUSH_INTERVAL_S`` and at exit; ``flush()`` does the same at once. In a forked child it
renews its lock and forgets the samples waiting at the fork, which are the parent's to write
(``_forks.py``). Its pending samples sit in an outbox with one overflow rule: past
``max_pending`` the oldest are dropped, counted in ``dropped_samples`` and in the store's
``dropped_samples``. When a publisher is dropped before the next flush (the flusher holds
publishers weakly), its finaliser hands what its outbox holds to the store for the next write.

Two outboxes: :class:`SeriesPublisher` (monitor, API tracker) keeps columnar series buffers
(``_series.py``); :class:`RecordPublisher` (profiler, resource sampler) keeps JSON rows. The
cache publishes a snapshot of its counters when they change and needs no outbox.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Self

from ._flusher import FLUSHER, flush_sources
from ._forks import on_fork
from ._series import SeriesBuffer
from .settings import get_settings
from .store import ColumnBatch, RecordBatch, SampleStore, SeriesData

__all__ = ["Publisher", "RecordPublisher", "SeriesPublisher"]


class Publisher:
    """Registration with the flusher, ``flush()``, and the fork rule (see the module docstring).

    Subclasses implement ``pending_batches()`` and ``_forget_inherited()``.
    """

    def __init__(self, store: SampleStore | None) -> None:
        self._store = store
        self._lock = self._new_lock()
        on_fork(self)
        if store is not None:
            FLUSHER.register(self, get_settings().FLUSH_INTERVAL_S)

    @property
    def store(self) -> SampleStore | None:
        """Where samples are published, or None when they stay in memory."""
        return self._store

    def pending_batches(self) -> list[ColumnBatch] | list[RecordBatch]:
        """New samples for the store (the flusher calls this)."""
        raise NotImplementedError

    def flush(self) -> None:
        """Write pending samples to the store now (a no-op without a store)."""
        if self._store is not None:
            flush_sources([self])

    @staticmethod
    def _new_lock() -> threading.Lock | threading.RLock:
        return threading.Lock()

    def _after_fork(self) -> None:
        self._lock = self._new_lock()  # a parent thread may have held it at the fork
        self._forget_inherited()

    def _forget_inherited(self) -> None:
        """In a forked child: the samples waiting at the fork are the parent's to write."""
        raise NotImplementedError


class SeriesPublisher(Publisher):
    """Named SeriesBuffers of ``WIDTH`` columns, flushed to ``store`` as ``KIND`` batches;
    ``clock`` (epoch seconds, ``time.time``) stamps the rows, and tests pin it.

    ``_loaded`` builds an instance from stored columns, for the read-only views.
    """

    KIND: ClassVar[str]
    WIDTH: ClassVar[int]

    def __init__(
        self,
        max_history: int | None = None,
        *,
        store: SampleStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not callable(clock):
            raise ValueError(f"clock must be a callable returning epoch seconds, got {clock!r}")
        self._clock = clock
        history = get_settings().MAX_HISTORY if max_history is None else max_history
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ValueError(f"max_history must be a positive integer, got {max_history!r}")
        self.max_history = history
        self._series: dict[str, SeriesBuffer] = {}
        super().__init__(store)
        if store is not None:
            weakref.finalize(self, _hand_over_series, store, self.KIND, self._series)

    def _new_buffer(self, unit: str) -> SeriesBuffer:
        """A buffer for a new series: kept for the store, and waking the flusher when it lags."""
        series = SeriesBuffer(
            self.WIDTH, self.max_history, unit=unit, persist=self._store is not None
        )
        series.clock = self._clock
        if self._store is not None:
            series.on_backlog = FLUSHER.wake
        return series

    def sample_count(self, name: str | None = None) -> int:
        """Samples held for one series (by its key) or for all: a count without the statistics."""
        if name is not None:
            series = self._series.get(name)
            return len(series) if series is not None else 0
        return sum(len(series) for series in list(self._series.values()))

    @property
    def dropped_samples(self) -> int:
        """Samples never written because recording outran the store past the pending bound."""
        return sum(series.dropped for series in list(self._series.values()))

    def pending_batches(self) -> list[ColumnBatch]:
        """New samples for the store, one batch per series (the flusher calls this)."""
        return _series_batches(self.KIND, self._series, self._store)

    def _forget_inherited(self) -> None:
        for series in list(self._series.values()):
            series.drop_inherited()

    @classmethod
    def _loaded(cls, data: dict[str, SeriesData]) -> Self:
        """An instance holding stored columns (the read-only subclasses' constructor)."""
        loaded = cls(max_history=1)
        for name, series_data in data.items():
            if series_data.size:
                series = SeriesBuffer(cls.WIDTH, 1, unit=series_data.unit)
                series.load(series_data.columns, series_data.meta)
                loaded._series[name] = series
        return loaded


class RecordPublisher(Publisher):
    """JSON rows published as ``KIND`` record batches, one per series.

    Rows wait in an outbox of at most ``max_pending``; past it the oldest go, counted.
    """

    KIND: ClassVar[str]

    def __init__(self, store: SampleStore | None, max_pending: int = 100_000) -> None:
        self._outbox = _RecordOutbox(self.KIND, max_pending)
        super().__init__(store)
        if store is not None:
            weakref.finalize(self, _hand_over_records, store, self._outbox)

    def _publish(self, series: str, row: dict[str, Any]) -> None:
        """Queue ``row`` (it carries its epoch time under "ts") for the store, if there is one."""
        if self._store is not None:
            self._outbox.add(series, row)

    @property
    def dropped_samples(self) -> int:
        """Rows never written because recording outran the store past the pending bound."""
        return self._outbox.dropped

    def pending_batches(self) -> list[RecordBatch]:
        """New rows for the store, one batch per series (the flusher calls this)."""
        return self._outbox.take(self._store)

    def _forget_inherited(self) -> None:
        self._outbox.forget()


class _RecordOutbox:
    """The rows a RecordPublisher has not written yet; outlives it for its finaliser."""

    def __init__(self, kind: str, max_pending: int) -> None:
        self.kind = kind
        self.rows: deque[tuple[str, dict[str, Any]]] = deque()
        self.max_pending = max_pending
        self.dropped = 0
        self.reported = 0  # of ``dropped``, those the store has counted
        self.lock = threading.Lock()

    def add(self, series: str, row: dict[str, Any]) -> None:
        with self.lock:
            if len(self.rows) >= self.max_pending:
                self.rows.popleft()
                self.dropped += 1
            self.rows.append((series, row))

    def take(self, store: SampleStore | None) -> list[RecordBatch]:
        with self.lock:
            rows = list(self.rows)
            self.rows.clear()
            overflow, self.reported = self.dropped - self.reported, self.dropped
        if overflow and store is not None:
            store.count_overflow(overflow)
        by_series: dict[str, list[dict[str, Any]]] = {}
        for series, row in rows:
            by_series.setdefault(series, []).append(row)
        return [RecordBatch(self.kind, series, group) for series, group in by_series.items()]

    def forget(self) -> None:
        self.lock = threading.Lock()
        self.rows.clear()


def _series_batches(
    kind: str, series_map: dict[str, SeriesBuffer], store: SampleStore | None
) -> list[ColumnBatch]:
    batches = []
    for name, series in list(series_map.items()):
        overflow = series.dropped - series.reported_drops
        if overflow and store is not None:
            series.reported_drops += overflow
            store.count_overflow(overflow)
        taken = series.take_unflushed()
        if taken is not None:
            columns, meta = taken
            batches.append(ColumnBatch(kind, name, tuple(columns), series.unit, meta or None))
    return batches


# Finalisers run wherever the garbage collector does, under whatever locks that thread holds:
# they only hand their work to the store (a deque append) and wake the flusher, which writes it.


def _hand_over_series(store: SampleStore, kind: str, series_map: dict[str, SeriesBuffer]) -> None:
    store.adopt(lambda: _series_batches(kind, series_map, store))
    FLUSHER.wake()


def _hand_over_records(store: SampleStore, outbox: _RecordOutbox) -> None:
    store.adopt(lambda: outbox.take(store))
    FLUSHER.wake()
