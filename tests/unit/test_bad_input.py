"""Bad input to the library: each case is refused with an error naming the argument (or the
setting), and what was recorded before it is left as it was.

The CLI's cases run as real processes in ``tests/integration/test_cli_bad_input.py``.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ptpd_calibration.monitoring import get_api_tracker, get_cache, get_monitor, get_store
from ptpd_calibration.monitoring._metadata import MAX_ITEMS, MAX_TEXT, TRUNCATED, copy_metadata
from ptpd_calibration.monitoring.api import APIPerformanceTracker
from ptpd_calibration.monitoring.monitor import PerformanceMonitor, write_text_atomically
from ptpd_calibration.monitoring.profiler import ImageProcessingProfiler
from ptpd_calibration.monitoring.settings import MonitoringSettings, SettingsError
from ptpd_calibration.monitoring.store import SampleStore

HUGE = 10**400  # past float's 1.8e308


class Unprintable:
    """An object whose str() and repr() raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    __repr__ = __str__


def _deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels):
        node["a"] = {}
        node = node["a"]
    return root


@pytest.fixture
def monitor() -> PerformanceMonitor:
    """A monitor holding two valid samples of "x" (seconds) before the bad input arrives."""
    monitor = PerformanceMonitor()
    monitor.record_metric("x", 1.0)
    monitor.record_metric("x", 2.0, metadata={"session_id": "s1"})
    return monitor


@pytest.fixture
def tracker() -> APIPerformanceTracker:
    tracker = APIPerformanceTracker()
    tracker.track_request("/x", 0.01, 200)
    return tracker


def _assert_monitor_intact(monitor: PerformanceMonitor) -> None:
    stats = monitor.get_statistics("x")
    assert (stats["count"], stats["min"], stats["max"], stats["unit"]) == (2, 1.0, 2.0, "seconds")
    assert [m.metadata for m in monitor.get_metrics("x")] == [{}, {"session_id": "s1"}]
    assert monitor.get_operation_names() == ["x"]


# -- 1. values too large for a float ------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [HUGE, -HUGE, Fraction(HUGE), 10**5000], ids=["int", "-int", "Fraction", "5000 digits"]
)
def test_record_metric_refuses_a_value_too_large_for_a_float(
    monitor: PerformanceMonitor, value: object
) -> None:
    with pytest.raises(ValueError, match=r"Metric 'x': value must be a finite number") as info:
        monitor.record_metric("x", value)  # type: ignore[arg-type]
    assert "too large for a float" in str(info.value)
    assert len(str(info.value)) < 200  # the number itself is not spelled out
    with pytest.raises(ValueError, match=r"Metric 'new': value must be a finite number"):
        monitor.record_metric("new", value)  # type: ignore[arg-type]
    _assert_monitor_intact(monitor)  # and no series "new" was started


@pytest.mark.parametrize("duration", [HUGE, Fraction(HUGE)], ids=["int", "Fraction"])
def test_track_request_refuses_a_duration_too_large_for_a_float(
    tracker: APIPerformanceTracker, duration: object
) -> None:
    with pytest.raises(ValueError, match=r"Endpoint '/x': duration_s must be a finite number"):
        tracker.track_request("/x", duration, 200)  # type: ignore[arg-type]
    assert tracker.get_endpoint_stats("/x")["count"] == 1


@pytest.mark.parametrize("status", [HUGE, 10**5000, -HUGE], ids=["huge", "5000 digits", "-huge"])
def test_track_request_refuses_a_huge_status(tracker: APIPerformanceTracker, status: int) -> None:
    with pytest.raises(ValueError, match=r"Endpoint '/x': status must be an HTTP status") as info:
        tracker.track_request("/x", 0.01, status)
    assert len(str(info.value)) <= 100 + MAX_TEXT  # the repr is cut, and never fails
    assert tracker.get_endpoint_stats("/x")["count"] == 1


# -- 2. settings --------------------------------------------------------------------------------

FLOAT_SETTINGS = [
    name for name, field in MonitoringSettings.model_fields.items() if field.annotation is float
]


def test_every_float_setting_is_covered() -> None:
    assert len(FLOAT_SETTINGS) >= 8 and "CACHE_TTL" in FLOAT_SETTINGS


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity", "NaN"])
@pytest.mark.parametrize("name", FLOAT_SETTINGS)
def test_float_settings_refuse_inf_and_nan(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"PTPD_MONITORING_{name}", value)
    with pytest.raises(SettingsError, match=f"PTPD_MONITORING_{name}=.*finite number"):
        get_monitor()


