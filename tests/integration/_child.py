"""A child process for the store integration tests: records through the package's globals.

Run as ``python _child.py MODE ...`` with ``PTPD_MONITORING_STORE_DIR`` pointing at the store.
Modes:

``record N [--flush]``
    Times N operations and records N API requests through ``get_monitor()`` and
    ``get_api_tracker()``, then exits normally. Without ``--flush`` it never flushes by itself:
    the exit hook must persist everything.
``live``
    Prints ``ready`` once it has recorded, then records one sample every 10 ms until killed
    (or for at most 120 s).
``read``
    Prints the store's contents (counts and pids per series) as one JSON line.
``fork N M``
    Records N samples, forks; the child records M samples, calls ``flush()`` and leaves with
    ``os._exit`` (no exit hooks). The parent waits for it, then exits normally.
``fork-thread M``
    Forks; the child records M samples and waits, without flushing, until its restarted
    background flusher has written them, then leaves with ``os._exit``.
``mp N``
    Records N samples in a ``multiprocessing`` child started with the "fork" method.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time

from ptpd_calibration.monitoring import frames


def record(n: int, explicit_flush: bool) -> None:
    from ptpd_calibration.monitoring import flush, get_api_tracker, get_monitor

    monitor, tracker = get_monitor(), get_api_tracker()
    pid = os.getpid()
    for i in range(n):
        with monitor.timer("child.work"):
            pass
        monitor.record_metric("child.pid", float(pid), unit="pid")
        tracker.track_request("/api/child", 0.001, 500 if i % 10 == 0 else 200, "POST")
    if explicit_flush:
        flush()


def live() -> None:
    from ptpd_calibration.monitoring import get_monitor

    monitor = get_monitor()
    monitor.record_metric("live.tick", 0.0)
    print("ready", flush=True)
    deadline = time.monotonic() + 120
    i = 1
    while time.monotonic() < deadline:
        time.sleep(0.01)
        monitor.record_metric("live.tick", float(i))
        i += 1


def read() -> None:
    from ptpd_calibration.monitoring import get_store

    store = get_store()
    frame = frames.metrics_frame(store)
    per_series = {
        name: {
            "count": len(group),
            "values": sorted({float(v) for v in group["value"]})[:10],
        }
        for name, group in frame.groupby("operation")
    }
    api = frames.api_frame(store)
    print(json.dumps({"metrics": per_series, "api_requests": len(api)}), flush=True)


def _wait_for(store_dir: str, name: str, count: int, timeout_s: float) -> bool:
    from ptpd_calibration.monitoring.store import METRIC, SampleStore

    store = SampleStore(store_dir)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if store.read_columns(METRIC, name).size >= count:
            return True
        time.sleep(0.05)
    return False


def fork(n: int, m: int) -> None:
    from ptpd_calibration.monitoring import flush, get_monitor

    monitor = get_monitor()
    for _ in range(n):
        monitor.record_metric("fork.parent", 1.0)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for _ in range(m):
                monitor.record_metric("fork.child", 2.0)
            flush()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"forked child failed: {status}")
    monitor.record_metric("fork.parent", 1.0)  # one more after the fork, flushed at exit


def fork_thread(m: int) -> None:
    from ptpd_calibration.monitoring import get_monitor
    from ptpd_calibration.monitoring.settings import get_settings

    monitor = get_monitor()
    monitor.record_metric("fork.before", 0.0)
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            for _ in range(m):
                monitor.record_metric("fork.thread", 1.0)
            written = _wait_for(str(get_settings().STORE_DIR), "fork.thread", m, 60)
            code = 0 if written else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


def _mp_target(n: int) -> None:
    from ptpd_calibration.monitoring import get_monitor

    for _ in range(n):
        get_monitor().record_metric("mp.child", 1.0)


def mp(n: int) -> None:
    from ptpd_calibration.monitoring import get_monitor

    get_monitor()  # the parent has a monitor (and its flusher) before the fork
    process = multiprocessing.get_context("fork").Process(target=_mp_target, args=(n,))
    process.start()
    process.join(120)
    if process.exitcode != 0:
        sys.exit(f"multiprocessing child failed: {process.exitcode}")


def main(argv: list[str]) -> None:
    mode, args = argv[0], argv[1:]
    if mode == "record":
        record(int(args[0]), "--flush" in args)
    elif mode == "live":
        live()
    elif mode == "read":
        read()
    elif mode == "fork":
        fork(int(args[0]), int(args[1]))
    elif mode == "fork-thread":
        fork_thread(int(args[0]))
    elif mode == "mp":
        mp(int(args[0]))
    else:
        sys.exit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
