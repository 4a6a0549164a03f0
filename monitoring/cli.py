"""``ptpd-monitor``: the dashboard, demo data, reports, exports, the exporter and a doctor.

>>> main(["report", "daily", "--format", "csv"])  # doctest: +SKIP
0

Exit codes: 0 success, 2 a usage error (argparse's message on stderr), 1 a runtime failure
reported as one line, ``ptpd-monitor: error: <reason>``, never a traceback.

``--store-dir`` goes into ``PTPD_MONITORING_STORE_DIR`` before anything reads the settings, so
the process-wide instances, the demo and any child process (the dashboard) all use it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import APIPerformanceTracker
    from .monitor import PerformanceMonitor
    from .store import RepairReport, SampleStore

__all__ = ["PROG", "build_parser", "main"]

PROG = "ptpd-monitor"
_FORMATS = ("json", "csv")
_REPORT_FORMATS = (*_FORMATS, "html")  # html: the report and its charts, one offline page
_ISO_HELP = "an ISO date or datetime (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][+HH:MM]; naive is local)"


class _Failure(Exception):
    """A runtime failure: ``main`` prints its message as one line and exits 1."""


# -- argument types -------------------------------------------------------------------------------


def _time_bound(text: str, *, end: bool) -> datetime:
    """A date means its first moment (a start) or its last (an end), so ranges include it."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        start = datetime.combine(day, time.min)
        return _convertible(text, start + timedelta(days=1, microseconds=-1) if end else start)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {_ISO_HELP}") from None
    return _convertible(text, moment)


def _convertible(text: str, *moments: datetime) -> datetime:
    """The first moment, once every one has an epoch time (argparse then names the option).

    Near year 1 or 9999 the local time zone can push a naive time out of datetime's range, and
    ``timestamp()`` would fail later, past argument parsing, with a traceback.
    """
    for moment in moments:
        try:
            _epoch(moment)
        except (OverflowError, OSError, ValueError):
            zone = datetime.now().astimezone().tzname()
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range: too close to year 1 or 9999 to convert from local "
                f"time ({zone}) to an epoch time"
            ) from None
    return moments[0]


def _start(text: str) -> datetime:
    return _time_bound(text, end=False)


def _end(text: str) -> datetime:
    return _time_bound(text, end=True)


