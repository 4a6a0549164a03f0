"""NVIDIA GPUs through NVML (``pynvml``), never raising into the host app.

NVML starts lazily, under a lock, once per process, and shuts down at exit. A failed start (no
driver, no library, no ``pynvml``) is remembered and logged at debug level only: most machines
running the calibration app have no NVIDIA GPU, and that is not worth a warning. Every query
goes through :func:`nvml_query`, which answers None instead of raising, so one field NVML cannot
read (power on a card without a sensor, say) leaves the others intact.

>>> [gpu.name for gpu in gpu_snapshots()]  # doctest: +SKIP
['NVIDIA H100 80GB HBM3']
"""

from __future__ import annotations

import atexit
import enum
import importlib
import logging
import threading
from typing import Any

from ._common import MB
from .models import GPUUsage

__all__ = ["device_count", "gpu_snapshot", "gpu_snapshots", "is_available", "nvml_query"]

logger = logging.getLogger(__name__)


def _import_pynvml() -> Any:
    try:
        return importlib.import_module("pynvml")
    except ImportError:  # nvidia-ml-py is a dependency, but a trimmed install may lack it
        logger.debug("ptpd-monitor: pynvml is not importable; no GPU monitoring")
        return None


# The module every NVML call goes to; tests swap in a fake (then call _reset_for_tests()).
_pynvml: Any = _import_pynvml()


class _State(enum.Enum):
    UNINITIALISED = enum.auto()
    READY = enum.auto()
    FAILED = enum.auto()  # remembered: a missing driver stays missing, don't retry every call
    CLOSED = enum.auto()  # shut down at exit; a late sampler tick must not start it again


_lock = threading.Lock()
_state = _State.UNINITIALISED
_handles: dict[int, Any] = {}
_atexit_registered = False


def _lazy_init() -> bool:
    """Start NVML on first use; True when it is running."""
    global _state, _atexit_registered
    if _state is not _State.UNINITIALISED:  # the fast path, without the lock
        return _state is _State.READY
    with _lock:
        if _state is not _State.UNINITIALISED:
            return _state is _State.READY
        if _pynvml is None:
            _state = _State.FAILED
            return False
        try:
            _pynvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound / DriverNotLoaded, or anything
            logger.debug("ptpd-monitor: NVML unavailable, no GPU monitoring (%s)", exc)
            _state = _State.FAILED
            return False
        _state = _State.READY
        if not _atexit_registered:
            atexit.register(_shutdown)
            _atexit_registered = True
        return True


def _shutdown(final: bool = True) -> None:
    """Shut NVML down if it runs; ``final`` keeps it from starting again (interpreter exit)."""
    global _state
    with _lock:
        if _state is _State.READY and _pynvml is not None:
            try:
                _pynvml.nvmlShutdown()
            except Exception as exc:
                logger.debug("ptpd-monitor: nvmlShutdown failed (%s)", exc)
        _handles.clear()
        _state = _State.CLOSED if final else _State.UNINITIALISED


def _reset_for_tests() -> None:
    """Shut down and forget the init outcome, so the next call starts NVML afresh."""
    _shutdown(final=False)


def nvml_query(name: str, *args: Any) -> Any:
    """Call the NVML function ``name`` with ``args``; None when NVML is off or the call fails.

    Args:
        name: a ``pynvml`` function name, e.g. ``"nvmlDeviceGetCount"``.
        *args: its arguments.

    Returns:
        What the function returns, or None: no driver, an ``NVMLError`` (e.g. not supported on
        this card) or any other exception, each logged at debug level only.

    >>> nvml_query("nvmlDeviceGetCount")  # doctest: +SKIP
    1
    """
    if not _lazy_init():
        return None
    try:
        return getattr(_pynvml, name)(*args)
    except Exception as exc:
        logger.debug("ptpd-monitor: %s%r failed (%s)", name, args, exc)
        return None


def is_available() -> bool:
    """True when NVML runs and reports at least one GPU."""
    return device_count() > 0


def device_count() -> int:
    """How many NVIDIA GPUs NVML sees; 0 without a driver."""
    count = nvml_query("nvmlDeviceGetCount")
    return count if isinstance(count, int) and count > 0 else 0


def _handle(index: int) -> Any:
    # Handles stay valid while NVML runs; caching them saves a driver call per sample.
    handle = _handles.get(index)
    if handle is None:
        handle = nvml_query("nvmlDeviceGetHandleByIndex", index)
        if handle is not None:
            _handles[index] = handle
    return handle


def _number(value: Any, scale: float = 1.0) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) / scale


def _attribute(value: Any, attribute: str, scale: float = 1.0) -> float | None:
    return None if value is None else _number(getattr(value, attribute, None), scale)


def gpu_snapshot(index: int) -> GPUUsage | None:
    """GPU ``index`` now (each field None where NVML cannot read it); None if there is no GPU.

    Args:
        index: the NVML device index (0 is the first GPU).

    Returns:
        A :class:`GPUUsage`, or None when NVML is off or has no such device.
    """
    if not 0 <= index < device_count():
        return None
    return _snapshot(index)


def _snapshot(index: int) -> GPUUsage:
    handle = _handle(index)
    if handle is None:
        return GPUUsage(index=index, name=f"GPU {index}")
    name = nvml_query("nvmlDeviceGetName", handle)
    if isinstance(name, bytes):  # pynvml before 11.5 returned bytes
        name = name.decode("utf-8", "replace")
    memory = nvml_query("nvmlDeviceGetMemoryInfo", handle)
    sensor = getattr(_pynvml, "NVML_TEMPERATURE_GPU", 0)
    return GPUUsage(
        index=index,
        name=name if isinstance(name, str) and name else f"GPU {index}",
        utilization_percent=_attribute(nvml_query("nvmlDeviceGetUtilizationRates", handle), "gpu"),
        memory_used_mb=_attribute(memory, "used", MB),
        memory_total_mb=_attribute(memory, "total", MB),
        temperature_c=_number(nvml_query("nvmlDeviceGetTemperature", handle, sensor)),
        power_w=_number(nvml_query("nvmlDeviceGetPowerUsage", handle), 1000.0),  # milliwatts
    )


def gpu_snapshots() -> list[GPUUsage]:
    """Every GPU now, in NVML index order; ``[]`` without an NVIDIA driver. Never raises."""
    return [_snapshot(index) for index in range(device_count())]
