"""Demo data for a fresh dashboard: a realistic past week, or a short session recorded live.

:func:`record_demo_week` (``ptpd-monitor demo``, the dashboard's "Generate demo data") writes
seven days of a printmaker's use of the calibration app, ending now. Nothing is made up at the
storage level: the samples go through ``SampleStore.write`` in the batches the publishers hand
the store (``_publisher.py``), with past timestamps, and the store then compacts them as it
compacts a live week:

- timings as ``PerformanceMonitor`` flushes them: metric column batches of ``(time, seconds)``
  with the session's ``session_id`` in the metadata;
- pipeline steps as ``ImageProcessingProfiler`` records them: a profile record per step, and
  ``pipeline.<step>_wall_time``, ``_cpu_time`` (seconds) and ``_memory`` (MB) samples;
- requests as ``APIPerformanceTracker`` flushes them: ``(time, ms, status)`` per endpoint,
  errors (5xx) with their ``error`` metadata;
- cache-stats snapshots from a real ``CacheManager`` driven through the week on a simulated
  clock, one per sampler tick in which its counters changed, as its ``pending_batches`` makes
  them;
- resource samples built by ``usage_to_record`` from ``ResourceUsage`` snapshots.

What the week holds (local times; every random draw comes from ``seed``):

- five working days with a morning and an afternoon session (the app is open from shortly
  before the first to shortly after the last), a weekend with one day off and one short
  session, and quiet nights: the app is closed, so nothing is recorded;
- every session starts by reading a step tablet and fitting a curve, then turns camera files
  and drum scans into negatives, so each session's report covers every operation;
- a slow day (:data:`SLOW_DAY_OFFSET` days ago): ``pipeline.resize`` takes 2.4 times as long;
- an afternoon of high CPU (:data:`HIGH_CPU_OFFSET` days ago, 13:40-16:20), which the alert
  history shows;
- a burst of API errors (yesterday, 11:10-11:30): calibrations and curve lookups fail with
  500 and 503;
- a cache that warms up each morning (a new process each day) and evicts once full;
- the current session, the last 75 minutes, in which ``pipeline.tone_curve`` is 2.8 times
  slower from an hour ago: the built-in regression watch fires on it (``ptpd-monitor watch``).

:func:`record_demo_session` (``ptpd-monitor demo --seconds N``) records live instead: real
image operations on a generated step tablet, API requests with a few errors, cache traffic and
resource samples, written by the process-wide instances as the calibration app itself would.
"""

from __future__ import annotations

import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil

from . import (
    CacheManager,
    get_api_tracker,
    get_monitor,
    get_profiler,
    get_resource_monitor,
    get_settings,
    get_store,
)
from . import flush as flush_all
from ._codec import MAX_BATCH_SPAN_S
from ._common import MB, endpoint_key
from .imaging import PIPELINE_STEPS, run_pipeline, step_tablet_tiff
from .models import ResourceUsage
from .profiler import CPU_TIME_SUFFIX, MEMORY_SUFFIX, WALL_TIME_SUFFIX
from .resources import usage_to_record
from .store import API, CACHE, METRIC, PROFILE, RESOURCE, ColumnBatch, RecordBatch, SampleStore

__all__ = [
    "CURRENT_SESSION_S",
    "DEMO_CACHE",
    "DEMO_ENDPOINTS",
    "DEMO_WEEK_DAYS",
    "ERROR_BURST_OFFSET",
    "HIGH_CPU_OFFSET",
    "REGRESSED_OPERATION",
    "SLOW_DAY_OFFSET",
    "SLOW_DAY_OPERATION",
    "record_demo_session",
    "record_demo_week",
]

FloatArray = npt.NDArray[np.float64]

# (method, route template, median ms, share of traffic, error statuses and their chance)
DEMO_ENDPOINTS: tuple[tuple[str, str, float, float, tuple[int, ...], float], ...] = (
    ("GET", "/api/curves/{curve_id}", 12.0, 0.35, (404,), 0.04),
    ("POST", "/api/calibrations", 85.0, 0.15, (422, 500), 0.06),
    ("POST", "/api/images/upload", 240.0, 0.10, (413, 415), 0.05),
    ("GET", "/api/negatives/{negative_id}/tiff", 60.0, 0.20, (404,), 0.02),
    ("GET", "/api/health", 1.5, 0.20, (), 0.0),
)
#: The demo's cache, in the live session and in the week.
DEMO_CACHE = "demo-curves"


# -- the week -------------------------------------------------------------------------------------

