"""ImageProcessingProfiler: wall time, CPU time and memory of image operations, and bottlenecks.

How a profile is named in the monitor
-------------------------------------
A successful profile of operation ``op`` adds one sample to each of three monitor series, named
as the original in-memory module named them:

- ``{op}_wall_time``: wall-clock seconds;
- ``{op}_cpu_time``: CPU seconds of the process;
- ``{op}_memory``: the change in resident memory, in MB.

``track_memory_usage(op)`` adds ``{op}_memory_snapshot`` (MB). The whole profile (with the peak
memory and the pixel count) is kept once more, as a profile record, for the store.

Everything here that takes an *operation* name (``get_processing_speed``,
``estimate_batch_time``, ``identify_bottlenecks``, ``rank_bottlenecks``) reads its timings from
``{op}_wall_time``, or from a series named ``op`` itself where only that exists (a
``monitor.timer("op")`` series), and reports ``op``. So the dashboard's step names stay plain
operation names (``pipeline.decode``, whose timings are ``pipeline.decode_wall_time``), and
code written against the original keeps working both ways: ``monitor.get_statistics(
"resize_wall_time")`` answers a profiled ``resize``, and samples that code records itself under
``resize_wall_time`` count for ``identify_bottlenecks(["resize"])``.

Why one name and not both: recording each wall time also under ``op`` would double every sample
in memory, in the store, in reports and in the Prometheus exporter, and an alias inside the
monitor would make one series answer to two names (and be exported twice).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import numbers
import os
import re
import resource
import threading
import time
import tracemalloc
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psutil

from ._common import MB, Clock, TimeRange, check_name
from ._flusher import flush_sources
from ._forks import on_fork
from ._metadata import copy_metadata, short_repr
from ._publisher import RecordPublisher
from .monitor import PerformanceMonitor
from .store import PROFILE

__all__ = [
    "CPU_TIME_SUFFIX",
    "MEMORY_SNAPSHOT_SUFFIX",
    "MEMORY_SUFFIX",
    "WALL_TIME_SUFFIX",
    "ImageProcessingProfiler",
    "PeakMemory",
    "current_process",
    "operation_of",
    "rank_bottlenecks",
    "timing_series",
]

T = TypeVar("T")
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_HWM = re.compile(rb"VmHWM:\s+(\d+) kB")
#: Monitor series of a profiled operation ``op``: ``op + WALL_TIME_SUFFIX`` and so on.
WALL_TIME_SUFFIX = "_wall_time"
CPU_TIME_SUFFIX = "_cpu_time"
MEMORY_SUFFIX = "_memory"
MEMORY_SNAPSHOT_SUFFIX = "_memory_snapshot"


# The memory sampler's own clock, kept from tests that script the profiler's ``time``.
_perf_counter, _sleep = time.perf_counter, time.sleep


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (every field a size_t)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _heap_reader() -> Callable[[], _MallInfo2] | None:
    """glibc's ``mallinfo2`` (2.33 on), or None where the C library has none."""
    try:
        function = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    function.restype = _MallInfo2
    function.argtypes = []
    reader: Callable[[], _MallInfo2] = function
    return reader


class _Window:
    """One profiled call's readings: each at its start, and the highest seen since."""

    __slots__ = (
        "heap",
        "heap_peak",
        "hwm_peak",
        "overhead",
        "rss",
        "rss_peak",
        "started",
        "traced",
        "traced_peak",
    )

    def __init__(
        self, started: float, rss: int, heap: int | None, traced: int, overhead: int
    ) -> None:
        self.started = started  # a sample read before this belongs to the call before
        self.rss = self.rss_peak = rss
        self.heap = heap
        self.heap_peak = heap or 0
        self.traced = self.traced_peak = traced
        self.overhead = overhead  # tracemalloc's own memory, taken off the RSS and heap
        self.hwm_peak = 0

    def credit(self, rss: int, heap: int | None, overhead: int, traced: int | None) -> None:
        grown = overhead - self.overhead
        self.rss_peak = max(self.rss_peak, rss - grown)
        if heap is not None and self.heap is not None:
            self.heap_peak = max(self.heap_peak, heap - grown)
        if traced is not None:
            self.traced_peak = max(self.traced_peak, traced)

    def rise(self, overhead: int) -> int:
        """The largest rise of any reading above its start, in bytes (0 at least)."""
        rises = [self.traced_peak - self.traced, self.rss_peak - self.rss]
        if self.heap is not None:
            rises.append(self.heap_peak - self.heap)
        if self.hwm_peak:
            rises.append(self.hwm_peak - (overhead - self.overhead) - self.rss)
        return max(0, *rises)


