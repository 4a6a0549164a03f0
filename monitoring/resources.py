"""ResourceMonitor: CPU, memory, disk and NVIDIA GPUs, alerts over thresholds, a background sampler.

Every reading is non-blocking, so ``check_resources()`` costs well under a millisecond and the
dashboard can call it on each refresh. The sampler thread appends a snapshot every
``SAMPLE_INTERVAL_S`` to a bounded in-memory history and, when the monitor has a store, to the
rows the flusher writes as ``resource`` records (one series per host).
"""

from __future__ import annotations

import collections
import enum
import logging
import math
import numbers
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import psutil

from . import _nvml
from ._common import MB
from ._publisher import RecordPublisher
from .models import GPUUsage, ResourceUsage
from .settings import get_settings
from .store import RESOURCE, SampleStore

__all__ = [
    "DEFAULT_MAX_HISTORY",
    "MIN_ALERT_DURATION_S",
    "ResourceMonitor",
    "Severity",
    "alert_runs",
    "classify",
    "critical_level",
    "usage_to_record",
]

logger = logging.getLogger(__name__)

_GB = MB * 1024.0
DEFAULT_MAX_HISTORY = 3600  # two hours at the default 2 s sampling interval
# Rows kept for the store while nobody flushes them (the flusher normally takes them every
# second); past this the oldest go, counted in ``dropped_samples``.
_MAX_PENDING = 100_000
# /proc/stat counts CPU time in 10 ms ticks: a window shorter than this reads as 0 % or 100 %.
_CPU_MIN_WINDOW_S = 0.1


class _DiskUsage(NamedTuple):
    percent: float
    used: float
    free: float


_NO_DISK = _DiskUsage(math.nan, math.nan, math.nan)


class Severity(enum.IntEnum):
    """How far past its threshold a reading is; ordered, so ``max()`` picks the worst."""

    WARNING = 1
    CRITICAL = 2


# A crossing of a threshold shorter than this is a blip, not an alert (see alert_runs).
MIN_ALERT_DURATION_S = 30.0


def critical_level(threshold: float) -> float:
    """Where "critical" starts for a warning ``threshold``: halfway from it to 100 %.

    >>> critical_level(80.0)
    90.0
    """
    return threshold + (100.0 - threshold) / 2.0


def alert_runs(
    seconds: npt.ArrayLike,
    values: npt.ArrayLike,
    threshold: float,
    min_duration_s: float = MIN_ALERT_DURATION_S,
) -> list[tuple[int, int]]:
    """The crossings of ``threshold`` in time-ordered samples that last long enough to alert.

    A crossing is a run of consecutive samples at or above the threshold (the warning level,
    as in :func:`classify`); it lasts from its first sample's time to its last one's, and one
    shorter than ``min_duration_s`` is a blip, not an alert.

    Args:
        seconds: the samples' times in seconds, ascending.
        values: the samples' percentages, in the same order.
        threshold: the warning level.
        min_duration_s: the shortest crossing that counts.

    Returns:
        ``(first, last)`` sample indices of each crossing (both included), oldest first.

    >>> alert_runs([0, 10, 20, 30, 40, 50], [85, 95, 91, 80, 10, 99], 80.0)
    [(0, 3)]
    """
    times = np.asarray(seconds, dtype=np.float64)
    above = np.asarray(values, dtype=np.float64) >= threshold
    # Where `above` switches on, and where it switches off again.
    edges = np.diff(np.r_[False, above, False].astype(np.int8))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    long_enough = times[stops] - times[starts] >= min_duration_s
    return [(int(a), int(b)) for a, b in zip(starts[long_enough], stops[long_enough], strict=True)]


def _severity(usage: float | None, threshold: float) -> Severity | None:
    if usage is None or not math.isfinite(usage):
        return None
    if usage >= critical_level(threshold):
        return Severity.CRITICAL
    if usage >= threshold:
        return Severity.WARNING
    return None


