"""What the monitor and the API tracker share: named series buffers that publish to a store."""

from __future__ import annotations

import threading
import weakref
from typing import ClassVar, Self

from ._flusher import FLUSHER, flush_sources
from ._series import SeriesBuffer
from .settings import get_settings
from .store import ColumnBatch, SampleStore, SeriesData

__all__ = ["SeriesPublisher"]


class SeriesPublisher:
    """Named SeriesBuffers of ``WIDTH`` columns, flushed to ``store`` as ``KIND`` batches.

    Built directly it keeps its data in memory; with a store, the background flusher publishes
    new samples. ``_from_store`` rebuilds a read-only instance from stored columns.
    """

    KIND: ClassVar[str]
    WIDTH: ClassVar[int]

    def __init__(self, max_history: int | None = None, *, store: SampleStore | None = None) -> None:
        settings = get_settings()
        history = settings.MAX_HISTORY if max_history is None else max_history
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ValueError(f"max_history must be a positive integer, got {max_history!r}")
        self.max_history = history
        self._series: dict[str, SeriesBuffer] = {}
        self._lock = threading.Lock()
        self._read_only = False
        self._store = store
        if store is not None:
            FLUSHER.register(self, settings.FLUSH_INTERVAL_S)
            # The flusher holds publishers weakly: one dropped before the next flush still
            # writes what it holds (the buffers outlive it long enough for that).
            weakref.finalize(self, _write_pending, store, self.KIND, self._series)

    def _new_buffer(self, unit: str) -> SeriesBuffer:
        """A buffer for a new series: kept for the store, and waking the flusher when it lags."""
        series = SeriesBuffer(
            self.WIDTH, self.max_history, unit=unit, persist=self._store is not None
        )
        if self._store is not None:
            series.on_backlog = FLUSHER.wake
        return series

    @property
    def store(self) -> SampleStore | None:
        """Where samples are published, or None when they stay in memory."""
        return self._store

    def sample_count(self, name: str | None = None) -> int:
        """Samples held for one series (by its key) or for all: a count without the statistics."""
        if name is not None:
            series = self._series.get(name)
            return len(series) if series is not None else 0
        return sum(len(series) for series in list(self._series.values()))

    @property
    def dropped_samples(self) -> int:
        """Samples never written because the store stayed away past the pending bound."""
        return sum(series.dropped for series in list(self._series.values()))

    def pending_batches(self) -> list[ColumnBatch]:
        """New samples for the store, one batch per series (the flusher calls this)."""
        return _pending(self.KIND, self._series, self._store)

    def drop_inherited(self) -> None:
        """After a fork: new locks, and the parent's pending samples left to the parent."""
        self._lock = threading.Lock()
        for series in list(self._series.values()):
            series.drop_inherited()

    def flush(self) -> None:
        """Write pending samples to the store now (a no-op without a store)."""
        if self._store is not None:
            flush_sources([self])

    @classmethod
    def _from_store(cls, data: dict[str, SeriesData]) -> Self:
        loaded = cls(max_history=1)
        for name, series_data in data.items():
            if series_data.size:
                series = SeriesBuffer(cls.WIDTH, 1, unit=series_data.unit)
                series.load(series_data.columns, series_data.meta)
                loaded._series[name] = series
        loaded._read_only = True
        return loaded


def _pending(
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


def _write_pending(store: SampleStore, kind: str, series_map: dict[str, SeriesBuffer]) -> None:
    store.write(_pending(kind, series_map, store))