def test_an_infinite_store_size_limit_is_a_settings_error_not_an_overflow(
    monkeypatch: pytest.MonkeyPatch, isolated_monitoring_env: Path
) -> None:
    for value in ("inf", "1e300"):
        monkeypatch.setenv("PTPD_MONITORING_STORE_SIZE_LIMIT_MB", value)
        with pytest.raises(ValueError, match="PTPD_MONITORING_STORE_SIZE_LIMIT_MB="):
            get_monitor()
        with pytest.raises(ValueError, match="PTPD_MONITORING_STORE_SIZE_LIMIT_MB="):
            get_store()
    assert not isolated_monitoring_env.exists()
    monkeypatch.setenv("PTPD_MONITORING_STORE_SIZE_LIMIT_MB", "1e9")  # the largest allowed
    get_monitor().record_metric("x", 1.0)
    assert get_monitor().get_statistics("x")["count"] == 1


def test_an_infinite_cache_ttl_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTPD_MONITORING_CACHE_TTL", "inf")
    with pytest.raises(SettingsError, match="PTPD_MONITORING_CACHE_TTL='inf'"):
        get_cache()


@pytest.mark.parametrize("value", ["", " ", "\t"], ids=repr)
@pytest.mark.parametrize("name", ["STORE_DIR", "DISK_PATH"])
def test_path_settings_refuse_empty_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(f"PTPD_MONITORING_{name}", value)
    with pytest.raises(SettingsError, match=f"PTPD_MONITORING_{name}=.*must not be empty"):
        get_monitor()
    with pytest.raises(SettingsError, match=f"PTPD_MONITORING_{name}="):
        get_api_tracker()
    assert list(tmp_path.iterdir()) == []  # no store in the working folder


def test_settings_refuse_inf_from_a_dotenv_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PTPD_MONITORING_RETENTION_DAYS=inf\n")
    with pytest.raises(SettingsError, match="PTPD_MONITORING_RETENTION_DAYS='inf'"):
        get_monitor()


# -- 3. units -----------------------------------------------------------------------------------

BAD_UNITS = [None, 123, ["ms"], "", " ", "ms\n", "a" * 33, "milli seconds", "1/s", b"ms"]
GOOD_UNITS = [
    "seconds", "s", "ms", "milliseconds", "µs", "bytes", "MB", "MiB", "GB", "%", "percent",
    "count", "pixels", "px/s", "MB/s", "°C", "W", "pid", "requests_per_s", "a" * 32,
]  # fmt: skip


@pytest.mark.parametrize("unit", BAD_UNITS, ids=repr)
def test_record_metric_refuses_a_bad_unit(monitor: PerformanceMonitor, unit: object) -> None:
    with pytest.raises(ValueError, match=r"Metric 'new': unit must be a short name"):
        monitor.record_metric("new", 1.0, unit=unit)  # type: ignore[arg-type]
    # On an existing series the unit is named too, rather than reported as a mismatch.
    with pytest.raises(ValueError, match=r"Metric 'x': unit must be a short name"):
        monitor.record_metric("x", 1.0, unit=unit)  # type: ignore[arg-type]
    _assert_monitor_intact(monitor)
    json.loads(monitor.export_metrics("json"))  # the export of the whole monitor still works
    monitor.export_metrics("csv")


@pytest.mark.parametrize("unit", GOOD_UNITS)
def test_record_metric_accepts_the_usual_units(unit: str) -> None:
    monitor = PerformanceMonitor()
    monitor.record_metric("v", 1.5, unit=unit)
    monitor.record_metric("v", 2.5, unit=unit)
    assert monitor.get_unit("v") == unit
    assert monitor.get_statistics("v")["count"] == 2
    assert json.loads(monitor.export_metrics("json"))


def test_refused_units_never_reach_the_store_and_its_export_works(tmp_path: Path) -> None:
    store = SampleStore(tmp_path / "store")
    monitor = PerformanceMonitor(store=store)
    monitor.record_metric("memory", 12.0, unit="MB")
    for unit in BAD_UNITS:
        with pytest.raises(ValueError, match="unit"):
            monitor.record_metric("bad", 1.0, unit=unit)  # type: ignore[arg-type]
    monitor.flush()

    loaded = store.load_monitor()
    assert loaded.get_operation_names() == ["memory"]
    exported = json.loads(loaded.export_metrics("json"))
    assert "memory" in json.dumps(exported)
    assert store.error_count == 0


