"""Unit tests for ptpd_calibration.monitoring.report.PerformanceReport."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from ptpd_calibration.monitoring.api import APIPerformanceTracker
from ptpd_calibration.monitoring.models import ResourceUsage
from ptpd_calibration.monitoring.monitor import PerformanceMonitor
from ptpd_calibration.monitoring.report import PerformanceReport

if TYPE_CHECKING:
    from conftest import FakeClock

DAY = date(2025, 6, 15)
NOON = datetime(2025, 6, 15, 12, 0, 0).timestamp()  # local noon of DAY


@pytest.fixture
def monitor(clock: FakeClock) -> PerformanceMonitor:
    """On the clock fixture, which each test sets (``_record``) before it records."""
    return PerformanceMonitor(max_history=10_000, clock=clock)


@pytest.fixture
def tracker(clock: FakeClock) -> APIPerformanceTracker:
    return APIPerformanceTracker(max_history=10_000, clock=clock)


@pytest.fixture
def us_eastern() -> Iterator[None]:
    """Local time is US Eastern (POSIX rule, no tzdata needed): DST starts 2024-03-10."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "EST5EDT,M3.2.0,M11.1.0"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


class FakeResourceMonitor:
    """Stands in for ResourceMonitor: fixed readings, no psutil."""

    def __init__(self) -> None:
        self.usage = ResourceUsage(
            cpu_percent=95.0, memory_percent=40.0, memory_used_mb=1024.0, disk_percent=10.0
        )

    def check_resources(self) -> ResourceUsage:
        return self.usage

    def get_alerts_for_high_usage(self, usage: ResourceUsage | None = None) -> list[dict[str, Any]]:
        assert usage is self.usage
        return [
            {
                "resource": "cpu",
                "usage": 95.0,
                "threshold": 80.0,
                "severity": "warning",
                "message": "CPU at 95%",
            }
        ]


def _record(
    monitor: PerformanceMonitor, clock: FakeClock, at: float, name: str, *values: float, **meta: Any
) -> None:
    clock.now = at
    for value in values:
        monitor.record_metric(name, value, metadata=meta or None)


# ----------------------------------------------------------------------------- daily


def test_quickref_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monitor = PerformanceMonitor()
    tracker = APIPerformanceTracker(max_history=10_000)
    with monitor.timer("operation"):
        pass
    tracker.track_request("/api/endpoint", 0.01, 200)
    report_gen = PerformanceReport(
        monitor=monitor, api_tracker=tracker, resource_monitor=FakeResourceMonitor()
    )

    report = report_gen.generate_daily_report()
    session = report_gen.generate_session_report("session_id")
    now = time.time()
    comparison = report_gen.compare_performance((now - 7200, now - 3600), (now - 3600, now + 60))
    report_gen.export_report(report, format="json", path=Path("report.json"))

    assert report["operations"]["operation"]["count"] == 1
    assert report["api"]["total_requests"] == 1
    assert session["operations"] == {}
    assert comparison["operations"]["operation"]["change"] is None
    assert (
        json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["report_type"] == "daily"
    )


def test_daily_report_today_with_the_real_clock() -> None:
    monitor = PerformanceMonitor(max_history=10_000)
    with monitor.timer("decode"):
        pass
    monitor.record_metric("memory", 100.0, unit="MB")

    report = PerformanceReport(monitor).generate_daily_report()

    assert report["report_type"] == "daily"
    assert report["date"] == date.today().isoformat()
    assert set(report["operations"]) == {"decode", "memory"}
    assert report["operations"]["memory"]["unit"] == "MB"
    assert report["summary"] == {"operations": 2, "samples": 2}
    # only timings are ranked as bottlenecks
    assert [b["operation"] for b in report["bottlenecks"]] == ["decode"]
    assert "api" not in report and "resources" not in report


