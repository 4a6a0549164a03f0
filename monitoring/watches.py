"""Watches: alerts on the app's own operations and endpoints, judged over the sample store.

A watch is a rule on one operation (a metric series, such as ``curve.fit``) or one endpoint
(``"GET /api/curves"``, or ``"/api/curves"`` for every method): a statistic over a window
compared with a fixed threshold or with the same statistic over an earlier baseline period.

>>> from ptpd_calibration.monitoring import get_monitor, get_store
>>> get_monitor().watch("curve.fit", "p95", above_ms=250)  # doctest: +SKIP
>>> [r.message for r in evaluate(get_store()) if r.firing]  # doctest: +SKIP

The rules, in one place:

- **Statistics.** ``p50``, ``p95``, ``p99`` and ``mean`` of the values (exact, over the raw
  samples); ``error_rate``, the fraction of samples that are errors (an operation's timed
  block raised; a request's status is 400 or above); ``count_per_min``, samples per minute.
- **A fixed threshold** fires when the statistic over the last ``window`` is above ``above``
  (strictly), in the series' own unit: seconds for timed operations, milliseconds for
  endpoints, a fraction for ``error_rate`` (0.05 is 5 %), a rate for ``count_per_min``.
  ``above_ms`` gives a timing threshold in milliseconds whatever the series' unit.
- **A baseline** fires when the statistic over the last ``window`` is above ``factor`` times
  the same statistic over the ``baseline`` period that ends where the window starts (the
  previous 7 days, say). Both periods need ``min_samples`` samples (default 50), so a quiet
  hour, or a new operation without history, alerts on nothing.
- **A minimum duration** (``for_s``): the watch is judged at evenly spaced moments from
  ``now - for_s`` to ``now`` (a minute apart, or a window apart when the window is shorter;
  61 moments at most), each over the window that ends there, and fires only when it would
  fire at every one of them. It is "pending" when the condition holds now but not throughout.
  With a baseline, the baseline period ends where the earliest of those windows starts.
- **Built-in regression watches**, without configuration: every timed operation in the store
  gets ``regression:<operation>``, p95 over the last hour above 1.5 times its p95 over the
  previous 7 days, with 50 samples in each (``builtin: true``). A configured watch with the
  same name replaces one; ``PTPD_MONITORING_DEFAULT_WATCHES=false`` turns them all off.
- **Sources.** ``PTPD_MONITORING_WATCHES`` (a JSON list of objects), the TOML file named by
  ``PTPD_MONITORING_WATCHES_FILE`` (``[[watch]]`` tables; read at each evaluation, so edits
  apply without a restart), and ``PerformanceMonitor.watch()`` in Python, which registers the
  watch in this process only. A configured watch replaces a registered one of the same name.
  Configured rules are checked when they are loaded to be judged (:class:`WatchError`, naming
  the source and the rule), never when the settings are read: a bad rule never stops the app.
- **History.** Each evaluation that finds a watch firing stores an event (kind ``"event"``,
  series ``"watch"``), at most one per watch a minute; :func:`watch_history` reads them back.

Evaluation reads what the windows hold and no more: the recent span first, and the baseline
only when the recent span has enough samples. It never creates a store that does not exist.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import stats as _stats
from .store import API, EVENT, METRIC, RecordBatch, SampleStore

if TYPE_CHECKING:
    from .settings import MonitoringSettings

__all__ = [
    "BUILTIN_BASELINE_S",
    "BUILTIN_FACTOR",
    "BUILTIN_MIN_SAMPLES",
    "BUILTIN_WINDOW_S",
    "STATS",
    "TIMING_STATS",
    "WATCH_EVENTS",
    "Watch",
    "WatchError",
    "WatchResult",
    "active_watches",
    "clear_registered_watches",
    "default_watches",
    "evaluate",
    "firing_alerts",
    "load_watches",
    "parse_duration",
    "parse_watch",
    "parse_watches_json",
    "parse_watches_toml",
    "register_watch",
    "registered_watches",
    "seconds_per_unit",
    "unregister_watch",
    "watch_history",
]

Stat = Literal["p50", "p95", "p99", "mean", "error_rate", "count_per_min"]
Kind = Literal["operation", "endpoint"]
Severity = Literal["warning", "critical"]
Status = Literal["firing", "pending", "ok", "insufficient", "invalid"]

STATS: tuple[str, ...] = get_args(Stat)
KINDS: tuple[str, ...] = get_args(Kind)
SEVERITIES: tuple[str, ...] = get_args(Severity)
TIMING_STATS = frozenset({"p50", "p95", "p99", "mean"})
_PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}

#: The record series fired watches are stored under (kind ``"event"``).
WATCH_EVENTS = "watch"
#: A watch firing at every evaluation stores at most one event per this many seconds.
EVENT_REPEAT_S = 60.0

BUILTIN_WINDOW_S = 3600.0
BUILTIN_BASELINE_S = 7 * 86400.0
BUILTIN_FACTOR = 1.5
BUILTIN_MIN_SAMPLES = 50
BUILTIN_PREFIX = "regression:"

_DEFAULT_WINDOW_S = 300.0  # a fixed threshold
_DEFAULT_BASELINE_WINDOW_S = 3600.0
_DEFAULT_FACTOR = 1.5
_MAX_SPAN_S = 366 * 86400.0
_FOR_STEP_S = 60.0
_MAX_FOR_STEPS = 60
_MAX_NAME = 200
_SEVERITY_ORDER = {"critical": 0, "warning": 1}

# Seconds per unit of the time units a series may be recorded in.
_TIME_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "ms": 1e-3,
    "millisecond": 1e-3,
    "milliseconds": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "microsecond": 1e-6,
    "microseconds": 1e-6,
    "ns": 1e-9,
    "nanosecond": 1e-9,
    "nanoseconds": 1e-9,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
}
_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw])", re.IGNORECASE)
_DURATION_HELP = "seconds, or a number with s, m, h, d or w such as '90s', '5m', '1h', '7d'"
_ENDPOINT = re.compile(r"^([A-Za-z]+) (\S.*)$")
_LOOKS_LIKE_ENDPOINT = re.compile(r"^[A-Za-z]+ /")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class WatchError(ValueError):
    """A watch rule, or the file or variable holding watches, is malformed; the message says
    which rule (by name), where it came from and what is wrong."""


# -- durations ------------------------------------------------------------------------------------


def parse_duration(value: object, what: str = "duration") -> float:
    """Seconds from a number or a string such as ``"90"``, ``"5m"``, ``"1h30m"``, ``"7d"``.

    >>> parse_duration("1h30m"), parse_duration(90), parse_duration("7d")
    (5400.0, 90.0, 604800.0)

    Raises:
        ValueError: anything else, a negative or a non-finite value.
    """
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            position, total = 0, 0.0
            for match in _DURATION_PART.finditer(text):
                if match.start() != position:
                    break
                total += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
                position = match.end()
            if text and position == len(text):
                seconds = total
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{what} must be a duration ({_DURATION_HELP}), got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """A duration as a watch names it.

    >>> [format_duration(s) for s in (604800, 3600, 5400, 90, 2.5)]
    ['7d', '1h', '90m', '90s', '2.5s']
    """
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


# -- the rule -------------------------------------------------------------------------------------


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return number


def _choice(value: object, what: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return value


class Watch(BaseModel):
    """One watch rule; see the module docstring for what each field means.

    Build it with :func:`parse_watch` (or ``PerformanceMonitor.watch``) to get errors that name
    the rule; constructed directly, a bad field raises pydantic's ``ValidationError``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    name: str = ""
    target: str
    kind: Kind = "operation"
    stat: Stat = "p95"
    window: float = _DEFAULT_WINDOW_S
    above: float | None = None
    above_ms: float | None = None
    baseline: float | None = None
    factor: float | None = None
    min_samples: int = 1
    for_s: float = 0.0
    severity: Severity = "warning"
    builtin: bool = False

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """Defaults that depend on other fields (the kind, the window, the sample floor)."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        target = data.get("target")
        if data.get("kind") is None:
            data.pop("kind", None)
            if isinstance(target, str) and _LOOKS_LIKE_ENDPOINT.match(target):
                data["kind"] = "endpoint"
        with_baseline = data.get("baseline") is not None
        if data.get("window") is None:
            data["window"] = _DEFAULT_BASELINE_WINDOW_S if with_baseline else _DEFAULT_WINDOW_S
        if with_baseline and data.get("factor") is None:
            data["factor"] = _DEFAULT_FACTOR
        if data.get("min_samples") is None:
            counting = data.get("stat") == "count_per_min"
            data["min_samples"] = BUILTIN_MIN_SAMPLES if with_baseline else (0 if counting else 1)
        for key in ("for_s", "name", "severity", "stat"):
            if key in data and data[key] is None:
                del data[key]
        return data

    @field_validator("name", mode="before")
    @classmethod
    def _check_name(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError(f"name must be a string, got {value!r}")
        if len(value) > _MAX_NAME or _CONTROL.search(value):
            raise ValueError(
                f"name must be at most {_MAX_NAME} characters, without line breaks or control "
                f"characters, got {value[:60]!r}"
            )
        return value.strip()

    @field_validator("target", mode="before")
    @classmethod
    def _check_target(cls, value: object) -> object:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"target must be a non-empty operation or endpoint, got {value!r}")
        if _CONTROL.search(value):
            raise ValueError(f"target must not hold control characters, got {value!r}")
        return value

    @field_validator("stat", mode="before")
    @classmethod
    def _check_stat(cls, value: object) -> object:
        return _choice(value, "stat", STATS)

    @field_validator("kind", mode="before")
    @classmethod
    def _check_kind(cls, value: object) -> object:
        return _choice(value, "kind", KINDS)

    @field_validator("severity", mode="before")
    @classmethod
    def _check_severity(cls, value: object) -> object:
        return _choice(value, "severity", SEVERITIES)

    @field_validator("window", "baseline", mode="before")
    @classmethod
    def _check_span(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            return value
        seconds = parse_duration(value, str(info.field_name))
        if not 1.0 <= seconds <= _MAX_SPAN_S:
            raise ValueError(
                f"{info.field_name} must be between 1 second and 366 days, got {value!r}"
            )
        return seconds

    @field_validator("for_s", mode="before")
    @classmethod
    def _check_for(cls, value: object) -> object:
        seconds = parse_duration(value, "for_s")
        if seconds > _MAX_SPAN_S:
            raise ValueError(f"for_s must be at most 366 days, got {value!r}")
        return seconds

    @field_validator("above", "above_ms", "factor", mode="before")
    @classmethod
    def _check_number(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            return value
        number = _number(value, str(info.field_name))
        if number < 0:
            raise ValueError(f"{info.field_name} must not be negative, got {value!r}")
        return number

    @field_validator("min_samples", mode="before")
    @classmethod
    def _check_min_samples(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"min_samples must be a whole number, 0 or more, got {value!r}")
        return value

    @field_validator("builtin", mode="before")
    @classmethod
    def _check_builtin(cls, value: object) -> object:
        if not isinstance(value, bool):
            raise ValueError(f"builtin must be true or false, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_rule(self) -> Watch:
        thresholds = [f for f in ("above", "above_ms") if getattr(self, f) is not None]
        if len(thresholds) > 1:
            raise ValueError("give above or above_ms, not both")
        if thresholds and self.baseline is not None:
            raise ValueError(f"give a threshold ({thresholds[0]}) or a baseline, not both")
        if not thresholds and self.baseline is None:
            hint = " (or above_ms, in milliseconds)" if self.stat in TIMING_STATS else ""
            raise ValueError(f"needs a threshold, above{hint}, or a baseline such as '7d'")
        if self.above_ms is not None and self.stat not in TIMING_STATS:
            raise ValueError(
                f"above_ms is for timings (p50, p95, p99, mean); {self.stat} takes above"
            )
        if self.stat == "error_rate" and self.above is not None and self.above >= 1:
            raise ValueError(
                f"an error_rate is a fraction: above must be under 1 (0.05 is 5 %), "
                f"got {self.above:g}"
            )
        if self.baseline is None:
            if self.factor is not None:
                raise ValueError("factor goes with a baseline; add baseline = '7d' or drop it")
        else:
            if self.factor is None or not self.factor > 1:
                raise ValueError(f"factor must be above 1 (1.5 is 50 % worse), got {self.factor}")
            if self.baseline < self.window:
                raise ValueError(
                    f"baseline ({format_duration(self.baseline)}) must be at least the window "
                    f"({format_duration(self.window)})"
                )
        if self.kind == "endpoint":
            match = _ENDPOINT.match(self.target)
            if match is not None:  # "get /x" is the series "GET /x"
                self.target = f"{match.group(1).upper()} {match.group(2)}"
        if not self.name:
            self.name = self._derived_name()
        return self

    def _derived_name(self) -> str:
        if self.baseline is not None:
            return f"{self.target}:{self.stat}>{self.factor:g}x{format_duration(self.baseline)}"
        if self.above_ms is not None:
            return f"{self.target}:{self.stat}>{self.above_ms:g}ms"
        return f"{self.target}:{self.stat}>{self.above:g}"

    @property
    def method(self) -> str | None:
        """An endpoint watch's HTTP method, None when it covers every method (or an operation)."""
        if self.kind != "endpoint":
            return None
        match = _ENDPOINT.match(self.target)
        return match.group(1) if match else None

    @property
    def path(self) -> str:
        """An endpoint watch's path (or the operation's name)."""
        match = _ENDPOINT.match(self.target) if self.kind == "endpoint" else None
        return match.group(2) if match else self.target

    def describe(self) -> str:
        """The rule in words: ``p95 over 5m above 250 ms``."""
        over = f"{self.stat} over {format_duration(self.window)}"
        if self.baseline is not None:
            rule = f"{over} above {self.factor:g}× its {format_duration(self.baseline)} baseline"
        elif self.above_ms is not None:
            rule = f"{over} above {self.above_ms:g} ms"
        else:
            rule = f"{over} above {_plain_threshold(self)}"
        return rule + (f" for {format_duration(self.for_s)}" if self.for_s else "")

    def to_dict(self) -> dict[str, Any]:
        """The rule as JSON values (spans in seconds), the fields left unset omitted."""
        return self.model_dump(exclude_none=True)


