"""Lookup routes served straight from the ASGI call, past routing and FastAPI's per-request layers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["HotRoutes"]

Handler = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


class HotRoutes:
    """Answer ``POST`` on a few paths by calling their handler directly; pass everything else on.

    A sub-millisecond lookup pays for every layer it crosses (route matching, the request and
    exception wrappers, FastAPI's exit stack): the handlers parse their own body and build their
    own response, so they need none of it. An exception is answered by the app's own handler for
    its class (``app.exception_handlers``, the same ones every other route uses); one without a
    handler propagates, as from any route. Installed inside the server middleware, so request
    ids, auth, metrics and the access log apply as before; the routes stay in the router for
    the OpenAPI docs.
    """

    def __init__(self, app: Any, *, routes: dict[str, Handler], errors: dict[Any, ErrorHandler]) -> None:
        self.app = app
        self.routes = routes
        self.errors = errors

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        handler = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except Exception as exc:
            on_error = self._error_handler(exc)
            if on_error is None:
                raise
            response = await on_error(request, exc)
        await response(scope, receive, send)

    def _error_handler(self, exc: Exception) -> ErrorHandler | None:
        for kind in type(exc).__mro__:
            found = self.errors.get(kind)
            if found is not None:
                return found
        return None