def test_daily_report_for_a_given_date(monitor: PerformanceMonitor, clock: FakeClock) -> None:
    _record(monitor, clock, NOON - 86_400, "decode", 9.0)  # the day before
    _record(monitor, clock, NOON, "decode", 1.0, 2.0, 3.0)
    _record(monitor, clock, NOON + 3600, "resize", 0.5)
    _record(monitor, clock, NOON + 86_400, "decode", 9.0)  # the day after
    reporter = PerformanceReport(monitor)

    for day in ("2025-06-15", DAY, datetime(2025, 6, 15, 23, 59)):
        report = reporter.generate_daily_report(day)  # type: ignore[arg-type]
        assert report["date"] == "2025-06-15"
        assert set(report["operations"]) == {"decode", "resize"}
        decode = report["operations"]["decode"]
        assert decode["count"] == 3
        assert decode["mean"] == 2.0
        assert decode == monitor.get_statistics("decode", (NOON - 1, NOON + 1))
        assert report["summary"] == {"operations": 2, "samples": 4}

    start = datetime.combine(DAY, datetime.min.time()).astimezone()
    assert datetime.fromisoformat(report["period"]["start"]) == start
    assert datetime.fromisoformat(report["period"]["end"]) == start + timedelta(
        days=1, microseconds=-1
    )
    # bottlenecks rank the day's operations by total time
    assert [b["operation"] for b in report["bottlenecks"]] == ["decode", "resize"]
    assert report["bottlenecks"][0]["total_time"] == 6.0


def test_daily_report_day_bounds_are_local_midnights(
    monitor: PerformanceMonitor, clock: FakeClock
) -> None:
    midnight = datetime(2025, 6, 16).timestamp()
    _record(monitor, clock, midnight - 0.001, "op", 1.0)
    _record(monitor, clock, midnight, "op", 2.0)

    reporter = PerformanceReport(monitor)

    assert reporter.generate_daily_report("2025-06-15")["operations"]["op"]["max"] == 1.0
    assert reporter.generate_daily_report("2025-06-16")["operations"]["op"]["min"] == 2.0


@pytest.mark.usefixtures("us_eastern")
@pytest.mark.parametrize(
    ("day", "hours"),
    [("2024-03-10", 23), ("2024-11-03", 25), ("2024-06-01", 24)],
)
def test_daily_report_covers_the_local_day_across_dst(
    monitor: PerformanceMonitor, day: str, hours: int
) -> None:
    report = PerformanceReport(monitor).generate_daily_report(day)

    start = datetime.fromisoformat(report["period"]["start"])
    end = datetime.fromisoformat(report["period"]["end"])
    assert end - start == timedelta(hours=hours, microseconds=-1)
    next_day = date.fromisoformat(day) + timedelta(days=1)
    assert (
        end + timedelta(microseconds=1)
        == datetime.combine(next_day, datetime.min.time()).astimezone()
    )


def test_daily_report_for_a_day_without_data(monitor: PerformanceMonitor, clock: FakeClock) -> None:
    _record(monitor, clock, NOON, "op", 1.0)

    report = PerformanceReport(monitor).generate_daily_report("2001-01-01")

    assert report["operations"] == {}
    assert report["bottlenecks"] == []
    assert report["summary"] == {"operations": 0, "samples": 0}
    assert report["date"] == "2001-01-01"


def test_daily_report_of_an_empty_monitor(monitor: PerformanceMonitor) -> None:
    report = PerformanceReport(monitor).generate_daily_report()
    assert report["operations"] == {}


@pytest.mark.parametrize(
    "bad", ["2025-13-01", "2025-02-30", "yesterday", "15/06/2025", "", 20250615, 3.5]
)
def test_daily_report_rejects_malformed_dates(monitor: PerformanceMonitor, bad: Any) -> None:
    with pytest.raises(ValueError, match="date must be"):
        PerformanceReport(monitor).generate_daily_report(bad)


