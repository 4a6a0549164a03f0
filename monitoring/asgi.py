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
from typing import TYPE_CHECKING, Any

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
# Starlette's Mount matches "<mount path>/{path}"; a Mount left in scope["route"] means the
# mounted app is no router (StaticFiles, a bare ASGI app) and the template ends there.
_MOUNT_TAIL = "/{path}"


class MonitoringMiddleware:
    """Records every HTTP request into an :class:`APIPerformanceTracker`.

    >>> from fastapi import FastAPI  # doctest: +SKIP
    >>> app = FastAPI()  # doctest: +SKIP
    >>> app.add_middleware(MonitoringMiddleware)  # doctest: +SKIP

    A request is timed from the call to its last body chunk (or to the end of the app call when
    no last chunk is sent) and recorded with the status the app sent, the method, and the route
    template the framework matched (Starlette and FastAPI leave it in ``scope["route"]``),
    prefixed with the path of any sub-app it was mounted under. Requests no route matched all go
    to one endpoint, ``unmatched_endpoint``. An exception from the app is recorded as a 500 (or
    as the status already sent) with ``error`` set, then re-raised. The session-id and
    request-id headers, when present, go into the metadata as ``session_id`` and
    ``request_id``.

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
                self._record(scope, root_path, start, status, None)
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        except BaseException as exc:
            if not recorded:
                recorded = True
                self._record(scope, root_path, start, status or 500, _describe(exc))
            raise
        if not recorded:
            # The app returned without finishing a response (a client that went away mid-stream,
            # or an app that never answered: the server sends a 500 for it).
            self._record(
                scope,
                root_path,
                start,
                status or 500,
                None if status else "the app returned without sending a response",
            )

    def _record(
        self,
        scope: _Scope,
        root_path: str,
        start: float,
        status: int | None,
        error: str | None,
    ) -> None:
        """Hand one finished request to the tracker; a failure here is logged, never raised."""
        try:
            duration = max(self._clock() - start, 0.0)
            self.tracker.track_request(
                self._endpoint(scope, root_path),
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

    def _endpoint(self, scope: _Scope, root_path: str) -> str:
        """The route template, with the path of the sub-apps it was mounted under in front."""
        route = scope.get("route")
        template = _template(route)
        if template is None:
            return self.unmatched_endpoint
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

    def _metadata(self, headers: Iterable[tuple[bytes, bytes]]) -> dict[str, Any] | None:
        found: dict[str, Any] = {}
        for name, value in headers:
            key = name.lower()  # servers send lower case; hand-built scopes may not
            if key == self._session_header and "session_id" not in found and value:
                found["session_id"] = value.decode("latin-1")
            elif key == self._request_id_header and "request_id" not in found and value:
                found["request_id"] = value.decode("latin-1")
        return found or None


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
