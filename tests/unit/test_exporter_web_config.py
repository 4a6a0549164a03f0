"""``--web-config``: parsing exporter-toolkit's format, its error messages, and auth over real HTTP.

The servers run in-process on 127.0.0.1 with a free port and are spoken to with
``http.client``; the certificates are made by the ``openssl`` command line.
"""

from __future__ import annotations

import base64
import http.client
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import bcrypt
import numpy as np
import pytest

from ptpd_calibration.monitoring import exporter
from ptpd_calibration.monitoring.cli import main
from ptpd_calibration.monitoring.exporter import (
    WebConfig,
    WebConfigError,
    exposure_warning,
    load_web_config,
    serve,
)
from ptpd_calibration.monitoring.store import METRIC, ColumnBatch, SampleStore

USER = "prometheus"
PASSWORD = "correct horse"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()  # cost 4: fast tests


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is missing (Debian: apt-get install openssl)")
    subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)


def make_certificate(folder: Path, name: str = "server") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its unencrypted key."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "2", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-keyout", str(key), "-out", str(cert),
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """server.crt/key, other.crt/key (a second pair) and an encrypted copy of server.key."""
    folder = tmp_path_factory.mktemp("tls")
    make_certificate(folder, "server")
    make_certificate(folder, "other")
    _openssl(
        "pkey", "-in", str(folder / "server.key"), "-aes256", "-passout", "pass:pw",
        "-out", str(folder / "encrypted.key"),
    )  # fmt: skip
    return folder


def _config(folder: Path, text: str, tls_dir: Path | None = None) -> Path:
    """``text`` as ``folder/web.yml``, with the certificates copied beside it when given."""
    folder.mkdir(parents=True, exist_ok=True)
    if tls_dir is not None:
        for file in tls_dir.iterdir():
            shutil.copy(file, folder / file.name)
    path = folder / "web.yml"
    path.write_text(text, encoding="utf-8")
    return path


# -- parsing --------------------------------------------------------------------------------------


