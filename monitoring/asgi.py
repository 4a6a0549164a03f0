"""MonitoringMiddleware: latency and status of every HTTP request, per route template.

Pure ASGI 3, so it wraps FastAPI, Starlette or any other ASGI app, and nothing here imports a
web framework. The endpoint a request is recorded under is the *route template* the framework
matched ("/api/curves/{curve_id}"), never the raw path: ids in paths and scanners probing
random URLs would otherwise make one series per URL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple

from ._flusher import FLUSHER

if TYPE_CHECKING:
    from .api import APIPerformanceTracker

__all__ = ["MonitoringMiddleware"]

logger = logging.getLogger(__name__)

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]

_PARAM = re.compile(r"{([^}:]+)")
_UNKNOWN = object()
_MAX_STACK = 64  # middlewares between this one and the router, at most
_MAX_DEPTH = 16  # mounts inside mounts, at most
# Starlette's Match: NONE, PARTIAL (the path matches, the method does not: a 405), FULL.
_PARTIAL, _FULL = 1, 2
# Starlette's Mount matches "<mount path>/{path}"; when the mounted app is no router
# (StaticFiles, a bare ASGI app) the template ends there.
_MOUNT_TAIL = "/{path}"


class MonitoringMiddleware:
    """Records every HTTP request into an :class:`APIPerformanceTracker`.

    >>> from fastapi import FastAPI  # doctest: +SKIP
    >>> app = FastAPI()  # doctest: +SKIP
    >>> app.add_middleware(MonitoringMiddleware)  # doctest: +SKIP

    A request is timed from the call to its last body chunk (or to the end of the app call when
    no last chunk is sent) and recorded with the status the app sent, the method, and the route
    template the framework matched (Starlette and FastAPI leave it in ``scope["route"]``),
    prefixed with the path of any sub-app it was mounted under. Where the framework leaves no
    route there (FastAPI does so only for its own API routes: not for its docs, ``add_route``
    routes or mounts), the template is found by matching the request against the app's router
    the way the router does: a ``Route`` by its template, a ``Mount`` by its prefix and the
    template of the route inside it (``"/v1/docs"``), or ``"<prefix>/{path}"`` when the mounted
    app has no routes (``StaticFiles``, a bare ASGI app). The same is done when the route left
    does not match the path (FastAPI leaves an included router's route without the prefix it
    was included under). Requests no route matched (a 404 from a router, a trailing-slash
    redirect) all go to one endpoint, ``unmatched_endpoint``. An exception from the app is
    recorded as a 500 (or as the status already sent) with ``error`` set, then re-raised. The
    session-id and request-id headers, when present, go into the metadata as ``session_id``
    and ``request_id``.

    ``lifespan`` and ``websocket`` scopes pass straight through. When the lifespan ends (server
    shutdown) every buffered sample of the process is flushed to the store: uvicorn re-raises
    SIGTERM after its graceful shutdown, so ``atexit`` handlers never run there.

    Recording never breaks a request: a failure is logged once (as a warning), counted in
    ``recording_errors``, and the request goes on.
    """

    def __init__(
        self,
        app: _ASGIApp,
        *,
        tracker: APIPerformanceTracker | None = None,
        session_header: str = "x-session-id",
        request_id_header: str = "x-request-id",
        unmatched_endpoint: str = "unmatched",
        clock: Callable[[], float] = perf_counter,
    ) -> None:
        """Wrap ``app``.

        Args:
            app: the ASGI 3 application.
            tracker: where requests go; ``get_api_tracker()`` (which publishes to the sample
                store) when None, looked up at the first request.
            session_header: the request header holding the client's session id
                (case-insensitive).
            request_id_header: the request header holding a request id (case-insensitive).
            unmatched_endpoint: the endpoint every request that matched no route is recorded
                under.
            clock: seconds on a monotonic clock; tests pass a fake one.

        Raises:
            ValueError: a header name or ``unmatched_endpoint`` is empty or not a string.
        """
        self.app = app
        self._tracker = tracker
        self._session_header = _header_key("session_header", session_header)
        self._request_id_header = _header_key("request_id_header", request_id_header)
        if not isinstance(unmatched_endpoint, str) or not unmatched_endpoint.strip():
            raise ValueError(
                f"unmatched_endpoint must be a non-empty string, got {unmatched_endpoint!r}"
            )
        self.unmatched_endpoint = unmatched_endpoint
        self._clock = clock
        self._router: object = _UNKNOWN
        self.recording_errors = 0

    @property
    def tracker(self) -> APIPerformanceTracker:
        """The tracker requests go to (the process-wide one unless another was given)."""
        if self._tracker is None:
            from . import get_api_tracker  # lazily: the package imports this module

            self._tracker = get_api_tracker()
        return self._tracker

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                try:
                    await self.app(scope, receive, send)
                finally:
                    # uvicorn re-raises SIGTERM after shutting down, so atexit never runs.
                    FLUSHER.flush_all()  # never raises
                return
            await self.app(scope, receive, send)
            return

        root_path = scope.get("root_path", "")
        # What routing changes (root_path, route) is read back at the end; the router to walk
        # when no route is left is the first one inside this middleware.
        entry = _Entry(root_path, scope.get("path"), "router" in scope)
        start = self._clock()
        status: int | None = None
        recorded = False

        async def send_and_watch(message: _Message) -> None:
            nonlocal status, recorded
            kind = message.get("type")
            if kind == "http.response.start":
                status = message.get("status")
            elif not recorded and (
                (kind == "http.response.body" and not message.get("more_body", False))
                or kind == "http.response.pathsend"
            ):
                # Record before passing the last chunk on: once a client has its response,
                # the request is in the tracker.
                recorded = True
                self._record(scope, entry, start, status, None)
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        except BaseException as exc:
            if not recorded:
                recorded = True
                self._record(scope, entry, start, status or 500, _describe(exc))
            raise
        if not recorded:
            # The app returned without finishing a response (a client that went away mid-stream,
            # or an app that never answered: the server sends a 500 for it).
            self._record(
                scope,
                entry,
                start,
                status or 500,
                None if status else "the app returned without sending a response",
            )

    def _record(
        self,
        scope: _Scope,
        entry: _Entry,
        start: float,
        status: int | None,
        error: str | None,
    ) -> None:
        """Hand one finished request to the tracker; a failure here is logged, never raised."""
        try:
            duration = max(self._clock() - start, 0.0)
            self.tracker.track_request(
                self._endpoint(scope, entry),
                duration,
                500 if status is None else status,
                scope.get("method") or "GET",
                error=error,
                metadata=self._metadata(scope.get("headers") or ()),
            )
        except Exception:
            self.recording_errors += 1
            if self.recording_errors == 1:
                logger.warning(
                    "ptpd-monitor: could not record a request (requests are served as usual; "
                    "MonitoringMiddleware.recording_errors counts further failures)",
                    exc_info=True,
                )
            else:
                logger.debug("ptpd-monitor: could not record a request", exc_info=True)

    def _endpoint(self, scope: _Scope, entry: _Entry) -> str:
        """The route template, with the path of the sub-apps it was mounted under in front."""
        route = scope.get("route")
        template = _template(route)
        mount = template is not None and _is_mount(route, template)
        if template is None or mount or not _fits(route, scope):
            # No route left (FastAPI leaves none for its docs, add_route routes and mounts, nor
            # does any router for a path it cannot match), a Mount whose inner route is not
            # known, or a route without the prefix it was included under (FastAPI leaves the
            # APIRoute of the included router): match the request against the router.
            found = self._walk(scope, entry)
            if found:
                return found
            if template is None or (mount and found == ""):
                return self.unmatched_endpoint
        root_path = entry.root_path
        mounted = scope.get("root_path", "")
        if not isinstance(mounted, str) or not mounted.startswith(root_path):
            return template
        # What the app added to root_path is the mount prefix; the root_path the server gave
        # (a deployment prefix behind a proxy) is left out, so endpoints don't change with it.
        prefix = mounted[len(root_path) :]
        if not prefix:
            return template
        if template.endswith(_MOUNT_TAIL) and isinstance(getattr(route, "routes", None), list):
            own = template[: -len(_MOUNT_TAIL)]  # already at the end of root_path
            depth = own.count("/")
            prefix = "/".join(prefix.split("/")[:-depth]) if depth else prefix
        return _generalize(prefix, scope.get("path_params"), template) + template

    def _walk(self, scope: _Scope, entry: _Entry) -> str | None:
        """The template of the route the router inside this middleware matches for the request.

        "" when the router matches none; None when there is no router to ask (a hand-built
        scope, an app that is no Starlette or FastAPI app).
        """
        router: object = None
        if not entry.had_router:
            router = scope.get("router")  # set by the first router inside this middleware
        if router is None:
            router = self._inner_router()
        routes = getattr(router, "routes", None)
        if not isinstance(routes, list) or not isinstance(entry.path, str):
            return None
        probe = dict(scope)
        probe.update(path=entry.path, root_path=entry.root_path, path_params={})
        probe.pop("route", None)
        try:
            return _match(routes, probe, "", 0) or ""
        except Exception:  # a route that cannot be asked; never break the request for it
            logger.debug("ptpd-monitor: could not match a request to a route", exc_info=True)
            return None

    def _inner_router(self) -> object:
        """The router this middleware wraps, following ``.app`` down the middleware stack."""
        if self._router is _UNKNOWN:
            found: object = None
            app: object = self.app
            for _ in range(_MAX_STACK):
                if app is None:
                    break
                if isinstance(getattr(app, "routes", None), list):
                    found = app
                    break
                app = getattr(app, "app", None)
            self._router = found
        return self._router

    def _metadata(self, headers: Iterable[tuple[bytes, bytes]]) -> dict[str, Any] | None:
        found: dict[str, Any] = {}
        for name, value in headers:
            key = name.lower()  # servers send lower case; hand-built scopes may not
            if key == self._session_header and "session_id" not in found and value:
                found["session_id"] = value.decode("latin-1")
            elif key == self._request_id_header and "request_id" not in found and value:
                found["request_id"] = value.decode("latin-1")
        return found or None


class _Entry(NamedTuple):
    """What the scope held when the request reached the middleware."""

    root_path: str
    path: object
    had_router: bool


def _is_mount(route: object, template: str) -> bool:
    return template.endswith(_MOUNT_TAIL) and isinstance(getattr(route, "routes", None), list)


def _fits(route: object, scope: _Scope) -> bool:
    """Whether the route's own pattern matches the path the router matched it against.

    The path is taken relative to root_path, as Starlette's routers take it. A route without
    a pattern (a hand-built one) is trusted.
    """
    regex = getattr(route, "path_regex", None)
    path = scope.get("path")
    if not isinstance(regex, re.Pattern) or not isinstance(path, str):
        return True
    root_path = scope.get("root_path") or ""
    if isinstance(root_path, str) and root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        if not rest or rest.startswith("/"):
            path = rest
    return regex.match(path) is not None


def _match(routes: list[Any], scope: _Scope, prefix: str, depth: int) -> str | None:
    """The template of the route a router would pick from ``routes``, ``prefix`` in front.

    As Starlette's router does: the first full match, else the first partial one (a wrong
    method), else none. Mounts and hosts are followed into the routes of their app.
    """
    partial: tuple[Any, Any] | None = None
    for route in routes:
        match, child = route.matches(scope)
        level = getattr(match, "value", match)
        if level == _FULL:
            return _matched(route, child, scope, prefix, depth)
        if level == _PARTIAL and partial is None:
            partial = (route, child)
    if partial is not None:
        return _matched(*partial, scope, prefix, depth)
    return None


def _matched(route: Any, child: Any, scope: _Scope, prefix: str, depth: int) -> str | None:
    """The template below a route that matched, ``prefix`` in front."""
    contexts = getattr(route, "effective_route_contexts", None)
    if callable(contexts):
        # A router FastAPI included: its routes with the prefixes of the inclusion.
        inner = [getattr(context, "starlette_route", None) or context for context in contexts()]
        return _match(inner, scope, prefix, depth)
    template = _template(route)
    routes = getattr(route, "routes", None)
    if template is not None and not _is_mount(route, template):
        return prefix + template
    if not isinstance(routes, list) or depth >= _MAX_DEPTH:
        return None if template is None else prefix + template
    if template is None:  # a Host: no path of its own
        own = prefix
    else:
        own = prefix + template[: -len(_MOUNT_TAIL)]
        if not routes:  # StaticFiles, a bare ASGI app: everything under the prefix
            return prefix + template
    child_scope = dict(scope)
    if isinstance(child, Mapping):
        child_scope.update(child)
    # A router inside that matches nothing answers 404: the request matched no route.
    return _match(routes, child_scope, own, depth + 1)


def _header_key(argument: str, name: object) -> bytes:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{argument} must be a non-empty header name, got {name!r}")
    return name.strip().lower().encode("latin-1")


def _template(route: object) -> str | None:
    """The route's path template without converters ("/curves/{curve_id}"), if it has one."""
    for attribute in ("path_format", "path"):
        value = getattr(route, attribute, None)
        if isinstance(value, str) and value:
            return value
    return None


def _generalize(prefix: str, path_params: object, template: str) -> str:
    """Put ``{name}`` back for the values a parametrized mount ("/users/{user_id}") left.

    Starlette writes the matched path, values included, into root_path; without this each
    user id would become an endpoint of its own.
    """
    if not isinstance(path_params, Mapping) or not path_params:
        return prefix
    own = set(_PARAM.findall(template))
    names = {str(v): str(k) for k, v in path_params.items() if k not in own and str(v)}
    if not names:
        return prefix
    return "/".join(f"{{{names[s]}}}" if s in names else s for s in prefix.split("/"))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