def _plain_threshold(watch: Watch) -> str:
    above = watch.above if watch.above is not None else 0.0
    if watch.stat == "error_rate":
        return f"{above:.2%}"
    if watch.stat == "count_per_min":
        return f"{above:g}/min"
    return f"{above:g}" + (" ms" if watch.kind == "endpoint" else "")


def _label(raw: object, index: int | None) -> str:
    """How an error names a rule: its name, else target:stat, else its position."""
    if isinstance(raw, Mapping):
        name = raw.get("name")
        if isinstance(name, str) and name.strip():
            return repr(name.strip())
        target, stat = raw.get("target"), raw.get("stat", "p95")
        if isinstance(target, str) and target.strip():
            return repr(f"{target}:{stat}")
    return f"#{index + 1}" if index is not None else "(unnamed)"


def _explain(exc: ValidationError) -> str:
    known = ", ".join(Watch.model_fields)
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        kind = error["type"]
        if kind == "missing":
            problems.append(f"{field} is required")
        elif kind == "extra_forbidden":
            problems.append(f"unknown field {field!r} (the fields are {known})")
        elif kind == "value_error":
            problems.append(str(error.get("ctx", {}).get("error", error["msg"])))
        elif kind in ("model_type", "dict_type"):
            problems.append(f"must be a table of fields, got {error.get('input')!r}")
        else:
            problems.append(f"{field}: {error['msg']}" if field else error["msg"])
    return "; ".join(problems)