def test_relative_files_are_relative_to_the_config_folder(
    tmp_path: Path, tls_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(
        tmp_path / "conf",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n  {USER}: {HASH}\n",
        tls_dir,
    )
    monkeypatch.chdir(tmp_path)  # not the config's folder
    config = load_web_config(Path("conf/web.yml"))
    assert isinstance(config.tls, ssl.SSLContext)
    assert config.tls.minimum_version == ssl.TLSVersion.TLSv1_2
    assert config.users == {USER: HASH.encode()}
    assert config.path == Path("conf/web.yml")
    absolute = _config(
        tmp_path / "elsewhere",
        f"tls_server_config:\n  cert_file: {tls_dir / 'server.crt'}\n"
        f"  key_file: {tls_dir / 'server.key'}\n",
    )
    assert load_web_config(absolute).tls is not None


@pytest.mark.parametrize(
    "text", ["", "basic_auth_users:\n", "tls_server_config: {}\n", "tls_server_config:\n"]
)
def test_empty_sections_mean_plain_http_and_no_users(tmp_path: Path, text: str) -> None:
    # As in exporter-toolkit: an empty tls_server_config serves plain HTTP.
    config = load_web_config(_config(tmp_path, text))
    assert config.tls is None
    assert config.users == {}


_BCRYPT = "$2b$10$" + "a" * 53
BAD_CONFIGS = {
    "not YAML": ("tls_server_config: [cert.pem\n", "not valid YAML: "),
    "YAML, not a mapping": ("- prometheus\n- secret\n", "the file must be a mapping"),
    "unknown top-level key": (
        "basic_auth_user:\n  a: b\n",
        "unknown key 'basic_auth_user' (known keys: tls_server_config, basic_auth_users)",
    ),
    "unknown TLS key": (
        "tls_server_config:\n  cert_file: server.crt\n  key_fil: server.key\n",
        "tls_server_config: unknown key 'key_fil'",
    ),
    "exporter-toolkit setting not supported": (
        "http_server_config:\n  http2: false\n",
        "'http_server_config' is an exporter-toolkit setting ptpd-monitor does not support",
    ),
    "TLS section not a mapping": ("tls_server_config: server.crt\n", "not a string"),
    "key_file missing": (
        "tls_server_config:\n  cert_file: server.crt\n",
        "tls_server_config: key_file is missing (TLS needs both cert_file and key_file)",
    ),
    "cert_file missing": (
        "tls_server_config:\n  key_file: server.key\n",
        "tls_server_config: cert_file is missing",
    ),
    "cert_file not there": (
        "tls_server_config:\n  cert_file: nowhere.crt\n  key_file: server.key\n",
        "nowhere.crt: No such file or directory",
    ),
    "cert_file not a certificate": (
        "tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n",
        "server.key holds no PEM certificate",
    ),
    "key_file not a key": (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n",
        "server.crt holds no PEM private key",
    ),
    "key of another certificate": (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n",
        "other.key is not the key of cert_file",
    ),
    "encrypted key": (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: encrypted.key\n",
        "encrypted.key is encrypted; give an unencrypted key",
    ),
    "plain-text password": (
        "basic_auth_users:\n  prometheus: secret\n",
        "the hash of 'prometheus' is not a bcrypt hash",
    ),
    "SHA1 htpasswd hash": (
        "basic_auth_users:\n  prometheus: '{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ='\n",
        "not a bcrypt hash",
    ),
    "truncated bcrypt hash": (f"basic_auth_users:\n  a: '{_BCRYPT[:-1]}'\n", "not a bcrypt hash"),
    "bcrypt cost out of range": (
        f"basic_auth_users:\n  a: '{_BCRYPT.replace('$10$', '$03$')}'\n",
        "not a bcrypt hash",
    ),
    "user name with a colon": (f"basic_auth_users:\n  'a:b': '{_BCRYPT}'\n", "'a:b' is no user"),
    "users as a list": ("basic_auth_users:\n  - prometheus\n", "must map user names"),
}


@pytest.mark.parametrize(("text", "problem"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_configs_name_the_file_and_the_problem(
    tmp_path: Path, tls_dir: Path, text: str, problem: str
) -> None:
    path = _config(tmp_path, text, tls_dir)
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    message = str(caught.value)
    assert message.startswith(f"web config {path}: ")
    assert problem in message
    assert "\n" not in message
    assert "a" * 53 not in message  # a hash is never echoed


def test_the_yaml_error_says_where(tmp_path: Path) -> None:
    path = _config(tmp_path, "basic_auth_users:\n  a: b\n c: d\n")
    with pytest.raises(WebConfigError, match=r"not valid YAML: .* at line 3, column 2$"):
        load_web_config(path)


@pytest.mark.parametrize("make", [lambda p: p / "missing.yml", lambda p: p], ids=["missing", "dir"])
def test_an_unreadable_file_is_a_one_line_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path], Path]
) -> None:
    path = make(tmp_path)
    assert main(["prometheus", "--port", "0", "--web-config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"ptpd-monitor: error: web config {path}: cannot read it: ")


def test_the_cli_exits_2_with_the_config_problem_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_monitoring_env: Path
) -> None:
    path = _config(tmp_path, "tls_server_config:\n  cert_file: server.crt\n")
    assert main(["prometheus", "--port", "0", "--web-config", str(path)]) == 2
    problem = "tls_server_config: key_file is missing (TLS needs both cert_file and key_file)"
    assert capsys.readouterr().err == f"ptpd-monitor: error: web config {path}: {problem}\n"
    assert not isolated_monitoring_env.exists()  # refused before the store was opened


# -- the warning ----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_hosts_need_no_warning(host: str) -> None:
    assert exposure_warning(host, None) is None


def test_other_hosts_warn_unless_tls_and_passwords(tmp_path: Path, tls_dir: Path) -> None:
    users = {USER: HASH.encode()}
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    path = tmp_path / "web.yml"
    warning = exposure_warning("0.0.0.0", None)
    assert warning is not None
    assert "no --web-config" in warning
    assert "anyone there can read the metrics" in warning
    assert "basic_auth_users" in str(exposure_warning("0.0.0.0", WebConfig(path, tls)))
    unencrypted = exposure_warning("::", WebConfig(path, None, users))
    assert unencrypted is not None
    assert "passwords cross the network unencrypted" in unencrypted
    assert exposure_warning("0.0.0.0", WebConfig(path, tls, users)) is None


# -- auth and TLS over real HTTP ------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> SampleStore:
    """A store with one settled ``fit`` timing, so a scrape shows a real metric."""
    store = SampleStore(tmp_path / "store")
    batch = ColumnBatch(
        METRIC, "fit", (np.array([time.time() - 60.0]), np.array([0.25])), "seconds"
    )
    assert store.write([batch])
    return store


_FIT_COUNT = 'ptpd_operation_duration_seconds_count{operation="fit"} 1.0'


@contextmanager
def _serve(store: SampleStore, config: WebConfig) -> Iterator[int]:
    server, thread = serve(store, "127.0.0.1", 0, web_config=config)
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def auth_port(store: SampleStore, tmp_path: Path) -> Iterator[int]:
    """An exporter over plain HTTP that wants ``USER``'s password."""
    with _serve(store, WebConfig(tmp_path / "web.yml", None, {USER: HASH.encode()})) as port:
        yield port


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _get(
    port: int, headers: dict[str, str], context: ssl.SSLContext | None = None
) -> tuple[int, dict[str, str], str]:
    connection = (
        http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        if context is None
        else http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    )
    try:
        connection.request("GET", "/metrics", headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def _assert_refused(answer: tuple[int, dict[str, str], str]) -> None:
    status, headers, body = answer
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic ")
    assert "ptpd_" not in body


def test_no_credentials_get_401_with_a_basic_challenge(auth_port: int) -> None:
    _assert_refused(_get(auth_port, {}))


@pytest.mark.parametrize(
    "headers",
    [
        _basic(USER, "wrong horse"),
        _basic(USER, ""),
        _basic("someone", PASSWORD),
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Basic " + base64.b64encode(USER.encode()).decode()},  # no colon
        {"Authorization": "Bearer " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()},
        _basic(USER, PASSWORD + "x" * 80),  # beyond bcrypt's 72 bytes
    ],
    ids=["wrong", "empty", "unknown user", "bad base64", "no colon", "not basic", "too long"],
)
def test_wrong_credentials_get_401(auth_port: int, headers: dict[str, str]) -> None:
    _assert_refused(_get(auth_port, headers))


def test_the_right_password_gets_the_metrics(auth_port: int) -> None:
    status, headers, body = _get(auth_port, _basic(USER, PASSWORD))
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert _FIT_COUNT in body


def test_verdicts_are_cached_per_credentials_not_per_user(
    auth_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bytes] = []
    checkpw = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return checkpw(password, hashed)

    monkeypatch.setattr(exporter.bcrypt, "checkpw", counting)
    for _ in range(3):
        assert _get(auth_port, _basic(USER, PASSWORD))[0] == 200
    assert calls == [PASSWORD.encode()]  # one bcrypt for three scrapes
    for _ in range(2):  # a verified password never lets another one in
        _assert_refused(_get(auth_port, _basic(USER, "wrong horse")))
    assert calls == [PASSWORD.encode(), b"wrong horse"]
    assert _get(auth_port, _basic(USER, PASSWORD))[0] == 200


def test_htpasswd_2y_hashes_verify(store: SampleStore, tmp_path: Path) -> None:
    htpasswd_hash = "$2y$" + HASH[4:]  # what `htpasswd -nBC 10` prints
    path = _config(tmp_path, f"basic_auth_users:\n  {USER}: '{htpasswd_hash}'\n")
    with _serve(store, load_web_config(path)) as port:
        assert _get(port, _basic(USER, PASSWORD))[0] == 200
        _assert_refused(_get(port, _basic(USER, "wrong horse")))


@pytest.fixture
def tls_port(store: SampleStore, tmp_path: Path, tls_dir: Path) -> Iterator[int]:
    """An exporter over HTTPS (``server.crt``) that wants ``USER``'s password."""
    path = _config(
        tmp_path / "conf",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n  {USER}: '{HASH}'\n",
        tls_dir,
    )
    with _serve(store, load_web_config(path)) as port:
        yield port


def _trusting(tls_dir: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_dir / "server.crt"))


def test_https_with_the_password(tls_port: int, tls_dir: Path) -> None:
    context = _trusting(tls_dir)
    status, _, body = _get(tls_port, _basic(USER, PASSWORD), context)
    assert status == 200
    assert _FIT_COUNT in body
    _assert_refused(_get(tls_port, {}, context))
    _assert_refused(_get(tls_port, _basic(USER, "wrong horse"), context))


def test_plain_http_to_the_tls_port_gets_nothing(tls_port: int, tls_dir: Path) -> None:
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        _get(tls_port, _basic(USER, PASSWORD))
    assert _get(tls_port, _basic(USER, PASSWORD), _trusting(tls_dir))[0] == 200


def test_a_silent_client_does_not_hold_up_scrapes(tls_port: int, tls_dir: Path) -> None:
    # prometheus_client's start_http_server does the handshake in its accepting thread, where
    # one connection that never speaks blocks every later scrape; here each has its thread.
    with socket.create_connection(("127.0.0.1", tls_port), timeout=10):
        time.sleep(0.2)  # accepted by now
        started = time.monotonic()
        assert _get(tls_port, _basic(USER, PASSWORD), _trusting(tls_dir))[0] == 200
        assert time.monotonic() - started < 5.0
