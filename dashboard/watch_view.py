"""Watches on the dashboard: judged once a minute per server, listed on the Overview, drawn on
the Latency and API charts.

One :class:`WatchEvaluator` per store folder and server (``st.cache_resource``, the pattern of
``app.py``'s machine sampler) judges every active watch over the store in a background thread:
at once, then every :data:`EVALUATE_EVERY_S` seconds (``watches.evaluate``: the configured
watches, the ones registered in Python and the built-in regression watches; a firing watch is
stored as an event, so it has a history). The pages only read its latest results, so a rerun,
another tab or the Overview's live refresh costs no evaluation.

- :func:`show_watches` is the Overview's block: the firing watches with their severity and
  message (built-in ones labelled), or "No watch is firing".
- :func:`add_watch_bands` draws each watch of the charted operations or endpoints on a plotly
  figure: a dashed line at a fixed threshold ("watch: p95 > 250 ms"), a band from the baseline
  to the level that fires ("baseline 1.5× of 7-day p95"), in the chart's unit.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from ptpd_calibration.monitoring.store import SampleStore, StoreError

# The engine's one table of time units (seconds per unit), so a chart converts as it judges.
from ptpd_calibration.monitoring.watches import (
    Watch,
    WatchError,
    WatchResult,
    evaluate,
    firing_alerts,
    seconds_per_unit,
)

from .components import store_in_use
from .readers import cleared_by_invalidate, store_at

__all__ = [
    "EVALUATE_EVERY_S",
    "FIRST_WAIT_S",
    "WatchEvaluator",
    "WatchSnapshot",
    "add_watch_bands",
    "band_label",
    "current_watches",
    "firing_watches",
    "show_watches",
    "watch_evaluator",
    "watch_results",
]

logger = logging.getLogger(__name__)

#: Seconds between two evaluations of one store's watches (per server, not per tab).
EVALUATE_EVERY_S = 60.0
#: How long a page waits for a server's first evaluation before saying it is under way.
FIRST_WAIT_S = 5.0

_COLOURS = {"critical": "#c8553d", "warning": "#d9a441"}
_QUIET = "#8a8a8a"  # a watch that is not firing
_ENDPOINT = re.compile(r"^([A-Za-z]+) (\S.*)$")
_MARKDOWN = re.compile(r"([\\`*$~\[\]])")
_EMPHASIS = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")  # within a word, _ is plain
_PER_MINUTE = frozenset({"/min", "per min", "per minute", "requests/min", "rpm"})
_FRACTION = frozenset({"", "fraction", "ratio"})


# -- evaluation -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchSnapshot:
    """One evaluation: when (epoch seconds), each watch's result, or why nothing was judged.

    ``problem`` is set when the watches could not be judged: a malformed watch (the
    ``WatchError`` message, naming the rule) or an unreadable store (``store_unreadable``).
    """

    ts: float
    results: tuple[WatchResult, ...] = ()
    problem: str | None = None
    store_unreadable: bool = False

    @property
    def firing(self) -> list[WatchResult]:
        return [r for r in self.results if r.firing]


class WatchEvaluator:
    """Judges the watches over ``store`` now and then every ``period_s`` seconds in a thread.

    The thread holds the evaluator weakly: once nothing else refers to it (Streamlit's cache
    cleared, ``invalidate()``), it stops after the evaluation under way.
    """

    def __init__(
        self, store: SampleStore, period_s: float = EVALUATE_EVERY_S, *, record: bool = True
    ) -> None:
        if not period_s > 0:
            raise ValueError(f"period_s must be a positive number of seconds, got {period_s!r}")
        self.store = store
        self.period_s = float(period_s)
        self.record = record
        self._latest: WatchSnapshot | None = None
        self._lock = threading.Lock()  # one evaluation at a time
        self._judged = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        weakref.finalize(self, self._stop.set)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def evaluate(self, now: float | None = None) -> WatchSnapshot:
        """Judge every active watch once (as of ``now``, default the clock); the new latest."""
        with self._lock:
            moment = time.time() if now is None else now
            try:
                snapshot = WatchSnapshot(
                    moment, tuple(evaluate(self.store, now=moment, record=self.record))
                )
            except WatchError as exc:
                snapshot = WatchSnapshot(moment, problem=str(exc))
            except StoreError as exc:
                snapshot = WatchSnapshot(moment, problem=exc.reason, store_unreadable=True)
            except Exception as exc:  # the sampler must go on; the Overview says why
                logger.exception("dashboard: judging the watches failed")
                snapshot = WatchSnapshot(moment, problem=f"{type(exc).__name__}: {exc}")
            self._latest = snapshot
            self._judged.set()
            return snapshot

    def latest(self, wait_s: float = 0.0) -> WatchSnapshot | None:
        """The last evaluation; before the first, wait up to ``wait_s`` for it (None: none yet)."""
        if wait_s > 0 and self._latest is None:
            self._judged.wait(wait_s)
        return self._latest

    def start(self) -> WatchEvaluator:
        """Start the background evaluations (once); returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=_evaluate_every,
                args=(weakref.ref(self), self._stop, self.period_s),
                name="ptpd-watch-evaluator",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background evaluations (the one under way finishes)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