def parse_watch(raw: object, source: str | None = None, index: int | None = None) -> Watch:
    """A validated :class:`Watch` from a mapping of fields (JSON, TOML or keyword arguments).

    Raises:
        WatchError: ``[source: ]watch 'name': <what is wrong>`` for any malformed field.
    """
    where = f"{source}: " if source else ""
    if not isinstance(raw, Mapping):
        raise WatchError(
            f"{where}watch {_label(raw, index)} must be a table of fields, got {raw!r}"
        )
    if raw.get("builtin") is True:
        raise WatchError(
            f"{where}watch {_label(raw, index)}: builtin is reserved for the default regression "
            "watches; drop it (a watch named 'regression:<operation>' replaces that default)"
        )
    try:
        return Watch.model_validate(dict(raw))
    except ValidationError as exc:
        raise WatchError(f"{where}watch {_label(raw, index)}: {_explain(exc)}") from None


def _parse_list(items: object, source: str | None) -> list[Watch]:
    if isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, list):
        where = f"{source}: " if source else ""
        raise WatchError(f"{where}watches must be a list of tables, got {items!r}")
    watches = [parse_watch(raw, source, i) for i, raw in enumerate(items)]
    _refuse_duplicates(watches, source)
    return watches


def _refuse_duplicates(watches: Iterable[Watch], source: str | None) -> None:
    seen: set[str] = set()
    for watch in watches:
        if watch.name in seen:
            where = f"{source}: " if source else ""
            raise WatchError(
                f"{where}watch {watch.name!r} is defined twice; give one of them another name"
            )
        seen.add(watch.name)