DEMO_WEEK_DAYS = 7
#: The slow day: this many days before today, ``SLOW_DAY_OPERATION`` takes SLOW_DAY_FACTOR times
#: as long as on the other days.
SLOW_DAY_OFFSET = 3
SLOW_DAY_OPERATION = "pipeline.resize"
SLOW_DAY_FACTOR = 2.4
#: In the last REGRESSION_S seconds, ``REGRESSED_OPERATION`` takes REGRESSION_FACTOR times as long.
REGRESSED_OPERATION = "pipeline.tone_curve"
REGRESSION_S = 65 * 60.0
REGRESSION_FACTOR = 2.8
#: The afternoon of high CPU, this many days before today (local hours).
HIGH_CPU_OFFSET = 2
HIGH_CPU_HOURS = (13 + 40 / 60, 16 + 20 / 60)
#: The burst of API errors, this many days before today (local hours).
ERROR_BURST_OFFSET = 1
ERROR_BURST_HOURS = (11 + 10 / 60, 11 + 30 / 60)
#: The current session: the last this many seconds, running until now.
CURRENT_SESSION_S = 75 * 60.0

_OFF_DAY_OFFSET, _SHORT_DAY_OFFSET = 6, 5  # the weekend: a day off, and one short session
_HISTORY_SAMPLE_S, _CURRENT_SAMPLE_S = 10.0, 2.0  # resource sampler periods
_CACHE_SIZE, _CACHE_TTL_S = 300, 8 * 3600.0
# Curve lookups a minute in a session (the current one, the earlier ones), and the share of them
# for the 40 popular curves (the rest are any of a few thousand).
_CURRENT_BROWSING, _BROWSING, _POPULAR = 5.0, 4.0, 0.62
_GB = MB * 1024.0

# Source images: (width, height) and the print long edges they are made at, with their chances.
_TABLET = 0
_SOURCES: tuple[tuple[int, int, tuple[int, ...], tuple[float, ...]], ...] = (
    (3600, 600, (1800,), (1.0,)),  # a 21-step tablet scanned at 600 dpi
    (6000, 4000, (2520, 3600), (0.4, 0.6)),  # 24 MP camera file
    (8256, 5504, (3600, 5040), (0.3, 0.7)),  # 45 MP camera file
    (11400, 7700, (5040,), (1.0,)),  # 88 MP drum scan
)
# Which source an image (not a tablet) is: the week's mix, and the current session's.
_IMAGE_MIX = (0.0, 0.70, 0.23, 0.07)
_CURRENT_MIX = (0.0, 0.74, 0.26, 0.0)
_FAILED_DECODE = 0.006  # image uploads the pipeline cannot read
# Per step: megapixels a second, and whether it works on the source (else the print) pixels;
# measured on the reference pipeline (imaging.py) with 24 MP JPEGs.
_STEP_SPEED: dict[str, tuple[float, bool]] = {
    "decode": (65.0, True),
    "luminance": (140.0, True),
    "resize": (30.0, False),
    "tone_curve": (260.0, False),
    "invert": (2500.0, False),
    "histogram": (300.0, False),
    "encode": (390.0, False),
}
# Per step: bytes a pixel it leaves behind (resident memory grows) and at its peak.
_STEP_MEMORY: dict[str, tuple[float, float, float]] = {  # delta bytes/px, its chance, peak
    "decode": (3.0, 0.75, 3.8),
    "luminance": (2.4, 1.0, 2.5),
    "resize": (2.0, 0.6, 4.0),
    "tone_curve": (2.0, 0.5, 2.05),
    "invert": (2.0, 0.5, 1.95),
    "histogram": (0.5, 0.3, 0.55),
    "encode": (2.8, 0.7, 2.0),
}
_STEP_GAP_S = 0.0005  # between two steps of a run
_UNREADABLE = "the file is not an image the pipeline can read (a truncated or damaged TIFF)"


@dataclass
class _Session:
    id: str
    start: float
    end: float
    process: int
    current: bool = False


@dataclass
class _Process:
    pid: int
    start: float
    end: float
    sample_s: float


@dataclass
class _Runs:
    """Pipeline runs, one entry each, in time order."""

    start: list[float] = field(default_factory=list)
    session: list[int] = field(default_factory=list)
    source: list[int] = field(default_factory=list)
    edge: list[int] = field(default_factory=list)

    def add(self, start: float, session: int, source: int, edge: int) -> None:
        self.start.append(start)
        self.session.append(session)
        self.source.append(source)
        self.edge.append(edge)


@dataclass
class _Requests:
    """Requests per endpoint series: times (when each ended), milliseconds, status, metadata."""

    series: dict[str, tuple[list[float], list[float], list[int], list[dict[str, Any] | None]]] = (
        field(default_factory=dict)
    )

    def add(
        self,
        method: str,
        route: str,
        ts: float,
        ms: float,
        status: int,
        meta: dict[str, Any] | None,
    ) -> None:
        key = endpoint_key(route, method)
        stamps, durations, statuses, metas = self.series.setdefault(key, ([], [], [], []))
        stamps.append(ts)
        durations.append(ms)
        statuses.append(status)
        if status >= 500:
            meta = {**(meta or {}), "error": _ERROR_TEXT.get(status, "Server Error")}
        metas.append(meta)

    @property
    def count(self) -> int:
        return sum(len(s[0]) for s in self.series.values())

    @property
    def errors(self) -> int:
        return sum(sum(code >= 400 for code in s[2]) for s in self.series.values())


_ERROR_TEXT = {500: "Internal Server Error", 503: "Service Unavailable"}