def _evaluate_every(
    ref: weakref.ref[WatchEvaluator], stop: threading.Event, period_s: float
) -> None:
    due = time.monotonic()
    while not stop.is_set():
        evaluator = ref()
        if evaluator is None:
            return
        evaluator.evaluate()
        del evaluator  # held weakly between evaluations
        due = max(due + period_s, time.monotonic())
        stop.wait(due - time.monotonic())


@cleared_by_invalidate
@st.cache_resource(show_spinner=False)
def watch_evaluator(directory: str) -> WatchEvaluator:
    """One evaluator per store folder and server, started (see :class:`WatchEvaluator`)."""
    return WatchEvaluator(store_at(directory)).start()


def current_watches(
    store: SampleStore | None = None, *, wait_s: float = FIRST_WAIT_S
) -> WatchSnapshot | None:
    """The latest evaluation of the watches over ``store`` (default: the store the dashboard
    reads); None while the server's first one is still under way after ``wait_s``."""
    directory = str((store if store is not None else store_in_use()).directory)
    return watch_evaluator(directory).latest(wait_s)


def watch_results(
    store: SampleStore | None = None, *, wait_s: float = FIRST_WAIT_S
) -> list[WatchResult]:
    """Each watch's latest result (what :func:`add_watch_bands` draws); [] when none is known."""
    snapshot = current_watches(store, wait_s=wait_s)
    return list(snapshot.results) if snapshot is not None else []


def firing_watches(
    watches: WatchSnapshot | Iterable[WatchResult] | None = None,
) -> list[dict[str, Any]]:
    """The firing watches as alert dicts, critical first.

    Each is ``WatchResult.to_dict()`` (``resource``, ``usage``, ``threshold``, ``severity``,
    ``message``, ``watch``, ``builtin``, ...) plus ``label``, the watch's name with
    "(built-in)" for a default regression watch, and ``rule``, the rule in words.

    Args:
        watches: an evaluation or its results; None: the latest over the dashboard's store.
    """
    if watches is None:
        watches = current_watches()
        if watches is None:
            return []
    results = watches.results if isinstance(watches, WatchSnapshot) else tuple(watches)
    rules = {r.watch.name: r.watch for r in results}
    alerts = firing_alerts(results)
    for alert in alerts:
        watch = rules[alert["watch"]]
        alert["label"] = watch.name + (" (built-in)" if watch.builtin else "")
        alert["rule"] = watch.describe()
    return alerts


# -- the Overview's block -------------------------------------------------------------------------


def _plain(text: str) -> str:
    """``text`` shown as it is in Streamlit's Markdown (no emphasis, code or formula)."""
    return _EMPHASIS.sub(r"\\_", _MARKDOWN.sub(r"\\\1", text))


