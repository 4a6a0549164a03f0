"""Crash and load scenarios for the sample store: the child processes and the rounds driving them.

``tests/integration/test_store_crashes.py`` runs these small, ``bench/reliability.py`` at full
size. Each scenario returns what it counted (samples lost, duplicated, ``check()`` problems);
the tests assert on those counts and the bench prints them. No mocks: children are real
processes (forked with ``multiprocessing``'s "fork" context, or fresh interpreters running this
file) killed with SIGKILL.

As a script (a fresh interpreter, exits normally so the exit hooks flush)::

    python _crash_child.py load STORE_DIR INDEX THREADS SAMPLES

records ``THREADS`` × ``SAMPLES`` unique values through ``PerformanceMonitor(store=...)`` and
prints one JSON line of its store's counters *after* the package's exit flush.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
FORK = multiprocessing.get_context("fork")
FAR_FUTURE_S = 10 * 86400.0  # compact(older_than=now + this): every hour qualifies
RECORD_SERIES = "prof.crash"
FLUSH_SERIES = "crash.flush"
LOAD_SERIES = "crash.load"
ROUND_STRIDE = 10_000_000  # values of flush-kill round r start at r × this
_WAIT_S = 120.0
META_EVERY = 40  # template samples with metadata ({"id": value}) to check it stays paired


# -- the template store ----------------------------------------------------------------------------


@dataclass
class Template:
    """A store of many small batches over past clock hours, and what it must always hold."""

    directory: Path
    values: dict[str, np.ndarray]  # series -> its values, sorted (each value unique store-wide)
    stamps: dict[str, np.ndarray]  # series -> the timestamps paired with ``values``
    with_meta: dict[str, int]  # series -> how many of its samples carry metadata
    records: list[dict[str, Any]]  # the PROFILE records, sorted by id
    rows: int  # rows as written
    compacted_rows: int  # rows once every hour of every series is merged
    hour_starts: list[float]

    @property
    def samples(self) -> int:
        return sum(v.size for v in self.values.values())


def build_template(
    directory: Path,
    *,
    series: int = 3,
    hours: int = 3,
    batches: int = 60,
    samples: int = 200,
    records_per_batch: int = 5,
) -> Template:
    """Write ``series × hours × batches`` metric batches and ``hours × batches`` record batches.

    The hours end at least an hour before now. Batch ``b`` of an hour starts ``55 b`` seconds in
    and spans under 60 s, so each batch is one row; values count up from 0 across the store.
    """
    from ptpd_calibration.monitoring.store import (
        METRIC,
        PROFILE,
        ColumnBatch,
        RecordBatch,
        SampleStore,
    )

    span = 55.0 * batches
    if span > 3600.0 or samples < 1:
        raise ValueError(f"{batches} batches of 55 s do not fit in an hour")
    step = 50.0 / samples  # a batch spans 50 s: under MAX_BATCH_SPAN_S, one row each
    first_hour = math.floor(time.time() / 3600.0) * 3600.0 - (hours + 1) * 3600.0
    hour_starts = [first_hour + h * 3600.0 for h in range(hours)]
    items: list[Any] = []
    values: dict[str, list[np.ndarray]] = {}
    stamps: dict[str, list[np.ndarray]] = {}
    next_value = 0
    for s in range(series):
        name = f"crash.op{s}"
        for start in hour_starts:
            for b in range(batches):
                ts = start + 55.0 * b + 0.01 * s + step * np.arange(samples)
                vals = np.arange(next_value, next_value + samples, dtype=np.float64)
                next_value += samples
                meta = {i: {"id": int(vals[i])} for i in range(0, samples, META_EVERY)}
                items.append(ColumnBatch(METRIC, name, (ts, vals), "seconds", meta))
                values.setdefault(name, []).append(vals)
                stamps.setdefault(name, []).append(ts)
    records: list[dict[str, Any]] = []
    for start in hour_starts:
        for b in range(batches):
            rows = [
                {
                    "ts": start + 55.0 * b + 10.0 * k,
                    "id": len(records) + k,
                    "wall_time": 0.25 * k,
                    "operation": RECORD_SERIES,
                    "success": k % 2 == 0,
                }
                for k in range(records_per_batch)
            ]
            records.extend(rows)
            items.append(RecordBatch(PROFILE, RECORD_SERIES, rows))
    store = SampleStore(directory)
    if not store.write(items):
        raise RuntimeError(f"could not write the template: {store.last_error}")
    store.close()
    rows = count_rows(directory)
    expected_rows = series * hours * batches + (hours * batches if records_per_batch else 0)
    if rows != expected_rows:
        raise RuntimeError(f"the template has {rows} rows, {expected_rows} expected")
    return Template(
        directory=directory,
        values={n: np.concatenate(v) for n, v in values.items()},
        stamps={n: np.concatenate(t) for n, t in stamps.items()},
        with_meta={n: len(v) * len(range(0, samples, META_EVERY)) for n, v in values.items()},
        records=sorted(records, key=lambda r: r["id"]),
        rows=rows,
        compacted_rows=series * hours + (hours if records_per_batch else 0),
        hour_starts=hour_starts,
    )


def count_rows(directory: Path) -> int:
    """Sample rows (batches) in the store's database, read with sqlite3 itself, not through the
    store; other rows (a writer's health counters) are not batches and are not counted."""
    kinds = ("metric", "api", "resource", "cache", "profile")
    kind_of_key = "substr(key, 1, instr(key, '|') - 1)"
    with contextlib.closing(sqlite3.connect(directory / "cache.db")) as connection:
        row = connection.execute(
            f"SELECT count(*) FROM Cache WHERE {kind_of_key} IN (?, ?, ?, ?, ?)", kinds
        ).fetchone()
        return int(row[0])


@dataclass
class Tally:
    """How one read of a store compares with what it must hold."""

    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0  # values no writer wrote
    torn: int = 0  # samples whose timestamp or metadata no longer pairs with their value
    records_lost: int = 0
    records_duplicated: int = 0
    records_changed: int = 0
    problems: list[str] = field(default_factory=list)  # check() of the store

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.unexpected
            or self.torn
            or self.records_lost
            or self.records_duplicated
            or self.records_changed
            or self.problems
        )