def parse_watches_json(text: str, source: str | None = "PTPD_MONITORING_WATCHES") -> list[Watch]:
    """Watches from a JSON list of objects (one object is one watch); ``""`` is none.

    Raises:
        WatchError: the text is not JSON, or a rule is malformed (the message names it).
    """
    if not text.strip():
        return []
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{source}: " if source else ""
        raise WatchError(f"{where}not valid JSON ({exc})") from None
    return _parse_list(items, source)


def parse_watches_toml(path: str | Path) -> list[Watch]:
    """Watches from a TOML file of ``[[watch]]`` tables.

    Raises:
        WatchError: the file is missing or unreadable, not TOML, holds other top-level keys, or
            a rule is malformed; the message names the file and the rule.
    """
    path = Path(path).expanduser()
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise WatchError(f"{path}: no such watches file") from None
    except IsADirectoryError:
        raise WatchError(f"{path}: is a folder, not a watches file") from None
    except OSError as exc:
        raise WatchError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WatchError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - {"watch"})
    if unknown:
        raise WatchError(
            f"{path}: unknown top-level key(s) {', '.join(unknown)}; write each watch as a "
            "[[watch]] table"
        )
    return _parse_list(data.get("watch", []), str(path))


# -- the registry of watches declared in Python ---------------------------------------------------