def show_watches(store: SampleStore | None = None) -> None:
    """The Overview's "Watches" block: firing watches (errors for critical ones, warnings for
    the rest), or "No watch is firing", with the pending ones and the ones that can't be judged.

    Never raises for an unreadable store: the page's own banner says that once.
    """
    st.markdown("**Watches**")
    snapshot = current_watches(store)
    if snapshot is None:
        st.caption("The watches are being judged for the first time; they show here shortly.")
        return
    if snapshot.problem is not None:
        if snapshot.store_unreadable:
            st.caption("The watches are not judged: the store can't be read.")
        else:
            st.warning(f"The watches are not judged: {_plain(snapshot.problem)}")
        return
    alerts = firing_watches(snapshot)
    for alert in alerts:
        show = st.error if alert["severity"] == "critical" else st.warning
        show(f"**{_plain(alert['label'])}** ({alert['severity']}): {_plain(alert['message'])}")
    judged = len(snapshot.results)
    builtin = sum(r.watch.builtin for r in snapshot.results)
    at = time.strftime("%H:%M:%S", time.localtime(snapshot.ts))
    counted = f"{judged} watch{'' if judged == 1 else 'es'} ({builtin} built-in) judged at {at}"
    if not alerts:
        st.caption(f"No watch is firing: {counted}, again every {EVALUATE_EVERY_S:g} s.")
    else:
        st.caption(f"{len(alerts)} firing of {counted}, again every {EVALUATE_EVERY_S:g} s.")
    pending = [r.watch.name for r in snapshot.results if r.status == "pending"]
    if pending:
        st.caption(
            "Pending (above the limit, not yet for the watch's minimum duration): "
            + ", ".join(_plain(name) for name in pending)
        )
    for result in snapshot.results:
        if result.status == "invalid":
            st.caption(f"Can't judge {_plain(result.watch.name)}: {_plain(result.message)}")


# -- the bands on the charts ----------------------------------------------------------------------


def _covers(watch: Watch, name: str) -> bool:
    """Whether ``watch`` is about the charted series ``name`` (an operation, ``"GET /x"`` or a
    path, which covers every method)."""
    if watch.kind == "operation":
        return watch.target == name
    match = _ENDPOINT.match(name)
    if match is None or watch.method is None:
        return watch.path == (match.group(2) if match else name)
    return watch.target == f"{match.group(1).upper()} {match.group(2)}"


def _in_chart_unit(value: float, stat: str, series_unit: str, chart_unit: str) -> float | None:
    """A watch's value, in the series' unit, in the chart's; None when it has no place there."""
    chart = chart_unit.strip()
    if stat == "error_rate":
        if chart == "%":
            return value * 100.0
        return value if chart.lower() in _FRACTION else None
    if stat == "count_per_min":
        return value if chart.lower() in _PER_MINUTE else None
    series_scale, chart_scale = seconds_per_unit(series_unit), seconds_per_unit(chart)
    if series_scale is not None and chart_scale is not None:
        return value * series_scale / chart_scale
    return value if series_unit.strip() and series_unit.strip() == chart else None


def _threshold(watch: Watch, result: WatchResult | None, chart_unit: str) -> float | None:
    """A fixed-threshold watch's limit in the chart's unit (known even before it is judged)."""
    if watch.above_ms is not None:
        chart_scale = seconds_per_unit(chart_unit)
        return None if chart_scale is None else watch.above_ms * 1e-3 / chart_scale
    if result is not None and result.threshold is not None and result.unit:
        return _in_chart_unit(result.threshold, watch.stat, result.unit, chart_unit)
    if watch.above is None:
        return None
    if watch.stat in ("error_rate", "count_per_min"):
        return _in_chart_unit(watch.above, watch.stat, "", chart_unit)
    series_unit = result.unit if result is not None and result.unit else ""
    if not series_unit and watch.kind == "endpoint":
        series_unit = "ms"  # requests are recorded in milliseconds
    return _in_chart_unit(watch.above, watch.stat, series_unit, chart_unit) if series_unit else None


