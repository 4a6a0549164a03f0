"""Rules the whole package shares, each written once: names, times, windows, HTTP errors,
endpoint keys, byte units and atomic file writes.

The bottom layer: it imports nothing from the package but ``_metadata`` (for short reprs).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from time import time

import numpy as np
import numpy.typing as npt

from ._metadata import short_repr

__all__ = [
    "ERROR_STATUS",
    "MB",
    "Clock",
    "TimeBound",
    "TimeRange",
    "check_name",
    "day_window",
    "endpoint_key",
    "error_mask",
    "is_error",
    "split_endpoint_key",
    "to_epoch",
    "window",
    "write_text_atomically",
]

#: Bytes in a mebibyte: every "MB" in the package is this one.
MB = 1024.0 * 1024.0
#: A response with this status or above counts as an error, everywhere.
ERROR_STATUS = 400

TimeBound = datetime | float | int | None
TimeRange = tuple[datetime | float, datetime | float] | timedelta | None
#: Epoch seconds now; the monitor, tracker and profiler take one (``clock=``) for tests.
Clock = Callable[[], float]


def is_error(status: int) -> bool:
    """Whether an HTTP status counts as an error (4xx and 5xx)."""
    return status >= ERROR_STATUS


def error_mask(status: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """``is_error`` over an array of statuses."""
    return status >= ERROR_STATUS


def endpoint_key(endpoint: str, method: str) -> str:
    """The series name of an endpoint's requests: ``"GET /api/curves/{id}"``."""
    return f"{method} {endpoint}"


def split_endpoint_key(key: str) -> tuple[str, str]:
    """``(method, endpoint)`` of a series name made by ``endpoint_key``."""
    method, _, endpoint = key.partition(" ")
    return method, endpoint


def check_name(kind: str, name: object) -> str:
    """A series name must be a non-empty string (it becomes a store key and a chart label)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{kind} name must be a non-empty string, got {short_repr(name)}")
    return name


def to_epoch(bound: TimeBound) -> float | None:
    """A datetime (naive means local time) or epoch seconds as epoch seconds; None stays None.

    Raises:
        ValueError: a bool, a non-finite number or anything else that is not a time.
    """
    if bound is None:
        return None
    if isinstance(bound, datetime):
        try:
            return bound.timestamp()
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"A time bound must be a representable time, got {bound!r}") from exc
    if isinstance(bound, int | float) and not isinstance(bound, bool):
        try:
            number = float(bound)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    raise ValueError(f"A time bound must be a datetime or epoch seconds, got {bound!r}")


def window(time_range: TimeRange, clock: Clock = time) -> tuple[float, float]:
    """``(start, end)`` epoch seconds of a range given as a pair or as "the last timedelta"
    (ending at ``clock()``)."""
    if time_range is None:
        return -math.inf, math.inf
    if isinstance(time_range, timedelta):
        now = clock()
        return now - time_range.total_seconds(), now
    try:
        start, end = time_range
    except (TypeError, ValueError):
        raise ValueError(
            f"time_range must be (start, end) or a timedelta, got {time_range!r}"
        ) from None
    lo, hi = to_epoch(start), to_epoch(end)
    if lo is None or hi is None:
        raise ValueError(f"time_range needs both a start and an end, got {time_range!r}")
    if lo > hi:
        raise ValueError(f"time_range starts after it ends: {time_range!r}")
    return lo, hi


def day_window(day: date | str | None) -> tuple[date, float, float]:
    """A local calendar day (a date, "YYYY-MM-DD" or None for today) as epoch seconds."""
    if day is None:
        day = date.today()
    elif isinstance(day, str):
        try:
            day = date.fromisoformat(day)
        except ValueError:
            raise ValueError(f"date must be YYYY-MM-DD, got {day!r}") from None
    elif isinstance(day, datetime):
        day = day.date()
    elif not isinstance(day, date):
        raise ValueError(f"date must be a date or YYYY-MM-DD, got {day!r}")
    start = datetime.combine(day, clock_time.min).astimezone()
    # The next local midnight, not start + 24 h: a day with a DST change has 23 or 25 hours.
    end = datetime.combine(day + timedelta(days=1), clock_time.min).astimezone()
    return day, start.timestamp(), end.timestamp() - 1e-6


def write_text_atomically(text: str, path: Path) -> None:
    """Write to a temporary file beside ``path``, then rename: readers never see half a file."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"Cannot write {path}: it is a folder; give the path of a file (new or to replace)"
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"Cannot write {path}: the folder {path.parent} does not exist; create it first"
        )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