def checked(store: Any) -> list[str]:
    """``store.check()``, with a StoreError it raises turned into a problem (counted, not fatal)."""
    from ptpd_calibration.monitoring.store import StoreError

    try:
        return list(store.check())
    except StoreError as exc:
        return [f"check() raised StoreError: {exc.reason}"]


def read_values(store: Any, series: str, problems: list[str]) -> Any:
    """``store.read_columns(METRIC, series)``; a StoreError reads as no samples, noted."""
    from ptpd_calibration.monitoring.store import METRIC, SeriesData, StoreError

    try:
        return store.read_columns(METRIC, series)
    except StoreError as exc:
        problems.append(f"read_columns({series!r}) raised StoreError: {exc.reason}")
        return SeriesData("", [], {})


def compare_values(present: np.ndarray, expected: np.ndarray) -> tuple[int, int, int]:
    """(lost, duplicated, unexpected) of ``present`` against the unique, sorted ``expected``."""
    unique = np.unique(present)
    duplicated = int(present.size - unique.size)
    lost = int(np.setdiff1d(expected, unique, assume_unique=True).size)
    unexpected = int(np.setdiff1d(unique, expected, assume_unique=True).size)
    return lost, duplicated, unexpected


def tally_template(directory: Path, template: Template) -> Tally:
    """Open ``directory`` in this process and compare it, value by value, with ``template``."""
    from ptpd_calibration.monitoring.store import PROFILE, SampleStore, StoreError

    store = SampleStore(directory)
    try:
        tally = Tally(problems=checked(store))
        for name, expected in template.values.items():
            data = read_values(store, name, tally.problems)
            present = data.columns[1] if data.size else np.empty(0)
            lost, duplicated, unexpected = compare_values(present, expected)
            tally.lost += lost
            tally.duplicated += duplicated
            tally.unexpected += unexpected
            if data.size and not (lost or duplicated or unexpected):
                order = np.argsort(present, kind="stable")
                tally.torn += int(np.count_nonzero(data.columns[0][order] != template.stamps[name]))
                tally.torn += sum(1 for i, m in data.meta.items() if m.get("id") != present[i])
                tally.torn += abs(len(data.meta) - template.with_meta[name])
        try:
            records = store.read_records(PROFILE, RECORD_SERIES)
        except StoreError as exc:
            tally.problems.append(f"read_records raised StoreError: {exc.reason}")
            records = []
        ids = [int(r["id"]) for r in records]
        tally.records_duplicated = len(ids) - len(set(ids))
        wanted = {r["id"]: r for r in template.records}
        tally.records_lost = len(wanted.keys() - set(ids))
        tally.records_changed = sum(
            1 for r in records if r["id"] in wanted and _record_differs(r, wanted[r["id"]])
        )
        return tally
    finally:
        store.close()


