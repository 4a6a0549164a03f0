"""The self-contained HTML report (dashboard/html_report.py) and ``report ... --format html``.

A store is filled by hand (SampleStore.write) around local noon of one day: timed operations
(one of them named like a script), requests, resource samples with one alert period, cache
snapshots and stored watch firings. The page is checked as a file: it parses, holds every
section, embeds plotly once and fetches nothing, shows the JSON report's own numbers and escapes
every name. The last tests run the command itself over a store the demo filled.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ptpd_calibration.dashboard.html_report import MAX_POINTS, SECTIONS, build_html_report
from ptpd_calibration.monitoring._common import day_window
from ptpd_calibration.monitoring.monitor import PerformanceMonitor
from ptpd_calibration.monitoring.report import PerformanceReport
from ptpd_calibration.monitoring.settings import MonitoringSettings
from ptpd_calibration.monitoring.store import (
    API,
    CACHE,
    EVENT,
    METRIC,
    RESOURCE,
    ColumnBatch,
    RecordBatch,
    SampleStore,
)
from ptpd_calibration.monitoring.watches import WATCH_EVENTS

DAY = date(2025, 6, 15)
NOON = datetime(2025, 6, 15, 12, 0, 0).timestamp()  # local noon of DAY
EVIL = "<script>alert(1)</script>"
EVIL_ENDPOINT = '/api/<img src=x onerror="alert(2)">'
SESSION = "session-<b>1</b>"
BUNDLE_MARK = "* plotly.js v"  # the banner comment that opens plotly's bundle
VOID = {"meta", "br", "link", "img", "input", "hr", "wbr", "source", "col", "area", "base"}
PERCENTILES = ("p50", "p90", "p95", "p99")


# -- the page, read back ------------------------------------------------------------------------


@dataclass
class Page:
    """What an HTML parser finds in the report."""

    headings: list[str] = field(default_factory=list)
    section_ids: list[str] = field(default_factory=list)
    scripts: list[tuple[dict[str, str | None], str]] = field(default_factory=list)
    urls: list[tuple[str, str, str]] = field(default_factory=list)  # tag, attribute, value
    tags: set[str] = field(default_factory=set)
    tables: dict[str, list[tuple[str | None, dict[str, tuple[str | None, str]]]]] = field(
        default_factory=dict
    )
    text: list[str] = field(default_factory=list)
    meta: list[dict[str, str | None]] = field(default_factory=list)

    def table(self, table_id: str) -> dict[str, dict[str, tuple[str | None, str]]]:
        """``{row key: {column: (data-value, text)}}``."""
        return {key: cells for key, cells in self.tables[table_id] if key is not None}

    def numbers(self, table_id: str) -> dict[str, dict[str, float]]:
        return {
            key: {
                col: float(value)
                for col, (value, _) in cells.items()
                if value not in (None, "true", "false")  # yes/no cells carry true/false
            }
            for key, cells in self.table(table_id).items()
        }


class _Parser(HTMLParser):
    """Collects headings, scripts, tables and URLs; checks that every element is closed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.stack: list[str] = []
        self._script: dict[str, str | None] | None = None
        self._script_text: list[str] = []
        self._heading: list[str] | None = None
        self._table: str | None = None
        self._row: tuple[str | None, dict[str, tuple[str | None, str]]] | None = None
        self._cell: tuple[str, str | None, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.page.tags.add(tag)
        if tag not in VOID:
            self.stack.append(tag)
        for name in ("src", "href", "action", "srcset", "poster", "data"):
            if attributes.get(name):
                self.page.urls.append((tag, name, str(attributes[name])))
        if tag == "meta":
            self.page.meta.append(attributes)
        if tag == "section":
            self.page.section_ids.append(str(attributes.get("id")))
        elif tag == "h2":
            self._heading = []
        elif tag == "script":
            self._script, self._script_text = attributes, []
        elif tag == "table":
            self._table = str(attributes.get("id"))
            self.page.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = (attributes.get("data-key"), {})
        elif tag == "td" and self._row is not None:
            self._cell = (str(attributes.get("data-col")), attributes.get("data-value"), [])

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-3:]}"
        self.stack.pop()
        if tag == "h2" and self._heading is not None:
            self.page.headings.append("".join(self._heading).strip())
            self._heading = None
        elif tag == "script" and self._script is not None:
            self.page.scripts.append((self._script, "".join(self._script_text)))
            self._script = None
        elif tag == "td" and self._cell is not None and self._row is not None:
            column, value, text = self._cell
            self._row[1][column] = (value, "".join(text).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            if self._row[1]:
                self.page.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script_text.append(data)
            return
        self.page.text.append(data)
        if self._heading is not None:
            self._heading.append(data)
        if self._cell is not None:
            self._cell[2].append(data)


def parse(text: str) -> Page:
    parser = _Parser()
    parser.feed(text)
    parser.close()
    assert parser.stack == [], f"unclosed elements: {parser.stack}"
    assert text.startswith("<!DOCTYPE html>")
    return parser.page


def figures(text: str) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    """The (data, layout) of every chart, from its ``Plotly.newPlot`` call."""
    decoder = json.JSONDecoder()
    found = []
    for match in re.finditer(r'Plotly\.newPlot\(\s*"chart-\d+",\s*', text):
        data, end = decoder.raw_decode(text, match.end())
        layout, _ = decoder.raw_decode(text, text.index("{", end))
        found.append((data, layout))
    return found


def points(values: Any) -> np.ndarray:
    """A trace's y: a plain list or plotly's base64 typed array."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"]))
    return np.asarray(values, dtype=np.float64)


def without_bundle(text: str) -> str:
    start = text.index(BUNDLE_MARK)
    return text[:start] + text[text.index("</script>", start) :]


# -- the store ----------------------------------------------------------------------------------


def _resource_rows(start: float, seconds: int, step: int = 2) -> list[dict[str, Any]]:
    """Every ``step`` s; CPU at 95 % from 200 s to 300 s in (a critical alert period)."""
    rows = []
    for offset in range(0, seconds, step):
        busy = 200 <= offset < 300
        rows.append(
            {
                "ts": start + offset,
                "cpu_percent": 95.0 if busy else 20.0 + offset % 7,
                "memory_percent": 40.0,
                "memory_used_mb": 4000.0,
                "memory_available_mb": 6000.0,
                "disk_percent": 60.0,
                "disk_used_gb": 60.0,
                "disk_free_gb": 40.0,
                "gpu_count": 0,
            }
        )
    return rows


def fill(store: SampleStore, start: float = NOON, seconds: int = 600, step: float = 1.0) -> None:
    rng = np.random.default_rng(7)
    ts = start + np.arange(0, seconds, step)
    tagged = {int(i): {"session_id": SESSION} for i in range(0, ts.size, 3)}
    durations = rng.lognormal(3.0, 0.4, ts.size)
    status = np.where(rng.random(ts.size) < 0.05, 500.0, 200.0)
    cache_rows = [
        {
            "ts": float(t),
            "cache": "curves",
            "pid": 1,
            "backend": "memory",
            "hits": 10 * i,
            "misses": i,
            "size": 50,
            "max_size": 100,
            "evictions": 0,
            "expirations": 0,
            "hit_rate": 10 / 11,
        }
        for i, t in enumerate(ts[::10])
    ]
    events = [
        {
            "ts": start + 60.0 * i,
            "watch": name,
            "target": target,
            "stat": "p95",
            "severity": severity,
            "message": f"{target} p95 is high",
            "value": 0.5,
            "threshold": 0.25,
            "unit": "seconds",
            "builtin": False,
        }
        for i, (name, target, severity) in enumerate(
            [
                ("slow-fit", "curve.fit", "warning"),
                ("slow-fit", "curve.fit", "critical"),
                (f"watch {EVIL}", EVIL, "warning"),
            ]
        )
    ]
    assert store.write(
        [
            ColumnBatch(
                METRIC, "curve.fit", (ts, rng.lognormal(-4, 0.5, ts.size)), "seconds", tagged
            ),
            ColumnBatch(METRIC, EVIL, (ts[::5], rng.lognormal(-3, 0.3, ts[::5].size)), "seconds"),
            ColumnBatch(
                METRIC, "pipeline.decode_memory", (ts[::5], rng.random(ts[::5].size)), "MB"
            ),
            ColumnBatch(API, "GET /api/curves/{id}", (ts, durations, status), "ms"),
            ColumnBatch(API, f"POST {EVIL_ENDPOINT}", (ts[::4], durations[::4], status[::4]), "ms"),
            RecordBatch(RESOURCE, "host", _resource_rows(start, seconds)),
            RecordBatch(CACHE, "curves", cache_rows),
            RecordBatch(EVENT, WATCH_EVENTS, events),
        ]
    )


@pytest.fixture
def store(tmp_path: Path) -> SampleStore:
    filled = SampleStore(tmp_path / "store")
    fill(filled)
    return filled


@dataclass
class Built:
    report: dict[str, Any]
    json_report: dict[str, Any]
    html: str
    page: Page


def build(store: SampleStore, kind: str = "daily", **options: Any) -> Built:
    _, since, until = day_window(DAY)
    monitor = store.load_monitor(since, until)
    reporter = PerformanceReport(monitor, store.load_api_tracker(since, until))
    if kind == "daily":
        report = reporter.generate_daily_report(DAY)
    elif kind == "session":
        report = reporter.generate_session_report(SESSION)
    else:
        report = reporter.compare_performance((NOON - 3600, NOON + 300), (NOON + 300, NOON + 3600))
    text = build_html_report(report, store, monitor=monitor, settings=MonitoringSettings())
    return Built(report, json.loads(reporter.export_report(report, "json")), text, parse(text))


@pytest.fixture
def daily(store: SampleStore) -> Built:
    return build(store)


# -- the file -----------------------------------------------------------------------------------


def test_the_file_parses_and_has_every_section_in_order(daily: Built) -> None:
    assert daily.page.section_ids == [section_id for section_id, _ in SECTIONS]
    assert daily.page.headings == [heading for _, heading in SECTIONS]
    charset = [m for m in daily.page.meta if m.get("charset")]
    assert charset == [{"charset": "utf-8"}]
    assert "No samples in this window" not in daily.html


def test_plotly_is_embedded_once_and_every_chart_uses_it(daily: Built) -> None:
    assert daily.html.count(BUNDLE_MARK) == 1
    big = [text for _, text in daily.page.scripts if len(text) > 1_000_000]
    assert len(big) == 1 and "Plotly" in big[0]
    calls = daily.html.count("Plotly.newPlot(")
    assert calls == len(figures(daily.html)) >= 8  # percentiles, bottlenecks, API, cache, ...
    # The bundle comes before the first chart is drawn.
    assert daily.html.index(BUNDLE_MARK) < daily.html.index("Plotly.newPlot(")


def test_nothing_is_fetched_from_the_network(daily: Built) -> None:
    page = daily.page
    assert "<script src=" not in daily.html and "<link" not in daily.html
    assert all(attrs.get("src") is None for attrs, _ in page.scripts)
    assert not page.tags & {"link", "img", "iframe", "object", "embed", "video", "audio"}
    # The only URLs are the table of contents' anchors.
    assert page.urls and all(value.startswith("#") for _, _, value in page.urls), page.urls
    # No URL anywhere but in plotly's own bundle (its strings name its website).
    rest = without_bundle(daily.html)
    assert "http://" not in rest and "https://" not in rest
    assert "@import" not in rest and "url(" not in rest
    policy = [m["content"] for m in page.meta if m.get("http-equiv") == "Content-Security-Policy"]
    assert len(policy) == 1 and "default-src 'none'" in str(policy[0])


def test_the_numbers_are_the_json_reports(daily: Built) -> None:
    report = daily.json_report
    operations = daily.page.numbers("operations-table")
    assert set(operations) == set(report["operations"])
    for name, stats in report["operations"].items():
        for key in ("count", "mean", "median", "p50", "p90", "p95", "p99", "min", "max", "std"):
            assert operations[name][key] == stats[key], (name, key)
    endpoints = daily.page.numbers("endpoints-table")
    assert set(endpoints) == set(report["api"]["endpoints"])
    for name, stats in report["api"]["endpoints"].items():
        for key in ("count", "error_count", "error_rate", "p50_ms", "p95_ms", "p99_ms"):
            assert endpoints[name][key] == stats[key], (name, key)
    bottlenecks = daily.page.numbers("bottlenecks-table")
    assert list(bottlenecks) == [row["operation"] for row in report["bottlenecks"]]
    for row in report["bottlenecks"]:
        assert bottlenecks[row["operation"]]["share_of_total"] == row["share_of_total"]
    # Shown rounded, as a reader wants them.
    fit = daily.page.table("operations-table")["curve.fit"]
    assert fit["count"][1] == f"{report['operations']['curve.fit']['count']:,}"
    assert fit["unit"][1] == "seconds"
    rate = report["api"]["endpoints"]["/api/curves/{id}"]["error_rate"]
    assert daily.page.table("endpoints-table")["/api/curves/{id}"]["error_rate"][1] == f"{rate:.2%}"
    # The whole report rides along, as the JSON export has it.
    embedded = [text for attrs, text in daily.page.scripts if attrs.get("id") == "report-data"]
    assert len(embedded) == 1
    assert json.loads(embedded[0]) == report


def test_every_name_is_shown_as_text(daily: Built) -> None:
    assert EVIL not in daily.html
    assert EVIL_ENDPOINT not in daily.html
    assert escape(EVIL) in daily.html  # in the tables, as text
    # The parser, which unescapes, finds the names where they belong...
    assert EVIL in daily.page.table("operations-table")
    assert EVIL_ENDPOINT in daily.page.table("endpoints-table")
    assert f"watch {EVIL}" in daily.page.table("watches-table")
    # ...and no script but plotly's (its config and bundle), the charts', the data and the
    # final relayout.
    charts = figures(daily.html)
    assert len(daily.page.scripts) == 2 + len(charts) + 2
    for _, text in daily.page.scripts:
        assert EVIL not in text and EVIL_ENDPOINT not in text
    # In the charts, names are entities, which plotly draws as the characters.
    names = {trace.get("name") for data, _ in charts for trace in data}
    assert escape(f"watch {EVIL}", quote=False) in names
    assert escape(EVIL_ENDPOINT, quote=False) in names
    titles = {layout.get("title", {}).get("text") for _, layout in charts}
    assert escape(EVIL, quote=False) in titles


def test_percentiles_are_all_there_in_few_points(tmp_path: Path) -> None:
    """A week at a sample every 10 s is 60,480 samples; each series keeps ~100 buckets."""
    store = SampleStore(tmp_path / "week")
    start = NOON - 7 * 86400
    ts = start + np.arange(0, 7 * 86400, 10.0)
    values = np.random.default_rng(3).lognormal(-4, 0.5, ts.size)
    store.write([ColumnBatch(METRIC, "curve.fit", (ts, values), "seconds")])
    store.write([RecordBatch(RESOURCE, "host", _resource_rows(start, 7 * 86400, 30))])
    monitor = store.load_monitor(start, NOON)
    reporter = PerformanceReport(monitor, store.load_api_tracker(start, NOON))
    report = reporter.compare_performance((start, start + 3 * 86400), (start + 3 * 86400, NOON))
    text = build_html_report(report, store, monitor=monitor, settings=MonitoringSettings())
    parse(text)
    charts = figures(text)
    percentile = [data for data, layout in charts if layout["title"]["text"] == "curve.fit"]
    assert len(percentile) == 1
    assert [trace["name"] for trace in percentile[0]] == list(PERCENTILES)
    for data, layout in charts:
        for trace in data:
            if "x0" in trace:  # a time series: on a regular grid, float32
                assert "x" not in trace
                assert 10 <= points(trace["y"]).size <= MAX_POINTS
                assert trace["y"]["dtype"] == "f4"
                assert layout["xaxis"]["type"] == "date"
    p99 = points(percentile[0][3]["y"])
    p50 = points(percentile[0][0]["y"])
    assert np.all(p99[np.isfinite(p99)] >= p50[np.isfinite(p50)])
    assert len(text.encode()) < 5_000_000  # plotly's bundle is 4.8 MB of it


def test_resource_alerts_are_shaded_and_listed(daily: Built) -> None:
    (resource,) = [
        (data, layout)
        for data, layout in figures(daily.html)
        if layout["title"]["text"].startswith("Resource use")
    ]
    data, layout = resource
    assert {trace["name"] for trace in data} == {"CPU %", "Memory %", "Disk %"}
    shaded = [shape for shape in layout["shapes"] if shape["fillcolor"].startswith("rgba(200")]
    assert len(shaded) == 1  # the one critical period
    alerts = daily.page.tables["alerts-table"]
    assert len(alerts) == 1
    cells = alerts[0][1]
    assert cells["resource"][1] == "cpu" and cells["severity"][1] == "critical"
    assert float(str(cells["duration_s"][0])) == pytest.approx(98.0)
    assert float(str(cells["peak"][0])) == 95.0


def test_fired_watches_are_summed_per_watch(daily: Built) -> None:
    watches = daily.page.table("watches-table")
    assert set(watches) == {"slow-fit", f"watch {EVIL}"}
    assert watches["slow-fit"]["firings"][1] == "2"
    assert watches["slow-fit"]["severity"][1] == "critical"  # the worst it reached
    (firings,) = [
        data
        for data, layout in figures(daily.html)
        if layout["title"]["text"] == "Watch firings over time"
    ]
    assert sum(points(trace["y"]).sum() for trace in firings) == 3


def test_cache_and_machine_and_settings(daily: Built) -> None:
    cache = daily.page.numbers("cache-table")
    assert cache["curves"]["hits"] == 10 * 59 and cache["curves"]["misses"] == 59
    text = " ".join(daily.page.text)
    for label in ("CPU", "CPU cores", "Memory", "GPUs", "Operating system"):
        assert label in text
    assert f"{os.cpu_count()} logical" in text
    rows = {
        cells["setting"][1]: cells["value"][1] for _, cells in daily.page.tables["settings-table"]
    }
    assert rows["PTPD_MONITORING_CPU_THRESHOLD"] == "80.0"
    assert rows["PTPD_MONITORING_DEFAULT_WATCHES"] == "True"


def test_a_session_report_charts_the_sessions_own_samples(store: SampleStore) -> None:
    built = build(store, "session")
    assert built.page.headings == [heading for _, heading in SECTIONS]
    assert escape(SESSION) in built.html and SESSION not in built.html
    operations = built.page.numbers("operations-table")
    assert operations["curve.fit"]["count"] == built.report["operations"]["curve.fit"]["count"]
    assert operations["curve.fit"]["total"] == built.report["operations"]["curve.fit"]["total"]
    (fit,) = [
        data for data, layout in figures(built.html) if layout["title"]["text"] == "curve.fit"
    ]
    assert [trace["name"] for trace in fit] == list(PERCENTILES)


def test_a_comparison_shows_both_periods(store: SampleStore) -> None:
    built = build(store, "comparison")
    assert built.page.headings == [heading for _, heading in SECTIONS]
    rows = built.page.numbers("operations-table")
    for name, op in built.json_report["operations"].items():
        assert rows[name]["period1_count"] == op["period1"]["count"]
        assert rows[name]["period2_count"] == op["period2"]["count"]
        if op["change"]:
            assert rows[name]["percentage"] == op["change"]["percentage"]
    shaded = [
        shape.get("label", {}).get("text")
        for _, layout in figures(built.html)
        for shape in layout.get("shapes", [])
    ]
    assert "First period" in shaded and "Second period" in shaded
    assert "bottlenecks-table-1" in built.page.tables


@pytest.mark.parametrize("exists", [False, True], ids=["no store", "nothing that day"])
def test_no_samples_gives_a_clear_report(tmp_path: Path, exists: bool) -> None:
    folder = tmp_path / "store"
    store = SampleStore(folder)
    if exists:  # samples, but a year before the day
        store.write([RecordBatch(RESOURCE, "host", _resource_rows(NOON - 366 * 86400, 60))])
    _, since, until = day_window(DAY)
    monitor = store.load_monitor(since, until) if exists else PerformanceMonitor(max_history=1)
    report = PerformanceReport(monitor).generate_daily_report(DAY)
    text = build_html_report(report, store, settings=MonitoringSettings())
    page = parse(text)
    assert page.headings == [heading for _, heading in SECTIONS]
    assert "No samples in this window" in text
    assert BUNDLE_MARK not in text and "Plotly.newPlot" not in text  # no chart, no plotly
    assert len(text.encode()) < 100_000
    assert folder.exists() is exists  # reading never creates a store


# -- the command --------------------------------------------------------------------------------


CLI = [sys.executable, "-m", "ptpd_calibration.monitoring.cli"]


def _env(store: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTPD_MONITORING_")}
    env.update(PTPD_MONITORING_STORE_DIR=str(store), XDG_DATA_HOME=str(home))
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("html-cli")
    env = _env(root / "store", root / "xdg")
    done = _run(["demo", "--seconds", "3", "--seed", "1"], env, root)
    assert done.returncode == 0, done.stderr
    return root, env


def test_the_command_writes_the_html_report(demo_store: tuple[Path, dict[str, str]]) -> None:
    root, env = demo_store
    today = date.today().isoformat()
    cases = {
        "html": ["report", "daily", "--date", today, "--format", "html", "--output", "f.html"],
        "json": ["report", "daily", "--date", today, "--format", "json", "--output", "f.json"],
        "compare": [
            "report", "compare", "--from", today, "--to", today,
            "--vs-from", today, "--vs-to", today, "--format", "html", "--output", "c.html",
        ],
        "export": ["export", "--format", "html"],
    }  # fmt: skip
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(zip(cases, pool.map(lambda a: _run(a, env, root), cases.values()), strict=True))
    for name in ("html", "json", "compare"):
        assert done[name].returncode == 0, done[name].stderr
    assert done["html"].stderr.strip() == "ptpd-monitor: wrote f.html"
    assert done["export"].returncode == 2  # exports stay JSON or CSV
    assert "invalid choice: 'html'" in done["export"].stderr

    text = (root / "f.html").read_text(encoding="utf-8")
    page = parse(text)
    assert page.headings == [heading for _, heading in SECTIONS]
    assert text.count(BUNDLE_MARK) == 1
    report = json.loads((root / "f.json").read_text())
    operations = page.numbers("operations-table")
    assert set(operations) == set(report["operations"])
    for name, stats in report["operations"].items():
        assert operations[name]["count"] == stats["count"]
        assert operations[name]["p95"] == stats["p95"]
    endpoints = page.numbers("endpoints-table")
    for name, stats in report["api"]["endpoints"].items():
        assert endpoints[name]["p95_ms"] == stats["p95_ms"]
    assert len(figures(text)) >= 8
    assert parse((root / "c.html").read_text()).headings == [h for _, h in SECTIONS]


def test_the_command_prints_the_html_without_output(
    demo_store: tuple[Path, dict[str, str]],
) -> None:
    root, env = demo_store
    done = _run(["report", "daily", "--format", "html"], env, root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("<!DOCTYPE html>") and done.stdout.rstrip().endswith("</html>")


def test_a_day_without_samples_from_the_command(demo_store: tuple[Path, dict[str, str]]) -> None:
    root, env = demo_store
    long_ago = (date.today() - timedelta(days=400)).isoformat()
    done = _run(["report", "daily", "--date", long_ago, "--format", "html"], env, root)
    assert done.returncode == 0, done.stderr
    assert "No samples in this window" in done.stdout
