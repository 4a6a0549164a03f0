"""MonitoringMiddleware in a real FastAPI app served by a real uvicorn, hit over real sockets.

The first tests serve the app from a thread of this process into a tracker of their own. The
last one runs uvicorn as a child process on a temporary store with the default tracker, stops
it with SIGTERM as a process manager would, and reads its requests back from the store.

The child imports this module (``uvicorn --factory test_fastapi_uvicorn:make_app``), so the
app lives here and builds without arguments.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from ptpd_calibration.monitoring.api import APIPerformanceTracker
from ptpd_calibration.monitoring.asgi import MonitoringMiddleware
from ptpd_calibration.monitoring.store import SampleStore

HERE = Path(__file__).resolve().parent
CURVE = "/api/curves/{curve_id}"
STREAM_CHUNKS = [f"step {i}\n".encode() for i in range(5)]


class Calibration(BaseModel):
    paper: str
    exposure_s: float


def make_app(tracker: APIPerformanceTracker | None = None) -> FastAPI:
    """The calibration API in miniature; ``tracker=None`` records into ``get_api_tracker()``."""
    app = FastAPI()

    @app.get("/api/curves/{curve_id}")
    async def get_curve(curve_id: int) -> dict[str, int]:
        return {"curve_id": curve_id}

    @app.post("/api/calibrations", status_code=201)
    async def create_calibration(calibration: Calibration) -> dict[str, str]:
        return {"paper": calibration.paper}  # a body that fails validation gets a 422

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def steps() -> AsyncIterator[bytes]:
            for chunk in STREAM_CHUNKS:
                await asyncio.sleep(0)
                yield chunk

        return StreamingResponse(steps(), media_type="text/plain")

    app.add_middleware(MonitoringMiddleware, tracker=tracker)
    return app


@dataclass
class Served:
    url: str
    tracker: APIPerformanceTracker


@pytest.fixture
def served() -> Iterator[Served]:
    """The app on uvicorn in a background thread, on a free port of 127.0.0.1."""
    tracker = APIPerformanceTracker()
    server = uvicorn.Server(uvicorn.Config(make_app(tracker), lifespan="on", log_level="critical"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped before it started"
            assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
            time.sleep(0.01)
        yield Served(f"http://127.0.0.1:{port}", tracker)
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, trust_env=False, timeout=20)


def test_concurrent_requests_for_different_ids_are_one_endpoint(served: Served) -> None:
    async def hit_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served.url, trust_env=False, timeout=20) as http:
            return await asyncio.gather(*(http.get(f"/api/curves/{i}") for i in range(50)))

    responses = asyncio.run(hit_all())

    assert [r.json()["curve_id"] for r in responses] == list(range(50))
    assert served.tracker.get_endpoints() == [CURVE]
    stats = served.tracker.get_endpoint_stats(CURVE, method="GET")
    assert (stats["count"], stats["error_count"]) == (50, 0)


def test_a_path_no_route_matches_is_unmatched(served: Served) -> None:
    with client(served.url) as http:
        assert http.get("/wp-login.php").status_code == 404
        assert http.get("/api/curves").status_code == 404

    assert served.tracker.get_endpoints() == ["unmatched"]
    assert [r.status_code for r in served.tracker.get_requests()] == [404, 404]


def test_an_exception_is_recorded_as_a_500_with_its_error(served: Served) -> None:
    with client(served.url) as http:
        assert http.get("/boom").status_code == 500

    [request] = served.tracker.get_requests("/boom")
    assert (request.status_code, request.method) == (500, "GET")
    assert request.error == "RuntimeError: kaput"


def test_a_streamed_response_is_recorded_once(served: Served) -> None:
    with client(served.url) as http:
        response = http.get("/stream")

    assert response.status_code == 200
    assert response.content == b"".join(STREAM_CHUNKS)
    [request] = served.tracker.get_requests("/stream")
    assert (request.status_code, request.error) == (200, None)


def test_validation_failures_are_422s_of_their_route(served: Served) -> None:
    with client(served.url) as http:
        assert http.post("/api/calibrations", json={"paper": "Arches Platine", "exposure_s": 240})
        assert http.post("/api/calibrations", json={"paper": "COT 320"}).status_code == 422
        assert http.get("/api/curves/not-a-number").status_code == 422

    calibrations = served.tracker.get_requests("/api/calibrations")
    assert [(r.method, r.status_code) for r in calibrations] == [("POST", 201), ("POST", 422)]
    assert [r.status_code for r in served.tracker.get_requests(CURVE)] == [422]
    assert served.tracker.get_error_rate("/api/calibrations") == 0.5


def test_session_and_request_ids_reach_the_metadata(served: Served) -> None:
    with client(served.url) as http:
        http.get("/api/curves/1", headers={"X-Session-Id": "darkroom-7", "x-request-id": "r-1"})
        http.get("/api/curves/2")

    first, second = served.tracker.get_requests(CURVE)
    assert first.metadata == {"session_id": "darkroom-7", "request_id": "r-1"}
    assert second.metadata == {}


# -- a real server process -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_listening(port: int, process: subprocess.Popen[str]) -> None:
    """Connect without sending a request, so readiness checks leave nothing in the store."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited with {process.returncode}:\n{process.communicate()[0]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("uvicorn did not listen within 30 s")


def test_a_server_process_leaves_its_requests_in_the_store(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTPD_MONITORING_")}
    # No periodic flush during the test: the requests reach the store only at shutdown.
    env.update(PTPD_MONITORING_STORE_DIR=str(store_dir), PTPD_MONITORING_FLUSH_INTERVAL_S="3600")
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "--app-dir", str(HERE)]
    command += [f"{Path(__file__).stem}:make_app", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--log-level", "warning"],
        cwd=tmp_path,  # no stray .env
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_until_listening(port, process)
        with client(f"http://127.0.0.1:{port}") as http:
            for curve_id in range(7):
                assert http.get(f"/api/curves/{curve_id}").status_code == 200
            assert http.get("/api/curves/8", headers={"x-session-id": "child"}).status_code == 200
            good = {"paper": "Hahnemühle Platinum Rag", "exposure_s": 300}
            assert http.post("/api/calibrations", json=good).status_code == 201
            assert http.post("/api/calibrations", json=good).status_code == 201
            assert http.post("/api/calibrations", json={}).status_code == 422
            assert http.get("/no/such/page").status_code == 404
            # uvicorn closes a connection whose app raised: don't let the pool reuse it.
            assert http.get("/boom", headers={"Connection": "close"}).status_code == 500
            assert http.get("/stream").content == b"".join(STREAM_CHUNKS)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    # uvicorn shuts down gracefully, then re-raises SIGTERM to itself: "killed by SIGTERM"
    # is its clean exit, and atexit handlers never run (hence the flush at lifespan end).
    assert process.returncode in (0, -signal.SIGTERM), output
    stored = SampleStore(store_dir).load_api_tracker()
    counts = {
        endpoint: stored.get_endpoint_stats(endpoint)["count"]
        for endpoint in stored.get_endpoints()
    }
    assert counts == {CURVE: 8, "/api/calibrations": 3, "unmatched": 1, "/boom": 1, "/stream": 1}
    assert [r.status_code for r in stored.get_requests("/api/calibrations")] == [201, 201, 422]
    [boom] = stored.get_requests("/boom")
    assert (boom.status_code, boom.error) == (500, "RuntimeError: kaput")
    sessions = [r.metadata.get("session_id") for r in stored.get_requests(CURVE)]
    assert sessions == [None] * 7 + ["child"]
