"""The generated Prometheus rules: their structure, thresholds, watches and the CLI option.

What the rules do on data is tested with the real promtool in
``tests/e2e/test_prometheus_rules.py``; here, what the file holds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ptpd_calibration.monitoring.cli import main
from ptpd_calibration.monitoring.rules import (
    ALERT_GROUP,
    DEFAULT_JOB,
    RECORDING_GROUP,
    build_rules,
    rules_yaml,
)
from ptpd_calibration.monitoring.settings import MonitoringSettings
from ptpd_calibration.monitoring.watches import Watch, WatchError, parse_watch

SETTINGS = MonitoringSettings(CPU_THRESHOLD=80.0, MEMORY_THRESHOLD=85.0, DISK_THRESHOLD=90.0)
BUILT_IN = {
    "PtpdOperationSlow",
    "PtpdOperationRegression",
    "PtpdApiErrorRate",
    "PtpdStoreDown",
    "PtpdExporterDown",
    "PtpdHighCpu",
    "PtpdHighMemory",
    "PtpdHighDisk",
    "PtpdHighGpuUtilization",
    "PtpdHighGpuMemory",
}
# What the exporter serves, and the names the recording rules make.
KNOWN_SERIES = re.compile(
    r"\b(ptpd_[a-z_]+|up|[a-z_]+:ptpd_[a-z_]+:[a-z0-9_]+)(?=[{\s\[)]|$)", re.MULTILINE
)


def _groups(**options: Any) -> dict[str, list[dict[str, Any]]]:
    document = build_rules(SETTINGS, **options)
    return {group["name"]: group["rules"] for group in document["groups"]}


def _alerts(**options: Any) -> list[dict[str, Any]]:
    return _groups(**options)[ALERT_GROUP]


def _alert(name: str, severity: str = "warning", **options: Any) -> dict[str, Any]:
    (rule,) = [
        rule
        for rule in _alerts(**options)
        if rule["alert"] == name and rule["labels"]["severity"] == severity
    ]
    return rule


def _watch_rules(*watches: dict[str, Any] | Watch) -> list[dict[str, Any]]:
    return [rule for rule in _alerts(watches=watches) if rule["alert"] == "PtpdWatch"]


# -- structure ------------------------------------------------------------------------------------


def test_two_groups_recording_then_alerts() -> None:
    document = build_rules(SETTINGS)
    assert list(document) == ["groups"]
    assert [group["name"] for group in document["groups"]] == [RECORDING_GROUP, ALERT_GROUP]
    recording = document["groups"][0]["rules"]
    assert all(set(rule) == {"record", "expr"} for rule in recording)
    names = [rule["record"] for rule in recording]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z_]+:ptpd_[a-z_]+:[a-z0-9_]+", name) for name in names)


def test_every_built_in_alert_is_there_with_for_severity_and_annotations() -> None:
    alerts = _alerts()
    assert {rule["alert"] for rule in alerts} == BUILT_IN
    for rule in alerts:
        assert list(rule) == ["alert", "expr", "for", "labels", "annotations"], rule["alert"]
        assert re.fullmatch(r"\d+m", rule["for"])
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert set(rule["annotations"]) == {"summary", "description"}
        for text in rule["annotations"].values():
            assert "{{ $labels.instance }}" in text, rule["alert"]


def test_operation_and_endpoint_alerts_name_them() -> None:
    for name in ("PtpdOperationSlow", "PtpdOperationRegression"):
        for text in _alert(name)["annotations"].values():
            assert "{{ $labels.operation }}" in text
    for text in _alert("PtpdApiErrorRate")["annotations"].values():
        assert "{{ $labels.method }} {{ $labels.endpoint }}" in text
    for severity in ("warning", "critical"):
        summary = _alert("PtpdHighGpuMemory", severity)["annotations"]["summary"]
        assert "GPU {{ $labels.gpu }} ({{ $labels.name }})" in summary


def test_resource_alerts_come_in_warning_and_critical_pairs() -> None:
    alerts = _alerts()
    for name in BUILT_IN:
        if name.startswith("PtpdHigh"):
            levels = sorted(r["labels"]["severity"] for r in alerts if r["alert"] == name)
            assert levels == ["critical", "warning"]
    others = [r for r in alerts if not r["alert"].startswith("PtpdHigh")]
    assert len(others) == len({r["alert"] for r in others})


def test_expressions_use_only_the_exporters_series_and_recorded_ones() -> None:
    groups = _groups()
    recorded = {rule["record"] for rule in groups[RECORDING_GROUP]}
    exported = {
        "ptpd_operation_duration_seconds",
        "ptpd_operation_duration_seconds_count",
        "ptpd_operation_duration_seconds_sum",
        "ptpd_http_request_duration_seconds_bucket",
        "ptpd_http_requests_total",
        "ptpd_http_request_errors_total",
        "ptpd_store_up",
        "ptpd_cpu_usage_ratio",
        "ptpd_memory_usage_ratio",
        "ptpd_disk_usage_ratio",
        "ptpd_gpu_utilization_ratio",
        "ptpd_gpu_memory_used_bytes",
        "ptpd_gpu_memory_total_bytes",
        "up",
    }
    used = set()
    for rules in groups.values():
        for rule in rules:
            used |= set(KNOWN_SERIES.findall(rule["expr"]))
    assert {"ptpd_store_up", "up", "ptpd_gpu_memory_total_bytes"} <= used  # the pattern works
    assert used <= exported | recorded
    assert recorded <= used | {
        "operation:ptpd_operation_duration_seconds:mean5m",
        "operation:ptpd_operation_duration_seconds_count:rate5m",
        "endpoint:ptpd_http_request_duration_seconds:p95_5m",
        "instance:ptpd_http_request_errors:ratio_rate5m",
    }  # recorded for dashboards, used by no alert


def test_recording_rules_cover_p95_and_error_rate_over_5m() -> None:
    exprs = {rule["record"]: rule["expr"] for rule in _groups()[RECORDING_GROUP]}
    p95 = exprs["operation:ptpd_operation_duration_seconds:p95_5m"]
    assert p95 == 'max without (quantile) (ptpd_operation_duration_seconds{quantile="0.95"})'
    ratio = exprs["endpoint:ptpd_http_request_errors:ratio_rate5m"]
    assert "rate(ptpd_http_request_errors_total[5m])" in ratio
    assert "rate(ptpd_http_requests_total[5m])" in ratio
    assert ratio.count("sum without (status_class)") == 2


# -- thresholds -----------------------------------------------------------------------------------


def test_resource_thresholds_follow_the_settings() -> None:
    settings = MonitoringSettings(CPU_THRESHOLD=60.0, MEMORY_THRESHOLD=70.0, DISK_THRESHOLD=95.0)
    alerts = build_rules(settings)["groups"][1]["rules"]
    exprs = {(r["alert"], r["labels"]["severity"]): r["expr"] for r in alerts}
    assert exprs["PtpdHighCpu", "warning"] == "ptpd_cpu_usage_ratio >= 0.6"
    assert exprs["PtpdHighCpu", "critical"] == "ptpd_cpu_usage_ratio >= 0.8"
    assert exprs["PtpdHighMemory", "warning"] == "ptpd_memory_usage_ratio >= 0.7"
    assert exprs["PtpdHighMemory", "critical"] == "ptpd_memory_usage_ratio >= 0.85"
    assert exprs["PtpdHighDisk", "warning"] == "ptpd_disk_usage_ratio >= 0.95"
    assert exprs["PtpdHighDisk", "critical"] == "ptpd_disk_usage_ratio >= 0.975"
    # GPUs as the app judges them: utilisation against the CPU threshold, memory the memory one
    assert exprs["PtpdHighGpuUtilization", "warning"] == "ptpd_gpu_utilization_ratio >= 0.6"
    assert exprs["PtpdHighGpuMemory", "critical"] == "gpu:ptpd_gpu_memory_usage:ratio >= 0.85"
    description = _find(alerts, "PtpdHighDisk", "critical")["annotations"]["description"]
    assert "97.5% critical level" in description


def _find(alerts: list[dict[str, Any]], name: str, severity: str) -> dict[str, Any]:
    return next(r for r in alerts if r["alert"] == name and r["labels"]["severity"] == severity)


def test_settings_default_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTPD_MONITORING_MEMORY_THRESHOLD", "50")
    text = rules_yaml()
    assert "ptpd_memory_usage_ratio >= 0.5\n" in text
    assert "ptpd_memory_usage_ratio >= 0.75\n" in text
    assert "memory 50%" in text.splitlines()[2]


def test_options_change_the_fixed_thresholds() -> None:
    rules = {r["alert"]: r for r in _alerts(p95_threshold_ms=250, error_rate=0.1, job="darkroom")}
    assert rules["PtpdOperationSlow"]["expr"].endswith("> 0.25")
    assert "250 ms threshold" in rules["PtpdOperationSlow"]["annotations"]["description"]
    assert "ratio_rate5m > 0.1\n" in rules["PtpdApiErrorRate"]["expr"]
    assert rules["PtpdExporterDown"]["expr"] == 'up{job="darkroom"} == 0'
    assert _alert("PtpdExporterDown", "critical")["expr"] == f'up{{job="{DEFAULT_JOB}"}} == 0'


def test_regression_compares_with_a_week_ago_given_enough_samples() -> None:
    rule = _alert("PtpdOperationRegression")
    expr = rule["expr"]
    assert 'avg_over_time(ptpd_operation_duration_seconds{quantile="0.95"}[1h] offset 7d)' in expr
    assert ") >= 1.5\n" in expr
    assert "and increase(ptpd_operation_duration_seconds_count[1h]) >= 50\n" in expr
    assert "and increase(ptpd_operation_duration_seconds_count[1h] offset 7d) >= 50\n" in expr
    assert rule["labels"]["watch"] == "regression:{{ $labels.operation }}"
    custom = _alert("PtpdOperationRegression", regression_factor=2, regression_min_samples=10)
    assert ") >= 2\n" in custom["expr"] and ">= 10\n" in custom["expr"]


def test_regression_follows_default_watches() -> None:
    assert "PtpdOperationRegression" not in {r["alert"] for r in _alerts(regression=False)}
    off = MonitoringSettings(DEFAULT_WATCHES=False)
    assert "PtpdOperationRegression" not in rules_yaml(off)
    assert "PtpdOperationRegression" in rules_yaml(off, regression=True)


@pytest.mark.parametrize(
    "options",
    [
        {"p95_threshold_ms": 0},
        {"p95_threshold_ms": float("inf")},
        {"error_rate": 1.0},
        {"error_rate": -0.1},
        {"min_requests": -1},
        {"regression_factor": 1.0},
        {"regression_min_samples": -5},
        {"job": ""},
        {"job": 'a"b'},
    ],
)
def test_out_of_range_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        build_rules(SETTINGS, **options)


# -- watches --------------------------------------------------------------------------------------


def test_a_fixed_operation_watch_becomes_one_alert() -> None:
    (rule,) = _watch_rules(
        {
            "name": "fit",
            "target": "curve.fit",
            "stat": "p95",
            "above_ms": 250,
            "min_samples": 20,
            "for_s": "2m",
            "severity": "critical",
        }
    )
    assert rule["expr"] == (
        'max without (quantile) (ptpd_operation_duration_seconds{operation="curve.fit",'
        'quantile="0.95"}) > 0.25\n'
        'and increase(ptpd_operation_duration_seconds_count{operation="curve.fit"}[5m]) >= 20\n'
    )
    assert rule["for"] == "2m"
    assert rule["labels"] == {"severity": "critical", "watch": "fit"}
    assert rule["annotations"]["summary"] == (
        "Watch fit: curve.fit p95 is above 250 ms on {{ $labels.instance }}"
    )


def test_watch_models_and_dicts_give_the_same_rule() -> None:
    raw = {"name": "fit", "target": "curve.fit", "stat": "p99", "above": 0.5}
    assert _watch_rules(raw) == _watch_rules(parse_watch(raw))


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        # an operation's above is in seconds, as the app reads it; above_ms in milliseconds
        ({"target": "curve.fit", "stat": "p50", "above": 2}, '"0.5"}) > 2\n'),
        ({"target": "curve.fit", "stat": "p99", "above_ms": 1500}, '"0.99"}) > 1.5\n'),
        # a window over the exporter's 5 minutes: the mean of its 5-minute quantiles
        (
            {"target": "curve.fit", "stat": "p95", "above": 1, "window": "1h"},
            'max without (quantile) (avg_over_time(ptpd_operation_duration_seconds{operation="'
            'curve.fit",quantile="0.95"}[1h])) > 1\n',
        ),
        (
            {"target": "curve.fit", "stat": "mean", "above_ms": 100, "window": "15m"},
            'rate(ptpd_operation_duration_seconds_sum{operation="curve.fit"}[15m])\n'
            '  / rate(ptpd_operation_duration_seconds_count{operation="curve.fit"}[15m]) > 0.1\n',
        ),
        (
            {"target": "curve.fit", "stat": "count_per_min", "above": 30, "window": 600},
            'rate(ptpd_operation_duration_seconds_count{operation="curve.fit"}[10m]) * 60 > 30\n',
        ),
        # an endpoint's above is in milliseconds
        (
            {"target": "GET /curves", "stat": "p95", "above": 400},
            "histogram_quantile(0.95, sum without (status_class) (rate("
            'ptpd_http_request_duration_seconds_bucket{method="GET",endpoint="/curves"}[5m]))) '
            "> 0.4\n",
        ),
        (
            {"target": "POST /calibrate", "stat": "error_rate", "above": 0.02},
            'rate(ptpd_http_request_errors_total{method="POST",endpoint="/calibrate"}[5m]))\n'
            "  / sum without (status_class) (rate(ptpd_http_requests_total{"
            'method="POST",endpoint="/calibrate"}[5m])) > 0.02\n',
        ),
        # a path alone covers every method
        (
            {"target": "/curves", "kind": "endpoint", "stat": "count_per_min", "above": 100},
            "sum without (method, status_class) (rate(ptpd_http_requests_total{"
            'endpoint="/curves"}[5m])) * 60 > 100\n',
        ),
        # rate() needs a minute at least
        (
            {"target": "curve.fit", "stat": "mean", "above": 1, "window": 10},
            'ptpd_operation_duration_seconds_sum{operation="curve.fit"}[1m])',
        ),
    ],
)
def test_each_statistic_becomes_its_promql(raw: dict[str, Any], fragment: str) -> None:
    (rule,) = _watch_rules(raw)
    assert fragment in rule["expr"]
    assert "for" not in rule  # no for_s: fires at once, as the app's watch


def test_min_samples_guard_counts_what_the_watch_counts() -> None:
    (endpoint,) = _watch_rules(
        {"target": "GET /x", "stat": "mean", "above": 100, "min_samples": 30, "window": "10m"}
    )
    assert endpoint["expr"].endswith(
        '\nand sum without (status_class) (increase(ptpd_http_requests_total{method="GET",'
        'endpoint="/x"}[10m])) >= 30\n'
    )
    (rate,) = _watch_rules({"target": "op", "stat": "count_per_min", "above": 1})
    assert "increase" not in rate["expr"]  # count_per_min's default floor is 0


def test_label_values_are_escaped() -> None:
    (rule,) = _watch_rules({"target": 'odd"name\\x', "stat": "p95", "above": 1})
    assert 'operation="odd\\"name\\\\x"' in rule["expr"]


def test_template_delimiters_in_names_stay_text() -> None:
    (rule,) = _watch_rules({"name": "a {{ b }}", "target": "x}}", "stat": "p95", "above": 1})
    assert rule["labels"]["watch"] == 'a {{ "{{" }} b {{ "}}" }}'
    assert rule["annotations"]["summary"].startswith(
        'Watch a {{ "{{" }} b {{ "}}" }}: x{{ "}}" }} p95 is above'
    )
    assert 'operation="x}}"' in rule["expr"]  # PromQL is no template


def test_baseline_and_operation_error_watches_are_left_out_and_listed() -> None:
    watches = [
        {"name": "week", "target": "curve.fit", "stat": "p95", "baseline": "7d"},
        {"name": "fit-errors", "target": "curve.fit", "stat": "error_rate", "above": 0.1},
        {"name": "kept", "target": "curve.fit", "stat": "p95", "above": 1},
    ]
    assert [r["labels"]["watch"] for r in _watch_rules(*watches)] == ["kept"]
    header = [line for line in rules_yaml(SETTINGS, watches).splitlines() if line.startswith("#")]
    assert "# Watches: 1 of 3 configured became PtpdWatch alerts." in header
    assert any("'week': a baseline watch" in line for line in header)
    assert any(
        "'fit-errors': the exporter counts no errors of operations" in line for line in header
    )


def test_a_malformed_watch_is_refused_by_name() -> None:
    with pytest.raises(WatchError, match=r"'fast'.*stat"):
        build_rules(SETTINGS, [{"name": "fast", "target": "x", "stat": "p42", "above": 1}])


# -- the YAML text --------------------------------------------------------------------------------


def test_yaml_round_trips_to_the_document() -> None:
    watches = [{"name": "fit", "target": "curve.fit", "stat": "p95", "above_ms": 250}]
    text = rules_yaml(SETTINGS, watches)
    assert yaml.safe_load(text) == build_rules(SETTINGS, watches)
    assert text.startswith("# Prometheus rules for ptpd-monitor")
    assert "expr: |\n" in text  # the longer expressions as literal blocks
    assert "{{ $labels.instance\n" not in text  # never folded inside a template


# -- the CLI --------------------------------------------------------------------------------------


def test_cli_writes_rules_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prometheus", "--rules"]) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out)["groups"][1]["name"] == ALERT_GROUP


def test_cli_writes_rules_to_a_file_with_settings_and_watches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PTPD_MONITORING_CPU_THRESHOLD", "65")
    monkeypatch.setenv(
        "PTPD_MONITORING_WATCHES", '[{"name": "fit", "target": "curve.fit", "above_ms": 250}]'
    )
    path = tmp_path / "ptpd.rules.yml"
    assert main(["prometheus", "--rules", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"wrote {path}" in captured.err
    text = path.read_text(encoding="utf-8")
    assert "ptpd_cpu_usage_ratio >= 0.65\n" in text
    assert "watch: fit\n" in text


def test_cli_reads_the_watches_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    watches = tmp_path / "watches.toml"
    watches.write_text(
        '[[watch]]\nname = "api"\ntarget = "POST /calibrate"\nstat = "error_rate"\nabove = 0.1\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("PTPD_MONITORING_WATCHES_FILE", str(watches))
    path = tmp_path / "rules.yml"
    assert main(["prometheus", "--rules", str(path)]) == 0
    assert "watch: api\n" in path.read_text(encoding="utf-8")


def test_cli_refuses_a_malformed_watch_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    watches = tmp_path / "watches.toml"
    watches.write_text('[[watch]]\nname = "bad"\ntarget = "x"\n', encoding="utf-8")
    monkeypatch.setenv("PTPD_MONITORING_WATCHES_FILE", str(watches))
    assert main(["prometheus", "--rules", str(tmp_path / "rules.yml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'bad'" in err
    assert not (tmp_path / "rules.yml").exists()


def test_cli_refuses_malformed_watches_in_the_env_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PTPD_MONITORING_WATCHES", '[{"name": "nameless-target"}]')
    assert main(["prometheus", "--rules", str(tmp_path / "rules.yml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "PTPD_MONITORING_WATCHES" in err
    assert not (tmp_path / "rules.yml").exists()


def test_cli_reports_an_unwritable_path_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prometheus", "--rules", str(tmp_path)]) == 1  # a folder
    assert main(["prometheus", "--rules", str(tmp_path / "missing" / "r.yml")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert "is a folder" in lines[0] and "does not exist" in lines[1]


def test_cli_rules_open_no_store(isolated_monitoring_env: Path, tmp_path: Path) -> None:
    assert main(["prometheus", "--rules", str(tmp_path / "r.yml")]) == 0
    assert not isolated_monitoring_env.exists()