_registry_lock = threading.Lock()
_registry: dict[str, Watch] = {}


def register_watch(watch: Watch) -> Watch:
    """Add ``watch`` to this process's watches (replacing one of the same name); returns it."""
    if not isinstance(watch, Watch):
        raise TypeError(f"register_watch takes a Watch, got {type(watch).__name__}")
    with _registry_lock:
        _registry[watch.name] = watch
    return watch


def unregister_watch(name: str) -> bool:
    """Forget the registered watch ``name``; whether there was one."""
    with _registry_lock:
        return _registry.pop(name, None) is not None


def registered_watches() -> list[Watch]:
    """The watches declared in Python in this process, in the order they were first declared."""
    with _registry_lock:
        return list(_registry.values())


def clear_registered_watches() -> None:
    """Forget every watch declared in Python (tests start clean)."""
    with _registry_lock:
        _registry.clear()


# -- which watches apply --------------------------------------------------------------------------


def load_watches(
    settings: MonitoringSettings | None = None,
    *,
    files: Sequence[str | Path] | None = None,
    registered: bool = True,
) -> list[Watch]:
    """The configured watches: ``PTPD_MONITORING_WATCHES``, the watches file(s) and the ones
    registered in Python (a configured watch replaces a registered one of the same name).

    Args:
        settings: defaults to ``get_settings()``.
        files: TOML files to read instead of ``PTPD_MONITORING_WATCHES_FILE`` (None: that
            setting's file, if any; ``[]``: no file).
        registered: include the watches declared in Python in this process.

    Raises:
        WatchError: a source is malformed, or two configured watches share a name.
    """
    if settings is None:
        from .settings import get_settings

        settings = get_settings()
    if files is None:
        files = [settings.WATCHES_FILE] if settings.WATCHES_FILE is not None else []
    configured = parse_watches_json(settings.WATCHES)
    for path in files:
        configured.extend(parse_watches_toml(path))
    _refuse_duplicates(configured, "the configured watches (PTPD_MONITORING_WATCHES and files)")
    names = {watch.name for watch in configured}
    python = [w for w in registered_watches() if w.name not in names] if registered else []
    return python + configured


def default_watches(store: SampleStore) -> list[Watch]:
    """The built-in regression watch of every operation in the store (none without a store)."""
    if not store.directory.is_dir():
        return []
    return [
        Watch(
            name=f"{BUILTIN_PREFIX}{operation}",
            target=operation,
            kind="operation",
            stat="p95",
            window=BUILTIN_WINDOW_S,
            baseline=BUILTIN_BASELINE_S,
            factor=BUILTIN_FACTOR,
            min_samples=BUILTIN_MIN_SAMPLES,
            builtin=True,
        )
        for operation in store.series_names(METRIC)
    ]


def active_watches(
    store: SampleStore,
    settings: MonitoringSettings | None = None,
    *,
    files: Sequence[str | Path] | None = None,
    defaults: bool | None = None,
    registered: bool = True,
) -> list[Watch]:
    """Every watch :func:`evaluate` judges by default: the configured and registered ones, then
    the built-in regression watches that no watch of the same name replaces.

    Args:
        defaults: include the built-in watches; None follows ``PTPD_MONITORING_DEFAULT_WATCHES``.

    Raises:
        WatchError: a source is malformed (see :func:`load_watches`).
    """
    if settings is None:
        from .settings import get_settings

        settings = get_settings()
    watches = load_watches(settings, files=files, registered=registered)
    if defaults is None:
        defaults = settings.DEFAULT_WATCHES
    if defaults:
        names = {watch.name for watch in watches}
        watches += [w for w in default_watches(store) if w.name not in names]
    return watches


