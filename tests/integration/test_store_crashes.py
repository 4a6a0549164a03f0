"""The sample store under SIGKILL and load: real processes, exact counts, no mocks.

- A compaction killed at any instant leaves the old batches or the merged one: every sample
  and record is there exactly once, still paired with its timestamp and metadata, ``check()``
  finds nothing, and a later compaction finishes the job.
- A process killed while it records and flushes loses nothing a flush had confirmed, writes
  nothing twice, and loses at most what it recorded after its last flush.
- A reader never sees a series' count fall while another process compacts and a third writes.
- 8 processes × 4 threads × 25,000 samples through ``PerformanceMonitor(store=...)`` and the
  default background flusher, then a normal exit: all 800,000 samples, none twice, none dropped.
- A store whose creator was killed inside its very first transaction (an empty database and a
  hot journal) reads as an empty store and takes writes; nothing is moved aside as damaged.

The processes and the rounds live in ``_crash_child.py``; ``bench/reliability.py`` runs them at
full size and prints the table. Kill delays are random (seeded): the tests assert on counts,
never on timing.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sqlite3
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from ptpd_calibration.monitoring.store import METRIC, ColumnBatch, SampleStore


def _load_helper() -> ModuleType:
    name = "_crash_child"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file runs
        spec.loader.exec_module(module)
    return sys.modules[name]


crash = _load_helper()

KILL_ROUNDS = 30
SEED = 20_251_130


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """3 series × 3 past hours × 60 batches × 200 samples, plus 180 batches of 5 records."""
    return crash.build_template(tmp_path_factory.mktemp("crash-template") / "store")


@pytest.mark.timeout(600)
def test_a_compaction_killed_at_any_instant_loses_and_duplicates_nothing(
    template: Any, tmp_path: Path
) -> None:
    assert template.samples == 108_000
    assert len(template.records) == 900
    assert (template.rows, template.compacted_rows) == (720, 12)
    duration = crash.compaction_duration(template, tmp_path)
    delays = crash.uniform_delays(np.random.default_rng(SEED), KILL_ROUNDS, duration)

    states: dict[str, int] = {}
    for i, delay in enumerate(delays):
        r = crash.compaction_kill_round(template, tmp_path / f"round-{i}", delay, resume=True)
        states[r.state] = states.get(r.state, 0) + 1
        where = f"round {i} (killed {r.delay_s * 1000:.1f} ms in, {r.rows} rows left)"
        tally = r.after_kill
        assert tally.problems == [], where
        assert (tally.lost, tally.duplicated, tally.unexpected, tally.torn) == (0, 0, 0, 0), where
        assert (tally.records_lost, tally.records_duplicated, tally.records_changed) == (
            0,
            0,
            0,
        ), where
        assert template.compacted_rows <= r.rows <= template.rows, where
        # ...and compacting the survivor in this process finishes the job, still exact.
        assert r.resumed is not None and r.resumed.clean, f"{where}: {r.resumed}"
        assert r.resumed_rows == template.compacted_rows, where

    print(f"compaction {duration * 1000:.0f} ms; state of the store after each kill: {states}")
    # The kills landed inside the compaction: some rounds before it had finished, some after
    # it had merged something (most in between).
    assert states.get("untouched", 0) + states.get("partial", 0) > 0, states
    assert states.get("compacted", 0) + states.get("partial", 0) > 0, states


@pytest.mark.timeout(600)
def test_a_process_killed_while_flushing_loses_only_its_unflushed_tail(tmp_path: Path) -> None:
    directory = tmp_path / "store"  # one store for every round: kills pile up on it
    flush_every_s = 0.05
    delays = crash.uniform_delays(np.random.default_rng(SEED + 1), KILL_ROUNDS, 0.5)
    earlier: dict[int, int] = {}  # round -> its samples left in the store

    committed = lost = worst = 0
    for i, delay in enumerate(delays):
        r = crash.flush_kill_round(directory, i, delay, flush_every_s, earlier)
        where = f"round {i} (killed {r.delay_s * 1000:.0f} ms in): {r}"
        assert r.problems == [], where
        assert r.duplicated == 0, where
        assert r.lost_committed == 0, where  # nothing a flush had confirmed is gone
        assert r.gaps == 0, where  # the store holds a prefix of what was recorded
        assert r.earlier_changed == 0, where  # later kills cost earlier rounds nothing
        assert r.child_dropped == 0, where
        assert r.committed <= r.present <= r.recorded, where
        assert r.lost <= r.recorded - r.committed, where  # at most the unflushed tail
        committed += r.committed
        lost += r.lost
        worst = max(worst, r.lost)

    print(
        f"flush kills: {sum(earlier.values())} samples kept, {lost} unflushed lost "
        f"(worst round {worst})"
    )
    assert committed > 0, "no flush ever completed before a kill"
    store = SampleStore(directory)
    assert store.read_columns(METRIC, crash.FLUSH_SERIES).size == sum(earlier.values())
    store.close()


@pytest.mark.timeout(600)
def test_a_reader_never_sees_a_count_fall_while_another_process_compacts(
    template: Any, tmp_path: Path
) -> None:
    result = crash.reader_round(template, tmp_path / "store", writer_batches=150)

    print(
        f"reader: {result.reads} reads over {result.passes} compactions "
        f"({result.merged} batches merged away)"
    )
    assert result.writer[0] == "done" and result.writer[2] == 0  # the writer dropped nothing
    assert result.compact_errors == 0
    assert result.passes >= 2 and result.merged > 0
    assert result.falls == 0
    assert result.final_counts == result.expected_counts
    assert sum(result.final_counts.values()) == template.samples + 150 * 3 * 100
    assert (result.lost, result.duplicated) == (0, 0)
    assert result.problems == []
    assert result.final_rows == template.compacted_rows  # the last pass merged it all


@pytest.mark.timeout(600)
def test_eight_processes_of_four_threads_store_every_sample_once(tmp_path: Path) -> None:
    result = crash.run_load(tmp_path / "store", processes=8, threads=4, samples=25_000)

    print(f"load: {result.present} samples from 8 × 4 threads in {result.seconds:.1f} s")
    assert result.expected == 800_000
    assert result.present == 800_000
    assert (result.lost, result.duplicated, result.unexpected) == (0, 0, 0)
    assert result.problems == []
    assert len(result.children) == 8
    assert len({child["pid"] for child in result.children}) == 8
    for child in result.children:
        assert child["dropped_samples"] == 0, child
        assert child["monitor_dropped"] == 0, child
        assert child["waiting_samples"] == 0, child


def _die_inside_the_first_transaction(database: str) -> None:
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("CREATE TABLE Settings (key TEXT NOT NULL UNIQUE, value)")
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.timeout(120)
def test_a_store_whose_creator_was_killed_in_its_first_transaction_reads_as_empty(
    tmp_path: Path,
) -> None:
    # A process SIGKILLed inside its first open of a new store (diskcache's set-up runs its
    # first statements in rollback-journal mode) leaves a 0-byte database and a hot journal:
    # to SQLite an empty, valid database. The flush-kill rounds above meet this when a kill
    # lands that early; here a real SQLite transaction is killed the same way, every time.
    directory = tmp_path / "store"
    directory.mkdir(mode=0o700)
    child = crash.FORK.Process(
        target=_die_inside_the_first_transaction, args=(str(directory / "cache.db"),)
    )
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert (directory / "cache.db").stat().st_size == 0
    assert (directory / "cache.db-journal").exists()

    reader = SampleStore(directory)
    assert reader.check() == []
    assert reader.series_names(METRIC) == []
    assert reader.read_columns(METRIC, "op").size == 0
    writer = SampleStore(directory)
    assert writer.write([ColumnBatch(METRIC, "op", (np.array([1.0]), np.array([2.0])))])
    assert writer.error_count == 0, writer.last_error
    assert reader.read_columns(METRIC, "op").size == 1
    assert not list(directory.glob("cache.db.corrupt-*"))  # nothing was taken for damage
    reader.close()
    writer.close()