def test_daily_report_with_api_and_resources(
    monitor: PerformanceMonitor, tracker: APIPerformanceTracker, clock: FakeClock
) -> None:
    clock.now = NOON
    tracker.track_request("/api/a", 0.010, 200)
    tracker.track_request("/api/a", 0.030, 500)
    clock.now = NOON - 86_400
    tracker.track_request("/api/old", 0.010, 200)
    resources = FakeResourceMonitor()

    report = PerformanceReport(monitor, tracker, resources).generate_daily_report("2025-06-15")  # type: ignore[arg-type]

    assert report["api"]["total_requests"] == 2
    assert report["api"]["total_errors"] == 1
    assert list(report["api"]["endpoints"]) == ["/api/a"]
    # The original module's shape: the snapshot's fields, and the alerts beside them.
    assert report["resources"]["cpu_percent"] == 95.0
    assert report["resources"]["timestamp"].endswith("+00:00")
    assert report["resource_alerts"] == resources.get_alerts_for_high_usage(resources.usage)
    assert report["resource_alerts"][0]["resource"] == "cpu"
    json.dumps(report)  # JSON-ready as it is


def test_period_report(monitor: PerformanceMonitor, clock: FakeClock) -> None:
    _record(monitor, clock, NOON, "op", 1.0)
    _record(monitor, clock, NOON + 100, "op", 3.0)

    report = PerformanceReport(monitor).generate_period_report((NOON + 50, NOON + 150))

    assert report["report_type"] == "period"
    assert report["operations"]["op"]["count"] == 1
    assert report["operations"]["op"]["mean"] == 3.0
    assert datetime.fromisoformat(report["period"]["start"]).timestamp() == NOON + 50
    with pytest.raises(ValueError):
        PerformanceReport(monitor).generate_period_report((NOON + 150, NOON + 50))


# ----------------------------------------------------------------------------- session


def test_session_report_filters_by_session_id(
    monitor: PerformanceMonitor, tracker: APIPerformanceTracker, clock: FakeClock
) -> None:
    # two sessions interleaved, plus samples without a session
    _record(monitor, clock, NOON, "decode", 1.0, session_id="s1")
    _record(monitor, clock, NOON + 1, "decode", 10.0, session_id="s2")
    _record(monitor, clock, NOON + 2, "decode", 3.0, session_id="s1")
    _record(monitor, clock, NOON + 3, "decode", 100.0)
    _record(monitor, clock, NOON + 4, "resize", 0.5, session_id="s2")
    _record(monitor, clock, NOON + 5, "curve", 0.25, session_id="s1", step="fit")
    clock.now = NOON + 6
    tracker.track_request("/api/a", 0.010, 200, metadata={"session_id": "s1"})
    tracker.track_request("/api/a", 0.030, 500, metadata={"session_id": "s1"})
    tracker.track_request("/api/a", 0.050, 200, metadata={"session_id": "s2"})
    tracker.track_request("/api/a", 0.070, 200)

    reporter = PerformanceReport(monitor, tracker)
    s1 = reporter.generate_session_report("s1")
    s2 = reporter.generate_session_report("s2")

    assert s1["report_type"] == "session"
    assert s1["session_id"] == "s1"
    assert set(s1["operations"]) == {"decode", "curve"}
    assert s1["operations"]["decode"]["count"] == 2
    assert s1["operations"]["decode"]["mean"] == 2.0
    assert s1["operations"]["decode"]["p90"] == np.percentile([1.0, 3.0], 90)
    assert s1["operations"]["decode"]["unit"] == "seconds"
    assert s1["summary"] == {"operations": 2, "samples": 3}
    assert datetime.fromisoformat(s1["period"]["start"]).timestamp() == NOON
    assert datetime.fromisoformat(s1["period"]["end"]).timestamp() == NOON + 5
    assert s1["api"] == {
        "total_requests": 2,
        "total_errors": 1,
        "error_rate": 0.5,
        "mean_ms": pytest.approx(20.0),
    }
    assert set(s2["operations"]) == {"decode", "resize"}
    assert s2["operations"]["decode"]["mean"] == 10.0
    assert s2["summary"] == {"operations": 2, "samples": 2}
    assert s2["api"]["total_requests"] == 1
    assert s2["api"]["total_errors"] == 0


