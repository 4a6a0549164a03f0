"""``ptpd-monitor`` as users run it: real child processes over a temporary sample store.

One store is populated once per module by ``demo --seconds 2 --seed 1``. Commands that are
independent of each other run concurrently (each child spends most of its time importing), so
the whole file stays well under a minute.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import pytest

from ptpd_calibration.monitoring.store import API, METRIC, RESOURCE, SampleStore

CLI = [sys.executable, "-m", "ptpd_calibration.monitoring.cli"]
SCRIPT = Path(sys.executable).with_name("ptpd-monitor")  # the console script
BATCH = Path(__file__).with_name("_cli_batch.py")
TODAY = date.today().isoformat()
YESTERDAY = (date.today() - timedelta(days=1)).isoformat()
_ERROR_LINE = re.compile(r"^ptpd-monitor: error: .+$")


def _env(store: Path, home: Path) -> dict[str, str]:
    """The parent's environment without PTPD_MONITORING_*, pointing at ``store``.

    XDG_DATA_HOME goes to a temporary folder too, so a missed override can never write into
    the user's real store.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTPD_MONITORING_")}
    env.update(PTPD_MONITORING_STORE_DIR=str(store), XDG_DATA_HOME=str(home), PYTHONUNBUFFERED="1")
    return env


def _run(
    args: Sequence[str], env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def _run_all(
    cases: Mapping[str, Sequence[str]], env: dict[str, str], cwd: Path
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run independent commands concurrently; results by case name."""
    with ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 1)) as pool:
        futures = {name: pool.submit(_run, args, env, cwd) for name, args in cases.items()}
        return {name: future.result() for name, future in futures.items()}


def _run_batch(
    cases: Mapping[str, Sequence[str]], env: dict[str, str], cwd: Path
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Parse-only cases (help, usage errors) through ``main()`` in one child (see _cli_batch)."""
    child = subprocess.run(
        [sys.executable, str(BATCH)],
        input=json.dumps(cases),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    return {
        name: subprocess.CompletedProcess(cases[name], code, out, err)
        for name, (code, out, err) in json.loads(child.stdout).items()
    }


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """A runtime failure is exactly one line on stderr, and never a traceback."""
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and _ERROR_LINE.match(lines[0]), result.stderr
    return lines[0]


def _usage_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "usage:" in result.stderr and "error:" in result.stderr, result.stderr
    return result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The children's working folder: empty, so no stray ``.env`` is read."""
    return tmp_path_factory.mktemp("cwd")


@pytest.fixture(scope="module")
def populated(
    tmp_path_factory: pytest.TempPathFactory, workdir: Path
) -> Iterator[dict[str, object]]:
    """A store holding one 2-second demo session, recorded by the CLI in a child process."""
    root = tmp_path_factory.mktemp("populated")
    store = root / "store"
    env = _env(store, root / "xdg")
    result = _run(["demo", "--seconds", "2", "--seed", "1"], env, workdir)
    assert result.returncode == 0, result.stderr
    match = re.search(r"recorded session (\S+): (\d+) pipeline runs, (\d+) requests", result.stdout)
    assert match, result.stdout
    yield {
        "store": store,
        "env": env,
        "demo": result,
        "session_id": match.group(1),
        "requests": int(match.group(3)),
    }


@pytest.fixture(scope="module")
def outputs(
    populated: dict[str, object], workdir: Path
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every read-only command over the populated store, run concurrently once."""
    env = populated["env"]
    assert isinstance(env, dict)
    out = Path(str(populated["store"])).parent
    cases: dict[str, Sequence[str]] = {
        "daily_json": ["report", "daily"],
        "daily_csv_file": ["report", "daily", "--date", TODAY, "--format", "csv",
                           "--output", str(out / "daily.csv")],
        "daily_empty": ["report", "daily", "--date", "2001-01-01"],
        "session": ["report", "session", str(populated["session_id"])],
        "session_missing": ["report", "session", "no-such-session"],
        "compare": ["report", "compare", "--from", YESTERDAY, "--to", YESTERDAY,
                    "--vs-from", TODAY, "--vs-to", TODAY],
        "compare_csv": ["report", "compare", "--from", TODAY, "--to", TODAY,
                        "--vs-from", f"{TODAY}T00:00", "--vs-to", f"{TODAY}T23:59:59",
                        "--format", "csv"],
        "export_json": ["export"],
        "export_csv_op": ["export", "--format", "csv", "--operation", "curve.fit",
                          "--since", YESTERDAY, "--until", TODAY],
        "export_file": ["export", "--output", str(out / "export.json")],
        "export_unknown_op": ["export", "--operation", "no.such.operation"],
        "export_missing_folder": ["export", "--output", str(out / "nowhere" / "x.json")],
        "doctor": ["doctor"],
        "if_empty": ["demo", "--if-empty"],
    }  # fmt: skip
    return _run_all(cases, env, workdir)


# -- help and usage -------------------------------------------------------------------------------

HELP_CASES = [
    [],
    ["dashboard"],
    ["sample"],
    ["demo"],
    ["report"],
    ["report", "daily"],
    ["report", "session"],
    ["report", "compare"],
    ["export"],
    ["prometheus"],
    ["doctor"],
]


def test_help_on_every_subcommand(workdir: Path, tmp_path: Path) -> None:
    env = _env(tmp_path / "store", tmp_path / "xdg")
    results = _run_batch({" ".join(c) or "-": [*c, "--help"] for c in HELP_CASES}, env, workdir)
    assert set(results) == {" ".join(c) or "-" for c in HELP_CASES}
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stderr)
        assert result.stdout.startswith("usage: ptpd-monitor"), (name, result.stdout)
        assert result.stderr == "", (name, result.stderr)
    # The same through the real entry points: the console script and ``python -m``.
    script = subprocess.run(
        [str(SCRIPT), "--help"], env=env, cwd=workdir, capture_output=True, text=True, timeout=60
    )
    assert script.returncode == 0 and "prometheus" in script.stdout, script.stderr
    module = _run(["report", "compare", "--help"], env, workdir)
    assert module.returncode == 0 and "--vs-from T" in module.stdout, module.stderr
    assert not (tmp_path / "store").exists()  # --help touches nothing


BAD_INPUT = {
    "no command": [],
    "unknown command": ["frobnicate"],
    "report without kind": ["report"],
    "compare missing bound": ["report", "compare", "--from", "2024-03-01", "--to", "2024-03-02"],
    "session without id": ["report", "session"],
    "zero sample interval": ["sample", "--interval", "0"],
    "malformed date": ["report", "daily", "--date", "2024-13-01"],
    "datetime as daily date": ["report", "daily", "--date", "2024-01-02T10:00"],
    "malformed since": ["export", "--since", "last tuesday"],
    "malformed until": ["export", "--until", "2024-02-30"],
    "reversed export range": ["export", "--since", "2024-02-02", "--until", "2024-02-01"],
    "reversed compare range": ["report", "compare", "--from", "2024-03-02", "--to", "2024-03-01",
                               "--vs-from", "2024-01-01", "--vs-to", "2024-01-02"],
    "reversed vs range": ["report", "compare", "--from", "2024-03-01", "--to", "2024-03-02",
                          "--vs-from", "2024-01-02T10:00", "--vs-to", "2024-01-02T09:00"],
    "unknown report format": ["report", "daily", "--format", "xml"],
    "unknown export format": ["export", "--format", "yaml"],
    "negative demo seconds": ["demo", "--seconds", "-1"],
    "port out of range": ["prometheus", "--port", "70000"],
}  # fmt: skip


def test_bad_input_is_a_usage_error(workdir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = _env(store, tmp_path / "xdg")
    results = _run_batch(BAD_INPUT, env, workdir)
    results["real process"] = _run(["export", "--since", "2024-02-30"], env, workdir)
    for name, result in results.items():
        try:
            _usage_error(result)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
    assert "2024-13-01" in results["malformed date"].stderr
    assert "is after" in results["reversed export range"].stderr
    assert "--vs-from" in results["reversed vs range"].stderr
    assert "invalid choice: 'xml'" in results["unknown report format"].stderr
    assert "2024-02-30" in results["real process"].stderr
    assert not store.exists()  # a usage error writes nothing


# -- demo -----------------------------------------------------------------------------------------


def test_demo_records_into_the_store(populated: dict[str, object]) -> None:
    result = populated["demo"]
    assert isinstance(result, subprocess.CompletedProcess)
    assert "recording demo data" in result.stderr and "100%" in result.stderr
    store = SampleStore(Path(str(populated["store"])))
    assert "curve.fit" in store.series_names(METRIC)
    assert (
        sum(store.read_columns(API, s).size for s in store.series_names(API))
        == populated["requests"]
    )


def test_demo_if_empty_leaves_a_populated_store_alone(
    outputs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = outputs["if_empty"]
    assert result.returncode == 0, result.stderr
    assert "already has" in result.stdout and "recording" not in result.stderr


def test_demo_if_empty_records_into_an_empty_store(workdir: Path, tmp_path: Path) -> None:
    store = tmp_path / "fresh"
    result = _run(
        ["--store-dir", str(store), "demo", "--if-empty", "--seconds", "0.5"],
        _env(tmp_path / "elsewhere", tmp_path / "xdg"),
        workdir,
    )
    assert result.returncode == 0, result.stderr
    assert SampleStore(store).series_names(METRIC)  # --store-dir beat the environment
    assert not (tmp_path / "elsewhere").exists()


# -- reports --------------------------------------------------------------------------------------


def test_daily_report_json(
    populated: dict[str, object], outputs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = outputs["daily_json"]
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["report_type"] == "daily" and report["date"] == TODAY
    store = SampleStore(Path(str(populated["store"])))
    expected = store.load_monitor().get_statistics("curve.fit")
    assert report["operations"]["curve.fit"]["count"] == expected["count"]
    assert report["operations"]["curve.fit"]["p99"] == pytest.approx(expected["p99"])
    assert report["api"]["total_requests"] == populated["requests"]


def test_daily_report_csv_to_a_file(
    populated: dict[str, object], outputs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = outputs["daily_csv_file"]
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    path = Path(str(populated["store"])).parent / "daily.csv"
    operations = path.read_text().split("\n\n")[0]  # the first of the wide tables
    rows = {row["operation"]: row for row in csv.DictReader(io.StringIO(operations))}
    assert int(rows["curve.fit"]["count"]) > 0 and rows["curve.fit"]["unit"] == "seconds"


def test_daily_report_for_a_day_without_data_is_empty(
    outputs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = outputs["daily_empty"]
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["operations"] == {} and report["summary"]["samples"] == 0
    assert report["api"]["total_requests"] == 0


def test_session_report(
    populated: dict[str, object], outputs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = outputs["session"]
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["session_id"] == populated["session_id"]
    assert report["operations"]["curve.fit"]["count"] > 0
    assert report["api"]["total_requests"] == populated["requests"]


def test_session_report_for_an_unknown_session_fails(
    outputs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = outputs["session_missing"]
    assert result.returncode == 1
    assert "no samples with session_id 'no-such-session'" in _one_error_line(result)
    assert result.stdout == ""


def test_compare_report(outputs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    result = outputs["compare"]
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["report_type"] == "comparison"
    fit = report["operations"]["curve.fit"]
    assert fit["period1"]["count"] == 0 and fit["period2"]["count"] > 0
    assert report["period1"] == {} and report["changes"] == {}  # nothing the day before
    assert report["period2"]["curve.fit"]["count"] == fit["period2"]["count"]
    assert outputs["compare_csv"].returncode == 0
    first_table = outputs["compare_csv"].stdout.split("\n\n")[0]
    rows = {row["operation"]: row for row in csv.DictReader(io.StringIO(first_table))}
    assert rows["curve.fit"]["direction"] == "unchanged"  # the same samples in both periods
    assert rows["curve.fit"]["period1_count"] == rows["curve.fit"]["period2_count"]


# -- export ---------------------------------------------------------------------------------------


def test_export_json(
    populated: dict[str, object], outputs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = outputs["export_json"]
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)  # one object per sample
    store = SampleStore(Path(str(populated["store"])))
    assert {sample["metric_name"] for sample in payload} == set(store.series_names(METRIC))
    fit = [sample for sample in payload if sample["metric_name"] == "curve.fit"]
    assert len(fit) == store.read_columns(METRIC, "curve.fit").size
    assert set(fit[0]) == {"metric_name", "value", "unit", "timestamp", "metadata"}
    written = Path(str(populated["store"])).parent / "export.json"
    assert outputs["export_file"].returncode == 0
    assert json.loads(written.read_text()) == payload


def test_export_one_operation_as_csv(outputs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    result = outputs["export_csv_op"]
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows and {r["metric_name"] for r in rows} == {"curve.fit"}
    assert all(float(r["value"]) > 0 and r["unit"] == "seconds" for r in rows)


def test_export_failures(outputs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    unknown = outputs["export_unknown_op"]
    assert unknown.returncode == 1
    line = _one_error_line(unknown)
    assert "no operation named 'no.such.operation'" in line and "curve.fit" in line
    missing = outputs["export_missing_folder"]
    assert missing.returncode == 1
    assert "nowhere" in _one_error_line(missing)


# -- doctor ---------------------------------------------------------------------------------------


def test_doctor_on_the_populated_store(
    populated: dict[str, object], outputs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = outputs["doctor"]
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert f"store:      {populated['store']}" in text
    assert "exists:     yes" in text and "integrity:  ok" in text
    assert re.search(rf"api:\s+5 series, {populated['requests']} samples", text), text
    assert re.search(r"size:\s+\d+ bytes \(\d", text)
    assert "oldest:" in text and "newest:" in text and "gpu:" in text
    assert f"PTPD_MONITORING_STORE_DIR = {populated['store']}" in text


def test_doctor_on_a_store_not_created_yet(workdir: Path, tmp_path: Path) -> None:
    store = tmp_path / "never"
    result = _run(["doctor"], _env(store, tmp_path / "xdg"), workdir)
    assert result.returncode == 0, result.stderr
    assert "not created yet" in result.stdout
    assert not store.exists()  # looking does not create it


# -- failures: a store path that is a file, a port in use ------------------------------------------


def test_a_store_path_that_is_a_file_fails_every_command(workdir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store-file"
    store.write_text("not a folder")
    cases = {
        "doctor": ["doctor"],
        "daily": ["report", "daily"],
        "demo": ["demo", "--seconds", "0.5"],
        "sample": ["sample"],
        "prometheus": ["prometheus", "--port", "0"],
    }
    for name, result in _run_all(cases, _env(store, tmp_path / "xdg"), workdir).items():
        assert result.returncode == 1, (name, result.stderr)
        line = _one_error_line(result)
        assert str(store) in line and "file" in line, (name, line)
    assert store.read_text() == "not a folder"


def test_an_unreadable_store_or_a_bad_setting_fails_in_one_line(
    workdir: Path, tmp_path: Path
) -> None:
    store = tmp_path / "corrupt"
    store.mkdir()
    (store / "cache.db").write_bytes(b"not a database")
    env = _env(store, tmp_path / "xdg")
    bad_setting = {**env, "PTPD_MONITORING_CPU_THRESHOLD": "lots"}
    with ThreadPoolExecutor(max_workers=4) as pool:
        doctor = pool.submit(_run, ["doctor"], env, workdir)
        demo = pool.submit(_run, ["demo", "--seconds", "0.5"], env, workdir)
        daily = pool.submit(_run, ["report", "daily"], env, workdir)
        settings = pool.submit(_run, ["doctor"], bad_setting, workdir)
    for result in (doctor.result(), demo.result(), daily.result()):
        assert result.returncode == 1, result.stderr
        line = _one_error_line(result)
        assert str(store) in line and "not a database" in line, line
    assert "store:" in doctor.result().stdout  # what it could see came first
    assert "recording" not in demo.result().stderr  # refused before recording anything
    assert settings.result().returncode == 1
    assert "PTPD_MONITORING_CPU_THRESHOLD='lots'" in _one_error_line(settings.result())


def test_a_port_in_use_fails(populated: dict[str, object], workdir: Path) -> None:
    env = populated["env"]
    assert isinstance(env, dict)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        cases = {
            "prometheus": ["prometheus", "--port", port],
            "dashboard": ["dashboard", "--port", port],
        }
        results = _run_all(cases, env, workdir)
    for name, result in results.items():
        assert result.returncode == 1, (name, result.stderr)
        line = _one_error_line(result)
        assert f"127.0.0.1:{port}" in line and "in use" in line, (name, line)


# -- long-running commands: started, checked, stopped by SIGTERM -----------------------------------


def _start(args: Sequence[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(child: subprocess.Popen[str], timeout: float = 20) -> tuple[int, str, str]:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        raise AssertionError(f"did not stop on SIGTERM: {err}") from None
    return child.returncode, out, err


def _poll(url: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_sample_until_sigterm(workdir: Path, tmp_path: Path) -> None:
    store = tmp_path / "samples"
    child = _start(["sample", "--interval", "0.1"], _env(store, tmp_path / "xdg"), workdir)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # the start line: the sampler runs from here on
        assert str(store) in line and "0.1 s" in line, line
        time.sleep(0.3)
    finally:
        code, _, err = _stop(child)
    assert code == 0, err
    assert "Traceback" not in err
    rows = SampleStore(store).read_records(RESOURCE)
    assert rows and all(0.0 <= row["cpu_percent"] <= 100.0 for row in rows)


def test_prometheus_serves_the_store_until_sigterm(
    populated: dict[str, object], workdir: Path
) -> None:
    env = populated["env"]
    assert isinstance(env, dict)
    child = _start(["prometheus", "--port", "0"], env, workdir)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/metrics)", line)
        assert match, line
        text = _poll(match.group(1))
    finally:
        code, _, err = _stop(child)
    assert code == 0, err
    assert "ptpd_store_up 1.0" in text
    assert 'ptpd_operation_duration_seconds{operation="curve.fit",quantile="0.99"}' in text
    assert "ptpd_http_requests_total{" in text


def test_dashboard_serves_until_sigterm(populated: dict[str, object], workdir: Path) -> None:
    env = populated["env"]
    assert isinstance(env, dict)
    port = _free_port()
    child = _start(["dashboard", "--port", str(port)], env, workdir)
    try:
        health = _poll(f"http://127.0.0.1:{port}/_stcore/health", timeout=60)
    finally:
        code, _, err = _stop(child, timeout=30)
    assert health == "ok"
    assert code == 0, err
    assert f"dashboard on http://127.0.0.1:{port}" in err