class PeakMemory:
    """The peak memory of each profiled call: what it allocated, wherever it allocated it.

    A profile reports the largest rise above its start of three readings:

    - ``tracemalloc``, tracing while any profile runs: Python objects and numpy's array
      buffers, exactly, however briefly they lived;
    - the C heap in use (glibc's ``mallinfo2``) and the resident memory (RSS, from psutil),
      read at the start and end and every ``interval`` seconds between by one sampling thread:
      they count what tracemalloc cannot see, such as Pillow's image buffers. The heap counts
      memory the allocator hands out again, which RSS alone misses (freed pages stay resident,
      so a step reusing them showed 0 MB);
    - Linux's high-water mark of the RSS (``VmHWM``, reset by writing "5" to
      ``/proc/self/clear_refs``), which catches an RSS peak between two samples.

    tracemalloc's own bookkeeping is taken off the heap and RSS readings. The readings are the
    process's, so what other threads allocate meanwhile counts too. Concurrent and nested
    profiles each get their own peak: before a profile resets the shared marks (tracemalloc's
    peak and VmHWM), the marks so far are credited to every profile running. Where
    ``mallinfo2`` is slow (a heap of very many free chunks), the heap is read less often
    (at most 4 % of the time).
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._windows: list[_Window] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._tracing = False  # tracemalloc was started here (and its peak is ours to reset)
        self._read_heap = _heap_reader()
        self._heap_cost = 0.0
        self._lifetime = 0.0  # the highest mark seen before a reset wiped it
        with contextlib.suppress(OSError):
            self._lifetime = self._mark() or 0.0
        # Probed without writing: a reset at import would wipe the host's own peak reading.
        self.supported = os.access(_CLEAR_REFS, os.W_OK) and os.access(_STATUS, os.R_OK)

    def _after_fork(self) -> None:
        """A child starts with no profile running, no sampler and a lock nobody holds."""
        self._lock = threading.Lock()
        self._windows = []
        self._wake = threading.Event()
        self._thread = None
        if self._tracing:
            self._tracing = False
            tracemalloc.stop()

    def begin(self) -> _Window:
        """Start measuring one call; pass what this returns to ``end``."""
        with self._lock:
            if not self._windows and not tracemalloc.is_tracing():
                tracemalloc.start()
                self._tracing = True
            self._reset_marks()
            window = _Window(
                _perf_counter(),
                _rss(),
                self._heap(),
                self._traced(),
                tracemalloc.get_tracemalloc_memory(),
            )
            self._windows.append(window)
            self._wake.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._sample, name="ptpd-peak-memory", daemon=True
                )
                self._thread.start()
        return window

    def end(self, window: _Window) -> float:
        """The call's peak in bytes above its start (0.0 at least)."""
        rss, heap = _rss(), self._heap()
        with self._lock:
            overhead = tracemalloc.get_tracemalloc_memory()
            window.credit(rss, heap, overhead, self._traced())
            if self._tracing:
                window.traced_peak = max(window.traced_peak, tracemalloc.get_traced_memory()[1])
            if self.supported:
                with contextlib.suppress(OSError):
                    window.hwm_peak = max(window.hwm_peak, int(self._mark() or 0))
            with contextlib.suppress(ValueError):
                self._windows.remove(window)
            if not self._windows:
                self._wake.clear()
                if self._tracing:
                    self._tracing = False
                    tracemalloc.stop()
        return float(window.rise(overhead))

    def _reset_marks(self) -> None:
        """Credit the shared marks to the calls running, then reset them (under the lock)."""
        traced_peak = tracemalloc.get_traced_memory()[1] if self._tracing else None
        mark: float | None = None
        if self.supported:
            try:
                mark = self._mark()
                _CLEAR_REFS_FILE.write(b"5")
            except OSError:
                self.supported = False
        for window in self._windows:
            if traced_peak is not None:
                window.traced_peak = max(window.traced_peak, traced_peak)
            if mark is not None:
                window.hwm_peak = max(window.hwm_peak, int(mark))
        if mark is not None:
            self._lifetime = max(self._lifetime, mark)
        if self._tracing:
            tracemalloc.reset_peak()

    def _sample(self) -> None:
        """The sampling thread: RSS every interval, the heap as often as it is cheap to read."""
        next_heap = 0.0
        while True:
            self._wake.wait()
            now = _perf_counter()
            rss = _rss()
            heap = None
            if now >= next_heap:
                heap = self._heap()
                next_heap = now + max(self.interval, 25 * self._heap_cost)
            with self._lock:
                if self._windows:
                    overhead = tracemalloc.get_tracemalloc_memory()
                    traced = None if self._tracing else self._traced()
                    for window in self._windows:
                        if window.started <= now:  # read while the call ran
                            window.credit(rss, heap, overhead, traced)
            _sleep(self.interval)

    def _heap(self) -> int | None:
        """Bytes the C allocator has handed out and not had back (None where unknown)."""
        if self._read_heap is None:
            return None
        start = _perf_counter()
        info = self._read_heap()
        self._heap_cost = _perf_counter() - start
        return int(info.uordblks) + int(info.hblkhd)

    @staticmethod
    def _traced() -> int:
        return tracemalloc.get_traced_memory()[0]

    @staticmethod
    def _mark() -> float | None:
        match = _HWM.search(_STATUS_FILE.read())
        return float(match.group(1)) * 1024.0 if match else None

    def lifetime_peak(self) -> float:
        """The process's peak resident bytes so far, despite the resets (0.0 where unknown).

        Resetting the mark also resets what ``getrusage`` reports as ``ru_maxrss``.
        """
        with self._lock:
            return max(self._lifetime, (self._mark() or 0.0) if self.supported else 0.0)


