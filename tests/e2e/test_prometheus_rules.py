"""The rules file under the real ``promtool`` (Debian's prometheus package).

``promtool check rules`` validates the generated file; ``promtool test rules`` replays synthetic
series through it: for each alert, a case where it fires (with its exact labels and annotations)
and evaluation times where it must stay silent (too early for its ``for:``, under the threshold,
too few samples, after recovery). Each case is its own test file, so a failure names the alert.

The thresholds come from non-default settings, so the tests also show that the file follows
them. Never skipped: without promtool the tests fail and say how to install it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from ptpd_calibration.monitoring.rules import (
    ENDPOINT_ERROR_RATIO,
    OPERATION_P95,
    build_rules,
    rules_yaml,
)
from ptpd_calibration.monitoring.settings import MonitoringSettings

pytestmark = pytest.mark.e2e

PROMTOOL = Path("/usr/bin/promtool")
CLI = [sys.executable, "-m", "ptpd_calibration.monitoring.cli"]
# warning at 70 / 80 / 90 %, critical halfway to 100: 85 / 90 / 95 %
SETTINGS = MonitoringSettings(CPU_THRESHOLD=70.0, MEMORY_THRESHOLD=80.0, DISK_THRESHOLD=90.0)
WATCHES: list[dict[str, Any]] = [
    {  # the example: p95 > 250 ms, here with a 2-minute minimum duration
        "name": "curve-fit-p95",
        "target": "curve.fit",
        "kind": "operation",
        "stat": "p95",
        "above_ms": 250,
        "min_samples": 5,
        "for_s": 120,
        "severity": "critical",
    },
    {  # slow too, but never has enough samples in its window
        "name": "step-tablet-p95",
        "target": "calibration.read_step_tablet",
        "kind": "operation",
        "stat": "p95",
        "above": 0.25,  # seconds: an operation's own unit
        "min_samples": 100,
    },
    {
        "name": "calibrate-errors",
        "target": "POST /calibrate",
        "kind": "endpoint",
        "stat": "error_rate",
        "above": 0.08,
        "window": "10m",
        "for_s": 300,
    },
    {  # interpolated in the exporter's histogram buckets
        "name": "curves-p95",
        "target": "GET /curves",
        "stat": "p95",
        "above_ms": 400,
        "for_s": "1m",
    },
    # checked by promtool check rules; no series in the cases below makes them fire
    {"name": "fit-mean", "target": "curve.fit", "stat": "mean", "above_ms": 100, "window": "15m"},
    {"name": "exports", "target": "print.export", "stat": "count_per_min", "above": 5},
    {"name": "curves-mean", "target": "/curves", "kind": "endpoint", "stat": "mean", "above": 300},
    {"name": "curves-busy", "target": "GET /curves", "stat": "count_per_min", "above": 600},
    # Go template delimiters in a name stay text (else Prometheus would refuse the whole file)
    {"name": "odd {{ name }}", "target": "print.export", "stat": "count_per_min", "above": 900},
    # left out of the rules: a baseline watch, and errors of an operation
    {"name": "regressions", "target": "curve.fit", "stat": "p95", "baseline": "7d", "factor": 2},
    {"name": "fit-errors", "target": "curve.fit", "stat": "error_rate", "above": 0.1},
]

JOB = "ptpd"
P95 = OPERATION_P95
RATIO = ENDPOINT_ERROR_RATIO
HOST = "darkroom-1:9464"
HOST2 = "darkroom-2:9464"


def _series(metric: str, values: str, instance: str = HOST, **labels: str) -> dict[str, str]:
    pairs = {"job": JOB, "instance": instance, **labels}
    text = ",".join(f'{k}="{v}"' for k, v in pairs.items())
    return {"series": f"{metric}{{{text}}}", "values": values}


def _fired(severity: str, summary: str, description: str, **labels: str) -> dict[str, Any]:
    return {
        "exp_labels": {"severity": severity, "job": JOB, "instance": HOST, **labels},
        "exp_annotations": {"summary": summary, "description": description},
    }


@dataclass(frozen=True)
class Case:
    """One promtool test group: series at ``interval``, and alert checks at ``eval_time``s."""

    name: str
    interval: str
    series: list[dict[str, str]]
    # (eval_time, alertname, expected alerts: [] means silent)
    alerts: list[tuple[str, str, list[dict[str, Any]]]]
    exprs: list[dict[str, Any]] = field(default_factory=list)
    evaluation_interval: str = "1m"  # how often promtool evaluates the rules

    def group(self) -> dict[str, Any]:
        group: dict[str, Any] = {
            "name": self.name,
            "interval": self.interval,
            "input_series": self.series,
            "alert_rule_test": [
                {"eval_time": at, "alertname": alert, "exp_alerts": expected}
                for at, alert, expected in self.alerts
            ],
        }
        if self.exprs:
            group["promql_expr_test"] = self.exprs
        return group


def _slow() -> Case:
    p95 = "ptpd_operation_duration_seconds"
    fit = {"operation": "curve.fit"}
    tablet = {"operation": "calibration.read_step_tablet"}
    # curve.fit: p95 0.2 s, 2 s from minute 11 to 30, then 0.2 s again; 10 samples a minute.
    series = [
        _series(p95, "0.2x10 2x19 0.2x20", quantile="0.95", **fit),
        _series(p95, "0.05x50", quantile="0.5", **fit),
        _series(p95 + "_count", "0+10x50", **fit),
        # under the 1 s threshold, over the watch's 250 ms, with too few samples for the watch
        _series(p95, "0.5x50", quantile="0.95", **tablet),
        _series(p95 + "_count", "0+1x50", **tablet),
    ]
    slow = _fired(
        "warning",
        f"curve.fit is slow on {HOST}",
        f"The p95 of curve.fit on {HOST} over the last 5 minutes is 2s, above the 1 s "
        "threshold, for 10m.",
        operation="curve.fit",
    )
    watch = _fired(
        "critical",
        f"Watch curve-fit-p95: curve.fit p95 is above 250 ms on {HOST}",
        f"The p95 of operation curve.fit on {HOST} over 5m is 2s, above the watch's 250 ms "
        "threshold.",
        operation="curve.fit",
        watch="curve-fit-p95",
    )
    return Case(
        "operation p95 over a fixed threshold",
        "1m",
        series,
        [
            ("5m", "PtpdOperationSlow", []),
            ("19m", "PtpdOperationSlow", []),  # slow for 8 minutes: still pending
            ("25m", "PtpdOperationSlow", [slow]),
            ("45m", "PtpdOperationSlow", []),  # fast again
            ("12m", "PtpdWatch", []),  # slow for 1 minute of the watch's 2
            ("15m", "PtpdWatch", [watch]),
            ("45m", "PtpdWatch", []),
        ],
        exprs=[
            {
                "expr": P95,
                "eval_time": "20m",
                "exp_samples": [
                    {
                        "labels": f'{P95}{{job="{JOB}",instance="{HOST}",operation="curve.fit"}}',
                        "value": 2,
                    },
                    {
                        "labels": f'{P95}{{job="{JOB}",instance="{HOST}",'
                        'operation="calibration.read_step_tablet"}',
                        "value": 0.5,
                    },
                ],
            }
        ],
    )


def _regression() -> Case:
    p95 = "ptpd_operation_duration_seconds"
    # Every 5 minutes for a week and 8 hours. Index 2013 is 7d - 15m: the p95s step up after it.
    before, after = "x2013", "x100"

    def operation(name: str, old: float, new: float, per_step: int) -> list[dict[str, str]]:
        return [
            _series(p95, f"{old}{before} {new}{after}", quantile="0.95", operation=name),
            _series(p95 + "_count", f"0+{per_step}x2114", operation=name),
        ]

    series = [
        *operation("curve.fit", 0.1, 0.25, 10),  # 2.5× with 120 samples an hour: alerts
        *operation("calibration.read_step_tablet", 0.1, 0.25, 2),  # 2.5×, but 24 an hour
        *operation("negative.render", 0.1, 0.14, 10),  # 1.4×: under the factor
        # new this week: nothing to compare with
        _series(p95, "_x2016 0.25x98", quantile="0.95", operation="print.export"),
        _series(p95 + "_count", "_x2016 0+10x98", operation="print.export"),
    ]
    fired = _fired(
        "warning",
        f"curve.fit got slower on {HOST}",
        f"The p95 of curve.fit on {HOST} over the last hour is 2.50× its p95 in the same hour a "
        "week ago (alerting from 1.5×, with at least 50 samples in each hour).",
        operation="curve.fit",
        watch="regression:curve.fit",
    )
    return Case(
        "regression against the same hour a week ago",
        "5m",
        series,
        [
            ("6d", "PtpdOperationRegression", []),
            ("7d", "PtpdOperationRegression", []),  # the step is 15 minutes old
            ("7d1h", "PtpdOperationRegression", [fired]),
            ("7d2h", "PtpdOperationRegression", [fired]),
        ],
        # a week of evaluations every minute takes promtool 20 s; every 5 minutes, 4 s
        evaluation_interval="5m",
    )


def _errors() -> Case:
    requests, errors = "ptpd_http_requests_total", "ptpd_http_request_errors_total"
    calibrate = {"method": "POST", "endpoint": "/calibrate"}
    health = {"method": "GET", "endpoint": "/health"}
    curves = {"method": "GET", "endpoint": "/curves"}
    # /calibrate: 90 good requests a minute; 10 failing ones from minute 11 to 40.
    failing = "0x10 10+10x29 300x20"
    series = [
        _series(requests, "0+90x60", status_class="2xx", **calibrate),
        _series(errors, "0x60", status_class="2xx", **calibrate),
        _series(requests, failing, status_class="5xx", **calibrate),
        _series(errors, failing, status_class="5xx", **calibrate),
        # every request fails, but one request in 5 minutes is too few to judge
        _series(requests, "0+0.2x60", status_class="5xx", **health),
        _series(errors, "0+0.2x60", status_class="5xx", **health),
        # 4 % fail: under 5 %
        _series(requests, "0+96x60", status_class="2xx", **curves),
        _series(errors, "0x60", status_class="2xx", **curves),
        _series(requests, "0+4x60", status_class="4xx", **curves),
        _series(errors, "0+4x60", status_class="4xx", **curves),
    ]
    fired = _fired(
        "warning",
        f"POST /calibrate fails on {HOST}",
        f"10% of the requests to POST /calibrate on {HOST} over the last 5 minutes failed "
        "(status 400 or above; alerting above 5%).",
        **calibrate,
    )
    watch = _fired(
        "warning",
        f"Watch calibrate-errors: POST /calibrate error rate is above 8% on {HOST}",
        f"The error rate of endpoint POST /calibrate on {HOST} over 10m is 10%, above the "
        "watch's 8% threshold.",
        watch="calibrate-errors",
        **calibrate,
    )

    def labels(method: str, endpoint: str) -> str:
        return f'{RATIO}{{job="{JOB}",instance="{HOST}",method="{method}",endpoint="{endpoint}"}}'

    return Case(
        "API error rate",
        "1m",
        series,
        [
            ("5m", "PtpdApiErrorRate", []),
            ("15m", "PtpdApiErrorRate", []),  # failing for 4 minutes: pending
            ("30m", "PtpdApiErrorRate", [fired]),
            ("55m", "PtpdApiErrorRate", []),  # no failures for 15 minutes
            ("15m", "PtpdWatch", []),
            ("35m", "PtpdWatch", [watch]),
            ("59m", "PtpdWatch", []),
        ],
        exprs=[
            {
                "expr": RATIO,
                "eval_time": "30m",
                "exp_samples": [
                    {"labels": labels("POST", "/calibrate"), "value": 0.1},
                    {"labels": labels("GET", "/curves"), "value": 0.04},
                    {"labels": labels("GET", "/health"), "value": 1},
                ],
            },
        ],
    )


def _endpoint_latency() -> Case:
    bucket = "ptpd_http_request_duration_seconds_bucket"
    curves = {"method": "GET", "endpoint": "/curves", "status_class": "2xx"}
    health = {"method": "GET", "endpoint": "/health", "status_class": "2xx"}
    # /curves: 10 requests a minute, all between 0.25 s and 0.5 s: p95 = 0.25 + 0.95 × 0.25
    # /health: 10 a minute, all under 0.1 s
    series = [
        _series(bucket, "0x30", le="0.1", **curves),
        _series(bucket, "0x30", le="0.25", **curves),
        _series(bucket, "0+10x30", le="0.5", **curves),
        _series(bucket, "0+10x30", le="+Inf", **curves),
        *(_series(bucket, "0+10x30", le=le, **health) for le in ("0.1", "0.25", "0.5", "+Inf")),
    ]
    fired = _fired(
        "warning",
        f"Watch curves-p95: GET /curves p95 is above 400 ms on {HOST}",
        f"The p95 of endpoint GET /curves on {HOST} over 5m is 487.5ms, above the watch's "
        "400 ms threshold.",
        method="GET",
        endpoint="/curves",
        watch="curves-p95",
    )
    return Case(
        "endpoint p95 watch from histogram buckets",
        "1m",
        series,
        [("1m", "PtpdWatch", []), ("10m", "PtpdWatch", [fired])],
    )


def _down() -> Case:
    series = [
        _series("ptpd_store_up", "1x10 0x20 1x10"),
        _series("ptpd_store_up", "1x40", instance=HOST2),
        _series("up", "1x10 0x20 1x10"),
        {"series": 'up{job="node",instance="darkroom-1:9100"}', "values": "0x40"},  # not ours
    ]
    store = _fired(
        "critical",
        f"The sample store on {HOST} cannot be read",
        f"The exporter on {HOST} has not been able to read its sample store for 5m, so no "
        "operation, request or resource metrics arrive from it. Run `ptpd-monitor doctor` there.",
    )
    exporter = _fired(
        "critical",
        f"The ptpd-monitor exporter on {HOST} is down",
        f"Prometheus has not been able to scrape {HOST} (job {JOB}) for 5m. Is `ptpd-monitor "
        "prometheus` running there, and does it accept Prometheus' credentials?",
    )
    return Case(
        "store and exporter down",
        "1m",
        series,
        [
            ("5m", "PtpdStoreDown", []),
            ("14m", "PtpdStoreDown", []),  # down for 3 minutes: pending
            ("20m", "PtpdStoreDown", [store]),
            ("35m", "PtpdStoreDown", []),
            ("14m", "PtpdExporterDown", []),
            ("20m", "PtpdExporterDown", [exporter]),
            ("35m", "PtpdExporterDown", []),
        ],
    )


def _resource(what: str) -> Callable[..., dict[str, Any]]:
    """The expected alert of one resource: ``fired(severity, value, level, **gpu_labels)``."""

    def fired(severity: str, value: str, level: str, **labels: str) -> dict[str, Any]:
        where = f"{what} of GPU {labels['gpu']} ({labels['name']})" if labels else what
        return _fired(
            severity,
            f"{where} is high on {HOST} ({severity})",
            f"{where} on {HOST} is {value}, at or above the {level} {severity} level, for 5m.",
            **labels,
        )

    return fired


def _resources() -> Case:
    gpu0 = {"gpu": "0", "name": "NVIDIA H200"}
    gpu1 = {"gpu": "1", "name": "NVIDIA H200"}
    # CPU: 50 %, then 75 % from minute 6 (warning), 90 % from minute 22 (critical), 50 % at 38.
    series = [
        _series("ptpd_cpu_usage_ratio", "0.5x5 0.75x15 0.9x15 0.5x10"),
        _series("ptpd_cpu_usage_ratio", "0.69x45", instance=HOST2),  # just under 70 %
        _series("ptpd_memory_usage_ratio", "0.5x5 0.8x40"),  # exactly the threshold: alerts
        _series("ptpd_disk_usage_ratio", "0.96x45"),
        _series("ptpd_gpu_utilization_ratio", "0.95x45", **gpu0),
        _series("ptpd_gpu_utilization_ratio", "0.1x45", **gpu1),
        _series("ptpd_gpu_memory_used_bytes", "8000000000x45", **gpu0),
        _series("ptpd_gpu_memory_total_bytes", "10000000000x45", **gpu0),
        _series("ptpd_gpu_memory_used_bytes", "1000000000x45", **gpu1),
        _series("ptpd_gpu_memory_total_bytes", "10000000000x45", **gpu1),
    ]
    cpu, memory, disk = _resource("CPU usage"), _resource("Memory usage"), _resource("Disk usage")
    util, gmem = _resource("Utilisation"), _resource("Memory usage")
    return Case(
        "resources over the settings' thresholds",
        "1m",
        series,
        [
            ("5m", "PtpdHighCpu", []),
            ("9m", "PtpdHighCpu", []),  # 75 % for 3 minutes: pending
            ("15m", "PtpdHighCpu", [cpu("warning", "75%", "70%")]),
            (
                "30m",
                "PtpdHighCpu",
                [cpu("warning", "90%", "70%"), cpu("critical", "90%", "85%")],
            ),
            ("44m", "PtpdHighCpu", []),
            ("9m", "PtpdHighMemory", []),
            ("15m", "PtpdHighMemory", [memory("warning", "80%", "80%")]),
            ("3m", "PtpdHighDisk", []),
            (
                "10m",
                "PtpdHighDisk",
                [disk("warning", "96%", "90%"), disk("critical", "96%", "95%")],
            ),
            ("3m", "PtpdHighGpuUtilization", []),
            (
                "10m",
                "PtpdHighGpuUtilization",
                [util("warning", "95%", "70%", **gpu0), util("critical", "95%", "85%", **gpu0)],
            ),
            ("3m", "PtpdHighGpuMemory", []),
            ("10m", "PtpdHighGpuMemory", [gmem("warning", "80%", "80%", **gpu0)]),
        ],
    )


CASES = [_slow(), _regression(), _errors(), _endpoint_latency(), _down(), _resources()]


def _require(binary: Path) -> Path:
    if not binary.is_file():
        pytest.fail(
            f"{binary} is missing: run `make system-deps` (it installs Debian's prometheus "
            "package, which has promtool); the rules tests need it and are never skipped"
        )
    return binary


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_require(PROMTOOL)), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prometheus-rules") / "ptpd-rules.yml"
    path.write_text(rules_yaml(SETTINGS, WATCHES), encoding="utf-8")
    return path


def _unit_test_file(rules: Path, folder: Path, case: Case) -> Path:
    path = folder / "ptpd-rules.test.yml"
    document = {
        "rule_files": [str(rules)],
        "evaluation_interval": case.evaluation_interval,
        "tests": [case.group()],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_promtool_check_rules_passes(rules_file: Path) -> None:
    result = _promtool("check", "rules", rules_file)
    assert result.returncode == 0, result.stdout + result.stderr
    groups = build_rules(SETTINGS, WATCHES)["groups"]
    rules = sum(len(group["rules"]) for group in groups)
    assert f"SUCCESS: {rules} rules found" in result.stdout


def test_cli_rules_file_passes_promtool_check(tmp_path: Path) -> None:
    """``ptpd-monitor prometheus --rules FILE`` in a child process, settings from the env."""
    path = tmp_path / "rules.yml"
    env_result = subprocess.run(
        [*CLI, "prometheus", "--rules", str(path)],
        env={
            **_clean_env(),
            "PTPD_MONITORING_STORE_DIR": str(tmp_path / "store"),
            "PTPD_MONITORING_DISK_THRESHOLD": "75",
            "PTPD_MONITORING_WATCHES": json.dumps(WATCHES[:1]),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert env_result.returncode == 0, env_result.stderr
    text = path.read_text(encoding="utf-8")
    assert "ptpd_disk_usage_ratio >= 0.75" in text
    assert "watch: curve-fit-p95" in text
    assert not (tmp_path / "store").exists()  # writing rules opens no store
    result = _promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PTPD_MONITORING_")}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_promtool_test_rules(case: Case, rules_file: Path, tmp_path: Path) -> None:
    """Each alert fires with its labels and annotations, and stays silent where it should."""
    tests = _unit_test_file(rules_file, tmp_path, case)
    result = _promtool("test", "rules", tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_silent() -> None:
    rules = build_rules(SETTINGS, WATCHES)["groups"]
    alerts = {rule["alert"] for group in rules for rule in group["rules"] if "alert" in rule}
    firing = {alert for case in CASES for _, alert, expected in case.alerts if expected}
    silent = {alert for case in CASES for _, alert, expected in case.alerts if not expected}
    assert alerts == firing == silent
    severities = {
        (expected["exp_labels"]["severity"])
        for case in CASES
        for _, _, fired in case.alerts
        for expected in fired
    }
    assert severities == {"warning", "critical"}


def test_promtool_catches_a_wrong_expectation(rules_file: Path, tmp_path: Path) -> None:
    """A control: promtool fails on an alert expected too early, so green means something."""
    case = _resources()
    early = Case(case.name, case.interval, case.series, [("9m", "PtpdHighCpu", case.alerts[2][2])])
    assert case.alerts[2][:2] == ("15m", "PtpdHighCpu")  # the warning, moved to 9m
    result = _promtool("test", "rules", _unit_test_file(rules_file, tmp_path, early))
    assert result.returncode == 1
    assert "PtpdHighCpu" in result.stdout + result.stderr
