"""Unit tests of MonitoringMiddleware with hand-written ASGI apps and a fake route in scope.

No web framework and no server: each test drives the middleware with a scope, a receive and a
send of its own, and records into its own in-memory APIPerformanceTracker. Durations come from
a clock the test moves, so no assertion depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

import ptpd_calibration.monitoring as monitoring
from ptpd_calibration.monitoring.api import APIPerformanceTracker
from ptpd_calibration.monitoring.asgi import MonitoringMiddleware

if TYPE_CHECKING:
    from conftest import FakeClock

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class FakeRoute:
    """What Starlette leaves in ``scope["route"]``: a template with and without converters."""

    path: str
    path_format: str | None = None

    def __post_init__(self) -> None:
        if self.path_format is None:
            self.path_format = self.path


@dataclass
class FakeMount:
    """A Starlette Mount whose app is no router (StaticFiles): it stays in scope["route"]."""

    path: str
    path_format: str = ""
    routes: list[object] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path_format = self.path + "/{path}"


def http_scope(
    path: str = "/api/curves/7",
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    root_path: str = "",
) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "root_path": root_path,
        "headers": headers or [],
    }


async def no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class Collector:
    """A server's send: keeps every message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)


def routed_app(
    route: object | None, status: int = 200, body: bytes = b"ok", **scope_update: Any
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An app that matches ``route`` (as a router would) and answers ``status``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if route is not None:
            scope["route"] = route
        scope.update(scope_update)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


def run(middleware: MonitoringMiddleware, scope: Scope, send: Send | None = None) -> Collector:
    """Serve one request; returns what reached the server (unless ``send`` stands in for it)."""
    collector = Collector()
    asyncio.run(middleware(scope, no_body, collector if send is None else send))
    return collector


@pytest.fixture
def tracker() -> APIPerformanceTracker:
    return APIPerformanceTracker()


# -- status, method, endpoint ------------------------------------------------------------------


def test_records_the_status_method_and_route_template(tracker: APIPerformanceTracker) -> None:
    route = FakeRoute("/api/calibrations")
    middleware = MonitoringMiddleware(routed_app(route, status=201), tracker=tracker)

    sent = run(middleware, http_scope("/api/calibrations", method="POST"))

    assert [m["type"] for m in sent.messages] == ["http.response.start", "http.response.body"]
    [request] = tracker.get_requests()
    assert (request.endpoint, request.method, request.status_code) == (
        "/api/calibrations",
        "POST",
        201,
    )
    assert request.error is None
    assert request.metadata == {}


def test_different_ids_share_one_endpoint(tracker: APIPerformanceTracker) -> None:
    route = FakeRoute("/api/curves/{curve_id:int}", "/api/curves/{curve_id}")
    middleware = MonitoringMiddleware(routed_app(route), tracker=tracker)

    for curve_id in range(5):
        run(middleware, http_scope(f"/api/curves/{curve_id}"))

    assert tracker.get_endpoints() == ["/api/curves/{curve_id}"]
    assert tracker.get_endpoint_stats("/api/curves/{curve_id}")["count"] == 5


def test_route_with_only_a_path_attribute(tracker: APIPerformanceTracker) -> None:
    class PathOnly:
        path = "/health"

    run(MonitoringMiddleware(routed_app(PathOnly()), tracker=tracker), http_scope("/health"))

    assert tracker.get_endpoints() == ["/health"]


def test_a_request_no_route_matched_is_unmatched(tracker: APIPerformanceTracker) -> None:
    middleware = MonitoringMiddleware(routed_app(None, status=404), tracker=tracker)

    for path in ("/wp-admin", "/.env", "/cgi-bin/x"):
        run(middleware, http_scope(path))

    assert tracker.get_endpoints() == ["unmatched"]
    stats = tracker.get_endpoint_stats("unmatched")
    assert (stats["count"], stats["error_count"]) == (3, 3)


def test_the_unmatched_endpoint_name_is_configurable(tracker: APIPerformanceTracker) -> None:
    middleware = MonitoringMiddleware(
        routed_app(None, status=404), tracker=tracker, unmatched_endpoint="(no route)"
    )

    run(middleware, http_scope("/nope"))

    assert tracker.get_endpoints() == ["(no route)"]


def test_a_mounted_sub_app_prefixes_its_mount_path(tracker: APIPerformanceTracker) -> None:
    app = routed_app(FakeRoute("/items/{item_id}"), root_path="/v1")

    run(MonitoringMiddleware(app, tracker=tracker), http_scope("/v1/items/3"))

    assert tracker.get_endpoints() == ["/v1/items/{item_id}"]


def test_the_servers_own_root_path_is_left_out(tracker: APIPerformanceTracker) -> None:
    # Behind a proxy at /calib the server's root_path is a deployment detail, not a route.
    app = routed_app(FakeRoute("/items/{item_id}"), root_path="/calib/v1")

    run(
        MonitoringMiddleware(app, tracker=tracker),
        http_scope("/calib/v1/items/3", root_path="/calib"),
    )

    assert tracker.get_endpoints() == ["/v1/items/{item_id}"]


def test_a_parametrized_mount_keeps_its_parameter_names(tracker: APIPerformanceTracker) -> None:
    middleware = MonitoringMiddleware(
        routed_app(
            FakeRoute("/curves/{curve_id}"),
            root_path="/tenants/acme",
            path_params={"tenant": "acme", "curve_id": "acme"},
        ),
        tracker=tracker,
    )

    run(middleware, http_scope("/tenants/acme/curves/acme"))

    # "acme" is also the route's own curve_id, which stays a template parameter.
    assert tracker.get_endpoints() == ["/tenants/{tenant}/curves/{curve_id}"]


def test_a_mount_of_a_plain_app_is_one_endpoint(tracker: APIPerformanceTracker) -> None:
    middleware = MonitoringMiddleware(
        routed_app(FakeMount("/static"), root_path="/assets/static"), tracker=tracker
    )

    run(middleware, http_scope("/assets/static/css/site.css"))

    assert tracker.get_endpoints() == ["/assets/static/{path}"]


# -- timing ------------------------------------------------------------------------------------


def test_a_stream_is_timed_to_its_last_chunk(
    tracker: APIPerformanceTracker, clock: FakeClock
) -> None:
    seen_before_last_chunk: list[int] = []

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = FakeRoute("/stream")
        clock.advance(1.0)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            clock.advance(1.0)
            await send({"type": "http.response.body", "body": b"chunk", "more_body": True})
        clock.advance(1.0)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        clock.advance(10.0)  # cleanup after the response does not count

    async def server_send(message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            seen_before_last_chunk.append(len(tracker.get_requests()))

    run(
        MonitoringMiddleware(stream, tracker=tracker, clock=clock),
        http_scope("/stream"),
        server_send,
    )

    # Recorded before the last chunk went out: a client that has its response finds it there.
    assert seen_before_last_chunk == [1]
    assert tracker.get_response_times("/stream") == [5000.0]


def test_an_app_that_ends_mid_stream_is_timed_to_its_end(
    tracker: APIPerformanceTracker, clock: FakeClock
) -> None:

    async def gone(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = FakeRoute("/stream")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        clock.advance(2.0)  # the client went away; the app stops streaming

    run(MonitoringMiddleware(gone, tracker=tracker, clock=clock), http_scope("/stream"))

    [request] = tracker.get_requests()
    assert (request.status_code, request.duration_ms, request.error) == (200, 2000.0, None)


def test_an_app_that_never_answers_is_a_500(tracker: APIPerformanceTracker) -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = FakeRoute("/silent")

    run(MonitoringMiddleware(silent, tracker=tracker), http_scope("/silent"))

    [request] = tracker.get_requests()
    assert request.status_code == 500
    assert request.error == "the app returned without sending a response"


def test_a_pathsend_ends_the_response(tracker: APIPerformanceTracker, clock: FakeClock) -> None:

    async def file_app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = FakeRoute("/file")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        clock.advance(3.0)
        await send({"type": "http.response.pathsend", "path": "/tmp/x"})
        clock.advance(5.0)

    run(MonitoringMiddleware(file_app, tracker=tracker, clock=clock), http_scope("/file"))

    assert tracker.get_response_times("/file") == [3000.0]


# -- exceptions --------------------------------------------------------------------------------


def test_an_exception_is_a_500_with_the_error_and_is_re_raised(
    tracker: APIPerformanceTracker,
) -> None:
    async def boom(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = FakeRoute("/boom")
        raise RuntimeError("developer tank empty")

    with pytest.raises(RuntimeError, match="developer tank empty"):
        run(MonitoringMiddleware(boom, tracker=tracker), http_scope("/boom"))

    [request] = tracker.get_requests()
    assert (request.endpoint, request.status_code) == ("/boom", 500)
    assert request.error == "RuntimeError: developer tank empty"


def test_an_exception_after_the_response_started_keeps_its_status(
    tracker: APIPerformanceTracker,
) -> None:
    async def half(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = FakeRoute("/half")
        await send({"type": "http.response.start", "status": 206, "headers": []})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        raise ValueError

    with pytest.raises(ValueError):
        run(MonitoringMiddleware(half, tracker=tracker), http_scope("/half"))

    [request] = tracker.get_requests()
    assert (request.status_code, request.error) == (206, "ValueError")


def test_an_exception_after_the_response_is_recorded_once(tracker: APIPerformanceTracker) -> None:
    async def late(scope: Scope, receive: Receive, send: Send) -> None:
        await routed_app(FakeRoute("/late"))(scope, receive, send)
        raise RuntimeError("background task failed")

    with pytest.raises(RuntimeError):
        run(MonitoringMiddleware(late, tracker=tracker), http_scope("/late"))

    [request] = tracker.get_requests()
    assert (request.status_code, request.error) == (200, None)


# -- passthrough -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lifespan", "websocket"])
def test_other_scopes_pass_straight_through(kind: str, tracker: APIPerformanceTracker) -> None:
    seen: list[tuple[Scope, Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Message:
        return {"type": f"{kind}.connect"}

    send = Collector()
    scope: Scope = {"type": kind, "asgi": {"version": "3.0"}}
    if kind == "websocket":
        scope.update(path="/ws", headers=[(b"x-session-id", b"s1")])

    asyncio.run(MonitoringMiddleware(app, tracker=tracker)(scope, receive, send))

    [(got_scope, got_receive, got_send)] = seen
    assert got_scope is scope and got_receive is receive and got_send is send
    assert tracker.get_requests() == []


def test_a_lifespan_error_propagates() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("no lifespan here")

    middleware = MonitoringMiddleware(app, tracker=APIPerformanceTracker())
    with pytest.raises(RuntimeError, match="no lifespan here"):
        asyncio.run(middleware({"type": "lifespan"}, no_body, Collector()))


# -- metadata ----------------------------------------------------------------------------------


def test_session_and_request_ids_go_into_metadata(tracker: APIPerformanceTracker) -> None:
    headers = [
        (b"accept", b"*/*"),
        (b"X-Session-ID", b"print-session-42"),  # hand-built scopes may keep the case
        (b"x-request-id", b"req-1"),
    ]

    run(
        MonitoringMiddleware(routed_app(FakeRoute("/a")), tracker=tracker),
        http_scope(headers=headers),
    )

    [request] = tracker.get_requests()
    assert request.metadata == {"session_id": "print-session-42", "request_id": "req-1"}
    assert tracker.get_requests()[0].metadata["session_id"] == "print-session-42"


def test_only_the_headers_present_are_recorded(tracker: APIPerformanceTracker) -> None:
    headers = [(b"x-request-id", b"req-2")]

    run(
        MonitoringMiddleware(routed_app(FakeRoute("/a")), tracker=tracker),
        http_scope(headers=headers),
    )

    assert tracker.get_requests()[0].metadata == {"request_id": "req-2"}


def test_header_names_are_configurable(tracker: APIPerformanceTracker) -> None:
    middleware = MonitoringMiddleware(
        routed_app(FakeRoute("/a")),
        tracker=tracker,
        session_header="X-Calibration-Session",
        request_id_header="traceparent",
    )
    headers = [
        (b"x-session-id", b"ignored"),
        (b"x-calibration-session", b"s-9"),
        (b"traceparent", b"00-abc-01"),
    ]

    run(middleware, http_scope(headers=headers))

    assert tracker.get_requests()[0].metadata == {"session_id": "s-9", "request_id": "00-abc-01"}


@pytest.mark.parametrize("argument", ["session_header", "request_id_header", "unmatched_endpoint"])
def test_empty_names_are_refused(argument: str) -> None:
    with pytest.raises(ValueError, match=argument.split("_")[0]):
        MonitoringMiddleware(routed_app(None), **cast(Any, {argument: " "}))


# -- never break the request -------------------------------------------------------------------


class BrokenTracker(APIPerformanceTracker):
    def track_request(self, *args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")


def test_a_recording_failure_never_breaks_the_request(caplog: pytest.LogCaptureFixture) -> None:
    middleware = MonitoringMiddleware(routed_app(FakeRoute("/a")), tracker=BrokenTracker())

    with caplog.at_level(logging.DEBUG, logger="ptpd_calibration.monitoring.asgi"):
        sent = [run(middleware, http_scope()) for _ in range(3)]

    assert all(s.messages[-1]["body"] == b"ok" for s in sent)
    assert middleware.recording_errors == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one warning, then debug lines
    assert "could not record a request" in warnings[0].getMessage()


def test_a_recording_failure_keeps_the_apps_exception(caplog: pytest.LogCaptureFixture) -> None:
    async def boom(scope: Scope, receive: Receive, send: Send) -> None:
        raise KeyError("curve")

    middleware = MonitoringMiddleware(boom, tracker=BrokenTracker())
    with caplog.at_level(logging.WARNING), pytest.raises(KeyError):
        run(middleware, http_scope())
    assert middleware.recording_errors == 1


def test_a_bad_status_from_the_app_is_a_recording_failure(tracker: APIPerformanceTracker) -> None:
    middleware = MonitoringMiddleware(routed_app(FakeRoute("/a"), status=999), tracker=tracker)

    sent = run(middleware, http_scope())

    assert sent.messages[0]["status"] == 999
    assert tracker.get_requests() == []
    assert middleware.recording_errors == 1


# -- the default tracker -----------------------------------------------------------------------


def test_the_default_tracker_is_looked_up_at_the_first_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[APIPerformanceTracker] = []
    tracker = APIPerformanceTracker()

    def fake_get_api_tracker() -> APIPerformanceTracker:
        calls.append(tracker)
        return tracker

    monkeypatch.setattr(monitoring, "get_api_tracker", fake_get_api_tracker)
    middleware = MonitoringMiddleware(routed_app(FakeRoute("/a")))
    assert calls == []

    run(middleware, http_scope())
    run(middleware, http_scope())

    assert len(calls) == 1
    assert middleware.tracker is tracker
    assert tracker.get_endpoint_stats("/a")["count"] == 2


# -- every route a real FastAPI or Starlette router can match -----------------------------------
#
# FastAPI leaves scope["route"] only for its own API routes; the middleware asks the router for
# the rest. These tests serve real apps in process (httpx's ASGI transport, no server).


def _plain(request: Any) -> Any:
    from starlette.responses import PlainTextResponse

    return PlainTextResponse("plain")


async def _bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"bare"})


def _calibration_app(static_dir: Path) -> Any:
    """A FastAPI app with every kind of route: API, included, add_route, docs and mounts."""
    from fastapi import APIRouter, FastAPI
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route, Router
    from starlette.staticfiles import StaticFiles

    app = FastAPI()

    @app.get("/api/curves/{curve_id}")
    async def get_curve(curve_id: int) -> dict[str, int]:
        return {"curve_id": curve_id}

    papers = APIRouter(prefix="/papers")

    @papers.get("/{paper_id}")
    async def get_paper(paper_id: str) -> dict[str, str]:
        return {"paper_id": paper_id}

    # FastAPI puts the inclusion's prefix in front of these, not the router's own.
    papers.add_route("/scans/{scan_id}", _plain)
    papers.mount("/swatches", StaticFiles(directory=static_dir))
    app.include_router(papers, prefix="/api")
    app.add_route("/legacy/{item}", _plain)
    app.mount("/static", StaticFiles(directory=static_dir))
    app.mount("/raw", _bare_app)
    v1 = FastAPI()

    @v1.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    app.mount("/v1", v1)
    app.mount("/tenants/{tenant}", Router([Route("/curves/{curve_id}", _plain)]))
    app.mount(
        "/old",
        Starlette(routes=[Route("/a", _plain), Mount("/deep", routes=[Route("/b/{z}", _plain)])]),
    )
    return app


def _serve(app: Any, requests: list[tuple[str, str]]) -> list[int]:
    """Send (method, path) requests to ``app`` in process; their status codes."""
    import httpx

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [
                (await client.request(method, path, follow_redirects=False)).status_code
                for method, path in requests
            ]

    return asyncio.run(go())


def _endpoints(tracker: APIPerformanceTracker) -> list[tuple[str, str, int]]:
    return [(r.endpoint, r.method, r.status_code) for r in tracker.get_requests()]


@pytest.fixture
def static_dir(tmp_path: Path) -> Path:
    (tmp_path / "site.css").write_text("body {}")
    return tmp_path


@pytest.mark.parametrize(
    ("method", "path", "status", "endpoint"),
    [
        ("GET", "/api/curves/7", 200, "/api/curves/{curve_id}"),
        ("GET", "/api/papers/arches", 200, "/api/papers/{paper_id}"),
        ("POST", "/api/papers/arches", 405, "/api/papers/{paper_id}"),
        ("GET", "/api/scans/9", 200, "/api/scans/{scan_id}"),
        ("GET", "/api/swatches/site.css", 200, "/api/swatches/{path}"),
        ("GET", "/legacy/42", 200, "/legacy/{item}"),
        ("GET", "/docs", 200, "/docs"),
        ("GET", "/docs/oauth2-redirect", 200, "/docs/oauth2-redirect"),
        ("GET", "/redoc", 200, "/redoc"),
        ("GET", "/openapi.json", 200, "/openapi.json"),
        ("POST", "/docs", 405, "/docs"),  # the path matches, the method does not
        ("GET", "/static/site.css", 200, "/static/{path}"),
        ("GET", "/static/missing.css", 404, "/static/{path}"),  # StaticFiles' own 404
        ("GET", "/raw/any/thing", 200, "/raw/{path}"),
        ("GET", "/v1/items/3", 200, "/v1/items/{item_id}"),
        ("GET", "/v1/docs", 200, "/v1/docs"),
        ("GET", "/v1/openapi.json", 200, "/v1/openapi.json"),
        ("GET", "/tenants/acme/curves/5", 200, "/tenants/{tenant}/curves/{curve_id}"),
        ("GET", "/old/a", 200, "/old/a"),
        ("GET", "/old/deep/b/6", 200, "/old/deep/b/{z}"),
    ],
)
def test_every_route_of_a_fastapi_app_is_named_by_its_template(
    static_dir: Path, method: str, path: str, status: int, endpoint: str
) -> None:
    tracker = APIPerformanceTracker()
    app = _calibration_app(static_dir)
    app.add_middleware(MonitoringMiddleware, tracker=tracker)

    assert _serve(app, [(method, path)]) == [status]

    assert _endpoints(tracker) == [(endpoint, method, status)]


def test_paths_no_route_of_a_fastapi_app_matches_are_unmatched(static_dir: Path) -> None:
    tracker = APIPerformanceTracker()
    app = _calibration_app(static_dir)
    app.add_middleware(MonitoringMiddleware, tracker=tracker)
    paths = [
        "/wp-admin",
        "/api/curves/7/",  # redirected to the route without the slash: not the route
        "/api/curves/x",  # not an int
        "/v1/nothing",  # under a mount whose router matches nothing
        "/old/zzz",
        "/tenants/acme/nope",
    ]

    statuses = _serve(app, [("GET", path) for path in paths])

    assert statuses == [404, 307, 422, 404, 404, 404]
    # 422: FastAPI matched the route and refused the value; that is the route's request.
    assert [e for e, _, _ in _endpoints(tracker)] == [
        "unmatched",
        "unmatched",
        "/api/curves/{curve_id}",
        "unmatched",
        "unmatched",
        "unmatched",
    ]


def test_a_starlette_app_is_named_the_same_way(static_dir: Path) -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    tracker = APIPerformanceTracker()
    app = Starlette(
        routes=[
            Route("/curves/{curve_id:int}", _plain),
            Mount("/static", StaticFiles(directory=static_dir)),
            Mount("/api", routes=[Route("/papers/{paper_id}", _plain)]),
        ],
        middleware=[Middleware(MonitoringMiddleware, tracker=tracker)],
    )

    _serve(
        app,
        [
            ("GET", "/curves/3"),
            ("GET", "/static/site.css"),
            ("GET", "/api/papers/arches"),
            ("GET", "/api/nope"),
            ("GET", "/nope"),
        ],
    )

    assert [e for e, _, _ in _endpoints(tracker)] == [
        "/curves/{curve_id}",
        "/static/{path}",
        "/api/papers/{paper_id}",
        "unmatched",
        "unmatched",
    ]


def test_middleware_on_a_mounted_sub_app_names_its_own_routes(static_dir: Path) -> None:
    from fastapi import FastAPI

    tracker = APIPerformanceTracker()
    outer = FastAPI()

    @outer.get("/docs-of-outer")
    async def outer_route() -> dict[str, str]:
        return {}

    inner = FastAPI()

    @inner.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    inner.add_route("/legacy", _plain)
    inner.add_middleware(MonitoringMiddleware, tracker=tracker)
    outer.mount("/v1", inner)

    _serve(
        outer,
        [("GET", "/v1/items/2"), ("GET", "/v1/legacy"), ("GET", "/v1/docs"), ("GET", "/v1/x")],
    )

    # As for an API route: the endpoint is the sub-app's own template, without its mount path.
    assert [e for e, _, _ in _endpoints(tracker)] == [
        "/items/{item_id}",
        "/legacy",
        "/docs",
        "unmatched",
    ]


def test_the_servers_root_path_is_left_out_of_matched_routes(static_dir: Path) -> None:
    import httpx

    tracker = APIPerformanceTracker()
    app = _calibration_app(static_dir)
    app.add_middleware(MonitoringMiddleware, tracker=tracker)

    async def go() -> None:
        transport = httpx.ASGITransport(app=app, root_path="/calib")
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for path in ("/calib/docs", "/calib/legacy/1", "/calib/v1/docs", "/calib/nope"):
                await client.get(path)

    asyncio.run(go())

    assert [e for e, _, _ in _endpoints(tracker)] == [
        "/docs",
        "/legacy/{item}",
        "/v1/docs",
        "unmatched",
    ]


def test_a_route_that_cannot_be_matched_leaves_the_request_unmatched() -> None:
    class Broken:
        def matches(self, scope: Scope) -> Any:
            raise RuntimeError("no")

    class Router:
        routes: list[object] = [Broken()]  # noqa: RUF012

    tracker = APIPerformanceTracker()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["router"] = Router()
        await routed_app(None, status=404)(scope, receive, send)

    middleware = MonitoringMiddleware(app, tracker=tracker)
    run(middleware, http_scope("/x"))

    assert tracker.get_endpoints() == ["unmatched"]
    assert middleware.recording_errors == 0