def _record_differs(read: dict[str, Any], written: dict[str, Any]) -> bool:
    return any(read.get(key) != value for key, value in written.items())


# -- scenario 1: SIGKILL during compaction ---------------------------------------------------------


def _compact_child(directory: str, conn: Connection) -> None:
    from ptpd_calibration.monitoring.store import METRIC, SampleStore

    store = SampleStore(directory)
    store.series_names(METRIC)  # the folder is open: what follows is the compaction alone
    conn.send("ready")
    merged = store.compact(older_than=time.time() + FAR_FUTURE_S)
    conn.send(("done", merged, store.error_count, store.last_error))


@dataclass
class CompactionRound:
    delay_s: float
    rows: int  # rows right after the kill
    state: str  # "untouched", "partial" or "compacted"
    after_kill: Tally
    resumed: Tally | None  # after compact() in this process, where it was run
    resumed_rows: int | None


def _start_compactor(directory: Path) -> tuple[Any, Connection]:
    return _start_child(_compact_child, directory)


def compaction_duration(template: Template, scratch: Path, runs: int = 3) -> float:
    """Seconds one compaction of a copy of the template takes in a child, ready to done: the
    median of ``runs`` (a busy machine makes single runs vary twofold)."""
    times = []
    for run in range(runs):
        copy = scratch / f"timing-{run}"
        shutil.copytree(template.directory, copy)
        process, conn = _start_compactor(copy)
        start = time.perf_counter()
        if not conn.poll(_WAIT_S):
            process.kill()
            raise RuntimeError("the compaction did not finish")
        message = conn.recv()
        times.append(time.perf_counter() - start)
        process.join(_WAIT_S)
        if message[0] != "done" or message[2]:
            raise RuntimeError(f"the timing compaction failed: {message}")
        rows = count_rows(copy)
        if rows != template.compacted_rows:
            raise RuntimeError(f"compaction left {rows} rows, {template.compacted_rows} wanted")
        shutil.rmtree(copy)
    return float(np.median(times))


def compaction_kill_round(
    template: Template, directory: Path, delay_s: float, *, resume: bool
) -> CompactionRound:
    """Copy the template, SIGKILL a child ``delay_s`` into its compaction, count what is left.

    With ``resume``, this process then compacts the survivor itself and counts again: a killed
    compaction must leave a store a later one can finish.
    """
    shutil.copytree(template.directory, directory)
    process, conn = _start_compactor(directory)
    time.sleep(delay_s)
    process.kill()
    process.join(_WAIT_S)
    conn.close()
    rows = count_rows(directory)
    if rows == template.rows:
        state = "untouched"
    elif rows == template.compacted_rows:
        state = "compacted"
    else:
        state = "partial"
    after_kill = tally_template(directory, template)
    resumed = resumed_rows = None
    if resume:
        from ptpd_calibration.monitoring.store import SampleStore

        store = SampleStore(directory)
        store.compact(older_than=time.time() + FAR_FUTURE_S)
        store.close()
        resumed_rows = count_rows(directory)
        resumed = tally_template(directory, template)
    shutil.rmtree(directory)
    return CompactionRound(delay_s, rows, state, after_kill, resumed, resumed_rows)


# -- scenario 2: SIGKILL during flushes ------------------------------------------------------------

# The shared progress a flush child leaves: written by the child before each step, so after a
# kill it says how far the child got. Indices into a RawArray of doubles.
RECORDED, COMMITTED, DROPPED, STARTED = 0, 1, 2, 3