def test_session_report_for_an_unknown_session(
    monitor: PerformanceMonitor, tracker: APIPerformanceTracker
) -> None:
    monitor.record_metric("op", 1.0, metadata={"session_id": "s1"})

    report = PerformanceReport(monitor, tracker).generate_session_report("nobody")

    assert report["operations"] == {}
    assert report["period"] is None
    assert report["summary"] == {"operations": 0, "samples": 0}
    assert report["api"] == {
        "total_requests": 0,
        "total_errors": 0,
        "error_rate": 0.0,
        "mean_ms": None,
    }


@pytest.mark.parametrize("bad", ["", "   ", None, 5])
def test_session_report_rejects_bad_ids(monitor: PerformanceMonitor, bad: Any) -> None:
    with pytest.raises(ValueError, match="session_id"):
        PerformanceReport(monitor).generate_session_report(bad)


# ----------------------------------------------------------------------------- compare


def test_compare_performance(monitor: PerformanceMonitor, clock: FakeClock) -> None:
    first, second = NOON, NOON + 3600
    _record(monitor, clock, first, "improves", 3.0, 5.0)  # mean 4
    _record(monitor, clock, first + 1, "degrades", 2.0)
    _record(monitor, clock, first + 2, "steady", 1.0)
    _record(monitor, clock, first + 3, "gone", 7.0)
    _record(monitor, clock, second, "improves", 1.0)
    _record(monitor, clock, second + 1, "degrades", 2.5, 3.5)  # mean 3
    _record(monitor, clock, second + 2, "steady", 1.03125)
    _record(monitor, clock, second + 3, "new", 0.5)
    # the two windows, from the recorded timestamps themselves
    stamps = sorted(
        m.timestamp.timestamp()
        for name in monitor.get_operation_names()
        for m in monitor.get_metrics(name)
    )
    period1 = (stamps[0], max(s for s in stamps if s < second))
    period2 = (min(s for s in stamps if s >= second), stamps[-1])
    assert period1 == (first, first + 3)
    assert period2 == (second, second + 3)

    comparison = PerformanceReport(monitor).compare_performance(period1, period2)

    assert comparison["report_type"] == "comparison"
    ops = comparison["operations"]
    assert set(ops) == {"improves", "degrades", "steady", "gone", "new"}
    assert ops["improves"]["period1"] == {"mean": 4.0, "count": 2}
    assert ops["improves"]["period2"] == {"mean": 1.0, "count": 1}
    assert ops["improves"]["change"] == {
        "absolute": -3.0,
        "percentage": -75.0,
        "direction": "improved",
    }
    assert ops["degrades"]["change"] == {
        "absolute": 1.0,
        "percentage": 50.0,
        "direction": "degraded",
    }
    assert ops["steady"]["change"] == {
        "absolute": 0.03125,
        "percentage": 3.125,
        "direction": "unchanged",
    }
    assert ops["gone"]["change"] is None
    assert ops["gone"]["period2"] == {"mean": None, "count": 0}
    assert ops["new"]["change"] is None
    assert ops["new"]["period1"] == {"mean": None, "count": 0}
    assert ops["improves"]["unit"] == "seconds"
    assert comparison["summary"] == {"improved": 1, "degraded": 1, "unchanged": 1}
    periods = comparison["periods"]
    assert datetime.fromisoformat(periods["period1"]["start"]).timestamp() == first
    assert datetime.fromisoformat(periods["period2"]["end"]).timestamp() == second + 3
    # The original module's keys: each period's operations, and the changes of those in both,
    # improved when the mean fell, else degraded (no tolerance).
    assert comparison["period1"] == {
        "improves": {"mean": 4.0, "count": 2},
        "degrades": {"mean": 2.0, "count": 1},
        "steady": {"mean": 1.0, "count": 1},
        "gone": {"mean": 7.0, "count": 1},
    }
    assert set(comparison["period2"]) == {"improves", "degrades", "steady", "new"}
    assert comparison["changes"] == {
        "degrades": {"absolute": 1.0, "percentage": 50.0, "direction": "degraded"},
        "improves": {"absolute": -3.0, "percentage": -75.0, "direction": "improved"},
        "steady": {"absolute": 0.03125, "percentage": 3.125, "direction": "degraded"},
    }