class _ProcFile:
    """A /proc/self file kept open and read with one ``pread``: a profile reads RSS and the
    high-water mark several times, and opening the file each time (as psutil does) cost
    most of profile_operation's overhead. Reopened in a forked child, whose /proc/self
    differs."""

    def __init__(self, path: str, flags: int = os.O_RDONLY) -> None:
        self.path, self.flags = path, flags
        self._fd: int | None = None
        self._pid = 0

    def fd(self) -> int:
        pid = os.getpid()
        if self._fd is None or self._pid != pid:
            self._fd, self._pid = os.open(self.path, self.flags), pid
        return self._fd

    def read(self) -> bytes:
        return os.pread(self.fd(), 4096, 0)

    def write(self, data: bytes) -> None:
        os.write(self.fd(), data)


_STATM = _ProcFile("/proc/self/statm")
_STATUS_FILE = _ProcFile(str(_STATUS))
_CLEAR_REFS_FILE = _ProcFile(str(_CLEAR_REFS), os.O_WRONLY)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss() -> int:
    """Resident bytes of this process (statm's second field; psutil where /proc is absent)."""
    try:
        return int(_STATM.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return int(current_process().memory_info().rss)


_PEAK = PeakMemory()
on_fork(_PEAK)
_process: psutil.Process | None = None


def current_process() -> psutil.Process:
    """This process, rebuilt after a fork (a Process object keeps the pid it was made with)."""
    global _process
    if _process is None or _process.pid != os.getpid():
        _process = psutil.Process()
    return _process


class ImageProcessingProfiler(RecordPublisher):
    """Profiles image operations and ranks where the time goes.

    >>> profiler = ImageProcessingProfiler()
    >>> result, profile = profiler.profile_operation(sorted, [3, 1, 2], operation_name="sort")
    >>> result, profile["success"]
    ([1, 2, 3], True)

    Each successful profile of ``op`` adds to the monitor's ``{op}_wall_time`` and
    ``{op}_cpu_time`` (seconds) and ``{op}_memory`` (MB) series, as the original module named
    them (see the module docstring); full profiles go to the store.
    """

    KIND = PROFILE

    def __init__(
        self,
        monitor: PerformanceMonitor | None = None,
        max_profiles: int = 10_000,
        *,
        clock: Clock = time.time,
    ) -> None:
        if not callable(clock):
            raise ValueError(f"clock must be a callable returning epoch seconds, got {clock!r}")
        self._clock = clock
        self.monitor = monitor if monitor is not None else PerformanceMonitor(clock=clock)
        self._profiles: deque[dict[str, Any]] = deque(maxlen=max_profiles)
        super().__init__(self.monitor.store)  # profiles go where the monitor's timings go

    def profile_operation(
        self,
        func: Callable[..., T],
        *args: Any,
        operation_name: str | None = None,
        image_size: tuple[int, int] | None = None,
        **kwargs: Any,
    ) -> tuple[T, dict[str, Any]]:
        """Run ``func(*args, **kwargs)`` and measure it.

        Args:
            func: the operation.
            operation_name: the operation's name; defaults to the function's ``__name__``
                (of the wrapped function for a ``functools.partial``).
            image_size: ``(width, height)`` of the pixels processed, for pixels per second.

        Returns:
            ``(result, profile)``; the profile holds operation, success, wall_time_s, cpu_time_s,
            memory_delta_mb, peak_memory_mb (most allocated at once: see PeakMemory), pixels and
            megapixels_per_s.

        Raises:
            Whatever ``func`` raises, after recording a failed profile (with ``error``) and no
            timing.
        """
        name = operation_name or _operation_name(func)
        pixels = _pixels(image_size)
        window = _PEAK.begin()
        rss_before = window.rss
        cpu_start = time.process_time()
        wall_start = time.perf_counter()
        error: BaseException | None = None
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            wall = time.perf_counter() - wall_start
            cpu = time.process_time() - cpu_start
            peak = _PEAK.end(window)
            rss_after = _rss()
            profile: dict[str, Any] = {
                "operation": name,
                "success": error is None,
                "wall_time_s": wall,
                "cpu_time_s": cpu,
                "memory_delta_mb": (rss_after - rss_before) / MB,
                "peak_memory_mb": peak / MB,
                "pixels": pixels,
                "megapixels_per_s": pixels / wall / 1e6 if pixels and wall > 0 else None,
                "ts": self._clock(),
            }
            if error is not None:
                profile["error"] = f"{type(error).__name__}: {error}"
            self._keep(dict(profile))  # the caller's copy is theirs to change
        return result, profile

    def record_profile(self, profile: dict[str, Any]) -> None:
        """Keep a profile measured elsewhere, e.g. a run that is published only once complete.

        The profile is copied under the metadata rule (see ``_metadata.py``): it is stored as
        JSON, and the caller's dict stays theirs.

        Raises:
            ValueError: the profile is not a dict, lacks operation, success or wall_time_s, or
                its operation is not a non-empty string.
        """
        if not isinstance(profile, dict):
            raise ValueError(f"profile must be a dict, got {short_repr(profile)}")
        profile = copy_metadata(profile, "Profile")
        missing = {"operation", "success", "wall_time_s"} - set(profile)
        if missing:
            raise ValueError(f"A profile needs {', '.join(sorted(missing))}; got {sorted(profile)}")
        check_name("Profile operation", profile["operation"])  # its series name in the store
        self._keep({"ts": self._clock(), **profile})

    def _keep(self, profile: dict[str, Any]) -> None:
        if profile["success"]:
            name = profile["operation"]
            monitor = self.monitor
            monitor.record_metric(name + WALL_TIME_SUFFIX, profile["wall_time_s"], "seconds")
            cpu = _reading(profile.get("cpu_time_s"))
            memory = _reading(profile.get("memory_delta_mb"))
            if cpu is not None:
                monitor.record_metric(name + CPU_TIME_SUFFIX, cpu, "seconds")
            if memory is not None:
                monitor.record_metric(name + MEMORY_SUFFIX, memory, "MB")
        with self._lock:
            self._profiles.append(profile)
        self._publish(profile["operation"], profile)

    def get_profiles(self, operation: str | None = None) -> list[dict[str, Any]]:
        """Profiles kept in memory (every operation when None), oldest first."""
        with self._lock:
            return [
                dict(p) for p in self._profiles if operation is None or p["operation"] == operation
            ]

    def get_processing_speed(
        self, image_size: tuple[int, int], operation: str, time_range: TimeRange = None
    ) -> float | None:
        """Pixels per second for an image of ``image_size``, from the median time of ``operation``.

        The times are ``{operation}_wall_time`` (or a series named ``operation``; see the
        module docstring). None when the operation has no timings yet, or they are all zero.
        """
        pixels = _pixels(image_size)
        series = timing_series(self.monitor, operation)
        if series is None:
            return None
        median = self.monitor.get_statistics(series, time_range).get("median")
        if not pixels or not median:
            return None
        return pixels / float(median)

    def estimate_batch_time(
        self, image_sizes: Sequence[tuple[int, int]], operation: str
    ) -> float | None:
        """Seconds a batch of images would take at the measured pixels per second.

        The speed comes from the operation's own profiles where they carry pixel counts, else
        from the median of its timings (``{operation}_wall_time``, see the module docstring) as
        if each image were the size the timings were taken at. None without timings.
        """
        total_pixels = sum(_pixels(size) or 0 for size in image_sizes)
        rates: list[float] = [
            float(p["pixels"]) / float(p["wall_time_s"])
            for p in self.get_profiles(operation)
            if p["success"] and p["pixels"] and p["wall_time_s"] > 0
        ]
        if rates:
            rates.sort()
            return float(total_pixels / rates[len(rates) // 2])
        series = timing_series(self.monitor, operation)
        if series is None:
            return None
        median = self.monitor.get_statistics(series).get("median")
        return float(median) * len(image_sizes) if median is not None else None

    def track_memory_usage(self, operation: str) -> float:
        """Record this process's resident memory (MB) under ``"<operation>_memory_snapshot"``."""
        check_name("Operation", operation)
        rss_mb = current_process().memory_info().rss / MB
        self.monitor.record_metric(operation + MEMORY_SNAPSHOT_SUFFIX, rss_mb, "MB")
        return rss_mb

    def get_memory_stats(self) -> dict[str, float]:
        """This process's memory now and its lifetime peak, and the machine's memory.

        ``rss_mb``, ``vms_mb`` and ``peak_rss_mb`` are this process's; ``percent`` is its resident
        memory as a percentage of the machine's; ``available_mb`` and ``system_percent`` are the
        machine's available memory and its memory in use (%).
        """
        info = current_process().memory_info()
        system = psutil.virtual_memory()
        return {
            "rss_mb": info.rss / MB,
            "vms_mb": info.vms / MB,
            "peak_rss_mb": max(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0,
                _PEAK.lifetime_peak(),
                float(info.rss),
            )
            / MB,
            "percent": float(current_process().memory_percent()),
            "available_mb": system.available / MB,
            "system_percent": float(system.percent),
        }

    def identify_bottlenecks(
        self,
        operations: Sequence[str] | None = None,
        unstable_factor: float = 1.5,
        time_range: TimeRange = None,
        min_samples: int = 5,
    ) -> list[dict[str, Any]]:
        """Operations ranked by the total time they took, worst first.

        Args:
            operations: operation names (their timings are ``{op}_wall_time``, or ``op``; see
                the module docstring); None ranks every timed operation of the monitor.

        Each entry: operation, count, median_time, p90_time, max_time, mean_time, total_time,
        share_of_total (of the operations ranked), slowdown_factor (p90 over median: how much
        slower a bad run is than a typical one) and unstable (slowdown_factor ≥ unstable_factor,
        judged only from ``min_samples`` runs on: with fewer, p90 is just the slowest run).
        """
        return rank_bottlenecks(self.monitor, operations, unstable_factor, time_range, min_samples)

    def flush(self) -> None:
        """Write pending profiles and timings to the store now."""
        if self.store is not None:
            flush_sources([self.monitor, self])


def rank_bottlenecks(
    monitor: PerformanceMonitor,
    operations: Sequence[str] | None = None,
    unstable_factor: float = 1.5,
    time_range: TimeRange = None,
    min_samples: int = 5,
) -> list[dict[str, Any]]:
    """``identify_bottlenecks`` over any monitor (a report's, loaded from the store)."""
    if operations is None:
        found = (operation_of(monitor, name) for name in monitor.get_operation_names())
        names = sorted({name for name in found if name is not None})
    else:
        names = list(dict.fromkeys(operations))
    ranked: list[dict[str, Any]] = []
    for name in names:
        series = timing_series(monitor, name)
        if series is None:
            continue
        stats = monitor.get_statistics(series, time_range)
        if not stats["count"] or stats.get("unit") != "seconds":
            continue
        median, p90 = float(stats["median"]), float(stats["p90"])
        slowdown = p90 / median if median > 0 else 1.0
        ranked.append(
            {
                "operation": name,
                "count": int(stats["count"]),
                "median_time": median,
                "p90_time": p90,
                "max_time": float(stats["max"]),
                "mean_time": float(stats["mean"]),
                "total_time": float(stats["mean"]) * int(stats["count"]),
                "slowdown_factor": slowdown,
                "unstable": int(stats["count"]) >= min_samples and slowdown >= unstable_factor,
            }
        )
    grand_total = sum(entry["total_time"] for entry in ranked)
    for entry in ranked:
        entry["share_of_total"] = entry["total_time"] / grand_total if grand_total > 0 else 0.0
    ranked.sort(key=lambda entry: entry["total_time"], reverse=True)
    return ranked


def timing_series(monitor: PerformanceMonitor, operation: str) -> str | None:
    """The monitor series holding ``operation``'s wall times: ``{operation}_wall_time`` where
    it exists, else a seconds series named ``operation`` (a ``monitor.timer`` one); else None."""
    for series in (operation + WALL_TIME_SUFFIX, operation):
        if monitor.get_unit(series) == "seconds":
            return series
    return None


def operation_of(monitor: PerformanceMonitor, series: str) -> str | None:
    """The operation a timed series belongs to, for ranking every operation of a monitor.

    ``x_wall_time`` is operation ``x``; ``x_cpu_time`` beside an ``x_wall_time`` is part of
    ``x``'s profile, not an operation (None); any other seconds series is an operation of its
    own name; series in other units (memory) are none.
    """
    if monitor.get_unit(series) != "seconds":
        return None
    if series.endswith(WALL_TIME_SUFFIX) and len(series) > len(WALL_TIME_SUFFIX):
        return series.removesuffix(WALL_TIME_SUFFIX)
    if series.endswith(CPU_TIME_SUFFIX):
        profiled = series.removesuffix(CPU_TIME_SUFFIX) + WALL_TIME_SUFFIX
        if monitor.get_unit(profiled) is not None:
            return None
    return series


def _reading(value: object) -> float | None:
    """A finite number as a float; None for a reading a profile does not have (e.g. None)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number):
            return number
    return None


def _operation_name(func: Callable[..., Any]) -> str:
    """``func.__name__``, as the original module named profiles; stable, since a repr with a
    memory address would make a series per call (the wrapped function of a partial)."""
    inner = func.func if isinstance(func, functools.partial) else func
    name = getattr(inner, "__name__", None) or type(inner).__name__
    return str(name)


def _pixels(image_size: tuple[int, int] | None) -> int | None:
    if image_size is None:
        return None
    try:
        width, height = image_size
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be (width, height), got {image_size!r}") from None
    if not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0
        for v in (width, height)
    ):
        raise ValueError(f"image_size must be two positive integers, got {image_size!r}")
    return int(width) * int(height)
