"""Unit tests for watches (``ptpd_calibration.monitoring.watches``).

Every evaluation runs at an explicit ``now`` over samples written with fixed timestamps into a
store under ``tmp_path``: the clock never decides a result.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ptpd_calibration.monitoring import (
    PerformanceMonitor,
    SettingsError,
    Watch,
    WatchError,
    evaluate_watches,
    get_monitor,
    watch_history,
)
from ptpd_calibration.monitoring.settings import load_settings
from ptpd_calibration.monitoring.store import API, EVENT, METRIC, ColumnBatch, SampleStore
from ptpd_calibration.monitoring.watches import (
    WATCH_EVENTS,
    WatchResult,
    active_watches,
    clear_registered_watches,
    default_watches,
    evaluate,
    firing_alerts,
    load_watches,
    parse_duration,
    parse_watch,
    parse_watches_json,
    parse_watches_toml,
    register_watch,
    registered_watches,
    unregister_watch,
)

NOW = 1_700_000_000.0  # a fixed epoch: sample times are data, not the clock
HOUR, DAY = 3600.0, 86400.0


@pytest.fixture(autouse=True)
def _no_registered_watches() -> Iterator[None]:
    clear_registered_watches()
    yield
    clear_registered_watches()


@pytest.fixture
def store(tmp_path: Path) -> SampleStore:
    return SampleStore(tmp_path / "store")


def put(
    store: SampleStore,
    series: str,
    ts: Any,
    values: Any,
    unit: str = "seconds",
    meta: dict[int, dict[str, Any]] | None = None,
) -> None:
    batch = ColumnBatch(
        METRIC, series, (np.asarray(ts, float), np.asarray(values, float)), unit, meta
    )
    assert store.write([batch])


def requests(store: SampleStore, series: str, ts: Any, ms: Any, status: Any) -> None:
    columns = tuple(np.asarray(c, float) for c in (ts, ms, status))
    assert store.write([ColumnBatch(API, series, columns, "ms")])


def burst(end: float, count: int, span: float = 30.0) -> np.ndarray:
    """``count`` timestamps in the ``span`` seconds before ``end`` (one stored batch)."""
    return np.linspace(end - span, end - 1.0, count)


def week_of(store: SampleStore, series: str, seconds: float, per_hour: int = 60) -> int:
    """A steady baseline: ``per_hour`` samples near ``seconds`` in each hour of the 7 days
    before the last hour; returns how many samples."""
    rng = np.random.default_rng(7)
    total = 0
    for hour in range(2, 24 * 7 + 1):
        ts = burst(NOW - hour * HOUR + 600, per_hour)
        put(store, series, ts, rng.normal(seconds, seconds * 0.05, per_hour))
        total += per_hour
    return total


def last_hour(store: SampleStore, series: str, seconds: float, count: int = 60) -> np.ndarray:
    values = np.random.default_rng(11).normal(seconds, seconds * 0.05, count)
    put(store, series, burst(NOW - 600, count), values)
    return values


def only(results: Sequence[WatchResult]) -> WatchResult:
    assert len(results) == 1, results
    return results[0]


def judge(store: SampleStore, now: float = NOW, **rule: Any) -> WatchResult:
    return only(evaluate(store, [parse_watch(rule)], now=now, record=False))


# -- parsing and validation ---------------------------------------------------------------------


def test_a_watch_has_the_documented_defaults() -> None:
    watch = parse_watch({"target": "curve.fit", "stat": "p95", "above_ms": 250})

    assert watch.name == "curve.fit:p95>250ms"
    assert (watch.kind, watch.window, watch.for_s, watch.severity) == (
        "operation",
        300.0,
        0.0,
        "warning",
    )
    assert (watch.min_samples, watch.builtin, watch.baseline, watch.factor) == (
        1,
        False,
        None,
        None,
    )


def test_a_baseline_watch_defaults_to_the_last_hour_50_samples_and_1_5x() -> None:
    watch = parse_watch({"target": "curve.fit", "baseline": "7d"})

    assert (watch.window, watch.baseline, watch.factor, watch.min_samples) == (
        HOUR,
        7 * DAY,
        1.5,
        50,
    )
    assert watch.name == "curve.fit:p95>1.5x7d"


def test_an_endpoint_is_recognised_and_its_method_upper_cased() -> None:
    watch = parse_watch({"target": "get /api/curves", "stat": "error_rate", "above": 0.05})

    assert (watch.kind, watch.target, watch.method, watch.path) == (
        "endpoint",
        "GET /api/curves",
        "GET",
        "/api/curves",
    )
    every_method = parse_watch({"target": "/api/curves", "kind": "endpoint", "above": 300})
    assert (every_method.method, every_method.path) == (None, "/api/curves")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        (2.5, 2.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("7d", 604800.0),
        ("1w", 604800.0),
        (" 1.5 H ", 5400.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5x", "", "m5", "1h 2", "-5m", True, None, float("nan"), [1]])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="must be a duration"):
        parse_duration(bad, "window")


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            {"name": "curve-fit-p95", "target": "curve.fit", "window": "5x", "above": 1},
            "watch 'curve-fit-p95': window must be a duration",
        ),
        ({"target": "curve.fit", "stat": "p90", "above": 1}, "stat must be one of p50, p95"),
        ({"target": "curve.fit", "abov": 1}, "unknown field 'abov'"),
        ({"stat": "p95", "above": 1}, "watch (unnamed): target is required"),
        ({"target": "", "above": 1}, "target must be a non-empty"),
        ({"target": "x"}, "watch 'x:p95': needs a threshold, above"),
        ({"target": "x", "above": 1, "baseline": "7d"}, "a threshold (above) or a baseline"),
        ({"target": "x", "above": 1, "above_ms": 1}, "above or above_ms, not both"),
        ({"target": "x", "stat": "error_rate", "above": 5}, "fraction: above must be under 1"),
        ({"target": "x", "stat": "count_per_min", "above_ms": 5}, "above_ms is for timings"),
        ({"target": "x", "baseline": "10m"}, "baseline (10m) must be at least the window (1h)"),
        ({"target": "x", "baseline": "7d", "factor": 1}, "factor must be above 1"),
        ({"target": "x", "above": 1, "factor": 2}, "factor goes with a baseline"),
        ({"target": "x", "above": True}, "above must be a number"),
        ({"target": "x", "above": "250ms"}, "above must be a number"),
        ({"target": "x", "above": -1}, "above must not be negative"),
        ({"target": "x", "above": 1, "min_samples": 2.5}, "min_samples must be a whole number"),
        ({"target": "x", "above": 1, "severity": "fatal"}, "severity must be one of warning"),
        ({"target": "x", "above": 1, "kind": "job"}, "kind must be one of operation, endpoint"),
        ({"target": "x", "above": 1, "window": "400d"}, "between 1 second and 366 days"),
        ({"target": "x", "above": 1, "for_s": "soon"}, "for_s must be a duration"),
        ({"target": "x", "above": 1, "name": "a\nb"}, "without line breaks"),
        ({"target": "x", "above": 1, "builtin": True}, "builtin is reserved"),
        (["x"], "must be a table of fields"),
    ],
)
def test_validation_errors_name_the_rule_and_the_problem(rule: object, expected: str) -> None:
    with pytest.raises(WatchError) as caught:
        parse_watch(rule, "watches.toml")

    message = str(caught.value)
    assert message.startswith("watches.toml: watch ")
    assert expected in message
    assert "\n" not in message
    assert isinstance(caught.value, ValueError)  # `except ValueError` keeps working


def test_json_watches_parse_and_their_errors_name_the_variable() -> None:
    text = json.dumps(
        [
            {"target": "curve.fit", "stat": "p95", "above_ms": 250},
            {"target": "GET /api/curves", "stat": "error_rate", "above": 0.05, "window": "10m"},
        ]
    )
    watches = parse_watches_json(text)
    assert [w.name for w in watches] == ["curve.fit:p95>250ms", "GET /api/curves:error_rate>0.05"]
    assert watches[1].window == 600.0
    # one object is one watch; nothing is none
    assert len(parse_watches_json('{"target": "x", "above": 1}')) == 1
    assert parse_watches_json("  ") == []

    with pytest.raises(WatchError, match=r"^PTPD_MONITORING_WATCHES: not valid JSON"):
        parse_watches_json("[{target: x}]")
    with pytest.raises(WatchError, match="must be a list of tables"):
        parse_watches_json('"curve.fit"')
    with pytest.raises(WatchError, match=r"watch #2: target is required"):
        parse_watches_json('[{"target": "x", "above": 1}, {"above": 2}]')
    with pytest.raises(WatchError, match="watch 'x:p95>1' is defined twice"):
        parse_watches_json('[{"target": "x", "above": 1}, {"target": "x", "above": 1}]')


def test_toml_watches_parse(tmp_path: Path) -> None:
    path = tmp_path / "watches.toml"
    path.write_text(
        """