def _flush_child(directory: str, progress: Any, base: int, flush_every_s: float) -> None:
    """Record unique, increasing values; after each flush that left nothing waiting, publish the
    newest value it covered. ``progress[RECORDED]`` is set *before* each sample is recorded, so
    it is never behind what a flush can have written."""
    from ptpd_calibration.monitoring.monitor import PerformanceMonitor
    from ptpd_calibration.monitoring.store import SampleStore

    store = SampleStore(directory)
    monitor = PerformanceMonitor(store=store)
    record = monitor.record_metric
    progress[STARTED] = time.time()
    i = 0
    last_flush = time.monotonic()
    deadline = last_flush + _WAIT_S
    while time.monotonic() < deadline:
        for _ in range(50):  # bursts with short pauses, like an app between requests
            progress[RECORDED] = i
            record(FLUSH_SERIES, float(base + i))
            i += 1
        time.sleep(0.0005)
        if time.monotonic() - last_flush >= flush_every_s:
            newest = i - 1
            monitor.flush()
            if store.waiting_samples == 0:
                progress[COMMITTED] = newest
            progress[DROPPED] = store.dropped_samples
            last_flush = time.monotonic()


@dataclass
class FlushRound:
    delay_s: float
    recorded: int  # samples the child had (at most) recorded when killed
    committed: int  # samples a flush had confirmed written (a prefix of the recorded)
    present: int  # samples of this round in the store after the kill
    lost_committed: int  # confirmed samples missing: must be 0
    lost: int  # recorded but missing (the unflushed tail)
    lost_s: float  # seconds of recording missing: kill time - newest stored sample
    duplicated: int
    gaps: int  # missing values below the newest stored one (the store is not a prefix)
    earlier_changed: int  # samples of earlier rounds that changed since their round
    child_dropped: int
    problems: list[str]

    @property
    def clean(self) -> bool:
        return not (
            self.lost_committed
            or self.duplicated
            or self.gaps
            or self.earlier_changed
            or self.child_dropped
            or self.problems
            or self.lost > self.recorded - self.committed
        )