def classify(usage: float | None, threshold: float) -> str | None:
    """The alert level of a percentage: "warning" from ``threshold``, "critical" halfway to 100.

    Args:
        usage: a percentage; None or NaN (an unreadable gauge) gives None.
        threshold: the warning level, e.g. 80.0 (critical then starts at 90.0).

    Returns:
        "warning", "critical", or None below the threshold.

    >>> classify(85.0, 80.0), classify(90.0, 80.0), classify(50.0, 80.0)
    ('warning', 'critical', None)
    """
    level = _severity(usage, threshold)
    return None if level is None else level.name.lower()


def _check_threshold(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 < float(value) <= 100.0
    ):
        raise ValueError(f"{name} must be a percentage with 0 < {name} <= 100, got {value!r}")
    return float(value)


class _CPUSample(NamedTuple):
    busy: float  # seconds of CPU time spent working, all CPUs together
    total: float  # seconds of CPU time, idle included


def _cpu_sample() -> _CPUSample:
    # psutil.cpu_percent(interval=None) keeps one baseline per *thread*, shared with every other
    # caller in that thread, so a first call from a new thread (a Streamlit rerun, the sampler)
    # answers a meaningless 0.0. This monitor keeps its own baseline instead; the arithmetic is
    # psutil's (guest time is already part of user time on Linux, iowait is idle).
    times = psutil.cpu_times()
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    busy = total - times.idle - getattr(times, "iowait", 0.0)
    return _CPUSample(busy, total)


def _busy_percent(before: _CPUSample, after: _CPUSample) -> float | None:
    total = after.total - before.total
    if total <= 0:
        return None
    busy = min(max(after.busy - before.busy, 0.0), total)
    return round(100.0 * busy / total, 1)


class _MissingPath(FileNotFoundError, ValueError):
    """A disk path that does not exist: an OSError as ``psutil.disk_usage`` (and the original
    module) raised, and a ValueError as this package raises for a bad argument."""


def _missing_disk_path(path: Path) -> _MissingPath:
    return _MissingPath(
        f"Disk path {str(path)!r} does not exist: set PTPD_MONITORING_DISK_PATH, or pass "
        "disk_path= (or path=) an existing folder on the disk to watch"
    )


def _disk_usage(path: Path) -> Any:
    try:
        return psutil.disk_usage(str(path))
    except (FileNotFoundError, NotADirectoryError):
        raise _missing_disk_path(path) from None


def _gpu0_fields(gpus: list[GPUUsage]) -> tuple[float | None, float | None, float | None]:
    if not gpus:
        return None, None, None
    first = gpus[0]
    return first.utilization_percent, first.memory_used_mb, first.memory_total_mb


def usage_to_record(usage: ResourceUsage) -> dict[str, Any]:
    """A flat JSON row of a snapshot, as the store keeps it (GPU fields as ``gpu{i}_*``).

    >>> row = usage_to_record(ResourceUsage(cpu_percent=5, memory_percent=40,
    ...                                     memory_used_mb=900, disk_percent=70))
    >>> row["cpu_percent"], row["gpu_count"]
    (5.0, 0)
    """
    row: dict[str, Any] = {
        "ts": usage.timestamp.timestamp(),
        "cpu_percent": usage.cpu_percent,
        "memory_percent": usage.memory_percent,
        "memory_used_mb": usage.memory_used_mb,
        "memory_available_mb": usage.memory_available_mb,
        "disk_percent": usage.disk_percent,
        "disk_used_gb": usage.disk_used_gb,
        "disk_free_gb": usage.disk_free_gb,
        "gpu_count": len(usage.gpus),
    }
    for gpu in usage.gpus:
        prefix = f"gpu{gpu.index}_"
        row[prefix + "utilization_percent"] = gpu.utilization_percent
        row[prefix + "memory_used_mb"] = gpu.memory_used_mb
        row[prefix + "memory_total_mb"] = gpu.memory_total_mb
        row[prefix + "temperature_c"] = gpu.temperature_c
        row[prefix + "power_w"] = gpu.power_w
        row[prefix + "name"] = gpu.name
    return row


