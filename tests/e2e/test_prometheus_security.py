"""``ptpd-monitor prometheus --web-config`` under a real Prometheus: HTTPS and basic auth.

The exporter runs as the installed ``ptpd-monitor`` command in a child process, over a store a
demo session was recorded into, with a self-signed certificate made by ``openssl`` and a bcrypt
hash. Debian's ``prometheus`` scrapes it three times over: with the password (it must see the
metrics), without one and with a wrong one (it must see 401s). Like the exporter's other
end-to-end test, this one fails rather than skips when the server is missing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from ptpd_calibration.monitoring.store import API, SampleStore

pytestmark = pytest.mark.e2e

PTPD_MONITOR = Path(sys.executable).with_name("ptpd-monitor")
USER = "prometheus"
PASSWORD = "darkroom scrape"
# The first scrape lands 5-6 s after Prometheus starts (a fixed reload tick in 2.42) and the
# exporter counts a sample once it is 5 s old: 30 s leaves room for a slow CI machine.
TIMEOUT_S = 30.0
_SERVING = re.compile(r"on (https?)://[^/]+:(\d+)/metrics")


def _wait_until(condition: Callable[[], bool], what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log is not None else ""
            pytest.fail(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.terminate()
    try:
        return process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def _openssl_certificate(folder: Path) -> None:
    """``server.crt`` and ``server.key``: self-signed, valid for 127.0.0.1 (Go checks the SAN)."""
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=ptpd-monitor",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(folder / "server.key"), "-out", str(folder / "server.crt"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip


@dataclass(frozen=True)
class Setup:
    """The store, the web config (its certificate beside it) and the child processes' env."""

    store: Path
    web_config: Path
    certificate: Path
    env: dict[str, str]
    root: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    if not PTPD_MONITOR.is_file():
        pytest.fail(f"{PTPD_MONITOR} is missing: run `make setup` (installs the package)")
    root = tmp_path_factory.mktemp("prometheus-security")
    store = root / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTPD_MONITORING_")}
    env.update(PTPD_MONITORING_STORE_DIR=str(store), XDG_DATA_HOME=str(root / "xdg"))
    demo = subprocess.run(
        [str(PTPD_MONITOR), "demo", "--seconds", "2", "--seed", "3"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stderr
    folder = root / "web"
    folder.mkdir()
    _openssl_certificate(folder)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    web_config = folder / "web.yml"
    web_config.write_text(
        "tls_server_config:\n"
        "  cert_file: server.crt\n"  # relative to web.yml's folder, not the working folder
        "  key_file: server.key\n"
        "basic_auth_users:\n"
        f"  {USER}: '{hashed}'\n"
    )
    return Setup(store, web_config, folder / "server.crt", env, root)


@dataclass(frozen=True)
class Exporter:
    """A running ``ptpd-monitor prometheus``: where it listens, and its output files."""

    process: subprocess.Popen[bytes]
    scheme: str
    port: int
    stdout: Path
    stderr: Path


@contextmanager
def _exporter(setup: Setup, name: str, *args: str) -> Iterator[Exporter]:
    """``ptpd-monitor prometheus --port 0 ARGS`` until it says where it serves; stopped after."""
    stdout, stderr = setup.root / f"{name}.out", setup.root / f"{name}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [str(PTPD_MONITOR), "prometheus", "--port", "0", *args],
            env=setup.env,
            cwd=setup.root,  # not the web config's folder: its relative paths must still work
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    found: list[re.Match[str]] = []

    def serving() -> bool:
        if process.poll() is not None:
            pytest.fail(f"ptpd-monitor exited with {process.returncode}:\n{stderr.read_text()}")
        match = _SERVING.search(stdout.read_text(errors="replace"))
        if match:
            found.append(match)
        return match is not None

    try:
        _wait_until(serving, "ptpd-monitor serving", stderr)
        yield Exporter(process, found[0].group(1), int(found[0].group(2)), stdout, stderr)
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def secured(setup: Setup) -> Iterator[Exporter]:
    """The exporter on loopback with the web config: HTTPS, and the password required."""
    with _exporter(setup, "secured", "--web-config", str(setup.web_config)) as exporter:
        yield exporter


@pytest.fixture(scope="module")
def prometheus(
    secured: Exporter,
    setup: Setup,
    tmp_path_factory: pytest.TempPathFactory,
    prometheus_server: Callable[[Path, Path], AbstractContextManager[str]],
) -> Iterator[str]:
    """Debian's Prometheus scraping ``secured`` every second, with and without the password."""
    root = tmp_path_factory.mktemp("prometheus-server")
    target = f"static_configs: [{{targets: ['127.0.0.1:{secured.port}']}}]"
    tls = f"tls_config: {{ca_file: '{setup.certificate}'}}"
    config = root / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        f"  - {{job_name: secured, scheme: https, {tls}, {target},\n"
        f"      basic_auth: {{username: {USER}, password: '{PASSWORD}'}}}}\n"
        f"  - {{job_name: anonymous, scheme: https, {tls}, {target}}}\n"
        f"  - {{job_name: wrong-password, scheme: https, {tls}, {target},\n"
        f"      basic_auth: {{username: {USER}, password: 'not {PASSWORD}'}}}}\n"
    )
    with prometheus_server(config, root) as base:
        yield base


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bytes(response.read())
    except OSError:
        return None


def _api(base: str, path: str, **params: str) -> Any:
    body = _get(f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}")
    if body is None:
        return None
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return answer["data"]


def _value_when(base: str, promql: str, expected: float) -> None:
    seen: list[Any] = []

    def equal() -> bool:
        data = _api(base, "query", query=promql)
        seen.append(data)
        result = data["result"] if data else []
        return len(result) == 1 and float(result[0]["value"][1]) == pytest.approx(expected)

    deadline = time.monotonic() + TIMEOUT_S
    while not equal():
        if time.monotonic() > deadline:
            pytest.fail(f"{promql}: expected {expected}, last answer {seen[-1]}")
        time.sleep(0.25)


def _target(base: str, job: str) -> dict[str, Any]:
    """The job's target once it has been scraped (its health is no longer "unknown")."""
    found: list[dict[str, Any]] = []

    def scraped() -> bool:
        data = _api(base, "targets", state="active")
        for target in data["activeTargets"] if data else []:
            if target["labels"]["job"] == job and target["health"] != "unknown":
                found.append(target)
        return bool(found)

    _wait_until(scraped, f"a scrape of job {job}")
    return found[0]


def test_prometheus_scrapes_the_metrics_with_the_password_over_https(
    prometheus: str, secured: Exporter, setup: Setup
) -> None:
    assert secured.scheme == "https"
    _value_when(prometheus, 'up{job="secured"}', 1)
    _value_when(prometheus, 'ptpd_store_up{job="secured"}', 1)
    store = SampleStore(setup.store)
    requests = sum(store.read_columns(API, name).size for name in store.series_names(API))
    assert requests > 100
    _value_when(prometheus, 'sum(ptpd_http_requests_total{job="secured"})', requests)
    target = _target(prometheus, "secured")
    assert target["scrapeUrl"] == f"https://127.0.0.1:{secured.port}/metrics"
    assert target["lastError"] == ""


@pytest.mark.parametrize("job", ["anonymous", "wrong-password"])
def test_scrapes_without_the_password_get_401(prometheus: str, job: str) -> None:
    _value_when(prometheus, f'up{{job="{job}"}}', 0)
    target = _target(prometheus, job)
    assert target["health"] == "down"
    assert "401" in target["lastError"], target["lastError"]
    # Nothing but `up` and the scrape's own series: no metric of the store got through.
    assert not _api(prometheus, "query", query=f'{{job="{job}", __name__=~"ptpd_.*"}}')["result"]


def test_the_secured_exporter_warned_about_nothing(prometheus: str, secured: Exporter) -> None:
    _value_when(prometheus, 'up{job="anonymous"}', 0)  # refused scrapes have happened
    assert secured.process.poll() is None
    assert secured.stderr.read_text() == ""  # loopback: no warning; 401s: no noise


@pytest.mark.parametrize("with_config", [False, True], ids=["no web config", "web config"])
def test_binding_beyond_loopback_warns_once_without_a_web_config(
    setup: Setup, with_config: bool
) -> None:
    args = ["--web-config", str(setup.web_config)] if with_config else []
    with _exporter(setup, f"lan-{with_config}", "--host", "0.0.0.0", *args) as exporter:
        scheme = "https" if with_config else "http"
        assert exporter.scheme == scheme
        assert exporter.port > 0
        assert _stop(exporter.process) == 0
    lines = exporter.stderr.read_text().splitlines()
    if with_config:
        assert lines == []
    else:
        assert len(lines) == 1, lines
        assert lines[0].startswith("ptpd-monitor: warning: 0.0.0.0 is reachable from other ")
        assert "no --web-config" in lines[0]


def test_a_bad_web_config_exits_2_with_one_line(setup: Setup) -> None:
    bad = setup.root / "bad-web.yml"
    bad.write_text(f"basic_auth_users:\n  {USER}: {PASSWORD}\n")  # a password, not its hash
    done = subprocess.run(
        [str(PTPD_MONITOR), "prometheus", "--port", "0", "--web-config", str(bad)],
        env=setup.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        f"ptpd-monitor: error: web config {bad}: basic_auth_users: the hash of {USER!r} is not "
        f"a bcrypt hash ($2b$, $2a$ or $2y$, as `htpasswd -nBC 10 {USER}` prints)\n"
    )