def _local(day: date, hours: float) -> float:
    """Epoch seconds of a local wall-clock time on ``day``."""
    return (datetime(day.year, day.month, day.day) + timedelta(hours=hours)).timestamp()


def _plan(now: float, rng: np.random.Generator) -> tuple[list[_Session], list[_Process]]:
    """The week's sessions and app processes (each day the app is opened anew)."""
    today = datetime.fromtimestamp(now).date()
    current_start = now - CURRENT_SESSION_S
    sessions: list[_Session] = []
    processes: list[_Process] = []
    for offset in range(DEMO_WEEK_DAYS, -1, -1):
        day = today - timedelta(days=offset)
        if offset == _OFF_DAY_OFFSET:
            continue
        if offset == _SHORT_DAY_OFFSET:
            start = 10.5 + rng.uniform(-0.5, 0.5)
            hours = [(start, start + rng.uniform(1.6, 2.2))]
        else:
            hours = [
                (9.0 + rng.uniform(-0.33, 0.4), 12.17 + rng.uniform(-0.25, 0.33)),
                (13.17 + rng.uniform(-0.17, 0.4), 17.67 + rng.uniform(-0.5, 0.5)),
            ]
        spans = [(_local(day, a), _local(day, b)) for a, b in hours]
        if offset == 0:  # today: what ended well before the current session
            latest = current_start - 15 * 60
            spans = [(a, min(b, latest)) for a, b in spans if min(b, latest) - a >= 20 * 60]
        if not spans:
            continue
        owner = len(processes)
        processes.append(
            _Process(
                pid=0,
                start=spans[0][0] - rng.uniform(5, 20) * 60,
                end=min(spans[-1][1] + rng.uniform(5, 25) * 60, current_start - 5 * 60),
                sample_s=_HISTORY_SAMPLE_S,
            )
        )
        for a, b in spans:
            sessions.append(_Session(_session_id(a), a, b, owner))
    processes.append(_Process(0, current_start - 90.0, now, _CURRENT_SAMPLE_S))
    sessions.append(
        _Session(_session_id(current_start), current_start, now, len(processes) - 1, True)
    )
    pids = rng.choice(np.arange(2000, 60000), size=len(processes), replace=False)
    for process, pid in zip(processes, pids, strict=True):
        process.pid = int(pid)
    return sessions, processes


def _session_id(start: float) -> str:
    return f"demo-{datetime.fromtimestamp(start):%Y%m%d-%H%M}"


def _output_size(source: int, edge: int) -> tuple[int, int]:
    width, height = _SOURCES[source][:2]
    scale = edge / max(width, height)
    return max(round(width * scale), 1), max(round(height * scale), 1)


def _rough_seconds(source: int, edge: int) -> float:
    """About how long a run takes: spaces one from the next."""
    width, height = _SOURCES[source][:2]
    out_w, out_h = _output_size(source, edge)
    total = 0.0
    for speed, on_source in _STEP_SPEED.values():
        pixels = width * height if on_source else out_w * out_h
        total += pixels / 1e6 / speed
    return total


def _pick_source(rng: np.random.Generator, mix: tuple[float, ...]) -> tuple[int, int]:
    source = int(rng.choice(len(_SOURCES), p=mix))
    edges, chances = _SOURCES[source][2], _SOURCES[source][3]
    return source, int(rng.choice(edges, p=chances))


def _plan_runs(sessions: list[_Session], rng: np.random.Generator) -> _Runs:
    """Jobs in each session: a step tablet first, then batches of images, now and then a tablet.

    The current session runs steadily (a run every half minute or so); earlier ones come in
    jobs of one to four runs a few minutes apart.
    """
    runs = _Runs()
    for index, session in enumerate(sessions):
        t = session.start + rng.uniform(30, 120)
        first = True
        # A run, its download and its curve fit end before the session does (for the current
        # session: before now).
        while t < session.end - 30:
            if session.current:
                if first or rng.random() < 0.07:
                    source, edge = _TABLET, 1800
                else:
                    source, edge = _pick_source(rng, _CURRENT_MIX)
                runs.add(t, index, source, edge)
                t += _rough_seconds(source, edge) + rng.uniform(12, 45)
                first = False
                continue
            tablet = first or rng.random() < 0.15
            count = (
                int(rng.choice([1, 2], p=[0.6, 0.4]))
                if tablet
                else int(rng.choice([1, 2, 3, 4], p=[0.4, 0.3, 0.2, 0.1]))
            )
            for _ in range(count):
                if t >= session.end - 30:
                    break
                source, edge = (_TABLET, 1800) if tablet else _pick_source(rng, _IMAGE_MIX)
                runs.add(t, index, source, edge)
                t += _rough_seconds(source, edge) + rng.uniform(5, 30)
            first = False
            t += rng.exponential(300.0)
    return runs


