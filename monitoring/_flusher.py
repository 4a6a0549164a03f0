"""The one background thread per process that moves buffered samples to their stores.

Sources (monitors, API trackers, caches, resource samplers) register themselves; every
``FLUSH_INTERVAL_S`` and at interpreter exit the thread asks each for its pending batches and
writes them, one transaction per store. Registration holds weak references, so a dropped
monitor is forgotten; its finaliser writes what it still held (see ``_publisher.py``).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import threading
import weakref
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from ._forks import on_fork
from .store import STORES, ColumnBatch, RecordBatch, SampleStore

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
        self._flush_lock_at_fork = False
        self.interval_s = 1.0

    def register(self, source: FlushSource, interval_s: float | None = None) -> None:
        """Flush ``source`` in the background from now on (starting the thread if needed)."""
        with self._lock:
            if interval_s is not None:
                self.interval_s = min(self.interval_s, interval_s) if self._sources else interval_s
            self._sources.add(source)
            self._start()

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="ptpd-monitor-flusher", daemon=True
            )
            self._thread.start()

    def wake(self) -> None:
        """Flush now rather than at the next interval (a series' backlog is growing fast)."""
        self._wake.set()

    def _run(self) -> None:
        # This thread must outlive anything one flush can throw: if it died, nothing more
        # would be written until exit. flush_all already catches per source and per batch.
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            try:
                self.flush_all()
            except BaseException:
                logger.exception("ptpd-monitor: a flush failed; the next one goes on")

    def flush_all(self) -> None:
        """Write every registered source's pending samples now; never raises."""
        with self._lock:
            sources = list(self._sources)
        with _flush_lock:
            _flush(sources, every_store=True)

    def _before_fork(self) -> None:
        # No fork in the middle of a flush (see _forks.py); bounded, so a stuck store cannot
        # stop the host's fork.
        self._flush_lock_at_fork = _flush_lock.acquire(timeout=10.0)

    def _after_fork_in_parent(self) -> None:
        if self._flush_lock_at_fork:
            _flush_lock.release()

    def _after_fork(self) -> None:
        # The child inherits no thread, and the parent's locks in whatever state the fork
        # found them. Each source forgets the samples that are the parent's in its own
        # _after_fork (see _forks.py); the thread starts again once all are renewed.
        global _flush_lock
        _flush_lock = threading.Lock()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None

    def _resume_after_fork(self) -> None:
        with self._lock:
            if self._sources:
                self._start()


_flush_lock = threading.Lock()


def flush_sources(sources: Sequence[FlushSource]) -> None:
    """Write the pending batches of ``sources``, grouped into one transaction per store.

    One flush at a time: a ``flush()`` returning while the background thread still holds
    samples it has taken but not written would leave a reader without them.
    """
    with _flush_lock:
        _flush(sources)


def _flush(sources: Sequence[FlushSource], *, every_store: bool = False) -> None:
    """``every_store``: also the stores no source points at any more, whose dropped sources
    handed their samples over (``SampleStore.adopt``)."""
    by_store: dict[SampleStore, list[ColumnBatch | RecordBatch]] = defaultdict(list)
    for source in sources:
        store = source.store
        if store is None:
            continue
        try:
            by_store[store].extend(source.pending_batches())
        except Exception:  # a source bug must not stop the others, nor the host app
            logger.exception("ptpd-monitor: could not collect samples from %r", source)
    for store in list(STORES) if every_store else ():
        by_store.setdefault(store, [])
    for store, batches in by_store.items():
        store.write(batches)  # never raises: it catches, counts and keeps per batch


def _flush_at_multiprocessing_exit(flusher: _Flusher) -> None:
    # multiprocessing's children leave through os._exit, past the atexit hooks; they run its
    # finalisers instead. Forked children start with none, hence the after-fork registration.
    multiprocessing.util.Finalize(flusher, flusher.flush_all, exitpriority=0)


FLUSHER = _Flusher()
on_fork(FLUSHER)
atexit.register(FLUSHER.flush_all)
_flush_at_multiprocessing_exit(FLUSHER)
multiprocessing.util.register_after_fork(FLUSHER, _flush_at_multiprocessing_exit)