def _day(text: str) -> date:
    """A day whose whole local span (its start and the next day's) has epoch times."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date as YYYY-MM-DD") from None
    if day == date.max:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range: its end, the next day, is past the last date there is"
        )
    start = datetime.combine(day, time.min)
    return _convertible(text, start, start + timedelta(days=1)).date()


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return value


def _epoch(moment: datetime) -> float:
    return moment.timestamp()  # naive means local time, as everywhere in the package


# -- the parser -----------------------------------------------------------------------------------


def _folder_path(text: str) -> Path:
    """A folder argument: an empty one would silently mean the working folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder, not be empty")
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``--store-dir`` is accepted before or after the subcommand)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store-dir",
        type=_folder_path,
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="the sample store folder (overrides PTPD_MONITORING_STORE_DIR)",
    )
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--format", choices=_FORMATS, default="json", help="default: json")
    output.add_argument(
        "--output", type=Path, metavar="PATH", help="write here (atomically) instead of stdout"
    )
    report_output = argparse.ArgumentParser(add_help=False)
    report_output.add_argument(
        "--format",
        choices=_REPORT_FORMATS,
        default="json",
        help="default: json; html: one page with the charts, which opens offline",
    )
    report_output.add_argument(
        "--output", type=Path, metavar="PATH", help="write here (atomically) instead of stdout"
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Performance monitoring for the Pt/Pd print-calibration app.",
        epilog="Exit status: 0 success, 1 failure (one line on stderr), 2 usage error. "
        "`ptpd-monitor COMMAND --help` describes each command.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, help_text: str, *parents: argparse.ArgumentParser, more: str = ""
    ) -> Any:
        return commands.add_parser(
            name,
            help=help_text,
            description=f"{help_text} {more}".strip(),
            parents=[common, *parents],
        )

    dashboard = command("dashboard", "Run the Streamlit dashboard.")
    dashboard.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    dashboard.add_argument("--port", type=_port, default=8501, help="default: %(default)s")
    dashboard.add_argument(
        "--demo", action="store_true", help="record demo data first when the store is empty"
    )
    dashboard.set_defaults(handler=_dashboard, parser=dashboard)

    sample = command("sample", "Sample CPU, memory, disk and GPUs into the store until stopped.")
    sample.add_argument(
        "--interval",
        type=_positive,
        metavar="S",
        help="seconds between samples (default: settings)",
    )
    sample.set_defaults(handler=_sample, parser=sample)

    demo = command(
        "demo",
        "Record a realistic past week of calibration sessions into the store.",
        more="Seven days ending now, written with past timestamps in a few seconds: working "
        "hours and quiet nights, a slow day, an afternoon of high CPU, a burst of API errors, "
        "cache warm-ups and a regression in the last hour. --seconds records live instead.",
    )
    demo.add_argument(
        "--seconds",
        type=_positive,
        metavar="N",
        help="record a live session for N seconds instead of the past week",
    )
    demo.add_argument(
        "--if-empty", action="store_true", help="do nothing when the store already has metrics"
    )
    demo.add_argument("--seed", type=int, help="make the demo data repeatable")
    demo.set_defaults(handler=_demo, parser=demo)

    report = command("report", "Daily, session and comparison reports (JSON, CSV or HTML).")
    kinds = report.add_subparsers(dest="report", required=True, metavar="KIND")
    daily = kinds.add_parser(
        "daily",
        help="every operation and endpoint on one local day",
        description="Every operation and endpoint on one local day.",
        parents=[common, report_output],
    )
    daily.add_argument("--date", type=_day, metavar="YYYY-MM-DD", help="default: today")
    daily.set_defaults(handler=_report_daily, parser=daily)
    session = kinds.add_parser(
        "session",
        help="the samples tagged with one session_id",
        description="The samples whose metadata carries one session_id.",
        parents=[common, report_output],
    )
    session.add_argument("session_id", metavar="ID")
    session.set_defaults(handler=_report_session, parser=session)
    compare = kinds.add_parser(
        "compare",
        help="compare the mean of every operation in two periods",
        description=f"Compare two periods. Each T is {_ISO_HELP}; a date as an end means its "
        "last moment.",
        parents=[common, report_output],
    )
    compare.add_argument(
        "--from", dest="from_", type=_start, required=True, metavar="T", help="first period start"
    )
    compare.add_argument("--to", type=_end, required=True, metavar="T", help="first period end")
    compare.add_argument(
        "--vs-from", type=_start, required=True, metavar="T", help="second period start"
    )
    compare.add_argument("--vs-to", type=_end, required=True, metavar="T", help="second period end")
    compare.set_defaults(handler=_report_compare, parser=compare)

    export = command(
        "export", "Export raw metric samples and statistics.", output, more=f"T is {_ISO_HELP}."
    )
    export.add_argument("--since", type=_start, metavar="T", help="samples from T on")
    export.add_argument(
        "--until", type=_end, metavar="T", help="samples up to T (a date: up to its end)"
    )
    export.add_argument("--operation", metavar="NAME", help="one operation (default: all)")
    export.set_defaults(handler=_export, parser=export)

    prometheus = command("prometheus", "Serve the store's metrics to Prometheus until stopped.")
    prometheus.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    prometheus.add_argument("--port", type=_port, default=9464, help="default: %(default)s")
    prometheus.add_argument(
        "--web-config",
        type=Path,
        metavar="FILE",
        help="TLS and basic-auth users, in Prometheus exporter-toolkit's web-config YAML format",
    )
    prometheus.add_argument(
        "--rules",
        nargs="?",
        const="-",
        type=Path,
        metavar="FILE",
        help="instead of serving, write Prometheus recording and alerting rules (YAML, for "
        "rule_files:) to FILE, or to stdout without FILE; thresholds come from the settings",
    )
    prometheus.set_defaults(handler=_prometheus, parser=prometheus)

    doctor = command("doctor", "Check the store, the GPU driver and the settings in effect.")
    doctor.add_argument(
        "--repair",
        action="store_true",
        help="remove what the check finds broken: rows whose value file is gone, rows that are "
        "not batches, stray files; a database SQLite cannot open is moved aside",
    )
    doctor.set_defaults(handler=_doctor, parser=doctor)

    watch = command(
        "watch",
        "Judge every watch once over the store; print one line per firing watch.",
        more="Watches come from PTPD_MONITORING_WATCHES, PTPD_MONITORING_WATCHES_FILE and the "
        "built-in regression watches (README: Watches). Exit status: 0 none fires, 1 one or "
        "more fire (or the store cannot be read: an error line), 2 a malformed watch or setting.",
    )
    watch.add_argument(
        "--watches",
        action="append",
        type=Path,
        metavar="FILE",
        help="a TOML file of [[watch]] tables, instead of PTPD_MONITORING_WATCHES_FILE "
        "(repeatable; PTPD_MONITORING_WATCHES still applies)",
    )
    watch.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: one line per firing watch; json: every watch's result (default: text)",
    )
    watch.add_argument(
        "--no-defaults",
        action="store_true",
        help="skip the built-in regression watches (as PTPD_MONITORING_DEFAULT_WATCHES=false)",
    )
    watch.add_argument(
        "--no-record", action="store_true", help="do not store the firings as events (a dry run)"
    )
    watch.add_argument(
        "-q", "--quiet", action="store_true", help="no summary line on stderr (for cron)"
    )
    watch.set_defaults(handler=_watch, parser=watch)
    return parser


