"""A Prometheus exporter over the sample store: every process's samples, scraped over HTTP.

>>> server, thread = serve(get_store(), port=9464)  # doctest: +SKIP
>>> # curl http://127.0.0.1:9464/metrics

What one scrape answers, and over which data:

- **Counters** (``*_total``, a summary's ``_count``/``_sum``, histogram buckets) are running
  tallies kept by the exporter. The first scrape counts everything in the store (the store's
  retention bounds it, read a day at a time); each later scrape adds only the samples recorded
  since. So they never fall while the exporter runs, even when retention culls old batches, and
  an exporter restart is an ordinary counter reset to Prometheus. A sample is counted once it is
  ``settle_s`` old (5 s by default, several flush intervals), so that batches still in another
  process's buffer are not skipped; one written later than that (after the store was
  unwritable, say) is counted only after the exporter restarts.
- **Quantiles** of ``ptpd_operation_duration_seconds`` are exact (``np.percentile``'s linear
  method over the raw samples, as everywhere else in the package) over the last ``window_s``
  seconds (300 by default) and up to the scrape: recent latency, as Prometheus clients' own
  summaries report it. An operation without samples in the window has no quantile series.
- **Gauges** of CPU, memory, disk and GPUs come from the newest resource sample of the last
  ``window_s`` seconds; without one (no sampler running) they are absent rather than stale.
  Percentages are exported as ratios 0..1 (``*_ratio``), sizes in bytes, as Prometheus prefers.
- **Caches** report cumulative hits, misses and evictions per process. The exporter keeps the
  newest snapshot of every (cache, pid) it has seen and sums them, so a process that exits
  keeps its share; a snapshot below its predecessor means a new process got the same pid, and
  the old totals are carried over. ``ptpd_cache_size_entries`` sums the newest snapshots of the
  processes seen in the last ``window_s`` seconds (a disk-backed cache is one folder every
  process reports, so it counts once: the largest of their sizes).
- Operations recorded in another unit than seconds (e.g. the profiler's ``*.memory_mb``) are
  no durations: they appear as ``ptpd_operation_value{operation, unit}``, their newest value in
  the window.
- ``ptpd_store_up`` is 1 when the store could be read, else 0 and nothing else is reported (the
  scrape itself still succeeds, so Prometheus sees the store is down rather than the exporter).

Beyond one machine, ``serve(..., web_config=load_web_config(path))`` adds HTTPS and basic auth
as Prometheus' own exporters configure them (exporter-toolkit's web-config file).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, NoReturn, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import bcrypt
import numpy as np
import yaml
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from . import stats as _stats
from ._common import MB, error_mask, split_endpoint_key
from ._totals import sum_cache_snapshots
from .store import API, CACHE, MAX_BATCH_SPAN_S, METRIC, RESOURCE, SampleStore, StoreError

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_SETTLE_S",
    "DEFAULT_WINDOW_S",
    "HTTP_BUCKETS_S",
    "QUANTILES",
    "StoreCollector",
    "WebConfig",
    "WebConfigError",
    "build_registry",
    "exposure_warning",
    "load_web_config",
    "serve",
]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9464  # the port OpenTelemetry's Prometheus exporter also uses by default
DEFAULT_WINDOW_S = 300.0
DEFAULT_SETTLE_S = 5.0
QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)
# Prometheus clients' default buckets, in seconds: they fit request latencies from 5 ms to 10 s.
HTTP_BUCKETS_S: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_BUCKETS_MS = np.array(HTTP_BUCKETS_S) * 1000.0  # the store keeps request durations in ms
# Labels as the official clients write them ("1.0", not "1"; Python's repr agrees for these),
# so our series aggregate with theirs.
_BUCKET_LABELS = [repr(float(b)) for b in HTTP_BUCKETS_S] + ["+Inf"]
_BACKFILL_STEP_S = 86400.0  # the first scrape reads the store a day at a time (bounded memory)
_SECONDS = "seconds"
_GB = MB * 1024.0


@dataclass(slots=True)
class _OperationTally:
    count: int = 0
    total: float = 0.0


@dataclass(slots=True)
class _RequestTally:
    count: int = 0
    errors: int = 0
    total_s: float = 0.0
    buckets: np.ndarray = field(default_factory=lambda: np.zeros(len(HTTP_BUCKETS_S), np.int64))


@dataclass(slots=True)
class _CacheTally:
    """Totals of one cache: the newest snapshot per pid, plus those of pids that were reused."""

    newest: dict[int, dict[str, Any]] = field(default_factory=dict)
    retired: dict[str, int] = field(default_factory=dict)


_CACHE_COUNTERS = ("hits", "misses", "evictions")


@dataclass(slots=True)
class _Tallies:
    """The running totals; ``until`` is the newest sample time they include."""

    until: float | None = None
    cache_until: float | None = None
    operations: dict[str, _OperationTally] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    requests: dict[tuple[str, str, str], _RequestTally] = field(default_factory=dict)
    caches: dict[str, _CacheTally] = field(default_factory=dict)

    def copy(self) -> _Tallies:
        return _Tallies(
            self.until,
            self.cache_until,
            {k: _OperationTally(v.count, v.total) for k, v in self.operations.items()},
            dict(self.units),
            {
                k: _RequestTally(v.count, v.errors, v.total_s, v.buckets.copy())
                for k, v in self.requests.items()
            },
            {
                k: _CacheTally({p: dict(s) for p, s in v.newest.items()}, dict(v.retired))
                for k, v in self.caches.items()
            },
        )


def _status_class(status: float) -> str:
    return f"{int(status) // 100}xx"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if np.isfinite(number) else None


def _steps(start: float, stop: float) -> Iterator[tuple[float, float]]:
    """``(after, until]`` windows covering ``(start, stop]``, at most a day each."""
    lo = start
    while lo < stop:
        hi = min(lo + _BACKFILL_STEP_S, stop)
        yield lo, hi
        lo = hi


class StoreCollector:
    """A prometheus_client collector answering each scrape from a :class:`SampleStore`.

    >>> registry = CollectorRegistry()
    >>> registry.register(StoreCollector(SampleStore(tmp_dir)))  # doctest: +SKIP
    >>> generate_latest(registry)  # doctest: +SKIP

    Args:
        store: the store to read (every process's samples).
        window_s: the recent window for quantiles, resource gauges and cache sizes.
        settle_s: how old a sample must be before the counters include it.
        clock: epoch seconds now (tests pin it).
    """

    def __init__(
        self,
        store: SampleStore,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        settle_s: float = DEFAULT_SETTLE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not window_s > 0 or not settle_s >= 0:
            raise ValueError(
                f"window_s must be positive and settle_s non-negative, got {window_s!r}, "
                f"{settle_s!r}"
            )
        self.store = store
        self.window_s = float(window_s)
        self.settle_s = float(settle_s)
        self._clock = clock
        # Scrapes may overlap (the HTTP server is threaded): one at a time updates the tallies.
        self._lock = threading.Lock()
        self._tallies = _Tallies()
        self._last_error: str | None = None

    def __repr__(self) -> str:
        return f"StoreCollector({self.store!r}, window_s={self.window_s}, settle_s={self.settle_s})"

    def collect(self) -> Iterator[Metric]:
        """Every metric family for one scrape; ``ptpd_store_up`` 0 when the store fails."""
        up = GaugeMetricFamily("ptpd_store_up", "1 when the sample store could be read, else 0")
        families: list[Metric] = []
        with self._lock:
            now = self._clock()
            try:
                tallies = self._advanced(self._tallies.copy(), now)
                families = self._families(tallies, now)
            except StoreError as exc:
                if exc.reason != self._last_error:  # once per distinct failure, not per scrape
                    logger.warning("ptpd-monitor exporter: %s", exc)
                    self._last_error = exc.reason
                families = []
            else:
                self._tallies = tallies  # committed only when the whole read succeeded
                self._last_error = None
        up.add_metric([], 1.0 if self._last_error is None else 0.0)
        yield from (family for family in families if family.samples)  # no empty HELP/TYPE
        yield up

    # -- the running tallies ------------------------------------------------------------------

    def _advanced(self, tallies: _Tallies, now: float) -> _Tallies:
        cut = now - self.settle_s
        windows: list[tuple[float | None, float]]
        if tallies.until is None:  # the first scrape: the whole store, a day at a time
            oldest = cut - self.store.retention_s  # before it, normally nothing is left
            windows = [(None, oldest), *_steps(oldest, cut)]
        else:
            windows = list(_steps(tallies.until, cut))
        metrics, requests = self.store.series_names(METRIC), self.store.series_names(API)
        for lo, hi in windows:
            self._count_between(tallies, metrics, requests, lo, hi)
        if windows:
            tallies.until = cut
        self._update_caches(tallies, now)
        return tallies

    def _count_between(
        self,
        tallies: _Tallies,
        metrics: list[str],
        requests: list[str],
        after: float | None,
        until: float,
    ) -> None:
        """Add the samples with ``after < ts <= until`` (``after`` None: from the beginning)."""
        for name in metrics:
            data = self.store.read_columns(METRIC, name, after, until)
            if not data.size:
                continue
            tallies.units[name] = data.unit or _SECONDS
            ts, values = data.columns[0], data.columns[1]
            if after is not None:
                values = values[ts > after]
            if values.size and tallies.units[name] == _SECONDS:
                operation = tallies.operations.setdefault(name, _OperationTally())
                operation.count += int(values.size)
                operation.total += float(values.sum())
        for key in requests:
            data = self.store.read_columns(API, key, after, until)
            if not data.size:
                continue
            ts, duration_ms, status = data.columns[:3]
            if after is not None:
                keep = ts > after
                duration_ms, status = duration_ms[keep], status[keep]
            method, endpoint = split_endpoint_key(key)
            classes = status // 100
            for value in np.unique(classes):
                chosen = classes == value
                durations = np.sort(duration_ms[chosen])
                label = (method, endpoint, _status_class(value * 100))
                tally = tallies.requests.setdefault(label, _RequestTally())
                tally.count += int(durations.size)
                tally.errors += int(np.count_nonzero(error_mask(status[chosen])))
                tally.total_s += float(durations.sum()) / 1000.0
                tally.buckets += np.searchsorted(durations, _BUCKETS_MS, side="right")

    def _update_caches(self, tallies: _Tallies, now: float) -> None:
        """Fold in the cache snapshots since the last scrape (re-reading a little is harmless)."""
        windows: list[tuple[float | None, float]]
        if tallies.cache_until is None:
            oldest = now - self.store.retention_s
            windows = [(None, oldest), *_steps(oldest, now)]
        else:
            windows = [(tallies.cache_until - self.settle_s - MAX_BATCH_SPAN_S, now)]
        for lo, hi in windows:
            for row in self.store.read_records(CACHE, None, lo, hi):
                name = str(row.get("cache") or row.get("name") or "default")
                pid = int(_number(row.get("pid")) or 0)
                cache = tallies.caches.setdefault(name, _CacheTally())
                previous = cache.newest.get(pid)
                if previous is not None and float(row["ts"]) <= float(previous["ts"]):
                    continue
                if previous is not None and any(
                    (_number(row.get(c)) or 0) < (_number(previous.get(c)) or 0)
                    for c in _CACHE_COUNTERS
                ):
                    for counter in _CACHE_COUNTERS:  # a new process with a reused pid
                        old = int(_number(previous.get(counter)) or 0)
                        cache.retired[counter] = cache.retired.get(counter, 0) + old
                cache.newest[pid] = row
        tallies.cache_until = now

    # -- the families -------------------------------------------------------------------------

    def _families(self, tallies: _Tallies, now: float) -> list[Metric]:
        since = now - self.window_s
        families = self._operation_families(tallies, since, now)
        families.extend(self._request_families(tallies))
        families.extend(self._resource_families(since, now))
        families.extend(self._cache_families(tallies, since))
        return families

    def _operation_families(self, tallies: _Tallies, since: float, now: float) -> list[Metric]:
        summary = SummaryMetricFamily(
            "ptpd_operation_duration_seconds",
            f"Duration of timed operations; quantiles are exact over the last {self.window_s:g} s",
            labels=["operation"],
        )
        values = GaugeMetricFamily(
            "ptpd_operation_value",
            "Newest value of operations recorded in units other than seconds",
            labels=["operation", "unit"],
        )
        names = sorted(set(self.store.series_names(METRIC)) | set(tallies.operations))
        for name in names:
            recent = self.store.read_columns(METRIC, name, since, now)
            unit = (recent.unit if recent.size else "") or tallies.units.get(name) or _SECONDS
            if unit != _SECONDS:
                if recent.size:
                    newest = int(np.argmax(recent.columns[0]))
                    values.add_metric([name, unit], float(recent.columns[1][newest]))
                continue
            tally = tallies.operations.get(name, _OperationTally())
            summary.add_metric([name], tally.count, tally.total)
            if recent.size:
                points = [q * 100.0 for q in QUANTILES]
                exact = _stats.percentiles(recent.columns[1], points)
                for q, p in zip(QUANTILES, points, strict=True):
                    labels = {"operation": name, "quantile": repr(float(q))}
                    summary.add_sample(summary.name, labels, exact[f"p{p:g}"])
        return [summary, values]

    def _request_families(self, tallies: _Tallies) -> list[Metric]:
        labels = ["method", "endpoint", "status_class"]
        histogram = HistogramMetricFamily(
            "ptpd_http_request_duration_seconds",
            "Duration of HTTP requests handled by the app",
            labels=labels,
        )
        requests = CounterMetricFamily(
            "ptpd_http_requests", "HTTP requests handled by the app", labels=labels
        )
        errors = CounterMetricFamily(
            "ptpd_http_request_errors",
            "HTTP requests answered with status 400 or above",
            labels=labels,
        )
        for label, tally in sorted(tallies.requests.items()):
            buckets = list(
                zip(_BUCKET_LABELS, [*map(int, tally.buckets), tally.count], strict=True)
            )
            histogram.add_metric(list(label), buckets, tally.total_s)
            requests.add_metric(list(label), tally.count)
            errors.add_metric(list(label), tally.errors)
        return [histogram, requests, errors]

    def _resource_families(self, since: float, now: float) -> list[Metric]:
        rows = self.store.read_records(RESOURCE, None, since, now)
        if not rows:
            return []
        row = rows[-1]  # sorted by time: the newest
        families: list[Metric] = []

        def gauge(name: str, doc: str, value: Any, scale: float = 1.0) -> None:
            number = _number(value)
            if number is not None:
                families.append(GaugeMetricFamily(name, doc, value=number * scale))

        gauge(
            "ptpd_resource_sample_timestamp_seconds",
            "When the newest resource sample was taken",
            row["ts"],
        )
        gauge(
            "ptpd_cpu_usage_ratio", "System-wide CPU busy time, 0..1", row.get("cpu_percent"), 0.01
        )
        gauge(
            "ptpd_memory_usage_ratio", "System memory in use, 0..1", row.get("memory_percent"), 0.01
        )
        gauge("ptpd_memory_used_bytes", "System memory in use", row.get("memory_used_mb"), MB)
        gauge(
            "ptpd_memory_available_bytes",
            "System memory available",
            row.get("memory_available_mb"),
            MB,
        )
        gauge(
            "ptpd_disk_usage_ratio",
            "Watched filesystem in use, 0..1",
            row.get("disk_percent"),
            0.01,
        )
        gauge("ptpd_disk_used_bytes", "Watched filesystem in use", row.get("disk_used_gb"), _GB)
        gauge("ptpd_disk_free_bytes", "Watched filesystem free", row.get("disk_free_gb"), _GB)
        gpu_fields = (
            ("ptpd_gpu_utilization_ratio", "GPU busy time, 0..1", "utilization_percent", 0.01),
            ("ptpd_gpu_memory_used_bytes", "GPU memory in use", "memory_used_mb", MB),
            ("ptpd_gpu_memory_total_bytes", "GPU memory in all", "memory_total_mb", MB),
            ("ptpd_gpu_temperature_celsius", "GPU core temperature", "temperature_c", 1.0),
            ("ptpd_gpu_power_watts", "GPU power draw", "power_w", 1.0),
        )
        count = int(_number(row.get("gpu_count")) or 0)
        for name, doc, key, scale in gpu_fields:
            family = GaugeMetricFamily(name, doc, labels=["gpu", "name"])
            for index in range(count):
                value = _number(row.get(f"gpu{index}_{key}"))
                if value is not None:
                    label = str(row.get(f"gpu{index}_name") or f"GPU {index}")
                    family.add_metric([str(index), label], value * scale)
            if family.samples:
                families.append(family)
        return families

    def _cache_families(self, tallies: _Tallies, since: float) -> list[Metric]:
        counters = {
            counter: CounterMetricFamily(
                f"ptpd_cache_{counter}", f"Cache {counter} of every process", labels=["cache"]
            )
            for counter in _CACHE_COUNTERS
        }
        size = GaugeMetricFamily(
            "ptpd_cache_size_entries",
            f"Entries held by the caches of processes seen in the last {self.window_s:g} s",
            labels=["cache"],
        )
        for name, cache in sorted(tallies.caches.items()):
            totals = sum_cache_snapshots(cache.newest.values())
            for counter, family in counters.items():
                family.add_metric([name], cache.retired.get(counter, 0) + getattr(totals, counter))
            recent = [row for row in cache.newest.values() if float(row["ts"]) >= since]
            size.add_metric([name], sum_cache_snapshots(recent).size)
        return [*counters.values(), size]


def build_registry(
    store: SampleStore,
    *,
    window_s: float = DEFAULT_WINDOW_S,
    settle_s: float = DEFAULT_SETTLE_S,
) -> CollectorRegistry:
    """A fresh registry holding only a :class:`StoreCollector` (no process or GC metrics)."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(store, window_s=window_s, settle_s=settle_s))
    return registry


# -- the web config: exporter-toolkit's format, for TLS and basic auth ---------------------------

_TOP_KEYS = ("tls_server_config", "basic_auth_users")
_TLS_KEYS = ("cert_file", "key_file")
# exporter-toolkit's other settings: named as unsupported rather than as unknown keys.
_TOOLKIT_ONLY = frozenset(
    {
        "http_server_config",
        "rate_limit",
        "cert",
        "key",
        "client_ca",
        "client_ca_file",
        "client_auth_type",
        "client_allowed_sans",
        "cipher_suites",
        "curve_preferences",
        "min_version",
        "max_version",
        "prefer_server_cipher_suites",
    }
)
# What bcrypt.checkpw accepts: $2b$ (bcrypt's), $2a$ and $2y$ (htpasswd's), cost 4 to 31.
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_YAML_KINDS = {
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}


class WebConfigError(ValueError):
    """A ``--web-config`` file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"web config {path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True, slots=True)
class WebConfig:
    """A checked web config: a ready TLS context (None: plain HTTP) and bcrypt hashes by user."""

    path: Path
    tls: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)  # kept out of logs


def load_web_config(path: Path) -> WebConfig:
    """Read an exporter-toolkit web config (Prometheus' own exporters' ``--web.config.file``).

    Everything is checked here (the certificate and key loaded, every hash parsed), so that a
    mistake stops the exporter when it starts rather than failing every scrape. Relative
    ``cert_file`` and ``key_file`` are relative to the config's folder, as in exporter-toolkit;
    an empty ``tls_server_config`` means plain HTTP there too. The file is read once: restart
    the exporter to apply a change.

    Raises:
        WebConfigError: the file is missing, not YAML, or not a usable web config.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WebConfigError(path, f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise WebConfigError(path, "not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise WebConfigError(path, f"not valid YAML: {_yaml_problem(exc)}") from None
    top = _section(path, document, "the file", _TOP_KEYS)
    tls = _section(path, top.get("tls_server_config"), "tls_server_config", _TLS_KEYS)
    return WebConfig(path, _tls_context(path, tls), _users(path, top.get("basic_auth_users")))


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: what went wrong, and where."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def _kind(value: Any) -> str:
    return _YAML_KINDS.get(type(value), type(value).__name__)


def _section(path: Path, value: Any, where: str, known: tuple[str, ...]) -> dict[str, Any]:
    """``value`` as a mapping holding only ``known`` keys (absent or empty: an empty one)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebConfigError(
            path, f"{where} must be a mapping of keys to values, not {_kind(value)}"
        )
    for key in value:
        if key in _TOOLKIT_ONLY:
            raise WebConfigError(
                path,
                f"{where}: {key!r} is an exporter-toolkit setting ptpd-monitor does not support",
            )
        if key not in known:
            raise WebConfigError(
                path, f"{where}: unknown key {key!r} (known keys: {', '.join(known)})"
            )
    return value


def _tls_context(path: Path, section: dict[str, Any]) -> ssl.SSLContext | None:
    """The server's TLS context, the certificate and key loaded now; None without either."""
    files: dict[str, Path] = {}
    for name in _TLS_KEYS:
        value = section.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise WebConfigError(
                path, f"tls_server_config: {name} must be a file path, not {_kind(value)}"
            )
        files[name] = path.parent / value  # an absolute value replaces the folder
    if not files:
        return None
    for name in _TLS_KEYS:
        if name not in files:
            raise WebConfigError(
                path,
                f"tls_server_config: {name} is missing (TLS needs both cert_file and key_file)",
            )
    cert, key = files["cert_file"], files["key_file"]
    for name, file, marker, what in (
        ("cert_file", cert, b"-----BEGIN CERTIFICATE-----", "PEM certificate"),
        ("key_file", key, b"PRIVATE KEY-----", "PEM private key"),
    ):
        try:
            content = file.read_bytes()
        except OSError as exc:
            raise WebConfigError(
                path, f"tls_server_config: cannot read {name} {file}: {exc.strerror or exc}"
            ) from None
        if marker not in content:
            raise WebConfigError(path, f"tls_server_config: {name} {file} holds no {what}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # exporter-toolkit's default too
    try:
        # A callable password: an encrypted key fails here instead of prompting on the terminal.
        context.load_cert_chain(cert, key, password=_no_password)
    except _EncryptedKey:
        raise WebConfigError(
            path, f"tls_server_config: key_file {key} is encrypted; give an unencrypted key"
        ) from None
    except ssl.SSLError as exc:
        problem = (
            f"key_file {key} is not the key of cert_file {cert}"
            if exc.reason == "KEY_VALUES_MISMATCH"
            else f"cannot use cert_file {cert} with key_file {key}: {exc.reason or exc}"
        )
        raise WebConfigError(path, f"tls_server_config: {problem}") from None
    return context


class _EncryptedKey(Exception):
    """Raised by :func:`_no_password`, so an encrypted key is told apart from a broken one."""


def _no_password() -> NoReturn:
    raise _EncryptedKey


def _users(path: Path, value: Any) -> dict[str, bytes]:
    """Hashes by user name, checked now: a pasted password stops the start, not each scrape."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebConfigError(
            path, f"basic_auth_users must map user names to bcrypt hashes, not {_kind(value)}"
        )
    users: dict[str, bytes] = {}
    for user, hashed in value.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise WebConfigError(
                path, f"basic_auth_users: {user!r} is no user name (a non-empty text without ':')"
            )
        if not isinstance(hashed, str) or not _BCRYPT_HASH.fullmatch(hashed):
            raise WebConfigError(
                path,
                f"basic_auth_users: the hash of {user!r} is not a bcrypt hash "
                f"($2b$, $2a$ or $2y$, as `htpasswd -nBC 10 {user}` prints)",
            )
        users[user] = hashed.encode("ascii")
    return users


def exposure_warning(host: str, web_config: WebConfig | None) -> str | None:
    """Why serving on ``host`` would show the metrics, or passwords, to other machines; or None.

    None on a loopback address, or with both TLS and basic-auth users.
    """
    if _is_loopback(host):
        return None
    reachable = f"{host} is reachable from other machines"
    open_to_all = "anyone there can read the metrics"
    if web_config is None:
        return f"{reachable} and no --web-config is given: {open_to_all}"
    if not web_config.users:
        return f"{reachable} and {web_config.path} sets no basic_auth_users: {open_to_all}"
    if web_config.tls is None:
        return (
            f"{reachable} and {web_config.path} sets no tls_server_config: "
            "passwords cross the network unencrypted"
        )
    return None


def _is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False  # binding fails too, and says why
    return all(ipaddress.ip_address(str(info[4][0])).is_loopback for info in infos)


# -- the HTTP server ------------------------------------------------------------------------------

_IO_TIMEOUT_S = 10.0  # a handshake or request stalled this long gives its thread back
_VERDICTS_KEPT = 100  # as many as exporter-toolkit's cache keeps
_CHALLENGE = 'Basic realm="ptpd-monitor", charset="UTF-8"'
_UNAUTHORIZED = b"Unauthorized\n"


class _BasicAuth:
    """WSGI middleware: 401 with a ``WWW-Authenticate`` challenge unless a listed user's password.

    bcrypt is slow on purpose (tens of milliseconds at cost 10), and Prometheus sends the same
    credentials on every scrape: the verdicts on the last ``_VERDICTS_KEPT`` credentials are
    kept, keyed by an HMAC under a key of this process (the passwords themselves are not
    kept). The users are fixed while the exporter runs, so the credentials decide the hash
    compared. bcrypt runs one call at a time, so a flood of guesses occupies one core, not all.
    """

    def __init__(self, app: WSGIApplication, users: Mapping[str, bytes]) -> None:
        self._app = app
        self._users = dict(users)
        self._key = secrets.token_bytes(32)
        self._verdicts: dict[bytes, bool] = {}
        self._verdicts_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self._allowed(str(environ.get("HTTP_AUTHORIZATION", ""))):
            return self._app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [
                ("WWW-Authenticate", _CHALLENGE),
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(_UNAUTHORIZED))),
            ],
        )
        return [_UNAUTHORIZED]

    def _allowed(self, header: str) -> bool:
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            credentials = base64.b64decode(encoded.strip(), validate=True)
            user, colon, password = credentials.partition(b":")
            hashed = self._users.get(user.decode("utf-8")) if colon else None
        except (binascii.Error, UnicodeDecodeError):
            return False
        if hashed is None:
            return False
        key = hmac.digest(self._key, credentials, "sha256")
        with self._verdicts_lock:
            verdict = self._verdicts.get(key)
        if verdict is None:
            with self._bcrypt_lock:
                verdict = _checkpw(password, hashed)
            with self._verdicts_lock:
                if len(self._verdicts) >= _VERDICTS_KEPT:
                    del self._verdicts[next(iter(self._verdicts))]  # the oldest
                self._verdicts[key] = verdict
        return verdict


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # e.g. a password over bcrypt's 72 bytes, which bcrypt 5 refuses
        return False


class _Handler(WSGIRequestHandler):
    """No access log (a scrape every few seconds would flood stderr); stalled reads time out."""

    timeout = _IO_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing: see the class docstring."""


class _Server(ThreadingMixIn, WSGIServer):
    """A thread per connection; with TLS, the handshake runs in that thread as well.

    prometheus_client's own server wraps the listening socket, so handshakes run in the
    accepting thread, and one client that connects and stays silent holds up every scrape.
    """

    daemon_threads = True

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        self.address_family = family  # IPv6 too, before the base class makes the socket
        self._tls = tls
        super().__init__(cast("tuple[str, int] | tuple[str, int, int, int]", address), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handshake (with a timeout) here, in the connection's thread, then answer."""
        if self._tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(_IO_TIMEOUT_S)
        try:
            connection = self._tls.wrap_socket(request, server_side=True)
        except OSError as exc:  # a failed or stalled handshake: no HTTP to answer
            logger.debug(
                "ptpd-monitor exporter: TLS handshake with %s failed: %s", client_address, exc
            )
            return
        try:
            super().finish_request(connection, client_address)
        finally:
            self.shutdown_request(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A dropped or stalled connection is the client's business: no traceback on stderr."""
        logger.debug("ptpd-monitor exporter: request from %s failed", client_address, exc_info=True)


def serve(
    store: SampleStore,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    web_config: WebConfig | None = None,
    window_s: float = DEFAULT_WINDOW_S,
    settle_s: float = DEFAULT_SETTLE_S,
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` for ``store`` from a daemon thread; returns the server and thread.

    Stop it with ``server.shutdown(); server.server_close()``. Port 0 picks a free port
    (``server.server_port``). With ``web_config``, HTTPS and/or basic auth as it says.

    Raises:
        OSError: the address cannot be bound, e.g. the port is in use.
    """
    app: WSGIApplication = make_wsgi_app(
        build_registry(store, window_s=window_s, settle_s=settle_s)
    )
    tls = None
    if web_config is not None:
        tls = web_config.tls
        if web_config.users:
            app = _BasicAuth(app, web_config.users)
    server = _Server(host, port, tls)
    server.set_app(app)
    thread = threading.Thread(target=server.serve_forever, name="ptpd-exporter", daemon=True)
    thread.start()
    return server, thread
