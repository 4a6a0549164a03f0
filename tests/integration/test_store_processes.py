"""Integration tests: real processes sharing one sample store through the package's globals.

Children are ``tests/integration/_child.py`` run with this interpreter and an environment that
points ``PTPD_MONITORING_STORE_DIR`` at a per-test folder. Nothing here asserts on timing: the
tests wait for conditions with generous deadlines.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ptpd_calibration.monitoring.store import API, METRIC, SampleStore

CHILD = Path(__file__).with_name("_child.py")
FLUSH_INTERVAL_S = 0.2
SLACK_S = 60.0  # CI machines can be slow; the tests never depend on speed
N = 5000


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "shared-store"


def child_env(store_dir: Path, flush_interval_s: float = FLUSH_INTERVAL_S) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PTPD_MONITORING_")}
    env["PTPD_MONITORING_STORE_DIR"] = str(store_dir)
    env["PTPD_MONITORING_FLUSH_INTERVAL_S"] = str(flush_interval_s)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_child(store_dir: Path, *args: str, flush_interval_s: float = FLUSH_INTERVAL_S):
    result = subprocess.run(
        [sys.executable, str(CHILD), *args],
        env=child_env(store_dir, flush_interval_s),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"child {args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_two_processes_all_samples_persist(store_dir: Path) -> None:
    # One child flushes explicitly; the other never does, and its background flusher is set to
    # an hour: only the exit hook can persist its samples.
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), "record", str(N), *extra],
            env=child_env(store_dir, interval),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for extra, interval in ((["--flush"], FLUSH_INTERVAL_S), ([], 3600.0))
    ]
    pids = set()
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, f"{out}\n{err}"
        pids.add(child.pid)

    store = SampleStore(store_dir)
    monitor = store.load_monitor()
    assert monitor.get_statistics("child.work")["count"] == 2 * N
    assert monitor.get_unit("child.work") == "seconds"
    pid_values = store.read_columns(METRIC, "child.pid").columns[1]
    assert pid_values.size == 2 * N
    values, counts = np.unique(pid_values, return_counts=True)
    assert {int(v) for v in values} == pids
    assert counts.tolist() == [N, N]

    tracker = store.load_api_tracker()
    stats = tracker.get_endpoint_stats("/api/child")
    assert stats["count"] == 2 * N
    assert stats["error_count"] == 2 * ((N + 9) // 10)
    assert store.read_columns(API, "POST /api/child").size == 2 * N
    assert store.series_names(METRIC) == ["child.pid", "child.work"]
    store.close()


def test_restart_a_new_process_reads_what_an_exited_one_wrote(store_dir: Path) -> None:
    run_child(store_dir, "record", "300")

    first = json.loads(run_child(store_dir, "read").stdout)
    assert first["metrics"]["child.work"]["count"] == 300
    assert first["metrics"]["child.pid"]["count"] == 300
    assert first["api_requests"] == 300

    run_child(store_dir, "record", "200", "--flush")  # a restarted app adds to the same store
    second = json.loads(run_child(store_dir, "read").stdout)
    assert second["metrics"]["child.work"]["count"] == 500
    assert len(second["metrics"]["child.pid"]["values"]) == 2  # two pids
    assert second["api_requests"] == 500


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line.strip())


def test_live_samples_appear_while_the_writer_runs(store_dir: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, str(CHILD), "live"],
        env=child_env(store_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_read_lines, args=(writer.stdout, lines), daemon=True).start()
        assert lines.get(timeout=SLACK_S) == "ready"

        reader = SampleStore(store_dir)
        deadline = time.monotonic() + 2 * FLUSH_INTERVAL_S + SLACK_S
        seen = 0
        while time.monotonic() < deadline:
            seen = reader.read_columns(METRIC, "live.tick").size
            alive = writer.poll() is None
            if seen:
                break
            assert alive, f"the writer died: {writer.stderr.read() if writer.stderr else ''}"
            time.sleep(0.05)
        assert seen > 0, "no sample reached the store in time"
        assert alive, "the samples appeared only after the writer had exited"

        # ...and they keep coming while it runs.
        deadline = time.monotonic() + 2 * FLUSH_INTERVAL_S + SLACK_S
        more = seen
        while more <= seen and time.monotonic() < deadline:
            time.sleep(0.05)
            more = reader.read_columns(METRIC, "live.tick").size
        assert more > seen
        assert writer.poll() is None
        values = reader.read_columns(METRIC, "live.tick").columns[1]
        assert values[0] == 0.0
        np.testing.assert_array_equal(values, np.arange(values.size))  # in order, none lost
        reader.close()
    finally:
        writer.terminate()
        writer.wait(60)


def test_forked_child_does_not_write_its_parents_samples_twice(store_dir: Path) -> None:
    # The hour-long interval leaves the parent's samples unflushed when it forks.
    run_child(store_dir, "fork", "1000", "300", flush_interval_s=3600.0)

    store = SampleStore(store_dir)
    assert store.read_columns(METRIC, "fork.parent").size == 1001
    assert store.read_columns(METRIC, "fork.child").size == 300
    store.close()


def test_flusher_thread_restarts_in_a_forked_child(store_dir: Path) -> None:
    run_child(store_dir, "fork-thread", "50")

    store = SampleStore(store_dir)
    assert store.read_columns(METRIC, "fork.thread").size == 50
    assert store.read_columns(METRIC, "fork.before").size == 1
    store.close()


def test_multiprocessing_fork_child_flushes_at_exit(store_dir: Path) -> None:
    # multiprocessing's children leave through os._exit, past the atexit hooks.
    run_child(store_dir, "mp", "700", flush_interval_s=3600.0)

    store = SampleStore(store_dir)
    assert store.read_columns(METRIC, "mp.child").size == 700
    store.close()