def test_compare_performance_with_datetimes_and_tolerance(
    monitor: PerformanceMonitor, clock: FakeClock
) -> None:
    _record(monitor, clock, NOON, "op", 4.0)
    _record(monitor, clock, NOON + 60, "op", 5.0)
    _record(monitor, clock, NOON + 60, "other", 4.0)
    _record(monitor, clock, NOON, "other", 3.0)
    start = datetime.fromtimestamp(NOON, UTC)
    period1 = (start, start + timedelta(seconds=30))
    period2 = (start + timedelta(seconds=30), start + timedelta(seconds=90))
    reporter = PerformanceReport(monitor)

    exactly_at_tolerance = reporter.compare_performance(period1, period2, tolerance_pct=25.0)
    below_tolerance = reporter.compare_performance(period1, period2, tolerance_pct=24.9)

    assert exactly_at_tolerance["operations"]["op"]["change"] == {
        "absolute": 1.0,
        "percentage": 25.0,
        "direction": "unchanged",
    }
    assert below_tolerance["operations"]["op"]["change"]["direction"] == "degraded"
    # recorded out of time order, still compared by period: 3.0 -> 4.0 is +33.3 %
    other = below_tolerance["operations"]["other"]["change"]
    assert other["absolute"] == 1.0
    assert other["percentage"] == pytest.approx(100 / 3)
    assert other["direction"] == "degraded"


def test_compare_performance_from_zero(monitor: PerformanceMonitor, clock: FakeClock) -> None:
    _record(monitor, clock, NOON, "up", 0.0)
    _record(monitor, clock, NOON, "down", 0.0)
    _record(monitor, clock, NOON, "flat", 0.0)
    _record(monitor, clock, NOON + 100, "up", 2.0)
    _record(monitor, clock, NOON + 100, "down", -2.0)
    _record(monitor, clock, NOON + 100, "flat", 0.0)

    ops = PerformanceReport(monitor).compare_performance((NOON, NOON + 1), (NOON + 99, NOON + 101))[
        "operations"
    ]

    assert ops["up"]["change"] == {"absolute": 2.0, "percentage": None, "direction": "degraded"}
    assert ops["down"]["change"] == {
        "absolute": -2.0,
        "percentage": None,
        "direction": "improved",
    }
    assert ops["flat"]["change"] == {"absolute": 0.0, "percentage": 0.0, "direction": "unchanged"}
    changes = PerformanceReport(monitor).compare_performance(
        (NOON, NOON + 1), (NOON + 99, NOON + 101)
    )["changes"]
    assert changes["up"] == {"absolute": 2.0, "percentage": 0.0, "direction": "degraded"}
    assert changes["down"] == {"absolute": -2.0, "percentage": 0.0, "direction": "improved"}
    assert changes["flat"] == {"absolute": 0.0, "percentage": 0.0, "direction": "degraded"}


def test_compare_performance_without_data(monitor: PerformanceMonitor) -> None:
    comparison = PerformanceReport(monitor).compare_performance((0.0, 1.0), (2.0, 3.0))

    assert comparison["operations"] == {}
    assert comparison["period1"] == comparison["period2"] == comparison["changes"] == {}
    assert comparison["summary"] == {"improved": 0, "degraded": 0, "unchanged": 0}


@pytest.mark.parametrize("bad", [(2.0, 1.0), (1.0,), "ab", (None, 1.0)], ids=repr)
def test_compare_performance_rejects_bad_periods(monitor: PerformanceMonitor, bad: Any) -> None:
    with pytest.raises(ValueError):
        PerformanceReport(monitor).compare_performance(bad, (0.0, 1.0))
    with pytest.raises(ValueError):
        PerformanceReport(monitor).compare_performance((0.0, 1.0), bad)