# -- evaluation -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Samples:
    ts: np.ndarray  # sorted
    values: np.ndarray
    errors: np.ndarray  # bool
    unit: str

    @property
    def size(self) -> int:
        return int(self.ts.size)


_EMPTY = _Samples(np.empty(0), np.empty(0), np.empty(0, dtype=bool), "")


class _Reader:
    """One evaluation's reads: the store's series, each span read once."""

    def __init__(self, store: SampleStore) -> None:
        self.store = store
        self.exists = store.directory.is_dir()
        self._api_names: list[str] | None = None
        self._metric_names: set[str] | None = None
        self._cache: dict[tuple[str, str, float, float], _Samples] = {}

    def _series(self, watch: Watch) -> list[str]:
        if watch.kind == "operation":
            if self._metric_names is None:
                self._metric_names = set(self.store.series_names(METRIC))
            return [watch.target] if watch.target in self._metric_names else []
        if self._api_names is None:
            self._api_names = self.store.series_names(API)
        if watch.method is not None:
            return [watch.target] if watch.target in self._api_names else []
        return [name for name in self._api_names if name.partition(" ")[2] == watch.path]

    def read(self, watch: Watch, lo: float, hi: float) -> _Samples:
        key = (watch.kind, watch.target, lo, hi)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._read(watch, lo, hi)
        return cached

    def _read(self, watch: Watch, lo: float, hi: float) -> _Samples:
        if not self.exists:
            return _EMPTY
        parts: list[_Samples] = []
        kind = METRIC if watch.kind == "operation" else API
        for name in self._series(watch):
            data = self.store.read_columns(kind, name, lo, hi)
            if not data.size:
                continue
            ts, values = data.columns[0], data.columns[1]
            if kind == API:
                errors = data.columns[2] >= 400
            else:
                errors = np.zeros(ts.size, dtype=bool)
                failed = [i for i, meta in data.meta.items() if "error" in meta]
                errors[failed] = True
            parts.append(_Samples(ts, values, errors, data.unit or ("ms" if kind == API else "")))
        if not parts:
            return _EMPTY
        ts = np.concatenate([p.ts for p in parts])
        values = np.concatenate([p.values for p in parts])
        errors = np.concatenate([p.errors for p in parts])
        if ts.size > 1 and not bool(np.all(ts[1:] >= ts[:-1])):  # processes interleave
            order = np.argsort(ts, kind="stable")
            ts, values, errors = ts[order], values[order], errors[order]
        return _Samples(ts, values, errors, parts[-1].unit)


def _statistic(stat: str, values: np.ndarray, errors: np.ndarray, span_s: float) -> float | None:
    if stat == "count_per_min":
        return values.size / (span_s / 60.0)
    if values.size == 0:
        return None
    if stat == "mean":
        return float(values.mean())
    if stat == "error_rate":
        return float(np.count_nonzero(errors)) / values.size
    return _stats.percentiles(values, [_PERCENTILES[stat]])[stat]


def _moments(watch: Watch, now: float) -> list[float]:
    """The moments the watch is judged at, oldest first, ``now`` last (see the docstring)."""
    if watch.for_s <= 0:
        return [now]
    step = min(watch.window, _FOR_STEP_S)
    count = min(_MAX_FOR_STEPS, max(1, math.ceil(watch.for_s / step)))
    return [now - watch.for_s * (count - i) / count for i in range(count + 1)]


def seconds_per_unit(unit: str) -> float | None:
    """Seconds in one ``unit`` ("ms" → 0.001), or None for a unit that is not a time: the one
    table the watches and the dashboard's watch bands convert with."""
    return _TIME_UNITS.get(unit.strip().lower()) if unit else None


def _show(value: float | None, unit: str, stat: str) -> str:
    """A value as a reader wants it: 412 ms, 1.84 s, 5.12%, 12.5/min, 3.2 MB."""
    if value is None:
        return "-"
    if stat == "error_rate":
        return f"{value:.2%}"
    if stat == "count_per_min":
        return f"{value:.3g}/min"
    scale = seconds_per_unit(unit)
    if scale is not None:
        seconds = value * scale
        if seconds < 1:
            return f"{seconds * 1000:.3g} ms"
        return f"{seconds:.3g} s"
    return f"{value:.4g} {unit}".rstrip()