def flush_kill_round(
    directory: Path, round_index: int, delay_s: float, flush_every_s: float, earlier: dict[int, int]
) -> FlushRound:
    """One child records into ``directory`` (shared by every round) and is SIGKILLed after
    ``delay_s``; ``earlier`` maps each past round to the samples it left, and gets this one."""
    from ptpd_calibration.monitoring.store import SampleStore

    base = round_index * ROUND_STRIDE
    progress = FORK.RawArray("d", [-1.0, -1.0, 0.0, 0.0])
    process = FORK.Process(
        target=_flush_child, args=(str(directory), progress, base, flush_every_s), daemon=True
    )
    process.start()
    time.sleep(delay_s)
    killed_at = time.time()
    process.kill()
    process.join(_WAIT_S)

    store = SampleStore(directory)
    try:
        problems = checked(store)
        data = read_values(store, FLUSH_SERIES, problems)
    finally:
        store.close()
    values = data.columns[1] if data.size else np.empty(0)
    stamps = data.columns[0] if data.size else np.empty(0)
    rounds = (values // ROUND_STRIDE).astype(np.int64)
    mine = values[rounds == round_index] - base
    unique = np.unique(mine)
    duplicated = int(mine.size - unique.size)
    recorded = int(progress[RECORDED]) + 1
    committed = int(progress[COMMITTED]) + 1
    newest = int(unique[-1]) + 1 if unique.size else 0
    gaps = newest - int(unique.size)
    lost_committed = int(np.setdiff1d(np.arange(committed), unique, assume_unique=True).size)
    newest_ts = float(stamps[rounds == round_index].max()) if mine.size else progress[STARTED]
    counts = dict(zip(*np.unique(rounds, return_counts=True), strict=True))
    earlier_changed = sum(
        abs(int(counts.get(r, 0)) - n) for r, n in earlier.items() if r != round_index
    )
    earlier[round_index] = int(mine.size)
    return FlushRound(
        delay_s=delay_s,
        recorded=recorded,
        committed=committed,
        present=int(unique.size),
        lost_committed=lost_committed,
        lost=max(recorded - int(unique.size), 0),
        lost_s=max(killed_at - newest_ts, 0.0) if progress[STARTED] else 0.0,
        duplicated=duplicated,
        gaps=gaps,
        earlier_changed=earlier_changed,
        child_dropped=int(progress[DROPPED]),
        problems=problems,
    )


# -- scenario 2b: SIGKILL inside a new store's first open ------------------------------------------


def _first_write_child(directory: str, conn: Connection) -> None:
    from ptpd_calibration.monitoring.store import METRIC, ColumnBatch, SampleStore

    store = SampleStore(directory)
    batch = ColumnBatch(METRIC, FLUSH_SERIES, (np.array([1.0]), np.array([1.0])))
    conn.send("ready")
    conn.send(("done", store.write([batch])))


@dataclass
class FirstOpenRound:
    delay_s: float
    files: dict[str, int]  # what the kill left: file name -> bytes
    problems: list[str]  # check() and a read of the survivor
    written: bool  # a new process could write to it afterwards
    read_back: int  # samples read after that write (1, or 2 when the child's write landed)
    moved_aside: int  # databases moved aside as damaged


def first_write_duration(scratch: Path, runs: int = 3) -> float:
    """Seconds a child's first write to a new store takes, ready to done (median of ``runs``)."""
    times = []
    for run in range(runs):
        directory = scratch / f"first-timing-{run}"
        process, conn = _start_child(_first_write_child, directory)
        start = time.perf_counter()
        message = conn.recv() if conn.poll(_WAIT_S) else None
        times.append(time.perf_counter() - start)
        process.join(_WAIT_S)
        if not message or message[1] is not True:
            raise RuntimeError(f"the first write failed: {message}")
        shutil.rmtree(directory)
    return float(np.median(times))


def _start_child(target: Callable[..., None], directory: Path) -> tuple[Any, Connection]:
    parent, child = FORK.Pipe(duplex=False)
    process = FORK.Process(target=target, args=(str(directory), child), daemon=True)
    process.start()
    child.close()
    if not parent.poll(_WAIT_S) or parent.recv() != "ready":
        process.kill()
        raise RuntimeError("the child never got ready")
    return process, parent


def first_open_kill_round(directory: Path, delay_s: float) -> FirstOpenRound:
    """SIGKILL a child ``delay_s`` into its first write to a new store, then use the store."""
    from ptpd_calibration.monitoring.store import METRIC, ColumnBatch, SampleStore

    process, conn = _start_child(_first_write_child, directory)
    time.sleep(delay_s)
    process.kill()
    process.join(_WAIT_S)
    conn.close()
    files = {p.name: p.stat().st_size for p in directory.iterdir()} if directory.exists() else {}
    reader = SampleStore(directory)
    problems = checked(reader)
    read_values(reader, FLUSH_SERIES, problems)
    writer = SampleStore(directory)
    written = writer.write([ColumnBatch(METRIC, FLUSH_SERIES, (np.array([2.0]), np.array([2.0])))])
    after: list[str] = []
    read_back = read_values(reader, FLUSH_SERIES, after).size
    moved = len(list(directory.glob("cache.db.corrupt-*")))
    reader.close()
    writer.close()
    shutil.rmtree(directory)
    return FirstOpenRound(delay_s, files, problems + after, written, read_back, moved)


# -- scenario 3: a reader while one process compacts over and over and another writes --------------


def _writer_child(
    directory: str,
    conn: Connection,
    hour_starts: list[float],
    names: list[str],
    batches: int,
    pause_s: float,
) -> None:
    """Write ``batches`` × one 100-sample batch per series into the template's past hours."""
    from ptpd_calibration.monitoring.store import METRIC, ColumnBatch, SampleStore

    store = SampleStore(directory)
    for b in range(batches):
        items = []
        for s, name in enumerate(names):
            start = hour_starts[b % len(hour_starts)] + 1800.0 + 0.5 * b + 0.001 * s
            values = _batch_values(len(names), s, b)  # negative: apart from the template's
            items.append(ColumnBatch(METRIC, name, (start + 0.001 * np.arange(100), values)))
        if not store.write(items):
            conn.send(("failed", b, store.last_error))
            return
        time.sleep(pause_s)
    conn.send(("done", batches * 100 * len(names), store.dropped_samples))


def _batch_values(series: int, index: int, batch: int) -> np.ndarray:
    return -1.0 - (batch * series + index) * 100 - np.arange(100, dtype=np.float64)


def _written_values(series: int, index: int, batches: int) -> np.ndarray:
    """The values ``_writer_child`` wrote to series ``index`` (of ``series``), sorted."""
    if not batches:
        return np.empty(0)
    return np.sort(np.concatenate([_batch_values(series, index, b) for b in range(batches)]))


def _compact_loop_child(directory: str, conn: Connection, stop: Any) -> None:
    """Compact the whole store again and again (a fresh instance each time, so the hours it
    did are looked at again and the writer's new batches merge into the merged ones), until
    ``stop`` is set; then once more."""
    from ptpd_calibration.monitoring.store import SampleStore

    passes = merged = errors = 0
    while True:
        last = stop.is_set()
        store = SampleStore(directory)
        merged += store.compact(older_than=time.time() + FAR_FUTURE_S)
        errors += store.error_count
        store.close()
        passes += 1
        if last:
            break
    conn.send(("done", passes, merged, errors))


@dataclass
class ReaderRound:
    reads: int  # reads of every series while the compactor ran
    falls: int  # reads where a series' count was below the previous read's
    passes: int  # compactions the compactor ran meanwhile
    merged: int  # batches it merged away
    compact_errors: int
    final_counts: dict[str, int]
    expected_counts: dict[str, int]
    final_rows: int
    lost: int
    duplicated: int
    problems: list[str]
    writer: tuple[Any, ...]

    @property
    def clean(self) -> bool:
        return not (
            self.falls
            or self.lost
            or self.duplicated
            or self.problems
            or self.compact_errors
            or self.final_counts != self.expected_counts
        )


def reader_round(
    template: Template,
    directory: Path,
    writer_batches: int,
    *,
    pause_s: float = 0.002,
    stats_every: int = 4,
) -> ReaderRound:
    """On a copy of the template, a child compacts in a loop while another writes into the
    same past hours and this process reads every series in a loop (``read_columns``, and every
    ``stats_every`` reads ``load_monitor().get_statistics``): no read may see a series' count
    below the one before, and at the end every value is there exactly once."""
    from ptpd_calibration.monitoring.store import METRIC, SampleStore, StoreError

    shutil.copytree(template.directory, directory)
    names = sorted(template.values)
    reader = SampleStore(directory)
    previous = {name: reader.read_columns(METRIC, name).size for name in names}
    stop = FORK.Event()
    cparent, cchild = FORK.Pipe(duplex=False)
    wparent, wchild = FORK.Pipe(duplex=False)
    compactor = FORK.Process(
        target=_compact_loop_child, args=(str(directory), cchild, stop), daemon=True
    )
    writer = FORK.Process(
        target=_writer_child,
        args=(str(directory), wchild, template.hour_starts, names, writer_batches, pause_s),
        daemon=True,
    )
    compactor.start()
    writer.start()
    cchild.close()
    wchild.close()
    reads = falls = 0
    read_errors: list[str] = []
    compacted: tuple[Any, ...] | None = None
    written: tuple[Any, ...] | None = None
    deadline = time.monotonic() + 4 * _WAIT_S
    try:
        while compacted is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the reader round did not end")
            if written is None and wparent.poll():
                written = wparent.recv()
                stop.set()
            if cparent.poll():
                compacted = cparent.recv()
            reads += 1
            try:
                monitor = reader.load_monitor() if reads % stats_every == 0 else None
                for name in names:
                    if monitor is not None:
                        count = int(monitor.get_statistics(name)["count"])
                    else:
                        count = reader.read_columns(METRIC, name).size
                    if count < previous[name]:
                        falls += 1
                    previous[name] = count
            except StoreError as exc:
                read_errors.append(exc.reason)
            for child, result in ((compactor, compacted), (writer, written)):
                if result is None and child.exitcode is not None:
                    time.sleep(0.1)  # its last message may still be in the pipe
                    if not (cparent if child is compactor else wparent).poll():
                        raise RuntimeError(f"a child died ({child.exitcode})")
    finally:
        stop.set()
        for child in (compactor, writer):
            child.join(_WAIT_S)
            if child.is_alive():
                child.kill()
    if written is None or written[0] != "done":
        raise RuntimeError(f"the writing child failed: {written}")
    problems = checked(reader) + [f"a read raised StoreError: {e}" for e in read_errors]
    final: dict[str, int] = {}
    expected_counts: dict[str, int] = {}
    lost = duplicated = 0
    for index, name in enumerate(names):
        data = read_values(reader, name, problems)
        present = data.columns[1] if data.size else np.empty(0)
        final[name] = int(present.size)
        expected = np.union1d(
            template.values[name], _written_values(len(names), index, writer_batches)
        )
        expected_counts[name] = int(expected.size)
        name_lost, name_duplicated, name_unexpected = compare_values(present, expected)
        lost += name_lost + name_unexpected
        duplicated += name_duplicated
    reader.close()
    final_rows = count_rows(directory)
    shutil.rmtree(directory)
    return ReaderRound(
        reads=reads,
        falls=falls,
        passes=int(compacted[1]),
        merged=int(compacted[2]),
        compact_errors=int(compacted[3]),
        final_counts=final,
        expected_counts=expected_counts,
        final_rows=final_rows,
        lost=lost,
        duplicated=duplicated,
        problems=problems,
        writer=written,
    )


# -- scenario 4: many processes × threads through the default flusher ------------------------------


@dataclass
class LoadResult:
    processes: int
    threads: int
    samples: int  # per thread
    present: int
    duplicated: int
    lost: int
    unexpected: int
    children: list[dict[str, Any]]  # each child's counters, printed after its exit flush
    problems: list[str]
    seconds: float

    @property
    def expected(self) -> int:
        return self.processes * self.threads * self.samples


def load_value(process: int, thread: int, i: int, samples: int, threads: int) -> float:
    return float((process * threads + thread) * samples + i)


def run_load(
    directory: Path, processes: int, threads: int, samples: int, flush_interval_s: float = 0.05
) -> LoadResult:
    """``processes`` fresh interpreters record ``threads × samples`` unique values each through
    ``PerformanceMonitor(store=SampleStore(directory))`` and exit normally."""
    from ptpd_calibration.monitoring.store import SampleStore

    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PTPD_MONITORING_")}
    env["PTPD_MONITORING_FLUSH_INTERVAL_S"] = str(flush_interval_s)
    env["PTPD_MONITORING_STORE_DIR"] = str(directory.with_name(directory.name + "-unused"))
    start = time.perf_counter()
    children = [
        subprocess.Popen(
            [sys.executable, str(HERE), "load", str(directory), str(p), str(threads), str(samples)],
            env=env,
            cwd=directory.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(processes)
    ]
    reports = []
    for child in children:
        out, err = child.communicate(timeout=600)
        if child.returncode != 0:
            raise RuntimeError(f"a load child failed ({child.returncode}):\n{out}\n{err}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    seconds = time.perf_counter() - start
    store = SampleStore(directory)
    try:
        problems = checked(store)
        data = read_values(store, LOAD_SERIES, problems)
    finally:
        store.close()
    present = data.columns[1] if data.size else np.empty(0)
    expected = np.arange(processes * threads * samples, dtype=np.float64)
    lost, duplicated, unexpected = compare_values(present, expected)
    return LoadResult(
        processes=processes,
        threads=threads,
        samples=samples,
        present=int(present.size),
        duplicated=duplicated,
        lost=lost,
        unexpected=unexpected,
        children=reports,
        problems=problems,
        seconds=seconds,
    )


def _load_main(directory: str, index: int, threads: int, samples: int) -> None:
    counters: dict[str, Any] = {}

    # Registered before the package is imported, so it runs after the package's exit flush
    # (atexit runs last-registered first): it reports what the final flush did.
    def report() -> None:
        store = counters.pop("store")
        monitor = counters.pop("monitor")
        counters.update(
            pid=os.getpid(),
            dropped_samples=store.dropped_samples,
            monitor_dropped=monitor.dropped_samples,
            waiting_samples=store.waiting_samples,
            error_count=store.error_count,
            last_error=store.last_error,
        )
        print(json.dumps(counters), flush=True)

    atexit.register(report)

    from ptpd_calibration.monitoring.monitor import PerformanceMonitor
    from ptpd_calibration.monitoring.store import SampleStore

    store = SampleStore(directory)
    monitor = PerformanceMonitor(store=store)
    counters.update(store=store, monitor=monitor)

    def work(thread: int) -> None:
        record = monitor.record_metric
        for i in range(samples):
            record(LOAD_SERIES, load_value(index, thread, i, samples, threads))
            if i % 500 == 499:
                time.sleep(0.002)  # long enough for the background flusher to run meanwhile

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def uniform_delays(rng: np.random.Generator, rounds: int, high: float) -> list[float]:
    return [float(d) for d in rng.uniform(0.0, high, rounds)]


def describe(rows: list[Any], key: Callable[[Any], str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        out[key(row)] = out.get(key(row), 0) + 1
    return out


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "load":
        _load_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(f"usage: {Path(sys.argv[0]).name} load STORE_DIR INDEX THREADS SAMPLES")