@dataclass
class _Timings:
    """The pipeline steps of every run: walls, CPU, memory and end times, runs x steps."""

    ok: npt.NDArray[np.bool_]  # runs whose upload decoded
    src_px: FloatArray
    out_px: FloatArray
    wall: FloatArray
    cpu: FloatArray
    delta_mb: FloatArray
    peak_mb: FloatArray
    ends: FloatArray


def _day_span(now: float, offset: int, hours: tuple[float, float]) -> tuple[float, float]:
    day = datetime.fromtimestamp(now).date() - timedelta(days=offset)
    return _local(day, hours[0]), _local(day, hours[1])


def _time_steps(runs: _Runs, now: float, rng: np.random.Generator) -> _Timings:
    starts = np.asarray(runs.start, dtype=np.float64)
    sources = np.asarray(runs.source)
    edges = np.asarray(runs.edge)
    n, steps = starts.size, len(PIPELINE_STEPS)
    sizes = np.array([[w * h for w, h, *_ in _SOURCES]], dtype=np.float64)
    src_px = sizes[0, sources]
    out_px = np.array([np.prod(_output_size(s, e)) for s, e in zip(sources, edges, strict=True)])
    out_px = out_px.astype(np.float64).reshape(n)
    slow_lo, slow_hi = _day_span(now, SLOW_DAY_OFFSET, (0.0, 24.0))
    busy_lo, busy_hi = _day_span(now, HIGH_CPU_OFFSET, HIGH_CPU_HOURS)
    contended = (starts >= busy_lo) & (starts < busy_hi)
    wall = np.empty((n, steps))
    delta = np.empty((n, steps))
    peak = np.empty((n, steps))
    for j, step in enumerate(PIPELINE_STEPS):
        speed, on_source = _STEP_SPEED[step]
        pixels = src_px if on_source else out_px
        factor = rng.lognormal(0.0, 0.10, n) * np.where(contended, 1.12, 1.0)
        if f"pipeline.{step}" == SLOW_DAY_OPERATION:
            factor *= np.where((starts >= slow_lo) & (starts < slow_hi), SLOW_DAY_FACTOR, 1.0)
        if f"pipeline.{step}" == REGRESSED_OPERATION:
            factor *= np.where(starts >= now - REGRESSION_S, REGRESSION_FACTOR, 1.0)
        wall[:, j] = 0.0003 + pixels / 1e6 / speed * factor
        per_px, chance, peak_per_px = _STEP_MEMORY[step]
        kept = rng.random(n) < chance
        delta[:, j] = np.where(
            kept,
            pixels * per_px / MB * rng.lognormal(0.0, 0.05, n),
            rng.choice([0.0, 0.0039, 0.0625, 0.125], size=n),
        )
        peak[:, j] = pixels * peak_per_px / MB * rng.lognormal(0.0, 0.04, n)
    cpu = wall * np.where(contended, rng.uniform(0.8, 0.9, n), rng.uniform(0.95, 0.995, n))[:, None]
    ends = starts[:, None] + np.cumsum(wall + _STEP_GAP_S, axis=1)
    ok = (sources == _TABLET) | (rng.random(n) >= _FAILED_DECODE)
    ok[np.asarray(runs.session) == np.max(runs.session)] = True  # the current session is clean
    return _Timings(ok, src_px, out_px, wall, cpu, delta, peak, ends)


def _column_batches(
    kind: str,
    series: str,
    columns: list[FloatArray],
    unit: str,
    metas: list[dict[str, Any] | None],
) -> list[ColumnBatch]:
    """The samples of one series as a flush would hand them over: a batch per clock minute."""
    order = np.argsort(columns[0], kind="stable")
    columns = [c[order] for c in columns]
    metas = [metas[i] for i in order]
    minutes = np.floor(columns[0] / MAX_BATCH_SPAN_S)
    cuts = np.flatnonzero(np.diff(minutes)) + 1
    batches = []
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, minutes.size], strict=True):
        meta = {i - int(lo): m for i, m in enumerate(metas[lo:hi], start=int(lo)) if m}
        piece = tuple(c[lo:hi] for c in columns)
        batches.append(ColumnBatch(kind, series, piece, unit, meta or None))
    return batches


class _Metrics:
    """Monitor samples per series: times, values and metadata."""

    def __init__(self) -> None:
        self.series: dict[str, tuple[str, list[FloatArray], list[FloatArray], list[Any]]] = {}

    def add(
        self,
        name: str,
        unit: str,
        ts: FloatArray,
        values: FloatArray,
        metas: list[dict[str, Any] | None],
    ) -> None:
        _, stamps, numbers, meta = self.series.setdefault(name, (unit, [], [], []))
        stamps.append(ts)
        numbers.append(values)
        meta.extend(metas)

    @property
    def count(self) -> int:
        return sum(sum(a.size for a in s[1]) for s in self.series.values())

    def batches(self) -> list[ColumnBatch]:
        out: list[ColumnBatch] = []
        for name, (unit, stamps, numbers, metas) in self.series.items():
            columns = [np.concatenate(stamps), np.concatenate(numbers)]
            out.extend(_column_batches(METRIC, name, columns, unit, metas))
        return out


