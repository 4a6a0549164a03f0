"""Unit tests for ptpd_calibration.monitoring.monitor.PerformanceMonitor.

Timestamps come from the ``clock`` fixture (``PerformanceMonitor(clock=clock)``) wherever a test
needs to know them; nothing asserts on how long anything took.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from ptpd_calibration.monitoring.models import PerformanceMetric
from ptpd_calibration.monitoring.monitor import PerformanceMonitor, Timer, window
from ptpd_calibration.monitoring.settings import get_settings
from ptpd_calibration.monitoring.store import SampleStore

if TYPE_CHECKING:
    from conftest import FakeClock

T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z, where the clock fixture starts
STAT_KEYS = {"count", "min", "max", "mean", "median", "std", "p50", "p90", "p95", "p99", "unit"}


@pytest.fixture
def monitor(clock: FakeClock) -> PerformanceMonitor:
    return PerformanceMonitor(max_history=100_000, clock=clock)


def _record_at(
    monitor: PerformanceMonitor, clock: FakeClock, name: str, pairs: list[tuple[float, float]]
) -> None:
    for ts, value in pairs:
        clock.now = ts
        monitor.record_metric(name, value)


# ----------------------------------------------------------------------------- QUICKREF


def test_quickref_examples_work_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    calls = []

    def do_work() -> None:
        calls.append(1)

    monitor = PerformanceMonitor(max_history=5000)
    with monitor.timer("operation"):
        do_work()
    stats = monitor.get_statistics("operation")
    monitor.export_metrics(format="json", output_path=Path("metrics.json"))

    assert calls == [1]
    assert {"count", "min", "max", "mean", "median", "std", "p50", "p90", "p95", "p99"} <= set(
        stats
    )
    assert stats["count"] == 1
    assert stats["min"] == stats["max"] == stats["mean"] == stats["median"] >= 0.0
    assert stats["std"] == 0.0
    exported = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert [sample["metric_name"] for sample in exported] == ["operation"]
    assert monitor.max_history == 5000


def test_docstring_example() -> None:
    monitor = PerformanceMonitor(max_history=5000)
    with monitor.timer("resize"):
        pass
    assert monitor.get_statistics("resize")["count"] == 1


# ----------------------------------------------------------------------------- construction


def test_max_history_default_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTPD_MONITORING_MAX_HISTORY", "7")
    get_settings.cache_clear()

    assert PerformanceMonitor().max_history == 7
    assert PerformanceMonitor(max_history=3).max_history == 3  # the argument wins


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "10"])
def test_bad_max_history(bad: object) -> None:
    with pytest.raises(ValueError, match="max_history"):
        PerformanceMonitor(max_history=bad)  # type: ignore[arg-type]


def test_directly_built_monitor_has_no_store(monitor: PerformanceMonitor) -> None:
    assert monitor.store is None
    with monitor.timer("x"):
        pass
    monitor.flush()  # a no-op, not an error


# ----------------------------------------------------------------------------- timer


def test_timer_records_elapsed_seconds(monitor: PerformanceMonitor, clock: FakeClock) -> None:
    with monitor.timer("resize") as timer:
        assert isinstance(timer, Timer)
        assert timer.elapsed is None

    assert timer.elapsed is not None and timer.elapsed >= 0.0
    metrics = monitor.get_metrics("resize")
    assert len(metrics) == 1
    assert metrics[0].value == timer.elapsed
    assert metrics[0].unit == "seconds"
    assert metrics[0].timestamp == datetime.fromtimestamp(T0, UTC)
    assert metrics[0].metadata == {}


def test_timer_with_metadata(monitor: PerformanceMonitor) -> None:
    meta = {"session_id": "s1", "size": [100, 200]}
    with monitor.timer("decode", metadata=meta):
        pass

    assert monitor.get_metrics("decode")[0].metadata == meta
    assert meta == {"session_id": "s1", "size": [100, 200]}  # the caller's dict is untouched


def test_timer_records_when_the_block_raises_and_reraises(monitor: PerformanceMonitor) -> None:
    meta = {"session_id": "s1"}
    with pytest.raises(KeyError, match="missing"), monitor.timer("lookup", metadata=meta) as timer:
        raise KeyError("missing")

    metrics = monitor.get_metrics("lookup")
    assert len(metrics) == 1
    assert metrics[0].metadata == {"session_id": "s1", "error": "KeyError"}
    assert metrics[0].value == timer.elapsed
    assert meta == {"session_id": "s1"}  # not mutated by the error annotation

    with pytest.raises(ZeroDivisionError), monitor.timer("lookup"):
        _ = 1 / 0
    assert [m.metadata for m in monitor.get_metrics("lookup")] == [
        {"session_id": "s1", "error": "KeyError"},
        {"error": "ZeroDivisionError"},
    ]


def test_timer_instances_are_independent(monitor: PerformanceMonitor) -> None:
    outer = monitor.timer("x")
    inner = monitor.timer("x")
    assert outer is not inner
    with outer, inner:
        pass
    assert monitor.get_statistics("x")["count"] == 2


@pytest.mark.parametrize("bad", ["", "   ", 5, None])
def test_timer_rejects_bad_names(monitor: PerformanceMonitor, bad: object) -> None:
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        monitor.timer(bad)  # type: ignore[arg-type]
    assert monitor.get_operation_names() == []


def test_timer_on_a_series_with_another_unit_raises(monitor: PerformanceMonitor) -> None:
    monitor.record_metric("memory", 12.0, unit="MB")

    with pytest.raises(ValueError, match=r"'memory'.*'MB'"), monitor.timer("memory"):
        pass
    monitor.start_timer("memory")
    with pytest.raises(ValueError, match=r"'memory'.*'MB'"):
        monitor.stop_timer("memory")

    assert [m.value for m in monitor.get_metrics("memory")] == [12.0]


def test_many_threads_timing_the_same_name(monitor: PerformanceMonitor) -> None:
    threads, per_thread = 8, 2_000

    def work() -> None:
        for _ in range(per_thread):
            with monitor.timer("x"):
                pass

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(work) for _ in range(threads)]:
            future.result()

    stats = monitor.get_statistics("x")
    assert stats["count"] == threads * per_thread
    assert stats["min"] >= 0.0


def test_many_threads_with_metadata_and_record_metric(monitor: PerformanceMonitor) -> None:
    threads, per_thread = 6, 1_000

    def work(worker: int) -> None:
        for i in range(per_thread):
            monitor.record_metric("v", float(worker * per_thread + i), metadata={"w": worker})

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, range(threads)))

    metrics = monitor.get_metrics("v")
    assert sorted(m.value for m in metrics) == [float(i) for i in range(threads * per_thread)]
    # every sample kept its own metadata
    assert all(m.metadata == {"w": int(m.value) // per_thread} for m in metrics)


def test_asyncio_gather_of_timed_tasks(monitor: PerformanceMonitor) -> None:
    async def one() -> None:
        with monitor.timer("x"):
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(50)))

    asyncio.run(main())

    assert monitor.get_statistics("x")["count"] == 50


# ----------------------------------------------------------------------------- start/stop


def test_start_and_stop_timer(monitor: PerformanceMonitor) -> None:
    assert monitor.stop_timer("never") is None
    assert monitor.get_statistics("never") == {"count": 0}

    monitor.start_timer("load")
    elapsed = monitor.stop_timer("load", metadata={"file": "a.tif"})

    assert elapsed is not None and elapsed >= 0.0
    metrics = monitor.get_metrics("load")
    assert [m.value for m in metrics] == [elapsed]
    assert metrics[0].metadata == {"file": "a.tif"}
    assert monitor.stop_timer("load") is None  # a stop consumes its start


def test_start_timer_rejects_bad_names(monitor: PerformanceMonitor) -> None:
    for bad in ["", "  ", 5]:
        with pytest.raises(ValueError, match="non-empty string"):
            monitor.start_timer(bad)  # type: ignore[arg-type]


def test_start_stop_are_separate_per_thread(monitor: PerformanceMonitor) -> None:
    started = threading.Event()
    results: dict[str, Any] = {}

    def other() -> None:
        results["stop_before_start"] = monitor.stop_timer("job")  # main thread's start is not ours
        monitor.start_timer("job")
        started.set()
        results["own"] = monitor.stop_timer("job")

    monitor.start_timer("job")
    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    mine = monitor.stop_timer("job")

    assert started.is_set()
    assert results["stop_before_start"] is None
    assert results["own"] is not None
    assert mine is not None
    # the main thread's interval encloses the other thread's whole interval
    assert mine >= results["own"]
    assert monitor.get_statistics("job")["count"] == 2


def test_start_stop_are_separate_per_asyncio_task(monitor: PerformanceMonitor) -> None:
    async def main() -> tuple[float | None, float | None]:
        first_started = asyncio.Event()
        second_done = asyncio.Event()

        async def first() -> float | None:
            monitor.start_timer("render")
            first_started.set()
            await second_done.wait()
            return monitor.stop_timer("render")

        async def second() -> float | None:
            await first_started.wait()
            monitor.start_timer("render")  # same name, concurrently, in another task
            await asyncio.sleep(0)
            elapsed = monitor.stop_timer("render")
            second_done.set()
            return elapsed

        a, b = await asyncio.gather(first(), second())
        return a, b

    long_one, short_one = asyncio.run(main())

    assert long_one is not None and short_one is not None
    assert long_one >= short_one  # the first task's interval encloses the second's
    values = sorted(m.value for m in monitor.get_metrics("render"))
    assert values == sorted([long_one, short_one])


# ----------------------------------------------------------------------------- record_metric


def test_record_metric_values_and_units(monitor: PerformanceMonitor, clock: FakeClock) -> None:
    monitor.record_metric("memory", 12, unit="MB")
    monitor.record_metric("memory", 13.5, unit="MB", metadata={"step": "resize"})
    monitor.record_metric("memory", np.float32(0.5), unit="MB")
    monitor.record_metric("memory", Fraction(1, 4), unit="MB")
    monitor.record_metric("memory", -3.0, unit="MB")

    metrics = monitor.get_metrics("memory")
    assert [m.value for m in metrics] == [12.0, 13.5, 0.5, 0.25, -3.0]
    assert all(isinstance(m, PerformanceMetric) for m in metrics)
    assert {m.unit for m in metrics} == {"MB"}
    assert [m.metadata for m in metrics] == [{}, {"step": "resize"}, {}, {}, {}]
    assert monitor.get_unit("memory") == "MB"
    assert monitor.get_statistics("memory")["unit"] == "MB"
    assert monitor.get_unit("unknown") is None


@pytest.mark.parametrize(
    "bad",
    [math.nan, math.inf, -math.inf, np.nan, "3", None, True, False, object(), [1.0], 1 + 2j],
    ids=lambda v: "object()" if type(v) is object else repr(v),
)
def test_record_metric_rejects_bad_values(monitor: PerformanceMonitor, bad: object) -> None:
    with pytest.raises(ValueError, match="'latency'"):
        monitor.record_metric("latency", bad, unit="ms")  # type: ignore[arg-type]

    assert monitor.get_statistics("latency") == {"count": 0}
    assert monitor.get_metrics("latency") == []
    assert monitor.get_operation_names() == []
    # a refused call leaves nothing behind: the series can still be started in any unit
    monitor.record_metric("latency", 1.0, unit="seconds")
    assert monitor.get_statistics("latency")["count"] == 1


@pytest.mark.parametrize("bad", ["", "   ", "\t\n", 5, None, b"name"], ids=repr)
def test_record_metric_rejects_bad_names(monitor: PerformanceMonitor, bad: object) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"name must be a non-empty string, got {bad!r}")
    ):
        monitor.record_metric(bad, 1.0)  # type: ignore[arg-type]

    assert monitor.get_operation_names() == []
    if isinstance(bad, str):
        assert monitor.get_statistics(bad) == {"count": 0}


def test_record_metric_rejects_bad_metadata(monitor: PerformanceMonitor) -> None:
    with pytest.raises(ValueError, match=r"'x'.*metadata must be a dict"):
        monitor.record_metric("x", 1.0, metadata=["not", "a", "dict"])  # type: ignore[arg-type]
    assert monitor.get_statistics("x") == {"count": 0}


def test_record_metric_unit_mismatch(monitor: PerformanceMonitor) -> None:
    monitor.record_metric("memory", 10.0, unit="MB")

    with pytest.raises(ValueError, match="'memory' is recorded in 'MB'; got a value in 'GB'"):
        monitor.record_metric("memory", 1.0, unit="GB")
    with pytest.raises(ValueError, match="'memory'"):
        monitor.record_metric("memory", 1.0)  # default unit is seconds

    assert monitor.get_statistics("memory")["count"] == 1


def test_timer_series_unit_is_seconds(monitor: PerformanceMonitor) -> None:
    with monitor.timer("op"):
        pass
    with pytest.raises(ValueError, match="'seconds'"):
        monitor.record_metric("op", 5.0, unit="ms")
    monitor.record_metric("op", 5.0)
    assert monitor.get_statistics("op")["count"] == 2


# ----------------------------------------------------------------------------- queries


def test_get_metrics_time_range_pairs(monitor: PerformanceMonitor, clock: FakeClock) -> None:
    _record_at(monitor, clock, "op", [(T0, 1.0), (T0 + 10, 2.0), (T0 + 20, 3.0), (T0 + 30, 4.0)])

    def values(time_range: Any) -> list[float]:
        return [m.value for m in monitor.get_metrics("op", time_range=time_range)]

    assert values(None) == [1.0, 2.0, 3.0, 4.0]
    # epoch seconds, bounds included
    assert values((T0 + 10, T0 + 20)) == [2.0, 3.0]
    assert values((T0 + 10.5, T0 + 19.5)) == []
    # aware datetimes
    utc = datetime.fromtimestamp(T0, UTC)
    assert values((utc + timedelta(seconds=5), utc + timedelta(seconds=25))) == [2.0, 3.0]
    # naive datetimes are local time
    local = datetime.fromtimestamp(T0)
    assert values((local + timedelta(seconds=25), local + timedelta(hours=1))) == [4.0]
    # mixed
    assert values((T0 - 100, utc)) == [1.0]
    # the same windows serve every query
    assert monitor.get_average("op", (T0 + 10, T0 + 20)) == 2.5
    assert monitor.get_statistics("op", (T0 + 10, T0 + 20))["count"] == 2
    assert monitor.get_percentiles("op", [0, 100], (T0 + 10, T0 + 20)) == {"p0": 2.0, "p100": 3.0}
    assert monitor.get_statistics("op", (T0 + 100, T0 + 200)) == {"count": 0}


def test_get_metrics_time_range_timedelta(monitor: PerformanceMonitor, clock: FakeClock) -> None:
    _record_at(monitor, clock, "op", [(T0 - 100, 1.0), (T0 - 10, 2.0), (T0, 3.0)])
    clock.now = T0

    assert [m.value for m in monitor.get_metrics("op", timedelta(seconds=50))] == [2.0, 3.0]
    assert [m.value for m in monitor.get_metrics("op", timedelta(seconds=100))] == [1.0, 2.0, 3.0]
    assert monitor.get_average("op", timedelta(seconds=5)) == 3.0
    clock.now = T0 + 1000
    assert monitor.get_metrics("op", timedelta(seconds=50)) == []


def test_time_range_with_the_real_clock() -> None:
    """Windows computed from the recorded timestamps themselves (no pinned clock)."""
    monitor = PerformanceMonitor(max_history=100_000)
    for value in (1.0, 2.0, 3.0):
        monitor.record_metric("op", value)
    stamps = [m.timestamp for m in monitor.get_metrics("op")]

    everything = (stamps[0] - timedelta(seconds=1), stamps[-1] + timedelta(seconds=1))
    assert [m.value for m in monitor.get_metrics("op", everything)] == [1.0, 2.0, 3.0]
    before = (stamps[0] - timedelta(hours=2), stamps[0] - timedelta(hours=1))
    assert monitor.get_metrics("op", before) == []
    assert monitor.get_statistics("op", timedelta(hours=1))["count"] == 3


@pytest.mark.parametrize(
    "bad",
    [
        (2.0, 1.0),
        (1.0,),
        (1.0, 2.0, 3.0),
        "ab",
        5,
        (None, 1.0),
        (1.0, None),
        (math.nan, 1.0),
        ("a", "b"),
    ],
    ids=repr,
)
def test_bad_time_ranges(monitor: PerformanceMonitor, bad: object) -> None:
    monitor.record_metric("op", 1.0)
    with pytest.raises(ValueError):
        monitor.get_metrics("op", bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        window(bad)  # type: ignore[arg-type]


def test_get_metrics_unknown_name(monitor: PerformanceMonitor) -> None:
    assert monitor.get_metrics("nope") == []
    assert monitor.get_average("nope") is None
    assert monitor.get_percentiles("nope") == {}
    assert monitor.get_statistics("nope") == {"count": 0}


def test_get_average(monitor: PerformanceMonitor) -> None:
    assert monitor.get_average("op") is None
    for value in (1.0, 2.0, 6.0):
        monitor.record_metric("op", value)
    assert monitor.get_average("op") == 3.0


def test_get_percentiles(monitor: PerformanceMonitor) -> None:
    values = np.random.default_rng(11).lognormal(size=997)
    for value in values:
        monitor.record_metric("op", float(value))

    default = monitor.get_percentiles("op")
    custom = monitor.get_percentiles("op", [0, 12.5, 99.9, 100])

    assert list(default) == ["p50", "p90", "p95", "p99"]
    assert (
        list(default.values()) == np.percentile(values, [50, 90, 95, 99], method="linear").tolist()
    )
    assert list(custom) == ["p0", "p12.5", "p99.9", "p100"]
    assert (
        list(custom.values())
        == np.percentile(values, [0, 12.5, 99.9, 100], method="linear").tolist()
    )
    with pytest.raises(ValueError):
        monitor.get_percentiles("op", [101])


def test_get_statistics(monitor: PerformanceMonitor) -> None:
    values = np.random.default_rng(12).normal(loc=5.0, size=501)
    for value in values:
        monitor.record_metric("op", float(value), unit="ms")

    stats = monitor.get_statistics("op")

    assert set(stats) == STAT_KEYS
    assert stats["unit"] == "ms"
    assert stats["count"] == 501
    assert stats["min"] == values.min()
    assert stats["max"] == values.max()
    assert stats["mean"] == np.mean(values)
    assert stats["std"] == np.std(values)
    assert stats["median"] == np.percentile(values, 50)
    assert [stats["p50"], stats["p90"], stats["p95"], stats["p99"]] == np.percentile(
        values, [50, 90, 95, 99]
    ).tolist()


@pytest.mark.parametrize("max_history", [1, 3, 100])
def test_max_history_bounds_each_series_keeping_the_newest(max_history: int) -> None:
    monitor = PerformanceMonitor(max_history=max_history)
    n = 1_000
    for i in range(n):
        monitor.record_metric("a", float(i))
        monitor.record_metric("b", float(-i))
        with monitor.timer("c"):
            pass

    for name in ("a", "b", "c"):
        assert monitor.get_statistics(name)["count"] == max_history
        assert len(monitor.get_metrics(name)) == max_history
    assert monitor.get_statistics("a")["min"] == n - max_history
    assert monitor.get_statistics("a")["max"] == n - 1
    assert monitor.get_statistics("b")["max"] == -(n - max_history)
    assert [m.value for m in monitor.get_metrics("a")] == [
        float(i) for i in range(n - max_history, n)
    ]


def test_get_operation_names(monitor: PerformanceMonitor) -> None:
    assert monitor.get_operation_names() == []
    monitor.record_metric("b", 1.0)
    monitor.record_metric("a", 1.0)
    with monitor.timer("c"):
        pass
    assert monitor.get_operation_names() == ["a", "b", "c"]


def test_samples_with_metadata(monitor: PerformanceMonitor) -> None:
    monitor.record_metric("a", 1.0, metadata={"session_id": "s1"})
    monitor.record_metric("a", 2.0, metadata={"session_id": "s2"})
    monitor.record_metric("a", 3.0)
    monitor.record_metric("b", 4.0, metadata={"session_id": "s1", "x": 1})
    monitor.record_metric("c", 5.0, metadata={"session_id": "s2"})

    found = monitor.samples_with_metadata("session_id", "s1")

    assert {name: [m.value for m in ms] for name, ms in found.items()} == {"a": [1.0], "b": [4.0]}
    assert monitor.samples_with_metadata("session_id", "none") == {}


def test_repr(monitor: PerformanceMonitor) -> None:
    monitor.record_metric("a", 1.0)
    assert "PerformanceMonitor(" in repr(monitor)


# ----------------------------------------------------------------------------- export


def _filled(clock: FakeClock) -> PerformanceMonitor:
    monitor = PerformanceMonitor(max_history=100, clock=clock)
    _record_at(monitor, clock, "decode", [(T0, 0.5), (T0 + 1, 0.25)])
    clock.now = T0 + 2
    monitor.record_metric(
        "memory", 120.0, unit="MB", metadata={"session_id": "s1", "note": 'a "q", b'}
    )
    return monitor


def test_export_json(clock: FakeClock) -> None:
    monitor = _filled(clock)

    text = monitor.export_metrics(format="json")

    payload = json.loads(text)
    assert isinstance(payload, list)  # one object per sample, as the original module wrote it
    assert [set(sample) for sample in payload] == [
        {"metric_name", "value", "unit", "timestamp", "metadata"}
    ] * 3
    assert [(s["metric_name"], s["value"], s["unit"]) for s in payload] == [
        ("decode", 0.5, "seconds"),
        ("decode", 0.25, "seconds"),
        ("memory", 120.0, "MB"),
    ]
    assert [s["timestamp"] for s in payload] == [
        datetime.fromtimestamp(ts, UTC).isoformat() for ts in (T0, T0 + 1, T0 + 2)
    ]
    assert payload[0]["timestamp"].endswith("+00:00")
    assert payload[0]["metadata"] == {}
    assert payload[2]["metadata"] == {"session_id": "s1", "note": 'a "q", b'}


def test_export_json_one_operation(clock: FakeClock) -> None:
    monitor = _filled(clock)

    payload = json.loads(monitor.export_metrics("json", operation_name="memory"))

    assert [s["metric_name"] for s in payload] == ["memory"]
    assert json.loads(monitor.export_metrics("json", operation_name="unknown")) == []


def test_export_csv(clock: FakeClock) -> None:
    monitor = _filled(clock)

    text = monitor.export_metrics(format="csv")

    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["metric_name", "value", "unit", "timestamp", "metadata"]
    body = rows[1:]
    assert len(body) == 3
    assert [(r[0], float(r[1]), r[2]) for r in body] == [
        ("decode", 0.5, "seconds"),
        ("decode", 0.25, "seconds"),
        ("memory", 120.0, "MB"),
    ]
    assert [datetime.fromisoformat(r[3]).timestamp() for r in body] == [T0, T0 + 1, T0 + 2]
    assert json.loads(body[0][4]) == {}
    assert json.loads(body[2][4]) == {"session_id": "s1", "note": 'a "q", b'}
    one = list(csv.DictReader(io.StringIO(monitor.export_metrics("csv", operation_name="decode"))))
    assert [r["metric_name"] for r in one] == ["decode", "decode"]


def test_export_csv_values_round_trip_exactly(monitor: PerformanceMonitor) -> None:
    values = np.random.default_rng(4).lognormal(size=50)
    for value in values:
        monitor.record_metric("op", float(value))

    rows = list(csv.DictReader(io.StringIO(monitor.export_metrics("csv"))))

    assert [float(r["value"]) for r in rows] == values.tolist()


def test_export_empty_monitor(monitor: PerformanceMonitor, tmp_path: Path) -> None:
    assert json.loads(monitor.export_metrics("json")) == []
    assert monitor.export_metrics("csv") == ""
    assert monitor.export_metrics("csv", tmp_path / "empty.csv") is None
    assert (tmp_path / "empty.csv").read_text() == ""


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_writes_the_same_text_to_output_path(
    clock: FakeClock, tmp_path: Path, fmt: str
) -> None:
    monitor = _filled(clock)
    path = tmp_path / f"metrics.{fmt}"

    text = monitor.export_metrics(format=fmt)

    assert monitor.export_metrics(format=fmt, output_path=path) is None  # written, not returned
    assert path.read_text(encoding="utf-8") == text
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    # a str path works too, and an existing file is replaced; the format is case-insensitive
    assert monitor.export_metrics(fmt.upper(), str(path)) is None
    assert path.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("fmt", ["xml", "JSONL", "", "parquet"])
def test_export_unknown_format(monitor: PerformanceMonitor, fmt: str, tmp_path: Path) -> None:
    monitor.record_metric("op", 1.0)
    with pytest.raises(ValueError, match="Unsupported format"):
        monitor.export_metrics(format=fmt, output_path=tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_export_into_a_missing_folder(monitor: PerformanceMonitor, tmp_path: Path) -> None:
    monitor.record_metric("op", 1.0)
    path = tmp_path / "no-such-folder" / "metrics.json"

    with pytest.raises(FileNotFoundError) as caught:
        monitor.export_metrics(output_path=path)

    assert isinstance(caught.value, OSError)
    assert str(path) in str(caught.value)
    assert not path.parent.exists()


# ----------------------------------------------------------------------------- clear


def test_clear_one_metric(monitor: PerformanceMonitor) -> None:
    monitor.record_metric("a", 1.0)
    monitor.record_metric("b", 2.0, unit="MB")

    monitor.clear_metrics("a")

    assert monitor.get_statistics("a") == {"count": 0}
    assert monitor.get_operation_names() == ["b"]
    assert monitor.get_statistics("b")["count"] == 1
    monitor.clear_metrics("unknown")  # not an error
    monitor.record_metric("a", 3.0, unit="ms")  # a cleared series starts afresh, any unit
    assert monitor.get_unit("a") == "ms"


def test_clear_all_metrics(monitor: PerformanceMonitor) -> None:
    monitor.record_metric("a", 1.0)
    with monitor.timer("b"):
        pass

    monitor.clear_metrics()

    assert monitor.get_operation_names() == []
    assert monitor.get_statistics("a") == {"count": 0}
    assert monitor.get_statistics("b") == {"count": 0}
    with monitor.timer("b"):
        pass
    assert monitor.get_statistics("b")["count"] == 1


# ----------------------------------------------------------------------------- store


@pytest.mark.usefixtures("no_background_flush")
def test_flush_to_a_store_and_load_back(tmp_path: Path) -> None:
    store = SampleStore(tmp_path / "s")
    monitor = PerformanceMonitor(max_history=1000, store=store)
    assert monitor.store is store
    values = np.random.default_rng(8).lognormal(size=300)
    for i, value in enumerate(values):
        monitor.record_metric(
            "decode", float(value), metadata={"session_id": "s1"} if i % 10 == 0 else None
        )
    for _ in range(25):
        with monitor.timer("resize"):
            pass
    monitor.record_metric("memory", 512.0, unit="MB")

    monitor.flush()
    loaded = store.load_monitor()

    assert loaded.get_operation_names() == ["decode", "memory", "resize"]
    for name in ("decode", "memory", "resize"):
        assert loaded.get_statistics(name) == monitor.get_statistics(name)
        assert loaded.get_metrics(name) == monitor.get_metrics(name)
    assert loaded.get_unit("memory") == "MB"
    assert loaded.get_metrics("decode")[10].metadata == {"session_id": "s1"}
    assert monitor.pending_batches() == []  # everything was taken by the flush

    # a second flush writes only what is new
    monitor.record_metric("memory", 256.0, unit="MB")
    monitor.flush()
    assert store.load_monitor().get_statistics("memory")["count"] == 2


@pytest.mark.usefixtures("no_background_flush")
def test_monitor_with_a_store_keeps_unflushed_samples_beyond_history(tmp_path: Path) -> None:
    store = SampleStore(tmp_path / "s")
    monitor = PerformanceMonitor(max_history=10, store=store)
    for i in range(100):
        monitor.record_metric("op", float(i))

    assert monitor.get_statistics("op")["count"] == 10  # the live view is bounded
    monitor.flush()

    loaded = store.load_monitor()
    assert loaded.get_statistics("op")["count"] == 100  # the store got every sample
    assert monitor.dropped_samples == 0


@pytest.mark.usefixtures("no_background_flush")
def test_clear_metrics_flushes_first(tmp_path: Path) -> None:
    store = SampleStore(tmp_path / "s")
    monitor = PerformanceMonitor(max_history=10, store=store)
    monitor.record_metric("op", 1.0)

    monitor.clear_metrics()

    assert monitor.get_statistics("op") == {"count": 0}
    assert store.load_monitor().get_statistics("op")["count"] == 1


@pytest.mark.usefixtures("no_background_flush")
def test_loaded_monitor_is_read_only(tmp_path: Path) -> None:
    store = SampleStore(tmp_path / "s")
    monitor = PerformanceMonitor(store=store)
    monitor.record_metric("op", 1.0)
    monitor.flush()
    loaded = store.load_monitor()

    with pytest.raises(ValueError, match="read-only"):
        loaded.record_metric("op", 2.0)
    with pytest.raises(ValueError, match="read-only"):
        loaded.record_metric("new", 2.0)
    with pytest.raises(ValueError, match="read-only"):
        loaded.timer("op")
    with pytest.raises(ValueError, match="read-only"):
        loaded.timer("new")
    loaded.start_timer("op")
    with pytest.raises(ValueError, match="read-only"):
        loaded.stop_timer("op")
    assert loaded.get_statistics("op")["count"] == 1
    assert loaded.get_operation_names() == ["op"]
    assert loaded.store is None


@pytest.mark.usefixtures("no_background_flush")
def test_load_monitor_time_window(tmp_path: Path, clock: FakeClock) -> None:
    store = SampleStore(tmp_path / "s")
    monitor = PerformanceMonitor(store=store, clock=clock)
    _record_at(monitor, clock, "op", [(T0, 1.0), (T0 + 10, 2.0), (T0 + 20, 3.0)])
    monitor.flush()

    loaded = store.load_monitor(since=T0 + 5, until=T0 + 25)

    assert [m.value for m in loaded.get_metrics("op")] == [2.0, 3.0]