def _shown(value: float, unit: str) -> str:
    unit = unit.strip()
    if unit == "%":
        return f"{value:.4g}%"
    return f"{value:.4g} {unit}".rstrip()


def _span(seconds: float) -> str:
    """A baseline period as an adjective: 7-day, 1-hour, 90-minute."""
    for word, size in (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}-{word}"
    return f"{seconds:g}-second"


def band_label(watch: Watch, limit: float | None, chart_unit: str) -> str:
    """How a chart names a watch: ``watch: p95 > 250 ms`` for a threshold (``limit`` in the
    chart's unit), ``baseline 1.5× of 7-day p95`` for a baseline."""
    if watch.baseline is not None:
        return f"baseline {watch.factor:g}× of {_span(watch.baseline)} {watch.stat}"
    shown = "?" if limit is None else _shown(limit, chart_unit)
    return f"watch: {watch.stat} > {shown}"


def _pairs(
    watches: WatchSnapshot | Iterable[WatchResult | Watch] | None,
) -> list[tuple[Watch, WatchResult | None]]:
    if watches is None:
        watches = current_watches()
        if watches is None:
            return []
    items = watches.results if isinstance(watches, WatchSnapshot) else watches
    return [(item, None) if isinstance(item, Watch) else (item.watch, item) for item in items]


def add_watch_bands(
    fig: go.Figure,
    watches: WatchSnapshot | Iterable[WatchResult | Watch] | None,
    operation_or_endpoint: str | Iterable[str],
    unit: str,
) -> go.Figure:
    """Draw the watches of the charted operations or endpoints on ``fig``; returns ``fig``.

    A fixed threshold is a dashed horizontal line labelled ``watch: p95 > 250 ms · curve.fit``;
    a baseline watch a band from its baseline (the statistic over the baseline period, as last
    judged) to ``factor`` times it, the level above which it fires, labelled ``baseline 1.5× of
    7-day p95 · curve.fit``. Firing watches take their severity's colour, others grey. A watch
    whose statistic has no place in ``unit`` (an error rate on a latency chart) is left out, as
    is a baseline not yet known (too few samples).

    Args:
        fig: a plotly figure whose y axis is in ``unit``.
        watches: results of an evaluation (or bare watches: their fixed thresholds only);
            None: the dashboard's latest evaluation of its store.
        operation_or_endpoint: the charted series: operations such as ``curve.fit``, endpoints
            as ``"GET /api/curves"`` or a path (which every method's watch covers).
        unit: the y axis' unit: ``ms``, ``s``... for timings, ``%`` for error rates.
    """
    names = (
        [operation_or_endpoint]
        if isinstance(operation_or_endpoint, str)
        else list(dict.fromkeys(str(n) for n in operation_or_endpoint))
    )
    for watch, result in _pairs(watches):
        if not any(_covers(watch, name) for name in names):
            continue
        firing = result is not None and result.firing
        colour = _COLOURS[watch.severity] if firing else _QUIET
        suffix = f" · {watch.target}" + (" (built-in)" if watch.builtin else "")
        suffix += " — firing" if firing else ""
        if watch.baseline is not None:
            if result is None or result.baseline is None or watch.factor is None:
                continue  # no baseline judged yet
            low = _in_chart_unit(result.baseline, watch.stat, result.unit, unit)
            if low is None:
                continue
            label = band_label(watch, None, unit) + suffix
            fig.add_hrect(
                y0=low,
                y1=low * watch.factor,
                fillcolor=colour,
                opacity=0.15,
                line={"color": colour, "width": 1, "dash": "dot"},
                layer="below",
                name=label,
                annotation={"text": label, "font": {"color": colour, "size": 11}},
                annotation_position="top left",
            )
        else:
            limit = _threshold(watch, result, unit)
            if limit is None:
                continue
            label = band_label(watch, limit, unit) + suffix
            fig.add_hline(
                y=limit,
                line={"color": colour, "width": 1.5, "dash": "dash"},
                name=label,
                annotation={"text": label, "font": {"color": colour, "size": 11}},
                annotation_position="top left",
            )
    return fig
