"""Real faults under a running store: a deleted folder, a replaced, corrupt or truncated
database, malformed rows, a batch that cannot be encoded and a recorder that outruns the
flusher. Each ends with the store writing again, and with written + counted = recorded."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ptpd_calibration.monitoring import PerformanceMonitor, frames
from ptpd_calibration.monitoring._codec import encode_columns
from ptpd_calibration.monitoring._flusher import FLUSHER
from ptpd_calibration.monitoring.store import (
    METRIC,
    PROFILE,
    ColumnBatch,
    RecordBatch,
    SampleStore,
    StoreError,
)

T0 = 1_700_000_000.0


def batch(first: int, n: int = 100, series: str = "op") -> ColumnBatch:
    """Samples whose values are their own serial numbers, so loss and duplication show."""
    values = np.arange(first, first + n, dtype=float)
    return ColumnBatch(METRIC, series, (T0 + values, values), "seconds")


def stored_values(directory: Path, series: str = "op") -> list[float]:
    data = SampleStore(directory).read_columns(METRIC, series)
    return sorted(data.columns[1].tolist()) if data.size else []


def test_a_deleted_folder_is_recreated_user_only_and_writing_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    store = SampleStore(folder)
    assert store.write([batch(0)])

    shutil.rmtree(folder)  # the user deletes the store while the app runs
    assert store.write([batch(100)]) is True
    assert store.write([batch(200)]) is True

    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stored_values(folder) == list(range(100, 300))  # the first 100 went with the folder
    assert store.dropped_samples == 0


def test_a_folder_replaced_under_the_writer_gets_the_new_samples(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    store = SampleStore(folder)
    assert store.write([batch(0)])

    folder.rename(tmp_path / "old")  # moved away (a backup) and a fresh empty one put there
    folder.mkdir(mode=0o700)
    assert store.write([batch(100)])

    assert stored_values(folder) == list(range(100, 200))
    assert stored_values(tmp_path / "old") == list(range(100))  # nothing written twice


def test_a_corrupt_database_is_moved_aside_and_writing_resumes(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    store = SampleStore(folder)
    assert store.write([batch(0)])
    store.close()
    (folder / "cache.db").write_bytes(b"\xffnot SQLite at all" * 4096)
    for suffix in ("-wal", "-shm"):
        (folder / f"cache.db{suffix}").unlink(missing_ok=True)

    reader = SampleStore(folder)
    with pytest.raises(StoreError) as info:
        reader.read_columns(METRIC, "op")
    assert str(folder) in str(info.value) and "doctor --repair" in str(info.value)

    assert store.write([batch(100)]) is True
    assert stored_values(folder) == list(range(100, 200))
    assert len(list(folder.glob("cache.db.corrupt-*"))) == 1
    assert store.error_count == 1 and store.dropped_samples == 0


def test_a_database_truncated_under_a_running_writer(tmp_path: Path) -> None:
    """The writer notices by the file's length, moves it aside and writes what comes next."""
    folder = tmp_path / "store"
    store = SampleStore(folder)
    assert store.write([batch(0)])
    (folder / "cache.db").open("w").close()  # truncated to 0 bytes, its WAL still beside it
    assert (folder / "cache.db-wal").exists()

    reader = SampleStore(folder)
    started = time.monotonic()
    with pytest.raises(StoreError):
        reader.read_columns(METRIC, "op")  # never diskcache's set-up over a headless file
    assert time.monotonic() - started < 5

    assert store.write([batch(100)])
    assert store.write([batch(200)])
    assert stored_values(folder) == list(range(100, 300))
    assert (folder / "cache.db").stat().st_size > 0


