"""``python -m bench.flush_rate``: the sustained rate one recording thread can keep stored.

One thread records into one series at a fixed pace for a few seconds while the background
flusher writes to a real store; every sample is either in the store or counted in
``dropped_samples``. Printed beside a naive writer (one diskcache entry per sample) measured
in the same run.
"""

from __future__ import annotations

import tempfile
import time

import diskcache

from ptpd_calibration.monitoring import PerformanceMonitor, SampleStore

_SECONDS = 4.0


def _paced(rate: float) -> tuple[float, int, int, int]:
    """Record at ``rate`` samples/s for _SECONDS: (achieved rate, recorded, stored, dropped)."""
    store = SampleStore(tempfile.mkdtemp(prefix="ptpd-rate-"))
    monitor = PerformanceMonitor(store=store)
    record = monitor.record_metric
    chunk = max(int(rate / 1000), 1)  # samples per millisecond
    recorded, start = 0, time.perf_counter()
    while (now := time.perf_counter()) - start < _SECONDS:
        due = int((now - start) * rate)
        while recorded < due:
            for _ in range(chunk):
                record("op", 1.0)
            recorded += chunk
    achieved = recorded / (time.perf_counter() - start)
    monitor.flush()
    stored = store.read_columns("metric", "op").size
    return achieved, recorded, stored, store.dropped_samples


def _naive_rate() -> float:
    """Samples/s of one diskcache entry per sample, the naive way to share samples."""
    cache = diskcache.Cache(tempfile.mkdtemp(prefix="ptpd-naive-"))
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 1.0:
        cache.set(f"op|{n}", 1.0)
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    naive = _naive_rate()
    print(
        "| asked (samples/s) | recorded (samples/s) | stored | dropped, counted | lost uncounted "
        "| × naive writer |"
    )
    print("|---|---|---|---|---|---|")
    for rate in (100_000, 250_000, 500_000, 1_000_000, 2_000_000):
        achieved, recorded, stored, dropped = _paced(rate)
        print(
            f"| {rate:,} | {achieved:,.0f} | {stored:,} | {dropped:,} | "
            f"{recorded - stored - dropped:,} | {achieved / naive:,.0f}× |",
            flush=True,
        )
    print(f"\nnaive writer (one diskcache entry per sample): {naive:,.0f} samples/s")


if __name__ == "__main__":
    main()