@dataclass(frozen=True, slots=True)
class WatchResult:
    """What one evaluation found for one watch.

    ``status`` is "firing" (the condition held throughout ``for_s``), "pending" (it holds now,
    not yet throughout), "ok", "insufficient" (fewer samples than ``min_samples`` in the window
    or the baseline) or "invalid" (the rule does not fit the series, e.g. ``above_ms`` on a
    series that is not a timing). ``value``, ``threshold`` and ``baseline`` are in ``unit``.
    """

    watch: Watch
    status: Status
    ts: float
    value: float | None
    threshold: float | None
    unit: str
    samples: int
    message: str
    baseline: float | None = None
    baseline_samples: int | None = None

    @property
    def firing(self) -> bool:
        return self.status == "firing"

    @property
    def ratio(self) -> float | None:
        """value / baseline for a baseline watch (None without both, or a zero baseline)."""
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def to_dict(self) -> dict[str, Any]:
        """JSON values, shaped like ``ResourceMonitor.get_alerts_for_high_usage()`` entries
        (``resource`` is the target, ``usage`` the value) plus the watch's own fields."""
        watch = self.watch
        return {
            "resource": watch.target,
            "usage": self.value,
            "threshold": self.threshold,
            "severity": watch.severity,
            "message": self.message,
            "watch": watch.name,
            "status": self.status,
            "firing": self.firing,
            "target": watch.target,
            "kind": watch.kind,
            "stat": watch.stat,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "factor": watch.factor,
            "samples": self.samples,
            "baseline_samples": self.baseline_samples,
            "window_s": watch.window,
            "baseline_s": watch.baseline,
            "for_s": watch.for_s,
            "builtin": watch.builtin,
            "ts": self.ts,
        }

    def event(self) -> dict[str, Any]:
        """The record stored when the watch fires (see :func:`watch_history`)."""
        row = self.to_dict()
        for key in ("resource", "usage", "status", "firing"):
            del row[key]
        return row


def firing_alerts(results: Iterable[WatchResult]) -> list[dict[str, Any]]:
    """The firing results as alert dicts, critical ones first (otherwise in watch order)."""
    firing = [r.to_dict() for r in results if r.firing]
    return sorted(firing, key=lambda alert: _SEVERITY_ORDER[alert["severity"]])