class ResourceMonitor(RecordPublisher):
    """The machine's CPU, memory, disk and GPUs, with alerts and an optional background sampler.

    >>> monitor = ResourceMonitor(cpu_threshold=75.0)
    >>> 0.0 <= monitor.check_resources().cpu_percent <= 100.0
    True
    >>> [alert["message"] for alert in monitor.get_alerts_for_high_usage()]  # doctest: +SKIP
    ['CPU usage 93.0% is above the 75.0% threshold (critical)']

    A monitor built directly keeps its samples in memory only; give it a ``store`` to publish
    the sampler's snapshots for the dashboard.

    Args:
        cpu_threshold: CPU % (and GPU utilisation %) that raises a warning; None reads
            ``PTPD_MONITORING_CPU_THRESHOLD``.
        memory_threshold: memory % (and GPU memory %) that raises a warning; None reads
            ``PTPD_MONITORING_MEMORY_THRESHOLD``.
        disk_threshold: disk % that raises a warning; None reads
            ``PTPD_MONITORING_DISK_THRESHOLD``.
        disk_path: a path on the filesystem the disk gauge watches; None reads
            ``PTPD_MONITORING_DISK_PATH``.
        store: where the sampler's snapshots go, or None to keep them in memory.
        max_history: snapshots the sampler keeps in memory (the newest).

    Raises:
        ValueError: a threshold outside (0, 100], a ``max_history`` below 1, or a
            ``disk_path`` that does not exist.
    """

    KIND = RESOURCE

    def __init__(
        self,
        cpu_threshold: float | None = None,
        memory_threshold: float | None = None,
        disk_threshold: float | None = None,
        *,
        disk_path: str | os.PathLike[str] | None = None,
        store: SampleStore | None = None,
        max_history: int = DEFAULT_MAX_HISTORY,
    ) -> None:
        settings = get_settings()
        self.cpu_threshold = _check_threshold(
            "cpu_threshold", settings.CPU_THRESHOLD if cpu_threshold is None else cpu_threshold
        )
        self.memory_threshold = _check_threshold(
            "memory_threshold",
            settings.MEMORY_THRESHOLD if memory_threshold is None else memory_threshold,
        )
        self.disk_threshold = _check_threshold(
            "disk_threshold", settings.DISK_THRESHOLD if disk_threshold is None else disk_threshold
        )
        if isinstance(max_history, bool) or not isinstance(max_history, int) or max_history < 1:
            raise ValueError(f"max_history must be a positive integer, got {max_history!r}")
        self.disk_path = Path(settings.DISK_PATH if disk_path is None else disk_path).expanduser()
        if not self.disk_path.exists():  # a bad setting fails at start, not in a gauge later
            raise _missing_disk_path(self.disk_path)
        self._sample_interval_s = settings.SAMPLE_INTERVAL_S
        self._host = socket.gethostname()
        self._history: collections.deque[ResourceUsage] = collections.deque(maxlen=max_history)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.sample_errors = 0
        self.disk_errors = 0
        self._failing = False
        # Prime our own CPU baseline (see _cpu_sample), so no reading is a meaningless 0.0.
        self._cpu_lock = threading.Lock()
        self._cpu_baseline = _cpu_sample()
        self._cpu_baseline_at = time.monotonic()
        self._cpu_value = _busy_percent(_CPUSample(0.0, 0.0), self._cpu_baseline) or 0.0
        # Snapshots every second or so: a day of them may wait for a store that is away.
        super().__init__(store, max_pending=_MAX_PENDING)

    def __repr__(self) -> str:
        return (
            f"ResourceMonitor(cpu_threshold={self.cpu_threshold}, "
            f"memory_threshold={self.memory_threshold}, disk_threshold={self.disk_threshold}, "
            f"disk_path={str(self.disk_path)!r}, store={self._store!r})"
        )

    # -- readings -----------------------------------------------------------------------------

    def get_cpu_usage(self) -> float:
        """System-wide CPU % since the previous reading; never blocks.

        Readings closer together than 0.1 s share one value, since the kernel counts CPU time
        in 10 ms ticks; before the first 0.1 s have passed, the answer is the average since boot.
        """
        with self._cpu_lock:
            now = time.monotonic()
            if now - self._cpu_baseline_at >= _CPU_MIN_WINDOW_S:
                sample = _cpu_sample()
                value = _busy_percent(self._cpu_baseline, sample)
                if value is not None:  # None: not one tick counted yet, keep the last value
                    self._cpu_baseline, self._cpu_baseline_at = sample, now
                    self._cpu_value = value
            return self._cpu_value

    def get_memory_usage(self) -> dict[str, float]:
        """System memory: ``{percent, used_mb, available_mb, total_mb}``."""
        memory = psutil.virtual_memory()
        return {
            "percent": float(memory.percent),
            "used_mb": memory.used / MB,
            "available_mb": memory.available / MB,
            "total_mb": memory.total / MB,
        }

    def get_disk_usage(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """The filesystem holding ``path``: ``{percent, used_gb, free_gb, total_gb, path}``.

        Args:
            path: any existing path on that filesystem; None watches the monitor's ``disk_path``.

        Raises:
            FileNotFoundError: ``path`` does not exist (e.g. an unmounted drive); the exception
                is a ValueError too, so either ``except`` catches it.
        """
        target = self.disk_path if path is None else Path(path).expanduser()
        disk = _disk_usage(target)
        return {
            "percent": float(disk.percent),
            "used_gb": disk.used / _GB,
            "free_gb": disk.free / _GB,
            "total_gb": disk.total / _GB,
            "path": str(target),
        }

    def get_gpu_usage(self) -> dict[str, Any] | None:
        """The first GPU as a dict of :class:`GPUUsage` fields; None without an NVIDIA driver."""
        gpu = _nvml.gpu_snapshot(0)
        return None if gpu is None else gpu.model_dump()

    def get_all_gpu_usage(self) -> list[GPUUsage]:
        """Every NVIDIA GPU, in NVML index order; ``[]`` without a driver."""
        return _nvml.gpu_snapshots()

    def check_resources(self) -> ResourceUsage:
        """A snapshot of CPU, memory, the watched disk and every GPU; cheap, never blocks.

        A watched disk path that has gone away since the monitor was built (an unmounted
        drive) reads as NaN, with one warning and ``disk_errors`` counting, not an exception:
        the monitor's caller is the host app.
        """
        cpu = self.get_cpu_usage()
        memory = psutil.virtual_memory()
        try:
            disk = _disk_usage(self.disk_path)
        except ValueError as exc:
            self.disk_errors += 1
            if self.disk_errors == 1:
                logger.warning("ptpd-monitor: %s; disk readings are NaN until it is back", exc)
            disk = _NO_DISK
        gpus = _nvml.gpu_snapshots()
        gpu_percent, gpu_used, gpu_total = _gpu0_fields(gpus)
        return ResourceUsage(
            cpu_percent=cpu,
            memory_percent=float(memory.percent),
            memory_used_mb=memory.used / MB,
            memory_available_mb=memory.available / MB,
            disk_percent=float(disk.percent),
            disk_used_gb=disk.used / _GB,
            disk_free_gb=disk.free / _GB,
            gpu_percent=gpu_percent,
            gpu_memory_mb=gpu_used,
            gpu_memory_used_mb=gpu_used,
            gpu_memory_total_mb=gpu_total,
            gpus=gpus,
        )

    # -- alerts -------------------------------------------------------------------------------

    def get_alerts_for_high_usage(self, usage: ResourceUsage | None = None) -> list[dict[str, Any]]:
        """Readings at or over their threshold, worst first.

        CPU, memory and disk compare with their own thresholds; each GPU's utilisation with
        ``cpu_threshold`` (resource ``"gpu0"``) and its memory % with ``memory_threshold``
        (``"gpu0_memory"``). "critical" starts halfway between the threshold and 100 %.

        Args:
            usage: the snapshot to judge; None takes one now.

        Returns:
            ``[{resource, usage, threshold, severity, message}]``, critical ones first.
        """
        if usage is None:
            usage = self.check_resources()
        checks: list[tuple[str, str, float | None, float]] = [
            ("cpu", "CPU usage", usage.cpu_percent, self.cpu_threshold),
            ("memory", "Memory usage", usage.memory_percent, self.memory_threshold),
            ("disk", "Disk usage", usage.disk_percent, self.disk_threshold),
        ]
        gpus = usage.gpus
        if not gpus and usage.gpu_percent is not None:  # a snapshot built without the GPU list
            gpus = [
                GPUUsage(
                    index=0,
                    name="GPU 0",
                    utilization_percent=usage.gpu_percent,
                    memory_used_mb=usage.gpu_memory_used_mb,
                    memory_total_mb=usage.gpu_memory_total_mb,
                )
            ]
        for gpu in gpus:
            label = f"GPU {gpu.index} ({gpu.name})"
            checks.append(
                (
                    f"gpu{gpu.index}",
                    f"{label} utilisation",
                    gpu.utilization_percent,
                    self.cpu_threshold,
                )
            )
            checks.append(
                (
                    f"gpu{gpu.index}_memory",
                    f"{label} memory usage",
                    gpu.memory_percent,
                    self.memory_threshold,
                )
            )
        alerts: list[tuple[Severity, dict[str, Any]]] = []
        for resource, label, value, threshold in checks:
            level = _severity(value, threshold)
            if level is None or value is None:
                continue
            severity = level.name.lower()
            verb = "is above" if value > threshold else "has reached"
            alerts.append(
                (
                    level,
                    {
                        "resource": resource,
                        "usage": value,
                        "threshold": threshold,
                        "severity": severity,
                        "message": (
                            f"{label} {value:.1f}% {verb} the {threshold:.1f}% threshold "
                            f"({severity})"
                        ),
                    },
                )
            )
        alerts.sort(key=lambda item: item[0], reverse=True)  # stable: CPU before memory, ...
        return [alert for _, alert in alerts]

    # -- the background sampler -----------------------------------------------------------------

    @property
    def is_sampling(self) -> bool:
        """True while the sampler thread runs."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()

    def start_sampling(self, interval: float | None = None) -> None:
        """Take a snapshot now and every ``interval`` seconds in a daemon thread.

        Calling it while the sampler runs changes nothing (the running interval stays).

        Args:
            interval: seconds between snapshots; None reads ``PTPD_MONITORING_SAMPLE_INTERVAL_S``.

        Raises:
            ValueError: ``interval`` is not a positive number of seconds.
        """
        period = self._sample_interval_s if interval is None else interval
        if (
            isinstance(period, bool)
            or not isinstance(period, numbers.Real)
            or not math.isfinite(period)
            or period <= 0
        ):
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        with self._lock:
            if self.is_sampling:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run,
                args=(float(period), self._stop),
                name="ptpd-monitor-resources",
                daemon=True,
            )
            self._thread.start()

    def stop_sampling(self, timeout: float = 5.0) -> None:
        """Stop the sampler, wait up to ``timeout`` seconds for it, and write what is pending."""
        with self._lock:
            thread, stop = self._thread, self._stop
            self._thread = None
        stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                logger.warning(
                    "ptpd-monitor: the resource sampler did not stop within %.1f s", timeout
                )
        self.flush()

    def _run(self, interval: float, stop: threading.Event) -> None:
        deadline = time.monotonic()
        while not stop.is_set():
            self._tick()
            deadline += interval
            now = time.monotonic()
            if deadline < now:  # a tick overran (or the machine slept): skip the missed ones
                deadline += math.ceil((now - deadline) / interval) * interval
            if stop.wait(deadline - now):
                return

    def _tick(self) -> None:
        try:
            usage = self.check_resources()
            row = usage_to_record(usage) if self._store is not None else None
        except Exception:
            # A sampler must never die: log the first failure in a row in full, then quietly.
            self.sample_errors += 1
            if not self._failing:
                self._failing = True
                logger.warning(
                    "ptpd-monitor: resource sample failed; skipping it (later failures are "
                    "logged at debug level until one succeeds)",
                    exc_info=True,
                )
            else:
                logger.debug("ptpd-monitor: resource sample failed again", exc_info=True)
            return
        self._failing = False
        with self._lock:
            self._history.append(usage)
        if row is not None:
            self._publish(self._host, row)

    def get_history(self) -> list[ResourceUsage]:
        """The sampler's snapshots in memory, oldest first (newest last)."""
        with self._lock:
            return list(self._history)

    # -- the store ------------------------------------------------------------------------------

    def _after_fork(self) -> None:
        super()._after_fork()
        self._cpu_lock = threading.Lock()  # a parent thread may have held it at the fork