# -- 4. metadata --------------------------------------------------------------------------------


def test_record_metric_keeps_a_copy_of_the_metadata(monitor: PerformanceMonitor) -> None:
    meta: dict[str, Any] = {"session_id": "s2", "size": [100, 200], "opts": {"dpi": 300}}
    monitor.record_metric("x", 3.0, metadata=meta)
    meta["session_id"] = "changed"
    meta["size"].append(300)
    meta["opts"]["dpi"] = 1
    meta["new"] = True

    stored = monitor.get_metrics("x")[-1].metadata
    assert stored == {"session_id": "s2", "size": [100, 200], "opts": {"dpi": 300}}


def test_every_entry_point_copies_the_metadata() -> None:
    monitor = PerformanceMonitor()
    tracker = APIPerformanceTracker()
    profiler = ImageProcessingProfiler(monitor)
    meta: dict[str, Any] = {"k": "before", "list": [1]}

    with monitor.timer("timed", meta):
        pass
    monitor.start_timer("stopped")
    monitor.stop_timer("stopped", meta)
    monitor.record_metric("recorded", 1.0, metadata=meta)
    with tracker.track("/tracked", metadata=meta):
        pass
    tracker.track_request("/requested", 0.01, 200, metadata=meta)
    profile = {"operation": "op", "success": False, "wall_time_s": 0.1, "meta": meta}
    profiler.record_profile(profile)
    meta["k"] = "after"
    meta["list"].append(2)
    profile["operation"] = "changed"

    for name in ("timed", "stopped", "recorded"):
        assert monitor.get_metrics(name)[0].metadata == {"k": "before", "list": [1]}, name
    for endpoint in ("/tracked", "/requested"):
        assert tracker.get_requests(endpoint)[0].metadata == {"k": "before", "list": [1]}
    kept = profiler.get_profiles()[0]
    assert kept["operation"] == "op" and kept["meta"] == {"k": "before", "list": "[1]"}


def test_a_timer_copies_its_metadata_when_the_block_ends() -> None:
    monitor = PerformanceMonitor()
    meta: dict[str, Any] = {}
    with monitor.timer("op", meta):
        meta["rows"] = 42  # filled in by the block: recorded
    meta["rows"] = 0  # after the block: not recorded
    assert monitor.get_metrics("op")[0].metadata == {"rows": 42}


@pytest.mark.parametrize("bad", [["a"], "text", 5, ("k", "v")], ids=repr)
def test_metadata_that_is_not_a_dict_is_refused_everywhere(
    monitor: PerformanceMonitor, tracker: APIPerformanceTracker, bad: Any
) -> None:
    profiler = ImageProcessingProfiler(monitor)
    calls: list[tuple[str, Callable[[], object]]] = [
        ("Metric 'x': metadata", lambda: monitor.record_metric("x", 1.0, metadata=bad)),
        ("Metric 'x': metadata", lambda: monitor.timer("x", bad)),
        ("Metric 'x': metadata", lambda: monitor.stop_timer("x", bad)),
        ("Endpoint '/x': metadata", lambda: tracker.track("/x", metadata=bad)),
        ("Endpoint '/x': metadata", lambda: tracker.track_request("/x", 0.01, 200, metadata=bad)),
        ("profile", lambda: profiler.record_profile(bad)),
    ]
    for argument, call in calls:
        with pytest.raises(ValueError, match=f"^{re.escape(argument)} must be a dict, got "):
            call()
    _assert_monitor_intact(monitor)
    assert tracker.get_endpoint_stats("/x")["count"] == 1
    assert profiler.get_profiles() == []