def _judge(watch: Watch, reader: _Reader, now: float) -> WatchResult | None:
    moments = _moments(watch, now)
    start = moments[0] - watch.window
    recent = reader.read(watch, start, now)
    unit = recent.unit or ("ms" if watch.kind == "endpoint" else "")
    timing = seconds_per_unit(unit) is not None

    def result(status: Status, message: str, **fields: Any) -> WatchResult:
        fields.setdefault("value", None)
        fields.setdefault("threshold", None)
        fields.setdefault("samples", 0)
        return WatchResult(watch, status, now, unit=unit, message=message, **fields)

    if watch.builtin and recent.size and not timing:
        return None  # a regression watch is for timings: a higher rate is not a regression
    over = f"over the last {format_duration(watch.window)}"
    what = f"{watch.target} {watch.stat}"
    # The statistic and sample count at each moment, over the window that ends there.
    values: list[float | None] = []
    counts: list[int] = []
    for moment in moments:
        lo = int(np.searchsorted(recent.ts, moment - watch.window, "left"))
        hi = int(np.searchsorted(recent.ts, moment, "right"))
        counts.append(hi - lo)
        values.append(
            _statistic(watch.stat, recent.values[lo:hi], recent.errors[lo:hi], watch.window)
        )
    need = watch.min_samples if watch.stat == "count_per_min" else max(watch.min_samples, 1)
    value, samples = values[-1], counts[-1]
    if samples < need:
        return result(
            "insufficient",
            f"{watch.target}: {samples} samples {over}, fewer than the {need} this watch needs",
            value=value,
            samples=samples,
        )

    baseline: float | None = None
    baseline_samples: int | None = None
    if watch.baseline is not None:
        assert watch.factor is not None  # validated: a baseline comes with its factor
        past = reader.read(watch, start - watch.baseline, start)
        cut = int(np.searchsorted(past.ts, start, "left"))  # a sample at `start` is the window's
        baseline_samples = cut
        before = f"the previous {format_duration(watch.baseline)}"
        if cut < need:
            return result(
                "insufficient",
                f"{watch.target}: {cut} samples in {before} (the baseline), fewer than the "
                f"{need} this watch needs",
                value=value,
                samples=samples,
                baseline_samples=cut,
            )
        baseline = _statistic(watch.stat, past.values[:cut], past.errors[:cut], watch.baseline)
        assert baseline is not None
        threshold = watch.factor * baseline
        shown_base = _show(baseline, unit, watch.stat)
        if baseline and value is not None:
            relation = f"{value / baseline:.2f}× its {watch.stat} over {before} ({shown_base}, "
        else:
            relation = f"against {shown_base} over {before} ("
        relation += f"{cut:,} samples), "
        limit = f"{watch.factor:g}×"
    else:
        if watch.above_ms is not None:
            if watch.kind == "endpoint":
                threshold = watch.above_ms
            else:
                scale = seconds_per_unit(unit)
                if scale is None:
                    return result(
                        "invalid",
                        f"{watch.target} is recorded in {unit!r}, not a time: above_ms needs a "
                        f"timing; give above in {unit!r} instead",
                        value=value,
                        samples=samples,
                    )
                threshold = watch.above_ms * 1e-3 / scale
        else:
            assert watch.above is not None  # validated: a threshold or a baseline
            threshold = watch.above
        relation = ""
        limit = f"the {_show(threshold, unit, watch.stat)} threshold"

    holds = [
        count >= need and v is not None and v > threshold
        for count, v in zip(counts, values, strict=True)
    ]
    shown = _show(value, unit, watch.stat)
    counted = f"{samples:,} samples" if watch.stat != "count_per_min" else f"{samples:,} in all"
    head = f"{what} {over} is {shown} ({counted}), {relation}"
    if holds[-1] and all(holds):
        status: Status = "firing"
        lasting = f" throughout the last {format_duration(watch.for_s)}" if watch.for_s else ""
        message = f"{head}above {limit}{lasting}"
    elif holds[-1]:
        status = "pending"
        message = f"{head}above {limit}, not yet throughout the last {format_duration(watch.for_s)}"
    else:
        status = "ok"
        message = f"{head}not above {limit}"
    return result(
        status,
        message,
        value=value,
        threshold=threshold,
        samples=samples,
        baseline=baseline,
        baseline_samples=baseline_samples,
    )


def evaluate(
    store: SampleStore,
    watches: Sequence[Watch] | None = None,
    now: float | None = None,
    *,
    record: bool = True,
) -> list[WatchResult]:
    """Judge each watch over every process's samples in ``store``, as of ``now``.

    Args:
        watches: the rules; None takes :func:`active_watches` (settings, file, Python, and the
            built-in regression watches).
        now: epoch seconds (default: the clock).
        record: store an event for each firing watch (at most one per watch a minute).

    Returns:
        One result per watch, in order (a built-in watch of a series that is not a timing has
        none).

    Raises:
        WatchError: ``watches`` is None and the configured watches are malformed.
        StoreError: the store cannot be read.
    """
    if now is None:
        now = time.time()
    if watches is None:
        watches = active_watches(store)
    reader = _Reader(store)
    results = [r for r in (_judge(w, reader, now) for w in watches) if r is not None]
    if record and reader.exists:
        _record(store, results, now)
    return results


def _record(store: SampleStore, results: Sequence[WatchResult], now: float) -> None:
    firing = [r for r in results if r.firing]
    if not firing:
        return
    recent = store.read_records(EVENT, WATCH_EVENTS, now - EVENT_REPEAT_S, now)
    seen = {row.get("watch") for row in recent}
    rows = [r.event() for r in firing if r.watch.name not in seen]
    if rows:
        store.write([RecordBatch(EVENT, WATCH_EVENTS, rows)])


def watch_history(
    store: SampleStore,
    since: float | None = None,
    until: float | None = None,
    watch: str | None = None,
) -> list[dict[str, Any]]:
    """The stored firings in ``[since, until]`` (epoch seconds), oldest first; ``watch``: one
    watch's. Each is a :meth:`WatchResult.event` record: ts, watch, target, value, threshold,
    severity, message, ...; an empty list without a store."""
    if not store.directory.is_dir():
        return []
    rows = store.read_records(EVENT, WATCH_EVENTS, since, until)
    return [row for row in rows if watch is None or row.get("watch") == watch]
