"""The one background thread per process that moves buffered samples to their stores.

Sources (monitors, API trackers, caches, resource samplers) register themselves; every
``FLUSH_INTERVAL_S`` and at interpreter exit the thread asks each for its pending batches and
writes them, one transaction per store. Registration holds weak references, so a dropped
monitor is simply forgotten (after its last samples were flushed by its finaliser-free path:
``flush()`` is cheap, call it when you are done with a short-lived monitor).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from .store import ColumnBatch, RecordBatch, SampleStore

logger = logging.getLogger(__name__)


class FlushSource(Protocol):
    """Anything with samples waiting for a store."""

    @property
    def store(self) -> SampleStore | None: ...

    def pending_batches(self) -> Sequence[ColumnBatch | RecordBatch]: ...


class _Flusher:
    def __init__(self) -> None:
        self._sources: weakref.WeakSet[FlushSource] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.interval_s = 1.0

    def register(self, source: FlushSource, interval_s: float | None = None) -> None:
        """Flush ``source`` in the background from now on (starting the thread if needed)."""
        with self._lock:
            if interval_s is not None:
                self.interval_s = min(self.interval_s, interval_s) if self._sources else interval_s
            self._sources.add(source)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="ptpd-monitor-flusher", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._wake.wait(self.interval_s):
            self.flush_all()

    def flush_all(self) -> None:
        """Write every registered source's pending samples now; never raises."""
        with self._lock:
            sources = list(self._sources)
        flush_sources(sources)

    def _after_fork(self) -> None:
        # The child inherits no thread; it starts its own on the next registration or flush.
        self._lock = threading.Lock()
        self._thread = None
        sources = list(self._sources)
        self._sources = weakref.WeakSet()
        for source in sources:
            self.register(source)


def flush_sources(sources: Sequence[FlushSource]) -> None:
    """Write the pending batches of ``sources``, grouped into one transaction per store."""
    by_store: dict[SampleStore, list[ColumnBatch | RecordBatch]] = defaultdict(list)
    for source in sources:
        store = source.store
        if store is None:
            continue
        try:
            by_store[store].extend(source.pending_batches())
        except Exception:  # a source bug must not stop the others, nor the host app
            logger.exception("ptpd-monitor: could not collect samples from %r", source)
    for store, batches in by_store.items():
        store.write(batches)


FLUSHER = _Flusher()
atexit.register(FLUSHER.flush_all)
os.register_at_fork(after_in_child=FLUSHER._after_fork)