def _record_runs(
    runs: _Runs, timings: _Timings, tags: list[dict[str, Any]], rng: np.random.Generator
) -> tuple[_Metrics, list[RecordBatch]]:
    """The profiler's records and series of every step, and the app's timers around a tablet."""
    metrics = _Metrics()
    run_tags = [tags[s] for s in runs.session]
    ok = timings.ok
    profiles: list[RecordBatch] = []
    for j, step in enumerate(PIPELINE_STEPS):
        operation = f"pipeline.{step}"
        # A failed decode is profiled (with its error) and ends its run.
        done = ok if j else np.ones_like(ok)
        _, on_source = _STEP_SPEED[step]
        pixels = (timings.src_px if on_source else timings.out_px)[done].astype(np.int64)
        rows = []
        for ts, wall, cpu, delta, peak, px, good in zip(
            timings.ends[done, j].tolist(),
            timings.wall[done, j].tolist(),
            timings.cpu[done, j].tolist(),
            timings.delta_mb[done, j].tolist(),
            timings.peak_mb[done, j].tolist(),
            pixels.tolist(),
            ok[done].tolist(),
            strict=True,
        ):
            row: dict[str, Any] = {  # as ImageProcessingProfiler.profile_operation keeps it
                "operation": operation,
                "success": good,
                "wall_time_s": wall,
                "cpu_time_s": cpu,
                "memory_delta_mb": delta,
                "peak_memory_mb": peak,
                "pixels": px,
                "megapixels_per_s": px / wall / 1e6 if px and wall > 0 else None,
                "ts": ts,
            }
            if not good:
                row["error"] = f"ImageInputError: {_UNREADABLE}"
            rows.append(row)
        profiles.append(RecordBatch(PROFILE, operation, rows))
        # The profiler's series, of successful profiles only.
        stamps = timings.ends[ok, j]
        metas: list[dict[str, Any] | None] = [run_tags[i] for i in np.flatnonzero(ok)]
        metrics.add(operation + WALL_TIME_SUFFIX, "seconds", stamps, timings.wall[ok, j], metas)
        metrics.add(operation + CPU_TIME_SUFFIX, "seconds", stamps, timings.cpu[ok, j], metas)
        metrics.add(operation + MEMORY_SUFFIX, "MB", stamps, timings.delta_mb[ok, j], metas)
    tablets = np.flatnonzero(np.asarray(runs.source) == _TABLET)
    metas = [run_tags[i] for i in tablets]
    read_end = timings.ends[tablets, -1] + 0.002
    read = read_end - np.asarray(runs.start)[tablets] + rng.uniform(0.001, 0.004, tablets.size)
    fit = rng.lognormal(np.log(0.018), 0.35, tablets.size)
    metrics.add("calibration.read_step_tablet", "seconds", read_end, read, metas)
    metrics.add("curve.fit", "seconds", read_end + fit, fit, metas)
    return metrics, profiles


def _lognormal_ms(rng: np.random.Generator, median_ms: float, sigma: float) -> float:
    return float(median_ms * rng.lognormal(0.0, sigma))


