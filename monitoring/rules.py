"""Prometheus recording and alerting rules over the exporter's metrics (``prometheus --rules``).

>>> text = rules_yaml(MonitoringSettings())
>>> "PtpdOperationRegression" in text and "ptpd_store_up == 0" in text
True

The alerts mirror what the app itself watches, so that one Prometheus collecting several
workstations raises them without hand-written PromQL:

- **PtpdOperationSlow** — an operation's p95 over the exporter's 5-minute window is above a
  fixed threshold (``p95_threshold_ms``, 1 s by default), for 10 minutes.
- **PtpdOperationRegression** — the built-in regression watch (left out when
  ``PTPD_MONITORING_DEFAULT_WATCHES`` is false): an operation's p95 over the last hour is at
  least 1.5 × its p95 in the same hour a week earlier (``offset 7d``), with at least 50 samples
  in both hours (``increase(..._count[1h])``), so a quiet hour or a new operation alerts on
  nothing. The exporter's quantiles cover 5 minutes, so "p95 over an hour" is the mean of those
  5-minute p95s (Prometheus cannot merge quantiles). The app's own watch compares with the
  whole previous 7 days from the raw samples; the same hour a week ago is what PromQL can
  afford on every evaluation, and it also follows a weekly rhythm of work.
- **PtpdApiErrorRate** — an endpoint answers more than ``error_rate`` (5 %) of its requests with
  a status of 400 or above over 5 minutes, given at least ``min_requests`` requests there.
- **PtpdStoreDown** (``ptpd_store_up == 0``) and **PtpdExporterDown** (``up == 0`` for the
  scrape job ``job``, "ptpd" as in the README), for 5 minutes.
- **PtpdHighCpu**, **PtpdHighMemory**, **PtpdHighDisk**, **PtpdHighGpuUtilization**,
  **PtpdHighGpuMemory** — the resource alerts of
  :meth:`~ptpd_calibration.monitoring.resources.ResourceMonitor.get_alerts_for_high_usage`:
  "warning" from the settings' threshold (``CPU_THRESHOLD``, ``MEMORY_THRESHOLD``,
  ``DISK_THRESHOLD``; GPUs use the CPU and memory ones), "critical" halfway from there to
  100 %, for 5 minutes. Both fire above the critical level, as is usual in Prometheus (an
  Alertmanager inhibit rule can silence the warning).
- **PtpdWatch** — one per configured fixed-threshold watch (:class:`~.watches.Watch`),
  labelled ``watch`` with its name, with its window, ``for_s``, ``min_samples`` and severity.
  Thresholds are read as the app reads them: ``above_ms`` in milliseconds; ``above`` in seconds
  for an operation's timings and in milliseconds for an endpoint's, a fraction for
  ``error_rate``, a rate for ``count_per_min``. Left out (and listed in the file's heading):
  baseline watches (PtpdOperationRegression is the PromQL form of those) and ``error_rate`` on
  an operation (the exporter counts no operation errors). An operation's p95 over a window
  longer than 5 minutes is the mean of the 5-minute p95s; an endpoint's percentiles come from
  the exporter's histogram buckets, so they are interpolated, not exact; a rate needs a window
  of at least a minute (shorter ones are widened to one).

Every alert carries a ``severity`` label ("warning" or "critical") and ``summary`` and
``description`` annotations naming the instance and the operation, endpoint or device.
Recording rules precompute the per-operation p95, mean and rate, the per-endpoint error ratio,
p95 and rate, and the GPU memory ratio, all over 5 minutes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from .settings import MonitoringSettings, get_settings
from .watches import TIMING_STATS, Watch, parse_watch

__all__ = [
    "ALERT_GROUP",
    "DEFAULT_ERROR_RATE",
    "DEFAULT_JOB",
    "DEFAULT_MIN_REQUESTS",
    "DEFAULT_P95_THRESHOLD_MS",
    "RECORDING_GROUP",
    "REGRESSION_FACTOR",
    "REGRESSION_MIN_SAMPLES",
    "build_rules",
    "rules_yaml",
]

RECORDING_GROUP = "ptpd-monitor.recording"
ALERT_GROUP = "ptpd-monitor.alerts"
DEFAULT_JOB = "ptpd"  # the job_name of the README's prometheus.yml
DEFAULT_P95_THRESHOLD_MS = 1000.0
DEFAULT_ERROR_RATE = 0.05
DEFAULT_MIN_REQUESTS = 10  # over the 5-minute window: one failed request of two is no outage
REGRESSION_FACTOR = 1.5  # as the app's built-in regression watches (watches.BUILTIN_*)
REGRESSION_MIN_SAMPLES = 50  # in the last hour, and in the same hour a week earlier

# What the exporter serves (monitoring/exporter.py).
_OPERATION = "ptpd_operation_duration_seconds"
_REQUEST_DURATION = "ptpd_http_request_duration_seconds"
_REQUESTS = "ptpd_http_requests_total"
_ERRORS = "ptpd_http_request_errors_total"
_EXPORTER_WINDOW_S = 300.0  # the exporter's quantile window (DEFAULT_WINDOW_S)
_MIN_RATE_WINDOW_S = 60.0  # rate() needs two scrapes in its window

# Recording rules: level:metric:operations (Prometheus' naming convention).
OPERATION_P95 = "operation:ptpd_operation_duration_seconds:p95_5m"
OPERATION_MEAN = "operation:ptpd_operation_duration_seconds:mean5m"
OPERATION_RATE = "operation:ptpd_operation_duration_seconds_count:rate5m"
ENDPOINT_REQUEST_RATE = "endpoint:ptpd_http_requests:rate5m"
ENDPOINT_ERROR_RATIO = "endpoint:ptpd_http_request_errors:ratio_rate5m"
ENDPOINT_P95 = "endpoint:ptpd_http_request_duration_seconds:p95_5m"
INSTANCE_ERROR_RATIO = "instance:ptpd_http_request_errors:ratio_rate5m"
GPU_MEMORY_RATIO = "gpu:ptpd_gpu_memory_usage:ratio"

_SLOW_FOR = "10m"
_ERRORS_FOR = "10m"
_REGRESSION_FOR = "15m"
_DOWN_FOR = "5m"
_RESOURCE_FOR = "5m"

_QUANTILES = {"p50": "0.5", "p95": "0.95", "p99": "0.99"}  # as the exporter labels them
_TEMPLATE_DELIMITER = re.compile(r"\{\{|\}\}")


@dataclass(frozen=True, slots=True)
class _Resource:
    alert: str
    what: str  # in the summary, e.g. "CPU usage"; GPUs add "of GPU 0 (name)"
    metric: str  # a 0..1 ratio series
    threshold_percent: float
    device: bool  # GPU series carry gpu and name labels


def build_rules(
    settings: MonitoringSettings | None = None,
    watches: Iterable[Watch | Mapping[str, Any]] = (),
    *,
    job: str = DEFAULT_JOB,
    p95_threshold_ms: float = DEFAULT_P95_THRESHOLD_MS,
    error_rate: float = DEFAULT_ERROR_RATE,
    min_requests: int = DEFAULT_MIN_REQUESTS,
    regression: bool | None = None,
    regression_factor: float = REGRESSION_FACTOR,
    regression_min_samples: int = REGRESSION_MIN_SAMPLES,
) -> dict[str, Any]:
    """The rules file as a mapping (``{"groups": [...]}``), ready for ``yaml.safe_dump``.

    Args:
        settings: the resource thresholds (``CPU_THRESHOLD``, ``MEMORY_THRESHOLD``,
            ``DISK_THRESHOLD``) and ``DEFAULT_WATCHES``; None reads the environment.
        watches: :class:`~.watches.Watch` rules, or mappings of their fields (checked as
            :func:`~.watches.parse_watch` checks them), e.g. from
            :func:`~.watches.load_watches`; each fixed-threshold one becomes a ``PtpdWatch``.
        job: the scrape job of the exporters, for the ``up == 0`` alert.
        p95_threshold_ms: the p95 above which an operation is slow.
        error_rate: the share of failed requests (0..1) above which an endpoint alerts.
        min_requests: the requests an endpoint needs in 5 minutes before its error rate counts.
        regression: include PtpdOperationRegression; None follows ``settings.DEFAULT_WATCHES``.
        regression_factor: how many times its week-earlier p95 the last hour's must reach.
        regression_min_samples: samples needed in each of the two hours compared.

    Raises:
        WatchError: a watch given as a mapping is malformed (the message names it).
        ValueError: an option is out of range.
    """
    settings = get_settings() if settings is None else settings
    _check(p95_threshold_ms > 0 and math.isfinite(p95_threshold_ms), "p95_threshold_ms", "> 0")
    _check(0 <= error_rate < 1, "error_rate", "0 <= error_rate < 1")
    _check(min_requests >= 0, "min_requests", ">= 0")
    _check(regression_factor > 1 and math.isfinite(regression_factor), "regression_factor", "> 1")
    _check(regression_min_samples >= 0, "regression_min_samples", ">= 0")
    if not job or any(c in job for c in '"\\\n'):
        raise ValueError(f"job must be a plain scrape job name, got {job!r}")
    if regression is None:
        regression = settings.DEFAULT_WATCHES

    alerts = [_slow_alert(p95_threshold_ms)]
    if regression:
        alerts.append(_regression_alert(regression_factor, regression_min_samples))
    alerts.append(_error_rate_alert(error_rate, min_requests))
    alerts.extend(_down_alerts(job))
    for resource in _resources(settings):
        alerts.extend(_resource_alerts(resource))
    alerts.extend(_watch_alert(w) for w in map(_as_watch, watches) if _left_out(w) is None)
    return {
        "groups": [
            {"name": RECORDING_GROUP, "rules": _recording_rules()},
            {"name": ALERT_GROUP, "rules": alerts},
        ]
    }


def rules_yaml(
    settings: MonitoringSettings | None = None,
    watches: Iterable[Watch | Mapping[str, Any]] = (),
    **options: Any,
) -> str:
    """The rules file as YAML text, for Prometheus' ``rule_files:``.

    Takes what :func:`build_rules` takes. A comment heading the file says what made it, which
    thresholds it holds, and which watches it leaves out and why.

    >>> print(rules_yaml(MonitoringSettings(CPU_THRESHOLD=70)).splitlines()[0])
    # Prometheus rules for ptpd-monitor, written by `ptpd-monitor prometheus --rules`.
    """
    settings = get_settings() if settings is None else settings
    rules = [_as_watch(watch) for watch in watches]
    document = build_rules(settings, rules, **options)
    p95_ms = float(options.get("p95_threshold_ms", DEFAULT_P95_THRESHOLD_MS))
    kept = sum(_left_out(watch) is None for watch in rules)
    header = [
        "# Prometheus rules for ptpd-monitor, written by `ptpd-monitor prometheus --rules`.",
        "# Load it with `rule_files: [this file]` in prometheus.yml; `promtool check rules` it.",
        f"# Thresholds: operation p95 {_ms_text(p95_ms)}, CPU {settings.CPU_THRESHOLD:g}%, "
        f"memory {settings.MEMORY_THRESHOLD:g}%, disk {settings.DISK_THRESHOLD:g}% "
        "(critical halfway to 100%).",
        f"# Watches: {kept} of {len(rules)} configured became PtpdWatch alerts.",
    ]
    for watch in rules:
        reason = _left_out(watch)
        if reason is not None:
            header.append(f"#   left out {watch.name!r}: {reason}")
    body = yaml.dump(
        # No folding: a line break inside a {{ template }} reads badly, though it works.
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=1_000_000,
    )
    return "\n".join(header) + "\n" + body


# -- recording rules ------------------------------------------------------------------------------


def _recording_rules() -> list[dict[str, Any]]:
    without = "sum without (status_class)"
    return [
        {
            "record": OPERATION_P95,
            "expr": f'max without (quantile) ({_OPERATION}{{quantile="0.95"}})',
        },
        {
            "record": OPERATION_MEAN,
            "expr": f"rate({_OPERATION}_sum[5m]) / rate({_OPERATION}_count[5m])",
        },
        {"record": OPERATION_RATE, "expr": f"rate({_OPERATION}_count[5m])"},
        {"record": ENDPOINT_REQUEST_RATE, "expr": f"{without} (rate({_REQUESTS}[5m]))"},
        {
            "record": ENDPOINT_ERROR_RATIO,
            "expr": f"{without} (rate({_ERRORS}[5m]))\n/\n{without} (rate({_REQUESTS}[5m]))\n",
        },
        {
            "record": ENDPOINT_P95,
            "expr": f"histogram_quantile(0.95, {without} (rate({_REQUEST_DURATION}_bucket[5m])))",
        },
        {
            "record": INSTANCE_ERROR_RATIO,
            "expr": (
                f"sum without (method, endpoint, status_class) (rate({_ERRORS}[5m]))\n/\n"
                f"sum without (method, endpoint, status_class) (rate({_REQUESTS}[5m]))\n"
            ),
        },
        {
            "record": GPU_MEMORY_RATIO,
            "expr": "ptpd_gpu_memory_used_bytes / ptpd_gpu_memory_total_bytes",
        },
    ]


# -- alerts ---------------------------------------------------------------------------------------


def _alert(
    name: str,
    expr: str,
    for_: str,
    severity: str,
    summary: str,
    description: str,
    **labels: str,
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, **labels},
        "annotations": {"summary": summary, "description": description},
    }


def _slow_alert(threshold_ms: float) -> dict[str, Any]:
    threshold = _ms_text(threshold_ms)
    return _alert(
        "PtpdOperationSlow",
        f"{OPERATION_P95} > {_number(threshold_ms / 1000.0)}",
        _SLOW_FOR,
        "warning",
        "{{ $labels.operation }} is slow on {{ $labels.instance }}",
        "The p95 of {{ $labels.operation }} on {{ $labels.instance }} over the last 5 minutes "
        "is {{ $value | humanizeDuration }}, above the " + threshold + " threshold, for "
        f"{_SLOW_FOR}.",
    )


def _regression_alert(factor: float, min_samples: int) -> dict[str, Any]:
    p95 = f'{_OPERATION}{{quantile="0.95"}}'
    count = f"{_OPERATION}_count"
    expr = (
        "max without (quantile) (\n"
        f"    avg_over_time({p95}[1h])\n"
        f"  / avg_over_time({p95}[1h] offset 7d)\n"
        f") >= {_number(factor)}\n"
        f"and increase({count}[1h]) >= {min_samples}\n"
        f"and increase({count}[1h] offset 7d) >= {min_samples}\n"
    )
    return _alert(
        "PtpdOperationRegression",
        expr,
        _REGRESSION_FOR,
        "warning",
        "{{ $labels.operation }} got slower on {{ $labels.instance }}",
        "The p95 of {{ $labels.operation }} on {{ $labels.instance }} over the last hour is "
        '{{ $value | printf "%.2f" }}× its p95 in the same hour a week ago (alerting from '
        f"{_number(factor)}×, with at least {min_samples} samples in each hour).",
        watch="regression:{{ $labels.operation }}",  # the name of the app's built-in watch
    )


def _error_rate_alert(error_rate: float, min_requests: int) -> dict[str, Any]:
    expr = (
        f"{ENDPOINT_ERROR_RATIO} > {_number(error_rate)}\n"
        f"and {ENDPOINT_REQUEST_RATE} * 300 >= {min_requests}\n"
    )
    return _alert(
        "PtpdApiErrorRate",
        expr,
        _ERRORS_FOR,
        "warning",
        "{{ $labels.method }} {{ $labels.endpoint }} fails on {{ $labels.instance }}",
        "{{ $value | humanizePercentage }} of the requests to {{ $labels.method }} "
        "{{ $labels.endpoint }} on {{ $labels.instance }} over the last 5 minutes failed "
        f"(status 400 or above; alerting above {_percent(error_rate)}).",
    )


def _down_alerts(job: str) -> list[dict[str, Any]]:
    return [
        _alert(
            "PtpdStoreDown",
            "ptpd_store_up == 0",
            _DOWN_FOR,
            "critical",
            "The sample store on {{ $labels.instance }} cannot be read",
            "The exporter on {{ $labels.instance }} has not been able to read its sample store "
            f"for {_DOWN_FOR}, so no operation, request or resource metrics arrive from it. "
            "Run `ptpd-monitor doctor` there.",
        ),
        _alert(
            "PtpdExporterDown",
            f'up{{job="{job}"}} == 0',
            _DOWN_FOR,
            "critical",
            "The ptpd-monitor exporter on {{ $labels.instance }} is down",
            "Prometheus has not been able to scrape {{ $labels.instance }} (job "
            "{{ $labels.job }}) for " + _DOWN_FOR + ". Is `ptpd-monitor prometheus` running "
            "there, and does it accept Prometheus' credentials?",
        ),
    ]


def _resources(settings: MonitoringSettings) -> list[_Resource]:
    return [
        _Resource(
            "PtpdHighCpu", "CPU usage", "ptpd_cpu_usage_ratio", settings.CPU_THRESHOLD, False
        ),
        _Resource(
            "PtpdHighMemory",
            "Memory usage",
            "ptpd_memory_usage_ratio",
            settings.MEMORY_THRESHOLD,
            False,
        ),
        _Resource(
            "PtpdHighDisk", "Disk usage", "ptpd_disk_usage_ratio", settings.DISK_THRESHOLD, False
        ),
        _Resource(
            "PtpdHighGpuUtilization",
            "Utilisation",
            "ptpd_gpu_utilization_ratio",
            settings.CPU_THRESHOLD,
            True,
        ),
        _Resource(
            "PtpdHighGpuMemory",
            "Memory usage",
            GPU_MEMORY_RATIO,
            settings.MEMORY_THRESHOLD,
            True,
        ),
    ]


def _resource_alerts(resource: _Resource) -> list[dict[str, Any]]:
    """A warning from the threshold, a critical alert halfway from there to 100 % (as the app)."""
    warning = resource.threshold_percent
    levels = (("warning", warning), ("critical", warning + (100.0 - warning) / 2.0))
    where = "{{ $labels.instance }}"
    what = resource.what
    if resource.device:
        what = f"{what} of GPU {{{{ $labels.gpu }}}} ({{{{ $labels.name }}}})"
    return [
        _alert(
            resource.alert,
            f"{resource.metric} >= {_number(percent / 100.0)}",
            _RESOURCE_FOR,
            severity,
            f"{what} is high on {where} ({severity})",
            f"{what} on {where} is {{{{ $value | humanizePercentage }}}}, at or above the "
            f"{percent:g}% {severity} level, for {_RESOURCE_FOR}.",
        )
        for severity, percent in levels
    ]


# -- watches --------------------------------------------------------------------------------------


def _as_watch(watch: Watch | Mapping[str, Any]) -> Watch:
    return watch if isinstance(watch, Watch) else parse_watch(watch)


def _left_out(watch: Watch) -> str | None:
    """Why a watch gets no rule of its own (None: it gets one)."""
    if watch.builtin:
        return "a built-in regression watch: PtpdOperationRegression covers every operation"
    if watch.baseline is not None:
        return "a baseline watch: PtpdOperationRegression compares with a week before"
    if watch.stat == "error_rate" and watch.kind == "operation":
        return "the exporter counts no errors of operations, only of requests"
    return None


def _watch_alert(watch: Watch) -> dict[str, Any]:
    window_s = watch.window
    if watch.stat not in _QUANTILES or watch.kind == "endpoint":
        window_s = max(window_s, _MIN_RATE_WINDOW_S)
    window = _prom_duration(window_s)
    if watch.kind == "operation":
        selector = f'operation="{_label_value(watch.target)}"'
        expr, count = _operation_watch_expr(watch.stat, selector, window, window_s)
    else:
        selector = f'endpoint="{_label_value(watch.path)}"'
        if watch.method is not None:
            selector = f'method="{_label_value(watch.method)}",{selector}'
        # A path without a method covers every method, as the app's watch does.
        merged = "status_class" if watch.method is not None else "method, status_class"
        expr, count = _endpoint_watch_expr(watch.stat, selector, window, merged)

    if watch.stat in TIMING_STATS:
        if watch.above_ms is not None:
            seconds = watch.above_ms / 1000.0
        else:
            assert watch.above is not None  # validated: a threshold, as there is no baseline
            seconds = watch.above / 1000.0 if watch.kind == "endpoint" else watch.above
        threshold, limit = seconds, _ms_text(seconds * 1000.0)
        value = "{{ $value | humanizeDuration }}"
    else:
        assert watch.above is not None
        threshold = watch.above
        if watch.stat == "error_rate":
            value, limit = "{{ $value | humanizePercentage }}", _percent(watch.above)
        else:
            value, limit = '{{ $value | printf "%.1f" }}', f"{watch.above:g}"
    expr = f"{expr} > {_number(threshold)}"
    # Without samples there is no quantile series and a rate ratio is NaN: one is implied.
    need = watch.min_samples if watch.stat == "count_per_min" else max(watch.min_samples, 1)
    if need > 1 or (watch.stat == "count_per_min" and need > 0):
        expr = f"{expr}\nand {count} >= {need}"
    stat = {"error_rate": "error rate", "count_per_min": "count per minute"}.get(
        watch.stat, watch.stat
    )
    rule: dict[str, Any] = {"alert": "PtpdWatch", "expr": expr + "\n"}
    if watch.for_s > 0:
        rule["for"] = _prom_duration(watch.for_s)
    # Labels and annotations are Go templates: a "{{" in a name must stay text.
    name, target = _literal(watch.name), _literal(watch.target)
    rule["labels"] = {"severity": watch.severity, "watch": name}
    rule["annotations"] = {
        "summary": f"Watch {name}: {target} {stat} is above {limit} on {{{{ $labels.instance }}}}",
        "description": f"The {stat} of {watch.kind} {target} on {{{{ $labels.instance }}}} "
        f"over {window} is {value}, above the watch's {limit} threshold.",
    }
    return rule


def _operation_watch_expr(
    stat: str, selector: str, window: str, window_s: float
) -> tuple[str, str]:
    count = f"increase({_OPERATION}_count{{{selector}}}[{window}])"
    if stat in _QUANTILES:
        series = f'{_OPERATION}{{{selector},quantile="{_QUANTILES[stat]}"}}'
        if window_s > _EXPORTER_WINDOW_S:  # the mean of the exporter's 5-minute quantiles
            series = f"avg_over_time({series}[{window}])"
        return f"max without (quantile) ({series})", count
    if stat == "mean":
        return (
            f"rate({_OPERATION}_sum{{{selector}}}[{window}])\n"
            f"  / rate({_OPERATION}_count{{{selector}}}[{window}])",
            count,
        )
    return f"rate({_OPERATION}_count{{{selector}}}[{window}]) * 60", count  # count_per_min


def _endpoint_watch_expr(stat: str, selector: str, window: str, merged: str) -> tuple[str, str]:
    def total(metric: str) -> str:
        return f"sum without ({merged}) (rate({metric}{{{selector}}}[{window}]))"

    count = f"sum without ({merged}) (increase({_REQUESTS}{{{selector}}}[{window}]))"
    if stat in _QUANTILES:
        quantile = _QUANTILES[stat]
        return f"histogram_quantile({quantile}, {total(_REQUEST_DURATION + '_bucket')})", count
    if stat == "mean":
        return (
            f"{total(_REQUEST_DURATION + '_sum')}\n  / {total(_REQUEST_DURATION + '_count')}",
            count,
        )
    if stat == "error_rate":
        return f"{total(_ERRORS)}\n  / {total(_REQUESTS)}", count
    return f"{total(_REQUESTS)} * 60", count  # count_per_min


# -- small helpers --------------------------------------------------------------------------------


def _check(ok: bool, name: str, rule: str) -> None:
    if not ok:
        raise ValueError(f"{name} is out of range (needs {rule})")


def _prom_duration(seconds: float) -> str:
    """Seconds as a Prometheus duration: 300 → ``5m``, 5400 → ``1h30m``, 1.5 → ``1500ms``."""
    millis = round(seconds * 1000)
    if millis % 1000:
        return f"{millis}ms"
    rest = millis // 1000
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


def _literal(text: str) -> str:
    """``text`` as literal text in a Go template (Prometheus expands labels and annotations)."""
    return _TEMPLATE_DELIMITER.sub(lambda match: f'{{{{ "{match.group(0)}" }}}}', text)


def _label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    """A float as PromQL reads it, without float noise: ``0.8``, ``1``, ``0.925``."""
    return f"{value:.12g}"


def _ms_text(ms: float) -> str:
    return f"{ms / 1000.0:g} s" if ms >= 1000 else f"{ms:g} ms"


def _percent(ratio: float) -> str:
    return f"{ratio * 100.0:g}%"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the longer expressions) as literal blocks, as people write them."""


def _str_presenter(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str_presenter)