def test_unencodable_metadata_is_recorded_and_flushed(tmp_path: Path) -> None:
    store = SampleStore(tmp_path / "store")
    monitor = PerformanceMonitor(store=store)
    tracker = APIPerformanceTracker(store=store)
    monitor.record_metric("op", 1.0)
    monitor.record_metric("op", 2.0, metadata={"deep": _deep(5000)})
    monitor.record_metric("op", 3.0, metadata={"bad": Unprintable(), Unprintable(): 1})
    tracker.track_request("/x", 0.01, 200, metadata={"deep": _deep(5000), "bad": Unprintable()})

    monitor.flush()
    tracker.flush()

    assert store.error_count == 0, store.last_error
    loaded = store.load_monitor()
    assert loaded.get_statistics("op")["count"] == 3
    assert [m.metadata for m in loaded.get_metrics("op")] == [
        {},
        {"deep": {"a": "<unprintable dict>"}},
        {"bad": "<unprintable Unprintable>", "<unprintable Unprintable>": 1},
    ]
    (request,) = store.load_api_tracker().get_requests("/x")
    assert request.metadata == {
        "deep": {"a": "<unprintable dict>"},
        "bad": "<unprintable Unprintable>",
    }


class Color(enum.IntEnum):
    RED = 1


class Shouting(str):
    def __str__(self) -> str:
        return "SHOUT"


def test_the_metadata_rule() -> None:
    many = {f"k{i}": i for i in range(MAX_ITEMS + 6)}
    source: dict[Any, Any] = {
        "none": None,
        "bool": True,
        "int": 7,
        "float": 0.5,
        "inf": math.inf,
        "nan": np.float32("nan"),
        "huge": HUGE,
        "enormous": 10**5000,
        "np_int": np.int64(3),
        "np_bool": np.bool_(True),
        "np_float": np.float32(0.25),
        "enum": Color.RED,
        "str_subclass": Shouting("quiet"),
        "long": "x" * (MAX_TEXT + 10),
        "k" * (MAX_TEXT + 10): "long key",
        "tuple": (1, "a", (2, 3)),
        "list": list(range(MAX_ITEMS + 5)),
        "nested": {"deeper": {"x": 1}, 2: [3]},
        "set": {1},
        "bytes": b"ab",
        "object": Unprintable(),
        (1, 2): "tuple key",
        3: "int key",
    }

    copy = copy_metadata(source, "Metric", "op")

    json.dumps(copy, allow_nan=False)  # plain JSON: no default=, no NaN
    assert copy["none"] is None and copy["bool"] is True
    assert (copy["int"], copy["float"]) == (7, 0.5)
    assert (copy["inf"], copy["nan"]) == ("inf", "nan")
    assert copy["huge"] == str(HUGE)  # 401 characters
    assert copy["enormous"] == "<unprintable int>"  # str() refuses 5,000 digits
    assert (copy["np_int"], copy["np_bool"], copy["np_float"]) == (3, True, 0.25)
    assert type(copy["np_int"]) is int and type(copy["np_bool"]) is bool
    assert copy["enum"] == 1 and type(copy["enum"]) is int
    assert copy["str_subclass"] == "quiet" and type(copy["str_subclass"]) is str
    assert len(copy["long"]) == MAX_TEXT and copy["long"].endswith("…")
    assert copy["k" * (MAX_TEXT - 1) + "…"] == "long key"
    assert copy["tuple"] == [1, "a", "(2, 3)"]
    assert copy["list"][:MAX_ITEMS] == list(range(MAX_ITEMS))
    assert copy["list"][MAX_ITEMS:] == [f"{TRUNCATED} 5 items"]
    assert copy["nested"] == {"deeper": "{'x': 1}", "2": "[3]"}
    assert (copy["set"], copy["bytes"]) == ("{1}", "b'ab'")
    assert copy["object"] == "<unprintable Unprintable>"
    assert copy["(1, 2)"] == "tuple key" and copy["3"] == "int key"

    capped = copy_metadata(many, "Metric", "op")
    assert len(capped) == MAX_ITEMS + 1 and capped[TRUNCATED] == 6
    assert list(capped)[:MAX_ITEMS] == [f"k{i}" for i in range(MAX_ITEMS)]


def test_no_metadata_and_empty_metadata_both_record_an_empty_dict(
    monitor: PerformanceMonitor,
) -> None:
    monitor.record_metric("x", 3.0)
    monitor.record_metric("x", 4.0, metadata={})
    assert [m.metadata for m in monitor.get_metrics("x")][2:] == [{}, {}]


# -- 5. writing to a folder ---------------------------------------------------------------------


def test_writing_to_a_folder_is_a_clear_error(monitor: PerformanceMonitor, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")

    with pytest.raises(IsADirectoryError, match=f"Cannot write {folder}: it is a folder"):
        write_text_atomically("text", folder)
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        monitor.export_metrics("json", output_path=folder)

    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]  # no temporary file left
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    _assert_monitor_intact(monitor)