def _plan_requests(
    runs: _Runs,
    timings: _Timings,
    sessions: list[_Session],
    processes: list[_Process],
    tags: list[dict[str, Any]],
    now: float,
    rng: np.random.Generator,
) -> tuple[_Requests, list[tuple[float, int, str, str]]]:
    """The app's requests, and the curve-cache traffic they cause: (time, process, op, key)."""
    requests = _Requests()
    lookups: list[tuple[float, int, str, str]] = []
    burst_lo, burst_hi = _day_span(now, ERROR_BURST_OFFSET, ERROR_BURST_HOURS)

    def in_burst(ts: float) -> bool:
        return burst_lo <= ts < burst_hi

    next_curve = 5000
    for i, (start, session_index, source) in enumerate(
        zip(runs.start, runs.session, runs.source, strict=True)
    ):
        session = sessions[session_index]
        tag = tags[session_index]
        owner = session.process
        end = float(timings.ends[i, -1])
        if source == _TABLET:
            fit_end = end + 0.02 + float(rng.lognormal(np.log(0.018), 0.35))
            status = 201
            ms = _lognormal_ms(rng, 85.0, 0.35)
            if in_burst(fit_end) and rng.random() < 0.6:
                status = 500 if rng.random() < 0.7 else 503
                ms = _lognormal_ms(rng, 3000.0, 0.3) if status == 503 else ms * 0.3
            elif rng.random() < 0.03:
                status = 422
            requests.add("POST", "/api/calibrations", fit_end + ms / 1000, ms, status, tag)
            if status == 201:
                next_curve += 1
                lookups.append((fit_end, owner, "set", f"curve:{next_curve}"))
        else:
            px = float(timings.src_px[i])
            ms = _lognormal_ms(rng, 60.0 + px / 1e6 * 9.0, 0.3)
            status = 201 if timings.ok[i] else 415
            requests.add("POST", "/api/images/upload", start - 0.02, ms, status, tag)
            if timings.ok[i]:
                after = end + float(rng.uniform(1.0, 8.0))
                ms = _lognormal_ms(rng, 20.0 + float(timings.out_px[i]) * 2 / 1e6 * 3.0, 0.3)
                status = 404 if rng.random() < 0.01 else 200
                requests.add("GET", "/api/negatives/{negative_id}/tiff", after, ms, status, tag)
        if timings.ok[i]:  # the tone curve comes from the cache
            tone_at = float(timings.ends[i, PIPELINE_STEPS.index("tone_curve") - 1])
            lookups.append((tone_at, owner, "get", f"curve:{next_curve}"))
    # Browsing curves: steady in a session, three times as much (retries) in the burst.
    popular = np.arange(1, 41)
    weights = 1.0 / popular
    weights /= weights.sum()
    for index, session in enumerate(sessions):
        rate = (_CURRENT_BROWSING if session.current else _BROWSING) / 60.0
        length = session.end - session.start
        stamps = session.start + np.sort(rng.uniform(0, length, rng.poisson(rate * length)))
        lo, hi = max(burst_lo, session.start), min(burst_hi, session.end)
        if hi > lo:
            extra = lo + rng.uniform(0, hi - lo, rng.poisson(2 * rate * (hi - lo)))
            stamps = np.sort(np.r_[stamps, extra])
        for ts in stamps.tolist():
            curve = (
                int(rng.choice(popular, p=weights))
                if rng.random() < _POPULAR
                else int(rng.integers(41, 4000))
            )
            ms = _lognormal_ms(rng, 12.0, 0.45)
            status = 200
            if in_burst(ts) and rng.random() < 0.45:
                status = 500 if rng.random() < 0.75 else 503
                ms = _lognormal_ms(rng, 2500.0, 0.3) if status == 503 else ms * 0.5
            elif rng.random() < 0.03:
                status = 404
            requests.add("GET", "/api/curves/{curve_id}", ts, ms, status, tags[index])
            if status == 200:
                lookups.append((ts - ms / 1000, session.process, "get", f"curve:{curve}"))
    # The front end polls the health check every minute while the app is open.
    for process in processes:
        stamps = np.arange(process.start + 5.0, process.end, 60.0)
        stamps = stamps + rng.uniform(0, 0.5, stamps.size)
        durations = rng.lognormal(np.log(1.5), 0.3, stamps.size)
        for ts, ms in zip(stamps.tolist(), durations.tolist(), strict=True):
            requests.add("GET", "/api/health", ts, ms, 200, None)
    lookups.sort()
    return requests, lookups


def _request_batches(requests: _Requests) -> list[ColumnBatch]:
    out: list[ColumnBatch] = []
    for key, (stamps, durations, statuses, metas) in requests.series.items():
        columns = [
            np.asarray(stamps, dtype=np.float64),
            np.asarray(durations, dtype=np.float64),
            np.asarray(statuses, dtype=np.float64),
        ]
        out.extend(_column_batches(API, key, columns, "ms", metas))
    return out