def test_a_reader_in_another_process_never_hangs_on_a_truncated_database(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "store"
    folder.mkdir(mode=0o700)
    (folder / "cache.db").write_bytes(b"")
    (folder / "cache.db-wal").write_bytes(b"\x00" * 4096)  # the WAL of a writer that had it
    code = textwrap.dedent(
        f"""
        from ptpd_calibration.monitoring.store import SampleStore, StoreError
        try:
            SampleStore({str(folder)!r}).read_columns("metric", "op")
        except StoreError as exc:
            print("StoreError", exc.path)
        """
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == f"StoreError {folder}"
    assert time.monotonic() - started < 30  # seconds of start-up, not diskcache's 60 s retry


def test_a_replaced_broken_database_is_taken_up_again(tmp_path: Path) -> None:
    """Writes that failed on a broken file resume once the file is replaced (no stale handle)."""
    folder = tmp_path / "store"
    store = SampleStore(folder)
    assert store.write([batch(0)])
    shutil.rmtree(folder)
    folder.write_text("a file where the folder was")  # unusable (root ignores permissions)
    assert store.write([batch(100)]) is False
    assert store.waiting_samples == 100

    folder.unlink()  # fixed
    assert store.write([batch(200)]) is True
    assert stored_values(folder) == list(range(100, 300))
    assert store.waiting_samples == 0 and store.dropped_samples == 0


def _plant(folder: Path, key: str, value: bytes) -> None:
    with sqlite3.connect(folder / "cache.db") as con:
        con.execute(
            "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count, "
            "tag, size, mode, filename, value) VALUES (?, 1, 0, NULL, 0, 0, NULL, 0, 1, NULL, ?)",
            (key, value),
        )


@pytest.mark.parametrize(
    "damage",
    [
        "metadata index out of range",
        "fewer samples than announced",
        "header that is not JSON",
        "columns of another width",
    ],
)
def test_one_malformed_row_costs_only_itself(tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "store"
    store = SampleStore(folder)
    assert store.write([batch(0)])
    good = encode_columns(batch(1000, 10))
    if damage == "metadata index out of range":
        bad = encode_columns(ColumnBatch(METRIC, "op", batch(1000, 10).columns, "seconds", {0: {}}))
        bad = bad.replace(b'"meta":{"0"', b'"meta":{"99"')
    elif damage == "fewer samples than announced":
        bad = good[:-16]
    elif damage == "header that is not JSON":
        bad = good[:10] + b"}" + good[11:]  # '{}unit":...': the header breaks
    else:
        three = (T0 + np.arange(10.0), np.ones(10), np.ones(10))
        bad = encode_columns(ColumnBatch(METRIC, "op", three, "seconds"))
    _plant(folder, f"metric|op|{T0 + 5000:017.6f}|1|1", bad)

    reader = SampleStore(folder)
    assert reader.read_columns(METRIC, "op").size == 100
    assert reader.load_monitor().get_statistics("op")["count"] == 100
    assert len(frames.metrics_frame(reader)) == 100
    assert reader.refused_rows == 1
    assert any("not readable" in problem for problem in reader.check())

    report = reader.repair()
    assert report.bad_rows == 1
    assert reader.check() == []
    assert reader.read_columns(METRIC, "op").size == 100


def test_check_finds_rows_whose_value_file_is_gone_and_repair_removes_them(
    tmp_path: Path,
) -> None:
    """Stores written before values went inline hold file-backed rows; a lost file is found."""
    folder = tmp_path / "store"
    store = SampleStore(folder)
    assert store.write([batch(0)])
    (folder / "ab").mkdir()
    (folder / "ab" / "cd.val").write_bytes(encode_columns(batch(500, 50)))
    with sqlite3.connect(folder / "cache.db") as con:
        for i, name in enumerate(("ab/cd.val", "ab/gone.val")):
            con.execute(
                "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, "
                "access_count, tag, size, mode, filename, value) "
                "VALUES (?, 1, 0, NULL, 0, 0, NULL, 1000, 2, ?, NULL)",
                (f"metric|op|{T0 + 9000 + i:017.6f}|1|{i}", name),
            )
    (folder / "ab" / "stray.val").write_bytes(b"left by a kill after a commit")

    reader = SampleStore(folder)
    assert reader.read_columns(METRIC, "op").size == 150  # the file-backed row reads
    assert reader.refused_rows == 1
    (problem,) = reader.check()
    assert "1 rows whose value file is missing" in problem

    report = reader.repair()
    assert (report.rows_missing_files, report.orphan_files) == (1, 1)
    assert report.samples_estimated > 0
    assert reader.check() == []
    assert not (folder / "ab" / "stray.val").exists()
    assert reader.read_columns(METRIC, "op").size == 150


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


def test_a_batch_that_cannot_be_encoded_is_counted_and_the_rest_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SampleStore(tmp_path / "store")
    deep: dict[str, object] = {}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]  # type: ignore[assignment]
    caplog.set_level(logging.WARNING)
    bad = [
        ColumnBatch(METRIC, "deep", batch(0, 3).columns, "seconds", {0: deep}),
        ColumnBatch(METRIC, "odd", batch(0, 4).columns, "seconds", {1: {"o": _Unprintable()}}),
        RecordBatch(PROFILE, "odd", [{"ts": T0, "o": _Unprintable()}]),
    ]

    assert store.write([*bad, batch(0)]) is True  # must not raise; the good batch lands

    assert stored_values(tmp_path / "store") == list(range(100))
    assert store.dropped_samples == 3 + 4 + 1
    assert store.last_error and "could not encode" in store.last_error


def test_the_background_flusher_survives_a_source_that_raises(tmp_path: Path) -> None:
    store = SampleStore(tmp_path / "store")
    monitor = PerformanceMonitor(store=store)

    class Exploding:
        store = monitor.store

        def pending_batches(self) -> list[ColumnBatch]:
            raise RecursionError("a source bug")

        def drop_inherited(self) -> None:
            pass

    exploding = Exploding()
    FLUSHER.register(exploding)  # type: ignore[arg-type]
    for value in range(50):
        monitor.record_metric("op", float(value))
    deadline = time.monotonic() + 20
    while store.read_columns(METRIC, "op").size < 50 and time.monotonic() < deadline:
        time.sleep(0.05)  # the background thread, not a flush() of ours, writes them
    assert store.read_columns(METRIC, "op").size == 50
    assert FLUSHER._thread is not None and FLUSHER._thread.is_alive()
    del exploding


def test_overflowing_a_buffer_is_counted_in_the_store_and_recorded_for_the_doctor(
    tmp_path: Path,
) -> None:
    """A recorder far faster than the store: every sample is written or counted as dropped,
    and the count reaches other processes through the store's health rows."""
    folder = tmp_path / "store"
    code = textwrap.dedent(
        f"""
        import json
        from ptpd_calibration.monitoring import PerformanceMonitor, SampleStore
        store = SampleStore({str(folder)!r})
        store._write_lock.acquire()  # the store stalls: nothing can be written for a while
        monitor = PerformanceMonitor(store=store)
        monitor.record_metric("op", 0.0)
        monitor._series["op"].max_pending = 20_000  # a small bound, overflowed fast
        for i in range(1, 300_000):
            monitor.record_metric("op", float(i))
        store._write_lock.release()
        monitor.flush()
        print(json.dumps({{"dropped": store.dropped_samples, "errors": store.error_count}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    counters = json.loads(done.stdout.strip().splitlines()[-1])
    assert counters["dropped"] > 0
    assert "recorded faster" in done.stderr
    written = len(stored_values(folder))
    assert written + counters["dropped"] == 300_000
    (health,) = SampleStore(folder).writer_health()
    assert health["dropped_samples"] == counters["dropped"]


def _doctor(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PTPD_MONITORING_STORE_DIR": str(folder)}
    command = [str(Path(sys.executable).with_name("ptpd-monitor")), "doctor", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def test_doctor_repair_moves_a_damaged_database_aside_and_reports_it(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    assert SampleStore(folder).write([batch(0)])
    (folder / "cache.db").write_bytes(b"garbage, not SQLite" * 100)

    before = _doctor(folder)
    assert before.returncode == 1
    assert "doctor --repair" in before.stderr and len(before.stderr.strip().splitlines()) == 1

    repaired = _doctor(folder, "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert "moved the damaged database to" in repaired.stdout
    assert "integrity:  ok" in repaired.stdout
    assert len(list(folder.glob("cache.db.corrupt-*"))) == 1


def test_doctor_shows_the_samples_another_process_dropped(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    store = SampleStore(folder)
    store.count_overflow(1234)
    assert store.write([batch(0)])

    done = _doctor(folder)
    assert done.returncode == 0, done.stderr
    assert f"pid {os.getpid()}: 1234 samples not written" in done.stdout


def test_what_still_waits_at_exit_is_counted_and_said(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("where the store's folder should be")
    code = textwrap.dedent(
        f"""
        from ptpd_calibration.monitoring import PerformanceMonitor, SampleStore
        monitor = PerformanceMonitor(store=SampleStore({str(blocker / "store")!r}))
        for i in range(500):
            monitor.record_metric("op", float(i))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "500 samples were not written" in done.stderr
    assert "the process ended before" in done.stderr


def test_a_forked_child_starts_with_its_own_counters_and_nothing_waiting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    store = SampleStore(blocker / "store")
    assert store.write([batch(0, 1000)]) is False
    store.count_overflow(7)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its view, then leave without running the parent's exit
        os.close(read)
        view = (store.waiting_samples, store.dropped_samples, store.error_count)
        store.write([batch(5000, 10)])
        after = (store.waiting_samples, store.dropped_samples)
        os.write(write, json.dumps([view, after]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        view, after = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert view == [0, 0, 0]  # the parent's waiting batches and counts stay the parent's
    assert after == [10, 0]  # its own batch waits; nothing of its own is dropped
    assert store.waiting_samples == 1000 and store.dropped_samples == 7


def test_a_dropped_monitor_finalised_under_the_write_lock_hands_over_and_never_deadlocks(
    tmp_path: Path,
) -> None:
    """The garbage collector finalises wherever it runs, even inside a write: the finaliser
    must neither lock nor write, and its samples still reach the store."""
    import gc

    store = SampleStore(tmp_path / "store")
    monitor = PerformanceMonitor(store=store)
    monitor.record_metric("dropped", 1.0)
    monitor.cycle = monitor  # type: ignore[attr-defined]  # only the cyclic GC frees it
    del monitor
    with store._write_lock:  # as if the collector ran inside _write_waiting
        gc.collect()  # runs the finaliser here: it must return, not wait on this lock
    assert store.write([]) is True
    assert store.read_columns(METRIC, "dropped").size == 1


def test_a_child_forked_while_the_flusher_writes_can_write(tmp_path: Path) -> None:
    """No fork in the middle of a write transaction: the child would inherit it, locked."""
    import threading

    store = SampleStore(tmp_path / "store")
    assert store.write([batch(0)])
    busy = threading.Event()
    stop = threading.Event()

    def writing() -> None:
        n = 1000
        while not stop.is_set():
            store.write([batch(n, 500)])
            n += 500
            busy.set()

    writer = threading.Thread(target=writing)
    writer.start()
    busy.wait(10)
    try:
        pid = os.fork()
        if pid == 0:
            ok = SampleStore(tmp_path / "store").write([batch(10**7, 5, "child")])
            mine = store.write([batch(10**7, 5, "child-inherited")])
            os._exit(0 if ok and mine else 1)
    finally:
        stop.set()
        writer.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert stored_values(tmp_path / "store", "child-inherited") == list(range(10**7, 10**7 + 5))


def test_repair_never_moves_a_merely_locked_database_aside(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    assert SampleStore(folder).write([batch(0)])
    holder = sqlite3.connect(folder / "cache.db", timeout=0)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds it
    try:
        with pytest.raises(StoreError):
            SampleStore(folder).repair()
        with pytest.raises(StoreError):
            SampleStore(folder).clear()
    finally:
        holder.rollback()
        holder.close()
    assert not list(folder.glob("cache.db.corrupt-*"))
    assert stored_values(folder) == list(range(100))


def test_a_record_row_without_a_time_is_found_and_does_not_stop_compaction(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "store"
    store = SampleStore(folder)
    for i in range(3):
        assert store.write([RecordBatch(PROFILE, "a", [{"ts": T0 + i, "n": i}])])
        assert store.write([RecordBatch(PROFILE, "b", [{"ts": T0 + i, "n": i}])])
    with sqlite3.connect(folder / "cache.db") as con:
        con.execute(
            "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count, "
            "tag, size, mode, filename, value) VALUES (?, 1, 0, NULL, 0, 0, NULL, 0, 1, NULL, ?)",
            (f"profile|a|{T0 + 5:017.6f}|1|1", json.dumps([{"ts": None, "n": 9}])),
        )
    assert any("not readable" in problem for problem in store.check())
    assert store.compact(older_than=T0 + 7200) == 4  # two merges in each series
    assert [r["n"] for r in store.read_records(PROFILE, "b")] == [0, 1, 2]
    assert [r["n"] for r in store.read_records(PROFILE, "a")] == [0, 1, 2]


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MB tmpfs (root only: mount); skipped where it cannot be mounted."""
    point = tmp_path / "tmpfs"
    point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_really_full_disk_keeps_samples_waiting_and_writes_them_when_space_returns(
    small_tmpfs: Path,
) -> None:
    store = SampleStore(small_tmpfs / "store")
    assert store.write([batch(0)])
    filler = small_tmpfs / "filler"
    # The disk fills up: ENOSPC ends the loop (and the close, which is suppressed too).
    with contextlib.suppress(OSError), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    written = 100
    for first in range(100, 100 + 40 * 2000, 2000):
        store.write([batch(first, 2000)])
        written += 2000
    assert store.error_count > 0 and "full" in (store.last_error or "").lower()
    assert store.waiting_samples > 0
    assert store.dropped_samples == 0

    filler.unlink()  # space again
    assert store.write([]) is True
    values = stored_values(small_tmpfs / "store")
    assert len(values) == written and values == sorted(set(values))  # all, each once
    assert store.check() == []