# ----------------------------------------------------------------------------- export


@pytest.fixture
def daily(
    monitor: PerformanceMonitor, tracker: APIPerformanceTracker, clock: FakeClock
) -> dict[str, Any]:
    _record(monitor, clock, NOON, "decode", 1.0, 2.0, 3.0)
    monitor.record_metric("memory", 64.0, unit="MB")
    tracker.track_request("/api/a", 0.010, 200)
    return PerformanceReport(monitor, tracker).generate_daily_report("2025-06-15")


def test_export_json(monitor: PerformanceMonitor, daily: dict[str, Any]) -> None:
    text = PerformanceReport(monitor).export_report(daily, format="json")

    assert json.loads(text) == json.loads(json.dumps(daily))
    assert json.loads(text)["operations"]["decode"]["mean"] == 2.0


def _tables(text: str) -> dict[str, list[dict[str, str]]]:
    """The CSV's tables by title ("" for the first): blocks after a blank line and a title."""
    blocks = text.split("\n\n")
    tables = {"": list(csv.DictReader(io.StringIO(blocks[0])))}
    for block in blocks[1:]:
        title, _, body = block.partition("\n")
        tables[title] = list(csv.DictReader(io.StringIO(body)))
    return tables


def test_export_csv(monitor: PerformanceMonitor, daily: dict[str, Any]) -> None:
    text = PerformanceReport(monitor).export_report(daily, format="csv")

    rows = list(csv.reader(io.StringIO(text)))
    # Wide, as the original module wrote it: one row per operation, in its own unit.
    assert rows[0] == [
        "operation",
        "count",
        "min",
        "max",
        "mean",
        "median",
        "std",
        "p50",
        "p90",
        "p95",
        "p99",
        "unit",
    ]
    tables = _tables(text)
    assert list(tables) == ["", "Bottlenecks", "API", "API endpoints", "Report"]
    decode, memory = tables[""]
    assert decode["operation"] == "decode" and memory["operation"] == "memory"
    assert (decode["count"], decode["mean"], decode["std"], decode["unit"]) == (
        "3",
        "2",
        "0.8165",  # 4 significant digits
        "seconds",
    )
    assert (memory["mean"], memory["unit"]) == ("64", "MB")
    [bottleneck] = tables["Bottlenecks"]
    assert (bottleneck["operation"], bottleneck["total_time"]) == ("decode", "6")
    [api] = tables["API"]
    assert (api["total_requests"], api["overall_error_rate"]) == ("1", "0")
    [endpoint] = tables["API endpoints"]
    assert (endpoint["endpoint"], endpoint["mean_ms"], endpoint["p99_ms"]) == ("/api/a", "10", "10")
    [about] = tables["Report"]
    assert (about["report_type"], about["date"], about["summary_operations"]) == (
        "daily",
        "2025-06-15",
        "2",
    )
    for stamp in (about["generated_at"], about["period_start"], api["generated_at"]):
        assert stamp.endswith("+00:00")  # one timestamp format everywhere
        assert datetime.fromisoformat(stamp)


def test_export_csv_numbers_have_four_significant_digits_and_no_exponent(
    monitor: PerformanceMonitor, clock: FakeClock
) -> None:
    _record(monitor, clock, NOON, "tiny", 5.7639000260678586e-05)
    _record(monitor, clock, NOON, "huge", 123_456_789.0)
    reporter = PerformanceReport(monitor)

    text = reporter.export_report(reporter.generate_daily_report("2025-06-15"), "csv")

    assert "e-" not in text and "e+" not in text
    rows = {r["operation"]: r for r in _tables(text)[""]}
    assert rows["tiny"]["mean"] == "0.00005764"
    assert rows["huge"]["mean"] == "123500000"
    assert rows["huge"]["count"] == "1"