def _cache_snapshots(
    lookups: list[tuple[float, int, str, str]], processes: list[_Process]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A real CacheManager per process, driven on a simulated clock; snapshots as it publishes
    them, one per sampler tick in which its counters changed. Also the last one's stats."""
    rows: list[dict[str, Any]] = []
    stats: dict[str, Any] = {}
    by_process: dict[int, list[tuple[float, str, str]]] = {}
    for ts, owner, op, key in lookups:
        by_process.setdefault(owner, []).append((ts, op, key))
    for index, process in enumerate(processes):
        clock = [process.start]
        cache = CacheManager(
            max_size=_CACHE_SIZE,
            default_ttl=_CACHE_TTL_S,
            backend="memory",
            name=DEMO_CACHE,
            clock=lambda clock=clock: clock[0],  # type: ignore[misc]
        )
        tick = process.sample_s
        pending_tick: float | None = None

        def snapshot(at: float, cache: CacheManager = cache, pid: int = process.pid) -> None:
            for batch in cache.pending_batches():
                for row in batch.rows:
                    rows.append({**row, "ts": at, "pid": pid})

        for ts, op, key in by_process.get(index, []):
            boundary = process.start + np.ceil((ts - process.start) / tick) * tick
            if pending_tick is not None and boundary > pending_tick:
                snapshot(pending_tick)
            pending_tick = float(boundary)
            clock[0] = ts
            if op == "set" or cache.get(key) is None:
                cache.set(key, {"curve": key})
        if pending_tick is not None:
            snapshot(min(pending_tick, process.end))
        stats = cache.get_stats().model_dump(mode="json")
    return rows, stats


def _resource_rows(
    processes: list[_Process], timings: _Timings, now: float, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """What the sampler would have taken: CPU follows the pipeline runs, memory their peaks,
    the disk the negatives written; the high-CPU afternoon is another program's batch job."""
    cores = max(psutil.cpu_count() or 1, 4)
    total_mb = psutil.virtual_memory().total / MB
    try:
        disk = psutil.disk_usage(str(get_settings().DISK_PATH))
        disk_total, disk_used_now = disk.total / _GB, disk.used / _GB
    except (OSError, ValueError):
        disk_total, disk_used_now = 512.0, 300.0
    step_ends = timings.ends[timings.ok].ravel()
    step_walls = timings.wall[timings.ok].ravel()
    run_ends = timings.ends[timings.ok, -1]
    written_gb = (timings.out_px[timings.ok] * 2 + timings.src_px[timings.ok]) / 1024**3
    disk_start = max(disk_used_now - float(written_gb.sum()) - 0.5, 0.0)
    order = np.argsort(run_ends)
    written_at, written = run_ends[order], np.cumsum(written_gb[order])
    busy_lo, busy_hi = _day_span(now, HIGH_CPU_OFFSET, HIGH_CPU_HOURS)
    dip = busy_lo + 85 * 60.0
    rows: list[dict[str, Any]] = []
    for process in processes:
        stamps = np.arange(process.start, process.end - 0.1, process.sample_s)
        if stamps.size == 0:
            continue
        stamps = stamps + rng.uniform(0, 0.05, stamps.size)
        edges = np.r_[stamps[0] - process.sample_s, stamps]
        busy, _ = np.histogram(step_ends, bins=edges, weights=step_walls)
        busy = np.minimum(busy, process.sample_s)
        other = np.clip(np.cumsum(rng.normal(0, 0.4, stamps.size)) % 12.0, 0, None)
        cpu = 3.0 + other + rng.gamma(2.0, 1.0, stamps.size) + 100 * busy / process.sample_s / cores
        hot = (stamps >= busy_lo) & (stamps < busy_hi) & ~((stamps >= dip) & (stamps < dip + 50))
        cpu = np.where(hot, np.clip(rng.normal(91.0, 3.5, stamps.size), 81.5, 99.6), cpu)
        cpu = np.round(np.clip(cpu, 0.0, 100.0), 1)
        hours = (stamps - process.start) / 3600
        memory = 38.0 + rng.uniform(-3, 3) + np.minimum(0.8 * hours, 6.0)
        memory += np.where(hot, 12.0, 0.0) + rng.normal(0, 0.3, stamps.size)
        peaks, _ = np.histogram(step_ends, bins=edges, weights=timings.peak_mb[timings.ok].ravel())
        percent = np.round(np.clip(memory + 100 * peaks / total_mb, 1.0, 99.0), 1)
        used_gb = disk_start + np.r_[0.0, written][np.searchsorted(written_at, stamps)]
        columns = (stamps.tolist(), cpu.tolist(), percent.tolist(), used_gb.tolist())
        for ts, c, m, d in zip(*columns, strict=True):
            used_mb = total_mb * m / 100
            usage = ResourceUsage(
                cpu_percent=c,
                memory_percent=m,
                memory_used_mb=used_mb,
                memory_available_mb=total_mb - used_mb,
                disk_percent=round(100 * d / disk_total, 1),
                disk_used_gb=d,
                disk_free_gb=disk_total - d,
                timestamp=datetime.fromtimestamp(ts, UTC),
            )
            rows.append(usage_to_record(usage))
    return rows


def record_demo_week(
    *,
    progress: Callable[[float], None] | None = None,
    seed: int | None = None,
    now: float | None = None,
    store: SampleStore | None = None,
) -> dict[str, Any]:
    """Write a realistic past week into the store, ending now (see the module docstring).

    Args:
        progress: called with the fraction done, 0.0 to 1.0.
        seed: makes the week repeatable (the same samples relative to ``now``).
        now: the week's end in epoch seconds (default: the clock).
        store: where to write (default: the process-wide store).

    Returns:
        What was written: ``session_id`` (the current session, which covers every operation),
        ``sessions``, ``pipeline_runs``, ``requests``, ``request_errors``, sample counts and
        ``seconds`` taken.

    Raises:
        RuntimeError: storing is disabled (``PTPD_MONITORING_STORE_ENABLED=false``).
    """
    began = time.perf_counter()
    if store is None:
        if not get_settings().STORE_ENABLED:
            raise RuntimeError(
                "storing is disabled (PTPD_MONITORING_STORE_ENABLED=false); a demo week "
                "needs the sample store"
            )
        store = get_store()
    report = progress or (lambda fraction: None)
    now = time.time() if now is None else float(now)
    rng = np.random.default_rng(seed)
    report(0.0)
    sessions, processes = _plan(now, rng)
    tags = [{"session_id": s.id} for s in sessions]
    runs = _plan_runs(sessions, rng)
    timings = _time_steps(runs, now, rng)
    metrics, profiles = _record_runs(runs, timings, tags, rng)
    requests, lookups = _plan_requests(runs, timings, sessions, processes, tags, now, rng)
    snapshots, cache_stats = _cache_snapshots(lookups, processes)
    resources = _resource_rows(processes, timings, now, rng)
    report(0.25)
    host = socket.gethostname()
    parts: list[tuple[float, list[ColumnBatch] | list[RecordBatch]]] = [
        (0.45, metrics.batches()),
        (0.55, _request_batches(requests)),
        (0.6, profiles),
        (0.65, [RecordBatch(RESOURCE, host, resources)]),
        (0.7, [RecordBatch(CACHE, DEMO_CACHE, snapshots)]),
    ]
    for done, batches in parts:
        store.write(batches)
        report(done)
    store.compact()  # what a live week's writers do every few minutes
    report(1.0)
    return {
        "session_id": sessions[-1].id,
        "sessions": [s.id for s in sessions],
        "days": DEMO_WEEK_DAYS,
        "since": min(p.start for p in processes),
        "until": now,
        "pipeline_runs": len(runs.start),
        "requests": requests.count,
        "request_errors": requests.errors,
        "metric_samples": metrics.count,
        "profiles": sum(batch.size for batch in profiles),
        "resource_samples": len(resources),
        "cache_snapshots": len(snapshots),
        "cache": cache_stats,
        "seconds": time.perf_counter() - began,
    }


# -- a live session -------------------------------------------------------------------------------


def _api_traffic(rng: random.Random, session_id: str, requests: int) -> int:
    tracker = get_api_tracker()
    errors = 0
    weights = [endpoint[3] for endpoint in DEMO_ENDPOINTS]
    for method, route, median_ms, _, statuses, error_chance in rng.choices(
        DEMO_ENDPOINTS, weights, k=requests
    ):
        duration_s = median_ms * rng.lognormvariate(0.0, 0.45) / 1000.0
        status = 200 if method == "GET" else 201
        error = None
        if statuses and rng.random() < error_chance:
            status = rng.choice(statuses)
            error = "Internal Server Error" if status == 500 else None
            errors += 1
        tracker.track_request(
            route, duration_s, status, method, error=error, metadata={"session_id": session_id}
        )
    return errors


_DEMO_CACHES: dict[str, CacheManager] = {}


def _demo_cache() -> CacheManager:
    """A cache of its own: the app's cache (shared on disk, perhaps) never gets made-up curves.

    One per store folder, so sessions recorded into the same store add up.
    """
    settings = get_settings()
    folder = str(settings.STORE_DIR)
    cache = _DEMO_CACHES.get(folder)
    if cache is None:
        store = get_store() if settings.STORE_ENABLED else None
        cache = CacheManager(
            max_size=300, default_ttl=600, backend="memory", name=DEMO_CACHE, store=store
        )
        _DEMO_CACHES[folder] = cache
    return cache


def _cache_traffic(rng: random.Random, lookups: int) -> None:
    """Curve lookups with a few popular curves, so the hit rate settles somewhere realistic."""
    cache = _demo_cache()
    for _ in range(lookups):
        key = f"curve:{min(int(rng.paretovariate(0.6)), 1000)}"
        if cache.get(key) is None:
            cache.set(key, {"points": [round(rng.random(), 4) for _ in range(8)]}, ttl=600)


def record_demo_session(
    seconds: float = 8.0,
    *,
    progress: Callable[[float], None] | None = None,
    session_id: str | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Record about ``seconds`` of a calibration session live; returns what was recorded.

    Args:
        seconds: how long to run (at least one pass of every part runs).
        progress: called with the fraction done, 0.0 to 1.0.
        session_id: tags the session's timings and requests (a fresh one by default).
        seed: makes the simulated traffic repeatable.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    rng = random.Random(seed)
    session_id = session_id or f"demo-{uuid.uuid4().hex[:8]}"
    monitor, profiler = get_monitor(), get_profiler()
    resources = get_resource_monitor()
    was_sampling = resources.is_sampling
    if not was_sampling:
        resources.start_sampling(interval=min(1.0, max(seconds / 10, 0.1)))
    tablet = step_tablet_tiff(width=1200, height=300, steps=21)
    tag = {"session_id": session_id}
    start, passes, requests, errors = time.monotonic(), 0, 0, 0
    try:
        while True:
            with monitor.timer("calibration.read_step_tablet", tag):
                result = run_pipeline(
                    tablet,
                    long_edge_px=rng.choice((600, 900, 1200)),
                    gamma=rng.uniform(0.8, 1.6),
                    profile=profiler.profile_operation,
                )
            with monitor.timer("curve.fit", tag):
                sum(result.histogram.values())
                time.sleep(rng.uniform(0.002, 0.02))
            batch = rng.randint(15, 40)
            errors += _api_traffic(rng, session_id, batch)
            requests += batch
            _cache_traffic(rng, rng.randint(30, 80))
            passes += 1
            done = (time.monotonic() - start) / seconds
            if progress is not None:
                progress(min(done, 1.0))
            if done >= 1.0:
                break
    finally:
        if not was_sampling:
            resources.stop_sampling()
        _demo_cache().flush()
        flush_all()
    return {
        "session_id": session_id,
        "pipeline_runs": passes,
        "requests": requests,
        "request_errors": errors,
        "cache": _demo_cache().get_stats().model_dump(mode="json"),
    }