# -- helpers --------------------------------------------------------------------------------------


def _say(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


def _store(*, probe: bool = True) -> SampleStore:
    """The default store, refusing a file or (``probe``) an unreadable folder up front.

    Writes never raise (they must not harm a host app), so a command that records would
    otherwise run to its end before noticing; reads would fail later with the same message.
    """
    from . import StoreError, get_store
    from .store import METRIC

    store = get_store()
    path = store.directory
    if path.exists() and not path.is_dir():
        raise StoreError(path, "it is a file, not a folder; point --store-dir at a folder")
    if probe and path.exists():
        store.series_names(METRIC)  # opens the database: StoreError when it is unusable
    return store


def _loaded(
    since: float | None = None, until: float | None = None
) -> tuple[PerformanceMonitor, APIPerformanceTracker]:
    """Every process's samples in the window; empty when the store was never created."""
    from . import APIPerformanceTracker, PerformanceMonitor

    store = _store()
    if not store.directory.exists():
        _say(f"note: no sample store at {store.directory} yet; nothing recorded")
        return PerformanceMonitor(max_history=1), APIPerformanceTracker(max_history=1)
    return store.load_monitor(since, until), store.load_api_tracker(since, until)


def _emit(text: str, path: Path | None) -> None:
    if path is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        _say(f"wrote {path}")


def _check_writes(store: SampleStore) -> None:
    """Writes never raise (they must not harm a host app); a CLI says when they failed."""
    if store.error_count:
        raise _Failure(f"could not write the sample store at {store.directory}: {store.last_error}")


def _require_publishing() -> None:
    from . import get_settings

    if not get_settings().STORE_ENABLED:
        raise _Failure(
            "storing is disabled (PTPD_MONITORING_STORE_ENABLED=false); nothing would be recorded"
        )


@contextmanager
def _until_signalled() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM; the previous handlers come back afterwards."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _wait(stop: threading.Event) -> None:
    while not stop.wait(0.5):  # short waits: a signal handler runs between them at the latest
        pass


def _human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _port_free(host: str, port: int) -> str | None:
    """None when ``host:port`` can be bound now, else why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve {host!r}: {exc.strerror}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As servers do: a port lingering in TIME_WAIT is free, a listening one is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _has_metrics(store: SampleStore) -> int:
    from .store import METRIC

    return len(store.series_names(METRIC)) if store.directory.exists() else 0


def _require_writable(store: SampleStore) -> None:
    """Refuse a store that cannot be written before recording into it.

    Writes never raise, so the demo would otherwise run to its end and only then fail, with
    the store's own warning printed before our error line.
    """
    import tempfile

    from .store import METRIC, StoreError

    store.series_names(METRIC)  # creates and opens the database: StoreError when it cannot
    try:
        with tempfile.TemporaryFile(dir=store.directory):
            pass
    except OSError as exc:
        raise StoreError(store.directory, f"its folder is not writable ({exc})") from None


def _record_demo(store: SampleStore, seconds: float | None, seed: int | None) -> dict[str, Any]:
    """The past week (``seconds`` None), or a live session of ``seconds``."""
    from .demo import record_demo_session, record_demo_week

    _require_publishing()
    _require_writable(store)
    # A terminal sees every percent; a log file one update per 10 %.
    step = 1 if sys.stderr.isatty() else 10
    shown = [-1]

    def progress(fraction: float) -> None:
        percent = int(fraction * 100)
        if percent // step > shown[0] // step:
            shown[0] = percent
            sys.stderr.write(f"\rrecording demo data {percent:3d}%")
            sys.stderr.flush()

    progress(0.0)
    if seconds is None:
        summary = record_demo_week(progress=progress, seed=seed, store=store)
    else:
        summary = record_demo_session(seconds, progress=progress, seed=seed)
    progress(1.0)
    sys.stderr.write("\n")
    _check_writes(store)
    return summary


# -- the commands ---------------------------------------------------------------------------------


def _dashboard(args: argparse.Namespace) -> int:
    import importlib.util

    spec = importlib.util.find_spec("ptpd_calibration.dashboard")
    origin = spec.origin if spec is not None else None
    app = Path(origin).parent / "app.py" if origin else None
    if app is None or not app.is_file():
        raise _Failure(
            "the dashboard is not installed (ptpd_calibration.dashboard/app.py not found); "
            "run `pip install -e .` in the project"
        )
    problem = _port_free(args.host, args.port)
    if problem is not None:
        raise _Failure(
            f"cannot serve the dashboard on {args.host}:{args.port}: {problem}; "
            "pick another with --port"
        )
    store = _store()
    if args.demo and not _has_metrics(store):
        _record_demo(store, None, None)
    # The settings of .streamlit/config.toml that matter wherever the command runs (Streamlit
    # reads that file only from the working folder). A browser tab opens where there is a screen.
    headless = "false" if _has_display() else "true"
    command = [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.address", args.host,
        "--server.port", str(args.port),
        "--server.headless", headless,
        "--server.maxUploadSize", "1024",  # MB: an 88 MP 16-bit RGB drum scan is 528
        "--server.fileWatcherType", "none",
        "--runner.postScriptGC", "false",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
        "--theme.base", "light",
    ]  # fmt: skip
    _say(f"dashboard on http://{args.host}:{args.port} (store {store.directory}); Ctrl-C stops it")
    # Its own process group: a Ctrl-C reaches it once, forwarded by us, not twice.
    child = subprocess.Popen(command, process_group=0)

    def forward(signum: int, frame: FrameType | None) -> None:
        # SIGTERM either way: Streamlit stops cleanly on it, and a SIGINT can arrive ignored
        # (a child of a non-interactive shell's background job inherits SIG_IGN for it).
        child.terminate()

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return child.wait()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _has_display() -> bool:
    """Whether a browser can open here: a desktop session, not a server or a CI runner."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _sample(args: argparse.Namespace) -> int:
    from . import flush, get_resource_monitor, get_settings

    _require_publishing()
    store = _store()
    monitor = get_resource_monitor()
    interval = args.interval if args.interval is not None else get_settings().SAMPLE_INTERVAL_S
    with _until_signalled() as stop:
        monitor.start_sampling(interval)
        print(
            f"{PROG}: sampling resources every {interval:g} s into {store.directory} "
            "(Ctrl-C or SIGTERM stops)",
            flush=True,
        )
        _wait(stop)
    monitor.stop_sampling()
    flush()
    _check_writes(store)
    return 0


def _demo(args: argparse.Namespace) -> int:
    store = _store()
    if args.if_empty:
        count = _has_metrics(store)
        if count:
            print(
                f"{PROG}: the store at {store.directory} already has {count} metric series; "
                "no demo data recorded (drop --if-empty to record anyway)"
            )
            return 0
    summary = _record_demo(store, args.seconds, args.seed)
    if args.seconds is None:
        print(
            f"{PROG}: recorded a demo week into {store.directory} in {summary['seconds']:.1f} s: "
            f"{len(summary['sessions'])} sessions over {summary['days']} days, "
            f"{summary['pipeline_runs']} pipeline runs, {summary['requests']} requests "
            f"({summary['request_errors']} errors); the latest session, "
            f"{summary['session_id']}, covers every operation"
        )
        return 0
    print(
        f"{PROG}: recorded session {summary['session_id']}: {summary['pipeline_runs']} pipeline "
        f"runs, {summary['requests']} requests ({summary['request_errors']} errors) into "
        f"{store.directory}"
    )
    return 0


def _write_report(args: argparse.Namespace, build: Callable[[Any], dict[str, Any]]) -> int:
    from . import PerformanceReport

    monitor, tracker = _loaded(*getattr(args, "window", (None, None)))
    reporter = PerformanceReport(monitor, tracker)
    report = build(reporter)
    if args.format == "html":
        return _write_html_report(args, report, monitor)
    text = reporter.export_report(report, args.format, args.output)
    _emit(text, args.output)
    return 0


def _write_html_report(
    args: argparse.Namespace, report: dict[str, Any], monitor: PerformanceMonitor
) -> int:
    """``--format html``: the same report dict as the JSON, with charts read from the store.

    The builder lives with the dashboard's charts and needs plotly: imported only here.
    """
    from ptpd_calibration.dashboard.html_report import build_html_report

    from ._common import write_text_atomically

    text = build_html_report(report, _store(), monitor=monitor)
    if args.output is not None:
        write_text_atomically(text, args.output)
    _emit(text, args.output)
    return 0


def _report_daily(args: argparse.Namespace) -> int:
    from ._common import day_window

    day, since, until = day_window(args.date)
    args.window = (since, until)
    return _write_report(args, lambda r: r.generate_daily_report(day))


def _report_session(args: argparse.Namespace) -> int:
    if not args.session_id.strip():
        raise _Failure("the session id is empty")

    def build(reporter: Any) -> dict[str, Any]:
        report: dict[str, Any] = reporter.generate_session_report(args.session_id)
        requests = report.get("api", {}).get("total_requests", 0)
        if not report["summary"]["samples"] and not requests:
            raise _Failure(f"no samples with session_id {args.session_id!r} in the store")
        return report

    return _write_report(args, build)


def _report_compare(args: argparse.Namespace) -> int:
    first = (_epoch(args.from_), _epoch(args.to))
    second = (_epoch(args.vs_from), _epoch(args.vs_to))
    args.window = (min(first[0], second[0]), max(first[1], second[1]))
    return _write_report(args, lambda r: r.compare_performance(first, second))


def _export(args: argparse.Namespace) -> int:
    from .store import METRIC

    if args.output is not None and args.output.is_dir():  # a usage error, found before loading
        _say(f"error: argument --output: {args.output} is a folder; give the path of a file")
        return 2
    since = _epoch(args.since) if args.since else None
    until = _epoch(args.until) if args.until else None
    monitor, _ = _loaded(since, until)
    if args.operation is not None:
        store = _store()
        known = store.series_names(METRIC) if store.directory.exists() else []
        if args.operation not in known:
            hint = f"; known: {', '.join(known[:10])}" if known else ""
            raise _Failure(f"no operation named {args.operation!r} in the store{hint}")
    text = monitor.export_metrics(args.format, args.output, args.operation)
    _emit(text, args.output)
    return 0


def _prometheus(args: argparse.Namespace) -> int:
    from .exporter import WebConfigError, exposure_warning, load_web_config, serve

    if args.rules is not None:
        return _prometheus_rules(args.rules)
    try:
        web_config = None if args.web_config is None else load_web_config(args.web_config)
    except WebConfigError as exc:  # a usage error: exit 2, as argparse's, in one line
        _say(f"error: {exc}")
        return 2
    store = _store()
    try:
        server, thread = serve(store, args.host, args.port, web_config=web_config)
    except OSError as exc:
        raise _Failure(
            f"cannot serve Prometheus metrics on {args.host}:{args.port}: "
            f"{exc.strerror or exc}; pick another with --port"
        ) from None
    warning = exposure_warning(args.host, web_config)
    if warning is not None:
        _say(f"warning: {warning}")
    scheme = "http" if web_config is None or web_config.tls is None else "https"
    with _until_signalled() as stop:
        print(
            f"{PROG}: serving the store at {store.directory} on "
            f"{scheme}://{args.host}:{server.server_port}/metrics (Ctrl-C or SIGTERM stops)",
            flush=True,
        )
        _wait(stop)
    server.shutdown()
    server.server_close()
    thread.join(5.0)
    return 0


def _prometheus_rules(path: Path) -> int:
    """``prometheus --rules [FILE]``: the rules file, on stdout for ``-`` (no store is read).

    The configured watches (``PTPD_MONITORING_WATCHES`` and the watches file) join as alerts;
    a malformed one is a usage error (exit 2), as in ``ptpd-monitor watch``.
    """
    from ._common import write_text_atomically
    from .rules import rules_yaml
    from .settings import SettingsError, get_settings
    from .watches import WatchError, load_watches

    try:
        settings = get_settings()  # PTPD_MONITORING_WATCHES is checked here
        text = rules_yaml(settings, load_watches(settings))
    except (SettingsError, WatchError) as exc:
        _say(f"error: {exc}")
        return 2
    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    try:
        write_text_atomically(text, path)
    except OSError as exc:  # without strerror, the message already names the path and why
        reason = f"cannot write the rules to {path}: {exc.strerror}" if exc.strerror else exc
        raise _Failure(str(reason)) from None
    _say(f"wrote {path}")
    return 0


def _print_writer_health(store: SampleStore) -> None:
    """What other processes could not store, from the counters they record in the store."""
    rows = [row for row in store.writer_health() if row.get("dropped_samples")]
    if not rows:
        print("losses:     none recorded (no process dropped samples)")
        return
    print(f"losses:     {len(rows)} process(es) dropped samples")
    for row in rows[:10]:
        when = datetime.fromtimestamp(float(row["ts"])).astimezone().isoformat(timespec="seconds")
        print(
            f"  - pid {row['pid']}: {row['dropped_samples']} samples not written "
            f"(as of {when}; {row.get('last_error') or 'no error recorded'})"
        )


def _print_repair(report: RepairReport) -> None:
    if report.moved_database is not None:
        print(f"repair:     moved the damaged database to {report.moved_database}")
    print(
        f"repair:     removed {report.rows_missing_files} rows whose value file was missing "
        f"(about {report.samples_estimated} samples), {report.bad_rows} unreadable rows and "
        f"{report.orphan_files} stray files"
        if report.changed
        else "repair:     nothing to repair"
    )


def _doctor(args: argparse.Namespace) -> int:
    import numpy as np

    from . import _nvml, get_settings
    from .store import API, CACHE, METRIC, PROFILE, RESOURCE

    settings = get_settings()
    store = _store(probe=False)  # report what can be seen before an unusable store fails
    path = store.directory
    print(f"store:      {path}")
    if not path.exists():
        print("exists:     no (not created yet: run `ptpd-monitor demo` or the app)")
    else:
        print("exists:     yes")
        if args.repair:  # first, so that the report below describes the repaired store
            _print_repair(store.repair())
        size = store.volume_bytes()
        print(f"size:       {size} bytes ({_human_bytes(size)})")
        oldest, newest = float("inf"), float("-inf")
        for kind in (METRIC, API, RESOURCE, CACHE, PROFILE):
            names = store.series_names(kind)
            samples = 0
            for name in names:
                if kind in (METRIC, API):
                    data = store.read_columns(kind, name)
                    stamps = data.columns[0] if data.size else None
                else:
                    rows = store.read_records(kind, name)
                    stamps = np.array([float(r["ts"]) for r in rows]) if rows else None
                if stamps is not None:
                    samples += int(stamps.size)
                    oldest = min(oldest, float(stamps.min()))
                    newest = max(newest, float(stamps.max()))
            print(f"{kind + ':':<11} {len(names)} series, {samples} samples")
        if newest >= oldest:
            print(f"oldest:     {datetime.fromtimestamp(oldest).astimezone().isoformat()}")
            print(f"newest:     {datetime.fromtimestamp(newest).astimezone().isoformat()}")
        else:
            print("oldest:     - (no samples)")
        problems = store.check()
        print("integrity:  ok" if not problems else f"integrity:  {len(problems)} problem(s)")
        for problem in problems:
            print(f"  - {problem}")
        _print_writer_health(store)
    gpus = _nvml.gpu_snapshots()
    if gpus:
        print(f"gpu:        NVML available, {len(gpus)} GPU(s)")
        for gpu in gpus:
            print(f"  - {gpu.index}: {gpu.name}")
    else:
        available = "available but sees no GPU" if _nvml.is_available() else "not available"
        print(f"gpu:        NVML {available} (no NVIDIA driver or GPU; GPU gauges stay empty)")
    from ._install import check_install  # where ptpd_calibration.monitoring is imported from

    print(*check_install().lines, sep="\n")
    print("settings:")
    for name, value in settings.model_dump().items():
        print(f"  PTPD_MONITORING_{name} = {value}")
    return 0


def _watch(args: argparse.Namespace) -> int:
    """One evaluation: 0 when no watch fires, 1 when any does, 2 for a malformed watch."""
    import json

    from .settings import SettingsError, get_settings
    from .watches import WatchError, active_watches, evaluate

    try:
        settings = get_settings()
        store = _store()
        watches = active_watches(
            store, settings, files=args.watches, defaults=False if args.no_defaults else None
        )
    except (SettingsError, WatchError) as exc:  # bad configuration: a usage error, one line
        _say(f"error: {exc}")
        return 2
    if not store.directory.exists() and not args.quiet:
        _say(f"note: no sample store at {store.directory} yet; nothing recorded")
    results = evaluate(store, watches, record=not args.no_record)
    firing = [r for r in results if r.firing]
    invalid = [r for r in results if r.status == "invalid"]
    if args.format == "json":
        sys.stdout.write(json.dumps([r.to_dict() for r in results], indent=2) + "\n")
    else:
        for result in firing:
            print(f"{result.watch.severity.upper()} {result.watch.name}: {result.message}")
    sys.stdout.flush()
    for result in invalid:
        _say(f"error: watch {result.watch.name!r}: {result.message}")
    if firing and store.error_count and not args.no_record:
        _say(f"warning: could not store the firings in {store.directory}: {store.last_error}")
    if not args.quiet:
        counts = {
            status: sum(r.status == status for r in results)
            for status in ("firing", "pending", "insufficient")
        }
        builtin = sum(r.watch.builtin for r in results)
        _say(
            f"{len(results)} watches ({builtin} built-in): {counts['firing']} firing, "
            f"{counts['pending']} pending, {counts['insufficient']} without enough samples"
        )
    return 2 if invalid else 1 if firing else 0


# -- the entry point ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ptpd-monitor`` with ``argv`` (default: the command line); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on usage errors, 0 after --help
    store_dir: Path | None = getattr(args, "store_dir", None)  # absent unless given
    if store_dir is not None:
        # Before anything builds the settings or the process-wide instances.
        os.environ["PTPD_MONITORING_STORE_DIR"] = str(store_dir.expanduser().resolve())
    for start, end in (("from_", "to"), ("vs_from", "vs_to"), ("since", "until")):
        lo, hi = getattr(args, start, None), getattr(args, end, None)
        if lo is not None and hi is not None and _epoch(lo) > _epoch(hi):
            option = "--" + start.rstrip("_").replace("_", "-")
            args.parser.error(
                f"{option} {lo.isoformat()} is after --{end.replace('_', '-')} {hi.isoformat()}"
            )
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        from .settings import get_settings

        get_settings.cache_clear()
        return int(args.handler(args))
    except _Failure as exc:
        _say(f"error: {exc}")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `ptpd-monitor export | head`: the reader has what it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1
    except Exception as exc:  # one line, never a traceback (see the module docstring)
        from .settings import SettingsError
        from .store import StoreError

        if isinstance(exc, StoreError):
            _say(f"error: sample store at {exc.path} is unusable: {exc.reason}")
        elif isinstance(exc, SettingsError | FileNotFoundError | PermissionError):
            _say(f"error: {exc}")
        else:
            _say(f"error: {type(exc).__name__}: {exc}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