def test_export_csv_with_resources(monitor: PerformanceMonitor, clock: FakeClock) -> None:
    _record(monitor, clock, NOON, "op", 1.0)
    reporter = PerformanceReport(monitor, resource_monitor=FakeResourceMonitor())  # type: ignore[arg-type]

    tables = _tables(reporter.export_report(reporter.generate_daily_report("2025-06-15"), "csv"))

    [resources] = tables["Resources"]
    assert resources["cpu_percent"] == "95"
    assert resources["timestamp"].endswith("+00:00")
    [alert] = tables["Resource alerts"]
    assert alert == {
        "resource": "cpu",
        "usage": "95",
        "threshold": "80",
        "severity": "warning",
        "message": "CPU at 95%",
    }


def test_export_csv_of_session_and_comparison(
    monitor: PerformanceMonitor, clock: FakeClock
) -> None:
    _record(monitor, clock, NOON, "op", 1.0, session_id="s1")
    _record(monitor, clock, NOON + 1, "op", 3.0)
    reporter = PerformanceReport(monitor)
    session = reporter.generate_session_report("s1")
    comparison = reporter.compare_performance((NOON, NOON), (NOON + 1, NOON + 2))

    session_tables = _tables(reporter.export_report(session, "csv"))
    comparison_tables = _tables(reporter.export_report(comparison, "csv"))

    [op] = session_tables[""]
    assert (op["operation"], op["count"], op["total"]) == ("op", "1", "1")
    assert session_tables["Report"][0]["session_id"] == "s1"
    [change] = comparison_tables[""]
    assert change == {
        "operation": "op",
        "period1_mean": "1",
        "period1_count": "1",
        "period2_mean": "3",
        "period2_count": "1",
        "absolute": "2",
        "percentage": "200",
        "direction": "degraded",
        "unit": "seconds",
    }
    assert [p["period"] for p in comparison_tables["Periods"]] == ["period1", "period2"]
    assert comparison_tables["Report"][0]["summary_degraded"] == "1"


def test_export_csv_of_an_original_style_comparison(monitor: PerformanceMonitor) -> None:
    comparison = {
        "period1": {"op": {"mean": 2.0, "count": 1}, "gone": {"mean": 1.0, "count": 1}},
        "period2": {"op": {"mean": 1.0, "count": 2}},
        "changes": {"op": {"absolute": -1.0, "percentage": -50.0, "direction": "improved"}},
    }

    rows = _tables(PerformanceReport(monitor).export_report(comparison, "csv"))[""]

    assert [(r["operation"], r["direction"], r["period2_count"]) for r in rows] == [
        ("gone", "", "0"),
        ("op", "improved", "2"),
    ]


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_to_a_path(
    monitor: PerformanceMonitor, daily: dict[str, Any], tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / f"report.{fmt}"

    reporter = PerformanceReport(monitor)
    text = reporter.export_report(daily, format=fmt)

    assert reporter.export_report(daily, format=fmt, path=path) is None  # written, not returned
    assert path.read_text(encoding="utf-8") == text
    assert list(tmp_path.iterdir()) == [path]
    assert reporter.export_report(daily, fmt.upper(), str(path)) is None  # str path, overwrite
    assert path.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("fmt", ["xml", "pdf", "", "JSONL"])
def test_export_unknown_format(
    monitor: PerformanceMonitor, daily: dict[str, Any], tmp_path: Path, fmt: str
) -> None:
    with pytest.raises(ValueError, match="Unsupported format"):
        PerformanceReport(monitor).export_report(daily, format=fmt, path=tmp_path / "r")
    assert list(tmp_path.iterdir()) == []


def test_export_into_a_missing_folder(
    monitor: PerformanceMonitor, daily: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "missing" / "report.json"

    with pytest.raises(OSError) as caught:
        PerformanceReport(monitor).export_report(daily, path=path)

    assert isinstance(caught.value, FileNotFoundError)
    assert str(path) in str(caught.value)