[[watch]]
name = "curve-fit-p95"
target = "curve.fit"
stat = "p95"
above_ms = 250
window = "5m"
for_s = "10m"
severity = "critical"

[[watch]]
target = "POST /api/negatives"
stat = "error_rate"
above = 0.05
""",
        encoding="utf-8",
    )

    first, second = parse_watches_toml(path)

    assert (first.name, first.above_ms, first.window, first.for_s, first.severity) == (
        "curve-fit-p95",
        250.0,
        300.0,
        600.0,
        "critical",
    )
    assert (second.kind, second.stat, second.above) == ("endpoint", "error_rate", 0.05)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[[watch]\ntarget = 1", "not valid TOML"),
        ('[[watches]]\ntarget = "x"', "unknown top-level key(s) watches"),
        ('[[watch]]\nname = "slow"\ntarget = "x"\nabove = "a lot"', "watch 'slow': above must"),
        ('watch = "x"', "watches must be a list of tables"),
    ],
)
def test_toml_errors_name_the_file_and_the_rule(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "watches.toml"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(WatchError) as caught:
        parse_watches_toml(path)

    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_a_missing_watches_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(WatchError, match="no such watches file"):
        parse_watches_toml(tmp_path / "absent.toml")
    with pytest.raises(WatchError, match="is a folder"):
        parse_watches_toml(tmp_path)


def test_a_bad_json_rule_is_named_where_it_is_judged_and_never_stops_the_app() -> None:
    good = load_settings(WATCHES='[{"target": "curve.fit", "above_ms": 250}]')
    assert [w.name for w in load_watches(good)] == ["curve.fit:p95>250ms"]
    # given in Python, the same rules
    assert load_settings(WATCHES=[{"target": "x", "above": 1}]).WATCHES == (
        '[{"target": "x", "above": 1}]'
    )

    bad = load_settings(WATCHES='[{"name": "slow-fit", "target": "curve.fit", "window": "5x"}]')
    with pytest.raises(WatchError) as caught:
        load_watches(bad)

    assert str(caught.value).startswith(
        "PTPD_MONITORING_WATCHES: watch 'slow-fit': window must be a duration"
    )


def test_settings_read_the_watch_variables_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PTPD_MONITORING_WATCHES", '[{"target": "x", "above": 1}]')
    monkeypatch.setenv("PTPD_MONITORING_WATCHES_FILE", "~/watches.toml")
    monkeypatch.setenv("PTPD_MONITORING_DEFAULT_WATCHES", "false")

    settings = load_settings()

    assert Path.home() / "watches.toml" == settings.WATCHES_FILE
    assert settings.DEFAULT_WATCHES is False
    monkeypatch.setenv("PTPD_MONITORING_WATCHES_FILE", " ")
    with pytest.raises(SettingsError, match=r"PTPD_MONITORING_WATCHES_FILE=' ': .*not be empty"):
        load_settings()


def test_the_defaults_need_no_configuration() -> None:
    settings = load_settings()
    assert (settings.WATCHES, settings.WATCHES_FILE, settings.DEFAULT_WATCHES) == ("", None, True)


# -- watches declared in Python -----------------------------------------------------------------


def test_monitor_watch_returns_the_watch_and_registers_it_process_wide() -> None:
    watch = get_monitor().watch("curve.fit", "p95", above_ms=250)

    assert isinstance(watch, Watch)
    assert (watch.target, watch.stat, watch.above_ms) == ("curve.fit", "p95", 250.0)
    assert registered_watches() == [watch]
    # another monitor, the same process: the same registry; a name declared again replaces
    again = PerformanceMonitor().watch("curve.fit", "p95", above_ms=300, name=watch.name)
    assert registered_watches() == [again]
    assert unregister_watch(watch.name)
    assert registered_watches() == []


def test_monitor_watch_refuses_a_bad_rule_naming_it() -> None:
    with pytest.raises(WatchError, match=r"watch 'curve\.fit:p95': window must be a duration"):
        get_monitor().watch("curve.fit", "p95", above_ms=250, window="soon")
    with pytest.raises(ValueError, match="watch 'fit': stat must be one of"):
        get_monitor().watch("curve.fit", "p90", above=1, name="fit")
    assert registered_watches() == []


def test_a_configured_watch_replaces_a_registered_one_of_the_same_name(tmp_path: Path) -> None:
    register_watch(parse_watch({"name": "fit", "target": "curve.fit", "above_ms": 100}))
    register_watch(parse_watch({"name": "other", "target": "x", "above": 1}))
    path = tmp_path / "w.toml"
    path.write_text('[[watch]]\nname = "fit"\ntarget = "curve.fit"\nabove_ms = 900\n')

    watches = load_watches(load_settings(), files=[path])

    assert [(w.name, w.above_ms) for w in watches] == [("other", None), ("fit", 900.0)]
    assert [w.name for w in load_watches(load_settings(), files=[], registered=False)] == []


def test_two_configured_watches_may_not_share_a_name(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text('[[watch]]\nname = "fit"\ntarget = "curve.fit"\nabove_ms = 900\n')
    settings = load_settings(WATCHES='[{"name": "fit", "target": "x", "above": 1}]')

    with pytest.raises(WatchError, match="watch 'fit' is defined twice"):
        load_watches(settings, files=[path])


# -- each statistic against a fixed threshold -------------------------------------------------


def test_percentiles_and_mean_are_exact_and_fire_strictly_above(store: SampleStore) -> None:
    values = np.arange(1, 101) / 1000.0  # 1 ms .. 100 ms
    put(store, "curve.fit", burst(NOW - 10, 100), values)

    for stat, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        result = judge(store, target="curve.fit", stat=stat, above=0.001)
        assert result.value == pytest.approx(np.percentile(values, q), abs=0)
        assert result.samples == 100
    mean = judge(store, target="curve.fit", stat="mean", above=0.001)
    assert mean.value == pytest.approx(values.mean())

    p95 = float(np.percentile(values, 95))
    at = judge(store, target="curve.fit", stat="p95", above=p95)
    assert (at.status, at.firing) == ("ok", False)  # equal is not above
    over = judge(store, target="curve.fit", stat="p95", above=p95 - 1e-9)
    assert (over.status, over.firing, over.threshold) == ("firing", True, p95 - 1e-9)
    assert over.message.startswith("curve.fit p95 over the last 5m is 95")
    assert "(100 samples), above the 95" in over.message


def test_above_ms_follows_the_series_unit(store: SampleStore) -> None:
    put(store, "fit.s", burst(NOW - 10, 10), [0.3] * 10)  # seconds
    put(store, "fit.ms", burst(NOW - 10, 10), [300.0] * 10, unit="ms")
    put(store, "speed", burst(NOW - 10, 10), [300.0] * 10, unit="px/s")

    seconds = judge(store, target="fit.s", above_ms=250)
    millis = judge(store, target="fit.ms", above_ms=250)
    assert (seconds.firing, seconds.threshold, seconds.unit) == (True, 0.25, "seconds")
    assert (millis.firing, millis.threshold, millis.unit) == (True, 250.0, "ms")
    assert "300 ms" in seconds.message and "250 ms threshold" in millis.message

    wrong = judge(store, target="speed", above_ms=250)
    assert (wrong.status, wrong.firing) == ("invalid", False)
    assert "recorded in 'px/s', not a time" in wrong.message
    # a plain `above` is in the series' own unit
    assert judge(store, target="speed", above=299).firing


def test_error_rate_of_an_operation_counts_the_samples_that_raised(store: SampleStore) -> None:
    meta = {i: {"error": "ValueError"} for i in range(0, 20, 4)}  # 5 of 20
    put(store, "curve.fit", burst(NOW - 10, 20), [0.1] * 20, meta=meta)

    result = judge(store, target="curve.fit", stat="error_rate", above=0.2)

    assert (result.value, result.firing) == (0.25, True)
    assert "25.00%" in result.message
    assert not judge(store, target="curve.fit", stat="error_rate", above=0.25).firing


def test_endpoints_error_rate_and_latency_by_method_or_for_every_method(
    store: SampleStore,
) -> None:
    requests(store, "GET /api/curves", burst(NOW - 10, 10), [100.0] * 10, [200] * 9 + [500])
    requests(store, "POST /api/curves", burst(NOW - 10, 10), [400.0] * 10, [404] * 5 + [201] * 5)
    requests(store, "GET /api/other", burst(NOW - 10, 10), [900.0] * 10, [500] * 10)

    get = judge(store, target="GET /api/curves", stat="error_rate", above=0.05)
    assert (get.value, get.samples, get.firing) == (0.1, 10, True)
    every = judge(store, target="/api/curves", kind="endpoint", stat="error_rate", above=0.05)
    assert (every.value, every.samples) == (0.3, 20)
    latency = judge(store, target="GET /api/curves", stat="p95", above=250)
    assert (latency.unit, latency.value, latency.firing) == ("ms", 100.0, False)
    assert judge(store, target="POST /api/curves", stat="p50", above_ms=250).firing


def test_count_per_min_counts_in_the_window_even_without_samples(store: SampleStore) -> None:
    put(store, "curve.fit", burst(NOW - 10, 30), [0.1] * 30)
    put(store, "curve.fit", burst(NOW - 400, 30), [0.1] * 30)  # before the 5 minutes

    busy = judge(store, target="curve.fit", stat="count_per_min", above=5)
    assert (busy.value, busy.samples, busy.firing) == (6.0, 30, True)  # 30 in 5 minutes
    quiet = judge(store, target="nothing.yet", stat="count_per_min", above=5)
    assert (quiet.status, quiet.value) == ("ok", 0.0)


def test_a_threshold_watch_needs_its_min_samples(store: SampleStore) -> None:
    put(store, "curve.fit", burst(NOW - 10, 3), [1.0] * 3)

    few = judge(store, target="curve.fit", above_ms=250, min_samples=5)
    assert (few.status, few.firing, few.samples) == ("insufficient", False, 3)
    assert "3 samples over the last 5m, fewer than the 5" in few.message
    assert judge(store, target="curve.fit", above_ms=250).firing  # default: 1 sample
    absent = judge(store, target="not.recorded", above_ms=250)
    assert (absent.status, absent.value, absent.samples) == ("insufficient", None, 0)


def test_the_window_ends_at_now_and_spans_window_seconds(store: SampleStore) -> None:
    put(store, "curve.fit", burst(NOW - 3000, 10), [1.0] * 10)  # 50 minutes ago

    assert not judge(store, target="curve.fit", above_ms=250, window="5m").firing
    assert judge(store, target="curve.fit", above_ms=250, window="1h").firing
    # evaluated as of a past moment, later samples are not seen
    assert not judge(store, NOW - 3600, target="curve.fit", above_ms=250, window="1h").firing


# -- baselines ---------------------------------------------------------------------------------


def test_a_baseline_watch_fires_on_a_regression_and_not_on_noise(store: SampleStore) -> None:
    history = week_of(store, "curve.fit", 0.1)
    week_of(store, "steady", 0.1)
    last_hour(store, "curve.fit", 0.3)
    last_hour(store, "steady", 0.105)

    slower = judge(store, target="curve.fit", baseline="7d")
    steady = judge(store, target="steady", baseline="7d")

    assert (slower.status, slower.samples, slower.baseline_samples) == ("firing", 60, history)
    assert slower.baseline == pytest.approx(0.108, rel=0.05)
    assert slower.threshold == pytest.approx(1.5 * slower.baseline)
    assert slower.value is not None and slower.ratio == pytest.approx(slower.value / 0.108, 0.1)
    assert "its p95 over the previous 7d" in slower.message
    assert "above 1.5×" in slower.message
    assert (steady.status, steady.firing) == ("ok", False)
    assert "not above 1.5×" in steady.message


def test_a_quiet_window_alerts_on_nothing(store: SampleStore) -> None:
    week_of(store, "curve.fit", 0.1)
    last_hour(store, "curve.fit", 5.0, count=49)  # very slow, but 49 samples

    result = judge(store, target="curve.fit", baseline="7d")

    assert (result.status, result.firing, result.samples) == ("insufficient", False, 49)
    assert result.baseline is None and result.baseline_samples is None  # never read
    assert "49 samples over the last 1h, fewer than the 50" in result.message


def test_a_short_history_alerts_on_nothing(store: SampleStore) -> None:
    put(store, "curve.fit", burst(NOW - 2 * HOUR, 49), [0.1] * 49)  # 49 in the baseline
    last_hour(store, "curve.fit", 5.0)

    result = judge(store, target="curve.fit", baseline="7d")

    assert (result.status, result.baseline_samples) == ("insufficient", 49)
    assert "49 samples in the previous 7d (the baseline), fewer than the 50" in result.message
    assert judge(store, target="curve.fit", baseline="7d", min_samples=40).firing


def test_the_baseline_is_the_period_before_the_window_only(store: SampleStore) -> None:
    # slow samples inside the window must not raise the baseline; old ones past 7 days don't count
    put(store, "curve.fit", burst(NOW - 2 * HOUR, 50), [0.1] * 50)
    put(store, "curve.fit", burst(NOW - 8 * DAY, 50), [10.0] * 50)
    put(store, "curve.fit", burst(NOW - 600, 50), [0.2] * 50)

    result = judge(store, target="curve.fit", baseline="7d")

    assert (result.baseline, result.baseline_samples, result.value) == (0.1, 50, 0.2)
    assert result.firing


def test_a_baseline_of_other_statistics(store: SampleStore) -> None:
    requests(store, "GET /api/x", burst(NOW - 2 * HOUR, 100), [10.0] * 100, [200] * 98 + [500] * 2)
    requests(store, "GET /api/x", burst(NOW - 600, 100), [10.0] * 100, [200] * 90 + [500] * 10)

    errors = judge(store, target="GET /api/x", stat="error_rate", baseline="1d")
    rate = judge(store, target="GET /api/x", stat="count_per_min", baseline="1d")

    assert (errors.baseline, errors.value, errors.firing) == (0.02, 0.1, True)
    assert rate.baseline == pytest.approx(100 / (24 * 60))  # over the whole baseline period
    assert rate.firing


# -- for_s: a minimum duration -----------------------------------------------------------------


def test_for_s_fires_only_when_the_condition_held_throughout(store: SampleStore) -> None:
    # slow for the last 12 minutes: a sample every 10 s
    put(store, "held", np.arange(NOW - 720, NOW + 1, 10.0), [0.5] * 73)
    # slow only for the last 3 minutes, fast before
    put(store, "recent", np.arange(NOW - 720, NOW - 180, 10.0), [0.1] * 54)
    put(store, "recent", np.arange(NOW - 180, NOW + 1, 10.0), [0.5] * 19)

    rule = {"stat": "p50", "above_ms": 250, "window": "1m", "for_s": "10m"}
    held = judge(store, target="held", **rule)
    recent = judge(store, target="recent", **rule)
    without = judge(store, target="recent", **{**rule, "for_s": 0})

    assert (held.status, held.firing) == ("firing", True)
    assert "throughout the last 10m" in held.message
    assert (recent.status, recent.firing) == ("pending", False)
    assert "not yet throughout the last 10m" in recent.message
    assert without.firing


def test_for_s_counts_a_gap_without_samples_as_not_holding(store: SampleStore) -> None:
    put(store, "gappy", np.arange(NOW - 720, NOW - 400, 10.0), [0.5] * 32)
    put(store, "gappy", np.arange(NOW - 200, NOW + 1, 10.0), [0.5] * 21)

    result = judge(store, target="gappy", stat="p50", above_ms=250, window="1m", for_s="10m")

    assert result.status == "pending"


def test_with_for_s_the_baseline_ends_where_the_earliest_window_starts(
    store: SampleStore,
) -> None:
    normal = np.arange(NOW - 6 * HOUR, NOW - 1500, 10.0)  # 2010 samples
    put(store, "fit", normal, [0.1] * normal.size)
    put(store, "fit", np.arange(NOW - 1500, NOW + 1, 10.0), [0.3] * 151)  # slow: 25 minutes
    rule = {"target": "fit", "window": "5m", "baseline": "1d", "min_samples": 10}

    held = judge(store, **rule, for_s="20m")
    longer = judge(store, **rule, for_s="40m")

    # the baseline ends at now - 20m - 5m: every normal sample, none of the slow ones
    assert (held.status, held.baseline, held.baseline_samples) == ("firing", 0.1, 2010)
    # ... and at now - 40m - 5m: the earliest windows are normal, so not yet throughout
    assert (longer.status, longer.baseline_samples) == ("pending", 1890)


# -- built-in regression watches -----------------------------------------------------------------


def test_every_operation_gets_a_labelled_regression_watch(store: SampleStore) -> None:
    put(store, "curve.fit", burst(NOW, 1), [0.1])
    put(store, "pipeline.decode", burst(NOW, 1), [0.1])

    watches = default_watches(store)

    assert [w.name for w in watches] == ["regression:curve.fit", "regression:pipeline.decode"]
    first = watches[0]
    assert (first.builtin, first.stat, first.window, first.baseline, first.factor) == (
        True,
        "p95",
        HOUR,
        7 * DAY,
        1.5,
    )
    assert first.min_samples == 50
    assert first.to_dict()["builtin"] is True
    assert default_watches(SampleStore(store.directory.parent / "absent")) == []


def test_the_regression_watch_fires_by_default_and_is_switched_off_by_a_setting(
    store: SampleStore,
) -> None:
    week_of(store, "curve.fit", 0.1)
    last_hour(store, "curve.fit", 0.3)
    # not a timing: a higher rate is no regression
    put(store, "fps", burst(NOW - 600, 60), np.full(60, 9.0), unit="px/s")

    results = evaluate(store, now=NOW, record=False)

    by_name = {r.watch.name: r for r in results}
    assert by_name["regression:curve.fit"].firing
    assert by_name["regression:curve.fit"].watch.builtin
    assert "regression:fps" not in by_name  # only timings get one
    off = load_settings(DEFAULT_WATCHES=False)
    assert active_watches(store, off) == []
    assert evaluate(store, active_watches(store, off), now=NOW, record=False) == []


def test_a_configured_watch_named_like_a_default_replaces_it(store: SampleStore) -> None:
    put(store, "curve.fit", burst(NOW, 1), [0.1])
    settings = load_settings(
        WATCHES='[{"name": "regression:curve.fit", "target": "curve.fit", "baseline": "7d", '
        '"factor": 3}]'
    )

    watches = active_watches(store, settings)

    assert [(w.name, w.factor, w.builtin) for w in watches] == [
        ("regression:curve.fit", 3.0, False)
    ]


# -- events and alerts -----------------------------------------------------------------------------


def test_a_fired_watch_is_stored_as_an_event_and_read_back(store: SampleStore) -> None:
    put(store, "curve.fit", burst(NOW - 10, 10), [0.5] * 10)
    put(store, "fine", burst(NOW - 10, 10), [0.1] * 10)
    watches = [
        parse_watch({"name": "slow-fit", "target": "curve.fit", "above_ms": 250}),
        parse_watch({"target": "fine", "above_ms": 250, "severity": "critical"}),
    ]

    evaluate(store, watches, now=NOW)

    (event,) = watch_history(store)
    assert event["ts"] == NOW
    assert (event["watch"], event["target"], event["stat"], event["severity"]) == (
        "slow-fit",
        "curve.fit",
        "p95",
        "warning",
    )
    assert (event["value"], event["threshold"], event["unit"]) == (0.5, 0.25, "seconds")
    assert event["message"].startswith("curve.fit p95 over the last 5m is 500 ms")
    assert store.read_records(EVENT, WATCH_EVENTS) == [event]


def test_a_watch_that_keeps_firing_stores_one_event_a_minute(store: SampleStore) -> None:
    put(store, "curve.fit", np.arange(NOW - 300, NOW + 300, 5.0), [0.5] * 120)
    watches = [parse_watch({"name": "slow-fit", "target": "curve.fit", "above_ms": 250})]

    for offset in (0, 10, 30, 59, 61, 100, 125):
        evaluate(store, watches, now=NOW + offset)

    assert [e["ts"] for e in watch_history(store)] == [NOW, NOW + 61, NOW + 125]
    assert [e["ts"] for e in watch_history(store, NOW + 1, NOW + 100)] == [NOW + 61]
    assert watch_history(store, watch="other") == []


def test_record_false_and_quiet_watches_store_nothing(store: SampleStore) -> None:
    put(store, "curve.fit", burst(NOW - 10, 10), [0.5] * 10)
    firing = [parse_watch({"target": "curve.fit", "above_ms": 250})]
    quiet = [parse_watch({"target": "curve.fit", "above_ms": 900})]

    evaluate(store, firing, now=NOW, record=False)
    evaluate(store, quiet, now=NOW)

    assert watch_history(store) == []


def test_evaluation_never_creates_a_missing_store(tmp_path: Path) -> None:
    missing = SampleStore(tmp_path / "never")
    watches = [parse_watch({"target": "curve.fit", "above_ms": 250})]

    (result,) = evaluate(missing, watches, now=NOW)

    assert result.status == "insufficient"
    assert watch_history(missing) == []
    assert not (tmp_path / "never").exists()


def test_results_are_shaped_like_resource_alerts(store: SampleStore) -> None:
    put(store, "curve.fit", burst(NOW - 10, 10), [0.5] * 10)
    watches = [
        parse_watch({"target": "curve.fit", "above_ms": 250}),
        parse_watch({"target": "curve.fit", "above_ms": 400, "severity": "critical"}),
        parse_watch({"target": "curve.fit", "above_ms": 900}),
    ]

    alerts = firing_alerts(evaluate(store, watches, now=NOW, record=False))

    # the keys of ResourceMonitor.get_alerts_for_high_usage(), critical first
    assert [a["severity"] for a in alerts] == ["critical", "warning"]
    for alert in alerts:
        assert {"resource", "usage", "threshold", "severity", "message"} <= set(alert)
        assert alert["resource"] == "curve.fit"
        assert alert["usage"] == alert["value"] == 0.5
        assert {"watch", "target", "stat", "kind", "unit", "builtin", "window_s"} <= set(alert)
    json.dumps(alerts, allow_nan=False)  # plain JSON values


def test_the_package_exports_the_watch_api(store: SampleStore) -> None:
    put(store, "curve.fit", burst(NOW - 10, 10), [0.5] * 10)
    get_monitor().watch("curve.fit", "p95", above_ms=250)

    results = evaluate_watches(store, now=NOW)  # the registered watch, then the default one

    assert [(r.watch.name, r.status) for r in results] == [
        ("curve.fit:p95>250ms", "firing"),
        ("regression:curve.fit", "insufficient"),
    ]
    assert [r.watch.name for r in evaluate_watches(store, [], now=NOW)] == []
